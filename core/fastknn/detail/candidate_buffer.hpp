#pragma once
/// \file fastknn/detail/candidate_buffer.hpp
/// Per-query candidate lists of the pre-selection (the reservoir each query fills).

#include <Kokkos_Core.hpp>

#include <cstdint>

#include <fastknn/backends/compress.hpp>
#include <fastknn/detail/heap.hpp>
#include <fastknn/detail/plan.hpp>

namespace fastknn::detail
{

/// The candidate lists of a query tile in the space's memory: one buffer per (query, segment),
/// row ql * segments + segment, of candidate_buffer_width(kept) pairs; its count and threshold.
template <class T, class MS>
struct CandidateLists
{
  Kokkos::View<T **, Kokkos::LayoutRight, MS> cand_val;
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> cand_idx;
  Kokkos::View<int *, MS> cand_count;
  Kokkos::View<T *, MS> cand_threshold;
};

/// One query's candidate buffer during the pre-selection (a FAISS-style reservoir): scores
/// below the threshold are appended; a full buffer (factor x kept) is cut back to the kept
/// smallest, whose largest becomes the new threshold. Appends are cheap and branch-predictable,
/// unlike heap insertions, which matters for large k. Rows are offered in increasing index order
/// and the test is strict, so ties keep the smaller index.
template <class T>
struct CandidateBuffer
{
  T *val;
  index_type *idx;
  int count;
  T threshold;
  int kept;

  KOKKOS_INLINE_FUNCTION void offer(T score, index_type index)
  {
    val[count] = score;
    idx[count] = index;
    ++count;
    cut_if_full();
  }

  /// Appends the scores s[j] (rows row0 + j) that `mask` selects, all at once: the buffer may
  /// pass its capacity by up to NR - 1 pairs before the cut (its spare slots hold them).
  template <class ExecSpace, int NR>
  KOKKOS_INLINE_FUNCTION void offer_masked(std::uint64_t mask, T const (&s)[NR], index_type row0)
  {
    count += backends::MaskedAppend<ExecSpace>::template append<NR>(mask, s, row0, val + count,
                                                                    idx + count);
    cut_if_full();
  }

  KOKKOS_INLINE_FUNCTION void cut_if_full()
  {
    if (count >= candidate_capacity(kept))
    {
      keep_smallest(val, idx, count, kept);
      count = kept;
      threshold = val[kept - 1];
    }
  }
};

} // namespace fastknn::detail
