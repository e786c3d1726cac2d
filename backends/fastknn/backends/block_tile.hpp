#pragma once
/// \file fastknn/backends/block_tile.hpp
/// The GPU's pre-selection micro-kernel (#31): a team scores its MR queries against a column
/// tile of NR database rows, depth slice by depth slice. The team copies each slice of the packed
/// query block and of the packed panel (both contiguous in the packed layout: KS x MR and
/// KS x NR values) into team scratch with consecutive threads on consecutive values (coalesced),
/// double-buffered so that one barrier per slice suffices; every thread keeps a TM x TN register
/// micro-tile of the MR x NR scores and feeds it from scratch in groups of four values.
///
/// Threads: TQ x TX = the team (rank t: queries (t % TQ) * TM + i, database columns
/// h * 4 * TX + (t / TQ) * 4 + j for h < TN / 4, j < 4). A warp of 32 threads thus reads, per
/// depth step, 8 distinct query quads (one 128-byte scratch wavefront, broadcast) and twice 4
/// distinct column quads (one wavefront each): 3 wavefronts and 3 load instructions per
/// 32 FMA per thread. Expected fraction of the FFMA peak from that (GpuTileTraits: TM = 4,
/// TN = 8, TQ = 8, TX = 16): issue-bound at 32 / (32 + 3) ~ 90 %, scratch bandwidth 3 of
/// 32 cycles per warp-step; before staging, barriers and the selection (docs/cuda.md).
///
/// The same code runs on any backend (Kokkos team patterns only); the host runs it in tests
/// (the gpu-shaped variant) with teams of FASTKNN_GPU_SHAPED_HOST threads.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>

namespace fastknn::backends
{

/// Bytes rounded up to a 64-byte boundary (how the scratch below is carved).
KOKKOS_INLINE_FUNCTION constexpr std::size_t round_up_64(std::size_t bytes)
{
  return (bytes + 63) / 64 * 64;
}

/// Columns of a slab: the scores of the MR queries against a slab of the tile's columns reuse
/// the staging area once the tile is summed (all NR for 4-byte scores, half for 8-byte ones).
KOKKOS_INLINE_FUNCTION constexpr int block_slab_columns(int nr, std::size_t value_size)
{
  return value_size > 4 ? nr / 2 : nr;
}

/// Team scratch of the tile's staging area: two depth slices of `slice_row_bytes` bytes per
/// query and per column, or a slab's scores, whichever is larger.
KOKKOS_INLINE_FUNCTION constexpr std::size_t block_area_bytes(int mr, int nr,
                                                              std::size_t slice_row_bytes,
                                                              std::size_t value_size)
{
  std::size_t const stage = 2 * (round_up_64(std::size_t(mr) * slice_row_bytes) +
                                 round_up_64(std::size_t(nr) * slice_row_bytes));
  std::size_t const slab = std::size_t(mr) * std::size_t(block_slab_columns(nr, value_size)) *
                           value_size;
  return stage > slab ? stage : slab;
}

/// Four consecutive values read as one access (a 16-byte scratch load for float on a GPU).
template <class T>
struct alignas(4 * sizeof(T)) Quad
{
  T v[4];
};

/// Thread layout of the block tile (see the file comment).
template <int MR, int NR, int TQ, int TX>
struct BlockTileShape
{
  static_assert(MR % (4 * TQ) == 0 && NR % (4 * TX) == 0,
                "each thread takes whole quads of queries and of columns");
  static constexpr int threads = TQ * TX;
  static constexpr int tq_threads = TQ, tx_threads = TX;
  static constexpr int tm = MR / TQ; // queries per thread
  static constexpr int tn = NR / TX; // database columns per thread
  /// The tile column of a thread's column number c (c < tn).
  KOKKOS_INLINE_FUNCTION static constexpr int column(int tx, int c)
  {
    return (c / 4) * 4 * TX + tx * 4 + c % 4;
  }
};

/// acc[i][j] += the dot product (Dot) or the sum of |differences| over `groups` groups of G
/// values of the micro-tile's query rows and columns, from slices laid out as the packed
/// blocks are: query value (g, i, e) at qs[(g * MR + i) * G + e], column (g, c, e) at
/// xs[(g * NR + c) * G + e]. Float (G = 1) reads quads; the 8-bit path (G = 4) sums exact
/// int32 products. The sum over a pair runs in depth order, whatever the source (scratch slices
/// or the packed blocks themselves), so every caller gets the same bits.
template <class Shape, int MR, int NR, int G, bool Dot, class A, class B, class Acc>
KOKKOS_FORCEINLINE_FUNCTION void block_tile_accumulate(A const *qs, B const *xs, int groups,
                                                       int tq, int tx,
                                                       Acc (&acc)[Shape::tm][Shape::tn])
{
  constexpr int TM = Shape::tm, TN = Shape::tn;
  constexpr int TX = Shape::tx_threads;
  for (int g = 0; g < groups; ++g)
  {
    A const *qg = qs + std::size_t(g) * MR * G + std::size_t(tq) * TM * G;
    B const *xg = xs + std::size_t(g) * NR * G + std::size_t(tx) * 4 * G;
    if constexpr (G == 1)
    {
      A a[TM];
      B b[TN];
      for (int i = 0; i < TM; i += 4)
      {
        Quad<A> const v = *reinterpret_cast<Quad<A> const *>(qg + i);
        for (int e = 0; e < 4; ++e)
          a[i + e] = v.v[e];
      }
      for (int h = 0; h < TN / 4; ++h)
      {
        Quad<B> const v = *reinterpret_cast<Quad<B> const *>(xg + h * 4 * TX);
        for (int e = 0; e < 4; ++e)
          b[h * 4 + e] = v.v[e];
      }
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j)
        {
          if constexpr (Dot)
            acc[i][j] += a[i] * b[j];
          else
            acc[i][j] += Kokkos::fabs(a[i] - b[j]);
        }
    }
    else
    {
      static_assert(Dot, "the grouped (8-bit) path is a dot product");
      for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j)
        {
          B const *xj = xg + ((j / 4) * 4 * TX + j % 4) * G;
          Acc s = 0;
          for (int e = 0; e < G; ++e)
            s += Acc(qg[i * G + e]) * Acc(xj[e]);
          acc[i][j] += s;
        }
    }
  }
}

/// Copies `count` values from `from` to `to` with the whole team, consecutive threads on
/// consecutive values (coalesced global reads).
template <class Member, class V>
KOKKOS_INLINE_FUNCTION void team_copy(Member const &team, V const *from, V *to, std::size_t count)
{
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, count), [&](std::size_t e) { to[e] = from[e]; });
}

} // namespace fastknn::backends
