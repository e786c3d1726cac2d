#pragma once
/// \file fastknn/detail/heap.hpp
/// Bounded max-heap of (value, index) pairs usable inside kernels. The order is lexicographic, so
/// among equal values the larger index sits nearer the top and is evicted first: selection keeps
/// the smaller index, which makes results independent of thread count and backend.

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <type_traits>

#include <fastknn/backends/compress.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

template <class T>
KOKKOS_INLINE_FUNCTION bool pair_less(T a, index_type ia, T b, index_type ib)
{
  return a < b || (a == b && ia < ib);
}

/// Restores the heap property below pos for a heap of size m.
template <class T>
KOKKOS_INLINE_FUNCTION void heap_sift_down(T *val, index_type *idx, int pos, int m)
{
  T const v = val[pos];
  index_type const i = idx[pos];
  while (true)
  {
    int c = 2 * pos + 1;
    if (c >= m)
      break;
    if (c + 1 < m && pair_less(val[c], idx[c], val[c + 1], idx[c + 1]))
      ++c;
    if (!pair_less(v, i, val[c], idx[c]))
      break;
    val[pos] = val[c];
    idx[pos] = idx[c];
    pos = c;
  }
  val[pos] = v;
  idx[pos] = i;
}

/// Replaces the top (the worst kept pair) by (v, i) and restores the heap.
template <class T>
KOKKOS_INLINE_FUNCTION void heap_replace_top(T *val, index_type *idx, int m, T v, index_type i)
{
  val[0] = v;
  idx[0] = i;
  heap_sift_down(val, idx, 0, m);
}

template <class T>
KOKKOS_INLINE_FUNCTION void heap_make(T *val, index_type *idx, int m)
{
  for (int pos = m / 2 - 1; pos >= 0; --pos)
    heap_sift_down(val, idx, pos, m);
}

/// Sorts a valid max-heap in place into ascending (value, index) order.
template <class T>
KOKKOS_INLINE_FUNCTION void heap_sort(T *val, index_type *idx, int m)
{
  for (int end = m - 1; end > 0; --end)
  {
    T const tv = val[0];
    index_type const ti = idx[0];
    val[0] = val[end];
    idx[0] = idx[end];
    val[end] = tv;
    idx[end] = ti;
    heap_sift_down(val, idx, 0, end);
  }
}

} // namespace fastknn::detail

namespace fastknn::detail
{

/// Whether a (value, index) pair of T fits one 64-bit integer key that orders like pair_less:
/// then selection and sorting compare integers and can avoid data-dependent branches.
template <class T>
inline constexpr bool packs_into_key = std::is_same_v<T, float>;

/// The value part of pair_key: a float's bits made to order like the float.
KOKKOS_INLINE_FUNCTION std::uint32_t monotone_bits(float v)
{
  std::uint32_t b = Kokkos::bit_cast<std::uint32_t>(v + 0.0f);
  return b ^ ((b >> 31) != 0 ? 0xffffffffu : 0x80000000u);
}

/// The key of a (float value, index) pair: value bits made monotone (sign flipped, negatives
/// inverted) above the index made monotone. Adding +0 folds -0 into +0, which pair_less calls
/// equal.
KOKKOS_INLINE_FUNCTION std::uint64_t pair_key(float v, index_type i)
{
  return (std::uint64_t(monotone_bits(v)) << 32) | (std::uint32_t(i) ^ 0x80000000u);
}

template <class T>
KOKKOS_INLINE_FUNCTION void swap_pairs(T *val, index_type *idx, int a, int b)
{
  T const tv = val[a];
  val[a] = val[b];
  val[b] = tv;
  index_type const ti = idx[a];
  idx[a] = idx[b];
  idx[b] = ti;
}

/// Rearranges the first `count` (value, index) pairs (all distinct) so that the m smallest
/// occupy [0, m) with the m-th smallest at m-1 (quickselect; no allocation, no recursion).
/// Float pairs partition without branches on the data (Lomuto, compared as keys) around
/// sampled pivots; the buffer cuts, which may drop the rest, use keep_smallest instead.
template <class T>
KOKKOS_INLINE_FUNCTION void select_smallest(T *val, index_type *idx, int count, int m)
{
  int lo = 0, hi = count - 1;
  int const target = m - 1;
  if constexpr (packs_into_key<T>)
  {
    auto key = [&](int a) { return pair_key(val[a], idx[a]); };
    while (hi > lo)
    {
      int const size = hi - lo + 1;
      if (size >= 128)
      {
        // A pivot from a sorted sample, just past the target on the side of the range's
        // nearer end: the part left holding the target is then at most about half the range,
        // and the next round's target sits next to that part's end, where the same rule leaves
        // only a sliver (~1.5 passes in all instead of ~3.4 for the median of three).
        constexpr int S = 15, margin = 2;
        std::uint64_t ks[S];
        int ps[S];
        for (int j = 0; j < S; ++j)
        {
          int const at = lo + int((long long)(2 * j + 1) * size / (2 * S));
          std::uint64_t const kj = key(at);
          int h = j;
          for (; h > 0 && kj < ks[h - 1]; --h)
          {
            ks[h] = ks[h - 1];
            ps[h] = ps[h - 1];
          }
          ks[h] = kj;
          ps[h] = at;
        }
        // Sample j sits near rank (j + 1) / (S + 1) of the range.
        int const near = int((long long)(target - lo + 1) * (S + 1) / size) - 1;
        bool const low_half = 2 * (target - lo) < size;
        int pick = low_half ? near + 1 + margin : near - margin;
        pick = pick < 0 ? 0 : pick > S - 1 ? S - 1 : pick;
        swap_pairs(val, idx, ps[pick], hi);
      }
      else
      {
        // Median of three as the pivot, moved to hi.
        int const mid = lo + (hi - lo) / 2;
        if (key(mid) < key(lo))
          swap_pairs(val, idx, mid, lo);
        if (key(hi) < key(lo))
          swap_pairs(val, idx, hi, lo);
        if (key(mid) < key(hi))
          swap_pairs(val, idx, mid, hi);
      }
      std::uint64_t const pk = key(hi);
      int store = lo;
      for (int i = lo; i < hi; ++i)
      {
        // Swapping unconditionally keeps [lo, store) < pivot <= [store, i]: no branch.
        bool const below = key(i) < pk;
        swap_pairs(val, idx, i, store);
        store += below ? 1 : 0;
      }
      swap_pairs(val, idx, store, hi);
      if (target == store)
        break;
      if (target < store)
        hi = store - 1;
      else
        lo = store + 1;
    }
  }
  else
  {
    auto less = [&](int a, int b) { return pair_less(val[a], idx[a], val[b], idx[b]); };
    while (hi > lo)
    {
      int const mid = lo + (hi - lo) / 2;
      if (less(mid, lo))
        swap_pairs(val, idx, mid, lo);
      if (less(hi, lo))
        swap_pairs(val, idx, hi, lo);
      if (less(hi, mid))
        swap_pairs(val, idx, hi, mid);
      T const pv = val[mid];
      index_type const pi = idx[mid];
      int i = lo, j = hi;
      while (i <= j)
      {
        while (pair_less(val[i], idx[i], pv, pi))
          ++i;
        while (pair_less(pv, pi, val[j], idx[j]))
          --j;
        if (i <= j)
        {
          swap_pairs(val, idx, i, j);
          ++i;
          --j;
        }
      }
      if (target <= j)
        hi = j;
      else if (target >= i)
        lo = i;
      else
        break;
    }
  }
}

/// The smallest and largest monotone_bits of count float values.
KOKKOS_INLINE_FUNCTION void monotone_range(float const *val, int count, std::uint32_t &lo,
                                           std::uint32_t &hi)
{
  lo = ~0u;
  hi = 0;
  for (int j = 0; j < count; ++j)
  {
    std::uint32_t const u = monotone_bits(val[j]);
    lo = u < lo ? u : lo;
    hi = u > hi ? u : hi;
  }
}

/// Like select_smallest, but what is left in [m, count) is unspecified (the buffer cuts discard
/// it). Float pairs: a histogram of the value bits over their spread locates the bucket holding
/// the m-th value; one compacting pass (backends::split_by_bucket: 16 pairs at a time where the
/// CPU can compress vectors) keeps the buckets below it and sets that bucket's pairs aside,
/// which a small select then finishes. Every pass is read-only or writes behind its reads,
/// unlike a partition's swaps, whose store-to-load chains bound the quickselect.
template <class T>
KOKKOS_INLINE_FUNCTION void keep_smallest(T *val, index_type *idx, int count, int m)
{
  constexpr int buckets = 1024, aside_max = 64;
  if constexpr (packs_into_key<T>)
  {
    if (count >= 256 && m < count)
    {
      std::uint32_t lo, hi;
      monotone_range(val, count, lo, hi);
      int shift = 0;
      while (((hi - lo) >> shift) >= std::uint32_t(buckets))
        ++shift;
      int hist[buckets] = {};
      for (int j = 0; j < count; ++j)
        ++hist[(monotone_bits(val[j]) - lo) >> shift];
      int b = 0, below = 0;
      while (below + hist[b] < m)
        below += hist[b++];
      if (hist[b] <= aside_max) // else (many equal values): the general select below
      {
        T aside_val[aside_max];
        index_type aside_idx[aside_max];
        int a = 0;
        backends::split_by_bucket(val, idx, count, lo, shift, std::uint32_t(b), aside_val,
                                  aside_idx, a);
        for (int j = 0; j < a; ++j)
        {
          val[below + j] = aside_val[j];
          idx[below + j] = aside_idx[j];
        }
        select_smallest(val + below, idx + below, a, m - below);
        return;
      }
    }
  }
  select_smallest(val, idx, count, m);
}

/// sort_pairs' radix sort of float values (stable, ties left in input order), over the value
/// bits' offsets from the smallest, one byte per pass: only as many bytes as the spread needs
/// are counted (a byte that all pairs share would cost a serial chain of count updates), and
/// passes over a byte that all pairs share are skipped.
/// The sorted pairs end in `val`/`idx` or in the workspace; `sv`/`si` say which.
KOKKOS_INLINE_FUNCTION void radix_sort_values(float *val, index_type *idx, int m, float *tval,
                                              index_type *tidx, float *&sv, index_type *&si)
{
  constexpr int max_digits = 4, radix = 256;
  std::uint32_t lo, hi;
  monotone_range(val, m, lo, hi);
  int digits = 0;
  while (digits < max_digits && ((hi - lo) >> (8 * digits)) != 0)
    ++digits;
  int count[max_digits][radix] = {};
  for (int j = 0; j < m; ++j)
  {
    std::uint32_t const u = monotone_bits(val[j]) - lo;
    for (int p = 0; p < digits; ++p)
      ++count[p][(u >> (8 * p)) & (radix - 1)];
  }
  std::uint32_t const u0 = monotone_bits(val[0]) - lo;
  float *dv = tval;
  index_type *di = tidx;
  sv = val;
  si = idx;
  for (int p = 0; p < digits; ++p)
  {
    int const shift = 8 * p;
    if (count[p][(u0 >> shift) & (radix - 1)] == m)
      continue; // every value has this byte (e.g. the low bytes of coarse values)
    int offset = 0;
    for (int r = 0; r < radix; ++r)
    {
      int const c = count[p][r];
      count[p][r] = offset;
      offset += c;
    }
    for (int j = 0; j < m; ++j)
    {
      int const o = count[p][((monotone_bits(sv[j]) - lo) >> shift) & (radix - 1)]++;
      dv[o] = sv[j];
      di[o] = si[j];
    }
    float *const tv = sv;
    sv = dv;
    dv = tv;
    index_type *const ti = si;
    si = di;
    di = ti;
  }
}

/// Sorts m (value, index) pairs ascending; `tval`/`tidx` are m pairs of workspace. Float pairs
/// go through radix_sort_values (unless a few) and an insertion pass that orders equal values
/// by index, which moves a pair only within its run of equal values (a few pairs: the insertion
/// pass alone). Others go through a heap sort (no workspace).
template <class T>
KOKKOS_INLINE_FUNCTION void sort_pairs(T *val, index_type *idx, int m, T *tval, index_type *tidx)
{
  if constexpr (packs_into_key<T>)
  {
    constexpr int few = 48; // the radix passes' fixed cost (histograms) would dominate
    if (m > few)
    {
      T *sv;
      index_type *si;
      radix_sort_values(val, idx, m, tval, tidx, sv, si);
      if (sv != val)
        for (int j = 0; j < m; ++j)
        {
          val[j] = sv[j];
          idx[j] = si[j];
        }
    }
    for (int j = 1; j < m; ++j)
    {
      std::uint64_t const kj = pair_key(val[j], idx[j]);
      if (!(kj < pair_key(val[j - 1], idx[j - 1])))
        continue;
      T const v = val[j];
      index_type const i = idx[j];
      int h = j;
      for (; h > 0 && kj < pair_key(val[h - 1], idx[h - 1]); --h)
      {
        val[h] = val[h - 1];
        idx[h] = idx[h - 1];
      }
      val[h] = v;
      idx[h] = i;
    }
  }
  else
  {
    (void)tval;
    (void)tidx;
    heap_make(val, idx, m);
    heap_sort(val, idx, m);
  }
}

} // namespace fastknn::detail
