#pragma once
/// \file fastknn/backends/tile_traits.hpp
/// Per-execution-space tuning constants of the tiled search. The algorithm (core/) is written
/// once; only these numbers differ per backend.

#include <Kokkos_Core.hpp>

namespace fastknn::backends
{

/// Generic fallback: small register blocks, one thread per team.
template <class ExecutionSpace>
struct TileTraits
{
  static constexpr int query_block = 4;    ///< queries per register block (MR)
  static constexpr int database_block = 8; ///< database rows per register block (NR)
  static constexpr int chunk_bytes = 256 * 1024; ///< packed database chunk one launch sweeps
  static constexpr int max_chunk_rows = 1024;    ///< bounds the team scratch (MR x chunk scores)
  static constexpr int team_size = 1;
  static constexpr int scratch_level = 1; ///< team scratch level for the chunk's scores
  static constexpr int depth_block = 1 << 30; ///< KC: coordinates per pass of the register block
};

#ifdef KOKKOS_ENABLE_OPENMP
#ifndef FASTKNN_OPENMP_KC
#define FASTKNN_OPENMP_KC (1 << 30)
#endif
#ifndef FASTKNN_OPENMP_CHUNK
#define FASTKNN_OPENMP_CHUNK (384 * 1024)
#endif
/// CPU: 12 x 32 float accumulators fill 24 of the 32 AVX-512 registers; one team per thread; the
/// packed database chunk is sized to stay in a core's L2 while all query blocks sweep it.
template <>
struct TileTraits<Kokkos::OpenMP>
{
  static constexpr int query_block = 12;
  static constexpr int database_block = 32;
  static constexpr int chunk_bytes = FASTKNN_OPENMP_CHUNK;
  static constexpr int max_chunk_rows = 4096;
  static constexpr int team_size = 1;
  static constexpr int scratch_level = 1; // level 0 is capped at 32 KiB on host backends
  static constexpr int depth_block = FASTKNN_OPENMP_KC; // measured: no depth blocking is fastest here
};
#endif

#ifdef KOKKOS_ENABLE_CUDA
/// GPU: a 4 x 4 block per thread keeps registers low enough for full occupancy; a team of
/// threads shares each query block and splits the database chunk.
template <>
struct TileTraits<Kokkos::Cuda>
{
  static constexpr int query_block = 4;
  static constexpr int database_block = 4;
  static constexpr int chunk_bytes = 4 * 1024 * 1024;
  static constexpr int max_chunk_rows = 2048; // 4 x 2048 floats of scores fit shared memory
  static constexpr int team_size = 128;
  static constexpr int scratch_level = 0; // shared memory
  static constexpr int depth_block = 1 << 30;
};
#endif

} // namespace fastknn::backends
