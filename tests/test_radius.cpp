// fastknn::radius_search: every row within the radius, in the specified order, against the
// independent reference (reference.hpp's spec_rank: the specified exact score, ties by index),
// bit for bit, with radii placed exactly on a row's value (the boundary is inside).

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

template <class T>
using HostRows = HostRadiusNeighbors<T>;

template <class MS, class T>
HostRows<T> rows_to_host(RadiusNeighbors<MS, T> const &found)
{
  auto ho = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
  auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  return {{ho.data(), ho.data() + ho.size()},
          {hi.data(), hi.data() + hi.size()},
          {hv.data(), hv.data() + hv.size()}};
}

bool inside(Metric m, double v, double radius)
{
  return is_similarity(m) ? v >= radius : v <= radius;
}

/// Checks `got` against the reference: for each query, the prefix of its specified ranking
/// within the radius, same indices and values bit for bit. Returns the pairs expected.
template <class T>
std::size_t check_rows(HostRows<T> const &got, std::vector<T> const &x, std::size_t n,
                       std::vector<T> const &q, std::size_t nq, std::size_t d, Metric m,
                       double radius, bool self)
{
  REQUIRE(got.offsets.size() == nq + 1);
  REQUIRE(got.offsets[0] == 0);
  REQUIRE(got.offsets[nq] == got.indices.size());
  REQUIRE(got.distances.size() == got.indices.size());
  std::size_t expected = 0, wrong = 0;
  for (std::size_t i = 0; i < nq; ++i)
  {
    Ranked const r = spec_rank<T>(x.data(), n, d, q.data() + i * d, m, self ? i : std::size_t(-1));
    std::size_t c = 0;
    while (c < r.index.size() && inside(m, r.value[c], radius))
      ++c;
    expected += c;
    std::size_t const o = got.offsets[i], gc = got.offsets[i + 1] - o;
    if (gc != c)
    {
      ++wrong;
      UNSCOPED_INFO("query " << i << ": " << gc << " rows, expected " << c);
      continue;
    }
    for (std::size_t j = 0; j < c; ++j)
      if (got.indices[o + j] != r.index[j] || double(got.distances[o + j]) != r.value[j])
      {
        ++wrong;
        UNSCOPED_INFO("query " << i << " position " << j << ": row " << got.indices[o + j]
                               << " value " << got.distances[o + j] << ", expected row "
                               << r.index[j] << " value " << r.value[j]);
        break;
      }
  }
  CHECK(wrong == 0);
  return expected;
}

/// A radius on the value of the m-th ranked row of query 0 (so that rows on the boundary are
/// inside), or through everything.
template <class T>
double radius_at(std::vector<T> const &x, std::size_t n, std::vector<T> const &q, std::size_t d,
                 Metric m, std::size_t rank)
{
  Ranked const r = spec_rank<T>(x.data(), n, d, q.data(), m);
  return r.value[std::min(rank, r.value.size() - 1)];
}

} // namespace

TEMPLATE_LIST_TEST_CASE("radius_search: every metric, rows on the boundary, growing rounds",
                        "[radius]", EnabledSpaces)
{
  using Space = TestType;
  Space const space;
  auto const metric =
      GENERATE(Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine);
  auto const self = GENERATE(false, true);
  auto const initial_k = GENERATE(1, 3, 32);
  // With initial_k 3, the database is sampled first (every 16th row estimates each query's
  // first k); otherwise not.
  std::size_t const sample_from = initial_k == 3 ? 1 : ~std::size_t(0);
  std::size_t const n = 157, d = 11;
  // Integer values: many rows tie, and ties cross the radius.
  auto const x = integer_matrix<float>(n, d, 7, 1, 4);
  auto const q = self ? x : integer_matrix<float>(23, d, 8, 0, 5);
  std::size_t const nq = q.size() / d;
  for (std::size_t rank : {std::size_t(0), std::size_t(5), std::size_t(40), n})
  {
    double const radius = radius_at(x, n, q, d, metric, rank);
    INFO("metric " << metric_name(metric) << " self " << self << " initial_k " << initial_k
                   << " sample_from " << sample_from << " radius " << radius);
    RadiusOptions opt;
    opt.metric = metric;
    opt.exclude_self = self;
    opt.initial_k = initial_k;
    opt.sample_from = sample_from;
    SearchStats stats;
    opt.stats = &stats;
    auto const xd = to_device(space, x, n, d);
    auto const qd = to_device(space, q, nq, d);
    Index<Space, std::remove_const_t<decltype(xd)>> const index(space, xd, metric);
    auto const got = rows_to_host(radius_search(space, index, qd, radius, opt));
    std::size_t const pairs = check_rows(got, x, n, q, nq, d, metric, radius, self);
    CHECK(pairs == got.indices.size());
    CHECK(stats.query_tiles > 0);
    // The free function (an Index built and searched once) gives the same rows.
    auto const direct = rows_to_host(radius_search(space, xd, qd, radius, opt));
    CHECK(direct.offsets == got.offsets);
    CHECK(direct.indices == got.indices);
  }
}

TEMPLATE_LIST_TEST_CASE("radius_search: double values, small workspace batches, infinite radius",
                        "[radius]", EnabledSpaces)
{
  using Space = TestType;
  Space const space;
  std::size_t const n = 300, nq = 400, d = 9;
  auto const x = random_matrix<double>(n, d, 11, -1, 1);
  auto const q = random_matrix<double>(nq, d, 12, -1, 1);
  auto const xd = to_device(space, x, n, d);
  auto const qd = to_device(space, q, nq, d);
  auto const sample_from = GENERATE(~std::size_t(0), std::size_t(1));
  for (double radius : {-1.0, 0.0, radius_at(x, n, q, d, Metric::L2, 17), 2.5,
                        std::numeric_limits<double>::infinity()})
  {
    INFO("radius " << radius << " sample_from " << sample_from);
    RadiusOptions opt;
    opt.metric = Metric::L2;
    opt.initial_k = 2;
    opt.sample_from = sample_from;
    opt.workspace_bytes = std::size_t(1) << 20; // a few queries per batch in the last rounds
    auto const got = rows_to_host(radius_search(space, xd, qd, radius, opt));
    std::size_t const pairs = check_rows(got, x, n, q, nq, d, Metric::L2, radius, false);
    if (std::isinf(radius))
      CHECK(pairs == n * nq);
    if (radius < 0)
      CHECK(pairs == 0);
  }
}

TEMPLATE_LIST_TEST_CASE("radius_search: host overload equals the View one", "[radius]",
                        EnabledSpaces)
{
  using Space = TestType;
  Space const space;
  std::size_t const n = 64, nq = 10, d = 5;
  auto const x = integer_matrix<float>(n, d, 21, 0, 3);
  auto const q = integer_matrix<float>(nq, d, 22, 0, 3);
  RadiusOptions opt;
  opt.metric = Metric::L1;
  auto const host =
      radius_search(space, std::span<float const>(x), std::span<float const>(q), d, 3.0, opt);
  check_rows(host, x, n, q, nq, d, Metric::L1, 3.0, false);
}

TEMPLATE_LIST_TEST_CASE("radius_search: bad input and stops leave no result", "[radius][errors]",
                        EnabledSpaces)
{
  using Space = TestType;
  Space const space;
  std::size_t const n = 50, d = 4;
  auto const x = random_matrix<float>(n, d, 31);
  auto const xd = to_device(space, x, n, d);
  auto const qd = to_device(space, x, n, d);
  Index<Space, std::remove_const_t<decltype(xd)>> const index(space, xd, Metric::L2);
  RadiusOptions opt;
  opt.metric = Metric::L2;
  CHECK_THROWS_WITH(radius_search(space, index, qd, std::nan(""), opt),
                    ContainsSubstring("radius is NaN"));
  opt.initial_k = 0;
  CHECK_THROWS_WITH(radius_search(space, index, qd, 1.0, opt), ContainsSubstring("initial_k"));
  opt.initial_k = 32;
  RadiusOptions other = opt;
  other.metric = Metric::L1;
  CHECK_THROWS_WITH(radius_search(space, index, qd, 1.0, other),
                    ContainsSubstring("build an Index with that metric"));
  auto const few = Kokkos::subview(qd, Kokkos::make_pair(0, 3), Kokkos::ALL);
  RadiusOptions self = opt;
  self.exclude_self = true;
  CHECK_THROWS_WITH(radius_search(space, index, few, 1.0, self), ContainsSubstring("Q == N"));
  auto const none = Kokkos::subview(qd, Kokkos::make_pair(0, 0), Kokkos::ALL);
  CHECK_THROWS_WITH(radius_search(space, index, none, 1.0, opt), ContainsSubstring("empty"));
  RadiusOptions capped = opt;
  capped.max_results = 10;
  CHECK_THROWS_WITH(radius_search(space, index, qd, 100.0, capped),
                    ContainsSubstring("max_results = 10"));
  capped.max_results = n * n; // exactly every pair: allowed
  CHECK(rows_to_host(radius_search(space, index, qd, 100.0, capped)).indices.size() == n * n);
  RadiusOptions stopped = opt;
  int calls = 0;
  stopped.progress = [&](double) { return ++calls < 1; };
  CHECK_THROWS_AS(radius_search(space, index, qd, 100.0, stopped), Cancelled);
  // Stopped, and refused, while the sample is searched (its pairs are a subset of the answer's).
  stopped.sample_from = 1;
  calls = 0;
  CHECK_THROWS_AS(radius_search(space, index, qd, 100.0, stopped), Cancelled);
  CHECK(calls == 1);
  capped.sample_from = 1;
  capped.max_results = 10;
  CHECK_THROWS_WITH(radius_search(space, index, qd, 100.0, capped),
                    ContainsSubstring("max_results = 10"));
  // Dimension mismatch: the k search's message.
  auto const wide = to_device(space, random_matrix<float>(3, d + 1, 32), 3, d + 1);
  CHECK_THROWS_AS(radius_search(space, index, wide, 1.0, opt), Error);
}
