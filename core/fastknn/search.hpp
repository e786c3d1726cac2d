#pragma once
/// \file fastknn/search.hpp
/// Exact k-nearest-neighbour search, written once with Kokkos patterns for every backend:
/// fastknn::search on Views (an Index built and searched once) and a host overload on arrays.
///
/// How it stays exact and fast (docs/design.md): a tiled float pre-selection keeps k + pad
/// candidates per query using register-blocked dot products (or L1 sums); the kept candidates
/// are then re-scored exactly in double by direct differences and sorted by (value, index). A
/// rigorous bound on the pre-selection's rounding error proves, per query, that no discarded
/// point could have entered the top k; the rare query without that proof is redone by an exact
/// scan of the database.

#include <Kokkos_Core.hpp>
#include <Kokkos_Profiling_ScopedRegion.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fastknn/error.hpp>
#include <fastknn/index.hpp>
#include <fastknn/options.hpp>

namespace fastknn
{

/// Exact k nearest neighbours of each query row among the database rows.
/// `database` (N x D) and `queries` (Q x D) are rank-2 Views of float or double accessible from
/// `space`. Returns Q x k indices and distances (best first, ties by smaller index) in the
/// space's memory space. Throws fastknn::Error on invalid input. Searching the same database
/// again and again? fastknn::Index does its pass over the database once.
template <class ExecSpace, class DatabaseView, class QueryView>
requires detail::is_space_v<ExecSpace>
    Neighbors<typename ExecSpace::memory_space,
              std::remove_const_t<typename DatabaseView::value_type>>
    search(ExecSpace const &space, DatabaseView const &database, QueryView const &queries, int k,
           SearchOptions const &options = {})
{
  using T = std::remove_const_t<typename DatabaseView::value_type>;
  detail::check_view<ExecSpace, DatabaseView>();
  detail::check_view<ExecSpace, QueryView>();
  static_assert(std::is_same_v<T, std::remove_const_t<typename QueryView::value_type>>,
                "fastknn::search: database and queries must have the same value type");
  Kokkos::Profiling::ScopedRegion region("fastknn::search");
  // The arguments are checked before the pass over the database.
  static_cast<void>(detail::plan<ExecSpace, T>(space, database.extent(0), queries.extent(0),
                                               database.extent(1), queries.extent(1), k, options));
  // No copy: the search ends before the caller can change anything.
  Index<ExecSpace, DatabaseView> const index(space, database, options.metric, borrow_data);
  return index.search(space, queries, k, options);
}

/// Results of the host convenience overload: row-major Q x k.
template <class T>
struct HostNeighbors
{
  std::size_t queries = 0;
  int k = 0;
  std::vector<index_type> indices;
  std::vector<T> distances;
};

namespace detail
{
/// The host overloads' row-major arrays, checked, as Views of `space`'s memory (copies where
/// the space's memory is not the host's); `what` names the caller in the errors.
template <class ExecSpace, class T>
auto host_arrays(ExecSpace const &space, std::span<T const> database, std::span<T const> queries,
                 std::size_t dim, char const *what)
{
  require(Kokkos::is_initialized(), std::string("Kokkos is not initialised; create a "
                                                "Kokkos::ScopeGuard before calling ") +
                                        what);
  require(dim > 0, "the dimension is 0; points need at least one coordinate");
  require(database.size() % dim == 0, "database length " + std::to_string(database.size()) +
                                          " is not a multiple of the dimension " +
                                          std::to_string(dim));
  require(queries.size() % dim == 0, "query length " + std::to_string(queries.size()) +
                                         " is not a multiple of the dimension " +
                                         std::to_string(dim));
  using Unmanaged = Kokkos::View<T const **, Kokkos::LayoutRight, Kokkos::HostSpace,
                                 Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  Unmanaged x(database.data(), database.size() / dim, dim);
  Unmanaged y(queries.data(), queries.size() / dim, dim);
  return std::pair{Kokkos::create_mirror_view_and_copy(space, x),
                   Kokkos::create_mirror_view_and_copy(space, y)};
}
} // namespace detail

/// Host convenience overload on row-major arrays (for code that keeps its data in std::vector or
/// NumPy-like buffers): copies them into `space`'s memory, searches there and returns Q x k
/// neighbours, best first, as vectors. Kokkos must be initialised (e.g. by a Kokkos::ScopeGuard).
template <class ExecSpace, class T>
requires(detail::is_space_v<ExecSpace> && (std::is_same_v<T, float> || std::is_same_v<T, double>))
    HostNeighbors<T> search(ExecSpace const &space, std::span<T const> database,
                            std::span<T const> queries, std::size_t dim, int k,
                            SearchOptions const &options = {})
{
  auto const [xd, yd] = detail::host_arrays(space, database, queries, dim, "search");
  auto found = search(space, xd, yd, k, options);
  HostNeighbors<T> out;
  out.queries = yd.extent(0);
  out.k = k;
  out.indices.resize(out.queries * std::size_t(k));
  out.distances.resize(out.queries * std::size_t(k));
  Kokkos::View<index_type **, Kokkos::LayoutRight, Kokkos::HostSpace> hi(out.indices.data(),
                                                                         out.queries, k);
  Kokkos::View<T **, Kokkos::LayoutRight, Kokkos::HostSpace> hd(out.distances.data(), out.queries,
                                                                k);
  Kokkos::deep_copy(space, hi, found.indices);
  Kokkos::deep_copy(space, hd, found.distances);
  space.fence("fastknn::search::host_copy");
  return out;
}

/// The host overload on Kokkos' default execution space.
template <class T>
requires(std::is_same_v<T, float> || std::is_same_v<T, double>)
    HostNeighbors<T> search(std::span<T const> database, std::span<T const> queries,
                            std::size_t dim, int k, SearchOptions const &options = {})
{
  return search(Kokkos::DefaultExecutionSpace{}, database, queries, dim, k, options);
}

} // namespace fastknn
