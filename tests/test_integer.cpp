// The exact 8-bit integer pre-selection (L2 metrics on integer data spanning <= 256 values):
// its micro-kernel against plain integer arithmetic, and whole searches against the float64
// reference and against the float pre-selection, which must give identical results.

#include "enabled_spaces.hpp"
#include "helpers.hpp"
#include "kernel_checks.hpp"

#include <fastknn/backends/int8_dot.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <cstdint>
#include <random>

using namespace fastknn;
using namespace fastknn::test;

namespace
{

/// Whether the kernels that run (the library's chosen variant) have the integer path.
template <class Space>
bool accelerated()
{
  return detail::tile_shape<Space>(1).integer_path;
}

} // namespace

TEST_CASE("byte micro-kernels give exact sums", "[integer]")
{
  using Host = Kokkos::DefaultHostExecutionSpace;
  CHECK(integer_block_exact<12, 32, backends::Int8Dot<Host>>(1));
  CHECK(integer_block_exact<4, 16, backends::Int8Dot<Host>>(2));
  CHECK(integer_block_exact<6, 16, backends::Int8Dot<Host>>(5)); // the AVX2 block
  CHECK(integer_block_exact<4, 8, backends::Int8Dot<Host>>(
      3)); // NR not a multiple of 16: generic code
  CHECK(integer_block_exact<3, 4, backends::Int8Dot<Host>>(6)); // NR not a multiple of 8 either
  CHECK(integer_block_exact<12, 32, backends::Int8Dot<void>>(4));
}

TEMPLATE_LIST_TEST_CASE("integer data: exact integer pre-selection, identical to the float one",
                        "[search][integer]", EnabledSpaces)
{
  struct Case
  {
    int lo, hi;
    bool two_values;
    std::size_t n, q, d;
  };
  auto const c = GENERATE(Case{0, 255, false, 1500, 37, 784}, // 8-bit images
                          Case{-128, 127, false, 1203, 29, 64},
                          Case{1000, 1255, false, 777, 13, 33}, // offset range, odd D
                          Case{0, 3, false, 900, 21, 8},        // heavy ties
                          Case{0, 255, true, 500, 17, 784});    // distances above 2^24
  auto const metric = GENERATE(Metric::L2Squared, Metric::L2);
  auto const k = GENERATE(1, 10, 100);
  auto x = integer_matrix<float>(c.n, c.d, 11 + unsigned(c.d), c.lo, c.hi, c.two_values);
  auto q = integer_matrix<float>(c.q, c.d, 12 + unsigned(c.d), c.lo, c.hi, c.two_values);
  SearchOptions integer, floating;
  integer.metric = floating.metric = metric;
  floating.integer_preselection = false;
  SearchStats si, sf;
  integer.stats = &si;
  floating.stats = &sf;
  auto a = run_search<TestType>(x, c.n, q, c.q, c.d, k, integer);
  auto b = run_search<TestType>(x, c.n, q, c.q, c.d, k, floating);
  INFO("range [" << c.lo << ", " << c.hi << "] two_values=" << c.two_values << " D=" << c.d
                 << " k=" << k << " metric=" << metric_name(metric));
  CHECK(si.integer_preselection == accelerated<TestType>());
  CHECK_FALSE(sf.integer_preselection);
  CHECK(a.index == b.index);
  CHECK(a.value == b.value);
  auto packed = run_planned<TestType>(x, c.n, q, c.q, c.d, k, integer, 1, 0); // no streaming
  CHECK(packed.index == a.index);
  CHECK(packed.value == a.value);
  auto cmp = compare_with_reference(a, x, c.n, q, c.d, integer);
  INFO(cmp.first_problem);
  CHECK(cmp.bad_value == 0);
  CHECK(cmp.wrong_index == 0);
}

TEMPLATE_LIST_TEST_CASE("integer path: exclude_self and tiling", "[search][integer]", EnabledSpaces)
{
  std::size_t const n = 2003, d = 40;
  auto x = integer_matrix<float>(n, d, 5, 0, 15); // small range: many exact ties
  for (std::size_t i = 0; i + 1 < n; i += 5)      // and exact duplicates
    std::copy_n(&x[i * d], d, &x[(i + 1) * d]);
  SearchOptions big, small;
  big.exclude_self = small.exclude_self = true;
  small.workspace_bytes = 300 * 1024; // several query and database tiles
  SearchStats sb, ss;
  big.stats = &sb;
  small.stats = &ss;
  auto a = run_search<TestType>(x, n, x, n, d, 12, big);
  auto b = run_search<TestType>(x, n, x, n, d, 12, small);
  CHECK(sb.integer_preselection == accelerated<TestType>());
  CHECK(ss.database_tiles > 1);
  CHECK(ss.query_tiles > 1);
  CHECK(a.index == b.index);
  CHECK(a.value == b.value);
  for (std::size_t i = 0; i < n; ++i)
    for (int j = 0; j < 12; ++j)
      CHECK(a.idx(i, j) != index_type(i));
  for (std::size_t i = 0; i + 1 < n; i += 5)
    CHECK(a.idx(i, 0) == index_type(i + 1));
  auto cmp = compare_with_reference(a, x, n, x, d, big);
  CHECK(cmp.wrong_index == 0);
  CHECK(cmp.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("data outside the integer path's range takes the float path",
                        "[search][integer]", EnabledSpaces)
{
  std::size_t const n = 300, nq = 7, d = 16;
  auto x = integer_matrix<float>(n, d, 7, 0, 255);
  auto q = integer_matrix<float>(nq, d, 8, 0, 255);
  SearchOptions opt;
  SearchStats stats;
  opt.stats = &stats;
  SECTION("257 distinct values")
  {
    q[3] = 256.0f;
  }
  SECTION("a non-integer value")
  {
    x[100] = 17.5f;
  }
  SECTION("a metric other than L2")
  {
    opt.metric = GENERATE(Metric::L1, Metric::InnerProduct, Metric::Cosine);
  }
  auto r = run_search<TestType>(x, n, q, nq, d, 5, opt);
  CHECK_FALSE(stats.integer_preselection);
  auto cmp = compare_with_reference(r, x, n, q, d, opt);
  CHECK(cmp.wrong_index == 0);
  CHECK(cmp.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("integer path with double inputs", "[search][integer][double]",
                        EnabledSpaces)
{
  std::size_t const n = 800, nq = 19, d = 100;
  auto x = integer_matrix<double>(n, d, 9, -40, 215);
  auto q = integer_matrix<double>(nq, d, 10, -40, 215);
  SearchOptions opt;
  opt.metric = Metric::L2;
  SearchStats stats;
  opt.stats = &stats;
  auto r = run_search<TestType>(x, n, q, nq, d, 20, opt);
  CHECK(stats.integer_preselection == accelerated<TestType>());
  auto cmp = compare_with_reference(r, x, n, q, d, opt);
  CHECK(cmp.wrong_index == 0);
  CHECK(cmp.bad_value == 0);
}

TEMPLATE_LIST_TEST_CASE("integer path with few queries (database runs)", "[search][integer]",
                        EnabledSpaces)
{
  std::size_t const n = 30007, nq = 3, d = 64;
  auto x = integer_matrix<float>(n, d, 21, 0, 255);
  auto q = integer_matrix<float>(nq, d, 22, 0, 255);
  SearchOptions integer, floating;
  floating.integer_preselection = false;
  SearchStats si;
  integer.stats = &si;
  auto const k = GENERATE(1, 50);
  auto a = run_search<TestType>(x, n, q, nq, d, k, integer);
  auto b = run_search<TestType>(x, n, q, nq, d, k, floating);
  if (si.chunk_rows < n)
    CHECK(si.segments > 1);
  CHECK(a.index == b.index);
  CHECK(a.value == b.value);
  auto cmp = compare_with_reference(a, x, n, q, d, integer);
  CHECK(cmp.wrong_index == 0);
  CHECK(cmp.bad_value == 0);
}
