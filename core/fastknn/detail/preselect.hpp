#pragma once
/// \file fastknn/detail/preselect.hpp
/// Stage 2 of docs/design.md: the tiled pre-selection kernel over one chunk of the database.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fastknn/backends/block_tile.hpp>
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
template <Metric M, int MR, int NR, int KC, int Level, int QB, int StageRowBytes, int TQ, int TT,
          class ExecSpace, class T, class P, class XV, class Shift>
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
  /// Query blocks one team scores together: 1 (pipeline.hpp asserts it).
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
  /// Block-tiled (the GPU's traits, backends/block_tile.hpp): slices of KS coordinates staged
  /// for TT threads in TQ x (TT / TQ).
  static constexpr bool tiled = StageRowBytes > 0;
  using Q = typename P::q_type;
  static constexpr int KS = tiled ? StageRowBytes / int(sizeof(X)) : 0;
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
    // (Block-tiled traits never stream, and their kernel holds no other path: a register block
    // of MR x NR per thread would be a 16 KiB stack frame on a GPU.)
    if constexpr (!tiled)
      if (stream)
        return stream_run(team);
    int const bi = team.league_rank() / segments, seg = team.league_rank() % segments;
    std::size_t const c0 = (std::size_t(seg) * seg_chunks + step) * launch;
    if (c0 >= tile_rows)
      return; // the last run may be shorter
    X const *xs = packed_x.data() + c0 / NR * dp * NR;
    if constexpr (tiled)
      tiled_path(team, bi, seg, c0, rows_at(c0), xs);
    else
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

  /// Query ql (of the tile) offers `valid` scores (row[j] for database row first + j) to its
  /// buffer of run `seg`, with the whole team (team_offer), and stores the buffer's count and
  /// threshold. Ends with the team in step.
  KOKKOS_INLINE_FUNCTION void offer_row(Member const &team, TeamSelectScratch<T> const &select,
                                        std::size_t ql, int seg, T const *row, std::size_t valid,
                                        std::size_t first) const
  {
    std::size_t const b = ql * segments + seg;
    TeamBuffer<T> buf{&cand_val(b, 0), &cand_idx(b, 0), cand_count(b), cand_threshold(b),
                      kept,            candidate_capacity(kept)};
    team_offer(team, select, buf, valid, static_cast<index_type>(first),
               [&](std::size_t j) { return row[j]; }, exclude_self ? q0 + ql : ~std::size_t(0));
    team.team_barrier(); // every thread has read the count and threshold it started from
    Kokkos::single(Kokkos::PerTeam(team),
                   [&]()
                   {
                     cand_count(b) = buf.count;
                     cand_threshold(b) = buf.threshold;
                   });
  }

  /// The block-tiled path's scratch: two staging buffers for each of the query block and the
  /// column tile (the scores of a slab reuse them), two counts per query, the selection's.
  struct TiledScratch
  {
    Q *q[2];
    X *x[2];
    T *scores;
    int *passing;
    TeamSelectScratch<T> select;
  };
  KOKKOS_INLINE_FUNCTION TiledScratch take_tiled_scratch(Member const &team) const
  {
    auto &s = team.team_scratch(Level);
    constexpr std::size_t qb = backends::round_up_64(std::size_t(MR) * StageRowBytes);
    constexpr std::size_t xb = backends::round_up_64(std::size_t(NR) * StageRowBytes);
    char *area = static_cast<char *>(
        s.get_shmem_aligned(backends::block_area_bytes(MR, NR, StageRowBytes, sizeof(T)), 64));
    TiledScratch out;
    out.q[0] = reinterpret_cast<Q *>(area);
    out.x[0] = reinterpret_cast<X *>(area + qb);
    out.q[1] = reinterpret_cast<Q *>(area + qb + xb);
    out.x[1] = reinterpret_cast<X *>(area + 2 * qb + xb);
    out.scores = reinterpret_cast<T *>(area);
    out.passing = static_cast<int *>(s.get_shmem_aligned(2 * MR * sizeof(int), 64));
    out.select = TeamSelectScratch<T>::take(team, Level);
    return out;
  }

  /// Writes the micro-tile's scores in slab [w0, w0 + W) of the tile's columns to scratch and
  /// counts, per query, those below its threshold (the threshold test of the epilogue: a query
  /// with none is skipped by the selection).
  template <class Tile, int W>
  KOKKOS_INLINE_FUNCTION void write_slab(TiledScratch const &s,
                                         Acc const (&acc)[Tile::tm][Tile::tn], int tq, int tx,
                                         int w0, std::size_t tile_first, std::size_t q_first,
                                         int seg, int *passing) const
  {
    for (int i = 0; i < Tile::tm; ++i)
    {
      int const qi = tq * Tile::tm + i;
      std::size_t const ql = q_first + std::size_t(qi);
      bool const real = ql < q_rows;
      Aux const qa = real ? q_aux(q0 + ql) : Aux(0);
      T const threshold = real ? cand_threshold(ql * segments + seg) : T(0);
      int below = 0;
      for (int c = 0; c < Tile::tn; ++c)
      {
        int const col = Tile::column(tx, c);
        if (col < w0 || col >= w0 + W)
          continue;
        std::size_t const xg = tile_first + std::size_t(col);
        Aux const xa = xg < n ? x_aux(xg) : Aux(0);
        T const v = P::template score<M>(acc[i][c], qa, xa);
        s.scores[std::size_t(qi) * W + std::size_t(col - w0)] = v;
        below += real && xg < n && v < threshold && !(exclude_self && xg == q0 + ql);
      }
      if (below > 0)
        Kokkos::atomic_add(&passing[qi], below);
    }
  }

  /// The queries with a score below their threshold offer the slab's rows to their buffers,
  /// with the whole team (team_offer). Ends with the team in step.
  template <int W>
  KOKKOS_INLINE_FUNCTION void offer_slab(Member const &team, TiledScratch const &s,
                                         int const *passing, std::size_t first,
                                         std::size_t q_first, int seg) const
  {
    std::size_t const valid = first >= n ? 0 : (n - first < std::size_t(W) ? n - first : W);
    for (int qi = 0; qi < MR && valid > 0; ++qi)
    {
      std::size_t const ql = q_first + std::size_t(qi);
      if (ql >= q_rows)
        break;
      if (passing[qi] == 0)
        continue; // the same on every thread: no barrier skipped by some only
      offer_row(team, s.select, ql, seg, s.scores + std::size_t(qi) * W, valid, first);
    }
    team.team_barrier(); // the offers have read the scores and the counts
  }

  /// Block-tiled pre-selection of query block bi against the chunk, column tile by column tile
  /// (backends/block_tile.hpp). A team of the traits' size keeps one micro-tile per thread in
  /// registers over staged depth slices; a smaller team (an OpenMP instance with fewer threads)
  /// lets each thread sum the micro-tiles of the missing ones from the packed blocks, in the
  /// same order (the same bits).
  KOKKOS_FUNCTION void tiled_path(Member const &team, int bi, int seg, std::size_t chunk0,
                                  std::size_t chunk_rows, X const *xs) const
  {
    using Tile = backends::BlockTileShape<MR, NR, TQ, TT / TQ>;
    constexpr int G = P::group;
    constexpr int W = backends::block_slab_columns(NR, sizeof(T));
    constexpr int slice_groups = KS / G;
    constexpr bool dot = uses_dot(M);
    static_assert(KS % G == 0 && slice_groups > 0, "a slice holds whole groups");
    TiledScratch const s = take_tiled_scratch(team);
    int const rank = team.team_rank(), size = team.team_size();
    Q const *qblock = packed_q.data() + std::size_t(bi) * dp * MR;
    std::size_t const q_first = std::size_t(bi) * MR; // the block's first query in the tile
    int const groups = static_cast<int>(dp / G);
    int const slices = (groups + slice_groups - 1) / slice_groups;
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, 2 * MR), [&](int i) { s.passing[i] = 0; });
    int parity = 0; // which of the two counts the next slab fills (the other is cleared)
    for (std::size_t c0 = 0; c0 < chunk_rows; c0 += NR)
    {
      X const *panel = xs + c0 / NR * dp * NR;
      std::size_t const tile_first = x0 + chunk0 + c0; // the tile's first database row
      team.team_barrier(); // the last offers have read the scores (staging reuses them)
      if (size == Tile::threads)
      {
        int const tq = rank % TQ, tx = rank / TQ;
        Acc acc[Tile::tm][Tile::tn];
        for (int i = 0; i < Tile::tm; ++i)
          for (int j = 0; j < Tile::tn; ++j)
            acc[i][j] = Acc(0);
        auto const copy = [&](int buffer, int slice)
        {
          int const g0 = slice * slice_groups;
          int const g = groups - g0 < slice_groups ? groups - g0 : slice_groups;
          backends::team_copy(team, qblock + std::size_t(g0) * MR * G, s.q[buffer],
                              std::size_t(g) * MR * G);
          backends::team_copy(team, panel + std::size_t(g0) * NR * G, s.x[buffer],
                              std::size_t(g) * NR * G);
        };
        copy(0, 0);
        team.team_barrier();
        for (int sl = 0; sl < slices; ++sl)
        {
          // The next slice goes to the other buffer, read last in the previous step (which
          // ended with a barrier) while this one is summed: one barrier per slice.
          if (sl + 1 < slices)
            copy((sl + 1) & 1, sl + 1);
          int const g = groups - sl * slice_groups < slice_groups ? groups - sl * slice_groups
                                                                  : slice_groups;
          backends::block_tile_accumulate<Tile, MR, NR, G, dot>(s.q[sl & 1], s.x[sl & 1], g, tq,
                                                               tx, acc);
          team.team_barrier();
        }
        for (int w0 = 0; w0 < NR; w0 += W)
        {
          int *const passing = s.passing + parity * MR;
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, MR),
                               [&](int i) { s.passing[(parity ^ 1) * MR + i] = 0; });
          write_slab<Tile, W>(s, acc, tq, tx, w0, tile_first, q_first, seg, passing);
          team.team_barrier();
          offer_slab<W>(team, s, passing, tile_first + std::size_t(w0), q_first, seg);
          parity ^= 1;
        }
      }
      else
      {
        for (int w0 = 0; w0 < NR; w0 += W)
        {
          int *const passing = s.passing + parity * MR;
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, MR),
                               [&](int i) { s.passing[(parity ^ 1) * MR + i] = 0; });
          for (int v = rank; v < Tile::threads; v += size)
          {
            Acc acc[Tile::tm][Tile::tn];
            for (int i = 0; i < Tile::tm; ++i)
              for (int j = 0; j < Tile::tn; ++j)
                acc[i][j] = Acc(0);
            backends::block_tile_accumulate<Tile, MR, NR, G, dot>(qblock, panel, groups, v % TQ,
                                                                 v / TQ, acc);
            write_slab<Tile, W>(s, acc, v % TQ, v / TQ, w0, tile_first, q_first, seg,
                                passing);
          }
          team.team_barrier();
          offer_slab<W>(team, s, passing, tile_first + std::size_t(w0), q_first, seg);
          parity ^= 1;
        }
      }
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
        offer_row(team, scratch.select, ql, seg, scores + i * chunk_rows, valid, first);
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
