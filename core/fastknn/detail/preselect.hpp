#pragma once
/// \file fastknn/detail/preselect.hpp
/// Stage 2 of docs/design.md: the tiled pre-selection kernel over one chunk of the database.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/metric_ops.hpp>
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
  std::size_t dp;        // packed depth (the dimension rounded up to the score group)
  std::size_t d_real;    // the dimension
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
/// that the team's threads can split the chunk. Fused path (one thread per team, no depth
/// blocking): each register block is compared with the MR thresholds while still in registers.
template <Metric M, int MR, int NR, int KC, int Level, bool Fused, class ExecSpace, class T,
          class P, class XV, class Shift>
struct ChunkKernel : PackedBlocks<P, typename ExecSpace::memory_space>,
                     CandidateLists<T, typename ExecSpace::memory_space>,
                     ChunkGeometry
{
  using MS = typename ExecSpace::memory_space;
  using Member = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using Acc = typename P::acc_type;
  using Aux = typename P::aux_type;
  // Integer sums are exact only in one pass: no depth blocking for them.
  static constexpr std::size_t kc = P::group == 1 ? std::size_t(KC) : std::size_t(1) << 62;
  using X = typename P::x_type;
  using Packed = PackedBlocks<P, MS>;
  using Lists = CandidateLists<T, MS>;
  using Packed::packed_q, Packed::packed_x, Packed::q_aux, Packed::x_aux;
  using Lists::cand_val, Lists::cand_idx, Lists::cand_count, Lists::cand_threshold;
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

  KOKKOS_INLINE_FUNCTION void block(Member const &team, int bi, int seg, std::size_t c0,
                                    std::size_t rows, X const *xs, T *scores,
                                    Ahead ahead = {}) const
  {
    if constexpr (Fused)
      if (dp <= kc)
        return fused(bi, seg, c0, rows, xs, ahead);
    scratch_path(team, bi, seg, c0, rows, xs, scores);
  }

  KOKKOS_FUNCTION void operator()(Member const &team) const
  {
    if (stream)
      return stream_run(team);
    int const bi = team.league_rank() / segments, seg = team.league_rank() % segments;
    std::size_t const c0 = (std::size_t(seg) * seg_chunks + step) * launch;
    if (c0 >= tile_rows)
      return; // the last run may be shorter
    T *scores = static_cast<T *>(team.team_scratch(Level).get_shmem(MR * launch * sizeof(T)));
    block(team, bi, seg, c0, rows_at(c0), packed_x.data() + c0 / NR * dp * NR, scores);
  }

  KOKKOS_FUNCTION void stream_run(Member const &team) const
  {
    // At most direct_queries queries: no packed chunks, rows scored where they lie.
    if constexpr (Fused && P::group == 1)
    {
      if (q_rows == 1)
        return direct_run<1>(team);
      if (q_rows <= 4)
        return direct_run<4>(team);
      if (q_rows <= std::size_t(direct_queries))
        return direct_run<direct_queries>(team);
    }
    int const seg = team.league_rank();
    X *xs = static_cast<X *>(team.team_scratch(1).get_shmem(launch * dp * sizeof(X)));
    T *scores = static_cast<T *>(team.team_scratch(Level).get_shmem(MR * launch * sizeof(T)));
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
        block(team, bi, seg, c0, rows, xs, scores, next.part(std::size_t(bi), std::size_t(blocks)));
    }
  }

  /// Streamed float pre-selection for at most NQ queries (one thread per team): each database
  /// row of the team's run is read once where it lies and scored against the queries, the dot
  /// products (or L1 sums) split into L lanes along the dimension so that they vectorise. No
  /// packed copy: with so few queries the register-blocked kernel would mostly multiply padding.
  /// Same fast score as the packed kernels up to the summation order, which the error bound
  /// does not depend on.
  template <int NQ>
  KOKKOS_FUNCTION void direct_run(Member const &team) const
  {
    constexpr int L = backends::host_vector_bytes / int(sizeof(T));
    int const seg = team.league_rank();
    int const nq = static_cast<int>(q_rows);
    // The queries' centred values (packed in blocks of MR) row by row, zero rows up to NQ, in
    // the scratch the packed chunk would use.
    T *qs = static_cast<T *>(team.team_scratch(1).get_shmem(launch * dp * sizeof(X)));
    for (int i = 0; i < NQ; ++i)
      for (std::size_t p = 0; p < dp; ++p)
        qs[std::size_t(i) * dp + p] =
            i < nq ? T(packed_q((std::size_t(i) / MR * dp + p) * MR + std::size_t(i) % MR)) : T(0);
    CandidateBuffer<T> buf[NQ];
    Aux qa[NQ];
    for (int i = 0; i < nq; ++i)
    {
      buf[i] = load(std::size_t(i) * segments + seg);
      qa[i] = q_aux(q0 + std::size_t(i));
    }
    T const *cen = shift.centre.data();
    std::size_t const body = d_real / L * L;
    std::size_t const r0 = std::size_t(seg) * seg_chunks * launch;
    std::size_t const r1 =
        r0 + seg_chunks * launch < tile_rows ? r0 + seg_chunks * launch : tile_rows;
    for (std::size_t r = r0; r < r1; ++r)
    {
      std::size_t const row = x0 + r;
      T acc[NQ][L] = {};
      auto const add = [&](int l, std::size_t p, double v)
      {
        T const b = static_cast<T>(v - double(cen[p]));
        for (int i = 0; i < NQ; ++i)
        {
          T const a = qs[std::size_t(i) * dp + p];
          if constexpr (uses_dot(M))
            acc[i][l] += a * b;
          else
            acc[i][l] += Kokkos::fabs(a - b);
        }
      };
      if constexpr (std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>)
      {
        auto const *src = &database(row, 0);
        for (std::size_t p = 0; p < body; p += L)
          for (int l = 0; l < L; ++l)
            add(l, p + l, double(src[p + l]));
      }
      else
        for (std::size_t p = 0; p < body; p += L)
          for (int l = 0; l < L; ++l)
            add(l, p + l, double(database(row, p + l)));
      for (std::size_t p = body; p < d_real; ++p)
        add(int(p - body), p, double(database(row, p)));
      Aux const xa = x_aux(row);
      for (int i = 0; i < nq; ++i)
      {
        T sum = 0;
        for (int l = 0; l < L; ++l)
          sum += acc[i][l];
        T const s = P::template score<M>(sum, qa[i], xa);
        if (s < buf[i].threshold && !(exclude_self && row == q0 + std::size_t(i)))
          buf[i].offer(s, static_cast<index_type>(row));
      }
    }
    for (int i = 0; i < nq; ++i)
      store(std::size_t(i) * segments + seg, buf[i]);
  }

  KOKKOS_FUNCTION void fused(int bi, int seg, std::size_t chunk0, std::size_t chunk_rows,
                             X const *xs, Ahead ahead) const
  {
    CandidateBuffer<T> buf[MR];
    Aux qa[MR];
    std::size_t const first_row = x0 + chunk0;
    for (int i = 0; i < MR; ++i)
    {
      std::size_t const ql = std::size_t(bi) * MR + i;
      if (ql < q_rows)
      {
        buf[i] = load(ql * segments + seg);
        qa[i] = q_aux(q0 + ql);
      }
      else
      {
        buf[i] =
            CandidateBuffer<T>{nullptr, nullptr, 0, -Kokkos::Experimental::infinity_v<T>, kept};
        qa[i] = Aux(0);
      }
    }
    int const panels = static_cast<int>(chunk_rows / NR);
    auto const *a = packed_q.data() + std::size_t(bi) * dp * MR;
    for (int pj = 0; pj < panels; ++pj)
    {
      if (ahead.bytes > 0)
      {
        Ahead const mine = ahead.part(std::size_t(pj), std::size_t(panels));
        backends::prefetch_row(mine.at, mine.bytes);
      }
      Acc acc[MR][NR] = {};
      P::template accumulate<M, ExecSpace, MR, NR>(a, xs + std::size_t(pj) * dp * NR, 0, dp, acc);
      std::size_t const row0 = first_row + std::size_t(pj) * NR;
      Aux xa[NR];
      for (int j = 0; j < NR; ++j)
        xa[j] = row0 + j < n ? x_aux(row0 + j) : Aux(0);
      for (int i = 0; i < MR; ++i)
      {
        // One vector compare per 16 scores gives a bit mask of the candidates; only those are
        // visited (with large k most panels hold a few). Locals and an integer mask keep this
        // loop vectorisable (GCC 12 gives up when the test reads the buffer's member).
        static_assert(NR <= 64, "the candidate mask has 64 bits");
        T s[NR];
        T const threshold = buf[i].threshold;
        Aux const qai = qa[i];
        for (int j = 0; j < NR; ++j)
          s[j] = P::template score<M>(acc[i][j], qai, xa[j]);
        // Per-lane bits, then an OR reduction: both loops vectorise (one fused loop does not).
        using Bits = std::conditional_t<NR <= 32, std::uint32_t, std::uint64_t>;
        Bits bit[NR];
        for (int j = 0; j < NR; ++j)
          bit[j] = Bits(s[j] < threshold ? 1 : 0) << j;
        Bits lanes = 0;
        for (int j = 0; j < NR; ++j)
          lanes |= bit[j];
        std::uint64_t mask = lanes;
        if (mask == 0) // the common case for small k
          continue;
        if (row0 + NR > n) // padding rows past the end
          mask &= (std::uint64_t(1) << (n - row0)) - 1;
        std::size_t const qg = q0 + std::size_t(bi) * MR + i;
        if (exclude_self && qg >= row0 && qg < row0 + NR)
          mask &= ~(std::uint64_t(1) << (qg - row0));
        buf[i].template offer_masked<ExecSpace>(mask, s, static_cast<index_type>(row0));
      }
    }
    for (int i = 0; i < MR; ++i)
      if (std::size_t(bi) * MR + i < q_rows)
        store((std::size_t(bi) * MR + i) * segments + seg, buf[i]);
  }

  /// `scores`: team scratch for the block's scores (or partial sums, with depth blocking)
  /// against the whole chunk.
  KOKKOS_FUNCTION void scratch_path(Member const &team, int bi, int seg, std::size_t chunk0,
                                    std::size_t chunk_rows, X const *xs, T *scores) const
  {
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
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, MR),
                         [&](int i)
                         {
                           std::size_t const ql = std::size_t(bi) * MR + i;
                           if (ql >= q_rows)
                             return;
                           std::size_t const qg = q0 + ql;
                           CandidateBuffer<T> buf = load(ql * segments + seg);
                           std::size_t const first = x0 + chunk0;
                           std::size_t const valid =
                               first + chunk_rows <= n ? chunk_rows : n - first;
                           T const *row = scores + i * chunk_rows;
                           for (std::size_t j = 0; j < valid; ++j)
                             if (row[j] < buf.threshold && !(exclude_self && first + j == qg))
                               buf.offer(row[j], static_cast<index_type>(first + j));
                           store(ql * segments + seg, buf);
                         });
  }
};

} // namespace fastknn::detail
