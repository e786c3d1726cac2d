#pragma once
/// \file fastknn/detail/team_select.hpp
/// Candidate selection by a whole team, the GPU's shape of the pre-selection and of the exact
/// scan: every thread of the team filters, appends and cuts, none waits on a loop over the rows.
/// - append: the team compares a run of scores with the threshold and appends the passing rows
///   to the query's buffer in row order (one scan gives each its slot);
/// - cut: a full buffer keeps its m smallest (value, buffer order) by a radix select on the
///   values' monotone bits (a 256-bin histogram in team scratch per byte, counted by all
///   threads with atomics), then a stable compaction in steps of one value per thread.
/// The result is the same as CandidateBuffer's (a value that ties the threshold stays out; the
/// kept equal values are the first ones offered, so the smaller rows), whatever the team size.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fastknn/detail/heap.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// Unsigned integer with T's bits, ordered like T (see monotone_bits).
template <class T>
using monotone_type = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

/// T's bits made to order like T; +0 and -0 get the same key.
template <class T>
KOKKOS_INLINE_FUNCTION monotone_type<T> monotone_key(T v)
{
  if constexpr (sizeof(T) == 4)
    return monotone_bits(v);
  else
  {
    std::uint64_t const b = Kokkos::bit_cast<std::uint64_t>(v + T(0));
    return b ^ ((b >> 63) != 0 ? ~std::uint64_t(0) : std::uint64_t(1) << 63);
  }
}

/// The value whose monotone_key is `key`.
template <class T>
KOKKOS_INLINE_FUNCTION T from_monotone_key(monotone_type<T> key)
{
  using U = monotone_type<T>;
  constexpr U top = U(1) << (8 * sizeof(U) - 1);
  return Kokkos::bit_cast<T>(U((key & top) != 0 ? key ^ top : ~key));
}

/// The team scratch the selection uses: a histogram and a staging row of one (value, index)
/// pair per thread. Sizes for plans in team_select_scratch_bytes (plan.hpp).
template <class T>
struct TeamSelectScratch
{
  static constexpr int bins = 256;
  int *hist;
  T *stage_val;
  index_type *stage_idx;

  template <class Member>
  KOKKOS_INLINE_FUNCTION static TeamSelectScratch take(Member const &team, int level)
  {
    auto &s = team.team_scratch(level);
    TeamSelectScratch out;
    out.hist = static_cast<int *>(s.get_shmem(bins * sizeof(int)));
    out.stage_val = static_cast<T *>(s.get_shmem(std::size_t(team.team_size()) * sizeof(T)));
    out.stage_idx =
        static_cast<index_type *>(s.get_shmem(std::size_t(team.team_size()) * sizeof(index_type)));
    return out;
  }
};

/// The m-th smallest of `count` values (1 <= m <= count) as a monotone key, and how many of the
/// values equal to it are among the m smallest.
template <class T>
struct TeamPivot
{
  monotone_type<T> key;
  int want;
};

/// Radix select of the m-th smallest value by the whole team (every thread gets the answer);
/// the histogram stays in use until the team's next barrier.
template <class T, class Member>
KOKKOS_INLINE_FUNCTION TeamPivot<T>
team_find_pivot(Member const &team, TeamSelectScratch<T> const &s, T const *val, int count, int m)
{
  using U = monotone_type<T>;
  constexpr int bits = 8 * int(sizeof(U));
  // Radix select from the top byte: `prefix` holds the decided bytes of the m-th key, `want`
  // its rank among the keys that share them.
  U prefix = 0;
  int want = m;
  for (int shift = bits - 8; shift >= 0; shift -= 8)
  {
    U const decided = shift + 8 >= bits ? U(0) : ~U(0) << (shift + 8);
    team.team_barrier(); // everyone has read the previous histogram
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, s.bins), [&](int b) { s.hist[b] = 0; });
    team.team_barrier();
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, count),
                         [&](int j)
                         {
                           U const key = monotone_key(val[j]);
                           if ((key & decided) == prefix)
                             Kokkos::atomic_add(&s.hist[(key >> shift) & 0xff], 1);
                         });
    team.team_barrier();
    // Every thread walks the 256 bins (the same answer everywhere; no broadcast needed).
    int b = 0, before = 0;
    while (before + s.hist[b] < want)
      before += s.hist[b++];
    want -= before;
    prefix |= U(b) << shift;
  }
  return {prefix, want};
}

/// The m-th smallest of the first `count` values (1 <= m <= count), the pairs left as they are.
/// Called by every thread of the team; ends with the team in step.
template <class T, class Member>
KOKKOS_INLINE_FUNCTION T team_kth_smallest(Member const &team, TeamSelectScratch<T> const &s,
                                           T const *val, int count, int m)
{
  TeamPivot<T> const p = team_find_pivot(team, s, val, count, m);
  team.team_barrier();
  return from_monotone_key<T>(p.key);
}

/// The first `count` pairs of (val, idx) become their m smallest values (m < count), in their
/// previous order, ties at the m-th value resolved by that order; returns the m-th value (the
/// new threshold). Called by every thread of the team; ends with the team in step.
template <class T, class Member>
KOKKOS_INLINE_FUNCTION T team_keep_smallest(Member const &team, TeamSelectScratch<T> const &s,
                                            T *val, index_type *idx, int count, int m)
{
  using U = monotone_type<T>;
  TeamPivot<T> const found = team_find_pivot(team, s, val, count, m);
  U const pivot = found.key;
  int const want = found.want;
  // Keep keys below the pivot and the first `want` equal to it, in order. One step per team's
  // worth of pairs: they are staged in scratch first, so the writes (never behind the step's
  // first slot) cannot overwrite a pair the step has not read.
  int const step = team.team_size();
  int less_done = 0, equal_done = 0;
  for (int b0 = 0; b0 < count; b0 += step)
  {
    int const rows = count - b0 < step ? count - b0 : step;
    team.team_barrier();
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, rows),
                         [&](int r)
                         {
                           s.stage_val[r] = val[b0 + r];
                           s.stage_idx[r] = idx[b0 + r];
                         });
    team.team_barrier();
    // The scan counts smaller keys in the low half and equal keys in the high half.
    std::uint64_t totals = 0;
    Kokkos::parallel_scan(
        Kokkos::TeamThreadRange(team, rows),
        [&](int r, std::uint64_t &sum, bool final)
        {
          U const key = monotone_key(s.stage_val[r]);
          std::uint64_t const mine = key < pivot    ? std::uint64_t(1)
                                     : key == pivot ? std::uint64_t(1) << 32
                                                    : std::uint64_t(0);
          if (final && mine != 0)
          {
            int const less = less_done + int(sum & 0xffffffffu);
            int const equal = equal_done + int(sum >> 32);
            if (mine == 1 || equal < want)
            {
              int const at = less + (equal < want ? equal : want);
              val[at] = s.stage_val[r];
              idx[at] = s.stage_idx[r];
            }
          }
          sum += mine;
        },
        totals);
    less_done += int(totals & 0xffffffffu);
    equal_done += int(totals >> 32);
  }
  team.team_barrier();
  return from_monotone_key<T>(pivot);
}

/// Sorts the first n pairs of (val, idx) ascending by (value, index), in place, with the whole
/// team: a bitonic network in the form whose every comparator puts the smaller pair first (each
/// merge opens by comparing mirrored positions), over n rounded up to a power of two with the
/// missing pairs taken as larger than any: a comparator reaching past n would leave its pair in
/// place, so it is skipped. O(n log^2 n) comparisons, log^2 n barriers, no scratch; the order is
/// total (ties by index), so the result does not depend on the team size or the input's order.
/// Called by every thread of the team; ends with the team in step.
template <class T, class Member>
KOKKOS_INLINE_FUNCTION void team_sort_pairs(Member const &team, T *val, index_type *idx, int n)
{
  int width = 1;
  while (width < n)
    width *= 2;
  for (int size = 2; size <= width; size *= 2)
    for (int stride = size / 2; stride > 0; stride /= 2)
    {
      team.team_barrier(); // the previous stage's swaps are visible
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, width / 2),
                           [&](int t)
                           {
                             int const i = (t / stride) * 2 * stride + t % stride;
                             // First stage of a merge: i meets its mirror in the size-block.
                             int const j = stride == size / 2
                                               ? (i / size) * size + size - 1 - i % size
                                               : i + stride;
                             if (j < n && pair_less(val[j], idx[j], val[i], idx[i]))
                               swap_pairs(val, idx, i, j);
                           });
    }
  team.team_barrier();
}

/// One query's buffer as the team sees it: the pairs live in the space's memory, the count
/// and threshold are kept by every thread alike (read and written only in step).
template <class T>
struct TeamBuffer
{
  T *val;
  index_type *idx;
  int count;
  T threshold;
  int kept;     // pairs a cut keeps
  int capacity; // a cut comes when count reaches it (candidate_capacity(kept))
};

/// Cuts the buffer to its kept smallest (nothing to do when it holds no more).
template <class T, class Member>
KOKKOS_INLINE_FUNCTION void team_trim(Member const &team, TeamSelectScratch<T> const &s,
                                      TeamBuffer<T> &buf)
{
  if (buf.count <= buf.kept)
    return;
  buf.threshold = team_keep_smallest(team, s, buf.val, buf.idx, buf.count, buf.kept);
  buf.count = buf.kept;
}

/// Offers rows first_row + j (j < rows) with scores score(j) to the buffer, in row order:
/// those below the threshold and not `skip_row` are appended, and a full buffer is cut. Rows
/// are taken in runs no longer than the room left, so that appends never pass the buffer's
/// width; with the threshold established one run covers everything.
template <class T, class Member, class Score>
KOKKOS_INLINE_FUNCTION void team_offer(Member const &team, TeamSelectScratch<T> const &s,
                                       TeamBuffer<T> &buf, std::size_t rows, index_type first_row,
                                       Score const &score, std::size_t skip_row)
{
  std::size_t j0 = 0;
  while (j0 < rows)
  {
    std::size_t const room = std::size_t(buf.capacity - buf.count) + 64;
    // How many would pass over all that is left: when they fit, one run takes them.
    int passing = 0;
    Kokkos::parallel_reduce(
        Kokkos::TeamThreadRange(team, rows - j0),
        [&](std::size_t r, int &n)
        {
          std::size_t const j = j0 + r;
          n += score(j) < buf.threshold && std::size_t(first_row) + j != skip_row;
        },
        passing);
    std::size_t const run = std::size_t(passing) <= room ? rows - j0 : room;
    int appended = 0;
    Kokkos::parallel_scan(
        Kokkos::TeamThreadRange(team, run),
        [&](std::size_t r, int &at, bool final)
        {
          std::size_t const j = j0 + r;
          T const v = score(j);
          bool const pass = v < buf.threshold && std::size_t(first_row) + j != skip_row;
          if (final && pass)
          {
            buf.val[buf.count + at] = v;
            buf.idx[buf.count + at] = first_row + index_type(j);
          }
          at += pass;
        },
        appended);
    team.team_barrier(); // the appended pairs are visible to the whole team
    buf.count += appended;
    j0 += run;
    if (buf.count >= buf.capacity)
      team_trim(team, s, buf);
  }
}

} // namespace fastknn::detail
