#pragma once
/// \file fastknn/detail/rerank.hpp
/// Stage 3 of docs/design.md: the exact re-ranking of a query tile's candidates and the
/// per-query proof that nothing discarded could enter the top k.

#include <Kokkos_Core.hpp>

#include <cstddef>

#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/heap.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/detail/team_select.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// Pairs of rows a team's exact re-scoring takes per step, eight threads a pair.
inline constexpr int team_rescore_pairs = 16;

/// Team scratch of team_exact_scores: the partial sums of one step (cosine keeps three).
template <Metric M>
KOKKOS_INLINE_FUNCTION constexpr std::size_t team_rescore_scratch_bytes()
{
  return std::size_t(team_rescore_pairs) * exact_partial_sums * (M == Metric::Cosine ? 3 : 1) *
             sizeof(double) +
         64;
}

/// Exact scores of `count` pairs of rows by a team, for teams of many threads (the GPU): pair e
/// is (query row, database row) = pair(e) and its score goes to store(e, score). Eight
/// consecutive threads take one pair, each one of exact_score's partial sums (exact_partial:
/// together they read consecutive values, coalesced, where one thread per pair reads one row
/// each), and one thread adds them up as exact_score does (exact_combine): the same bits.
/// Called by every thread of the team; ends with the team in step.
template <Metric M, class Member, class QV, class XV, class Pair, class Store>
KOKKOS_INLINE_FUNCTION void team_exact_scores(Member const &team, double *partial,
                                              QV const &queries, XV const &database, std::size_t d,
                                              int count, Pair const &pair, Store const &store)
{
  constexpr int L = exact_partial_sums;
  constexpr int W = M == Metric::Cosine ? 3 : 1;
  for (int e0 = 0; e0 < count; e0 += team_rescore_pairs)
  {
    int const pairs = count - e0 < team_rescore_pairs ? count - e0 : team_rescore_pairs;
    team.team_barrier(); // the previous step's partial sums are added up
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, pairs * L),
                         [&](int t)
                         {
                           auto const rows = pair(e0 + t / L);
                           ExactPartial const p = exact_partial<M>(queries, rows.first, database,
                                                                   rows.second, d, t % L);
                           partial[t * W] = p.s;
                           if constexpr (W == 3)
                           {
                             partial[t * W + 1] = p.qq;
                             partial[t * W + 2] = p.xx;
                           }
                         });
    team.team_barrier();
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, pairs),
                         [&](int e)
                         {
                           double sum[L], qq[L] = {}, xx[L] = {};
                           for (int l = 0; l < L; ++l)
                           {
                             sum[l] = partial[(e * L + l) * W];
                             if constexpr (W == 3)
                             {
                               qq[l] = partial[(e * L + l) * W + 1];
                               xx[l] = partial[(e * L + l) * W + 2];
                             }
                           }
                           store(e0 + e, exact_combine<M>(sum, qq, xx));
                         });
  }
  team.team_barrier();
}

/// Per-query state of a tile's re-ranking, shared by its passes.
template <class MS>
struct RerankState
{
  Kokkos::View<int *, MS> redo; // per query of the tile: 1 = no proof, redo exactly
  Kokkos::View<int, MS> nonfinite;
  Kokkos::View<int **, Kokkos::LayoutRight, MS> marked; // per query: buffer slots to re-score
  Kokkos::View<int *, MS> marked_count; // per query: candidates re-scored (listed if by_row)
  Kokkos::View<double *, MS> a_kept;    // per query: the largest kept fast score
};

/// The shape of a tile's re-ranking.
struct RerankGeometry
{
  std::size_t d, q0, n;
  std::size_t n_eligible; // database rows a query may return (n, or n - 1 with exclude_self)
  int k, kept;
  int segments; // query ql's (merged) buffer is row ql * segments
  bool by_row;  // leave the re-scoring to the database-row pass
};

/// What the proof knows about the database and the fast scores.
struct ProofInputs
{
  double x_norm_max;     // max |x - centre|
  double x_inv_norm_max; // cosine: the largest 1/|x| (for the underflow term)
  bool exact_scores;     // the pre-selection scores are exact values rounded once to T
  double exact_below;    // ... and need no re-scoring below this (where T holds them exactly)
};

/// The exact re-ranking of a query tile, in two passes over its queries around the re-scoring.
/// Prepare: cut each buffer to the kept best, bound the fast scores' error, rule out the pad
/// candidates that cannot reach the top k, take exact integer scores as they are, and either
/// re-score the rest here (`by_row` false) or list them for the re-scoring by database row.
/// Finish: select and sort the k best exact scores, write them and check the proof.
/// Both passes run one thread per query (RangePolicy) or, on teams of many threads (the GPU's
/// traits), one team per query (TeamPolicy, TeamSelectScratch at level 0): the same candidates
/// marked, re-scored and proven, the same k written.
template <Metric M, class ExecSpace, class T, class QV, class XV>
struct FinalizeKernel : CandidateLists<T, typename ExecSpace::memory_space>,
                        RerankState<typename ExecSpace::memory_space>,
                        RerankGeometry,
                        ProofInputs
{
  using MS = typename ExecSpace::memory_space;
  using Lists = CandidateLists<T, MS>;
  using State = RerankState<MS>;
  using Lists::cand_val, Lists::cand_idx, Lists::cand_count;
  using State::redo, State::nonfinite, State::marked, State::marked_count, State::a_kept;
  using Member = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  struct Prepare
  {
  };
  struct Finish
  {
  };
  QV queries;
  XV database;
  Kokkos::View<T *, MS> q_aux;
  Neighbors<MS, T> result;

  /// The query's norm as the error bound takes it (|q - centre| for L2, |q| otherwise; cosine's
  /// per-row value is 1/|q|, L1 has none).
  KOKKOS_FUNCTION double q_norm(std::size_t qg) const
  {
    double const a = q_aux(qg);
    if constexpr (uses_centring(M))
      return Kokkos::sqrt(a);
    else if constexpr (M == Metric::Cosine)
      return 1.0 / a;
    else
      return a;
  }

  /// The query's underflow term (detail::underflow_bound).
  KOKKOS_FUNCTION double absolute(std::size_t qg) const
  {
    double const q_inv = M == Metric::Cosine ? double(q_aux(qg)) : 0.0;
    return underflow_bound<M, T>(q_norm(qg), x_norm_max, q_inv, x_inv_norm_max, d);
  }

  /// Bound on |fast - exact| for every candidate scoring at most the largest kept score.
  /// Exact scores carry only the final rounding to T (relative u); twice that for safety.
  KOKKOS_FUNCTION double bound(std::size_t qg, double largest_kept) const
  {
    if (exact_scores)
      return 2 * unit_roundoff<T>() * Kokkos::fabs(largest_kept);
    return error_bound<M, T>(largest_kept, q_norm(qg), x_norm_max, d, absolute(qg));
  }

  /// Lower bound on the exact score of every discarded row (see detail::discarded_floor).
  KOKKOS_FUNCTION double discarded_floor(std::size_t qg, double largest_kept) const
  {
    if (exact_scores)
      return largest_kept - bound(qg, largest_kept);
    return detail::discarded_floor<M, T>(largest_kept, q_norm(qg), x_norm_max, d, absolute(qg));
  }

  KOKKOS_FUNCTION void operator()(Prepare, std::size_t ql) const
  {
    std::size_t const qg = q0 + ql;
    std::size_t const b = ql * segments;
    T *vals = &cand_val(b, 0);
    index_type *ids = &cand_idx(b, 0);
    int const count = cand_count(b);
    if (count > kept)
      keep_smallest(vals, ids, count, kept);
    // Every discarded candidate scored at least the largest kept fast score.
    T largest = vals[0];
    for (int j = 1; j < kept; ++j)
      largest = vals[j] > largest ? vals[j] : largest;
    a_kept(ql) = largest;
    double const err = bound(qg, largest);
    // The k best fast scores first: their exact values are at most kth + err, so the k-th exact
    // key is at most key_of(kth + err), and a pad candidate whose exact value is certainly
    // above that key cannot enter the top k (most of a large k's pad; each skip saves reading a
    // database row).
    // Exact scores stay as they are: sorted now (the buffer's second half is the workspace),
    // they need no selection or sort in Finish. Others are re-scored, so only partitioned.
    if (kept > k && count >= kept)
    {
      if (exact_scores)
        sort_pairs(vals, ids, kept, vals + kept, ids + kept);
      else
        select_smallest(vals, ids, kept, k);
    }
    T kth = vals[0];
    for (int j = 1; j < k; ++j)
      kth = vals[j] > kth ? vals[j] : kth;
    double const kth_bound = double(kth) + err;
    double const reach =
        exact_above_key<M>(key_of<M, T>(M == Metric::L2 && kth_bound < 0 ? 0.0 : kth_bound));
    auto valid = [&](int j) { return j < count && ids[j] >= 0 && std::size_t(ids[j]) < n; };
    int marks = 0;
    for (int j = 0; j < kept; ++j)
    {
      if (!valid(j))
      {
        nonfinite() = 1; // a sentinel survived: some score was NaN/Inf
        vals[j] = Kokkos::Experimental::infinity_v<T>;
        ids[j] = 0;
      }
      else if (j >= k && double(vals[j]) - err > reach)
        vals[j] = Kokkos::Experimental::infinity_v<T>; // cannot be in the top k
      else if (double(vals[j]) < exact_below)
        vals[j] = key_of<M, T>(double(vals[j]));
      else if (by_row)
        marked(ql, marks++) = j;
      else
      {
        ++marks;
        // The candidates' rows are scattered over the database: ask for the next one early.
        if (j + 1 < kept && valid(j + 1))
          backends::prefetch_row(&database(std::size_t(ids[j + 1]), 0),
                                 d * sizeof(typename XV::value_type));
        vals[j] = key_of<M, T>(exact_score<M>(queries, qg, database, std::size_t(ids[j]), d));
      }
    }
    marked_count(ql) = marks;
  }

  /// Whether the buffer's first k pairs are its k best in ascending order (as Prepare leaves
  /// exact scores that needed no re-scoring): one pass without branches on the data.
  KOKKOS_FUNCTION bool leads_in_order(T const *vals, index_type const *ids) const
  {
    bool ordered = true;
    for (int j = 1; j < kept; ++j)
    {
      int const before = j < k ? j - 1 : k - 1;
      ordered &= pair_less(vals[before], ids[before], vals[j], ids[j]);
    }
    return ordered;
  }

  KOKKOS_FUNCTION void operator()(Finish, std::size_t ql) const
  {
    std::size_t const qg = q0 + ql;
    std::size_t const b = ql * segments;
    T *vals = &cand_val(b, 0);
    index_type *ids = &cand_idx(b, 0);
    // Only the k best need an order; the buffer's second half (free since the cut to `kept`)
    // is the sort's workspace.
    static_assert(candidate_buffer_factor >= 2);
    if (!(exact_scores && leads_in_order(vals, ids)))
    {
      if (kept > k)
        keep_smallest(vals, ids, kept, k);
      sort_pairs(vals, ids, k, vals + kept, ids + kept);
    }
    double const largest = a_kept(ql);
    bool const proven = std::size_t(kept) >= n_eligible ||
                        discarded_floor(qg, largest) > exact_above_key<M>(vals[k - 1]);
    redo(ql) = proven ? 0 : 1;
    for (int j = 0; j < k; ++j)
    {
      result.indices(qg, j) = ids[j];
      result.distances(qg, j) = reported<M>(vals[j]);
    }
  }

  /// What Prepare does with buffer slot j (the loop above, as a function of its inputs).
  enum class Slot
  {
    invalid, // a sentinel survived
    pruned,  // cannot be in the top k
    exact,   // exact already: its key as it is
    rescore  // re-scored (here or by database row)
  };
  KOKKOS_FUNCTION Slot slot_kind(T const *vals, index_type const *ids, int count, int j,
                                 bool in_best, double err, double reach) const
  {
    if (!(j < count && ids[j] >= 0 && std::size_t(ids[j]) < n))
      return Slot::invalid;
    if (!in_best && double(vals[j]) - err > reach)
      return Slot::pruned;
    if (double(vals[j]) < exact_below)
      return Slot::exact;
    return Slot::rescore;
  }

  /// Prepare by a team: the cut to `kept` by the team radix select (the buffer came from
  /// team_offer in row order, so ties by position are ties by row), the k-th fast score found by
  /// the same select without moving the pairs (a pair is one of the k best exactly when its
  /// value is at most it: an equal one beyond the k-th is never pruned, since the reach is
  /// above k-th + err), then every slot classified by its own thread and the ones to re-score
  /// listed and scored by team_exact_scores. Exact scores are not sorted here: Finish sorts them
  /// with the rest. Scratch: TeamSelectScratch, then team_exact_scores' partial sums.
  KOKKOS_FUNCTION void operator()(Prepare, Member const &team) const
  {
    std::size_t const ql = team.league_rank();
    std::size_t const qg = q0 + ql;
    std::size_t const b = ql * segments;
    T *vals = &cand_val(b, 0);
    index_type *ids = &cand_idx(b, 0);
    auto const select = TeamSelectScratch<T>::take(team, 0);
    int const count = cand_count(b);
    if (count > kept)
      (void)team_keep_smallest(team, select, vals, ids, count, kept);
    T largest{};
    Kokkos::parallel_reduce(
        Kokkos::TeamThreadRange(team, kept), [&](int j, T &m) { m = vals[j] > m ? vals[j] : m; },
        Kokkos::Max<T>(largest));
    double const err = bound(qg, largest);
    T kth = largest;
    if (kept > k && count >= kept)
      kth = team_kth_smallest(team, select, vals, kept, k);
    else if (kept > k)
      Kokkos::parallel_reduce(
          Kokkos::TeamThreadRange(team, k), [&](int j, T &m) { m = vals[j] > m ? vals[j] : m; },
          Kokkos::Max<T>(kth));
    double const kth_bound = double(kth) + err;
    double const reach =
        exact_above_key<M>(key_of<M, T>(M == Metric::L2 && kth_bound < 0 ? 0.0 : kth_bound));
    team.team_barrier(); // every thread has read the values the bounds came from
    // Slots to re-score here are listed behind the kept pairs (the buffer's second half is free
    // since the cut), then scored eight threads a pair.
    static_assert(candidate_buffer_factor >= 2);
    index_type *listed = ids + kept;
    int marks = 0;
    auto visit = [&](int j, int &at, bool apply)
    {
      Slot const kind = slot_kind(vals, ids, count, j, vals[j] <= kth, err, reach);
      if (apply)
        switch (kind)
        {
        case Slot::invalid:
          nonfinite() = 1;
          vals[j] = Kokkos::Experimental::infinity_v<T>;
          ids[j] = 0;
          break;
        case Slot::pruned:
          vals[j] = Kokkos::Experimental::infinity_v<T>;
          break;
        case Slot::exact:
          vals[j] = key_of<M, T>(double(vals[j]));
          break;
        case Slot::rescore:
          if (by_row)
            marked(ql, at) = j;
          else
            listed[at] = j;
          break;
        }
      at += kind == Slot::rescore;
    };
    // The lists' slots in buffer order, as the one-thread pass writes them.
    Kokkos::parallel_scan(
        Kokkos::TeamThreadRange(team, kept),
        [&](int j, int &at, bool final) { visit(j, at, final); }, marks);
    if (!by_row)
    {
      team.team_barrier(); // the list is complete
      auto *partial = static_cast<double *>(
          team.team_scratch(0).get_shmem(team_rescore_scratch_bytes<M>() - 64));
      team_exact_scores<M>(
          team, partial, queries, database, d, marks,
          [&](int e) { return Kokkos::pair<std::size_t, std::size_t>(qg, ids[listed[e]]); },
          [&](int e, double score) { vals[listed[e]] = key_of<M, T>(score); });
    }
    Kokkos::single(Kokkos::PerTeam(team),
                   [&]()
                   {
                     a_kept(ql) = largest;
                     marked_count(ql) = marks;
                   });
  }

  /// Finish by a team: the kept pairs sorted by (exact key, row) with the team's bitonic network
  /// (its first k are the k best, ties by row, as the cut and sort of the one-thread pass give),
  /// the proof, and the k written by the whole team.
  KOKKOS_FUNCTION void operator()(Finish, Member const &team) const
  {
    std::size_t const ql = team.league_rank();
    std::size_t const qg = q0 + ql;
    std::size_t const b = ql * segments;
    T *vals = &cand_val(b, 0);
    index_type *ids = &cand_idx(b, 0);
    team_sort_pairs(team, vals, ids, kept);
    double const largest = a_kept(ql);
    bool const proven = std::size_t(kept) >= n_eligible ||
                        discarded_floor(qg, largest) > exact_above_key<M>(vals[k - 1]);
    Kokkos::single(Kokkos::PerTeam(team), [&]() { redo(ql) = proven ? 0 : 1; });
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, k),
                         [&](int j)
                         {
                           result.indices(qg, j) = ids[j];
                           result.distances(qg, j) = reported<M>(vals[j]);
                         });
  }
};

} // namespace fastknn::detail
