#pragma once
/// \file fastknn/detail/pipeline.hpp
/// The search pipeline of docs/design.md, one query tile at a time: pre-select k + pad
/// candidates per query (stage 2), merge the segments' buffers, re-rank the candidates exactly
/// and prove the result (stage 3), redo the unproven queries by an exact scan (stage 4).

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/exact_scan.hpp>
#include <fastknn/detail/preselect.hpp>
#include <fastknn/detail/progress.hpp>
#include <fastknn/detail/rerank.hpp>
#include <fastknn/detail/scores.hpp>
#include <fastknn/detail/tiles.hpp>
#include <fastknn/error.hpp>

namespace fastknn::detail
{

/// Launch hint for the search's kernels: their objects go to the GPU as kernel arguments (CUDA:
/// up to 4 KiB). Kokkos otherwise copies an object of 512 bytes or more (with the policy's own
/// fields) to constant memory first, a copy and an event per launch; FinalizeKernel alone is
/// 576 bytes (the host build's sizeof). Other backends ignore the hint.
using LightLaunch = Kokkos::Experimental::WorkItemProperty::HintLightWeight_t;

/// What every stage of one search shares.
template <class P, class ExecSpace, class XV, class QV, class T, class MS>
struct SearchContext
{
  using score_policy = P;
  using exec_space = ExecSpace;
  using database_view = XV;
  using query_view = QV;
  using value_type = T;
  ExecSpace const &space;
  XV const &database;
  QV const &queries;
  Plan const &plan;
  SearchOptions const &opt;
  Prepared<T, MS> const &prep;
  Neighbors<MS, T> const &result;
  PackedBlocks<P, MS> packed; // the workspace's packed Views and the fast score's row values
  TileWorkspace<P, T, MS> &ws;
  TileSchedule schedule;
  std::size_t dp; // packed depth
};

/// Threads per team: the traits' team size, or fewer on an instance with fewer threads (an
/// OpenMP instance of one thread runs the one-thread paths). Scratch was sized for the larger.
template <class Traits, class ExecSpace>
int team_size_on(ExecSpace const &space)
{
  return std::max(1, std::min(Traits::team_size, space.concurrency()));
}

/// Stage 2 for the query tile [q0, q0 + q_rows): pack the queries, sweep every database tile
/// chunk by chunk, each query block's candidates into its buffers (one per segment).
template <Metric M, class Ctx>
void preselect_tile(Ctx &c, std::size_t q0, std::size_t q_rows, ProgressReporter &progress,
                    std::size_t &chunks_done, std::size_t total_chunks, std::size_t &packs)
{
  using P = typename Ctx::score_policy;
  using ExecSpace = typename Ctx::exec_space;
  using XV = typename Ctx::database_view;
  using T = typename Ctx::value_type;
  using Traits = backends::TileTraits<ExecSpace>;
  using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>;
  constexpr int MR = Traits::query_block;
  constexpr int NR = Traits::database_block;
  static_assert(!Traits::select_in_registers || Traits::team_size == 1,
                "selection in registers needs one thread per team");
  auto const &plan = c.plan;
  std::size_t const n = plan.n, segs = std::size_t(plan.segments);
  std::size_t const blocks = (q_rows + MR - 1) / MR;
  pack_for<MR, false, P>(c.space, "fastknn::search::pack_queries", c.queries, q0, q_rows,
                         blocks * MR, plan.d, c.prep, c.ws.packed_q);
  auto const lists = c.ws.lists;
  Kokkos::parallel_for(
      "fastknn::search::init_candidates", Range(c.space, 0, q_rows * segs),
      KOKKOS_LAMBDA(std::size_t i) {
        lists.cand_count(i) = 0;
        lists.cand_threshold(i) = Kokkos::Experimental::infinity_v<T>;
      });
  // Streaming plans pack nothing up front (teams pack their own chunks); a database that fits
  // one tile was packed once before the first query tile.
  bool const pack_each = !plan.stream && plan.db_tile < n;
  auto const x_shift = database_shift<P>(c.prep);
  constexpr int QB = Traits::team_query_blocks;
  // (Teams that scored several query blocks together were the GPU's shape before the block
  // tile, which takes a block of MR queries per team: the plan still counts with the knob.)
  static_assert(QB == 1, "a team scores one query block; raise query_block (block tiles) instead");
  using Kernel = ChunkKernel<M, MR, NR, Traits::depth_block, Traits::scratch_level, QB,
                             int(Traits::stage_row_bytes), Traits::team_query_threads,
                             Traits::team_size, ExecSpace, T, P, XV, decltype(x_shift)>;
  for (std::size_t x0 = 0; x0 < n; x0 += plan.db_tile)
  {
    std::size_t const tile_rows = c.schedule.tile_rows_at(x0);
    if (pack_each)
    {
      pack_for<NR, true, P>(c.space, "fastknn::search::pack_database", c.database, x0, tile_rows,
                            round_up(tile_rows, plan.chunk), plan.d, c.prep, c.ws.packed_x);
      ++packs;
    }
    std::size_t const launch = c.schedule.launch;
    // The block's scores and, for teams of several threads, the selection's scratch (the plan
    // kept the float chunk's total within the space's limit).
    std::size_t const score_bytes =
        Traits::stage_row_bytes > 0
            ? block_tile_scratch_bytes(MR, NR, Traits::stage_row_bytes, Traits::team_size,
                                       sizeof(T))
            : preselect_scratch_bytes(std::size_t(QB) * MR, launch, Traits::team_size, sizeof(T));
    std::size_t const chunk_bytes = plan.stream ? launch * c.dp * sizeof(typename P::x_type) : 0;
    ChunkGeometry geometry{.dp = c.dp,
                           .d_real = plan.d,
                           .q0 = q0,
                           .q_rows = q_rows,
                           .x0 = x0,
                           .n = n,
                           .tile_rows = tile_rows,
                           .launch = launch,
                           .step = 0,
                           .seg_chunks = c.schedule.chunks_per_run(tile_rows),
                           .segments = plan.segments,
                           .kept = plan.kept,
                           .exclude_self = c.opt.exclude_self,
                           .stream = plan.stream,
                           .blocks = static_cast<int>(blocks)};
    std::size_t const launches = c.schedule.launches_in(tile_rows);
    for (std::size_t step = 0; step < launches; ++step)
    {
      geometry.step = step;
      Kernel kernel{c.packed, lists, geometry, c.database, x_shift};
      int const groups = static_cast<int>((blocks + QB - 1) / QB);
      int const league = plan.stream ? plan.segments : groups * plan.segments;
      Kokkos::TeamPolicy<ExecSpace, LightLaunch> policy(c.space, league,
                                                        team_size_on<Traits>(c.space));
      if constexpr (Traits::scratch_level == 1)
        policy.set_scratch_size(1, Kokkos::PerTeam(score_bytes + chunk_bytes));
      else
      {
        policy.set_scratch_size(0, Kokkos::PerTeam(score_bytes));
        if (chunk_bytes > 0)
          policy.set_scratch_size(1, Kokkos::PerTeam(chunk_bytes));
      }
      Kokkos::parallel_for(plan.stream ? "fastknn::search::preselect_stream"
                                       : "fastknn::search::preselect_chunk",
                           policy, kernel);
      progress.update(c.space, 0.95 * double(++chunks_done) / double(total_chunks));
    }
  }
}

/// merge_segments for teams of many threads (the GPU's traits): one team per query copies its
/// segment buffers behind the first (each copy in steps no longer than the gap between where it
/// reads and where it writes, so no thread overwrites a pair another has still to read) and cuts
/// them with the team radix select. The buffers were filled by team_offer, whose appends and cuts
/// keep row order, so the concatenation is in index order and the select's ties by position are
/// ties by index: the same pairs as keep_smallest keeps.
template <class Traits, class ExecSpace, class T, class MS>
void merge_segments_by_team(ExecSpace const &space, CandidateLists<T, MS> const &lists,
                            std::size_t q_rows, int segs, int kept)
{
  using Policy = Kokkos::TeamPolicy<ExecSpace, LightLaunch>;
  using Member = typename Policy::member_type;
  constexpr int level = Traits::scratch_level;
  int const team_size = team_size_on<Traits>(space);
  Policy policy(space, static_cast<int>(q_rows), team_size);
  policy.set_scratch_size(level, Kokkos::PerTeam(team_select_scratch_bytes(team_size, sizeof(T))));
  std::size_t const width = lists.cand_val.extent(1);
  Kokkos::parallel_for(
      "fastknn::search::merge_segments", policy, KOKKOS_LAMBDA(Member const &team) {
        auto const select = TeamSelectScratch<T>::take(team, level);
        std::size_t const b = std::size_t(team.league_rank()) * std::size_t(segs);
        T *val = &lists.cand_val(b, 0);
        index_type *idx = &lists.cand_idx(b, 0);
        std::size_t total = std::size_t(lists.cand_count(b));
        for (int s = 1; s < segs; ++s)
        {
          std::size_t const c = std::size_t(lists.cand_count(b + s));
          // Segment s starts at s x width in the same rows; total < s x width (each buffer ends
          // below its width), and a step of at most the gap writes only below what it reads.
          std::size_t const from = std::size_t(s) * width, gap = from - total;
          for (std::size_t j0 = 0; j0 < c; j0 += gap)
          {
            std::size_t const step = c - j0 < gap ? c - j0 : gap;
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, step),
                                 [&](std::size_t j)
                                 {
                                   val[total + j0 + j] = val[from + j0 + j];
                                   idx[total + j0 + j] = idx[from + j0 + j];
                                 });
            team.team_barrier();
          }
          total += c;
        }
        int count = static_cast<int>(total);
        if (count > kept)
        {
          (void)team_keep_smallest(team, select, val, idx, count, kept);
          count = kept;
        }
        Kokkos::single(Kokkos::PerTeam(team), [&]() { lists.cand_count(b) = count; });
      });
}

/// Each query's segment buffers into its first one: compact, then keep the best `kept`. Every
/// discarded candidate scored at least the kept ones, as the bound assumes.
template <class Traits, class ExecSpace, class T, class MS>
void merge_segments(ExecSpace const &space, CandidateLists<T, MS> const &lists, std::size_t q_rows,
                    int segs, int kept)
{
  if constexpr (Traits::team_size > 1)
    if (team_size_on<Traits>(space) > 1)
      return merge_segments_by_team<Traits>(space, lists, q_rows, segs, kept);
  Kokkos::parallel_for(
      "fastknn::search::merge_segments",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>(space, 0, q_rows),
      KOKKOS_LAMBDA(std::size_t ql) {
        std::size_t const b = ql * segs;
        T *val = &lists.cand_val(b, 0);
        index_type *idx = &lists.cand_idx(b, 0);
        int total = lists.cand_count(b);
        for (int s = 1; s < segs; ++s)
        {
          int const c = lists.cand_count(b + s);
          T const *sv = &lists.cand_val(b + s, 0);
          index_type const *si = &lists.cand_idx(b + s, 0);
          for (int j = 0; j < c; ++j)
          {
            val[total + j] = sv[j];
            idx[total + j] = si[j];
          }
          total += c;
        }
        if (total > kept)
        {
          keep_smallest(val, idx, total, kept);
          total = kept;
        }
        lists.cand_count(b) = total;
      });
}

/// rescore_by_row's scoring for teams of many threads (the GPU's traits): the `listed` entries
/// of sub-tile s0 (grouped by database row) in blocks of 256 per team, eight threads a pair
/// (team_exact_scores: coalesced reads, the same bits), then the per-row counts zeroed.
template <Metric M, class Ctx>
void rescore_listed_by_team(Ctx &c, std::size_t q0, std::size_t s0, int listed)
{
  using ExecSpace = typename Ctx::exec_space;
  using T = typename Ctx::value_type;
  using Traits = backends::TileTraits<ExecSpace>;
  using Policy = Kokkos::TeamPolicy<ExecSpace, LightLaunch>;
  using Member = typename Policy::member_type;
  constexpr int per_team = 256;
  std::size_t const d = c.plan.d;
  int const segs = c.plan.segments, kept = c.plan.kept;
  auto const cand_idx = c.ws.lists.cand_idx;
  auto const cand_val = c.ws.lists.cand_val;
  auto const order = c.ws.order;
  auto const queries = c.queries;
  auto const database = c.database;
  Policy policy(c.space, (listed + per_team - 1) / per_team, team_size_on<Traits>(c.space));
  policy.set_scratch_size(0, Kokkos::PerTeam(team_rescore_scratch_bytes<M>()));
  Kokkos::parallel_for(
      "fastknn::search::rerank_rows", policy, KOKKOS_LAMBDA(Member const &team) {
        int const e0 = team.league_rank() * per_team;
        int const count = listed - e0 < per_team ? listed - e0 : per_team;
        auto *partial = static_cast<double *>(
            team.team_scratch(0).get_shmem(team_rescore_scratch_bytes<M>() - 64));
        // Entry e: slot j of query ql (of the sub-tile).
        auto slot = [&](int e)
        {
          int const o = order(std::size_t(e0 + e));
          return Kokkos::pair<std::size_t, int>(s0 + std::size_t(o / kept), o % kept);
        };
        team_exact_scores<M>(
            team, partial, queries, database, d, count,
            [&](int e)
            {
              auto const at = slot(e);
              return Kokkos::pair<std::size_t, std::size_t>(
                  q0 + at.first, std::size_t(cand_idx(at.first * segs, at.second)));
            },
            [&](int e, double score)
            {
              auto const at = slot(e);
              cand_val(at.first * segs, at.second) = key_of<M, T>(score);
            });
      });
  Kokkos::deep_copy(c.space, c.ws.row_fill, 0);
}

/// Re-scoring by database row, a sub-tile of queries at a time: each listed row is read once
/// per sub-tile (sequentially) and meets its queries in cache, instead of each query reading
/// its candidates' rows (with k = 1024 on Fashion-MNIST, ~34 GB of scattered reads).
template <Metric M, class Ctx>
void rescore_by_row(Ctx &c, std::size_t q0, std::size_t q_rows)
{
  using ExecSpace = typename Ctx::exec_space;
  using T = typename Ctx::value_type;
  using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>;
  using Traits = backends::TileTraits<ExecSpace>;
  std::size_t const n = c.plan.n, d = c.plan.d;
  int const segs = c.plan.segments, kept = c.plan.kept;
  auto const marked = c.ws.state.marked;
  auto const marked_count = c.ws.state.marked_count;
  auto const cand_idx = c.ws.lists.cand_idx;
  auto const cand_val = c.ws.lists.cand_val;
  auto const row_fill = c.ws.row_fill, row_start = c.ws.row_start, order = c.ws.order;
  auto const queries = c.queries;
  auto const database = c.database;
  for (std::size_t s0 = 0; s0 < q_rows; s0 += c.plan.rerank_tile)
  {
    std::size_t const s1 = s0 + c.plan.rerank_tile < q_rows ? s0 + c.plan.rerank_tile : q_rows;
    int listed = 0;
    Kokkos::parallel_for(
        "fastknn::search::rerank_count", Range(c.space, s0, s1), KOKKOS_LAMBDA(std::size_t ql) {
          for (int m = 0; m < marked_count(ql); ++m)
            Kokkos::atomic_add(&row_fill(cand_idx(ql * segs, marked(ql, m))), 1);
        });
    Kokkos::parallel_scan(
        "fastknn::search::rerank_offsets", Range(c.space, 0, n + 1),
        KOKKOS_LAMBDA(std::size_t r, int &sum, bool final) {
          int const count = r < n ? row_fill(r) : 0;
          if (final)
          {
            row_start(r) = sum;
            if (r < n)
              row_fill(r) = 0;
          }
          sum += count;
        },
        listed);
    if (listed == 0) // e.g. the integer path, whose scores are mostly exact already
      continue;
    Kokkos::parallel_for(
        "fastknn::search::rerank_place", Range(c.space, s0, s1), KOKKOS_LAMBDA(std::size_t ql) {
          for (int m = 0; m < marked_count(ql); ++m)
          {
            int const j = marked(ql, m);
            std::size_t const row = std::size_t(cand_idx(ql * segs, j));
            int const pos = Kokkos::atomic_fetch_add(&row_fill(row), 1);
            order(std::size_t(row_start(row) + pos)) = int(ql - s0) * kept + j;
          }
        });
    if constexpr (Traits::team_size > 1)
      if (team_size_on<Traits>(c.space) > 1)
      {
        rescore_listed_by_team<M>(c, q0, s0, listed);
        continue;
      }
    Kokkos::parallel_for(
        "fastknn::search::rerank_rows",
        Kokkos::RangePolicy<ExecSpace, Kokkos::Schedule<Kokkos::Dynamic>,
                            Kokkos::IndexType<std::size_t>>(c.space, 0, n),
        KOKKOS_LAMBDA(std::size_t r) {
          int const e1 = row_start(r + 1);
          for (int e = row_start(r); e < e1; ++e)
          {
            std::size_t const ql = s0 + std::size_t(order(std::size_t(e)) / kept);
            int const j = order(std::size_t(e)) % kept;
            cand_val(ql * segs, j) = key_of<M, T>(exact_score<M>(queries, q0 + ql, database, r, d));
          }
          row_fill(r) = 0;
        });
  }
}

/// Stage 3 for a query tile: exact re-ranking and the proof. Returns the unproven queries
/// (redo flags set) and adds the re-scored candidates to `rescored`.
template <Metric M, class Ctx>
int rerank_tile(Ctx &c, std::size_t q0, std::size_t q_rows, std::size_t &rescored)
{
  using P = typename Ctx::score_policy;
  using ExecSpace = typename Ctx::exec_space;
  using XV = typename Ctx::database_view;
  using QV = typename Ctx::query_view;
  using T = typename Ctx::value_type;
  bool const by_row = c.plan.rerank_tile > 0;
  using Fin = FinalizeKernel<M, ExecSpace, T, QV, XV>;
  Fin fin{c.ws.lists,
          c.ws.state,
          RerankGeometry{.d = c.plan.d,
                         .q0 = q0,
                         .n = c.plan.n,
                         .n_eligible = c.plan.n_eligible,
                         .k = c.plan.k,
                         .kept = c.plan.kept,
                         .segments = c.plan.segments,
                         .by_row = by_row},
          ProofInputs{.x_norm_max = c.prep.x_norm_max,
                      .x_inv_norm_max = c.prep.x_inv_norm_max,
                      .exact_scores = P::exact,
                      .exact_below = exact_scores_below<P, T>()},
          c.queries,
          c.database,
          c.prep.q_aux,
          c.result};
  // One team per query where the traits' teams are many threads (the GPU), else one thread.
  auto const pass = [&]<class Tag>(char const *label, Tag)
  {
    using Traits = backends::TileTraits<ExecSpace>;
    if constexpr (Traits::team_size > 1)
    {
      int const team_size = team_size_on<Traits>(c.space);
      if (team_size > 1)
      {
        Kokkos::TeamPolicy<ExecSpace, Tag, LightLaunch> policy(c.space, static_cast<int>(q_rows),
                                                               team_size);
        policy.set_scratch_size(0, Kokkos::PerTeam(team_select_scratch_bytes(team_size, sizeof(T)) +
                                                   team_rescore_scratch_bytes<M>()));
        return Kokkos::parallel_for(label, policy, fin);
      }
    }
    Kokkos::parallel_for(
        label,
        Kokkos::RangePolicy<ExecSpace, Tag, LightLaunch, Kokkos::IndexType<std::size_t>>(c.space, 0,
                                                                                         q_rows),
        fin);
  };
  pass("fastknn::search::rerank_prepare", typename Fin::Prepare{});
  if (by_row)
    rescore_by_row<M>(c, q0, q_rows);
  pass("fastknn::search::rerank_finish", typename Fin::Finish{});
  int redo_count = 0;
  std::size_t rescored_tile = 0;
  auto const redo = c.ws.state.redo;
  auto const marked_count = c.ws.state.marked_count;
  Kokkos::parallel_reduce(
      "fastknn::search::count_redo",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>(c.space, 0, q_rows),
      KOKKOS_LAMBDA(std::size_t i, int &count, std::size_t &r) {
        count += redo(i);
        r += std::size_t(marked_count(i));
      },
      redo_count, rescored_tile);
  rescored += rescored_tile;
  return redo_count;
}

/// Stage 4 for a query tile: the queries without a proof scan the whole database exactly.
template <Metric M, class Ctx>
void exact_fallback(Ctx &c, std::size_t q0, std::size_t q_rows)
{
  using ExecSpace = typename Ctx::exec_space;
  using XV = typename Ctx::database_view;
  using QV = typename Ctx::query_view;
  using T = typename Ctx::value_type;
  using Traits = backends::TileTraits<ExecSpace>;
  using Scan = ExactScanKernel<M, ExecSpace, T, QV, XV>;
  Scan scan{.queries = c.queries,
            .database = c.database,
            .lists = c.ws.lists,
            .result = c.result,
            .redo = c.ws.state.redo,
            .d = c.plan.d,
            .q0 = q0,
            .n = c.plan.n,
            .k = c.plan.k,
            .exclude_self = c.opt.exclude_self,
            .segments = c.plan.segments};
  Kokkos::TeamPolicy<ExecSpace, LightLaunch> policy(c.space, static_cast<int>(q_rows),
                                                    team_size_on<Traits>(c.space));
  policy.set_scratch_size(0, Kokkos::PerTeam(c.plan.exact_scan_scratch));
  Kokkos::parallel_for("fastknn::search::exact_scan", policy, scan);
}

/// The packed Views and the fast score's per-row values for P. The integer path's query values
/// reuse the float query norms' storage (T is at least as wide as int32; its bound does not
/// read them); its database values come prepared.
template <class P, class ExecSpace, class QV, class T, class MS>
PackedBlocks<P, MS> fast_score_rows(ExecSpace const &space, QV const &queries,
                                    Prepared<T, MS> const &prep, TileWorkspace<P, T, MS> const &ws,
                                    std::size_t n, std::size_t q)
{
  using Aux = typename P::aux_type;
  using Unmanaged = Kokkos::View<Aux *, MS, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  PackedBlocks<P, MS> packed{ws.packed_q, ws.packed_x, {}, {}};
  if constexpr (P::exact)
  {
    static_assert(sizeof(Aux) <= sizeof(T));
    packed.x_aux = Unmanaged(prep.x_int.data(), n);
    Unmanaged const q_aux(reinterpret_cast<Aux *>(prep.q_aux.data()), q);
    integer_norms(space, queries, prep.lowest, 256, q_aux);
    packed.q_aux = q_aux;
  }
  else
  {
    packed.x_aux = Unmanaged(prep.x_aux.data(), n);
    packed.q_aux = Unmanaged(prep.q_aux.data(), q);
  }
  return packed;
}

/// The whole pipeline with scores computed as P says; returns the exact fallbacks taken.
template <Metric M, class P, class ExecSpace, class XV, class QV, class T, class MS>
std::size_t run_tiles(ExecSpace const &space, XV const &database, QV const &queries,
                      Plan const &plan, SearchOptions const &opt, Prepared<T, MS> const &prep,
                      Neighbors<MS, T> const &result, std::size_t &packs, std::size_t &rescored)
{
  using Traits = backends::TileTraits<ExecSpace>;
  std::size_t const n = plan.n, q = plan.q;
  std::size_t const dp = round_up(plan.d, P::group);
  TileWorkspace<P, T, MS> ws(space, plan, dp);
  // The integer path's packed rows are sizeof(T) / sizeof(x_type) times smaller: the in-register
  // kernel (which needs no scratch for scores) sweeps as many more rows per launch (measured:
  // ~10 % faster on Fashion-MNIST than the float chunk's rows).
  std::size_t const launch = P::exact && Traits::select_in_registers
                                 ? plan.chunk * (sizeof(T) / sizeof(typename P::x_type))
                                 : plan.chunk;
  SearchContext<P, ExecSpace, XV, QV, T, MS> c{
      space,   database,
      queries, plan,
      opt,     prep,
      result,  fast_score_rows<P>(space, queries, prep, ws, n, q),
      ws,      TileSchedule{n, plan.db_tile, launch, std::size_t(plan.segments), plan.stream},
      dp};
  if (!plan.stream && plan.db_tile >= n)
  {
    pack_for<Traits::database_block, true, P>(space, "fastknn::search::pack_database", database, 0,
                                              n, round_up(n, plan.chunk), plan.d, prep,
                                              ws.packed_x);
    ++packs;
  }
  ProgressReporter progress(opt.progress);
  std::size_t const query_tiles = (q + plan.query_tile - 1) / plan.query_tile;
  std::size_t const total_chunks = c.schedule.launches_per_query_tile() * query_tiles;
  std::size_t chunks_done = 0, fallbacks = 0;
  for (std::size_t q0 = 0; q0 < q; q0 += plan.query_tile)
  {
    std::size_t const q_rows = q0 + plan.query_tile <= q ? plan.query_tile : q - q0;
    preselect_tile<M>(c, q0, q_rows, progress, chunks_done, total_chunks, packs);
    if (plan.segments > 1)
      merge_segments<Traits>(space, ws.lists, q_rows, plan.segments, plan.kept);
    int const unproven = rerank_tile<M>(c, q0, q_rows, rescored);
    fallbacks += std::size_t(unproven);
    if (unproven > 0)
      exact_fallback<M>(c, q0, q_rows);
  }
  int nonfinite = 0;
  Kokkos::deep_copy(space, nonfinite, ws.state.nonfinite);
  space.fence("fastknn::search::done");
  require(nonfinite == 0, "some distances are NaN or Inf (non-finite input with "
                          "check_finite = false); clean the data or enable check_finite");
  progress.done();
  return fallbacks;
}

} // namespace fastknn::detail
