#pragma once
/// \file fastknn/backends/tile_traits.hpp
/// Per-execution-space tuning constants of the tiled search. The algorithm (core/) is written
/// once; only these numbers differ per backend.

#include <Kokkos_Core.hpp>

#include "isa.hpp"

#include <cstddef>
#include <cstdint>

namespace fastknn::backends
{

/// Hints that `bytes` starting at `p` will be read soon (host builds with GCC/Clang; a no-op
/// elsewhere and on devices, where the hardware hides latency with many threads instead).
KOKKOS_INLINE_FUNCTION void prefetch_row(void const *p, std::size_t bytes)
{
#if defined(__GNUC__) && !defined(__CUDA_ARCH__) && !defined(__HIP_DEVICE_COMPILE__) &&            \
    !defined(__SYCL_DEVICE_ONLY__)
  char const *c = static_cast<char const *>(p);
  for (std::size_t off = 0; off < bytes; off += 64)
    __builtin_prefetch(c + off, 0, 1);
#else
  (void)p;
  (void)bytes;
#endif
}

/// Index of the lowest set bit of a non-zero mask.
KOKKOS_INLINE_FUNCTION int lowest_set_bit(std::uint64_t mask)
{
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return __ffsll(static_cast<unsigned long long>(mask)) - 1;
#elif defined(__GNUC__)
  return __builtin_ctzll(mask);
#else
  int j = 0;
  while (!(mask & 1))
  {
    mask >>= 1;
    ++j;
  }
  return j;
#endif
}

/// Generic fallback: small register blocks, one thread per team.
template <class ExecutionSpace>
struct TileTraits
{
  static constexpr int query_block = 4;          ///< queries per register block (MR)
  static constexpr int database_block = 8;       ///< database rows per register block (NR)
  static constexpr int chunk_bytes = 256 * 1024; ///< packed database chunk one launch sweeps
  static constexpr int max_chunk_rows = 1024;    ///< bounds the team scratch (MR x chunk scores)
  static constexpr int team_size = 1;
  /// Query blocks a team scores together: 1 (the pipeline asserts it; a GPU team takes more
  /// queries through a larger query_block and the block tile).
  static constexpr int team_query_blocks = 1;
  static constexpr int scratch_level = 1; ///< team scratch level for the chunk's scores
  /// The most team scratch (at scratch_level) one team may take; the planner sizes chunks to it.
  static constexpr std::size_t team_scratch_bytes = std::size_t(16) << 20;
  static constexpr int depth_block = 1 << 30; ///< KC: coordinates per pass of the register block
  static constexpr bool select_in_registers =
      false; ///< compare scores in registers (team_size 1 only)
  /// Queries up to this many bytes (or too few query blocks to fill the space): teams pack their
  /// database chunks into level-1 scratch themselves instead of using a packed copy of the
  /// database (one read of it instead of three). 0: never.
  static constexpr std::size_t stream_query_bytes = 0;
  /// Queries re-scored together by database row: their rows should stay in cache while the
  /// database streams past. 0: the whole query tile.
  static constexpr std::size_t rerank_query_bytes = 0;
  /// Block-tiled pre-selection (backends/block_tile.hpp): bytes per query and per database row
  /// of a depth slice staged in scratch; 0: not tiled (each thread reads its register block's
  /// panels itself). Tiled teams split into team_query_threads x (team_size / it) threads.
  static constexpr std::size_t stage_row_bytes = 0;
  static constexpr int team_query_threads = 1;
  /// The instruction set the kernels are shaped for, for reports.
  static constexpr char const *isa = "generic";
};

/// The CPU register block (MR queries x NR database rows of float accumulators) for each
/// instruction set: AVX-512 12 x 32 (24 of 32 zmm registers), AVX2 6 x 16 (12 of 16 ymm, two
/// for the database panel, one broadcast: the 6 x 16 shape of BLIS's and OpenBLAS's Haswell
/// sgemm kernels), generic 4 x 8 (8 of 16 xmm).
constexpr int cpu_query_block(HostIsa isa)
{
  return isa == HostIsa::avx512 ? 12 : isa == HostIsa::avx2 ? 6 : 4;
}
constexpr int cpu_database_block(HostIsa isa)
{
  return isa == HostIsa::avx512 ? 32 : isa == HostIsa::avx2 ? 16 : 8;
}

/// The GPU's shape, defined on every build so that the host can plan with it (tests prove its
/// scratch fits) and run it (FASTKNN_GPU_SHAPED_HOST below). Block-tiled (block_tile.hpp): a
/// team of 128 threads scores a block of 32 queries against column tiles of 128 database rows,
/// depth slices of both staged in shared memory (64 bytes a row: 16 floats, 8 doubles or 64
/// bytes of the integer path), each thread a 4 x 8 register micro-tile (8 x 16 threads). Each
/// database row comes from global memory once per 32 queries, as whole 8 KiB slices.
struct GpuTileTraits
{
  static constexpr int query_block = 32;
  static constexpr int database_block = 128;
  static constexpr int chunk_bytes = 4 * 1024 * 1024;
  static constexpr int max_chunk_rows = 2048;
  static constexpr int team_size = 128;
  static constexpr int team_query_blocks = 1;
  static constexpr std::size_t stage_row_bytes = 64;
  static constexpr int team_query_threads = 8;
  static constexpr int scratch_level = 0; // shared memory
  /// Kokkos gives a CUDA block sharedMemPerBlock (48 KiB) less ~8 KiB it reserves for team
  /// reductions; 32 KiB leaves that and is also the host backends' level-0 limit, so the same
  /// plans run on the CPU (the GPU-shaped tests). A tile takes ~23 KiB: 20 KiB of staging
  /// (reused for a slab's scores: 32 x 128 floats or 32 x 64 doubles) and the selection's.
  static constexpr std::size_t team_scratch_bytes = 32 * 1024;
  static constexpr int depth_block = 1 << 30;
  static constexpr bool select_in_registers =
      false; // threads split the chunk; scores meet in scratch
  static constexpr std::size_t stream_query_bytes = 0; // 4 MiB chunks per team: packed copy
  static constexpr std::size_t rerank_query_bytes = 0; // whole tile (L2 holds tens of MiB)
  static constexpr char const *isa = "cuda";
};

#if defined(KOKKOS_ENABLE_OPENMP) && defined(FASTKNN_GENERIC_TRAITS_HOST)
// Test builds only (the library's test-only variant "generic-traits", CTest
// fastknn_tests_generic_traits): OpenMP takes the generic traits above, what a backend without
// its own (Serial, Threads, HIP, SYCL) takes: 4 x 8 blocks, teams of one, no stream, selection
// from scratch. (FASTKNN_GPU_SHAPED_HOST is defined with it only to keep that module out of
// the explicit instantiations, as the gpu-shaped one.)
#elif defined(KOKKOS_ENABLE_OPENMP) && defined(FASTKNN_GPU_SHAPED_HOST)
/// Test builds only (tests/CMakeLists.txt, fastknn_tests_gpu_shaped): OpenMP runs the GPU's
/// traits with teams of FASTKNN_GPU_SHAPED_HOST threads, so the team-parallel path the GPU
/// takes (scores in level-0 scratch, cooperative selection, team exact scan) is checked on a
/// CPU, with the generic kernels (that target is compiled for plain x86-64).
template <>
struct TileTraits<Kokkos::OpenMP> : GpuTileTraits
{
  static constexpr int team_size = FASTKNN_GPU_SHAPED_HOST;
  // The tile's 32 x 128 split over the team: 2 x 2 threads of 16 x 64 for teams of 4, 2 x 4 of
  // 16 x 32 for 8.
  static constexpr int team_query_threads = FASTKNN_GPU_SHAPED_HOST >= 2 ? 2 : 1;
  static constexpr char const *isa = "gpu-shaped";
};
#elif defined(KOKKOS_ENABLE_OPENMP)
#ifndef FASTKNN_OPENMP_MR
#define FASTKNN_OPENMP_MR cpu_query_block(host_isa)
#endif
#ifndef FASTKNN_OPENMP_NR
#define FASTKNN_OPENMP_NR cpu_database_block(host_isa)
#endif
#ifndef FASTKNN_OPENMP_KC
#define FASTKNN_OPENMP_KC (1 << 30)
#endif
#ifndef FASTKNN_OPENMP_RERANK_BYTES
#define FASTKNN_OPENMP_RERANK_BYTES (2048 * 1024)
#endif
#ifndef FASTKNN_OPENMP_CHUNK
#define FASTKNN_OPENMP_CHUNK (384 * 1024)
#endif
/// CPU: the register block of the host instruction set; one team per thread; the packed database
/// chunk is sized to stay in a core's L2 while all query blocks sweep it.
template <>
struct TileTraits<Kokkos::OpenMP>
{
  static constexpr int query_block = FASTKNN_OPENMP_MR;
  static constexpr int database_block = FASTKNN_OPENMP_NR;
  static constexpr int chunk_bytes = FASTKNN_OPENMP_CHUNK;
  static constexpr int max_chunk_rows = 4096;
  static constexpr int team_size = 1;
  static constexpr int team_query_blocks = 1;
  static constexpr int scratch_level = 1; // level 0 is capped at 32 KiB on host backends
  static constexpr std::size_t team_scratch_bytes = std::size_t(16) << 20;
  static constexpr int depth_block =
      FASTKNN_OPENMP_KC; // measured: no depth blocking is fastest here
  static constexpr bool select_in_registers = true;
  // a chunk per thread fits its L2; measured: 10^3 Fashion-MNIST queries (3 MiB) gain 15-20 %
  static constexpr std::size_t stream_query_bytes = std::size_t(4) << 20;
  // twice a core's L2 (1 MiB here; the rest waits in L3): fewer passes over the database rows.
  // Measured (float path, Fashion-MNIST k = 1024, interleaved): 975-1027 ms of re-scoring
  // against 1048-1328 ms with 768 KiB.
  static constexpr std::size_t rerank_query_bytes = FASTKNN_OPENMP_RERANK_BYTES;
  static constexpr std::size_t stage_row_bytes = 0; // register blocks read the packed panels
  static constexpr int team_query_threads = 1;
#ifdef FASTKNN_ISA_NAME // the compiled library's module names its variant (avx512 vs avx512vnni)
  static constexpr char const *isa = FASTKNN_ISA_NAME;
#else
  static constexpr char const *isa = isa_name(host_isa);
#endif
};
#endif

#ifdef KOKKOS_ENABLE_CUDA
template <>
struct TileTraits<Kokkos::Cuda> : GpuTileTraits
{
};
#endif

} // namespace fastknn::backends
