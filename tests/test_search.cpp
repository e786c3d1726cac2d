// Random data of several shapes on every enabled execution space, against the float64
// direct-difference reference.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

using namespace fastknn;
using namespace fastknn::test;

namespace
{
struct Shape
{
  std::size_t n, q, d;
};

template <class Space, class T>
void check_random(Shape s, int k, Metric metric, unsigned seed)
{
  auto x = random_matrix<T>(s.n, s.d, seed, -1.0, 1.0);
  auto q = random_matrix<T>(s.q, s.d, seed + 1, -1.0, 1.0);
  SearchOptions opt;
  opt.metric = metric;
  auto r = run_search<Space>(x, s.n, q, s.q, s.d, k, opt);
  // The packed-copy path that large query sets take (few queries here would stream): the same
  // answer bit for bit.
  auto packed = run_planned<Space>(x, s.n, q, s.q, s.d, k, opt, 1, 0);
  CHECK(packed.index == r.index);
  CHECK(packed.value == r.value);
  // The exact re-scoring query by query, and by database row in sub-tiles of 5 queries: the
  // same answer bit for bit as the plan's own choice.
  for (std::size_t rerank_tile : {std::size_t(0), std::size_t(5)})
  {
    auto other = run_planned<Space>(x, s.n, q, s.q, s.d, k, opt, 1, 0, rerank_tile);
    INFO("rerank_tile " << rerank_tile);
    CHECK(other.index == r.index);
    CHECK(other.value == r.value);
  }
  auto c = compare_with_reference(r, x, s.n, q, s.d, opt);
  INFO("N=" << s.n << " Q=" << s.q << " D=" << s.d << " k=" << k
            << " metric=" << metric_name(metric) << " " << c.first_problem);
  CHECK(c.bad_value == 0);
  CHECK(c.wrong_index == 0);
}
} // namespace

TEMPLATE_LIST_TEST_CASE("random shapes, every metric, match the reference", "[search]",
                        EnabledSpaces)
{
  auto const metric =
      GENERATE(Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  auto const shape =
      GENERATE(Shape{1237, 53, 1}, Shape{1237, 53, 3}, Shape{611, 29, 784}, Shape{433, 17, 1000});
  auto const k = GENERATE(1, 10, 100);
  // D = 1 has exact value ties between different points by construction: they come in index
  // order, checked strictly like every other rank.
  check_random<TestType, float>(shape, k, metric, 7 + unsigned(shape.d));
}

TEMPLATE_LIST_TEST_CASE("k = N returns the whole database ranked", "[search]", EnabledSpaces)
{
  auto const metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::Cosine);
  check_random<TestType, float>({157, 11, 24}, 157, metric, 3);
}

TEMPLATE_LIST_TEST_CASE("double inputs match the reference", "[search][double]", EnabledSpaces)
{
  auto const metric =
      GENERATE(Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  check_random<TestType, double>({1000, 31, 67}, 10, metric, 11);
}

TEMPLATE_LIST_TEST_CASE("planted exact ties come back in index order", "[search][ties]",
                        EnabledSpaces)
{
  // 40 distinct points, each copied to 5 scattered indices; queries are some of the points.
  std::size_t const d = 9, distinct = 40, copies = 5, n = distinct * copies;
  auto base = random_matrix<float>(distinct, d, 21);
  std::vector<float> x(n * d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < d; ++p)
      x[i * d + p] = base[(i % distinct) * d + p]; // row i is a copy of point i % 40
  std::vector<float> q(base.begin(), base.begin() + 8 * d);
  auto const metric =
      GENERATE(Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  SearchOptions opt;
  opt.metric = metric;
  auto r = run_search<TestType>(x, n, q, 8, d, int(2 * copies), opt);
  for (std::size_t i = 0; i < 8; ++i)
  {
    if (!is_similarity(metric))
    {
      // The query's own point, at indices i, i+40, ..., i+160, comes first, in index order.
      for (std::size_t c = 0; c < copies; ++c)
      {
        CHECK(r.idx(i, int(c)) == index_type(i + c * distinct));
        CHECK(r.val(i, int(c)) == 0.0f);
      }
    }
    // Every group of equal values is in ascending index order.
    for (int j = 1; j < r.k; ++j)
      if (r.val(i, j) == r.val(i, j - 1))
        CHECK(r.idx(i, j) > r.idx(i, j - 1));
  }
  auto c = compare_with_reference(r, x, n, q, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("exclude_self never returns the query, even with duplicates",
                        "[search][exclude_self]", EnabledSpaces)
{
  std::size_t const d = 5, n = 300;
  auto x = random_matrix<float>(n, d, 5);
  for (std::size_t i = 0; i < n; i += 3) // rows 0, 3, 6, ... are duplicated at i+1
    if (i + 1 < n)
      std::copy_n(&x[i * d], d, &x[(i + 1) * d]);
  auto const metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::Cosine);
  SearchOptions opt;
  opt.metric = metric;
  opt.exclude_self = true;
  auto r = run_search<TestType>(x, n, x, n, d, 7, opt);
  for (std::size_t i = 0; i < n; ++i)
    for (int j = 0; j < 7; ++j)
      CHECK(r.idx(i, j) != index_type(i));
  if (metric != Metric::Cosine)
    for (std::size_t i = 0; i + 1 < n; i += 3)
    {
      CHECK(r.idx(i, 0) == index_type(i + 1)); // the duplicate, at distance 0
      CHECK(r.idx(i + 1, 0) == index_type(i));
      CHECK(r.val(i, 0) == 0.0f);
    }
  auto c = compare_with_reference(r, x, n, x, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("a small budget forces many tiles and gives the identical answer",
                        "[search][tiling]", EnabledSpaces)
{
  std::size_t const n = 5003, nq = 301, d = 37;
  auto x = random_matrix<float>(n, d, 17);
  auto q = random_matrix<float>(nq, d, 18);
  auto const metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::InnerProduct);
  SearchOptions big, small;
  big.metric = small.metric = metric;
  small.workspace_bytes = 200 * 1024; // forces several database and query tiles
  SearchStats big_stats, small_stats;
  big.stats = &big_stats;
  small.stats = &small_stats;
  auto a = run_search<TestType>(x, n, q, nq, d, 20, big);
  auto b = run_search<TestType>(x, n, q, nq, d, 20, small);
  CHECK(big_stats.query_tiles == 1);
  CHECK(big_stats.database_tiles <= 1); // 0 when streamed: nothing is packed up front
  CHECK(small_stats.query_tiles > 1);
  CHECK(small_stats.database_tiles > 1);
  CHECK(small_stats.workspace_bytes <= small.workspace_bytes);
  CHECK(a.index == b.index);
  CHECK(a.value == b.value);
  auto c = compare_with_reference(b, x, n, q, d, small);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("near-equidistant points exercise the exact fallback", "[search][exact]",
                        EnabledSpaces)
{
  // Points on a sphere around the query at radii differing by ~1e-9 relative: the float
  // pre-selection cannot separate them, so the proof fails and the exact scan decides.
  std::size_t const n = 400, d = 16;
  std::vector<double> xd(n * d), qd(d, 0.5);
  std::mt19937_64 gen(3);
  std::normal_distribution<double> g;
  for (std::size_t i = 0; i < n; ++i)
  {
    double norm = 0;
    for (std::size_t p = 0; p < d; ++p)
      norm += (xd[i * d + p] = g(gen)) * xd[i * d + p];
    double const radius = 1000.0 * (1.0 + 1e-9 * double(i % 97));
    for (std::size_t p = 0; p < d; ++p)
      xd[i * d + p] = 0.5 + xd[i * d + p] / std::sqrt(norm) * radius;
  }
  std::vector<float> x(xd.begin(), xd.end()), q(qd.begin(), qd.end());
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::L2);
  SearchStats stats;
  opt.stats = &stats;
  auto r = run_search<TestType>(x, n, q, 1, d, 5, opt);
  CHECK(stats.exact_fallbacks == 1); // the slow path really ran
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  // The tolerance (1e-7 of ~1e6) is far wider than the planted spacing (~2e-3), so an index at a
  // "near tie" must still be the reference's own: the exact scan ranks exactly.
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("a few rows of huge norm do not defeat the proof", "[search][exact]",
                        EnabledSpaces)
{
  // Gaussian rows plus a few 1000 times farther out (as standardising a nearly constant pixel
  // makes). The error bound with the largest norm (~1e4 here) exceeds every gap between
  // neighbours, so without the triangle inequality for far rows every query fell back to the
  // exact scan; with it none may, and the answer is still the reference's.
  std::size_t const n = 3000, nq = 40, d = 64;
  std::mt19937_64 gen(11);
  std::normal_distribution<float> g;
  std::vector<float> x(n * d), q(nq * d);
  for (auto &v : x)
    v = g(gen);
  for (auto &v : q)
    v = g(gen);
  for (std::size_t i = 0; i < n; i += 600)
    for (std::size_t p = 0; p < d; ++p)
      x[i * d + p] *= 1000.0f;
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::L2);
  SearchStats stats;
  opt.stats = &stats;
  int const k = GENERATE(1, 100);
  auto r = run_search<TestType>(x, n, q, nq, d, k, opt);
  CHECK(stats.exact_fallbacks == 0);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("host convenience overload", "[search][host]", EnabledSpaces)
{
  std::size_t const n = 200, nq = 9, d = 6;
  auto x = random_matrix<float>(n, d, 1);
  auto q = random_matrix<float>(nq, d, 2);
  auto host = fastknn::search(std::span<float const>(x), std::span<float const>(q), d, 4);
  auto r = run_search<TestType>(x, n, q, nq, d, 4);
  CHECK(host.indices == r.index);
  CHECK(host.distances == r.value);
  CHECK(host.queries == nq);
  auto c = compare_with_reference(r, x, n, q, d, SearchOptions{});
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("few queries split the database into runs with their own buffers",
                        "[search][segments]", EnabledSpaces)
{
  // Three queries: one query block on every backend (MR >= 4), fewer teams than any wants.
  std::size_t const n = 20011, nq = 3, d = 32;
  auto const metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::Cosine);
  auto const k = GENERATE(1, 10, 300);
  auto x = random_matrix<float>(n, d, 41);
  auto q = random_matrix<float>(nq, d, 42);
  SearchOptions opt;
  opt.metric = metric;
  SearchStats stats;
  opt.stats = &stats;
  auto r = run_search<TestType>(x, n, q, nq, d, k, opt);
  INFO("metric=" << metric_name(metric) << " k=" << k << " segments=" << stats.segments);
  if (stats.chunk_rows < n) // more than one chunk to share out (any backend wants >= 2 teams)
    CHECK(stats.segments > 1);
  CHECK(stats.workspace_bytes <= opt.workspace_bytes);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.bad_value == 0);
  CHECK(c.wrong_index == 0);
}

TEMPLATE_LIST_TEST_CASE("database runs: streamed and from the packed copy agree",
                        "[search][segments]", EnabledSpaces)
{
  // The same few queries planned three ways (white box: plans made by hand): one run, runs
  // over the packed copy of the database, streamed runs. All must give the reference's answer.
  std::size_t const n = 12007, nq = 20, d = 48;
  int const k = 25;
  auto x = random_matrix<float>(n, d, 51);
  auto q = random_matrix<float>(nq, d, 52);
  TestType space;
  auto xd = to_device(space, x, n, d);
  auto qd = to_device(space, q, nq, d);
  SearchOptions opt;
  opt.workspace_bytes = std::size_t(64) << 20;
  auto run = [&](std::size_t teams, bool stream, int expect_segments_min)
  {
    auto shape = detail::tile_shape<TestType>(teams);
    shape.chunk_bytes = 64 * 1024;
    shape.stream_query_bytes = stream ? std::size_t(1) << 20 : 0;
    shape.rerank_query_bytes = 0;
    auto plan = detail::make_plan(n, nq, d, d, k, opt, sizeof(float), shape);
    INFO("teams " << teams << " stream " << stream << ": segments " << plan.segments);
    // Block-tiled shapes (the GPU's) never stream: their kernel has no such path.
    CHECK(plan.stream == (stream && shape.stage_row_bytes == 0));
    CHECK(plan.segments >= expect_segments_min);
    CHECK(plan.workspace <= opt.workspace_bytes);
    fastknn::Index const index(space, xd, opt.metric);
    return to_host(index.search_planned(space, qd, plan, opt), nq, k);
  };
  auto one = run(1, false, 1);
  auto packed = run(16, false, 4);
  auto streamed = run(16, true, 4);
  CHECK(one.index == packed.index);
  CHECK(one.value == packed.value);
  CHECK(one.index == streamed.index);
  CHECK(one.value == streamed.value);
  auto c = compare_with_reference(streamed, x, n, q, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("a progress callback can stop a search; one that goes on changes nothing",
                        "[search][progress]", EnabledSpaces)
{
  std::size_t const n = 20000, nq = 200, d = 24;
  auto x = random_matrix<float>(n, d, 41);
  auto q = random_matrix<float>(nq, d, 42);
  SearchOptions opt;
  opt.workspace_bytes = std::size_t(1) << 20; // many blocks of work: the callback runs mid-search
  SECTION("returning false throws Cancelled after the first block")
  {
    int calls = 0;
    opt.progress = [&calls](double) -> bool
    {
      ++calls;
      return false;
    };
    CHECK_THROWS_AS(run_search<TestType>(x, n, q, nq, d, 10, opt), Cancelled);
    CHECK(calls == 1);
    // Nothing is left behind: the next search on the same space is complete and exact.
    opt.progress = {};
    auto c = compare_with_reference(run_search<TestType>(x, n, q, nq, d, 10, opt), x, n, q, d, opt);
    CHECK(c.wrong_index == 0);
    CHECK(c.bad_value == 0);
  }
  SECTION("returning true, or nothing, reports rising fractions ending at 1")
  {
    std::vector<double> seen;
    bool const returns_bool = GENERATE(true, false);
    if (returns_bool)
      opt.progress = [&seen](double f)
      {
        seen.push_back(f);
        return true;
      };
    else
      opt.progress = [&seen](double f) { seen.push_back(f); };
    auto r = run_search<TestType>(x, n, q, nq, d, 10, opt);
    REQUIRE(seen.size() >= 2);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(seen.front() < 1.0);
    CHECK(seen.back() == 1.0);
    auto c = compare_with_reference(r, x, n, q, d, opt);
    CHECK(c.wrong_index == 0);
    CHECK(c.bad_value == 0);
  }
}

namespace
{
/// The exact score as docs/design.md specifies it, written independently of the library: eight
/// partial sums (coordinate p into sum p mod 8, the tail into sums 0, 1, ...), each product added
/// by one fused multiply-add, the sums combined pairwise in a fixed order.
double specified_score(Metric m, double const *a, double const *b, std::size_t d)
{
  double s[8] = {}, qq[8] = {}, xx[8] = {};
  std::size_t const whole = d / 8 * 8;
  for (std::size_t p = 0; p < d; ++p)
  {
    std::size_t const l = p < whole ? p % 8 : p - whole;
    if (m == Metric::L2 || m == Metric::L2Squared)
      s[l] = std::fma(a[p] - b[p], a[p] - b[p], s[l]);
    else if (m == Metric::L1)
      s[l] += std::fabs(a[p] - b[p]);
    else
    {
      s[l] = std::fma(a[p], b[p], s[l]);
      qq[l] = std::fma(a[p], a[p], qq[l]);
      xx[l] = std::fma(b[p], b[p], xx[l]);
    }
  }
  auto total = [](double const(&v)[8])
  { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); };
  switch (m)
  {
  case Metric::L2:
    return std::sqrt(total(s));
  case Metric::InnerProduct:
    return total(s);
  case Metric::Cosine:
    return total(s) / (std::sqrt(total(qq)) * std::sqrt(total(xx)));
  default:
    return total(s);
  }
}
} // namespace

// The rule that makes distances identical on every backend and machine: this suite also runs
// compiled for plain x86-64 (fastknn_tests_generic, no FMA instruction) and, on a GPU build, on
// the device, so each build is held to the same bits.
TEMPLATE_LIST_TEST_CASE("distances follow the specified exact score bit for bit",
                        "[search][double][fma]", EnabledSpaces)
{
  auto const metric =
      GENERATE(Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  std::size_t const n = 300, nq = 7, d = 43; // 43 = 5 x 8 + a tail of 3
  auto x = random_matrix<double>(n, d, 91, -3.0, 3.0);
  auto q = random_matrix<double>(nq, d, 92, -3.0, 3.0);
  SearchOptions opt;
  opt.metric = metric;
  int const k = 20;
  auto r = run_search<TestType>(x, n, q, nq, d, k, opt);
  std::size_t mismatched = 0;
  for (std::size_t i = 0; i < nq; ++i)
    for (int j = 0; j < k; ++j)
    {
      double const want = specified_score(metric, &q[i * d], &x[std::size_t(r.idx(i, j)) * d], d);
      if (r.val(i, j) != want)
        ++mismatched;
    }
  INFO("metric " << metric_name(metric));
  CHECK(mismatched == 0);
}

TEMPLATE_LIST_TEST_CASE("the comparison itself fails on a one-ulp value or a swapped tie",
                        "[search][reference]", EnabledSpaces)
{
  // A check that cannot fail checks nothing: the exact answer passes, and each of the smallest
  // possible errors is caught (the old relative 1e-5 band let all three through).
  std::size_t const n = 600, nq = 5, d = 1; // D = 1: exact ties between different rows
  int const k = 8;
  auto const x = integer_matrix<float>(n, d, 141, 0, 40);
  auto const q = integer_matrix<float>(nq, d, 142, 0, 40);
  SearchOptions opt;
  auto const good = run_search<TestType>(x, n, q, nq, d, k, opt);
  auto const c = compare_with_reference(good, x, n, q, d, opt);
  CHECK(c.checked == nq * k);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
  // One value one ulp off.
  auto ulp = good;
  ulp.value[3] = std::nextafter(ulp.value[3], std::numeric_limits<float>::infinity());
  CHECK(compare_with_reference(ulp, x, n, q, d, opt).bad_value == 1);
  // Two tied rows (same value) in the wrong index order.
  auto swapped = good;
  bool found_tie = false;
  for (std::size_t j = 0; j + 1 < std::size_t(k) && !found_tie; ++j)
    if (swapped.value[j] == swapped.value[j + 1])
    {
      std::swap(swapped.index[j], swapped.index[j + 1]);
      found_tie = true;
    }
  REQUIRE(found_tie); // 600 rows on 41 values: the first query's top 8 hold ties
  auto const s = compare_with_reference(swapped, x, n, q, d, opt);
  CHECK(s.wrong_index == 2);
  CHECK(s.bad_value == 0);
  // A double result one ulp off.
  auto const xd = random_matrix<double>(n, 7, 143);
  auto const qd = random_matrix<double>(nq, 7, 144);
  auto gd = run_search<TestType>(xd, n, qd, nq, 7, k, opt);
  CHECK(compare_with_reference(gd, xd, n, qd, 7, opt).bad_value == 0);
  gd.value[0] = std::nextafter(gd.value[0], 0.0);
  CHECK(compare_with_reference(gd, xd, n, qd, 7, opt).bad_value == 1);
}
