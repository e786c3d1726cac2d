// Distributed search (fastknn::mpi) under mpirun -np 1..4: every rank builds the same global data,
// keeps its shard and its queries, and checks its results bit for bit against fastknn::search
// over the whole database, and against the float64 reference. Failures are combined over the
// ranks before any REQUIRE, so a failing rank never leaves the others waiting in a collective.

#include "helpers.hpp"

#include <fastknn/mpi.hpp>

#include <catch2/catch_session.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace
{

using Space = Kokkos::DefaultExecutionSpace;
using fastknn::Metric;
namespace ft = fastknn::test;

int rank()
{
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int ranks()
{
  int p = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  return p;
}

/// True on every rank when `ok` holds on every rank.
bool everywhere(bool ok)
{
  int v = ok ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return v == 1;
}

/// Splits `total` rows over the ranks by weight (rank r gets weight[r % size]); zero weights
/// give empty shards. Returns the first row of each rank and the end.
std::vector<std::size_t> split(std::size_t total, std::vector<int> const &weight)
{
  int const p = ranks();
  std::size_t const np = static_cast<std::size_t>(p);
  std::vector<double> w(np);
  double sum = 0;
  for (int r = 0; r < p; ++r)
    sum += (w[std::size_t(r)] = weight[std::size_t(r) % weight.size()]);
  if (sum == 0) // every weight zero: the last rank takes everything
    w.back() = sum = 1;
  std::vector<std::size_t> first(np + 1, 0);
  double acc = 0;
  for (int r = 0; r < p; ++r)
  {
    acc += w[std::size_t(r)];
    first[std::size_t(r) + 1] = r + 1 == p ? total : std::size_t(std::floor(total * acc / sum));
  }
  return first;
}

template <class T>
std::vector<T> rows_of(std::vector<T> const &all, std::size_t d, std::size_t a, std::size_t b)
{
  return {all.begin() + std::ptrdiff_t(a * d), all.begin() + std::ptrdiff_t(b * d)};
}

struct Case
{
  std::size_t n, q, d;
  int k;
  Metric metric;
  bool exclude_self;
  std::vector<int> db_weight, q_weight;
  std::size_t batch = 0; // queries per rank and round (0: from the budget)
};

/// Runs one distributed search and checks this rank's rows; true when every rank passed.
template <class T>
bool check_case(Case const &c, std::vector<T> const &x, std::vector<T> const &q_all)
{
  Space space;
  int const me = rank();
  auto const db = split(c.n, c.db_weight);
  auto const qs = c.exclude_self ? db : split(c.q, c.q_weight);
  std::size_t const a = db[std::size_t(me)], b = db[std::size_t(me) + 1];
  std::size_t const qa = qs[std::size_t(me)], qb = qs[std::size_t(me) + 1];
  std::vector<T> const shard = rows_of(x, c.d, a, b);
  std::vector<T> const mine = rows_of(c.exclude_self ? x : q_all, c.d, qa, qb);
  fastknn::SearchOptions opt;
  opt.metric = c.metric;
  opt.exclude_self = c.exclude_self;
  fastknn::mpi::DistributedStats stats;
  auto const found =
      fastknn::mpi::search(MPI_COMM_WORLD, space, ft::to_device(space, shard, b - a, c.d),
                           ft::to_device(space, mine, qb - qa, c.d), c.k, opt, {c.batch, &stats});
  auto const got = ft::to_host(found, qb - qa, c.k);

  // The single-process search of the same queries over the whole database.
  bool ok = true;
  if (qb > qa)
  {
    std::vector<T> const &qsrc = c.exclude_self ? x : q_all;
    std::size_t const nq = c.exclude_self ? c.n : c.q;
    auto const whole = ft::run_search<Space, T>(x, c.n, qsrc, nq, c.d, c.k, opt);
    std::size_t const kk = std::size_t(c.k);
    ok = std::memcmp(got.index.data(), whole.index.data() + qa * kk,
                     got.index.size() * sizeof(fastknn::index_type)) == 0 &&
         std::memcmp(got.value.data(), whole.value.data() + qa * kk,
                     got.value.size() * sizeof(T)) == 0;
    if (!ok)
      UNSCOPED_INFO("rank " << me << ": not bit-identical to fastknn::search");
    // And the float64 reference (values within its tolerance, indices where no near-tie).
    if (!c.exclude_self)
    {
      auto const cmp = ft::compare_with_reference(got, x, c.n, mine, c.d, opt);
      if (cmp.bad_value != 0 || cmp.wrong_index != 0)
      {
        UNSCOPED_INFO("rank " << me << ": reference: " << cmp.first_problem);
        ok = false;
      }
    }
  }
  ok = ok && stats.ranks == ranks() && (c.batch == 0 || stats.batch == c.batch);
  return everywhere(ok);
}

/// Global rows with duplicates spread over the shards (ties across ranks).
template <class T>
std::vector<T> data_with_duplicates(std::size_t n, std::size_t d, unsigned seed)
{
  auto x = ft::random_matrix<T>(n, d, seed, -1.0, 1.0);
  for (std::size_t i = 0; i + 7 < n; i += 7) // row i + 5 repeats row i (and n-1 repeats row 1)
    std::copy_n(x.begin() + std::ptrdiff_t(i * d), d, x.begin() + std::ptrdiff_t((i + 5) * d));
  std::copy_n(x.begin() + std::ptrdiff_t(d), d, x.begin() + std::ptrdiff_t((n - 1) * d));
  return x;
}

} // namespace

TEMPLATE_TEST_CASE("distributed search equals the single-process search", "[mpi]", float, double)
{
  using T = TestType;
  std::vector<std::vector<int>> const splits = {{1}, {0, 3, 1, 2}, {5, 1, 0}};
  Metric const metrics[] = {Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct,
                            Metric::Cosine};
  for (std::size_t d : {std::size_t(1), std::size_t(6)})
  {
    std::size_t const n = 113, nq = 29;
    auto const x = data_with_duplicates<T>(n, d, 11u + unsigned(d));
    auto q = ft::random_matrix<T>(nq, d, 23u + unsigned(d), -1.0, 1.0);
    std::copy_n(x.begin() + std::ptrdiff_t(8 * d), d, q.begin()); // a query on a database row
    for (Metric m : metrics)
      for (auto const &w : splits)
        for (int k : {1, 9, 60, int(n)})
          for (bool self : {false, true})
          {
            if (self && k == int(n))
              continue;
            Case const c{n, nq, d, k, m, self, w, {2, 0, 1}};
            CAPTURE(d, fastknn::metric_name(m), k, self, w.size());
            CHECK(check_case<T>(c, x, q));
          }
  }
}

TEST_CASE("distributed search: 8-bit data, many rounds, k above every shard", "[mpi]")
{
  std::size_t const n = 300, nq = 41, d = 16;
  auto const x = ft::integer_matrix<float>(n, d, 5u, 0, 255);
  auto const q = ft::integer_matrix<float>(nq, d, 6u, 0, 255);
  for (Metric m : {Metric::L2, Metric::L2Squared})
  {
    // One query per rank and round.
    Case const tiny{n, nq, d, 5, m, false, {1, 2}, {1}, 1};
    CHECK(check_case<float>(tiny, x, q));
    // k larger than any one shard (on 2+ ranks).
    Case const big{n, nq, d, int(n * 3 / 4), m, false, {1, 1}, {1, 3}};
    CHECK(check_case<float>(big, x, q));
  }
}

namespace
{

/// Runs f on every rank; true when every rank threw fastknn::Error (not Cancelled unless
/// `cancelled`) with a message containing `needle`.
template <class F>
bool fails_everywhere(F &&f, std::string const &needle, bool cancelled = false)
{
  bool ok = false;
  try
  {
    f();
  }
  catch (fastknn::Cancelled const &e)
  {
    ok = cancelled && std::string(e.what()).find(needle) != std::string::npos;
    if (!ok)
      UNSCOPED_INFO("rank " << rank() << ": " << e.what());
  }
  catch (fastknn::Error const &e)
  {
    ok = !cancelled && std::string(e.what()).find(needle) != std::string::npos;
    if (!ok)
      UNSCOPED_INFO("rank " << rank() << ": " << e.what());
  }
  return everywhere(ok);
}

} // namespace

TEST_CASE("distributed search: an error on one rank reaches every rank", "[mpi]")
{
  Space space;
  int const me = rank(), last = ranks() - 1;
  std::size_t const d = 4, n_mine = 10;
  auto shard = ft::random_matrix<double>(n_mine, d, 100u + unsigned(me), -1, 1);
  auto const queries = ft::random_matrix<double>(3, d, 7u, -1, 1);
  auto const qd = ft::to_device(space, queries, 3, d);

  SECTION("a NaN in the last rank's shard")
  {
    if (me == last)
      shard[5 * d + 2] = std::numeric_limits<double>::quiet_NaN();
    auto const xd = ft::to_device(space, shard, n_mine, d);
    std::string const where =
        last > 0 ? "rank " + std::to_string(last) + " of " + std::to_string(last + 1) + ": " : "";
    CHECK(fails_everywhere([&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qd, 3); },
                           where + "its shard (global rows " + std::to_string(10 * last) + " to " +
                               std::to_string(10 * last + 9)));
  }
  SECTION("a NaN in the last rank's queries names the global query row")
  {
    auto const xd = ft::to_device(space, shard, n_mine, d);
    auto q_mine = queries;
    if (me == last)
      q_mine[2 * d] = std::numeric_limits<double>::infinity();
    auto const qm = ft::to_device(space, q_mine, 3, d);
    CHECK(fails_everywhere([&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qm, 3); },
                           "query row " + std::to_string(3 * last + 2) + " contains NaN"));
  }
  SECTION("k larger than the global database")
  {
    auto const xd = ft::to_device(space, shard, n_mine, d);
    int const k = int(n_mine) * ranks() + 1;
    CHECK(fails_everywhere([&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qd, k); },
                           "larger than the global database"));
  }
  SECTION("shards of different dimensions")
  {
    std::size_t const dr = me == last && last > 0 ? d + 1 : d;
    auto const other = ft::random_matrix<double>(n_mine, dr, 3u, -1, 1);
    auto const xd = ft::to_device(space, other, n_mine, dr);
    auto const qr = ft::to_device(space, ft::random_matrix<double>(3, dr, 7u, -1, 1), 3, dr);
    if (last > 0)
      CHECK(fails_everywhere([&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qr, 3); },
                             "dimension mismatch"));
  }
  SECTION("a search that the last rank's own budget refuses")
  {
    auto const xd = ft::to_device(space, shard, n_mine, d);
    fastknn::SearchOptions opt;
    if (me == last)
      opt.workspace_bytes = 64; // below what any shard search needs
    CHECK(fails_everywhere([&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qd, 2, opt); },
                           "workspace budget"));
  }
  SECTION("every shard empty")
  {
    auto const xd = ft::to_device(space, std::vector<double>{}, 0, d);
    CHECK(fails_everywhere([&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qd, 1); },
                           "every shard is empty"));
  }
  SECTION("the last rank's progress callback stops the search")
  {
    auto const xd = ft::to_device(space, shard, n_mine, d);
    fastknn::SearchOptions opt;
    opt.progress = [me, last](double) { return me != last; };
    fastknn::mpi::DistributedOptions const one_by_one{1, nullptr};
    CHECK(fails_everywhere(
        [&] { fastknn::mpi::search(MPI_COMM_WORLD, space, xd, qd, 2, opt, one_by_one); }, "stopped",
        true));
  }
}

namespace
{

/// One distributed radius search checked against the reference on this rank's queries: each
/// query's specified ranking (ft::spec_rank) cut at the radius, indices and values bit for bit.
/// True when every rank passed.
template <class T>
bool check_radius(std::vector<T> const &x, std::size_t n, std::vector<T> const &q_all,
                  std::size_t nq, std::size_t d, Metric m, bool self, double radius,
                  std::vector<int> const &weight, std::size_t batch)
{
  Space space;
  std::size_t const me = std::size_t(rank());
  auto const db = split(n, weight);
  auto const qs = self ? db : split(nq, {2, 0, 1});
  std::size_t const a = db[me], b = db[me + 1], qa = qs[me], qb = qs[me + 1];
  std::vector<T> const &qsrc = self ? x : q_all;
  fastknn::RadiusOptions opt;
  opt.metric = m;
  opt.exclude_self = self;
  opt.initial_k = 2; // rounds of the shards' searches
  fastknn::mpi::Index<Space, decltype(ft::to_device(space, x, 0, d))> const index(
      MPI_COMM_WORLD, space, ft::to_device(space, rows_of(x, d, a, b), b - a, d), m);
  auto const found = index.radius_search(
      space, ft::to_device(space, rows_of(qsrc, d, qa, qb), qb - qa, d), radius, opt, {batch});
  auto const offsets = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
  auto const indices = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto const values = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  bool ok = offsets.extent(0) == qb - qa + 1 && offsets(0) == 0 &&
            offsets(qb - qa) == indices.extent(0) && values.extent(0) == indices.extent(0);
  for (std::size_t i = qa; ok && i < qb; ++i)
  {
    ft::Ranked const r =
        ft::spec_rank<T>(x.data(), n, d, qsrc.data() + i * d, m, self ? i : std::size_t(-1));
    std::size_t c = 0;
    while (c < r.index.size() &&
           (fastknn::is_similarity(m) ? r.value[c] >= radius : r.value[c] <= radius))
      ++c;
    std::size_t const o = offsets(i - qa);
    ok = offsets(i - qa + 1) - o == c;
    for (std::size_t j = 0; ok && j < c; ++j)
      ok = indices(o + j) == r.index[j] && double(values(o + j)) == r.value[j];
    if (!ok)
      UNSCOPED_INFO("rank " << me << ": global query " << i << " differs from the reference");
  }
  return everywhere(ok);
}

} // namespace

TEMPLATE_TEST_CASE("distributed radius search equals the reference", "[mpi][radius]", float, double)
{
  using T = TestType;
  std::size_t const n = 113, nq = 29, d = 5;
  // Integer values: ties within and across shards, rows on the radius.
  auto const x = ft::integer_matrix<T>(n, d, 41u, 0, 4);
  auto const q = ft::integer_matrix<T>(nq, d, 42u, 0, 4);
  for (Metric m : {Metric::L2Squared, Metric::L2, Metric::L1, Metric::InnerProduct, Metric::Cosine,
                   Metric::Chebyshev})
    for (std::size_t at : {std::size_t(0), std::size_t(7), std::size_t(50), n - 1})
    {
      // A radius on the value of query 0's at-th row (rows on the boundary are inside).
      double const radius = ft::spec_rank<T>(x.data(), n, d, q.data(), m).value[at];
      for (auto const &w : std::vector<std::vector<int>>{{1}, {0, 3, 1, 2}})
        for (bool self : {false, true})
          for (std::size_t batch : {std::size_t(0), std::size_t(2)})
          {
            CAPTURE(fastknn::metric_name(m), at, radius, w.size(), self, batch);
            CHECK(check_radius<T>(x, n, q, nq, d, m, self, radius, w, batch));
          }
    }
}

TEST_CASE("distributed radius search: errors and stops reach every rank", "[mpi][radius]")
{
  Space space;
  int const me = rank(), last = ranks() - 1;
  std::size_t const d = 3, n_mine = 10;
  auto const xd = ft::to_device(
      space, ft::random_matrix<double>(n_mine, d, 60u + unsigned(me), -1, 1), n_mine, d);
  auto const qd = ft::to_device(space, ft::random_matrix<double>(4, d, 61u, -1, 1), 4, d);
  fastknn::mpi::Index<Space, decltype(xd)> const index(MPI_COMM_WORLD, space, xd,
                                                       Metric::L2Squared);
  fastknn::RadiusOptions opt;
  opt.metric = Metric::L2Squared;
  double const nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(fails_everywhere([&] { index.radius_search(space, qd, me == last ? nan : 1.0, opt); },
                         "radius is NaN"));
  fastknn::RadiusOptions capped = opt;
  capped.max_results = 5;
  CHECK(
      fails_everywhere([&] { index.radius_search(space, qd, 100.0, capped); }, "max_results = 5"));
  fastknn::RadiusOptions stopped = opt;
  stopped.progress = [me, last](double) { return me != last; };
  CHECK(fails_everywhere([&] { index.radius_search(space, qd, 100.0, stopped, {1}); }, "stopped",
                         true));
  fastknn::RadiusOptions other = opt;
  other.metric = Metric::L1;
  CHECK(fails_everywhere([&] { index.radius_search(space, qd, 1.0, other); }, "built for metric"));
}

int main(int argc, char *argv[])
{
  MPI_Init(&argc, &argv);
  int status = 0;
  {
    Kokkos::ScopeGuard guard(argc, argv);
    status = Catch::Session().run(argc, argv);
  }
  MPI_Allreduce(MPI_IN_PLACE, &status, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return status;
}
