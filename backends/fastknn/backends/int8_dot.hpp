#pragma once
/// \file fastknn/backends/int8_dot.hpp
/// The register block of the exact 8-bit integer pre-selection: acc[i][j] += the dot product,
/// over the coordinates of groups [g0, g1), of query block row i (values q - lo in [0, 255])
/// and database panel row j (values x - lo - 128 in [-128, 127]). Packed layouts, G values a
/// group: a[(g * MR + i) * G + t], b[(g * NR + j) * G + t].
///
/// Each backend says how it stores those values (`q_type`, `x_type`) and how many make a
/// group (`group`). The generic version is plain integer code for every backend, on bytes in
/// groups of four. Where a CPU has an instruction for it, a specialisation uses it:
/// - AVX512-VNNI: `vpdpbusd` on bytes in groups of four (64 multiply-adds per instruction
///   against 16 for a float FMA);
/// - AVX2: `vpmaddwd` on 16-bit values in pairs (16 multiply-adds and a 32-bit add per pair of
///   instructions, twice a float FMA's 8; unlike `vpmaddubsw` on bytes, whose 16-bit sums
///   saturate at 255 x 128 x 2, it cannot overflow).
/// All give identical (exact) sums, which tests/test_integer.cpp checks.

#include <Kokkos_Core.hpp>

#include "isa.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(FASTKNN_HOST_PASS)
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define FASTKNN_HAVE_VNNI 1
#include <immintrin.h>
#elif defined(__AVX2__) && !defined(__AVX512F__)
// (AVX-512 without VNNI keeps the float path: its 12 x 32 block would need 48 ymm accumulators.)
#define FASTKNN_HAVE_AVX2_MADD 1
#include <immintrin.h>
#endif
#endif

namespace fastknn::backends
{

/// Exact int32 sums of products of G-value groups, for any value types (the generic kernel).
template <int MR, int NR, int G, class A, class B>
KOKKOS_FORCEINLINE_FUNCTION void integer_dot(A const *a, B const *b, std::size_t g0, std::size_t g1,
                                             std::int32_t (&acc)[MR][NR])
{
  for (std::size_t g = g0; g < g1; ++g)
  {
    A const *ag = a + g * MR * G;
    B const *bg = b + g * NR * G;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
      {
        std::int32_t s = 0;
        for (int t = 0; t < G; ++t)
          s += std::int32_t(ag[i * G + t]) * std::int32_t(bg[j * G + t]);
        acc[i][j] += s;
      }
  }
}

/// Generic fallback: bytes in groups of four, plain integer code.
template <class ExecutionSpace>
struct Int8Dot
{
  using q_type = std::uint8_t;
  using x_type = std::int8_t;
  static constexpr int group = 4;
  /// True where this backend has a dedicated instruction (the search prefers the integer path
  /// only there; the generic code is correct everywhere but not faster than float).
  static constexpr bool accelerated = false;

  template <int MR, int NR>
  KOKKOS_FORCEINLINE_FUNCTION static void accumulate(q_type const *a, x_type const *b,
                                                     std::size_t g0, std::size_t g1,
                                                     std::int32_t (&acc)[MR][NR])
  {
    integer_dot<MR, NR, group>(a, b, g0, g1, acc);
  }
};

#ifdef FASTKNN_HAVE_VNNI
/// CPU with AVX512-VNNI: NR / 16 vectors of 16 database rows; each query's 4 bytes are
/// broadcast and `vpdpbusd` adds the 4-term products into 32-bit lanes.
template <host_execution_space ExecSpace>
struct Int8Dot<ExecSpace>
{
  using q_type = std::uint8_t;
  using x_type = std::int8_t;
  static constexpr int group = 4;
  static constexpr bool accelerated = true;

  template <int MR, int NR>
  static inline void accumulate(std::uint8_t const *a, std::int8_t const *b, std::size_t g0,
                                std::size_t g1, std::int32_t (&acc)[MR][NR])
  {
    if constexpr (NR % 16 != 0)
      integer_dot<MR, NR, group>(a, b, g0, g1, acc);
    else
    {
      constexpr int NV = NR / 16;
      __m512i c[MR][NV];
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v)
          c[i][v] = _mm512_setzero_si512();
      for (std::size_t g = g0; g < g1; ++g)
      {
        std::uint8_t const *ag = a + g * MR * 4;
        std::int8_t const *bg = b + g * NR * 4;
        __m512i bv[NV];
        for (int v = 0; v < NV; ++v)
          bv[v] = _mm512_loadu_si512(bg + v * 64);
        for (int i = 0; i < MR; ++i)
        {
          std::int32_t word;
          std::memcpy(&word, ag + i * 4, 4);
          __m512i const av = _mm512_set1_epi32(word);
          for (int v = 0; v < NV; ++v)
            c[i][v] = _mm512_dpbusd_epi32(c[i][v], av, bv[v]);
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v)
        {
          __m512i const old = _mm512_loadu_si512(&acc[i][v * 16]);
          _mm512_storeu_si512(&acc[i][v * 16], _mm512_add_epi32(old, c[i][v]));
        }
    }
  }
};
#endif

#ifdef FASTKNN_HAVE_AVX2_MADD
/// CPU with AVX2: 16-bit values in pairs; NR / 8 vectors of 8 database rows (two values each);
/// each query's pair is broadcast and `vpmaddwd` gives the rows' two-term sums in 32-bit lanes.
/// The block is the float kernel's 6 x 16 (12 of the 16 ymm registers accumulate).
template <host_execution_space ExecSpace>
struct Int8Dot<ExecSpace>
{
  using q_type = std::int16_t;
  using x_type = std::int16_t;
  static constexpr int group = 2;
  static constexpr bool accelerated = true;

  template <int MR, int NR>
  static inline void accumulate(q_type const *a, x_type const *b, std::size_t g0, std::size_t g1,
                                std::int32_t (&acc)[MR][NR])
  {
    if constexpr (NR % 8 != 0)
      integer_dot<MR, NR, group>(a, b, g0, g1, acc);
    else
    {
      constexpr int NV = NR / 8;
      __m256i c[MR][NV];
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v)
          c[i][v] = _mm256_setzero_si256();
      for (std::size_t g = g0; g < g1; ++g)
      {
        q_type const *ag = a + g * MR * 2;
        x_type const *bg = b + g * NR * 2;
        __m256i bv[NV];
        for (int v = 0; v < NV; ++v)
          bv[v] = _mm256_loadu_si256(reinterpret_cast<__m256i const *>(bg + v * 16));
        for (int i = 0; i < MR; ++i)
        {
          std::int32_t pair;
          std::memcpy(&pair, ag + i * 2, 4);
          __m256i const av = _mm256_set1_epi32(pair);
          for (int v = 0; v < NV; ++v)
            c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(av, bv[v]));
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < NV; ++v)
        {
          auto *out = reinterpret_cast<__m256i *>(&acc[i][v * 8]);
          _mm256_storeu_si256(out, _mm256_add_epi32(_mm256_loadu_si256(out), c[i][v]));
        }
    }
  }
};
#endif

} // namespace fastknn::backends
