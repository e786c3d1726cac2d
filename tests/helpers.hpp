#pragma once
// Runs fastknn::search on a given execution space from host vectors and compares with the
// reference.

#include "reference.hpp"

#include <catch2/catch_test_macros.hpp>

#include <optional>
#include <string>

namespace fastknn::test
{

template <class T>
struct HostResult
{
  std::size_t q = 0;
  int k = 0;
  std::vector<index_type> index;
  std::vector<T> value;
  index_type idx(std::size_t i, int j) const { return index[i * k + j]; }
  T val(std::size_t i, int j) const { return value[i * k + j]; }
};

/// Copies host rows into a View of the space's memory space.
template <class Space, class T>
Kokkos::View<T **, Kokkos::LayoutRight, typename Space::memory_space>
to_device(Space const &space, std::vector<T> const &v, std::size_t rows, std::size_t cols)
{
  Kokkos::View<T **, Kokkos::LayoutRight, typename Space::memory_space> d(
      Kokkos::view_alloc(space, Kokkos::WithoutInitializing, "test::data"), rows, cols);
  Kokkos::View<T const **, Kokkos::LayoutRight, Kokkos::HostSpace,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>>
      h(v.data(), rows, cols);
  Kokkos::deep_copy(space, d, h);
  return d;
}

/// Copies a search's result to the host, checking its shape.
template <class MS, class T>
HostResult<T> to_host(Neighbors<MS, T> const &found, std::size_t nq, int k)
{
  auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  REQUIRE(found.indices.extent(0) == nq);
  REQUIRE(found.indices.extent(1) == std::size_t(k));
  HostResult<T> r;
  r.q = nq;
  r.k = k;
  r.index.assign(hi.data(), hi.data() + hi.size());
  r.value.assign(hv.data(), hv.data() + hv.size());
  return r;
}

template <class Space, class T>
HostResult<T> run_search(std::vector<T> const &x, std::size_t n, std::vector<T> const &q,
                         std::size_t nq, std::size_t d, int k, SearchOptions const &opt = {})
{
  Space space;
  auto xd = to_device(space, x, n, d);
  auto qd = to_device(space, q, nq, d);
  return to_host(fastknn::search(space, xd, qd, k, opt), nq, k);
}

/// White box: the search with a plan made by hand (teams wanted, streaming threshold, and
/// optionally the queries re-scored by database row at once, 0 for each query on its own), e.g.
/// to force the packed-copy path that large query sets take.
template <class Space, class T>
HostResult<T> run_planned(std::vector<T> const &x, std::size_t n, std::vector<T> const &q,
                          std::size_t nq, std::size_t d, int k, SearchOptions const &opt,
                          std::size_t teams_wanted, std::size_t stream_query_bytes,
                          std::optional<std::size_t> rerank_tile = std::nullopt)
{
  Space space;
  auto xd = to_device(space, x, n, d);
  auto qd = to_device(space, q, nq, d);
  auto shape = detail::tile_shape<Space>(teams_wanted); // the shape of the kernels that run
  shape.stream_query_bytes = stream_query_bytes;
  shape.rerank_query_bytes = 0;
  auto plan = detail::make_plan(n, nq, d, d, k, opt, sizeof(T), shape);
  if (rerank_tile)
    plan.rerank_tile = *rerank_tile;
  fastknn::Index const index(space, xd, opt.metric);
  auto found = index.search_planned(space, qd, plan, opt);
  return to_host(found, nq, k);
}

struct Comparison
{
  std::size_t checked = 0;
  std::size_t bad_value = 0;     // distance off by more than the tolerance
  std::size_t index_differs = 0; // a different index at a rank where the reference has a near-tie
  std::size_t wrong_index = 0;   // a different index where the reference has no near-tie
  std::string first_problem;
};

/// Compares with the reference: values within rel_tol (relative to the query's value scale),
/// indices exactly unless the reference has a near-tie (within the tolerance) at that rank.
template <class T>
Comparison compare_with_reference(HostResult<T> const &r, std::vector<T> const &x, std::size_t n,
                                  std::vector<T> const &q, std::size_t d, SearchOptions const &opt,
                                  double rel_tol = 1e-5)
{
  RowMatrix const xm = to_eigen(x, n, d);
  RowMatrix const qm = to_eigen(q, r.q, d);
  Comparison c;
  for (std::size_t i = 0; i < r.q; ++i)
  {
    Ranked const ref = reference_rank<T>(xm, qm, i, opt.metric, opt.exclude_self);
    Eigen::VectorXd const all = reference_values(xm, qm, i, opt.metric);
    double scale = 0;
    for (int j = 0; j < r.k; ++j)
      scale = std::max(scale, std::abs(ref.value[j]));
    scale = std::max(scale, 1e-30);
    double const tol = rel_tol * scale;
    for (int j = 0; j < r.k; ++j)
    {
      ++c.checked;
      double const got = r.val(i, j);
      if (std::abs(got - ref.value[j]) > tol)
      {
        if (c.first_problem.empty())
          c.first_problem = "query " + std::to_string(i) + " rank " + std::to_string(j) +
                            ": value " + std::to_string(got) + " vs " +
                            std::to_string(ref.value[j]);
        ++c.bad_value;
      }
      if (r.idx(i, j) != ref.index[j])
      {
        bool const near_tie = r.idx(i, j) >= 0 && std::size_t(r.idx(i, j)) < n &&
                              std::abs(all(r.idx(i, j)) - ref.value[j]) <= tol;
        if (near_tie)
          ++c.index_differs;
        else
        {
          if (c.first_problem.empty())
            c.first_problem = "query " + std::to_string(i) + " rank " + std::to_string(j) +
                              ": index " + std::to_string(r.idx(i, j)) + " vs " +
                              std::to_string(ref.index[j]);
          ++c.wrong_index;
        }
      }
    }
  }
  return c;
}

} // namespace fastknn::test
