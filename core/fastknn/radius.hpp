#pragma once
/// \file fastknn/radius.hpp
/// Exact radius search: every database row within a radius of each query, as compressed rows
/// (offsets, indices, distances), each query's rows best first with ties by the smaller index.
///
/// How it stays exact: it is built on the exact k search (fastknn::Index::search), whose top k
/// is the true one by (value, index). A query's rows within the radius are a prefix of its top
/// k; when fewer than k of them are within the radius, the (k+1)-th row and every later one is
/// outside it too (it ranks after the k-th, which is already outside), so the prefix is the
/// whole answer. The queries whose k are all inside are searched again with a larger k (8x per
/// round, at most N), in batches whose Q x k results fit the workspace budget. A row on the
/// boundary is decided on the distance the k search reports, computed exactly from the rows.
///
/// Cost: on a large database, first a radius search on a sample of its rows (1/16 or less of a
/// scan) that estimates each query's count; then one k search with about that k (at least
/// options.initial_k) for every query, and one more for each query with more rows inside than
/// that k (few: the estimate has a margin of two standard deviations).

#include <Kokkos_Core.hpp>
#include <Kokkos_Profiling_ScopedRegion.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fastknn/error.hpp>
#include <fastknn/index.hpp>
#include <fastknn/options.hpp>
#include <fastknn/search.hpp>

namespace fastknn
{

/// Options of fastknn::radius_search: the k search's (metric, exclude_self, workspace, progress)
/// and two of its own.
struct RadiusOptions : SearchOptions
{
  /// k of the first round (clamped to 1..N). A query with more rows inside is searched again
  /// with 8 times the k; set it near the typical count to save rounds.
  int initial_k = 32;
  /// Refuse (fastknn::Error, no partial result) when more than this many (query, row) pairs are
  /// inside; 0: no limit but memory.
  std::size_t max_results = 0;
  /// A database of at least this many rows is sampled first (every 16th row or sparser, at
  /// most 65,536 rows): a radius search on the sample estimates each query's count, which sets
  /// its first k (never below initial_k). Only the cost depends on it, never the answer.
  /// SIZE_MAX: never sample.
  std::size_t sample_from = 16384;
};

/// Result of a radius search: the rows of query q are indices(offsets(q) .. offsets(q + 1) - 1),
/// with their distances (similarities for InnerProduct and Cosine), best first, ties by the
/// smaller index. offsets has Q + 1 entries, offsets(0) = 0.
template <class MemorySpace, class Value = float>
struct RadiusNeighbors
{
  Kokkos::View<std::size_t *, MemorySpace> offsets;
  Kokkos::View<index_type *, MemorySpace> indices;
  Kokkos::View<Value *, MemorySpace> distances;
};

namespace detail
{

/// True when value `v` is within `radius`: v <= radius for distances, v >= radius for
/// similarities (then the radius is the least similarity).
KOKKOS_INLINE_FUNCTION bool within(Metric m, double v, double radius)
{
  return is_similarity(m) ? v >= radius : v <= radius;
}

/// Rows of one round's search that belong to the query's answer: `k` pairs of row q of `found`
/// (k + 1 when `skip` names a row to leave out: the query's own), the first `limit` at most.
template <class MS, class T>
struct RoundRows
{
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> indices;
  Kokkos::View<T **, Kokkos::LayoutRight, MS> distances;
  int k;
  /// Calls f(position in the answer, row, value) for the query's rows in order, dropping the
  /// row `skip` (negative: none), at most k of them.
  template <class F>
  KOKKOS_INLINE_FUNCTION void each(std::size_t q, long skip, F &&f) const
  {
    int out = 0;
    for (std::size_t j = 0; j < indices.extent(1) && out < k; ++j)
    {
      index_type const r = indices(q, j);
      if (long(r) == skip)
        continue;
      f(out++, r, distances(q, j));
    }
  }
};

/// Runs `alloc()`, which allocates room for `pairs` (query, row) pairs of a radius search's
/// answer, turning a failed allocation into an Error that says what to do.
template <class Alloc>
void allocate_answer(std::size_t pairs, Alloc &&alloc)
{
  auto const fail = [&](char const *what)
  {
    return Error("out of memory holding the radius search's " + std::to_string(pairs) +
                 " (query, row) pairs (" + what +
                 "); use a smaller radius or fewer queries, or set max_results to refuse such "
                 "searches early");
  };
  try
  {
    alloc();
  }
  catch (std::bad_alloc const &e) // Kokkos 4
  {
    throw fail(e.what());
  }
  catch (std::runtime_error const &e) // Kokkos 5's BadAlloc
  {
    if (std::string_view(e.what()).find("failed to allocate") == std::string_view::npos)
      throw;
    throw fail(e.what());
  }
}

} // namespace detail

namespace detail
{

/// A View of the space's memory holding `n` values of a host array (from `first`).
template <class ExecSpace>
Kokkos::View<std::size_t *, typename ExecSpace::memory_space>
to_space(ExecSpace const &space, std::vector<std::size_t> const &host, std::size_t first,
         std::size_t n, char const *label)
{
  Kokkos::View<std::size_t *, typename ExecSpace::memory_space> out(
      Kokkos::view_alloc(space, Kokkos::WithoutInitializing, std::string(label)), n);
  Kokkos::deep_copy(
      space, out,
      Kokkos::View<std::size_t const *, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
          host.data() + first, n));
  return out;
}

/// One radius search (fastknn::radius_search): rounds of k searches with a growing k, each
/// answered query's rows gathered into a pool, then the compressed rows (docs/design.md,
/// "Radius search"). Kernels capture only locals (no `this`: the object lives on the host).
template <class ExecSpace, class DatabaseView, class QueryView>
class RadiusRounds
{
public:
  using T = std::remove_const_t<typename DatabaseView::value_type>;
  using MS = typename ExecSpace::memory_space;
  using Found = Neighbors<MS, T>;
  using Ids = Kokkos::View<std::size_t *, MS>;

  RadiusRounds(ExecSpace const &space, Index<ExecSpace, DatabaseView> const &index,
               QueryView const &queries, double radius, RadiusOptions const &options)
      : _space(space), _index(index), _queries(queries), _radius(radius), _options(options),
        _nq(queries.extent(0)), _n(index.size()), _self(options.exclude_self),
        _most(_n - (_self ? 1 : 0)), _start(_nq, 0), _count(_nq, 0)
  {
    require(!std::isnan(radius), "the radius is NaN; give a number (it may be infinite)");
    require(options.initial_k > 0,
            "initial_k is " + std::to_string(options.initial_k) + "; it must be at least 1");
    require(options.metric == index.metric(),
            "this index was built for metric " + std::string(metric_name(index.metric())) +
                " but the radius search asks for " + std::string(metric_name(options.metric)) +
                "; build an Index with that metric");
    require(_nq > 0, "the query set is empty (0 rows); pass at least one query");
    require(!_self || _nq == _n,
            "exclude_self needs the database itself as the queries (Q == N), got Q = " +
                std::to_string(_nq) + " and N = " + std::to_string(_n));
    // The searches of the rounds: the caller's options without exclude_self (the query's own
    // row is dropped here from k + 1, wherever it ranks: a gathered block is not the database).
    _round = options;
    _round.exclude_self = false;
    _round.stats = &_round_stats;
    _pool_i = Kokkos::View<index_type *, MS>("fastknn::radius::pool_indices", 0);
    _pool_d = Kokkos::View<T *, MS>("fastknn::radius::pool_distances", 0);
  }

  RadiusNeighbors<MS, T> run()
  {
    // The queries still to answer, by the k of their next search (round one: initial_k for
    // all; later, each query's estimate from its previous round, see take_batch).
    std::map<std::size_t, std::vector<std::size_t>> todo;
    if (_most > 0)
    {
      std::vector<std::size_t> const first = first_round_k();
      for (std::size_t q = 0; q < _nq; ++q)
        todo[first[q]].push_back(q);
    }
    while (!todo.empty())
    {
      auto node = todo.extract(todo.begin()); // the smallest k first
      std::size_t const k = node.key();
      std::vector<std::size_t> const &pending = node.mapped();
      std::size_t const searched = std::min(_n, k + (_self ? 1 : 0));
      // Batches whose results (Q x searched pairs) stay within the workspace budget.
      std::size_t const batch = std::clamp<std::size_t>(
          _options.workspace_bytes /
              std::max<std::size_t>(1, searched * (sizeof(index_type) + sizeof(T))),
          1, pending.size());
      for (std::size_t b0 = 0; b0 < pending.size(); b0 += batch)
      {
        std::size_t const nb = std::min(batch, pending.size() - b0);
        Ids const ids = to_space(_space, pending, b0, nb, "fastknn::radius::batch");
        // In place when the batch is every query in order (sorted, all of them).
        bool const identity = nb == _nq && std::is_sorted(pending.begin(), pending.end());
        Found const found = search_batch(ids, nb, searched, identity);
        take_batch(found, ids, pending, b0, nb, k, todo);
      }
    }
    if (_options.progress && _reported < 1.0 && !_options.progress(1.0))
      throw Cancelled("the radius search was stopped by its progress callback");
    return compress();
  }

  // (The steps below are public: nvcc refuses extended lambdas in private member functions.)

  /// The k of each query's first round: initial_k, or on a database of options.sample_from rows
  /// or more, an estimate of the query's count. A radius search on every s-th row (s >= 16, at
  /// most 65,536 rows, the same queries and radius) finds c of them inside; the database then
  /// holds about s c rows inside, rarely more than s (c + 2 sqrt(c) + 1) (two binomial standard
  /// deviations and one row), which, rounded up to a step of 2^(1/4) (few distinct k), is the
  /// first k. An underestimate costs one more round, an overestimate a larger k: never the answer.
  std::vector<std::size_t> first_round_k()
  {
    std::size_t const least = std::min<std::size_t>(std::size_t(_options.initial_k), _most);
    std::vector<std::size_t> first(_nq, least);
    if (_n < _options.sample_from)
      return first;
    std::size_t const step = std::max<std::size_t>(16, (_n + 65535) / 65536);
    std::size_t const ns = (_n + step - 1) / step, d = _index.dimension();
    using Rows = Kokkos::View<T **, Kokkos::LayoutRight, MS>;
    Rows const rows(Kokkos::view_alloc(_space, Kokkos::WithoutInitializing,
                                       std::string("fastknn::radius::sample")),
                    ns, d);
    auto const database = _index.database();
    Kokkos::parallel_for(
        "fastknn::radius::sample", Kokkos::RangePolicy<ExecSpace>(_space, 0, ns * d),
        KOKKOS_LAMBDA(std::size_t i) { rows(i / d, i % d) = database((i / d) * step, i % d); });
    Index<ExecSpace, Rows> const sample(_space, rows, _index.metric(), borrow_data);
    RadiusOptions options = _options;
    options.exclude_self = false;
    options.stats = nullptr;
    options.sample_from = ~std::size_t(0);
    // Stopping works during the sample's search too; its progress is not reported (it is a
    // small part of the work).
    if (_options.progress)
      options.progress = [this](double) { return _options.progress(0.0); };
    auto const found =
        RadiusRounds<ExecSpace, Rows, QueryView>(_space, sample, _queries, _radius, options).run();
    auto const offsets = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
    for (std::size_t q = 0; q < _nq; ++q)
    {
      double const c = double(offsets(q + 1) - offsets(q));
      double const rows_inside = double(step) * (c + 2.0 * std::sqrt(c) + 1.0);
      double const k = std::ceil(std::exp2(std::ceil(4.0 * std::log2(rows_inside)) / 4.0));
      first[q] = k >= double(_most) ? _most : std::max(least, std::size_t(k));
    }
    return first;
  }

  /// The k search of one batch of queries (`ids`; the queries in place when they are all).
  Found search_batch(Ids const &ids, std::size_t nb, std::size_t searched, bool all)
  {
    _round.progress = ProgressCallback();
    if (_options.progress)
      _round.progress = [this, nb](double f)
      {
        double const at = (double(_answered) + f * double(nb)) / double(_nq);
        _reported = std::max(_reported, std::min(at, 1.0));
        return _options.progress(_reported);
      };
    Found found;
    if (all)
      found = _index.search(_space, _queries, int(searched), _round);
    else
    {
      if (_gathered.extent(0) < nb)
        _gathered = Kokkos::View<T **, Kokkos::LayoutRight, MS>(
            Kokkos::view_alloc(_space, Kokkos::WithoutInitializing, "fastknn::radius::queries"), nb,
            _queries.extent(1));
      auto const g = _gathered;
      auto const queries = _queries;
      std::size_t const d = queries.extent(1);
      Kokkos::parallel_for(
          "fastknn::radius::gather", Kokkos::RangePolicy<ExecSpace>(_space, 0, nb * d),
          KOKKOS_LAMBDA(std::size_t i) { g(i / d, i % d) = queries(ids(i / d), i % d); });
      found = _index.search(_space,
                            Kokkos::subview(g, Kokkos::make_pair(std::size_t(0), nb), Kokkos::ALL),
                            int(searched), _round);
    }
    if (_options.stats != nullptr)
    {
      if (_first_search)
        *_options.stats = _round_stats;
      else
      {
        _options.stats->rescored += _round_stats.rescored;
        _options.stats->exact_fallbacks += _round_stats.exact_fallbacks;
      }
      _first_search = false;
    }
    return found;
  }

  /// Counts the rows inside for each query of the batch (at most k); the answered ones (fewer
  /// than k inside, or k already N) copy theirs into the pool, the others go back to `todo`
  /// with a larger k. That k only sets the cost, never the answer (any k gives an exact
  /// prefix): for the distance metrics it is estimated from how the distance grows between the
  /// (k/2)-th and the k-th row (counts ~ distance^m, m from those two), 1.25x the estimate,
  /// between 2k and 64k; otherwise 8k.
  void take_batch(Found const &found, Ids const &ids, std::vector<std::size_t> const &pending,
                  std::size_t b0, std::size_t nb, std::size_t k,
                  std::map<std::size_t, std::vector<std::size_t>> &todo)
  {
    RoundRows<MS, T> const rows{found.indices, found.distances, int(k)};
    Ids const inside(
        Kokkos::view_alloc(_space, Kokkos::WithoutInitializing, "fastknn::radius::inside"), nb);
    Kokkos::View<double *, MS> estimate(
        Kokkos::view_alloc(_space, Kokkos::WithoutInitializing, "fastknn::radius::estimate"), nb);
    bool const self = _self;
    Metric const metric = _index.metric();
    double const radius = _radius;
    Kokkos::parallel_for(
        "fastknn::radius::count", Kokkos::RangePolicy<ExecSpace>(_space, 0, nb),
        KOKKOS_LAMBDA(std::size_t b) {
          std::size_t c = 0;
          bool open = true;
          double half = 0, last = 0;
          int const mid = int(rows.k) / 2 - 1;
          rows.each(b, self ? long(ids(b)) : -1,
                    [&](int j, index_type, T v)
                    {
                      open = open && within(metric, double(v), radius);
                      c += open ? 1 : 0;
                      half = j == mid ? double(v) : half;
                      last = double(v);
                    });
          inside(b) = c;
          double e = 8.0 * double(rows.k);
          if (!is_similarity(metric) && mid >= 0 && half > 0 && last > half && radius > last)
            e = double(rows.k) *
                Kokkos::pow(radius / last, Kokkos::log(2.0) / Kokkos::log(last / half));
          estimate(b) = e;
        });
    auto const host_inside = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, inside);
    auto const host_estimate = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, estimate);
    std::vector<std::size_t> at(nb, ~std::size_t(0));
    std::size_t add = 0;
    for (std::size_t b = 0; b < nb; ++b)
    {
      std::size_t const q = pending[b0 + b], c = host_inside(b);
      if (c == k && k < _most)
      {
        double want = 1.25 * host_estimate(b); // (NaN or below: 2k; above: 64k)
        want = want >= 2.0 * double(k) ? std::min(want, 64.0 * double(k)) : 2.0 * double(k);
        std::size_t next = 1;
        while (double(next) < want) // a power of two: few distinct k, few searches
          next *= 2;
        todo[std::min(next, _most)].push_back(q);
        continue;
      }
      at[b] = _start[q] = _used + add;
      _count[q] = c;
      add += c;
      ++_answered;
    }
    require(
        _options.max_results == 0 || _used + add <= _options.max_results,
        "the radius search finds more than max_results = " + std::to_string(_options.max_results) +
            " (query, row) pairs inside the radius; use a smaller radius, fewer queries or a "
            "larger max_results");
    if (_used + add > _pool_i.extent(0))
    {
      std::size_t const grown = std::max(_used + add, 2 * _pool_i.extent(0));
      allocate_answer(grown,
                      [&]
                      {
                        Kokkos::resize(Kokkos::view_alloc(_space), _pool_i, grown);
                        Kokkos::resize(Kokkos::view_alloc(_space), _pool_d, grown);
                      });
    }
    Ids const atv = to_space(_space, at, 0, nb, "fastknn::radius::at");
    auto const pi = _pool_i;
    auto const pd = _pool_d;
    Kokkos::parallel_for(
        "fastknn::radius::take", Kokkos::RangePolicy<ExecSpace>(_space, 0, nb),
        KOKKOS_LAMBDA(std::size_t b) {
          std::size_t const to = atv(b), c = inside(b);
          if (to == ~std::size_t(0))
            return;
          rows.each(b, self ? long(ids(b)) : -1,
                    [&](int j, index_type r, T v)
                    {
                      if (std::size_t(j) < c)
                      {
                        pi(to + std::size_t(j)) = r;
                        pd(to + std::size_t(j)) = v;
                      }
                    });
        });
    _used += add;
    _space.fence("fastknn::radius::round");
  }

  /// The compressed rows, in query order, from the pool.
  RadiusNeighbors<MS, T> compress() const
  {
    RadiusNeighbors<MS, T> out;
    std::vector<std::size_t> offsets(_nq + 1, 0);
    for (std::size_t q = 0; q < _nq; ++q)
      offsets[q + 1] = offsets[q] + _count[q];
    std::size_t const total = offsets[_nq];
    allocate_answer(
        total,
        [&]
        {
          out.offsets = to_space(_space, offsets, 0, _nq + 1, "fastknn::radius::offsets");
          out.indices = Kokkos::View<index_type *, MS>(
              Kokkos::view_alloc(_space, Kokkos::WithoutInitializing, "fastknn::radius::indices"),
              total);
          out.distances = Kokkos::View<T *, MS>(
              Kokkos::view_alloc(_space, Kokkos::WithoutInitializing, "fastknn::radius::distances"),
              total);
        });
    Ids const from = to_space(_space, _start, 0, _nq, "fastknn::radius::from");
    auto const o = out.offsets;
    auto const oi = out.indices;
    auto const od = out.distances;
    auto const pi = _pool_i;
    auto const pd = _pool_d;
    Kokkos::parallel_for(
        "fastknn::radius::compress", Kokkos::RangePolicy<ExecSpace>(_space, 0, _nq),
        KOKKOS_LAMBDA(std::size_t q) {
          for (std::size_t j = 0; j < o(q + 1) - o(q); ++j)
          {
            oi(o(q) + j) = pi(from(q) + j);
            od(o(q) + j) = pd(from(q) + j);
          }
        });
    _space.fence("fastknn::radius_search");
    return out;
  }

private:
  ExecSpace _space;
  Index<ExecSpace, DatabaseView> const &_index;
  QueryView _queries;
  double _radius;
  RadiusOptions const &_options;
  std::size_t _nq, _n;
  bool _self;
  std::size_t _most; // the most rows a query can have inside
  // Each answered query's rows in the pool: where they start, how many.
  std::vector<std::size_t> _start, _count;
  Kokkos::View<index_type *, MS> _pool_i;
  Kokkos::View<T *, MS> _pool_d;
  std::size_t _used = 0; // pairs in the pool
  SearchOptions _round;
  SearchStats _round_stats;
  bool _first_search = true;
  double _reported = 0; // progress: the fraction of the queries answered
  std::size_t _answered = 0;
  Kokkos::View<T **, Kokkos::LayoutRight, MS> _gathered;
};

} // namespace detail

/// Every row of `index` within `radius` of each query row (distance <= radius; for the
/// similarity metrics, similarity >= radius). options.metric must be the index's metric.
/// options.exclude_self: the queries are the indexed rows themselves (Q == N) and query i never
/// returns row i. Throws fastknn::Error on invalid input, fastknn::Cancelled when the progress
/// callback stops it; either way no partial result is left.
template <class ExecSpace, class DatabaseView, class QueryView>
RadiusNeighbors<typename ExecSpace::memory_space,
                std::remove_const_t<typename DatabaseView::value_type>>
radius_search(ExecSpace const &space, Index<ExecSpace, DatabaseView> const &index,
              QueryView const &queries, double radius, RadiusOptions const &options)
{
  detail::check_view<ExecSpace, QueryView>();
  Kokkos::Profiling::ScopedRegion region("fastknn::radius_search");
  return detail::RadiusRounds<ExecSpace, DatabaseView, QueryView>(space, index, queries, radius,
                                                                  options)
      .run();
}

/// The radius search with the index's metric and default options.
template <class ExecSpace, class DatabaseView, class QueryView>
RadiusNeighbors<typename ExecSpace::memory_space,
                std::remove_const_t<typename DatabaseView::value_type>>
radius_search(ExecSpace const &space, Index<ExecSpace, DatabaseView> const &index,
              QueryView const &queries, double radius)
{
  RadiusOptions options;
  options.metric = index.metric();
  return radius_search(space, index, queries, radius, options);
}

/// Every row of `database` within `radius` of each query row (an Index built and searched once;
/// see the Index overload).
template <class ExecSpace, class DatabaseView, class QueryView>
requires(detail::is_space_v<ExecSpace> &&Kokkos::is_view_v<DatabaseView>) RadiusNeighbors<
    typename ExecSpace::memory_space,
    std::remove_const_t<typename DatabaseView::value_type>> radius_search(ExecSpace const &space,
                                                                          DatabaseView const
                                                                              &database,
                                                                          QueryView const &queries,
                                                                          double radius,
                                                                          RadiusOptions const
                                                                              &options = {})
{
  detail::check_view<ExecSpace, DatabaseView>();
  // No copy: the search ends before the caller can change anything.
  Index<ExecSpace, DatabaseView> const index(space, database, options.metric, borrow_data);
  return radius_search(space, index, queries, radius, options);
}

/// Results of the host overload: the rows of query q are indices[offsets[q] .. offsets[q+1]).
template <class T>
struct HostRadiusNeighbors
{
  std::vector<std::size_t> offsets;
  std::vector<index_type> indices;
  std::vector<T> distances;
};

/// Host overload on row-major arrays (as the host fastknn::search).
template <class ExecSpace, class T>
requires(detail::is_space_v<ExecSpace> && (std::is_same_v<T, float> || std::is_same_v<T, double>))
    HostRadiusNeighbors<T> radius_search(ExecSpace const &space, std::span<T const> database,
                                         std::span<T const> queries, std::size_t dim, double radius,
                                         RadiusOptions const &options = {})
{
  auto const [xd, yd] = detail::host_arrays(space, database, queries, dim, "radius_search");
  auto found = radius_search(space, xd, yd, radius, options);
  HostRadiusNeighbors<T> out;
  out.offsets.resize(found.offsets.extent(0));
  out.indices.resize(found.indices.extent(0));
  out.distances.resize(found.distances.extent(0));
  Kokkos::deep_copy(
      space, Kokkos::View<std::size_t *, Kokkos::HostSpace>(out.offsets.data(), out.offsets.size()),
      found.offsets);
  Kokkos::deep_copy(
      space, Kokkos::View<index_type *, Kokkos::HostSpace>(out.indices.data(), out.indices.size()),
      found.indices);
  Kokkos::deep_copy(
      space, Kokkos::View<T *, Kokkos::HostSpace>(out.distances.data(), out.distances.size()),
      found.distances);
  space.fence("fastknn::radius_search::host_copy");
  return out;
}

/// The host overload on Kokkos' default execution space.
template <class T>
requires(std::is_same_v<T, float> || std::is_same_v<T, double>)
    HostRadiusNeighbors<T> radius_search(std::span<T const> database, std::span<T const> queries,
                                         std::size_t dim, double radius,
                                         RadiusOptions const &options = {})
{
  return radius_search(Kokkos::DefaultExecutionSpace{}, database, queries, dim, radius, options);
}

} // namespace fastknn
