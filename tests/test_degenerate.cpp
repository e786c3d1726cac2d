// Degenerate shapes: one point, k = N, D = 1, one query, sizes off every tile boundary.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <catch2/catch_approx.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

using namespace fastknn;
using namespace fastknn::test;

TEMPLATE_LIST_TEST_CASE("one database point", "[degenerate]", EnabledSpaces)
{
  std::vector<float> x{1.0f, 2.0f, 3.0f};
  std::vector<float> q{1.0f, 2.0f, 5.0f, 0.0f, 0.0f, 0.0f};
  auto r = run_search<TestType>(x, 1, q, 2, 3, 1);
  CHECK(r.idx(0, 0) == 0);
  CHECK(r.idx(1, 0) == 0);
  CHECK(r.val(0, 0) == 4.0f);
  CHECK(r.val(1, 0) == 14.0f);
}

TEMPLATE_LIST_TEST_CASE("k = N with duplicates and one query", "[degenerate]", EnabledSpaces)
{
  // 1-D points 3, 1, 3, 2, 1: from query 2 the distances are 1, 1, 1, 0, 1.
  std::vector<float> x{3, 1, 3, 2, 1};
  std::vector<float> q{2};
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::L2, Metric::L1);
  auto r = run_search<TestType>(x, 5, q, 1, 1, 5, opt);
  std::vector<index_type> const expected{3, 0, 1, 2, 4};
  CHECK(r.index == expected);
  std::vector<float> const values{0, 1, 1, 1, 1};
  CHECK(r.value == values);
}

TEMPLATE_LIST_TEST_CASE("inner product and cosine report similarities best first", "[degenerate]",
                        EnabledSpaces)
{
  std::vector<float> x{1, 0, 0, 1, 3, 3, -1, 0};
  std::vector<float> q{2, 1};
  SearchOptions opt;
  opt.metric = Metric::InnerProduct;
  auto ip = run_search<TestType>(x, 4, q, 1, 2, 4, opt);
  CHECK(ip.index == std::vector<index_type>{2, 0, 1, 3});
  CHECK(ip.value == std::vector<float>{9, 2, 1, -2});
  opt.metric = Metric::Cosine;
  auto cs = run_search<TestType>(x, 4, q, 1, 2, 4, opt);
  CHECK(cs.index == std::vector<index_type>{2, 0, 1, 3});
  CHECK(cs.val(0, 0) == Catch::Approx(9.0 / (std::sqrt(18.0) * std::sqrt(5.0))));
  CHECK(cs.val(0, 3) == Catch::Approx(-2.0 / std::sqrt(5.0)));
}

TEMPLATE_LIST_TEST_CASE("sizes that are not multiples of any tile", "[degenerate]", EnabledSpaces)
{
  auto const n =
      GENERATE(std::size_t(1), std::size_t(2), std::size_t(13), std::size_t(33), std::size_t(97));
  auto const nq = GENERATE(std::size_t(1), std::size_t(5), std::size_t(13), std::size_t(25));
  std::size_t const d = 7;
  auto x = random_matrix<float>(n, d, unsigned(n));
  auto q = random_matrix<float>(nq, d, unsigned(nq + 100));
  int const k = int(std::min<std::size_t>(n, 3));
  SearchOptions opt;
  auto r = run_search<TestType>(x, n, q, nq, d, k, opt);
  auto c = compare_with_reference(r, x, n, q, d, opt);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}
