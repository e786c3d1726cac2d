// fastknn::Index: a database prepared once and searched many times must give, search after
// search, exactly what fastknn::search gives, and refuse what fastknn::search refuses.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <limits>
#include <string>
#include <thread>
#include <vector>

using namespace fastknn;
using namespace fastknn::test;
using Catch::Matchers::ContainsSubstring;

namespace
{

template <class Space, class T>
void check_same(
    Index<Space, Kokkos::View<T **, Kokkos::LayoutRight, typename Space::memory_space>> const
        &index,
    Space const &space, std::vector<T> const &x, std::size_t n, std::vector<T> const &q,
    std::size_t nq, std::size_t d, int k, SearchOptions const &opt)
{
  auto const qd = to_device(space, q, nq, d);
  auto const direct = to_host(fastknn::search(space, index.database(), qd, k, opt), nq, k);
  auto const indexed = to_host(index.search(space, qd, k, opt), nq, k);
  CHECK(indexed.index == direct.index);
  CHECK(indexed.value == direct.value);
  // And both are right.
  auto const c = compare_with_reference(indexed, x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.bad_value == 0);
  CHECK(c.wrong_index == 0);
}

} // namespace

TEMPLATE_LIST_TEST_CASE("Index: every metric, repeated searches equal fastknn::search",
                        "[search][index]", EnabledSpaces)
{
  TestType space;
  std::size_t const n = 3001, d = 37;
  auto const x = random_matrix<float>(n, d, 71, -1.0, 1.0);
  auto const xd = to_device(space, x, n, d);
  for (Metric metric :
       {Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine})
  {
    INFO("metric " << metric_name(metric));
    Index index(space, xd, metric);
    CHECK(index.metric() == metric);
    CHECK(index.size() == n);
    CHECK(index.dimension() == d);
    SearchOptions opt;
    opt.metric = metric;
    // Different query counts (streamed and packed plans) and k, against the same index.
    check_same(index, space, x, n, random_matrix<float>(1, d, 72, -1.0, 1.0), 1, d, 7, opt);
    check_same(index, space, x, n, random_matrix<float>(3, d, 76, -1.0, 1.0), 3, d, 4, opt);
    check_same(index, space, x, n, random_matrix<float>(6, d, 77, -1.0, 1.0), 6, d, 11, opt);
    check_same(index, space, x, n, random_matrix<float>(40, d, 73, -1.0, 1.0), 40, d, 1, opt);
    check_same(index, space, x, n, random_matrix<float>(300, d, 74, -1.0, 1.0), 300, d, 50, opt);
    // Queries far outside the database's range (the fast scores' scale changes).
    check_same(index, space, x, n, random_matrix<float>(20, d, 75, 5.0, 9.0), 20, d, 10, opt);
  }
}

TEMPLATE_LIST_TEST_CASE("Index: double values", "[search][index]", EnabledSpaces)
{
  TestType space;
  std::size_t const n = 1500, d = 19;
  auto const x = random_matrix<double>(n, d, 81);
  Index index(space, to_device(space, x, n, d), Metric::L2);
  SearchOptions opt;
  opt.metric = Metric::L2;
  check_same(index, space, x, n, random_matrix<double>(33, d, 82), 33, d, 12, opt);
}

TEMPLATE_LIST_TEST_CASE("Index: integer data, queries inside, below and beyond its range",
                        "[search][index][integer]", EnabledSpaces)
{
  TestType space;
  std::size_t const n = 2500, d = 40;
  auto const x = integer_matrix<float>(n, d, 91, 10, 200);
  Index index(space, to_device(space, x, n, d));
  SearchOptions opt;
  SearchStats stats;
  opt.stats = &stats;
  // Inside: the integer path with the norms prepared by the index.
  check_same(index, space, x, n, integer_matrix<float>(30, d, 92, 10, 200), 30, d, 9, opt);
  bool const accelerated = detail::tile_shape<TestType>(1).integer_path; // the kernels that run
  CHECK(stats.integer_preselection == accelerated);
  // Reaching below the database's smallest value (still 256 values in all): the integer path
  // with norms relative to the queries' smallest value.
  check_same(index, space, x, n, integer_matrix<float>(30, d, 93, 0, 200), 30, d, 9, opt);
  CHECK(stats.integer_preselection == accelerated);
  // Beyond 256 values in all: the float path.
  check_same(index, space, x, n, integer_matrix<float>(30, d, 94, -100, 300), 30, d, 9, opt);
  CHECK_FALSE(stats.integer_preselection);
  // Integer path off for one search, on again for the next.
  opt.integer_preselection = false;
  check_same(index, space, x, n, integer_matrix<float>(30, d, 95, 10, 200), 30, d, 9, opt);
  CHECK_FALSE(stats.integer_preselection);
  opt.integer_preselection = true;
  check_same(index, space, x, n, integer_matrix<float>(30, d, 96, 10, 200), 30, d, 9, opt);
  CHECK(stats.integer_preselection == accelerated);
}

TEMPLATE_LIST_TEST_CASE("Index: exclude_self and bad input", "[search][index][errors]",
                        EnabledSpaces)
{
  TestType space;
  std::size_t const n = 600, d = 12;
  auto x = random_matrix<float>(n, d, 101);
  auto xd = to_device(space, x, n, d);
  Index index(space, xd, Metric::Cosine);
  SearchOptions opt;
  opt.metric = Metric::Cosine;
  opt.exclude_self = true;
  check_same(index, space, x, n, x, n, d, 5, opt);

  SearchOptions l2;
  REQUIRE_THROWS_WITH(index.search(space, xd, 5, l2), ContainsSubstring("built for metric"));
  auto const q_wrong = to_device(space, random_matrix<float>(3, d + 1, 102), 3, d + 1);
  REQUIRE_THROWS_WITH(index.search(space, q_wrong, 5), ContainsSubstring("dimension mismatch"));
  REQUIRE_THROWS_WITH(index.search(space, xd, int(n) + 1),
                      ContainsSubstring("larger than the database"));

  using V = Kokkos::View<float **, Kokkos::LayoutRight, typename TestType::memory_space>;
  REQUIRE_THROWS_WITH(Index(space, V("empty", 0, d)), ContainsSubstring("database is empty"));

  // A non-finite value is reported by each search (check_finite is a search option; without
  // it the search still refuses the NaN distances it then meets).
  x[7 * d + 3] = std::numeric_limits<float>::quiet_NaN();
  Index bad(space, to_device(space, x, n, d));
  auto const q = to_device(space, random_matrix<float>(4, d, 103), 4, d);
  REQUIRE_THROWS_WITH(bad.search(space, q, 3), ContainsSubstring("database row 7"));
  SearchOptions unchecked;
  unchecked.check_finite = false;
  REQUIRE_THROWS_WITH(bad.search(space, q, 3, unchecked), ContainsSubstring("non-finite input"));
}

TEMPLATE_LIST_TEST_CASE("Index and search on a LayoutLeft database", "[search][index]",
                        EnabledSpaces)
{
  // Rows are not contiguous: the kernels read them through the View, not a row pointer.
  TestType space;
  std::size_t const n = 2200, d = 21;
  auto const x = random_matrix<float>(n, d, 111);
  auto const right = to_device(space, x, n, d);
  Kokkos::View<float **, Kokkos::LayoutLeft, typename TestType::memory_space> left("left", n, d);
  Kokkos::deep_copy(space, left, right); // same extents, the layout converts
  Index index(space, left, Metric::L1);
  SearchOptions opt;
  opt.metric = Metric::L1;
  for (std::size_t nq : {std::size_t(2), std::size_t(30)})
  {
    auto const q = random_matrix<float>(nq, d, 112);
    auto const qd = to_device(space, q, nq, d);
    auto const expected = to_host(fastknn::search(space, right, qd, 6, opt), nq, 6);
    auto const viaindex = to_host(index.search(space, qd, 6, opt), nq, 6);
    auto const direct = to_host(fastknn::search(space, left, qd, 6, opt), nq, 6);
    CHECK(viaindex.index == expected.index);
    CHECK(viaindex.value == expected.value);
    CHECK(direct.index == expected.index);
    CHECK(direct.value == expected.value);
    auto const c = compare_with_reference(expected, x, n, q, d, opt);
    INFO(c.first_problem);
    CHECK(c.wrong_index == 0);
    CHECK(c.bad_value == 0);
  }
}

#ifdef KOKKOS_ENABLE_OPENMP
TEST_CASE("one Index searched from several host threads at once, each with its own instance",
          "[index][threads]")
{
  // The rule (README, "Use it"): an Index is read-only while it searches, so host threads may
  // search it at the same time if each passes its own execution-space instance (Kokkos does not
  // allow one instance to be used by two host threads at once).
  using Space = Kokkos::OpenMP;
  std::size_t const n = 3000, nq = 64, d = 20;
  int const k = 7;
  auto const x = random_matrix<float>(n, d, 91);
  Space const main_space;
  auto const xd = to_device(main_space, x, n, d);
  Index<Space, Kokkos::View<float **, Kokkos::LayoutRight, Space::memory_space>> const index(
      main_space, xd, Metric::L2);
  SearchOptions opt;
  opt.metric = Metric::L2;
  constexpr int threads = 3, rounds = 4;
  std::vector<std::vector<float>> queries;
  std::vector<HostResult<float>> serial;
  for (int t = 0; t < threads; ++t)
  {
    queries.push_back(random_matrix<float>(nq, d, 100 + unsigned(t)));
    serial.push_back(
        to_host(index.search(main_space, to_device(main_space, queries[t], nq, d), k, opt), nq, k));
  }
  std::vector<int> mismatches(threads, 0);
  std::vector<std::string> errors(threads);
  {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back(
          [&, t]
          {
            try
            {
              Space const own(1); // an instance of its own, one OpenMP thread
              auto const qd = to_device(own, queries[t], nq, d);
              for (int r = 0; r < rounds; ++r)
              {
                auto const found = index.search(own, qd, k, opt);
                auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
                auto hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
                for (std::size_t i = 0; i < nq * std::size_t(k); ++i)
                  mismatches[t] +=
                      hi.data()[i] != serial[t].index[i] || hv.data()[i] != serial[t].value[i];
              }
            }
            catch (std::exception const &e)
            {
              errors[t] = e.what();
            }
          });
    for (auto &th : pool)
      th.join();
  }
  for (int t = 0; t < threads; ++t)
  {
    INFO("thread " << t << ": " << errors[t]);
    CHECK(errors[t].empty());
    CHECK(mismatches[t] == 0);
    auto const c = compare_with_reference(serial[t], x, n, queries[t], d, opt);
    CHECK(c.wrong_index == 0);
    CHECK(c.bad_value == 0);
  }
}
#endif

TEMPLATE_LIST_TEST_CASE("queries and databases of every layout: LayoutLeft, LayoutStride, "
                        "subviews, const and unmanaged Views, through search and Index",
                        "[search][index][layouts]", EnabledSpaces)
{
  TestType space;
  using MS = typename TestType::memory_space;
  std::size_t const n = 1300, d = 23, nq = 40;
  int const k = 9;
  auto const x = random_matrix<float>(n, d, 121, -1.0, 1.0);
  auto const q = random_matrix<float>(nq, d, 122, -1.0, 1.0);
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::Cosine, Metric::L1);
  auto check = [&](auto const &found, char const *what)
  {
    auto const c = compare_with_reference(to_host(found, nq, k), x, n, q, d, opt);
    INFO(what << ", metric " << metric_name(opt.metric) << ": " << c.first_problem);
    CHECK(c.wrong_index == 0);
    CHECK(c.bad_value == 0);
  };
  auto const xr = to_device(space, x, n, d);
  auto const qr = to_device(space, q, nq, d);
  // LayoutLeft queries and database.
  Kokkos::View<float **, Kokkos::LayoutLeft, MS> xl("xl", n, d), ql("ql", nq, d);
  Kokkos::deep_copy(space, xl, xr);
  Kokkos::deep_copy(space, ql, qr);
  // The rows inside wider arrays: subviews (LayoutStride) of n x (d + 5) and nq x 2 d arrays.
  Kokkos::View<float **, Kokkos::LayoutRight, MS> xwide("xwide", n, d + 5),
      qwide("qwide", 2 * nq, d);
  auto const xs =
      Kokkos::subview(xwide, Kokkos::ALL, std::pair<std::size_t, std::size_t>(3, 3 + d));
  Kokkos::deep_copy(space, xs, xr);
  // Every other row of qwide holds a query: a LayoutStride View with a row stride of 2 d.
  Kokkos::LayoutStride const every_other(nq, 2 * d, d, 1);
  Kokkos::View<float **, Kokkos::LayoutStride, MS> qs(qwide.data(), every_other);
  Kokkos::deep_copy(space, qs, qr);
  // Const managed and const unmanaged Views.
  Kokkos::View<float const **, Kokkos::LayoutRight, MS> const xc = xr, qc = qr;
  Kokkos::View<float const **, Kokkos::LayoutRight, MS,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>> const xu(xr.data(), n, d),
      qu(qr.data(), nq, d);
  check(fastknn::search(space, xr, ql, k, opt), "LayoutLeft queries");
  check(fastknn::search(space, xr, qs, k, opt), "LayoutStride queries");
  check(fastknn::search(space, xl, qr, k, opt), "LayoutLeft database");
  check(fastknn::search(space, xs, qs, k, opt), "subview database, LayoutStride queries");
  check(fastknn::search(space, xc, qc, k, opt), "const Views");
  check(fastknn::search(space, xu, qu, k, opt), "const unmanaged Views");
  // The first nq rows of a taller array: a subview of whole rows.
  Kokkos::View<float **, Kokkos::LayoutRight, MS> qtall("qtall", nq + 7, d);
  auto const qrows =
      Kokkos::subview(qtall, std::pair<std::size_t, std::size_t>(0, nq), Kokkos::ALL);
  Kokkos::deep_copy(space, qrows, qr);
  check(fastknn::search(space, xr, qrows, k, opt), "a subview of rows as queries");
  Index const on_subview(space, xs, opt.metric);
  check(on_subview.search(space, ql, k, opt), "Index on a subview, LayoutLeft queries");
  Index const on_const(space, xc, opt.metric);
  check(on_const.search(space, qs, k, opt), "Index on const Views, LayoutStride queries");
  Index const on_left(space, xl, opt.metric, borrow_data);
  check(on_left.search(space, qu, k, opt), "borrowed LayoutLeft Index, unmanaged queries");
}

TEMPLATE_LIST_TEST_CASE("the Index owns its rows: a changed caller View changes no answer",
                        "[search][index]", EnabledSpaces)
{
  // The data rule (index.hpp): the default Index copies the rows. Changing the caller's View
  // afterwards (here half of the rows, as a caller refilling a buffer would) must give the
  // answers of the original rows exactly; the old shared View gave the new rows with the old
  // norms, matching neither.
  TestType space;
  std::size_t const n = 2000, d = 16, nq = 30;
  int const k = 5;
  auto x = random_matrix<float>(n, d, 131);
  auto const q = random_matrix<float>(nq, d, 132);
  auto xd = to_device(space, x, n, d);
  auto const qd = to_device(space, q, nq, d);
  SearchOptions opt;
  opt.metric = GENERATE(Metric::L2Squared, Metric::Cosine);
  Index const index(space, xd, opt.metric);
  auto const changed = random_matrix<float>(n / 2, d, 133, 5.0, 6.0);
  Kokkos::deep_copy(space,
                    Kokkos::subview(xd, std::pair<std::size_t, std::size_t>(0, n / 2), Kokkos::ALL),
                    to_device(space, changed, n / 2, d));
  auto const c =
      compare_with_reference(to_host(index.search(space, qd, k, opt), nq, k), x, n, q, d, opt);
  INFO(c.first_problem);
  CHECK(c.wrong_index == 0);
  CHECK(c.bad_value == 0);
}
