// Adversarial inputs and determinism: each case either gives the right answer or a clear error.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <Kokkos_Random.hpp>

#include <sys/resource.h>

#include <cmath>
#include <limits>
#include <random>

using namespace fastknn;
using namespace fastknn::test;

TEMPLATE_LIST_TEST_CASE("denormal values give the right answer", "[reliability]", EnabledSpaces)
{
  std::size_t const n = 300, nq = 7, d = 8;
  auto x = random_matrix<float>(n, d, 41, -1.0, 1.0);
  auto q = random_matrix<float>(nq, d, 42, -1.0, 1.0);
  for (auto &v : x)
    v *= 1e-39f; // subnormal floats
  for (auto &v : q)
    v *= 1e-39f;
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L1, Metric::L2);
  auto r = run_search<TestType>(x, n, q, nq, d, 5, opt);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("cosine: a row whose norm is subnormal is scored, not lost",
                        "[reliability][underflow]", EnabledSpaces)
{
  // Row 123 points the first query's way, scaled to 1e-39 (subnormal floats): its norm is below
  // 1 / FLT_MAX, so 1/|x| does not fit a float. It is the best match and must come first.
  std::size_t const n = 300, d = 8;
  auto x = random_matrix<float>(n, d, 51, -1.0, 1.0);
  auto q = random_matrix<float>(2, d, 52, -1.0, 1.0);
  for (std::size_t p = 0; p < d; ++p)
    x[123 * d + p] = q[p] * 1e-39f;
  SearchOptions opt;
  opt.metric = Metric::Cosine;
  auto r = run_search<TestType>(x, n, q, 2, d, 3, opt);
  CHECK(r.idx(0, 0) == 123);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("values whose products underflow are ranked exactly, every metric",
                        "[reliability][underflow]", EnabledSpaces)
{
  std::size_t const n = 400, nq = 9, d = 24;
  SearchOptions opt;
  opt.metric =
      GENERATE(Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  auto x = random_matrix<float>(n, d, 61, -1.0, 1.0);
  auto q = random_matrix<float>(nq, d, 62, -1.0, 1.0);
  auto const family = GENERATE(as<std::string>{}, "partial", "detail");
  INFO(family);
  if (family == "partial")
  {
    // ~1e-20: normal floats whose squares and products (~1e-40) are subnormal.
    for (auto &v : x)
      v *= 1e-20f;
    for (auto &v : q)
      v *= 1e-20f;
  }
  else
  {
    // O(1) coordinates shared by every row and query, detail of ~1e-25 in the others: the
    // ranking is decided by the detail alone, whose squares (~1e-50) underflow to zero.
    for (std::size_t i = 0; i < n * d; ++i)
      x[i] = i % d < d / 2 ? float(1 + i % d) : x[i] * 1e-25f;
    for (std::size_t i = 0; i < nq * d; ++i)
      q[i] = i % d < d / 2 ? float(1 + i % d) : q[i] * 1e-25f;
  }
  auto r = run_search<TestType>(x, n, q, nq, d, 5, opt);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("near-equidistant points at 1e-21: products underflow, the answer does not",
                        "[reliability][underflow]", EnabledSpaces)
{
  // Row i at distance 1e-21 (1 + 1e-4 i) from the query: the true order is the index order.
  // The float products (~1e-42) are subnormal, so each carries an absolute error (~1e-45) that
  // no relative bound covers, larger than the gaps the proof relies on.
  std::size_t const n = 400, d = 16;
  std::vector<double> xd(n * d);
  std::mt19937_64 gen(71);
  std::normal_distribution<double> g;
  for (std::size_t i = 0; i < n; ++i)
  {
    double norm = 0;
    for (std::size_t p = 0; p < d; ++p)
      norm += (xd[i * d + p] = g(gen)) * xd[i * d + p];
    double const radius = 1e-21 * (1.0 + 1e-4 * double(i));
    for (std::size_t p = 0; p < d; ++p)
      xd[i * d + p] *= radius / std::sqrt(norm);
  }
  std::vector<float> x(xd.begin(), xd.end()), q(d, 0.0f);
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::L2);
  auto r = run_search<TestType>(x, n, q, 1, d, 5, opt);
  for (int j = 0; j < 5; ++j)
    CHECK(r.idx(0, j) == j);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("values at the edge of the overflow refusal: exact below, refused above",
                        "[reliability][limits]", EnabledSpaces)
{
  auto const d = GENERATE(std::size_t(1), std::size_t(8), std::size_t(100000));
  std::size_t const n = d > 1000 ? 40 : 300, nq = 3;
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  bool const mixed = GENERATE(false, true); // every other value tiny (1e-30) instead of huge
  INFO("d = " << d << ", mixed " << mixed);
  // The refusal threshold of the float path (search.hpp): sqrt(FLT_MAX / 64 D) for the metrics
  // that take products, FLT_MAX / 4 D for L1.
  double const t_max = double(std::numeric_limits<float>::max());
  double const limit =
      opt.metric == Metric::L1 ? t_max / (4.0 * double(d)) : std::sqrt(t_max / (64.0 * double(d)));
  auto x = random_matrix<float>(n, d, 81, -1.0, 1.0);
  auto q = random_matrix<float>(nq, d, 82, -1.0, 1.0);
  auto const scale = [&](std::vector<float> &v)
  {
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = float(double(v[i]) * (mixed && i % 2 == 1 ? 1e-30 : limit * 0.999));
  };
  scale(x);
  scale(q);
  auto r = run_search<TestType>(x, n, q, nq, d, 5, opt);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
  x[n / 2 * d] = float(limit * 1.001);
  CHECK_THROWS_WITH(run_search<TestType>(x, n, q, nq, d, 5, opt),
                    Catch::Matchers::ContainsSubstring("overflows"));
}

TEMPLATE_LIST_TEST_CASE("all-identical points return the lowest indices", "[reliability]",
                        EnabledSpaces)
{
  std::size_t const n = 120, d = 6;
  std::vector<float> x(n * d, 3.25f), q(2 * d, 3.25f);
  q[d] = 4.0f; // second query is off the point
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::Cosine, Metric::InnerProduct);
  auto r = run_search<TestType>(x, n, q, 2, d, 10, opt);
  for (std::size_t i = 0; i < 2; ++i)
    for (int j = 0; j < 10; ++j)
    {
      CHECK(r.idx(i, j) == j);
      CHECK(r.val(i, j) == r.val(i, 0));
    }
}

TEMPLATE_LIST_TEST_CASE("very high dimension (D = 100000)", "[reliability]", EnabledSpaces)
{
  std::size_t const n = 40, nq = 3, d = 100000;
  auto x = random_matrix<float>(n, d, 5);
  auto q = random_matrix<float>(nq, d, 6);
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2, Metric::L1, Metric::Cosine);
  auto r = run_search<TestType>(x, n, q, nq, d, 5, opt);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("large values are exact in double and refused in float", "[reliability]",
                        EnabledSpaces)
{
  std::size_t const n = 200, nq = 5, d = 4;
  auto xd = random_matrix<double>(n, d, 7, -1e30, 1e30);
  auto qd = random_matrix<double>(nq, d, 8, -1e30, 1e30);
  SearchOptions opt;
  auto r = run_search<TestType>(xd, n, qd, nq, d, 3, opt);
  auto c = compare_with_reference(r, xd, n, qd, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
  std::vector<float> xf(xd.begin(), xd.end()), qf(qd.begin(), qd.end());
  REQUIRE_THROWS_AS(run_search<TestType>(xf, n, qf, nq, d, 3, opt), fastknn::Error);
}

TEMPLATE_LIST_TEST_CASE("repeated runs are bit-identical", "[reliability][determinism]",
                        EnabledSpaces)
{
  std::size_t const n = 3001, nq = 257, d = 50;
  auto x = random_matrix<float>(n, d, 9);
  auto q = random_matrix<float>(nq, d, 10);
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2, Metric::L1, Metric::Cosine);
  auto a = run_search<TestType>(x, n, q, nq, d, 16, opt);
  auto b = run_search<TestType>(x, n, q, nq, d, 16, opt);
  opt.workspace_bytes = 150 * 1024;
  auto c = run_search<TestType>(x, n, q, nq, d, 16, opt);
  CHECK(a.index == b.index);
  CHECK(a.value == b.value);
  CHECK(a.index == c.index);
  CHECK(a.value == c.value);
}

namespace
{
long peak_rss_bytes()
{
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss * 1024L;
}
} // namespace

TEMPLATE_LIST_TEST_CASE("N = 5,000,000 x D = 16 within the default budget, no Q x N buffer",
                        "[large]", EnabledSpaces)
{
  std::size_t const n = 5'000'000, nq = 200, d = 16;
  using MS = typename TestType::memory_space;
  TestType space;
  Kokkos::View<float **, Kokkos::LayoutRight, MS> x("x", n, d), q("q", nq, d);
  Kokkos::Random_XorShift64_Pool<TestType> pool(12345);
  Kokkos::fill_random(space, x, pool, 0.0f, 1.0f);
  Kokkos::fill_random(space, q, pool, 0.0f, 1.0f);
  space.fence();
  long const before = peak_rss_bytes();
  SearchOptions opt;
  SearchStats stats;
  opt.stats = &stats;
  auto r = fastknn::search(space, x, q, 10, opt);
  space.fence();
  long const grown = peak_rss_bytes() - before;
  std::size_t const qn_matrix = n * nq * sizeof(float);
  INFO("peak RSS grew by " << grown << " bytes; workspace " << stats.workspace_bytes
                           << "; a Q x N matrix would be " << qn_matrix);
  CHECK(stats.workspace_bytes <= opt.workspace_bytes);
  CHECK(std::size_t(grown) < stats.workspace_bytes + (std::size_t(64) << 20));
  CHECK(std::size_t(grown) < qn_matrix);
  // Spot-check a few queries against the reference.
  auto hx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, x);
  auto hq = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, q);
  auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, r.indices);
  for (std::size_t i = 0; i < 3; ++i)
  {
    double best = std::numeric_limits<double>::infinity();
    index_type best_idx = -1;
    for (std::size_t j = 0; j < n; ++j)
    {
      double s = 0;
      for (std::size_t p = 0; p < d; ++p)
        s += (double(hx(j, p)) - hq(i, p)) * (double(hx(j, p)) - hq(i, p));
      if (s < best)
      {
        best = s;
        best_idx = index_type(j);
      }
    }
    CHECK(hi(i, 0) == best_idx);
  }
}

TEMPLATE_LIST_TEST_CASE("N x D > 2^31: 22,000,000 x 100 byte-valued floats, exact", "[large]",
                        EnabledSpaces)
{
  // 2.2 x 10^9 coordinates (8.8 GB as float): every offset into the database passes 2^31, so an
  // int somewhere in the indexing would show here. Byte values take the exact 8-bit path.
  std::size_t const n = 22'000'000, d = 100, nq = 2;
  int const k = 5;
  using MS = typename TestType::memory_space;
  TestType space;
  Kokkos::View<float **, Kokkos::LayoutRight, MS> x(
      Kokkos::view_alloc(Kokkos::WithoutInitializing, "x"), n, d);
  Kokkos::parallel_for(
      "fill", Kokkos::RangePolicy<TestType>(space, 0, n), KOKKOS_LAMBDA(std::size_t i) {
        std::uint64_t h = 0x9e3779b97f4a7c15ull * (i + 1);
        for (std::size_t p = 0; p < d; ++p)
        {
          h ^= h >> 29;
          h *= 0xbf58476d1ce4e5b9ull;
          h ^= h >> 32;
          x(i, p) = float(h & 255u);
        }
      });
  // Queries: two database rows with a few coordinates moved, so the nearest is known to exist.
  Kokkos::View<float **, Kokkos::LayoutRight, MS> q("q", nq, d);
  auto hx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, x);
  auto hq = Kokkos::create_mirror_view(q);
  std::size_t const rows[nq] = {21'999'999, 12'345'678};
  for (std::size_t i = 0; i < nq; ++i)
    for (std::size_t p = 0; p < d; ++p)
      hq(i, p) = hx(rows[i], p) + float(p % 7 == 0 ? 1 : 0);
  Kokkos::deep_copy(q, hq);
  SearchOptions opt; // L2Squared
  auto const found = fastknn::search(space, x, q, k, opt);
  auto const hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto const hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  for (std::size_t i = 0; i < nq; ++i)
  {
    Ranked const ref = spec_rank<float>(hx.data(), n, d, &hq(i, 0), opt.metric);
    for (int j = 0; j < k; ++j)
    {
      INFO("query " << i << " rank " << j);
      CHECK(hi(i, j) == ref.index[std::size_t(j)]);
      CHECK(double(hv(i, j)) == ref.value[std::size_t(j)]);
    }
    CHECK(hi(i, 0) == index_type(rows[i]));
  }
}
