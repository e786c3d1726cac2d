#pragma once
/// \file fastknn/detail/heap.hpp
/// Bounded max-heap of (value, index) pairs usable inside kernels. The order is lexicographic, so
/// among equal values the larger index sits nearer the top and is evicted first: selection keeps
/// the smaller index, which makes results independent of thread count and backend.

#include <Kokkos_Core.hpp>

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

/// Rearranges the first `count` (value, index) pairs (all distinct) so that the m smallest
/// occupy [0, m) with the m-th smallest at m-1 (quickselect; no allocation, no recursion).
template <class T>
KOKKOS_INLINE_FUNCTION void select_smallest(T *val, index_type *idx, int count, int m)
{
  auto swap = [&](int a, int b) {
    T const tv = val[a];
    val[a] = val[b];
    val[b] = tv;
    index_type const ti = idx[a];
    idx[a] = idx[b];
    idx[b] = ti;
  };
  auto less = [&](int a, int b) { return pair_less(val[a], idx[a], val[b], idx[b]); };
  int lo = 0, hi = count - 1;
  int const target = m - 1;
  while (hi > lo)
  {
    int const mid = lo + (hi - lo) / 2;
    if (less(mid, lo))
      swap(mid, lo);
    if (less(hi, lo))
      swap(hi, lo);
    if (less(hi, mid))
      swap(hi, mid);
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
        swap(i, j);
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

} // namespace fastknn::detail
