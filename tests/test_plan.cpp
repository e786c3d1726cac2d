// The GPU's plans fit a GPU block's scratch for every shape, and the team selection keeps
// exactly what the one-thread candidate buffer keeps.

#include <fastknn/backends/device_memory.hpp>
#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/detail/team_select.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace fastknn;

namespace
{
using Gpu = backends::GpuTileTraits;
// What a CUDA block may take by default (48 KiB); Kokkos keeps ~8 KiB of it for team reductions.
constexpr std::size_t cuda_block_shared = 48 * 1024;
} // namespace

TEST_CASE("the GPU traits' plans keep every team's scratch within a CUDA block", "[plan]")
{
  static_assert(Gpu::team_scratch_bytes + 8 * 1024 + 16 <= cuda_block_shared);
  // Per-thread arrays of the block tile: a 4 x 8 micro-tile of accumulators and its operands.
  using Tile =
      backends::BlockTileShape<Gpu::query_block, Gpu::database_block, Gpu::team_query_threads,
                               Gpu::team_size / Gpu::team_query_threads>;
  static_assert(Tile::threads == Gpu::team_size && Tile::tm == 4 && Tile::tn == 8);
  static_assert(Gpu::team_query_blocks * Gpu::query_block == 32);
  // A slice of 16 floats per row: 8 KiB of the column tile, read as whole lines.
  static_assert(Gpu::stage_row_bytes / sizeof(float) == 16);
  // Two teams per thread slot of an H200 (132 SMs x 2048 threads), as search_impl asks.
  std::size_t const teams = 2 * 132 * 2048 / std::size_t(Gpu::team_size);
  std::vector<std::size_t> const sizes{1, 3, 128, 784, 4096};
  std::size_t planned = 0;
  for (std::size_t value_size : {sizeof(float), sizeof(double)})
    for (std::size_t n : sizes)
      for (std::size_t q : sizes)
        for (std::size_t d : sizes)
          for (long long k : {1LL, 100LL, 2048LL, (long long)n})
          {
            if (std::size_t(k) > n)
              continue;
            for (bool big_budget : {false, true})
            {
              SearchOptions opt;
              opt.workspace_bytes = big_budget ? std::size_t(16) << 30 : std::size_t(64) << 20;
              auto const plan =
                  detail::make_plan(n, q, d, d, k, opt, value_size, detail::team_shape<Gpu>(teams));
              INFO("N=" << n << " Q=" << q << " D=" << d << " k=" << k << " value " << value_size
                        << " budget " << opt.workspace_bytes << ": chunk " << plan.chunk
                        << ", scratch " << plan.preselect_scratch << " / "
                        << plan.exact_scan_scratch);
              CHECK(plan.preselect_scratch <= Gpu::team_scratch_bytes);
              CHECK(plan.exact_scan_scratch <= Gpu::team_scratch_bytes);
              // What the pre-selection launch asks for: the tile's staging (or a slab's
              // scores), the counts and the selection's scratch, whatever the chunk.
              CHECK(plan.preselect_scratch ==
                    detail::block_tile_scratch_bytes(Gpu::query_block, Gpu::database_block,
                                                     Gpu::stage_row_bytes, Gpu::team_size,
                                                     value_size));
              CHECK(plan.chunk >= std::size_t(Gpu::database_block));
              CHECK(plan.chunk % Gpu::database_block == 0);
              CHECK(!plan.stream);
              ++planned;
            }
          }
  CHECK(planned > 1000);
}

TEST_CASE("a double search over 1,500 rows was planned past the GPU's scratch", "[plan]")
{
  // The case the old traits failed: 4 queries x 2048 doubles = 64 KiB of scores per team. The
  // block tile holds the scores of one slab (32 queries x 64 doubles = 16 KiB) at a time.
  SearchOptions opt;
  auto const plan =
      detail::make_plan(1500, 40, 16, 16, 5, opt, sizeof(double), detail::team_shape<Gpu>(64));
  CHECK(std::size_t(Gpu::query_block) *
            backends::block_slab_columns(Gpu::database_block, sizeof(double)) * sizeof(double) <=
        backends::block_area_bytes(Gpu::query_block, Gpu::database_block, Gpu::stage_row_bytes,
                                   sizeof(double)));
  CHECK(plan.preselect_scratch <= Gpu::team_scratch_bytes);
  CHECK(plan.chunk % Gpu::database_block == 0);
}

namespace
{
/// The score of row j of a run starting at r0: a functor callable on every backend (nvcc refuses
/// a host lambda passed into team_offer, a KOKKOS_INLINE_FUNCTION: error #20013).
template <class View>
struct ScoreAt
{
  View scores;
  std::size_t r0;
  KOKKOS_INLINE_FUNCTION auto operator()(std::size_t j) const { return scores(r0 + j); }
};

/// One host team of `team_size` threads with the team selection's scratch.
template <class T>
Kokkos::TeamPolicy<Kokkos::DefaultHostExecutionSpace> one_team(int team_size)
{
  using Space = Kokkos::DefaultHostExecutionSpace;
  Kokkos::TeamPolicy<Space> policy(Space(), 1, team_size);
  policy.set_scratch_size(0,
                          Kokkos::PerTeam(detail::team_select_scratch_bytes(team_size, sizeof(T))));
  return policy;
}

/// Runs team_keep_smallest (cut = true) or team_offer over `values` with a team of `team_size`
/// threads; returns the buffer's pairs.
template <class T>
std::vector<std::pair<T, index_type>> run_team(std::vector<T> const &values, int kept,
                                               int team_size, T &threshold)
{
  using Space = Kokkos::DefaultHostExecutionSpace;
  std::size_t const n = values.size();
  std::size_t const width = detail::candidate_buffer_width(kept);
  Kokkos::View<T *, Kokkos::HostSpace> val("val", width), scores("scores", n);
  Kokkos::View<index_type *, Kokkos::HostSpace> idx("idx", width);
  Kokkos::View<int, Kokkos::HostSpace> count("count");
  Kokkos::View<T, Kokkos::HostSpace> thr("threshold");
  std::copy(values.begin(), values.end(), scores.data());
  using Member = typename Kokkos::TeamPolicy<Space>::member_type;
  Kokkos::parallel_for(one_team<T>(team_size),
                       [=](Member const &team)
                       {
                         auto const s = detail::TeamSelectScratch<T>::take(team, 0);
                         detail::TeamBuffer<T> buf{val.data(), idx.data(),
                                                   0,          Kokkos::Experimental::infinity_v<T>,
                                                   kept,       detail::candidate_capacity(kept)};
                         // Offered in runs of 37 rows, as chunks arrive.
                         for (std::size_t r0 = 0; r0 < n; r0 += 37)
                         {
                           std::size_t const rows = std::min<std::size_t>(37, n - r0);
                           detail::team_offer(team, s, buf, rows, index_type(r0),
                                              ScoreAt<decltype(scores)>{scores, r0},
                                              ~std::size_t(0));
                         }
                         detail::team_trim(team, s, buf);
                         Kokkos::single(Kokkos::PerTeam(team),
                                        [&]()
                                        {
                                          count() = buf.count;
                                          thr() = buf.threshold;
                                        });
                       });
  Kokkos::fence();
  threshold = thr();
  std::vector<std::pair<T, index_type>> out;
  for (int j = 0; j < count(); ++j)
    out.emplace_back(val(j), idx(j));
  return out;
}

template <class T>
void check_team_selection(unsigned seed, std::size_t n, int kept, int distinct)
{
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, distinct - 1);
  std::vector<T> values(n);
  for (auto &v : values)
    v = T(pick(rng) - distinct / 3) * T(0.37); // negative values and many ties
  values[n / 2] = T(-0.0);
  // Teams of up to 8 threads (as many as the host space runs: 4 in the GPU-shaped suite, 8 in
  // fastknn_tests_gpu_shaped_8).
  int const team_size = std::min(8, Kokkos::DefaultHostExecutionSpace().concurrency());
  T threshold{};
  auto const got = run_team(values, kept, team_size, threshold);
  // Reference: the kept smallest by (value, row), and the kept-th value as the threshold.
  std::vector<index_type> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](index_type a, index_type b) { return values[a] < values[b]; });
  std::vector<index_type> want(order.begin(), order.begin() + kept);
  std::sort(want.begin(), want.end()); // the buffer keeps row order
  INFO("seed " << seed << " n " << n << " kept " << kept << " team " << team_size);
  REQUIRE(got.size() == std::size_t(kept));
  std::vector<index_type> rows;
  for (auto const &[v, r] : got)
  {
    CHECK(v == values[r]);
    rows.push_back(r);
  }
  CHECK(rows == want);
  CHECK(threshold == values[order[kept - 1]]);
}
} // namespace

TEST_CASE("the team selection keeps the k smallest, ties by row, for any team size",
          "[selection][team]")
{
  auto const n = GENERATE(std::size_t(5), std::size_t(300), std::size_t(5000));
  auto const kept = GENERATE(1, 3, 64, 1000);
  if (std::size_t(kept) >= n)
    return;
  check_team_selection<float>(11 + unsigned(n), n, kept, 50);
  check_team_selection<double>(12 + unsigned(n), n, kept, 50);
  check_team_selection<float>(13 + unsigned(n), n, kept, 1000000);
  check_team_selection<double>(14 + unsigned(n), n, kept, 1000000);
}

namespace
{
/// Runs team_sort_pairs and team_kth_smallest over (values, ids) with a team of `team_size`
/// threads; returns the sorted pairs and the m-th smallest value.
template <class T>
std::pair<std::vector<std::pair<T, index_type>>, T>
run_team_sort(std::vector<T> const &values, std::vector<index_type> const &ids, int m,
              int team_size)
{
  using Space = Kokkos::DefaultHostExecutionSpace;
  int const n = int(values.size());
  Kokkos::View<T *, Kokkos::HostSpace> val("val", n);
  Kokkos::View<index_type *, Kokkos::HostSpace> idx("idx", n);
  Kokkos::View<T, Kokkos::HostSpace> kth("kth");
  std::copy(values.begin(), values.end(), val.data());
  std::copy(ids.begin(), ids.end(), idx.data());
  using Member = typename Kokkos::TeamPolicy<Space>::member_type;
  Kokkos::parallel_for(one_team<T>(team_size),
                       [=](Member const &team)
                       {
                         auto const s = detail::TeamSelectScratch<T>::take(team, 0);
                         T const v = detail::team_kth_smallest(team, s, val.data(), n, m);
                         detail::team_sort_pairs(team, val.data(), idx.data(), n);
                         Kokkos::single(Kokkos::PerTeam(team), [&]() { kth() = v; });
                       });
  Kokkos::fence();
  std::vector<std::pair<T, index_type>> out;
  for (int j = 0; j < n; ++j)
    out.emplace_back(val(j), idx(j));
  return {out, kth()};
}

template <class T>
void check_team_sort(unsigned seed, int n, int distinct)
{
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, distinct - 1);
  std::vector<T> values(static_cast<std::size_t>(n), T(0));
  std::vector<index_type> ids(static_cast<std::size_t>(n));
  std::iota(ids.begin(), ids.end(), index_type(0));
  std::shuffle(ids.begin(), ids.end(), rng); // ties must come out by index, not by position
  for (auto &v : values)
    v = T(pick(rng) - distinct / 3) * T(0.37);
  values[std::size_t(n) / 2] = T(-0.0);
  values[std::size_t(n) - 1] = Kokkos::Experimental::infinity_v<T>;
  int const team_size = std::min(8, Kokkos::DefaultHostExecutionSpace().concurrency());
  int const m = 1 + int(rng() % unsigned(n));
  auto const [got, kth] = run_team_sort(values, ids, m, team_size);
  std::vector<std::pair<T, index_type>> want;
  for (std::size_t j = 0; j < values.size(); ++j)
    want.emplace_back(values[j], ids[j]);
  // The reference order by (value, index), -0 and +0 equal as the library's comparisons say.
  std::sort(want.begin(), want.end(),
            [](auto const &a, auto const &b)
            { return a.first < b.first || (a.first == b.first && a.second < b.second); });
  INFO("seed " << seed << " n " << n << " m " << m << " team " << team_size);
  REQUIRE(got.size() == want.size());
  for (std::size_t j = 0; j < want.size(); ++j)
  {
    CHECK(got[j].first == want[j].first);
    CHECK(got[j].second == want[j].second);
  }
  CHECK(kth == want[std::size_t(m) - 1].first);
}
} // namespace

TEST_CASE("the team sort orders by (value, index) and finds the m-th value, for any team size",
          "[selection][team]")
{
  auto const n = GENERATE(1, 2, 3, 10, 64, 100, 1000, 1025);
  check_team_sort<float>(21 + unsigned(n), n, 7);
  check_team_sort<double>(22 + unsigned(n), n, 7);
  check_team_sort<float>(23 + unsigned(n), n, 1000000);
  check_team_sort<double>(24 + unsigned(n), n, 1000000);
}

TEST_CASE("plans at N ~ 2^31, D = 128, k ~ 2^30: candidate counts never wrap", "[plan][sizes]")
{
  // No allocation: the plan only. A buffer keeping kept = k + k/4 ~ 1.0e9 candidates is cut
  // when its int count reaches the capacity; 2 x kept overflowed an int (a negative capacity:
  // every append a cut, or worse) before candidate_capacity computed it in 64 bits.
  SearchOptions opt;
  opt.workspace_bytes = std::size_t(1) << 62;
  std::size_t const n = (std::size_t(1) << 31) - 2, d = 128;
  long long const k = (1LL << 29) + (1LL << 28);
  for (auto const &shape :
       {detail::team_shape<Gpu>(64), detail::team_shape<backends::TileTraits<void>>(2)})
  {
    auto const plan = detail::make_plan(n, 1, d, d, k, opt, sizeof(float), shape);
    INFO("team size " << shape.team_size << ", kept " << plan.kept);
    CHECK(plan.kept == int(k + k / 4));
    int const capacity = detail::candidate_capacity(plan.kept);
    // The re-ranking's workspace is the buffer's second half: twice what is kept, exactly.
    CHECK(capacity == 2 * plan.kept);
    CHECK(capacity <= std::numeric_limits<int>::max() - 64);
    CHECK(detail::candidate_buffer_width(plan.kept) == std::size_t(capacity) + 64);
    // The plan's workspace holds the query's buffer of that width (value and index per slot).
    CHECK(plan.workspace >=
          detail::candidate_buffer_width(plan.kept) * (sizeof(float) + sizeof(index_type)));
    CHECK(plan.n * plan.d > (std::size_t(1) << 31)); // N x D in 64 bits as well
  }
  // k = 2^30 keeps 1.34e9, whose buffer would need 2.7e9 slots: the capacity is capped below
  // that, and the second half the re-ranking writes behind the kept pairs would run into the
  // next query's buffer. k = N - 1 keeps even more. Both refused with the fix, not overrun.
  for (long long const big : {1LL << 30, (long long)n - 1})
    try
    {
      (void)detail::make_plan(n, 1, d, d, big, opt, sizeof(float), detail::team_shape<Gpu>(64));
      FAIL("k = " << big << " at N = 2^31 - 2 was planned");
    }
    catch (Error const &e)
    {
      CHECK(std::string(e.what()).find("use a smaller k") != std::string::npos);
    }
  // Small k stay as they were: capacity exactly twice what is kept.
  CHECK(detail::candidate_capacity(40) == 80);
  CHECK(detail::candidate_capacity(1 << 29) == 1 << 30);
  CHECK(detail::candidate_capacity(1 << 30) == std::numeric_limits<int>::max() - 64);
}

TEST_CASE("a device's default workspace grows to half its free memory; set values are kept",
          "[plan]")
{
  std::size_t const dflt = SearchOptions::default_workspace_bytes;
  std::size_t const gib = std::size_t(1) << 30;
  CHECK(SearchOptions{}.workspace_bytes == dflt);
  CHECK(detail::workspace_budget(dflt, 0) == dflt);                      // host memory, or unknown
  CHECK(detail::workspace_budget(dflt, 80 * gib) == 40 * gib);           // an idle 80 GB GPU
  CHECK(detail::workspace_budget(dflt, std::size_t(100) << 20) == dflt); // never below the default
  CHECK(detail::workspace_budget(gib, 80 * gib) == gib);                 // the caller's own bound
  CHECK(detail::workspace_budget(std::size_t(64) << 20, 80 * gib) == std::size_t(64) << 20);
  // The host spaces report nothing: their plans keep the default (docs/design.md).
  CHECK(backends::free_device_bytes(Kokkos::DefaultHostExecutionSpace{}) == 0);
  // With 40 GiB, k = 4096 on Fashion-MNIST-sized input plans every query in one tile.
  SearchOptions opt;
  opt.workspace_bytes = detail::workspace_budget(dflt, 80 * gib);
  auto const plan = detail::make_plan(60000, 10000, 784, 784, 4096, opt, sizeof(float),
                                      detail::team_shape<Gpu>(2 * 132 * 2048 / Gpu::team_size));
  CHECK(plan.query_tile >= 10000);
  SearchOptions small;
  auto const tiled = detail::make_plan(60000, 10000, 784, 784, 4096, small, sizeof(float),
                                       detail::team_shape<Gpu>(2 * 132 * 2048 / Gpu::team_size));
  CHECK(tiled.query_tile < 10000); // what the 512 MiB default gave a GPU before
}
