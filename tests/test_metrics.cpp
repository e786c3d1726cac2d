// The exact-only metrics (Chebyshev, Minkowski with any p > 0, Canberra, Bray-Curtis, Hamming,
// the boolean metrics): every pair scored by the
// specified exact score, checked against the independent reference bit for bit (spec.hpp's
// spec_rank, ties by index) and against the long double truth; the specification's power
// function against powl; the errors that refuse what cannot be answered.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace fastknn;
using namespace fastknn::test;
using Catch::Matchers::ContainsSubstring;

namespace
{

template <class Space, class T>
void check_metric(std::vector<T> const &x, std::size_t n, std::vector<T> const &q, std::size_t nq,
                  std::size_t d, int k, Metric metric, double p, bool self = false)
{
  SearchOptions opt;
  opt.metric = metric;
  opt.minkowski_p = p;
  opt.exclude_self = self;
  auto const r = run_search<Space>(x, n, q, nq, d, k, opt);
  auto const c = compare_with_reference(r, x, n, q, d, opt);
  INFO("N=" << n << " Q=" << nq << " D=" << d << " k=" << k << " metric " << metric_name(metric)
            << " p=" << p << " " << c.first_problem);
  CHECK(c.checked == nq * std::size_t(k));
  CHECK(c.bad_value == 0);
  CHECK(c.wrong_index == 0);
}

} // namespace

TEST_CASE("portable_pow: within 1e-14 (1 + |p log2 x|) of powl, and exact where it must be",
          "[metrics]")
{
  double worst = 0;
  for (double p : {0.1, 1.0 / 3, 0.5, 1.5, 2.5, 3.0, 7.25, 31.5, 100.0})
    for (int e = -300; e <= 300; e += 7)
      for (double m : {1.0, 1.0000001, 1.25, 1.4142, 1.4143, 1.999999, 0.7071, 0.75})
      {
        double const x = std::ldexp(m, e);
        long double const want = powl((long double)x, (long double)p);
        if (!(want < 1e300L && want > 1e-300L))
          continue;
        double const got = detail::portable_pow(x, p);
        double const rel = double(fabsl((long double)got - want) / want);
        double const allowed = 1e-14 * (1 + std::fabs(p * std::log2(x)));
        worst = std::max(worst, rel / allowed);
        INFO("x=" << x << " p=" << p << " relative error " << rel);
        REQUIRE(rel <= allowed);
      }
  CHECK(worst > 0); // the grid was measured
  CHECK(detail::portable_pow(0.0, 2.5) == 0.0);
  CHECK(std::isinf(detail::portable_pow(1e300, 3.5)));
  CHECK(detail::portable_pow(1e-300, 3.5) == 0.0);
  // Powers of two with a whole result are exact (n + r with r = 0).
  CHECK(std::fabs(detail::portable_pow(8.0, 1.0 / 3) - 2.0) <= 4e-16);
  CHECK(detail::portable_pow(4.0, 2.5) == 32.0);
}

TEMPLATE_LIST_TEST_CASE("Chebyshev and Minkowski match the specified ranking", "[metrics]",
                        EnabledSpaces)
{
  auto const metric_p =
      GENERATE(std::pair{Metric::Chebyshev, 2.0}, std::pair{Metric::Minkowski, 3.0},
               std::pair{Metric::Minkowski, 1.5}, std::pair{Metric::Minkowski, 0.5},
               std::pair{Metric::Minkowski, 1.0}, std::pair{Metric::Minkowski, 2.0},
               std::pair{Metric::Canberra, 2.0}, std::pair{Metric::BrayCurtis, 2.0},
               std::pair{Metric::Hamming, 2.0}, std::pair{Metric::Jaccard, 2.0},
               std::pair{Metric::Dice, 2.0}, std::pair{Metric::Kulsinski, 2.0},
               std::pair{Metric::Matching, 2.0}, std::pair{Metric::RogersTanimoto, 2.0},
               std::pair{Metric::RussellRao, 2.0}, std::pair{Metric::SokalMichener, 2.0},
               std::pair{Metric::SokalSneath, 2.0}, std::pair{Metric::Yule, 2.0});
  auto const [metric, p] = metric_p;
  SECTION("random rows, several shapes and k")
  {
    for (auto [n, nq, d] :
         {std::tuple{1237, 53, 1}, std::tuple{611, 29, 784}, std::tuple{433, 17, 19}})
    {
      auto const x = random_matrix<float>(std::size_t(n), std::size_t(d), 11 + unsigned(d), -1, 1);
      auto const q = random_matrix<float>(std::size_t(nq), std::size_t(d), 12 + unsigned(d), -1, 1);
      for (int k : {1, 10, 100})
        check_metric<TestType>(x, std::size_t(n), q, std::size_t(nq), std::size_t(d), k, metric, p);
    }
  }
  SECTION("integer rows: many exact ties, in index order; k = N; exclude_self")
  {
    std::size_t const n = 157, d = 6;
    // Mostly zeros (false for the boolean metrics), and negative values (Canberra's and
    // Bray-Curtis' denominators cancel); no all-zero database row (Dice and Sokal-Sneath are
    // 0 / 0 between two of them), an all-zero query.
    auto x = integer_matrix<float>(n, d, 5, -1, 2);
    for (std::size_t i = 0; i < n; ++i)
      x[i * d + i % d] = float(1 + int(i % 2));
    auto q = integer_matrix<float>(21, d, 6, -1, 2);
    for (std::size_t j = 0; j < d; ++j)
      q[j] = 0;
    check_metric<TestType>(x, n, q, 21, d, 7, metric, p);
    check_metric<TestType>(x, n, q, 21, d, int(n), metric, p);
    check_metric<TestType>(x, n, x, n, d, 9, metric, p, true);
  }
  SECTION("double rows")
  {
    auto const x = random_matrix<double>(300, 33, 21, -3, 3);
    auto const q = random_matrix<double>(13, 33, 22, -3, 3);
    check_metric<TestType>(x, 300, q, 13, 33, 25, metric, p);
  }
}

TEMPLATE_LIST_TEST_CASE("exact-only metrics: radius search, progress and stopping", "[metrics]",
                        EnabledSpaces)
{
  using Space = TestType;
  Space const space;
  std::size_t const n = 200, d = 5;
  auto const x = integer_matrix<float>(n, d, 9, 0, 6);
  auto const q = integer_matrix<float>(9, d, 10, 0, 6);
  auto xd = to_device(space, x, n, d);
  auto qd = to_device(space, q, 9, d);
  for (auto [metric, p] : {std::pair{Metric::Chebyshev, 2.0}, std::pair{Metric::Minkowski, 3.0}})
  {
    RadiusOptions opt;
    opt.metric = metric;
    opt.minkowski_p = p;
    opt.initial_k = 2; // rounds with growing k
    double const radius = 3;
    auto const found = radius_search(space, xd, qd, radius, opt);
    auto ho = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
    auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
    auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
    std::size_t wrong = 0, pairs = 0;
    for (std::size_t i = 0; i < 9; ++i)
    {
      Ranked const r =
          spec_rank<float>(x.data(), n, d, q.data() + i * d, metric, std::size_t(-1), p);
      std::size_t c = 0;
      while (c < r.index.size() && r.value[c] <= radius)
        ++c;
      pairs += c;
      if (std::size_t(ho(i + 1) - ho(i)) != c)
      {
        ++wrong;
        continue;
      }
      for (std::size_t j = 0; j < c; ++j)
        wrong += hi(ho(i) + j) != r.index[j] || double(hv(ho(i) + j)) != r.value[j] ? 1 : 0;
    }
    INFO(metric_name(metric));
    CHECK(pairs > 9);     // rows inside and,
    CHECK(pairs < 9 * n); // rows outside
    CHECK(wrong == 0);
  }
  SearchOptions opt;
  opt.metric = Metric::Minkowski;
  opt.minkowski_p = 1.5;
  std::vector<double> seen;
  opt.progress = [&](double f)
  {
    seen.push_back(f);
    return false;
  };
  CHECK_THROWS_AS(fastknn::search(space, xd, qd, 3, opt), Cancelled);
  CHECK(seen.size() == 1);
}

TEMPLATE_LIST_TEST_CASE("exact-only metrics: bad p and overflowing powers are refused",
                        "[metrics][errors]", EnabledSpaces)
{
  using Space = TestType;
  Space const space;
  auto const x = random_matrix<double>(50, 4, 3, -1, 1);
  auto xd = to_device(space, x, 50, 4);
  SearchOptions opt;
  opt.metric = Metric::Minkowski;
  for (double p : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN()})
  {
    opt.minkowski_p = p;
    INFO("p = " << p);
    CHECK_THROWS_WITH(fastknn::search(space, xd, xd, 3, opt),
                      ContainsSubstring("is not a finite number > 0"));
  }
  auto big = x;
  for (auto &v : big)
    v *= 1e30;
  auto bd = to_device(space, big, 50, 4);
  opt.minkowski_p = 12;
  CHECK_THROWS_WITH(fastknn::search(space, bd, bd, 3, opt), ContainsSubstring("overflow double"));
  opt.minkowski_p = 9; // (2e30)^9 * 4 < 2^1000: answered
  CHECK_NOTHROW(fastknn::search(space, bd, bd, 3, opt));
  SearchOptions dice;
  dice.metric = Metric::Dice;
  auto zeros = x;
  zeros[0] = zeros[1] = zeros[2] = zeros[3] = 0;
  auto zd = to_device(space, zeros, 50, 4);
  CHECK_THROWS_WITH(fastknn::search(space, zd, zd, 3, dice),
                    ContainsSubstring("undefined (0 / 0) between two all-zero rows"));
  CHECK_NOTHROW(fastknn::search(space, xd, zd, 3, dice)); // zero queries, no zero row: defined
  for (auto m : {Metric::Canberra, Metric::BrayCurtis, Metric::Hamming, Metric::Jaccard,
                 Metric::Dice, Metric::Kulsinski, Metric::Matching, Metric::RogersTanimoto,
                 Metric::RussellRao, Metric::SokalMichener, Metric::SokalSneath, Metric::Yule})
    CHECK(parse_metric(metric_name(m)) == m);
  CHECK(parse_metric("chebyshev") == Metric::Chebyshev);
  CHECK(parse_metric("minkowski") == Metric::Minkowski);
  CHECK(metric_name(Metric::Minkowski) == "minkowski");
}
