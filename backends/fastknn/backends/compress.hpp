#pragma once
/// \file fastknn/backends/compress.hpp
/// Moving the pairs a mask selects to the front of a list, in order: the two places where the
/// search does this per candidate. Both keep the pairs' order (increasing index for appends),
/// which the ties-by-index rule relies on.
///
/// - MaskedAppend: the scores of one register-block row that pass a query's threshold go to
///   its candidate buffer (bit j of the mask selects score s[j] of database row row0 + j).
/// - split_by_bucket: keep_smallest's compaction pass (pairs below a bucket of their value bits
///   stay, the bucket's own pairs are set aside).
///
/// The generic versions visit the pairs one by one: with large k most register-block rows hold
/// a few candidates at unpredictable places, so the append loop mispredicts its branches, and
/// the compaction's stores wait on each other's addresses. Where the CPU can compress a vector
/// by a mask (x86 AVX-512 `vcompressps`/`vpcompressd`, in registers: the memory form is
/// microcoded and slow on some cores), 16 pairs move at a time without branches, and a masked
/// store writes exactly the selected ones. Both versions give identical lists;
/// tests/test_selection.cpp checks it.

#include <Kokkos_Core.hpp>

#include "tile_traits.hpp"

#include <cstdint>
#include <type_traits>

#if defined(FASTKNN_HOST_PASS) && defined(__AVX512F__)
#define FASTKNN_HAVE_AVX512_COMPRESS 1
#include <immintrin.h>
#endif

namespace fastknn::backends
{

#ifdef FASTKNN_HAVE_AVX512_COMPRESS
namespace avx512
{
/// Stores the lanes of (v, i) that m selects, in lane order, at val/idx; returns how many.
inline int store_selected(__mmask16 m, __m512 v, __m512i i, float *val, std::int32_t *idx)
{
  int const c = __builtin_popcount(static_cast<unsigned>(m));
  auto const head = static_cast<__mmask16>((1u << c) - 1);
  _mm512_mask_storeu_ps(val, head, _mm512_maskz_compress_ps(m, v));
  _mm512_mask_storeu_epi32(idx, head, _mm512_maskz_compress_epi32(m, i));
  return c;
}
} // namespace avx512
#endif

/// Generic fallback: one append per set bit.
template <class ExecutionSpace>
struct MaskedAppend
{
  /// Appends the selected pairs at val/idx; returns how many.
  template <int NR, class T, class I>
  KOKKOS_FORCEINLINE_FUNCTION static int append(std::uint64_t mask, T const (&s)[NR], I row0,
                                                T *val, I *idx)
  {
    int c = 0;
    while (mask != 0)
    {
      int const j = lowest_set_bit(mask);
      mask &= mask - 1;
      val[c] = s[j];
      idx[c] = row0 + I(j);
      ++c;
    }
    return c;
  }
};

#ifdef FASTKNN_HAVE_AVX512_COMPRESS
/// CPU with AVX-512: float scores and 32-bit indices, 16 lanes per step.
template <host_execution_space ExecSpace>
struct MaskedAppend<ExecSpace>
{
  template <int NR, class T, class I>
  static inline int append(std::uint64_t mask, T const (&s)[NR], I row0, T *val, I *idx)
  {
    if constexpr (std::is_same_v<T, float> && std::is_same_v<I, std::int32_t> && NR % 16 == 0)
    {
      __m512i const lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
      int c = 0;
      // No test for an empty step: with large k that branch would mispredict as often.
      for (int v = 0; v < NR / 16; ++v)
        c += avx512::store_selected(
            static_cast<__mmask16>(mask >> (16 * v)), _mm512_loadu_ps(s + 16 * v),
            _mm512_add_epi32(_mm512_set1_epi32(row0 + 16 * v), lane), val + c, idx + c);
      return c;
    }
    else
      return MaskedAppend<void>::append<NR>(mask, s, row0, val, idx);
  }
};
#endif

/// The compaction pass of keep_smallest over float pairs: with bucket(v) = (u(v) - lo) >> shift,
/// u the float's bits made to order like the float (detail::monotone_bits), the pairs of
/// buckets below `cut` move to the front (in order) and those of bucket `cut` are appended to
/// the aside arrays (the caller makes room for all of them). Returns the pairs kept in front.
/// In place: every write lands at or before the pairs being read.
KOKKOS_INLINE_FUNCTION int split_by_bucket(float *val, std::int32_t *idx, int count,
                                           std::uint32_t lo, int shift, std::uint32_t cut,
                                           float *aside_val, std::int32_t *aside_idx, int &aside)
{
  int w = 0, a = 0, j = 0;
#ifdef FASTKNN_HAVE_AVX512_COMPRESS
  __m512i const vlo = _mm512_set1_epi32(static_cast<int>(lo));
  __m512i const vcut = _mm512_set1_epi32(static_cast<int>(cut));
  __m512i const vshift = _mm512_set1_epi32(shift);
  __m512i const sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  // The zero-masked shifts (all lanes kept) are the plain ones; GCC 12's unmasked forms warn
  // about their undefined pass-through operand.
  __mmask16 const all = 0xffff;
  for (; j < count; j += 16)
  {
    int const left = count - j;
    auto const valid = static_cast<__mmask16>(left >= 16 ? 0xffffu : (1u << left) - 1);
    __m512 const v = _mm512_maskz_loadu_ps(valid, val + j);
    __m512i const i = _mm512_maskz_loadu_epi32(valid, idx + j);
    // monotone_bits: +0 folds -0 into +0; negatives flip every bit, the rest only the sign.
    __m512i const b = _mm512_castps_si512(_mm512_add_ps(v, _mm512_setzero_ps()));
    __m512i const u =
        _mm512_xor_si512(b, _mm512_or_si512(_mm512_maskz_srai_epi32(all, b, 31), sign));
    __m512i const bucket = _mm512_maskz_srlv_epi32(all, _mm512_sub_epi32(u, vlo), vshift);
    __mmask16 const below = _mm512_mask_cmplt_epu32_mask(valid, bucket, vcut);
    __mmask16 const at = _mm512_mask_cmpeq_epu32_mask(valid, bucket, vcut);
    w += avx512::store_selected(below, v, i, val + w, idx + w);
    a += avx512::store_selected(at, v, i, aside_val + a, aside_idx + a);
  }
#else
  for (; j < count; ++j)
  {
    float const v = val[j];
    std::int32_t const i = idx[j];
    std::uint32_t const b = Kokkos::bit_cast<std::uint32_t>(v + 0.0f);
    std::uint32_t const u = b ^ ((b >> 31) != 0 ? 0xffffffffu : 0x80000000u);
    std::uint32_t const bj = (u - lo) >> shift;
    val[w] = v; // w <= j: writes stay behind the reads
    idx[w] = i;
    w += bj < cut ? 1 : 0; // a flag, not a branch: half the pairs stay, so a branch would
                           // miss half the time
    if (bj == cut)
    {
      aside_val[a] = v;
      aside_idx[a] = i;
      ++a;
    }
  }
#endif
  aside = a;
  return w;
}

} // namespace fastknn::backends
