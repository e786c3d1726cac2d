#pragma once
/// \file fastknn/backends/float_dot.hpp
/// The register block of the float pre-selection: acc[i][j] += the dot product (or, for L1,
/// the sum of |differences|) over coordinates [k0, k1) of query block row i and database
/// panel row j. Packed layouts: a[p * MR + i], b[p * NR + j].
///
/// The generic version is a plain loop the compiler vectorises (GCC 12 turns it into the
/// intended zmm code for AVX-512's 12 x 32 block). For AVX2's 6 x 16 block GCC 12 chose xmm
/// shuffles and spills instead (measured on a Zen 3 class machine: 4 GFLOP/s, a tenth of the
/// old 12 x 32 block there), so AVX2 has its own kernel written with intrinsics: the panel's
/// NR values in NR / 8 ymm registers, one broadcast per query, one FMA per pair. Blocks with
/// more accumulators than registers (double: 6 x 16 is 24 ymm) run in query sub-blocks of at
/// most 12 accumulators. Any order of the additions is covered by the error bound.

#include <Kokkos_Core.hpp>

#include "isa.hpp"

#include <cstddef>
#include <type_traits>

#if defined(FASTKNN_HOST_PASS) && defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define FASTKNN_HAVE_AVX2_FLOAT 1
#include <immintrin.h>
#endif

namespace fastknn::backends
{

/// Generic fallback: plain loops over the register block.
template <class ExecutionSpace>
struct FloatDot
{
  template <bool Dot, int MR, int NR, class T>
  KOKKOS_FORCEINLINE_FUNCTION static void accumulate(T const *a, T const *b, std::size_t k0,
                                                     std::size_t k1, T (&acc)[MR][NR])
  {
    for (std::size_t p = k0; p < k1; ++p)
    {
      T const *ap = a + p * MR;
      T const *bp = b + p * NR;
      for (int i = 0; i < MR; ++i)
      {
        T const ai = ap[i];
        for (int j = 0; j < NR; ++j)
        {
          if constexpr (Dot)
            acc[i][j] += ai * bp[j];
          else
            acc[i][j] += Kokkos::fabs(ai - bp[j]);
        }
      }
    }
  }
};

#ifdef FASTKNN_HAVE_AVX2_FLOAT
namespace avx2
{
/// The ymm operations the kernel needs, for float and double.
template <class T>
struct Vec;
template <>
struct Vec<float>
{
  using type = __m256;
  static constexpr int lanes = 8;
  static type zero() { return _mm256_setzero_ps(); }
  static type load(float const *p) { return _mm256_loadu_ps(p); }
  static type broadcast(float const *p) { return _mm256_broadcast_ss(p); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
  static type add_abs_diff(type a, type b, type c)
  {
    return _mm256_add_ps(c, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(a, b)));
  }
  static void add_to(float *p, type v)
  {
    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), v));
  }
};
template <>
struct Vec<double>
{
  using type = __m256d;
  static constexpr int lanes = 4;
  static type zero() { return _mm256_setzero_pd(); }
  static type load(double const *p) { return _mm256_loadu_pd(p); }
  static type broadcast(double const *p) { return _mm256_broadcast_sd(p); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_pd(a, b, c); }
  static type add_abs_diff(type a, type b, type c)
  {
    return _mm256_add_pd(c, _mm256_andnot_pd(_mm256_set1_pd(-0.0), _mm256_sub_pd(a, b)));
  }
  static void add_to(double *p, type v)
  {
    _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), v));
  }
};

/// Rows [I0, I0 + MB) of the block: MB x NR / lanes accumulators in registers.
template <bool Dot, int MR, int NR, int I0, int MB, class T>
inline void sub_block(T const *a, T const *b, std::size_t k0, std::size_t k1, T (&acc)[MR][NR])
{
  using V = Vec<T>;
  constexpr int NV = NR / V::lanes;
  typename V::type c[MB][NV];
  for (int i = 0; i < MB; ++i)
    for (int v = 0; v < NV; ++v)
      c[i][v] = V::zero();
  for (std::size_t p = k0; p < k1; ++p)
  {
    T const *ap = a + p * MR + I0;
    T const *bp = b + p * NR;
    typename V::type bv[NV];
    for (int v = 0; v < NV; ++v)
      bv[v] = V::load(bp + v * V::lanes);
    for (int i = 0; i < MB; ++i)
    {
      typename V::type const av = V::broadcast(ap + i);
      for (int v = 0; v < NV; ++v)
      {
        if constexpr (Dot)
          c[i][v] = V::fma(av, bv[v], c[i][v]);
        else
          c[i][v] = V::add_abs_diff(av, bv[v], c[i][v]);
      }
    }
  }
  for (int i = 0; i < MB; ++i)
    for (int v = 0; v < NV; ++v)
      V::add_to(&acc[I0 + i][v * V::lanes], c[i][v]);
}
} // namespace avx2

/// CPU with AVX2 + FMA: the intrinsics kernel, in query sub-blocks of at most 12 accumulators.
template <host_execution_space ExecSpace>
struct FloatDot<ExecSpace>
{
  template <bool Dot, int MR, int NR, class T>
  static inline void accumulate(T const *a, T const *b, std::size_t k0, std::size_t k1,
                                T (&acc)[MR][NR])
  {
    if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, double>)
      FloatDot<void>::accumulate<Dot, MR, NR>(a, b, k0, k1, acc);
    else if constexpr (NR % avx2::Vec<T>::lanes != 0)
      FloatDot<void>::accumulate<Dot, MR, NR>(a, b, k0, k1, acc);
    else
    {
      constexpr int NV = NR / avx2::Vec<T>::lanes;
      constexpr int MB = 12 / NV > 0 ? (12 / NV < MR ? 12 / NV : MR) : 1;
      run<Dot, MR, NR, 0, MB>(a, b, k0, k1, acc);
    }
  }

private:
  template <bool Dot, int MR, int NR, int I0, int MB, class T>
  static inline void run(T const *a, T const *b, std::size_t k0, std::size_t k1, T (&acc)[MR][NR])
  {
    if constexpr (I0 < MR)
    {
      constexpr int rows = MR - I0 < MB ? MR - I0 : MB;
      avx2::sub_block<Dot, MR, NR, I0, rows>(a, b, k0, k1, acc);
      run<Dot, MR, NR, I0 + MB, MB>(a, b, k0, k1, acc);
    }
  }
};
#endif

} // namespace fastknn::backends
