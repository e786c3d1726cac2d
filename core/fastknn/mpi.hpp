#pragma once
/// \file fastknn/mpi.hpp
/// Exact distributed search over MPI (target FastKNN::mpi): the database is split into shards,
/// one per rank, and every rank gets the global top k of its own queries, identical bit for bit
/// to fastknn::search over the concatenated database (docs/distributed.md).
///
/// How: the ranks' queries travel to every rank in rounds (an all-gather of at most `batch`
/// queries per rank), each rank searches its shard for the whole round with the single-process
/// search (its proof makes each shard's top k exact), and the per-shard lists go back to the
/// queries' owners (an all-to-all of k pairs per query and shard), which merge them by
/// (value, global index). Communication per query: its D values to every rank and k pairs from
/// every rank, never O(N). Every call is collective: all ranks of the communicator call it in
/// the same order. An error on one rank is raised on every rank as the same fastknn::Error.

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <fastknn/detail/mpi_collective.hpp>
#include <fastknn/error.hpp>
#include <fastknn/index.hpp>
#include <fastknn/options.hpp>
#include <fastknn/radius.hpp>

namespace fastknn::mpi
{

/// What one distributed search did on this rank, filled in when a pointer is passed.
struct DistributedStats
{
  int ranks = 1;
  std::size_t rounds = 0;          ///< all-gather rounds
  std::size_t batch = 0;           ///< queries per rank and round (at most)
  double search_seconds = 0;       ///< this rank's searches of its shard
  double exchange_seconds = 0;     ///< MPI calls (queries out, lists back), waits included
  double merge_seconds = 0;        ///< merging the per-shard lists of this rank's queries
  std::size_t bytes_sent = 0;      ///< payload this rank sent (queries and lists)
  std::size_t exact_fallbacks = 0; ///< exact scans in this rank's shard searches
};

/// Distributed settings of a search (the rest are fastknn::SearchOptions).
struct DistributedOptions
{
  /// Queries each rank contributes per round; 0 sizes the rounds from the workspace budget
  /// (their buffers take at most a quarter of SearchOptions::workspace_bytes).
  std::size_t batch_queries = 0;
  /// If set, receives what this rank did (rounds, time split, bytes sent).
  DistributedStats *stats = nullptr;
};

/// A database split over the ranks of a communicator: each rank holds its shard (any number of
/// rows, none included); global row i is row i - offset(r) of the rank r whose rows cover it
/// (shards in rank order). Building it is collective; so is every search. The index keeps the
/// communicator (not a duplicate): it must outlive the index, and no other thread may run
/// collective calls on it during a search. It uses the shard's View without a copy
/// (fastknn::borrow_data): the shard's rows must not change while the index lives.
template <class ExecSpace, class DatabaseView>
requires fastknn::detail::is_space_v<ExecSpace>
class Index
{
public:
  using value_type = std::remove_const_t<typename DatabaseView::value_type>;
  using memory_space = typename ExecSpace::memory_space;
  using Local = fastknn::Index<ExecSpace, DatabaseView>;

  Index(MPI_Comm comm, ExecSpace const &space, DatabaseView const &shard,
        Metric metric = Metric::L2Squared)
      : _comm(comm), _metric(metric)
  {
    fastknn::detail::check_view<ExecSpace, DatabaseView>();
    detail::Comm const c(_comm);
    _rows = detail::all_sizes(c, shard.extent(0));
    _offsets = detail::offsets_of(_rows);
    std::size_t const mine = shard.extent(0);
    std::vector<std::size_t> const dims = detail::all_sizes(c, mine > 0 ? shard.extent(1) : 0);
    detail::collectively(c, "",
                         [&]
                         {
                           check_shapes(c, dims);
                           _dim = *std::max_element(dims.begin(), dims.end());
                         });
    detail::collectively(c, shard_name(c.rank),
                         [&]
                         {
                           if (mine > 0)
                             _local.emplace(space, shard, metric, fastknn::borrow_data);
                         });
  }

  /// The global k nearest rows of each of this rank's queries (Q_r x D, any Q_r including 0):
  /// global indices, best first, ties to the smaller global index, as fastknn::search over the
  /// concatenated shards. With options.exclude_self each rank's queries must be its own shard
  /// (Q_r == N_r): query i of rank r is global row offset(r) + i and never returns it.
  /// options.progress is called on every rank with the fraction of the rounds done; one that
  /// returns false on any rank stops all of them (fastknn::Cancelled everywhere).
  template <class QueryView>
  Neighbors<memory_space, value_type> search(ExecSpace const &space, QueryView const &queries,
                                             int k, SearchOptions const &options = {},
                                             DistributedOptions const &distributed = {}) const
  {
    fastknn::detail::check_view<ExecSpace, QueryView>();
    static_assert(std::is_same_v<value_type, std::remove_const_t<typename QueryView::value_type>>,
                  "fastknn::mpi::Index::search: the queries must have the database's value type");
    detail::Comm const c(_comm);
    std::vector<std::size_t> const q_rows = detail::all_sizes(c, queries.extent(0));
    detail::collectively(c, "", [&] { check_search(c, queries, q_rows, k, options); });
    return run(c, space, queries, q_rows, k, options, distributed);
  }

  /// Every global row within `radius` of each of this rank's queries (distance <= radius;
  /// similarity >= radius for inner product and cosine), as fastknn::radius_search over the
  /// concatenated shards: compressed rows of global indices, best first, ties to the smaller
  /// index. exclude_self and progress as in search(); max_results bounds this rank's answer and
  /// each shard's part of a round (detail/mpi_radius.hpp).
  template <class QueryView>
  RadiusNeighbors<memory_space, value_type>
  radius_search(ExecSpace const &space, QueryView const &queries, double radius,
                RadiusOptions const &options = {},
                DistributedOptions const &distributed = {}) const;

  Metric metric() const { return _metric; }
  std::size_t size() const { return _offsets.back(); }                  ///< global rows
  std::size_t local_size() const { return _rows[std::size_t(rank())]; } ///< this rank's rows
  std::size_t offset() const { return _offsets[std::size_t(rank())]; }  ///< its first global row
  std::size_t dimension() const { return _dim; }
  MPI_Comm communicator() const { return _comm; }

private:
  using T = value_type;

  int rank() const
  {
    int r = 0;
    MPI_Comm_rank(_comm, &r);
    return r;
  }

  std::string shard_name(int r) const
  {
    std::size_t const n = _rows[std::size_t(r)], o = _offsets[std::size_t(r)];
    if (n == 0)
      return "its shard (empty): ";
    return "its shard (global rows " + std::to_string(o) + " to " + std::to_string(o + n - 1) +
           ", numbered from 0 below): ";
  }

  void check_shapes(detail::Comm const &c, std::vector<std::size_t> const &dims) const
  {
    std::size_t const n = _offsets.back();
    fastknn::detail::require(n > 0, "every shard is empty (0 rows in all " +
                                        std::to_string(c.size) +
                                        " ranks); give at least one rank some rows");
    fastknn::detail::check_database_shape(n, 1);
    std::size_t d = 0;
    for (int r = 0; r < c.size; ++r)
    {
      std::size_t const dr = dims[std::size_t(r)];
      if (dr == 0)
        continue;
      fastknn::detail::require(d == 0 || dr == d,
                               "dimension mismatch between shards: rank " + std::to_string(r) +
                                   " has " + std::to_string(dr) + " columns, an earlier rank " +
                                   std::to_string(d) + "; every shard needs the same columns");
      d = dr;
    }
  }

  template <class QueryView>
  void check_search(detail::Comm const &c, QueryView const &queries,
                    std::vector<std::size_t> const &q_rows, int k,
                    SearchOptions const &options) const
  {
    using fastknn::detail::require;
    std::size_t const n = size(), me = std::size_t(c.rank);
    require(options.metric == _metric,
            "this index was built for metric " + std::string(metric_name(_metric)) +
                " but the search asks for " + std::string(metric_name(options.metric)));
    require(k >= 1, "k = " + std::to_string(k) + " is invalid; k must be at least 1");
    std::size_t const limit = options.exclude_self ? n - 1 : n;
    require(std::size_t(k) <= limit,
            "k = " + std::to_string(k) +
                " is larger than the global database allows (N = " + std::to_string(n) +
                (options.exclude_self ? ", k <= N-1 with exclude_self" : "") + "); lower k");
    if (queries.extent(0) > 0)
      require(queries.extent(1) == _dim, "dimension mismatch: the database has " +
                                             std::to_string(_dim) + " columns but this rank's " +
                                             "queries have " + std::to_string(queries.extent(1)));
    if (options.exclude_self)
      require(q_rows[me] == _rows[me],
              "exclude_self needs each rank's queries to be its shard, but this rank has " +
                  std::to_string(q_rows[me]) + " queries and " + std::to_string(_rows[me]) +
                  " rows");
    fastknn::detail::checked_mul(q_rows[me], std::size_t(k), "output size Q x k");
  }

  /// Host bytes of one round's buffers per query a rank contributes (queries gathered, host
  /// and device; lists sent, received and merged).
  std::size_t exchange_bytes_per_query(detail::Comm const &c, int kk) const
  {
    std::size_t const pair = sizeof(T) + sizeof(index_type);
    return std::size_t(c.size) * (2 * _dim * sizeof(T) + 4 * std::size_t(kk) * pair);
  }

  /// Queries per rank and round: asked for, or as many as a quarter of the workspace budget
  /// holds (the shard searches keep the rest); the same on every rank, and MPI's int counts
  /// never overflow.
  std::size_t batch_size(detail::Comm const &c, std::size_t asked, std::size_t per_query,
                         std::size_t budget, std::size_t max_queries) const
  {
    std::size_t b = asked > 0 ? asked : std::max<std::size_t>(1, budget / 4 / per_query);
    std::size_t const widest = std::max<std::size_t>(_dim, per_query / std::size_t(c.size));
    b = std::min(b, std::size_t(INT_MAX) / (std::size_t(c.size) * widest));
    b = std::max<std::size_t>(1, std::min(b, max_queries));
    unsigned long long v = b;
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, c.comm);
    return std::size_t(v);
  }

  /// Where one round's queries lie: rank r sends count[r] of its queries, starting at its
  /// query `begin[r]`, and they are rows first[r].. of the gathered batch.
  struct Round
  {
    std::vector<std::size_t> count, begin, first;
    std::size_t gathered() const { return first.back(); }
  };

  static Round round_layout(std::vector<std::size_t> const &q_rows, std::size_t round,
                            std::size_t batch)
  {
    std::size_t const p = q_rows.size();
    Round r{std::vector<std::size_t>(p), std::vector<std::size_t>(p),
            std::vector<std::size_t>(p + 1, 0)};
    for (std::size_t i = 0; i < p; ++i)
    {
      r.begin[i] = std::min(q_rows[i], round * batch);
      r.count[i] = std::min(q_rows[i], r.begin[i] + batch) - r.begin[i];
      r.first[i + 1] = r.first[i] + r.count[i];
    }
    return r;
  }

  /// This rank's queries as contiguous row-major host rows (any layout, any memory space).
  template <class QueryView>
  std::vector<T> host_rows(ExecSpace const &space, QueryView const &queries) const
  {
    auto const h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, queries);
    space.fence("fastknn::mpi::queries");
    std::vector<T> rows(h.extent(0) * _dim);
    for (std::size_t i = 0; i < h.extent(0); ++i)
      for (std::size_t j = 0; j < _dim; ++j)
        rows[i * _dim + j] = h(i, j);
    return rows;
  }

  /// Non-finite queries are refused by their owner, naming the global query row (a shard's
  /// search would see them only as rows of a gathered batch).
  void check_finite_queries(std::vector<T> const &rows, std::size_t first_query) const
  {
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (!std::isfinite(rows[i]))
        throw Error("query row " + std::to_string(first_query + i / _dim) +
                    " contains NaN or Inf; clean the data");
  }

  /// This rank's queries as host rows, refused (on every rank) when one is not finite.
  template <class QueryView>
  std::vector<T> my_queries(detail::Comm const &c, ExecSpace const &space, QueryView const &queries,
                            std::vector<std::size_t> const &q_rows) const
  {
    std::vector<T> mine;
    detail::collectively(c, "",
                         [&]
                         {
                           mine = host_rows(space, queries);
                           check_finite_queries(mine,
                                                detail::offsets_of(q_rows)[std::size_t(c.rank)]);
                         });
    return mine;
  }

  /// The round's queries of every rank, on every rank (an all-gather).
  void gather(detail::Comm const &c, Round const &r, std::vector<T> const &mine,
              std::vector<T> &gathered, DistributedStats &st) const
  {
    std::size_t const p = std::size_t(c.size), me = std::size_t(c.rank);
    detail::collectively(c, "", [&] { gathered.resize(r.gathered() * _dim); });
    std::vector<std::size_t> cnt(p), disp(p);
    for (std::size_t i = 0; i < p; ++i)
    {
      cnt[i] = r.count[i] * _dim;
      disp[i] = r.first[i] * _dim;
    }
    auto const ci = detail::to_int_counts(cnt), di = detail::to_int_counts(disp);
    T const *send = r.count[me] > 0 ? mine.data() + r.begin[me] * _dim : nullptr;
    MPI_Allgatherv(send, ci[me], detail::datatype<T>(), gathered.data(), ci.data(), di.data(),
                   detail::datatype<T>(), c.comm);
    st.bytes_sent += cnt[me] * sizeof(T) * (p - 1);
  }

  /// Every shard's lists of this rank's round queries (an all-to-all): from shard i,
  /// count[me] x ks[i] pairs starting at recv_first[i].
  void return_lists(detail::Comm const &c, Round const &r, std::vector<int> const &ks,
                    std::vector<index_type> const &idx, std::vector<T> const &val,
                    std::vector<index_type> &recv_idx, std::vector<T> &recv_val,
                    std::vector<std::size_t> &recv_first, DistributedStats &st) const
  {
    std::size_t const p = std::size_t(c.size), me = std::size_t(c.rank);
    std::size_t const my_k = std::size_t(ks[me]);
    std::vector<std::size_t> scnt(p), sdisp(p), rcnt(p);
    recv_first.assign(p + 1, 0);
    for (std::size_t i = 0; i < p; ++i)
    {
      scnt[i] = r.count[i] * my_k;
      sdisp[i] = r.first[i] * my_k;
      rcnt[i] = r.count[me] * std::size_t(ks[i]);
      recv_first[i + 1] = recv_first[i] + rcnt[i];
    }
    detail::collectively(c, "",
                         [&]
                         {
                           recv_idx.resize(recv_first[p]);
                           recv_val.resize(recv_first[p]);
                         });
    auto const sc = detail::to_int_counts(scnt), sd = detail::to_int_counts(sdisp);
    auto const rc = detail::to_int_counts(rcnt), rd = detail::to_int_counts(recv_first);
    MPI_Alltoallv(idx.data(), sc.data(), sd.data(), detail::datatype<index_type>(), recv_idx.data(),
                  rc.data(), rd.data(), detail::datatype<index_type>(), c.comm);
    MPI_Alltoallv(val.data(), sc.data(), sd.data(), detail::datatype<T>(), recv_val.data(),
                  rc.data(), rd.data(), detail::datatype<T>(), c.comm);
    st.bytes_sent += (r.gathered() - r.count[me]) * my_k * (sizeof(T) + sizeof(index_type));
  }

  template <class QueryView>
  Neighbors<memory_space, T> run(detail::Comm const &c, ExecSpace const &space,
                                 QueryView const &queries, std::vector<std::size_t> const &q_rows,
                                 int k, SearchOptions const &options,
                                 DistributedOptions const &distributed) const
  {
    using Clock = std::chrono::steady_clock;
    auto const since = [](Clock::time_point t0)
    { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    std::size_t const p = std::size_t(c.size), me = std::size_t(c.rank);
    std::size_t const q_mine = q_rows[me];
    // With exclude_self each shard returns one more, and the owner drops the query's own row.
    int const kk = k + (options.exclude_self ? 1 : 0);
    std::vector<int> ks(p); // list length from each shard
    for (std::size_t i = 0; i < p; ++i)
      ks[i] = int(std::min<std::size_t>(std::size_t(kk), _rows[i]));
    std::size_t const max_q = *std::max_element(q_rows.begin(), q_rows.end());
    DistributedStats st;
    st.ranks = c.size;
    std::size_t const exchange = exchange_bytes_per_query(c, kk);
    st.batch = batch_size(c, distributed.batch_queries, exchange, options.workspace_bytes, max_q);
    st.rounds = (max_q + st.batch - 1) / st.batch;
    SearchOptions local = options;
    local.exclude_self = false;
    local.workspace_bytes =
        options.workspace_bytes - std::min(options.workspace_bytes / 4, st.batch * exchange);
    SearchStats local_stats;
    local.stats = &local_stats;
    std::size_t rescored = 0;

    std::vector<T> const mine = my_queries(c, space, queries, q_rows);
    std::vector<index_type> out_idx;
    std::vector<T> out_val;
    detail::collectively(c, "",
                         [&]
                         {
                           out_idx.resize(q_mine * std::size_t(k));
                           out_val.resize(q_mine * std::size_t(k));
                         });
    std::vector<T> gathered, list_val, recv_val;
    std::vector<index_type> list_idx, recv_idx;
    std::vector<std::size_t> recv_first;
    for (std::size_t round = 0; round < st.rounds; ++round)
    {
      Round const r = round_layout(q_rows, round, st.batch);
      auto t0 = Clock::now();
      gather(c, r, mine, gathered, st);
      st.exchange_seconds += since(t0);

      // This rank's shard against all of the round's queries.
      t0 = Clock::now();
      std::size_t const g = r.gathered(), my_k = std::size_t(ks[me]);
      detail::collectively(c, shard_name(c.rank),
                           [&]
                           {
                             list_idx.assign(g * my_k, 0);
                             list_val.assign(g * my_k, T(0));
                             if (my_k == 0 || g == 0)
                               return;
                             local.progress = progress_in_round(options, round, st.rounds);
                             search_shard(space, gathered, g, int(my_k), local, list_idx, list_val);
                             st.exact_fallbacks += local_stats.exact_fallbacks;
                             rescored += local_stats.rescored;
                           });
      st.search_seconds += since(t0);

      t0 = Clock::now();
      return_lists(c, r, ks, list_idx, list_val, recv_idx, recv_val, recv_first, st);
      st.exchange_seconds += since(t0);

      t0 = Clock::now();
      bool const similarity = is_similarity(_metric);
      for (std::size_t i = 0; i < r.count[me]; ++i)
      {
        std::size_t const q = r.begin[me] + i;
        long long const self = options.exclude_self ? static_cast<long long>(offset() + q) : -1;
        merge_one(similarity, k, self, ks, recv_first, i, recv_idx, recv_val,
                  &out_idx[q * std::size_t(k)], &out_val[q * std::size_t(k)]);
      }
      st.merge_seconds += since(t0);
      detail::collectively(c, "",
                           [&]
                           {
                             if (options.progress &&
                                 !options.progress(double(round + 1) / double(st.rounds)))
                               throw Cancelled("the search was stopped by its progress "
                                               "callback; no result was kept");
                           });
    }
    if (distributed.stats != nullptr)
      *distributed.stats = st;
    if (options.stats != nullptr)
    {
      *options.stats = local_stats;
      options.stats->exact_fallbacks = st.exact_fallbacks;
      options.stats->rescored = rescored;
    }
    return to_space(space, out_idx, out_val, q_mine, k);
  }

  static ProgressCallback progress_in_round(SearchOptions const &options, std::size_t round,
                                            std::size_t rounds)
  {
    if (!options.progress)
      return {};
    ProgressCallback const user = options.progress;
    return [user, round, rounds](double f) { return user((double(round) + f) / double(rounds)); };
  }

  /// The shard's ks best rows for each of the g gathered queries, as global indices.
  void search_shard(ExecSpace const &space, std::vector<T> const &gathered, std::size_t g, int ks,
                    SearchOptions const &local, std::vector<index_type> &idx,
                    std::vector<T> &val) const
  {
    Kokkos::View<T const **, Kokkos::LayoutRight, Kokkos::HostSpace,
                 Kokkos::MemoryTraits<Kokkos::Unmanaged>>
        h(gathered.data(), g, _dim);
    auto const qd = Kokkos::create_mirror_view_and_copy(space, h);
    auto const found = _local->search(space, qd, ks, local);
    Kokkos::View<index_type **, Kokkos::LayoutRight, Kokkos::HostSpace> hi(idx.data(), g, ks);
    Kokkos::View<T **, Kokkos::LayoutRight, Kokkos::HostSpace> hv(val.data(), g, ks);
    Kokkos::deep_copy(space, hi, found.indices);
    Kokkos::deep_copy(space, hv, found.distances);
    space.fence("fastknn::mpi::shard_results");
    auto const off = static_cast<index_type>(offset());
    for (auto &i : idx)
      i += off;
  }

  /// The shard's rows within the radius of each of the g gathered queries: their counts, then
  /// the pairs (global indices), query after query.
  void search_shard_radius(ExecSpace const &space, std::vector<T> const &gathered, std::size_t g,
                           double radius, RadiusOptions const &local,
                           std::vector<unsigned long long> &counts, std::vector<index_type> &idx,
                           std::vector<T> &val) const;

  /// Merges query i's sorted list from every shard into its global k best (without `self`).
  static void merge_one(bool similarity, int k, long long self, std::vector<int> const &ks,
                        std::vector<std::size_t> const &rdisp, std::size_t i,
                        std::vector<index_type> const &idx, std::vector<T> const &val,
                        index_type *out_i, T *out_v)
  {
    std::size_t const p = ks.size();
    std::vector<int> head(p, 0);
    for (int j = 0; j < k;)
    {
      std::size_t best = p;
      T bv = T(0);
      index_type bi = 0;
      for (std::size_t r = 0; r < p; ++r)
      {
        if (head[r] >= ks[r])
          continue;
        std::size_t const at = rdisp[r] + i * std::size_t(ks[r]) + std::size_t(head[r]);
        if (best == p || detail::ranks_before(similarity, val[at], idx[at], bv, bi))
        {
          best = r;
          bv = val[at];
          bi = idx[at];
        }
      }
      if (best == p) // cannot happen: k <= N (N - 1 with exclude_self) was checked
        throw Error("internal error: the shards returned fewer than k rows");
      ++head[best];
      if (static_cast<long long>(bi) == self)
        continue;
      out_i[j] = bi;
      out_v[j] = bv;
      ++j;
    }
  }

  Neighbors<memory_space, T> to_space(ExecSpace const &space, std::vector<index_type> &idx,
                                      std::vector<T> &val, std::size_t q, int k) const
  {
    Neighbors<memory_space, T> out;
    out.indices = decltype(out.indices)(
        Kokkos::view_alloc(space, Kokkos::WithoutInitializing, "fastknn::mpi::indices"), q, k);
    out.distances = decltype(out.distances)(
        Kokkos::view_alloc(space, Kokkos::WithoutInitializing, "fastknn::mpi::distances"), q, k);
    Kokkos::View<index_type **, Kokkos::LayoutRight, Kokkos::HostSpace> hi(idx.data(), q, k);
    Kokkos::View<T **, Kokkos::LayoutRight, Kokkos::HostSpace> hv(val.data(), q, k);
    Kokkos::deep_copy(space, out.indices, hi);
    Kokkos::deep_copy(space, out.distances, hv);
    space.fence("fastknn::mpi::results");
    return out;
  }

  MPI_Comm _comm;
  Metric _metric;
  std::vector<std::size_t> _rows, _offsets;
  std::size_t _dim = 0;
  std::optional<Local> _local;
};

/// One distributed search: an mpi::Index built and searched once (collective).
template <class ExecSpace, class DatabaseView, class QueryView>
requires fastknn::detail::is_space_v<ExecSpace> Neighbors<
    typename ExecSpace::memory_space, std::remove_const_t<typename DatabaseView::value_type>>
search(MPI_Comm comm, ExecSpace const &space, DatabaseView const &shard, QueryView const &queries,
       int k, SearchOptions const &options = {}, DistributedOptions const &distributed = {})
{
  Index<ExecSpace, DatabaseView> const index(comm, space, shard, options.metric);
  return index.search(space, queries, k, options, distributed);
}

} // namespace fastknn::mpi

#include <fastknn/detail/mpi_radius.hpp>
