// The selection and sorting helpers of the candidate buffers (detail/heap.hpp), run inside a
// kernel of each enabled space, against std::sort of the same pairs by (value, index). The
// data have many ties, negative values, both zeros and infinities, so that every ordering rule
// is exercised; float pairs take the keyed paths, double pairs the comparison-based ones.

#include "enabled_spaces.hpp"

#include <fastknn/backends/compress.hpp>
#include <fastknn/detail/heap.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

using fastknn::index_type;
using fastknn::test::EnabledSpaces;

namespace
{

template <class T>
struct Pairs
{
  std::vector<T> val;
  std::vector<index_type> idx;
};

/// count pairs with distinct indices (shuffled) and values drawn from few levels.
template <class T>
Pairs<T> tied_pairs(int count, int levels, unsigned seed)
{
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> level(0, levels - 1);
  std::vector<T> const specials = {T(-0.0), T(0.0), std::numeric_limits<T>::infinity(), T(-3.5),
                                   T(1e30)};
  Pairs<T> p;
  p.idx.resize(std::size_t(count));
  std::iota(p.idx.begin(), p.idx.end(), index_type(-3)); // a few negative indices too
  std::shuffle(p.idx.begin(), p.idx.end(), gen);
  for (int j = 0; j < count; ++j)
  {
    int const l = level(gen);
    p.val.push_back(l < int(specials.size()) ? specials[std::size_t(l)] : T(l) * T(0.37) - T(4));
  }
  return p;
}

template <class T>
std::vector<std::pair<T, index_type>> sorted_reference(Pairs<T> const &p)
{
  std::vector<std::pair<T, index_type>> r;
  for (std::size_t j = 0; j < p.val.size(); ++j)
    r.emplace_back(p.val[j], p.idx[j]);
  // std::pair's own lexicographic order (value, then index; -0 and +0 equal as values), not the
  // library's comparator.
  std::sort(r.begin(), r.end());
  return r;
}

/// Runs select_smallest (or keep_smallest) from count to m and then sort_pairs on the first m
/// inside one kernel; also returns the m-th pair as the selection left it.
template <class Space, class T>
Pairs<T> select_then_sort(Pairs<T> const &in, int m, bool keep, T &mth_val, index_type &mth_idx)
{
  using MS = typename Space::memory_space;
  int const count = int(in.val.size());
  Kokkos::View<T *, MS> val("val", 2 * std::size_t(count));
  Kokkos::View<index_type *, MS> idx("idx", 2 * std::size_t(count));
  Kokkos::deep_copy(Kokkos::subview(val, std::pair(0, count)),
                    Kokkos::View<T const *, Kokkos::HostSpace>(in.val.data(), in.val.size()));
  Kokkos::deep_copy(
      Kokkos::subview(idx, std::pair(0, count)),
      Kokkos::View<index_type const *, Kokkos::HostSpace>(in.idx.data(), in.idx.size()));
  Kokkos::parallel_for(
      "test::select_then_sort", Kokkos::RangePolicy<Space>(0, 1), KOKKOS_LAMBDA(int) {
        if (keep)
          fastknn::detail::keep_smallest(val.data(), idx.data(), count, m);
        else
          fastknn::detail::select_smallest(val.data(), idx.data(), count, m);
        val(2 * count - 1) = val(m - 1); // the m-th, before the sort reorders
        idx(2 * count - 1) = idx(m - 1);
        fastknn::detail::sort_pairs(val.data(), idx.data(), m, val.data() + count,
                                    idx.data() + count);
      });
  Pairs<T> out;
  out.val.resize(std::size_t(m));
  out.idx.resize(std::size_t(m));
  auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, val);
  auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, idx);
  mth_val = hv(2 * count - 1);
  mth_idx = hi(2 * count - 1);
  for (int j = 0; j < m; ++j)
  {
    out.val[std::size_t(j)] = hv(j);
    out.idx[std::size_t(j)] = hi(j);
  }
  return out;
}

template <class Space, class T>
void check_selection(int count, int m, int levels, unsigned seed)
{
  CAPTURE(count, m, levels, seed);
  auto const in = tied_pairs<T>(count, levels, seed);
  auto const ref = sorted_reference(in);
  for (bool keep : {false, true})
  {
    CAPTURE(keep);
    T mth_val{};
    index_type mth_idx{};
    auto const out = select_then_sort<Space>(in, m, keep, mth_val, mth_idx);
    REQUIRE(mth_val == ref[std::size_t(m - 1)].first);
    REQUIRE(mth_idx == ref[std::size_t(m - 1)].second);
    for (int j = 0; j < m; ++j)
    {
      CAPTURE(j);
      // Equal as values (-0 == +0) and the same index: the order pair_less defines.
      REQUIRE(out.val[std::size_t(j)] == ref[std::size_t(j)].first);
      REQUIRE(out.idx[std::size_t(j)] == ref[std::size_t(j)].second);
    }
  }
}

} // namespace

TEMPLATE_LIST_TEST_CASE("candidate selection and sort match std::sort by (value, index)",
                        "[selection]", EnabledSpaces)
{
  using Space = TestType;
  auto const [count, m, levels] = GENERATE(table<int, int, int>({{1, 1, 3},
                                                                 {2, 1, 2},
                                                                 {17, 5, 3},
                                                                 {64, 64, 1},
                                                                 {300, 37, 7},
                                                                 {2560, 1280, 40},
                                                                 {2560, 1024, 100000},
                                                                 {2567, 1100, 100000},
                                                                 {4000, 1, 6},
                                                                 {1280, 1024, 2}}));
  for (unsigned seed = 1; seed <= 3; ++seed)
  {
    check_selection<Space, float>(count, m, levels, seed);
    check_selection<Space, double>(count, m, levels, seed);
  }
}

TEST_CASE("float pair keys order like pair_less", "[selection]")
{
  using fastknn::detail::pair_key;
  using fastknn::detail::pair_less;
  std::vector<float> const values = {-std::numeric_limits<float>::infinity(),
                                     -1e30f,
                                     -2.5f,
                                     -1e-40f,
                                     -0.0f,
                                     0.0f,
                                     1e-40f,
                                     1.0f,
                                     1.0000001f,
                                     3e38f,
                                     std::numeric_limits<float>::infinity()};
  std::vector<index_type> const indices = {-7, 0, 1, 2, 1 << 30};
  for (float a : values)
    for (float b : values)
      for (index_type ia : indices)
        for (index_type ib : indices)
        {
          CAPTURE(a, b, ia, ib);
          REQUIRE((pair_key(a, ia) < pair_key(b, ib)) == pair_less(a, ia, b, ib));
        }
}

TEST_CASE("masked appends give the selected pairs in order", "[selection]")
{
  using Host = Kokkos::DefaultHostExecutionSpace;
  std::mt19937_64 gen(7);
  auto check = [&]<int NR>(std::uint64_t mask)
  {
    CAPTURE(NR, mask);
    float s[NR];
    for (int j = 0; j < NR; ++j)
      s[j] = float(j) * 0.5f - 3.0f;
    index_type const row0 = 1000;
    // Room past the appended pairs: a vector version may not write there (checked below).
    std::vector<float> val(NR + 16, -1.0f), ref_val;
    std::vector<index_type> idx(NR + 16, -1), ref_idx;
    for (int j = 0; j < NR; ++j)
      if ((mask >> j) & 1)
      {
        ref_val.push_back(s[j]);
        ref_idx.push_back(row0 + j);
      }
    int const c =
        fastknn::backends::MaskedAppend<Host>::append<NR>(mask, s, row0, val.data(), idx.data());
    REQUIRE(c == int(ref_val.size()));
    for (int j = 0; j < c; ++j)
    {
      REQUIRE(val[std::size_t(j)] == ref_val[std::size_t(j)]);
      REQUIRE(idx[std::size_t(j)] == ref_idx[std::size_t(j)]);
    }
    for (std::size_t j = std::size_t(c); j < val.size(); ++j)
    {
      REQUIRE(val[j] == -1.0f);
      REQUIRE(idx[j] == -1);
    }
  };
  for (std::uint64_t mask : {std::uint64_t(0), ~std::uint64_t(0), std::uint64_t(1),
                             std::uint64_t(1) << 31, std::uint64_t(0x8000'0000'0001)})
  {
    check.operator()<32>(mask & 0xffff'ffffu);
    check.operator()<64>(mask);
  }
  for (int rep = 0; rep < 200; ++rep)
  {
    std::uint64_t const mask = gen() & gen(); // about a quarter of the bits
    check.operator()<32>(mask & 0xffff'ffffu);
    check.operator()<64>(mask);
  }
}

TEST_CASE("the bucket split keeps the pairs below the cut in order", "[selection]")
{
  for (int count : {0, 1, 15, 16, 17, 100, 2567})
    for (int shift : {0, 4, 20})
    {
      CAPTURE(count, shift);
      auto const in = tied_pairs<float>(count, 200, unsigned(count + shift));
      std::uint32_t lo = ~0u;
      for (float v : in.val)
        lo = std::min(lo, fastknn::detail::monotone_bits(v));
      std::uint32_t const cut =
          count > 0 ? (fastknn::detail::monotone_bits(in.val[0]) - lo) >> shift : 0;
      std::vector<float> kept_val, aside_val;
      std::vector<index_type> kept_idx, aside_idx;
      for (int j = 0; j < count; ++j)
      {
        std::uint32_t const b =
            (fastknn::detail::monotone_bits(in.val[std::size_t(j)]) - lo) >> shift;
        if (b < cut)
        {
          kept_val.push_back(in.val[std::size_t(j)]);
          kept_idx.push_back(in.idx[std::size_t(j)]);
        }
        else if (b == cut)
        {
          aside_val.push_back(in.val[std::size_t(j)]);
          aside_idx.push_back(in.idx[std::size_t(j)]);
        }
      }
      auto val = in.val;
      auto idx = in.idx;
      std::vector<float> av(static_cast<std::size_t>(count));
      std::vector<index_type> ai(static_cast<std::size_t>(count));
      int a = -1;
      int const w = fastknn::backends::split_by_bucket(val.data(), idx.data(), count, lo, shift,
                                                       cut, av.data(), ai.data(), a);
      REQUIRE(w == int(kept_val.size()));
      REQUIRE(a == int(aside_val.size()));
      for (int j = 0; j < w; ++j)
      {
        // Bit patterns: -0 and +0 are different pairs here.
        REQUIRE(std::bit_cast<std::uint32_t>(val[std::size_t(j)]) ==
                std::bit_cast<std::uint32_t>(kept_val[std::size_t(j)]));
        REQUIRE(idx[std::size_t(j)] == kept_idx[std::size_t(j)]);
      }
      for (int j = 0; j < a; ++j)
      {
        REQUIRE(std::bit_cast<std::uint32_t>(av[std::size_t(j)]) ==
                std::bit_cast<std::uint32_t>(aside_val[std::size_t(j)]));
        REQUIRE(ai[std::size_t(j)] == aside_idx[std::size_t(j)]);
      }
    }
}
