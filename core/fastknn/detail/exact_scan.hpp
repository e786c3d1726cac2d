#pragma once
/// \file fastknn/detail/exact_scan.hpp
/// Stage 4 of docs/design.md: the exact scan for queries whose proof failed.

#include <Kokkos_Core.hpp>

#include <cstddef>

#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/heap.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/detail/team_select.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// The slow path: exact scores of the whole database for queries the bound could not prove
/// (and for every query of an exact-only metric, run_exact_scan).
template <Metric M, class ExecSpace, class T, class QV, class XV>
struct ExactScanKernel
{
  using MS = typename ExecSpace::memory_space;
  using Member = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  static constexpr int rows_per_thread = exact_scan_rows_per_thread;
  QV queries;
  XV database;
  CandidateLists<T, MS> lists; // query ql's buffer (row ql * segments) holds its heap
  Neighbors<MS, T> result;
  Kokkos::View<int *, MS> redo;
  std::size_t d, q0, n;
  int k;
  bool exclude_self;
  int segments;
  MetricParam param = {}; // Minkowski's p (exact-only metrics)

  KOKKOS_FUNCTION void operator()(Member const &team) const
  {
    std::size_t const ql = team.league_rank();
    if (redo(ql) == 0)
      return;
    std::size_t const qg = q0 + ql;
    T *heap_vals = &lists.cand_val(ql * segments, 0);
    index_type *heap_ids = &lists.cand_idx(ql * segments, 0);
    std::size_t const block = std::size_t(team.team_size()) * rows_per_thread;
    T *keys = static_cast<T *>(team.team_scratch(0).get_shmem(block * sizeof(T)));
    if (team.team_size() > 1)
      return team_scan(team, qg, heap_vals, heap_ids, keys, block);
    Kokkos::single(Kokkos::PerTeam(team),
                   [&]()
                   {
                     for (int j = 0; j < k; ++j)
                     {
                       heap_vals[j] = Kokkos::Experimental::infinity_v<T>;
                       heap_ids[j] = Kokkos::Experimental::finite_max_v<index_type>;
                     }
                   });
    for (std::size_t b0 = 0; b0 < n; b0 += block)
    {
      std::size_t const rows = b0 + block <= n ? block : n - b0;
      team.team_barrier();
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, rows), [&](std::size_t r)
          { keys[r] = key_of<M, T>(scan_score<M>(queries, qg, database, b0 + r, d, param)); });
      team.team_barrier();
      Kokkos::single(Kokkos::PerTeam(team),
                     [&]()
                     {
                       for (std::size_t r = 0; r < rows; ++r)
                       {
                         std::size_t const x = b0 + r;
                         if (exclude_self && x == qg)
                           continue;
                         if (keys[r] < heap_vals[0])
                           heap_replace_top(heap_vals, heap_ids, k, keys[r],
                                            static_cast<index_type>(x));
                       }
                     });
    }
    team.team_barrier();
    Kokkos::single(Kokkos::PerTeam(team),
                   [&]()
                   {
                     heap_sort(heap_vals, heap_ids, k);
                     for (int j = 0; j < k; ++j)
                     {
                       result.indices(qg, j) = heap_ids[j];
                       result.distances(qg, j) = reported<M>(heap_vals[j]);
                     }
                   });
  }

  /// Teams of many threads (the GPU): every thread scores rows and the whole team keeps the k
  /// best in the query's buffer (team_offer: appends in row order, cuts to k by radix select),
  /// so no thread walks the database alone. The k survivors are sorted by (value, row) once at
  /// the end by the team's bitonic network.
  KOKKOS_FUNCTION void team_scan(Member const &team, std::size_t qg, T *vals, index_type *ids,
                                 T *keys, std::size_t block) const
  {
    auto const select = TeamSelectScratch<T>::take(team, 0);
    TeamBuffer<T> buf{vals, ids, 0, Kokkos::Experimental::infinity_v<T>, k, candidate_capacity(k)};
    std::size_t const skip = exclude_self ? qg : ~std::size_t(0);
    for (std::size_t b0 = 0; b0 < n; b0 += block)
    {
      std::size_t const rows = b0 + block <= n ? block : n - b0;
      team.team_barrier(); // the previous block's keys are no longer read
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, rows), [&](std::size_t r)
          { keys[r] = key_of<M, T>(scan_score<M>(queries, qg, database, b0 + r, d, param)); });
      team.team_barrier();
      team_offer(
          team, select, buf, rows, static_cast<index_type>(b0),
          [&](std::size_t j) { return keys[j]; }, skip);
    }
    team_trim(team, select, buf);
    // Rows whose score is not finite were never offered (they make the search fail later, see
    // RerankState::nonfinite): pad as the heap would.
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, buf.count, k),
                         [&](int j)
                         {
                           vals[j] = Kokkos::Experimental::infinity_v<T>;
                           ids[j] = Kokkos::Experimental::finite_max_v<index_type>;
                         });
    team_sort_pairs(team, vals, ids, k);
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, k),
                         [&](int j)
                         {
                           result.indices(qg, j) = ids[j];
                           result.distances(qg, j) = reported<M>(vals[j]);
                         });
  }
};

} // namespace fastknn::detail
