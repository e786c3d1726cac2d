// Every invalid input throws fastknn::Error whose message names the problem.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <fstream>
#include <limits>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

using namespace fastknn;
using namespace fastknn::test;
using Catch::Matchers::ContainsSubstring;

namespace
{
template <class Space>
void expect_error(std::vector<float> const &x, std::size_t n, std::vector<float> const &q,
                  std::size_t nq, std::size_t d, std::size_t dq, int k, SearchOptions const &opt,
                  std::string const &needle)
{
  Space space;
  auto xd = to_device(space, x, n, d);
  auto qd = to_device(space, q, nq, dq);
  REQUIRE_THROWS_WITH(fastknn::search(space, xd, qd, k, opt), ContainsSubstring(needle));
  REQUIRE_THROWS_AS(fastknn::search(space, xd, qd, k, opt), fastknn::Error);
}
} // namespace

TEMPLATE_LIST_TEST_CASE("invalid arguments are refused with a clear message", "[errors]",
                        EnabledSpaces)
{
  auto x = random_matrix<float>(50, 4, 1);
  auto q = random_matrix<float>(6, 4, 2);
  SearchOptions opt;
  SECTION("k < 1")
  {
    expect_error<TestType>(x, 50, q, 6, 4, 4, 0, opt, "k must be at least 1");
  }
  SECTION("k > N")
  {
    expect_error<TestType>(x, 50, q, 6, 4, 4, 51, opt, "larger than the database");
  }
  SECTION("k > N-1 with exclude_self")
  {
    opt.exclude_self = true;
    expect_error<TestType>(x, 50, x, 50, 4, 4, 50, opt, "k <= N-1");
  }
  SECTION("exclude_self with different query count")
  {
    opt.exclude_self = true;
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "Q == N");
  }
  SECTION("dimension mismatch")
  {
    auto q3 = random_matrix<float>(6, 3, 2);
    expect_error<TestType>(x, 50, q3, 6, 4, 3, 3, opt, "dimension mismatch");
  }
  SECTION("empty database")
  {
    expect_error<TestType>({}, 0, q, 6, 4, 4, 1, opt, "database is empty");
  }
  SECTION("empty queries")
  {
    expect_error<TestType>(x, 50, {}, 0, 4, 4, 1, opt, "query set is empty");
  }
  SECTION("zero dimension")
  {
    expect_error<TestType>({}, 50, {}, 6, 0, 0, 1, opt, "dimension is 0");
  }
  SECTION("NaN in the database")
  {
    x[7 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "database row 7 contains NaN or Inf");
  }
  SECTION("Inf in the queries")
  {
    q[3 * 4] = -std::numeric_limits<float>::infinity();
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "query row 3 contains NaN or Inf");
  }
  SECTION("NaN with the check off is still not returned silently")
  {
    x[0] = std::numeric_limits<float>::quiet_NaN();
    for (std::size_t i = 1; i < 50; ++i)
      x[i * 4] = std::numeric_limits<float>::quiet_NaN();
    opt.check_finite = false;
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "NaN or Inf");
  }
  SECTION("one NaN row among many with the check off: refused, every metric")
  {
    // One bad row among N > 4096 fills no result with sentinels (the candidate buffers fill
    // with other rows), so only finding it on the way can refuse it.
    std::size_t const big_n = 5000;
    auto xb = random_matrix<float>(big_n, 4, 77);
    xb[2345 * 4 + 1] = std::numeric_limits<float>::quiet_NaN();
    opt.check_finite = false;
    opt.metric = GENERATE(Metric::L2Squared, Metric::L1, Metric::InnerProduct, Metric::Cosine);
    expect_error<TestType>(xb, big_n, q, 6, 4, 4, 3, opt, "NaN or Inf");
    opt.check_finite = true;
    expect_error<TestType>(xb, big_n, q, 6, 4, 4, 3, opt, "database row 2345 contains NaN");
  }
  SECTION("values whose squares overflow float")
  {
    x[5] = 1e30f;
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "overflow");
  }
  SECTION("a zero row under cosine")
  {
    std::fill_n(&x[9 * 4], 4, 0.0f);
    opt.metric = Metric::Cosine;
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "all zeros");
  }
  SECTION("a workspace budget too small for one tile")
  {
    opt.workspace_bytes = 1000;
    expect_error<TestType>(x, 50, q, 6, 4, 4, 3, opt, "workspace budget");
  }
}

TEST_CASE("sizes that overflow the index type are refused before allocating", "[errors]")
{
  SearchOptions opt;
  detail::TeamShape const cpu_shape{.mr = 12,
                                    .nr = 32,
                                    .chunk_bytes = 1 << 18,
                                    .max_chunk_rows = 4096,
                                    .team_scratch_limit = std::size_t(16) << 20};
  std::size_t const huge = std::size_t(1) << 32;
  REQUIRE_THROWS_WITH(detail::make_plan(huge, 10, 8, 8, 5, opt, 4, cpu_shape),
                      ContainsSubstring("32-bit index type"));
  REQUIRE_THROWS_WITH(
      detail::make_plan(1000, 10, std::size_t(1) << 62, std::size_t(1) << 62, 5, opt, 4, cpu_shape),
      ContainsSubstring("too large"));
  // Q x k results of 12 bytes each do not fit in 64 bits.
  std::size_t const big = (std::size_t(1) << 31) - 2;
  REQUIRE_THROWS_WITH(detail::make_plan(big, big, 8, 8, (long long)(big), opt, 4, cpu_shape),
                      ContainsSubstring("overflows"));
  REQUIRE_THROWS_AS(detail::make_plan(huge, 10, 8, 8, 5, opt, 4, cpu_shape), fastknn::Error);
}

TEST_CASE("metric names parse as the command line spells them", "[errors]")
{
  CHECK(parse_metric("l2") == Metric::L2);
  CHECK(parse_metric("euclidean") == Metric::L2);
  CHECK(parse_metric("sqeuclidean") == Metric::L2Squared);
  CHECK(parse_metric("manhattan") == Metric::L1);
  CHECK(parse_metric("ip") == Metric::InnerProduct);
  CHECK(parse_metric("cosine") == Metric::Cosine);
  REQUIRE_THROWS_WITH(parse_metric("haversine"), ContainsSubstring("unknown metric 'haversine'"));
}

namespace
{
/// The process's virtual memory size in bytes (/proc/self/statm), or 0 where unknown.
std::size_t virtual_memory_bytes()
{
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  statm >> pages;
  return pages * std::size_t(sysconf(_SC_PAGESIZE));
}
} // namespace

TEMPLATE_LIST_TEST_CASE("a workspace the machine cannot give: Error saying what to lower, and the "
                        "next search is whole",
                        "[errors][oom]", EnabledSpaces)
{
  if constexpr (!Kokkos::SpaceAccessibility<Kokkos::HostSpace,
                                            typename TestType::memory_space>::accessible)
  {
    // A device's memory is not bounded by the process limit below; the host spaces cover the
    // message path (the same planned_search in core/).
    SUCCEED("device memory: the limit does not apply");
  }
  else
  {
    // 100,000 queries x k = 1,000 with a 16 GiB budget: the plan takes every query at once,
    // ~3 GiB of candidate buffers. Address space limited to what the process has plus 1 GiB, so
    // the allocation fails whatever the machine's memory and overcommit policy.
    std::size_t const n = 2000, nq = 100'000, d = 8;
    int const k = 1000;
    auto x = random_matrix<float>(n, d, 5);
    auto q = random_matrix<float>(nq, d, 6);
    TestType space;
    auto xd = to_device(space, x, n, d);
    auto qd = to_device(space, q, nq, d);
    SearchOptions opt;
    opt.workspace_bytes = std::size_t(16) << 30;
    rlimit old{};
    REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
    std::size_t const vm = virtual_memory_bytes();
    REQUIRE(vm > 0);
    rlimit tight = old;
    tight.rlim_cur = rlim_t(vm + (std::size_t(1) << 30));
    REQUIRE(setrlimit(RLIMIT_AS, &tight) == 0);
    std::string message;
    try
    {
      (void)fastknn::search(space, xd, qd, k, opt);
    }
    catch (fastknn::Error const &e)
    {
      message = e.what();
    }
    catch (std::exception const &e)
    {
      message = std::string("not a fastknn::Error: ") + e.what();
    }
    REQUIRE(setrlimit(RLIMIT_AS, &old) == 0);
    INFO(message);
    CHECK_THAT(message, ContainsSubstring("out of memory"));
    CHECK_THAT(message, ContainsSubstring("lower SearchOptions::workspace_bytes"));
    // The workspace was freed and the space is usable: the next search (10 of the queries,
    // default budget) gives the reference's answer.
    SearchOptions const plain;
    auto const found =
        fastknn::search(space, xd, Kokkos::subview(qd, std::pair(0, 10), Kokkos::ALL), 3, plain);
    std::vector<float> const q10(q.begin(), q.begin() + 10 * d);
    auto const c = compare_with_reference(to_host(found, 10, 3), x, n, q10, d, plain);
    INFO(c.first_problem);
    CHECK(c.wrong_index == 0);
    CHECK(c.bad_value == 0);
  }
}
