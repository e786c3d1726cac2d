#pragma once
// Runs fastknn::search on a given execution space from host vectors and compares with the
// reference.

#include "reference.hpp"

#include <catch2/catch_test_macros.hpp>

#include <limits>
#include <optional>
#include <sstream>
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
  std::size_t bad_value = 0;   // not the specified value rounded to the output type, or that
                               // value farther from the long double truth than its bound
  std::size_t wrong_index = 0; // not the index of the specified order (value, then index)
  std::string first_problem;
};

/// Compares with the references (reference.hpp), with no tolerance: at every rank the index of
/// the specified order (ties by the smaller index) and its value rounded to the output type, bit
/// for bit (values compared with ==, so -0 and +0 are equal); and the specified value itself
/// within its rigorous rounding bound of the long double truth.
template <class T>
Comparison compare_with_reference(HostResult<T> const &r, std::vector<T> const &x, std::size_t n,
                                  std::vector<T> const &q, std::size_t d, SearchOptions const &opt)
{
  Comparison c;
  auto note = [&](std::size_t i, int j, std::string const &what)
  {
    if (c.first_problem.empty())
      c.first_problem = "query " + std::to_string(i) + " rank " + std::to_string(j) + ": " + what;
  };
  auto text = [](auto v)
  {
    std::ostringstream s;
    s.precision(std::numeric_limits<decltype(v)>::max_digits10);
    s << v;
    return s.str();
  };
  for (std::size_t i = 0; i < r.q; ++i)
  {
    T const *qi = q.data() + i * d;
    Ranked const ref = spec_rank<T>(x.data(), n, d, qi, opt.metric,
                                    opt.exclude_self ? i : std::size_t(-1), opt.minkowski_p);
    for (int j = 0; j < r.k; ++j)
    {
      ++c.checked;
      index_type const want = ref.index[std::size_t(j)];
      T const want_value = T(ref.value[std::size_t(j)]); // exact: it is a T already
      if (r.idx(i, j) != want)
      {
        ++c.wrong_index;
        note(i, j, "index " + std::to_string(r.idx(i, j)) + " vs " + std::to_string(want));
      }
      if (!(r.val(i, j) == want_value))
      {
        ++c.bad_value;
        note(i, j, "value " + text(r.val(i, j)) + " vs " + text(want_value));
      }
      // The specification against the mathematics: the specified double (before its rounding
      // to T) within its rounding bound of the long double truth.
      SpecCheck const s =
          check_spec(opt.metric, qi, x.data() + std::size_t(want) * d, d, opt.minkowski_p);
      if (!s.ok)
      {
        ++c.bad_value;
        note(i, j,
             "specified value " + text(s.spec) + " off the truth " + text(double(s.truth.value)) +
                 " by more than its bound " + text(double(s.truth.bound)));
      }
    }
  }
  return c;
}

} // namespace fastknn::test
