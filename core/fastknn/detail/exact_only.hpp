#pragma once
/// \file fastknn/detail/exact_only.hpp
/// The search of the metrics without a fast pre-selection (Chebyshev, Minkowski): the exact
/// scan for every query.

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/exact_scan.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/detail/pipeline.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/detail/progress.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// The search of an exact-only metric (Chebyshev, Minkowski, Canberra, ...; exact_only): no
/// pre-selection, every query scans the whole database with exact scores (ExactScanKernel), in
/// launches of about 2^30 coordinate pairs so that progress is reported and a stop is honoured
/// between them. Memory: one k-wide buffer per query of a launch, within the plan's workspace.
template <Metric M, class ExecSpace, class XV, class QV, class T, class MS>
void run_exact_scan(ExecSpace const &space, XV const &database, QV const &queries, Plan const &plan,
                    SearchOptions const &opt, Neighbors<MS, T> const &result)
{
  using Traits = backends::TileTraits<ExecSpace>;
  auto alloc = [&](char const *label)
  { return Kokkos::view_alloc(space, Kokkos::WithoutInitializing, std::string(label)); };
  std::size_t const n = plan.n, q = plan.q;
  std::size_t const pairs = std::max<std::size_t>(1, n * std::max<std::size_t>(1, plan.d));
  std::size_t const least = std::max<std::size_t>(1, 2 * std::size_t(space.concurrency()));
  std::size_t const tile =
      std::min(plan.query_tile, std::max(least, (std::size_t(1) << 30) / pairs));
  std::size_t const width = candidate_buffer_width(plan.k);
  CandidateLists<T, MS> lists;
  lists.cand_val =
      decltype(lists.cand_val)(alloc("fastknn::search::exact_scan_values"), tile, width);
  lists.cand_idx =
      decltype(lists.cand_idx)(alloc("fastknn::search::exact_scan_indices"), tile, width);
  Kokkos::View<int *, MS> redo(alloc("fastknn::search::exact_scan_all"), tile);
  Kokkos::deep_copy(space, redo, 1);
  ExactScanKernel<M, ExecSpace, T, QV, XV> scan{.queries = queries,
                                                .database = database,
                                                .lists = lists,
                                                .result = result,
                                                .redo = redo,
                                                .d = plan.d,
                                                .q0 = 0,
                                                .n = n,
                                                .k = plan.k,
                                                .exclude_self = opt.exclude_self,
                                                .segments = 1,
                                                .param = metric_param(opt.metric, opt.minkowski_p)};
  ProgressReporter progress(opt.progress);
  for (std::size_t q0 = 0; q0 < q; q0 += tile)
  {
    scan.q0 = q0;
    Kokkos::TeamPolicy<ExecSpace, LightLaunch> policy(
        space, static_cast<int>(std::min(tile, q - q0)), team_size_on<Traits>(space));
    policy.set_scratch_size(0, Kokkos::PerTeam(plan.exact_scan_scratch));
    Kokkos::parallel_for("fastknn::search::exact_scan", policy, scan);
    progress.update(space, double(std::min(q0 + tile, q)) / double(q));
  }
  space.fence("fastknn::search::done");
  progress.done();
}

} // namespace fastknn::detail
