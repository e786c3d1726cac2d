#pragma once
/// \file fastknn/detail/mpi_radius.hpp
/// fastknn::mpi::Index::radius_search (declared in fastknn/mpi.hpp, which includes this file
/// after the class): the distributed radius search.
///
/// How: the rounds of the distributed k search (each rank's queries all-gathered, at most
/// `batch` per rank and round); each rank answers the round's queries on its shard with the
/// single-process radius search (exact: every shard row within the radius, by (value, index));
/// the per-query lists go back to the queries' owners (an all-to-all of the counts, then of the
/// pairs), which merge them by (value, global index). A shard's rows within the radius are
/// exactly the global rows within it that the shard holds, so the merge is the whole answer.

#include <fastknn/mpi.hpp>
#include <fastknn/radius.hpp>

#include <climits>
#include <cstddef>
#include <string>
#include <vector>

namespace fastknn::mpi
{

namespace detail
{

/// The lists of one round as a rank receives them: from shard i, counts[i][j] pairs for its
/// j-th query of the round, the shards' lists one after the other.
template <class T>
struct ReceivedLists
{
  std::vector<std::vector<std::size_t>> counts; // [shard][query of the round]
  std::vector<std::size_t> first;               // where shard i's pairs start
  std::vector<index_type> indices;
  std::vector<T> values;
};

/// Merges query j's lists (one per shard, each best first) into `idx` / `val`, leaving out
/// global row `self` (negative: none).
template <class T>
void merge_lists(bool similarity, ReceivedLists<T> const &in, std::vector<std::size_t> const &at,
                 std::size_t j, long long self, std::vector<index_type> &idx, std::vector<T> &val)
{
  std::size_t const p = in.counts.size();
  std::vector<std::size_t> head(p, 0);
  for (;;)
  {
    std::size_t best = p;
    for (std::size_t r = 0; r < p; ++r)
    {
      if (head[r] >= in.counts[r][j])
        continue;
      std::size_t const a = at[r] + head[r], b = best < p ? at[best] + head[best] : 0;
      if (best == p ||
          ranks_before(similarity, in.values[a], in.indices[a], in.values[b], in.indices[b]))
        best = r;
    }
    if (best == p)
      return;
    std::size_t const a = at[best] + head[best]++;
    if (static_cast<long long>(in.indices[a]) == self)
      continue;
    idx.push_back(in.indices[a]);
    val.push_back(in.values[a]);
  }
}

/// Sends the lists of this rank's shard to the queries' owners and receives those of this
/// rank's round queries from every shard: an all-to-all of the per-query counts, then of the
/// pairs. Rank i's queries of the round are rows first[i] .. first[i] + count[i] of the
/// gathered batch; `counts`, `idx`, `val`: this shard's lists of all of them, in that order.
/// MPI counts are ints: a round's lists from one shard to one rank must stay below 2^31 pairs.
template <class T>
void exchange_lists(Comm const &c, std::vector<std::size_t> const &count,
                    std::vector<std::size_t> const &first,
                    std::vector<unsigned long long> const &counts,
                    std::vector<index_type> const &idx, std::vector<T> const &val,
                    ReceivedLists<T> &in, DistributedStats &st)
{
  std::size_t const p = std::size_t(c.size), me = std::size_t(c.rank), mine = count[me];
  std::vector<std::size_t> rcnt(p, mine), rdisp(p), pcnt(p, 0), pdisp(p + 1, 0), icnt(p, 0);
  for (std::size_t i = 0; i < p; ++i)
    rdisp[i] = i * mine;
  std::vector<unsigned long long> recv(p * mine);
  MPI_Alltoallv(counts.data(), to_int_counts(count).data(), to_int_counts(first).data(),
                MPI_UNSIGNED_LONG_LONG, recv.data(), to_int_counts(rcnt).data(),
                to_int_counts(rdisp).data(), MPI_UNSIGNED_LONG_LONG, c.comm);
  in.counts.assign(p, {});
  in.first.assign(p + 1, 0);
  for (std::size_t i = 0; i < p; ++i)
  {
    in.counts[i].assign(recv.begin() + std::ptrdiff_t(rdisp[i]),
                        recv.begin() + std::ptrdiff_t(rdisp[i] + mine));
    for (std::size_t j = first[i]; j < first[i] + count[i]; ++j)
      pcnt[i] += counts[j];
    pdisp[i + 1] = pdisp[i] + pcnt[i];
    for (std::size_t n : in.counts[i])
      icnt[i] += n;
    in.first[i + 1] = in.first[i] + icnt[i];
  }
  collectively(c, "",
               [&]
               {
                 fastknn::detail::require(
                     pdisp[p] < INT_MAX && in.first[p] < INT_MAX,
                     "a round of the distributed radius search moves 2^31 or more (query, row) "
                     "pairs from or to one rank; set DistributedOptions::batch_queries lower");
                 in.indices.resize(in.first[p]);
                 in.values.resize(in.first[p]);
               });
  auto const pc = to_int_counts(pcnt), pd = to_int_counts(pdisp), ic = to_int_counts(icnt),
             id = to_int_counts(in.first);
  MPI_Alltoallv(idx.data(), pc.data(), pd.data(), datatype<index_type>(), in.indices.data(),
                ic.data(), id.data(), datatype<index_type>(), c.comm);
  MPI_Alltoallv(val.data(), pc.data(), pd.data(), datatype<T>(), in.values.data(), ic.data(),
                id.data(), datatype<T>(), c.comm);
  st.bytes_sent += (idx.size() - pcnt[me]) * (sizeof(T) + sizeof(index_type));
}

} // namespace detail

template <class ExecSpace, class DatabaseView>
requires fastknn::detail::is_space_v<ExecSpace>
template <class QueryView>
RadiusNeighbors<typename ExecSpace::memory_space,
                std::remove_const_t<typename DatabaseView::value_type>>
Index<ExecSpace, DatabaseView>::radius_search(ExecSpace const &space, QueryView const &queries,
                                              double radius, RadiusOptions const &options,
                                              DistributedOptions const &distributed) const
{
  using fastknn::detail::require;
  fastknn::detail::check_view<ExecSpace, QueryView>();
  static_assert(std::is_same_v<T, std::remove_const_t<typename QueryView::value_type>>,
                "fastknn::mpi::Index::radius_search: the queries must have the database's "
                "value type");
  detail::Comm const c(_comm);
  std::size_t const p = std::size_t(c.size), me = std::size_t(c.rank);
  std::vector<std::size_t> const q_rows = detail::all_sizes(c, queries.extent(0));
  detail::collectively(
      c, "",
      [&]
      {
        require(!std::isnan(radius), "the radius is NaN; give a number (it may be infinite)");
        require(options.initial_k > 0,
                "initial_k is " + std::to_string(options.initial_k) + "; it must be at least 1");
        check_search(c, queries, q_rows, 1, options);
      });
  std::size_t const q_mine = q_rows[me], max_q = *std::max_element(q_rows.begin(), q_rows.end());
  DistributedStats st;
  st.ranks = c.size;
  // Per query a rank contributes: its values gathered on every rank (host and device) and its
  // counts; the pairs are the answer's own memory.
  std::size_t const exchange = p * (2 * _dim * sizeof(T) + 2 * sizeof(std::size_t));
  st.batch = batch_size(c, distributed.batch_queries, exchange, options.workspace_bytes,
                        std::max<std::size_t>(max_q, 1));
  st.rounds = (max_q + st.batch - 1) / st.batch;
  RadiusOptions local = options;
  local.exclude_self = false; // the owner drops the query's own row from the merged lists
  SearchStats local_stats;
  local.stats = &local_stats;

  std::vector<T> const mine = my_queries(c, space, queries, q_rows);
  std::vector<T> gathered;
  std::vector<std::size_t> offsets(1, 0);
  std::vector<index_type> out_idx;
  std::vector<T> out_val;
  for (std::size_t round = 0; round < st.rounds; ++round)
  {
    Round const r = round_layout(q_rows, round, st.batch);
    gather(c, r, mine, gathered, st);
    std::size_t const g = r.gathered();
    // This rank's shard against the round's queries: per query its count, then the pairs.
    std::vector<unsigned long long> counts(g, 0);
    std::vector<index_type> list_idx;
    std::vector<T> list_val;
    detail::collectively(c, shard_name(c.rank),
                         [&]
                         {
                           if (!_local || g == 0)
                             return;
                           local.progress = progress_in_round(options, round, st.rounds);
                           search_shard_radius(space, gathered, g, radius, local, counts, list_idx,
                                               list_val);
                         });
    detail::ReceivedLists<T> in;
    detail::exchange_lists(c, r.count, r.first, counts, list_idx, list_val, in, st);

    // Merge each of this rank's round queries.
    std::vector<std::size_t> at(in.first.begin(), in.first.end() - 1);
    detail::collectively(
        c, "",
        [&]
        {
          bool const similarity = is_similarity(_metric);
          for (std::size_t j = 0; j < r.count[me]; ++j)
          {
            std::size_t const q = r.begin[me] + j;
            long long const self = options.exclude_self ? static_cast<long long>(offset() + q) : -1;
            detail::merge_lists(similarity, in, at, j, self, out_idx, out_val);
            offsets.push_back(out_idx.size());
            for (std::size_t i = 0; i < p; ++i)
              at[i] += in.counts[i][j];
          }
          require(options.max_results == 0 || out_idx.size() <= options.max_results,
                  "the radius search finds more than max_results = " +
                      std::to_string(options.max_results) +
                      " (query, row) pairs inside the radius for this rank's queries; use a "
                      "smaller radius, fewer queries or a larger max_results");
          if (options.progress && !options.progress(double(round + 1) / double(st.rounds)))
            throw Cancelled("the radius search was stopped by its progress callback; no "
                            "result was kept");
        });
  }
  if (distributed.stats != nullptr)
    *distributed.stats = st;
  if (options.stats != nullptr)
    *options.stats = local_stats;
  RadiusNeighbors<memory_space, T> out;
  fastknn::detail::allocate_answer(
      out_idx.size(),
      [&]
      {
        out.offsets = fastknn::detail::to_space(space, offsets, 0, q_mine + 1,
                                                "fastknn::mpi::radius::offsets");
        out.indices = decltype(out.indices)(
            Kokkos::view_alloc(space, Kokkos::WithoutInitializing, "fastknn::mpi::radius::indices"),
            out_idx.size());
        out.distances =
            decltype(out.distances)(Kokkos::view_alloc(space, Kokkos::WithoutInitializing,
                                                       "fastknn::mpi::radius::distances"),
                                    out_idx.size());
      });
  Kokkos::deep_copy(space, out.indices,
                    Kokkos::View<index_type *, Kokkos::HostSpace>(out_idx.data(), out_idx.size()));
  Kokkos::deep_copy(space, out.distances,
                    Kokkos::View<T *, Kokkos::HostSpace>(out_val.data(), out_val.size()));
  space.fence("fastknn::mpi::radius_search");
  return out;
}

template <class ExecSpace, class DatabaseView>
requires fastknn::detail::is_space_v<ExecSpace>
void Index<ExecSpace, DatabaseView>::search_shard_radius(
    ExecSpace const &space, std::vector<T> const &gathered, std::size_t g, double radius,
    RadiusOptions const &local, std::vector<unsigned long long> &counts,
    std::vector<index_type> &idx, std::vector<T> &val) const
{
  Kokkos::View<T const **, Kokkos::LayoutRight, Kokkos::HostSpace,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>>
      h(gathered.data(), g, _dim);
  auto const qd = Kokkos::create_mirror_view_and_copy(space, h);
  auto const found = fastknn::radius_search(space, *_local, qd, radius, local);
  auto const ho = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
  idx.resize(found.indices.extent(0));
  val.resize(found.distances.extent(0));
  Kokkos::deep_copy(space, Kokkos::View<index_type *, Kokkos::HostSpace>(idx.data(), idx.size()),
                    found.indices);
  Kokkos::deep_copy(space, Kokkos::View<T *, Kokkos::HostSpace>(val.data(), val.size()),
                    found.distances);
  space.fence("fastknn::mpi::radius::shard");
  for (std::size_t j = 0; j < g; ++j)
    counts[j] = ho(j + 1) - ho(j);
  auto const off = static_cast<index_type>(offset());
  for (auto &i : idx)
    i += off;
}

} // namespace fastknn::mpi
