#pragma once
/// \file fastknn/detail/preselect.hpp
/// Stage 2 of docs/design.md: the tiled pre-selection kernel over one chunk of the database.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fastknn/backends/host_preselect.hpp>
#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/detail/team_select.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// The packed query block and database tile a pre-selection launch reads, with the per-row values
/// of the fast score (indexed by global row).
template <class P, class MS>
struct PackedBlocks
{
  using score_policy = P;
  Kokkos::View<typename P::q_type *, MS> packed_q;
  Kokkos::View<typename P::x_type *, MS> packed_x;
  Kokkos::View<typename P::aux_type *, MS> q_aux, x_aux;
};

/// Where a pre-selection launch works: the query tile, the database tile and its chunks.
struct ChunkGeometry
{
  std::size_t dp;         // packed depth (the dimension rounded up to the score group)
  std::size_t d_real;     // the dimension
  std::size_t q0, q_rows; // first query of the tile, queries in it
  std::size_t x0, n;      // first database row of the packed tile, database rows in all
  std::size_t tile_rows;  // rows of the packed tile
  std::size_t launch;     // rows per chunk
  // The tile's chunks are split into `segments` runs of seg_chunks; this launch does chunk
  // number `step` of every run, for every query block. Each (query, segment) has its own
  // buffer, so a few queries still give enough teams; the buffers are merged after the last
  // launch.
  std::size_t step, seg_chunks;
  int segments, kept;
  bool exclude_self;
  // Streaming (few queries): one launch; team `seg` packs each chunk of its run from the
  // database into its scratch and runs all `blocks` query blocks against it.
  bool stream;
  int blocks;
};

/// Pre-selection over one chunk of the packed database: each team scores one block of MR
/// queries against every row of the chunk with a register-blocked micro-kernel and offers the
/// scores to the queries' candidate buffers. Generic path: scores go through team scratch so
/// that the team's threads can split the chunk. In-register path (one thread per team, no depth
/// blocking): each register block is compared with the MR thresholds while still in registers.
template <Metric M, int MR, int NR, int KC, int Level, int QB, class ExecSpace, class T, class P,
          class XV, class Shift>
struct ChunkKernel : PackedBlocks<P, typename ExecSpace::memory_space>,
                     CandidateLists<T, typename ExecSpace::memory_space>,
                     ChunkGeometry
{
  using MS = typename ExecSpace::memory_space;
  using Member = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using value_type = T;
  using score_policy = P;
  using exec_space = ExecSpace;
  using database_view = XV;
  static constexpr Metric metric = M;
  static constexpr int mr = MR, nr = NR;
  /// Query blocks one team scores together (group_path); 1: a team per block.
  static constexpr int team_blocks = QB;
  /// The CPU's one-thread kernels (backends/host_preselect.hpp) where the space has them.
  static constexpr bool InRegisters = backends::host_preselect_available<ExecSpace>;
  using Host = backends::HostPreselect;
  using Acc = typename P::acc_type;
  using Aux = typename P::aux_type;
  // Integer sums are exact only in one pass: no depth blocking for them.
  static constexpr std::size_t kc = P::group == 1 ? std::size_t(KC) : std::size_t(1) << 62;
  using X = typename P::x_type;
  using Packed = PackedBlocks<P, MS>;
  using Lists = CandidateLists<T, MS>;
  using Lists::cand_val, Lists::cand_idx, Lists::cand_count, Lists::cand_threshold;
  using Packed::packed_q, Packed::packed_x, Packed::q_aux, Packed::x_aux;
  XV database;
  Shift shift;
  /// Streamed float pre-selections with at most this many queries score rows in place (with
  /// 16 the accumulators spill: measured 2.5x slower than the packed kernels).
  static constexpr int direct_queries = 8;

  /// Bytes of the database to prefetch while a block computes (none by default).
  struct Ahead
  {
    char const *at = nullptr;
    std::size_t bytes = 0;
    /// Part i of `parts` (nearly) equal parts.
    KOKKOS_INLINE_FUNCTION Ahead part(std::size_t i, std::size_t parts) const
    {
      std::size_t const from = bytes * i / parts;
      return {at + from, bytes * (i + 1) / parts - from};
    }
  };

  KOKKOS_INLINE_FUNCTION CandidateBuffer<T> load(std::size_t b) const
  {
    return {&cand_val(b, 0), &cand_idx(b, 0), cand_count(b), cand_threshold(b), kept};
  }
  KOKKOS_INLINE_FUNCTION void store(std::size_t b, CandidateBuffer<T> const &c) const
  {
    cand_count(b) = c.count;
    cand_threshold(b) = c.threshold;
  }

  KOKKOS_INLINE_FUNCTION std::size_t rows_at(std::size_t c0) const
  {
    std::size_t const left = (tile_rows - c0 + NR - 1) / NR * NR;
    return left < launch ? left : launch;
  }

  /// The team's scratch: its blocks' scores against the chunk, a count per query and the
  /// selection's (sizes: preselect_scratch_bytes).
  struct Scratch
  {
    T *scores;
    int *passing;
    TeamSelectScratch<T> select;
  };
  KOKKOS_INLINE_FUNCTION Scratch take_scratch(Member const &team) const
  {
    auto &s = team.team_scratch(Level);
    T *scores = static_cast<T *>(s.get_shmem(std::size_t(QB) * MR * launch * sizeof(T)));
    int *passing = static_cast<int *>(s.get_shmem(std::size_t(QB) * MR * sizeof(int)));
    return {scores, passing, TeamSelectScratch<T>::take(team, Level)};
  }

  KOKKOS_INLINE_FUNCTION void block(Member const &team, int bi, int seg, std::size_t c0,
                                    std::size_t rows, X const *xs, Scratch const &scratch,
                                    Ahead ahead = {}) const
  {
    if constexpr (InRegisters)
      if (dp <= kc)
        return Host::select_in_registers(*this, bi, seg, c0, rows, xs, ahead);
    scratch_path(team, bi, seg, c0, rows, xs, scratch);
  }

  KOKKOS_FUNCTION void operator()(Member const &team) const
  {
    if (stream)
      return stream_run(team);
    int const bi = team.league_rank() / segments, seg = team.league_rank() % segments;
    std::size_t const c0 = (std::size_t(seg) * seg_chunks + step) * launch;
    if (c0 >= tile_rows)
      return; // the last run may be shorter
    X const *xs = packed_x.data() + c0 / NR * dp * NR;
    if constexpr (QB > 1)
      return group_path(team, bi * QB, seg, c0, rows_at(c0), xs, take_scratch(team));
    block(team, bi, seg, c0, rows_at(c0), xs, take_scratch(team));
  }

  KOKKOS_FUNCTION void stream_run(Member const &team) const
  {
    // At most direct_queries queries: no packed chunks, rows scored where they lie.
    if constexpr (InRegisters && P::group == 1)
    {
      if (q_rows == 1)
        return Host::direct<1>(*this, team);
      if (q_rows <= 4)
        return Host::direct<4>(*this, team);
      if (q_rows <= std::size_t(direct_queries))
        return Host::direct<direct_queries>(*this, team);
    }
    int const seg = team.league_rank();
    X *xs = static_cast<X *>(team.team_scratch(1).get_shmem(launch * dp * sizeof(X)));
    Scratch const scratch = take_scratch(team);
    constexpr int G = P::group;
    for (std::size_t c = 0; c < seg_chunks; ++c)
    {
      std::size_t const c0 = (std::size_t(seg) * seg_chunks + c) * launch;
      if (c0 >= tile_rows)
        break;
      std::size_t const rows = rows_at(c0);
      std::size_t const valid = tile_rows - c0 < rows ? tile_rows - c0 : rows;
      team.team_barrier();
      // The packed layout of pack_rows, written row by row (reads stay sequential).
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, rows),
          [&](std::size_t r)
          {
            X *out = xs + (r / NR) * dp * NR + (r % NR) * G;
            std::size_t p = 0;
            if (r < valid)
            {
              std::size_t const row = x0 + c0 + r;
              if constexpr (std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>)
              {
                auto const *src = &database(row, 0);
                for (; p < d_real; ++p)
                  out[(p / G) * NR * G + p % G] = shift(double(src[p]), p);
              }
              else
                for (; p < d_real; ++p)
                  out[(p / G) * NR * G + p % G] = shift(double(database(row, p)), p);
            }
            for (; p < dp; ++p)
              out[(p / G) * NR * G + p % G] = X(0);
          });
      team.team_barrier();
      // While the blocks compute, the next chunk's rows are asked for (a share per block and
      // panel): its pack then finds them in cache instead of waiting for memory (measured:
      // the pack's loads took ~60 % of a 16-query search).
      Ahead next;
      std::size_t const c1 = c0 + launch;
      constexpr bool by_rows = std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>;
      if (by_rows && database.span_is_contiguous() && c + 1 < seg_chunks && c1 < tile_rows)
      {
        std::size_t const rows1 = tile_rows - c1 < launch ? tile_rows - c1 : launch;
        next.at = reinterpret_cast<char const *>(&database(x0 + c1, 0));
        next.bytes = rows1 * d_real * sizeof(typename XV::value_type);
      }
      for (int bi = 0; bi < blocks; ++bi)
        block(team, bi, seg, c0, rows, xs, scratch,
              next.part(std::size_t(bi), std::size_t(blocks)));
    }
  }

  /// Teams of many threads (the GPU): query blocks [b0, b0 + QB) against the chunk. Every
  /// thread takes (block, panel) pairs, neighbours the same panel (read from L2 once, then from
  /// L1 by the other blocks' threads); the scores wait in scratch. Then the queries that have a
  /// score below their threshold (counted in one pass, with scratch atomics) offer the chunk to
  /// their buffers with the whole team (team_offer); after the first chunks most have none.
  KOKKOS_FUNCTION void group_path(Member const &team, int b0, int seg, std::size_t chunk0,
                                  std::size_t chunk_rows, X const *xs,
                                  Scratch const &scratch) const
  {
    int const nb = blocks - b0 < QB ? blocks - b0 : QB;
    int const panels = static_cast<int>(chunk_rows / NR);
    std::size_t const first = x0 + chunk0;
    std::size_t const valid = first + chunk_rows <= n ? chunk_rows : n - first;
    std::size_t const q_first = std::size_t(b0) * MR; // the group's first query in the tile
    int const queries = nb * MR;
    T *const scores = scratch.scores; // query (in the group) qi at scores + qi * chunk_rows
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nb * panels),
                         [&](int item)
                         {
                           int const b = item % nb, pj = item / nb;
                           Acc acc[MR][NR];
                           for (int i = 0; i < MR; ++i)
                             for (int j = 0; j < NR; ++j)
                               acc[i][j] = Acc(0);
                           P::template accumulate<M, ExecSpace, MR, NR>(
                               packed_q.data() + std::size_t(b0 + b) * dp * MR,
                               xs + std::size_t(pj) * dp * NR, 0, dp, acc);
                           for (int i = 0; i < MR; ++i)
                           {
                             std::size_t const ql = q_first + std::size_t(b) * MR + i;
                             Aux const qa = ql < q_rows ? q_aux(q0 + ql) : Aux(0);
                             T *out = scores + (std::size_t(b) * MR + i) * chunk_rows +
                                      std::size_t(pj) * NR;
                             for (int j = 0; j < NR; ++j)
                             {
                               std::size_t const xg = first + std::size_t(pj) * NR + j;
                               Aux const xa = xg < n ? x_aux(xg) : Aux(0);
                               out[j] = P::template score<M>(acc[i][j], qa, xa);
                             }
                           }
                         });
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, queries),
                         [&](int qi) { scratch.passing[qi] = 0; });
    team.team_barrier();
    Kokkos::parallel_for(
        Kokkos::TeamThreadRange(team, std::size_t(queries) * valid),
        [&](std::size_t e)
        {
          std::size_t const qi = e / valid, j = e % valid, ql = q_first + qi;
          if (ql >= q_rows)
            return;
          T const v = scores[qi * chunk_rows + j];
          if (v < cand_threshold(ql * segments + seg) && !(exclude_self && first + j == q0 + ql))
            Kokkos::atomic_add(&scratch.passing[qi], 1);
        });
    team.team_barrier();
    for (int qi = 0; qi < queries; ++qi)
    {
      std::size_t const ql = q_first + std::size_t(qi);
      if (ql >= q_rows)
        break;
      if (scratch.passing[qi] == 0)
        continue; // the same on every thread: no barrier skipped by some only
      std::size_t const b = ql * segments + seg;
      TeamBuffer<T> buf{&cand_val(b, 0), &cand_idx(b, 0), cand_count(b), cand_threshold(b),
                        kept, candidate_capacity(kept)};
      T const *row = scores + std::size_t(qi) * chunk_rows;
      team_offer(team, scratch.select, buf, valid, static_cast<index_type>(first),
                 [&](std::size_t j) { return row[j]; },
                 exclude_self ? q0 + ql : ~std::size_t(0));
      team.team_barrier(); // every thread has read the count and threshold it started from
      Kokkos::single(Kokkos::PerTeam(team),
                     [&]()
                     {
                       cand_count(b) = buf.count;
                       cand_threshold(b) = buf.threshold;
                     });
    }
  }

  /// `scratch.scores`: team scratch for the block's scores (or partial sums, with depth
  /// blocking) against the whole chunk.
  KOKKOS_FUNCTION void scratch_path(Member const &team, int bi, int seg, std::size_t chunk0,
                                    std::size_t chunk_rows, X const *xs,
                                    Scratch const &scratch) const
  {
    T *const scores = scratch.scores;
    team.team_barrier(); // the previous block's selection may still read the scores
    int const panels = static_cast<int>(chunk_rows / NR);
    // The depth loop may be blocked (KC) so that a block of queries and a panel of the chunk
    // stay in L1 while the register block accumulates; partial sums wait in the scratch.
    for (std::size_t k0 = 0; k0 < dp; k0 += kc)
    {
      std::size_t const k1 = k0 + kc < dp ? k0 + kc : dp;
      bool const first = k0 == 0, last = k1 == dp;
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, panels),
          [&](int pj)
          {
            T *out = scores + std::size_t(pj) * NR;
            Acc acc[MR][NR];
            for (int i = 0; i < MR; ++i)
              for (int j = 0; j < NR; ++j)
                acc[i][j] = first ? Acc(0) : static_cast<Acc>(out[i * chunk_rows + j]);
            P::template accumulate<M, ExecSpace, MR, NR>(
                packed_q.data() + std::size_t(bi) * dp * MR, xs + std::size_t(pj) * dp * NR, k0, k1,
                acc);
            for (int i = 0; i < MR; ++i)
            {
              std::size_t const qg = q0 + std::size_t(bi) * MR + i;
              Aux const qa = last && qg < q0 + q_rows ? q_aux(qg) : Aux(0);
              for (int j = 0; j < NR; ++j)
              {
                std::size_t const xg = x0 + chunk0 + std::size_t(pj) * NR + j;
                Aux const xa = last && xg < n ? x_aux(xg) : Aux(0);
                out[i * chunk_rows + j] =
                    last ? P::template score<M>(acc[i][j], qa, xa) : static_cast<T>(acc[i][j]);
              }
            }
          });
      team.team_barrier();
    }
    std::size_t const first = x0 + chunk0;
    std::size_t const valid = first + chunk_rows <= n ? chunk_rows : n - first;
    if (team.team_size() > 1)
    {
      // Teams of many threads (the GPU): each query's scores are offered by the whole team.
      for (int i = 0; i < MR; ++i)
      {
        std::size_t const ql = std::size_t(bi) * MR + i;
        if (ql >= q_rows)
          break;
        std::size_t const b = ql * segments + seg;
        TeamBuffer<T> buf{&cand_val(b, 0), &cand_idx(b, 0), cand_count(b), cand_threshold(b),
                          kept, candidate_capacity(kept)};
        T const *row = scores + i * chunk_rows;
        team_offer(team, scratch.select, buf, valid, static_cast<index_type>(first),
                   [&](std::size_t j) { return row[j]; },
                   exclude_self ? q0 + ql : ~std::size_t(0));
        Kokkos::single(Kokkos::PerTeam(team),
                       [&]()
                       {
                         cand_count(b) = buf.count;
                         cand_threshold(b) = buf.threshold;
                       });
      }
      return;
    }
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, MR),
                         [&](int i)
                         {
                           std::size_t const ql = std::size_t(bi) * MR + i;
                           if (ql >= q_rows)
                             return;
                           std::size_t const qg = q0 + ql;
                           CandidateBuffer<T> buf = load(ql * segments + seg);
                           T const *row = scores + i * chunk_rows;
                           for (std::size_t j = 0; j < valid; ++j)
                             if (row[j] < buf.threshold && !(exclude_self && first + j == qg))
                               buf.offer(row[j], static_cast<index_type>(first + j));
                           store(ql * segments + seg, buf);
                         });
  }
};

} // namespace fastknn::detail
