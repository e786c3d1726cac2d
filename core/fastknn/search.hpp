#pragma once
/// \file fastknn/search.hpp
/// Exact k-nearest-neighbour search, written once with Kokkos patterns for every backend.
///
/// How it stays exact and fast: a tiled float pre-selection keeps k + pad candidates per query
/// using register-blocked dot products (or L1 sums); the kept candidates are then re-scored
/// exactly in double by direct differences and sorted by (value, index). A rigorous bound on the
/// pre-selection's rounding error proves, per query, that no discarded point could have entered
/// the top k; the rare query without that proof is redone by an exact scan of the database.

#include <Kokkos_Core.hpp>
#include <Kokkos_Profiling_ScopedRegion.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <fastknn/backends/compress.hpp>
#include <fastknn/backends/float_dot.hpp>
#include <fastknn/backends/int8_dot.hpp>
#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/heap.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/error.hpp>
#include <fastknn/options.hpp>

// The error bound that proves each result exact assumes IEEE arithmetic as written.
#if defined(__FAST_MATH__) || defined(__USE_FAST_MATH__)
#error                                                                                             \
    "fastknn needs IEEE floating-point semantics: compile without -ffast-math / --use_fast_math (its exactness proof and input checks rely on them)"
#endif

namespace fastknn
{
namespace detail
{

struct RowStats
{
  long long first_bad;     // first row holding NaN/Inf, or -1
  double max_norm2;        // max |x - centre|^2 (the centre is 0 except for the L2 metrics)
  double min_norm2;        // min |x - centre|^2 (cosine: min |x|^2)
  double max_abs;          // max |x_p|
  double min_val, max_val; // smallest and largest value
  int integral;            // 1 when every value is an integer
};

/// One pass over the rows: finiteness, norms for the error bound and for the fast score.
template <Metric M, class V, class T>
struct RowPass
{
  using value_type = RowStats;
  V data;
  Kokkos::View<T *, typename V::memory_space> centre;
  Kokkos::View<T *, typename V::memory_space> aux; // per-row value used by fast_score
  std::size_t d;

  KOKKOS_FUNCTION void init(value_type &v) const
  {
    v.first_bad = -1;
    v.max_norm2 = 0;
    v.min_norm2 = Kokkos::Experimental::infinity_v<double>;
    v.max_abs = 0;
    v.min_val = Kokkos::Experimental::infinity_v<double>;
    v.max_val = -Kokkos::Experimental::infinity_v<double>;
    v.integral = 1;
  }
  KOKKOS_FUNCTION void join(value_type &a, value_type const &b) const
  {
    if (b.first_bad >= 0 && (a.first_bad < 0 || b.first_bad < a.first_bad))
      a.first_bad = b.first_bad;
    a.max_norm2 = Kokkos::max(a.max_norm2, b.max_norm2);
    a.min_norm2 = Kokkos::min(a.min_norm2, b.min_norm2);
    a.max_abs = Kokkos::max(a.max_abs, b.max_abs);
    a.min_val = Kokkos::min(a.min_val, b.min_val);
    a.max_val = Kokkos::max(a.max_val, b.max_val);
    a.integral = a.integral & b.integral;
  }
  KOKKOS_FUNCTION void operator()(std::size_t i, value_type &v) const
  {
    // L independent partial results per quantity so that the loop vectorises (one running sum
    // or extremum is a serial chain of dependent operations). Extrema and flags in the data's
    // own type S (exact, and twice the lanes per vector for float); the sum in double. The
    // centre is zero except for the L2 metrics, so one sum gives |x - centre|^2 for them and
    // |x|^2 for the others.
    using S = std::remove_const_t<typename V::value_type>;
    constexpr int L = 16;
    double sumv[L];
    S mxv[L], lov[L], hiv[L];
    int badv[L], fracv[L];
    for (int l = 0; l < L; ++l)
    {
      sumv[l] = 0;
      mxv[l] = 0;
      lov[l] = Kokkos::Experimental::infinity_v<S>;
      hiv[l] = -lov[l];
      badv[l] = fracv[l] = 0;
    }
    // Integral test for |x| < 2^(digits-1) (all larger values are integers): x plus and minus
    // that power of two rounds to an integer. Plain arithmetic and bit operations, no branches
    // or floor, so it vectorises (an integer round trip does not, with GCC 12: 4x slower). Safe
    // because fast-math builds, which could fold it to x, are refused above.
    constexpr S big = S(std::size_t(1) << (std::numeric_limits<S>::digits - 1));
    auto const add = [&](int l, S x, double cen)
    {
      S const ax = Kokkos::fabs(x);
      badv[l] |= int(!(ax <= Kokkos::Experimental::finite_max_v<S>)); // NaN or Inf
      fracv[l] |= int(ax < big) & int((ax + big) - big != ax);
      double const c = double(x) - cen;
      sumv[l] += c * c;
      mxv[l] = mxv[l] < ax ? ax : mxv[l];
      lov[l] = x < lov[l] ? x : lov[l];
      hiv[l] = hiv[l] < x ? x : hiv[l];
    };
    std::size_t const body = d / L * L;
    auto const *cen = centre.data();
    if constexpr (std::is_same_v<typename V::array_layout, Kokkos::LayoutRight>)
    {
      auto const *row = &data(i, 0);
      for (std::size_t p = 0; p < body; p += L)
        for (int l = 0; l < L; ++l)
          add(l, row[p + l], double(cen[p + l]));
    }
    else
      for (std::size_t p = 0; p < body; p += L)
        for (int l = 0; l < L; ++l)
          add(l, data(i, p + l), double(cen[p + l]));
    for (std::size_t p = body; p < d; ++p)
      add(int(p - body), data(i, p), double(cen[p]));
    double n2 = 0, mx = 0;
    double lo = Kokkos::Experimental::infinity_v<double>, hi = -lo;
    int bad = 0, frac = 0;
    for (int l = 0; l < L; ++l)
    {
      n2 += sumv[l];
      mx = Kokkos::max(mx, double(mxv[l]));
      lo = Kokkos::min(lo, double(lov[l]));
      hi = Kokkos::max(hi, double(hiv[l]));
      bad |= badv[l];
      frac |= fracv[l];
    }
    bool const integral = (frac | bad) == 0;
    v.min_val = Kokkos::min(v.min_val, lo);
    v.max_val = Kokkos::max(v.max_val, hi);
    v.integral &= integral ? 1 : 0;
    if (bad != 0 && (v.first_bad < 0 || static_cast<long long>(i) < v.first_bad))
      v.first_bad = static_cast<long long>(i);
    v.max_norm2 = Kokkos::max(v.max_norm2, n2);
    v.min_norm2 = Kokkos::min(v.min_norm2, n2);
    v.max_abs = Kokkos::max(v.max_abs, mx);
    if constexpr (uses_centring(M))
      aux(i) = static_cast<T>(n2);
    else if constexpr (M == Metric::Cosine)
      // Clamped where 1/|x| exceeds T (a norm below 1/FLT_MAX in float): the fast scores stay
      // finite, and the underflow term, which sees the clamp, sends such a search to the exact
      // scan rather than trust them.
      aux(i) = n2 > 0 ? static_cast<T>(Kokkos::min(1.0 / Kokkos::sqrt(n2),
                                                   double(Kokkos::Experimental::finite_max_v<T>)))
                      : T(0);
    else if constexpr (M == Metric::InnerProduct)
      aux(i) = static_cast<T>(Kokkos::sqrt(n2));
    else
      aux(i) = T(0);
  }
};

/// The packed layout of a block of rows: [row / B][p / G][row % B][p % G] over the padded depth
/// dp = round_up(d, G), so the micro-kernel reads B consecutive groups of G values per step.
/// Rows beyond `rows` and columns beyond d are zero; `f(value, p)` converts each value.
template <int B, int G, class ExecSpace, class V, class Out, class MS, class F>
void pack_rows(ExecSpace const &space, char const *label, V const &data, std::size_t first,
               std::size_t rows, std::size_t padded_rows, std::size_t d, F const &f,
               Kokkos::View<Out *, MS> packed)
{
  using Policy = Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>, Kokkos::IndexType<std::int64_t>>;
  std::size_t const dp = round_up(d, G);
  Kokkos::parallel_for(
      label,
      Policy(space, {0, 0},
             {static_cast<std::int64_t>(padded_rows), static_cast<std::int64_t>(dp)}),
      KOKKOS_LAMBDA(std::int64_t r, std::int64_t p) {
        Out const v = std::size_t(r) < rows && std::size_t(p) < d
                          ? f(double(data(first + r, p)), std::size_t(p))
                          : Out(0);
        std::size_t const ur = std::size_t(r), up = std::size_t(p);
        packed(((ur / B) * dp + up / G * G) * B + (ur % B) * G + up % G) = v;
      });
}

/// Float pre-selection: values minus the centre, converted to T.
template <class T, class MS>
struct CentreShift
{
  Kokkos::View<T *, MS> centre;
  KOKKOS_INLINE_FUNCTION T operator()(double v, std::size_t p) const
  {
    return static_cast<T>(v - double(centre(p)));
  }
};

/// Integer pre-selection: integer values shifted into the byte range of the packed type.
template <class Out>
struct ByteShift
{
  double offset;
  KOKKOS_INLINE_FUNCTION Out operator()(double v, std::size_t) const
  {
    return static_cast<Out>(static_cast<int>(v - offset));
  }
};

/// How the pre-selection computes its scores: in T from centred values (every metric), ...
template <class T>
struct FloatScores
{
  using q_type = T;
  using x_type = T;
  using acc_type = T;
  using aux_type = T;
  static constexpr int group = 1;
  static constexpr bool exact = false;

  template <Metric M, class ExecSpace, int MR, int NR>
  KOKKOS_FORCEINLINE_FUNCTION static void accumulate(T const *a, T const *b, std::size_t k0,
                                                     std::size_t k1, T (&acc)[MR][NR])
  {
    backends::FloatDot<ExecSpace>::template accumulate<uses_dot(M), MR, NR>(a, b, k0, k1, acc);
  }
  template <Metric M>
  KOKKOS_FORCEINLINE_FUNCTION static T score(T acc, T qa, T xa)
  {
    return fast_score<M>(acc, qa, xa);
  }
};

/// ... or, for L2 on integer data spanning at most 256 consecutive values, exactly in 32-bit
/// integers from bytes: queries as q - lo (unsigned), database rows as x - lo - 128 (signed),
/// |q - x|^2 = (|q'|^2 - 256 sum q') + |x'|^2 - 2 q'.(x' - 128) with q' = q - lo, x' = x - lo.
/// The score is the exact squared distance, rounded once to T.
template <class T, class ExecSpace>
struct Int8Scores
{
  using Dot = backends::Int8Dot<ExecSpace>;
  using q_type = typename Dot::q_type; // how the backend stores q - lo ...
  using x_type = typename Dot::x_type; // ... and x - lo - 128
  using acc_type = std::int32_t;
  using aux_type = std::int32_t;
  static constexpr int group = Dot::group;
  static constexpr bool exact = true;
  /// Largest dimension whose sums stay inside int32 (2 x D x 255^2 < 2^31).
  static constexpr std::size_t max_dimension = 16000;

  template <Metric M, class, int MR, int NR>
  KOKKOS_FORCEINLINE_FUNCTION static void accumulate(q_type const *a, x_type const *b,
                                                     std::size_t k0, std::size_t k1,
                                                     acc_type (&acc)[MR][NR])
  {
    Dot::template accumulate<MR, NR>(a, b, k0 / group, k1 / group, acc);
  }
  template <Metric M>
  KOKKOS_FORCEINLINE_FUNCTION static T score(acc_type acc, aux_type qa, aux_type xa)
  {
    return static_cast<T>(qa + xa - 2 * acc);
  }
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
    if (count >= candidate_buffer_factor * kept)
    {
      keep_smallest(val, idx, count, kept);
      count = kept;
      threshold = val[kept - 1];
    }
  }
};

/// Pre-selection over one chunk of the packed database: each team scores one block of MR
/// queries against every row of the chunk with a register-blocked micro-kernel and offers the
/// scores to the queries' candidate buffers. Generic path: scores go through team scratch so
/// that the team's threads can split the chunk. Fused path (one thread per team, no depth
/// blocking): each register block is compared with the MR thresholds while still in registers.
template <Metric M, int MR, int NR, int KC, int Level, bool Fused, class ExecSpace, class T,
          class P, class XV, class Shift>
struct ChunkKernel
{
  using MS = typename ExecSpace::memory_space;
  using Member = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using Acc = typename P::acc_type;
  using Aux = typename P::aux_type;
  // Integer sums are exact only in one pass: no depth blocking for them.
  static constexpr std::size_t kc = P::group == 1 ? std::size_t(KC) : std::size_t(1) << 62;
  using X = typename P::x_type;
  Kokkos::View<typename P::q_type *, MS> packed_q;
  Kokkos::View<X *, MS> packed_x;
  Kokkos::View<Aux *, MS> q_aux, x_aux;                 // indexed by global row
  Kokkos::View<T **, Kokkos::LayoutRight, MS> cand_val; // per query: factor x kept
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> cand_idx;
  Kokkos::View<int *, MS> cand_count;
  Kokkos::View<T *, MS> cand_threshold;
  std::size_t dp, q0, q_rows, x0, n; // dp: packed depth; x0: first row of the packed tile
  std::size_t tile_rows, launch;     // rows of the packed tile; rows per chunk
  // The tile's chunks are split into `segments` runs of seg_chunks; this launch does chunk
  // `chunk` of every run, for every query block. Each (query, segment) has its own buffer, so
  // a few queries still give enough teams; the buffers are merged after the last launch.
  std::size_t chunk, seg_chunks, d_real; // d_real: unpadded dimension
  int segments, kept;
  bool exclude_self;
  // Streaming (few queries): one launch; team `seg` packs each chunk of its run from the
  // database into its scratch and runs all `blocks` query blocks against it.
  bool stream;
  int blocks;
  XV database;
  Shift shift;
  /// Streamed float pre-selections with at most this many queries score rows in place (with
  /// 16 the accumulators spill: measured 2.5x slower than the packed kernels).
  static constexpr int direct_queries = 8;

  /// Bytes of the database to prefetch while a block computes (none by default).
  struct Ahead
  {
    char const *at = nullptr;
    std::size_t bytes = 0;
    /// Part i of `parts` (nearly) equal parts.
    KOKKOS_INLINE_FUNCTION Ahead part(std::size_t i, std::size_t parts) const
    {
      std::size_t const from = bytes * i / parts;
      return {at + from, bytes * (i + 1) / parts - from};
    }
  };

  KOKKOS_INLINE_FUNCTION CandidateBuffer<T> load(std::size_t b) const
  {
    return {&cand_val(b, 0), &cand_idx(b, 0), cand_count(b), cand_threshold(b), kept};
  }
  KOKKOS_INLINE_FUNCTION void store(std::size_t b, CandidateBuffer<T> const &c) const
  {
    cand_count(b) = c.count;
    cand_threshold(b) = c.threshold;
  }

  KOKKOS_INLINE_FUNCTION std::size_t rows_at(std::size_t c0) const
  {
    std::size_t const left = (tile_rows - c0 + NR - 1) / NR * NR;
    return left < launch ? left : launch;
  }

  KOKKOS_INLINE_FUNCTION void block(Member const &team, int bi, int seg, std::size_t c0,
                                    std::size_t rows, X const *xs, T *scores,
                                    Ahead ahead = {}) const
  {
    if constexpr (Fused)
      if (dp <= kc)
        return fused(bi, seg, c0, rows, xs, ahead);
    scratch_path(team, bi, seg, c0, rows, xs, scores);
  }

  KOKKOS_FUNCTION void operator()(Member const &team) const
  {
    if (stream)
      return stream_run(team);
    int const bi = team.league_rank() / segments, seg = team.league_rank() % segments;
    std::size_t const c0 = (std::size_t(seg) * seg_chunks + chunk) * launch;
    if (c0 >= tile_rows)
      return; // the last run may be shorter
    T *scores = static_cast<T *>(team.team_scratch(Level).get_shmem(MR * launch * sizeof(T)));
    block(team, bi, seg, c0, rows_at(c0), packed_x.data() + c0 / NR * dp * NR, scores);
  }

  KOKKOS_FUNCTION void stream_run(Member const &team) const
  {
    // At most direct_queries queries: no packed chunks, rows scored where they lie.
    if constexpr (Fused && P::group == 1)
    {
      if (q_rows == 1)
        return direct_run<1>(team);
      if (q_rows <= 4)
        return direct_run<4>(team);
      if (q_rows <= std::size_t(direct_queries))
        return direct_run<direct_queries>(team);
    }
    int const seg = team.league_rank();
    X *xs = static_cast<X *>(team.team_scratch(1).get_shmem(launch * dp * sizeof(X)));
    T *scores = static_cast<T *>(team.team_scratch(Level).get_shmem(MR * launch * sizeof(T)));
    constexpr int G = P::group;
    for (std::size_t c = 0; c < seg_chunks; ++c)
    {
      std::size_t const c0 = (std::size_t(seg) * seg_chunks + c) * launch;
      if (c0 >= tile_rows)
        break;
      std::size_t const rows = rows_at(c0);
      std::size_t const valid = tile_rows - c0 < rows ? tile_rows - c0 : rows;
      team.team_barrier();
      // The packed layout of pack_rows, written row by row (reads stay sequential).
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, rows),
          [&](std::size_t r)
          {
            X *out = xs + (r / NR) * dp * NR + (r % NR) * G;
            std::size_t p = 0;
            if (r < valid)
            {
              std::size_t const row = x0 + c0 + r;
              if constexpr (std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>)
              {
                auto const *src = &database(row, 0);
                for (; p < d_real; ++p)
                  out[(p / G) * NR * G + p % G] = shift(double(src[p]), p);
              }
              else
                for (; p < d_real; ++p)
                  out[(p / G) * NR * G + p % G] = shift(double(database(row, p)), p);
            }
            for (; p < dp; ++p)
              out[(p / G) * NR * G + p % G] = X(0);
          });
      team.team_barrier();
      // While the blocks compute, the next chunk's rows are asked for (a share per block and
      // panel): its pack then finds them in cache instead of waiting for memory (measured:
      // the pack's loads took ~60 % of a 16-query search).
      Ahead next;
      std::size_t const c1 = c0 + launch;
      constexpr bool by_rows = std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>;
      if (by_rows && database.span_is_contiguous() && c + 1 < seg_chunks && c1 < tile_rows)
      {
        std::size_t const rows1 = tile_rows - c1 < launch ? tile_rows - c1 : launch;
        next.at = reinterpret_cast<char const *>(&database(x0 + c1, 0));
        next.bytes = rows1 * d_real * sizeof(typename XV::value_type);
      }
      for (int bi = 0; bi < blocks; ++bi)
        block(team, bi, seg, c0, rows, xs, scores, next.part(std::size_t(bi), std::size_t(blocks)));
    }
  }

  /// Streamed float pre-selection for at most NQ queries (one thread per team): each database
  /// row of the team's run is read once where it lies and scored against the queries, the dot
  /// products (or L1 sums) split into L lanes along the dimension so that they vectorise. No
  /// packed copy: with so few queries the register-blocked kernel would mostly multiply padding.
  /// Same fast score as the packed kernels up to the summation order, which the error bound
  /// does not depend on.
  template <int NQ>
  KOKKOS_FUNCTION void direct_run(Member const &team) const
  {
    constexpr int L = backends::host_vector_bytes / int(sizeof(T));
    int const seg = team.league_rank();
    int const nq = static_cast<int>(q_rows);
    // The queries' centred values (packed in blocks of MR) row by row, zero rows up to NQ, in
    // the scratch the packed chunk would use.
    T *qs = static_cast<T *>(team.team_scratch(1).get_shmem(launch * dp * sizeof(X)));
    for (int i = 0; i < NQ; ++i)
      for (std::size_t p = 0; p < dp; ++p)
        qs[std::size_t(i) * dp + p] =
            i < nq ? T(packed_q((std::size_t(i) / MR * dp + p) * MR + std::size_t(i) % MR)) : T(0);
    CandidateBuffer<T> buf[NQ];
    Aux qa[NQ];
    for (int i = 0; i < nq; ++i)
    {
      buf[i] = load(std::size_t(i) * segments + seg);
      qa[i] = q_aux(q0 + std::size_t(i));
    }
    T const *cen = shift.centre.data();
    std::size_t const body = d_real / L * L;
    std::size_t const r0 = std::size_t(seg) * seg_chunks * launch;
    std::size_t const r1 =
        r0 + seg_chunks * launch < tile_rows ? r0 + seg_chunks * launch : tile_rows;
    for (std::size_t r = r0; r < r1; ++r)
    {
      std::size_t const row = x0 + r;
      T acc[NQ][L] = {};
      auto const add = [&](int l, std::size_t p, double v)
      {
        T const b = static_cast<T>(v - double(cen[p]));
        for (int i = 0; i < NQ; ++i)
        {
          T const a = qs[std::size_t(i) * dp + p];
          if constexpr (uses_dot(M))
            acc[i][l] += a * b;
          else
            acc[i][l] += Kokkos::fabs(a - b);
        }
      };
      if constexpr (std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>)
      {
        auto const *src = &database(row, 0);
        for (std::size_t p = 0; p < body; p += L)
          for (int l = 0; l < L; ++l)
            add(l, p + l, double(src[p + l]));
      }
      else
        for (std::size_t p = 0; p < body; p += L)
          for (int l = 0; l < L; ++l)
            add(l, p + l, double(database(row, p + l)));
      for (std::size_t p = body; p < d_real; ++p)
        add(int(p - body), p, double(database(row, p)));
      Aux const xa = x_aux(row);
      for (int i = 0; i < nq; ++i)
      {
        T sum = 0;
        for (int l = 0; l < L; ++l)
          sum += acc[i][l];
        T const s = P::template score<M>(sum, qa[i], xa);
        if (s < buf[i].threshold && !(exclude_self && row == q0 + std::size_t(i)))
          buf[i].offer(s, static_cast<index_type>(row));
      }
    }
    for (int i = 0; i < nq; ++i)
      store(std::size_t(i) * segments + seg, buf[i]);
  }

  KOKKOS_FUNCTION void fused(int bi, int seg, std::size_t chunk0, std::size_t chunk_rows,
                             X const *xs, Ahead ahead) const
  {
    CandidateBuffer<T> buf[MR];
    Aux qa[MR];
    std::size_t const first_row = x0 + chunk0;
    for (int i = 0; i < MR; ++i)
    {
      std::size_t const ql = std::size_t(bi) * MR + i;
      if (ql < q_rows)
      {
        buf[i] = load(ql * segments + seg);
        qa[i] = q_aux(q0 + ql);
      }
      else
      {
        buf[i] =
            CandidateBuffer<T>{nullptr, nullptr, 0, -Kokkos::Experimental::infinity_v<T>, kept};
        qa[i] = Aux(0);
      }
    }
    int const panels = static_cast<int>(chunk_rows / NR);
    auto const *a = packed_q.data() + std::size_t(bi) * dp * MR;
    for (int pj = 0; pj < panels; ++pj)
    {
      if (ahead.bytes > 0)
      {
        Ahead const mine = ahead.part(std::size_t(pj), std::size_t(panels));
        backends::prefetch_row(mine.at, mine.bytes);
      }
      Acc acc[MR][NR] = {};
      P::template accumulate<M, ExecSpace, MR, NR>(a, xs + std::size_t(pj) * dp * NR, 0, dp, acc);
      std::size_t const row0 = first_row + std::size_t(pj) * NR;
      Aux xa[NR];
      for (int j = 0; j < NR; ++j)
        xa[j] = row0 + j < n ? x_aux(row0 + j) : Aux(0);
      for (int i = 0; i < MR; ++i)
      {
        // One vector compare per 16 scores gives a bit mask of the candidates; only those are
        // visited (with large k most panels hold a few). Locals and an integer mask keep this
        // loop vectorisable (GCC 12 gives up when the test reads the buffer's member).
        static_assert(NR <= 64, "the candidate mask has 64 bits");
        T s[NR];
        T const threshold = buf[i].threshold;
        Aux const qai = qa[i];
        for (int j = 0; j < NR; ++j)
          s[j] = P::template score<M>(acc[i][j], qai, xa[j]);
        // Per-lane bits, then an OR reduction: both loops vectorise (one fused loop does not).
        using Bits = std::conditional_t<NR <= 32, std::uint32_t, std::uint64_t>;
        Bits bit[NR];
        for (int j = 0; j < NR; ++j)
          bit[j] = Bits(s[j] < threshold ? 1 : 0) << j;
        Bits lanes = 0;
        for (int j = 0; j < NR; ++j)
          lanes |= bit[j];
        std::uint64_t mask = lanes;
        if (mask == 0) // the common case for small k
          continue;
        if (row0 + NR > n) // padding rows past the end
          mask &= (std::uint64_t(1) << (n - row0)) - 1;
        std::size_t const qg = q0 + std::size_t(bi) * MR + i;
        if (exclude_self && qg >= row0 && qg < row0 + NR)
          mask &= ~(std::uint64_t(1) << (qg - row0));
        buf[i].template offer_masked<ExecSpace>(mask, s, static_cast<index_type>(row0));
      }
    }
    for (int i = 0; i < MR; ++i)
      if (std::size_t(bi) * MR + i < q_rows)
        store((std::size_t(bi) * MR + i) * segments + seg, buf[i]);
  }

  /// `scores`: team scratch for the block's scores (or partial sums, with depth blocking)
  /// against the whole chunk.
  KOKKOS_FUNCTION void scratch_path(Member const &team, int bi, int seg, std::size_t chunk0,
                                    std::size_t chunk_rows, X const *xs, T *scores) const
  {
    team.team_barrier(); // the previous block's selection may still read the scores
    int const panels = static_cast<int>(chunk_rows / NR);
    // The depth loop may be blocked (KC) so that a block of queries and a panel of the chunk
    // stay in L1 while the register block accumulates; partial sums wait in the scratch.
    for (std::size_t k0 = 0; k0 < dp; k0 += kc)
    {
      std::size_t const k1 = k0 + kc < dp ? k0 + kc : dp;
      bool const first = k0 == 0, last = k1 == dp;
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, panels),
          [&](int pj)
          {
            T *out = scores + std::size_t(pj) * NR;
            Acc acc[MR][NR];
            for (int i = 0; i < MR; ++i)
              for (int j = 0; j < NR; ++j)
                acc[i][j] = first ? Acc(0) : static_cast<Acc>(out[i * chunk_rows + j]);
            P::template accumulate<M, ExecSpace, MR, NR>(
                packed_q.data() + std::size_t(bi) * dp * MR, xs + std::size_t(pj) * dp * NR, k0, k1,
                acc);
            for (int i = 0; i < MR; ++i)
            {
              std::size_t const qg = q0 + std::size_t(bi) * MR + i;
              Aux const qa = last && qg < q0 + q_rows ? q_aux(qg) : Aux(0);
              for (int j = 0; j < NR; ++j)
              {
                std::size_t const xg = x0 + chunk0 + std::size_t(pj) * NR + j;
                Aux const xa = last && xg < n ? x_aux(xg) : Aux(0);
                out[i * chunk_rows + j] =
                    last ? P::template score<M>(acc[i][j], qa, xa) : static_cast<T>(acc[i][j]);
              }
            }
          });
      team.team_barrier();
    }
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, MR),
                         [&](int i)
                         {
                           std::size_t const ql = std::size_t(bi) * MR + i;
                           if (ql >= q_rows)
                             return;
                           std::size_t const qg = q0 + ql;
                           CandidateBuffer<T> buf = load(ql * segments + seg);
                           std::size_t const first = x0 + chunk0;
                           std::size_t const valid =
                               first + chunk_rows <= n ? chunk_rows : n - first;
                           T const *row = scores + i * chunk_rows;
                           for (std::size_t j = 0; j < valid; ++j)
                             if (row[j] < buf.threshold && !(exclude_self && first + j == qg))
                               buf.offer(row[j], static_cast<index_type>(first + j));
                           store(ql * segments + seg, buf);
                         });
  }
};

/// The exact re-ranking of a query tile, in two passes over its queries around the re-scoring.
/// Prepare: cut each buffer to the kept best, bound the fast scores' error, rule out the pad
/// candidates that cannot reach the top k, take exact integer scores as they are, and either
/// re-score the rest here (`by_row` false) or list them for the re-scoring by database row.
/// Finish: select and sort the k best exact scores, write them and check the proof.
template <Metric M, class ExecSpace, class T, class QV, class XV>
struct FinalizeKernel
{
  using MS = typename ExecSpace::memory_space;
  struct Prepare
  {
  };
  struct Finish
  {
  };
  QV queries;
  XV database;
  Kokkos::View<T *, MS> q_aux;
  Kokkos::View<T **, Kokkos::LayoutRight, MS> cand_val;
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> cand_idx;
  Kokkos::View<int *, MS> cand_count;
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> out_idx;
  Kokkos::View<T **, Kokkos::LayoutRight, MS> out_dist;
  Kokkos::View<int *, MS> redo; // per query of the tile: 1 = no proof, redo exactly
  Kokkos::View<int, MS> nonfinite;
  Kokkos::View<int **, Kokkos::LayoutRight, MS> marked; // per query: buffer slots to re-score
  Kokkos::View<int *, MS> marked_count; // per query: candidates re-scored (listed if by_row)
  Kokkos::View<double *, MS> a_kept;    // per query: the largest kept fast score
  std::size_t d, q0, n, n_eligible;
  int k, kept;
  double x_norm_max;
  double x_inv_norm_max; // cosine: the largest 1/|x| (for the underflow term)
  bool exact_scores;     // the pre-selection scores are exact values rounded once to T
  double exact_below;    // ... and need no re-scoring below this (where T holds them exactly)
  int segments;          // query ql's (merged) buffer is row ql * segments
  bool by_row;           // leave the re-scoring to the database-row pass

  /// The query's norm as the error bound takes it (|q - centre| for L2, |q| otherwise; cosine's
  /// per-row value is 1/|q|, L1 has none).
  KOKKOS_FUNCTION double q_norm(std::size_t qg) const
  {
    double const a = q_aux(qg);
    if constexpr (uses_centring(M))
      return Kokkos::sqrt(a);
    else if constexpr (M == Metric::Cosine)
      return 1.0 / a;
    else
      return a;
  }

  /// The query's underflow term (detail::underflow_bound).
  KOKKOS_FUNCTION double absolute(std::size_t qg) const
  {
    double const q_inv = M == Metric::Cosine ? double(q_aux(qg)) : 0.0;
    return underflow_bound<M, T>(q_norm(qg), x_norm_max, q_inv, x_inv_norm_max, d);
  }

  /// Bound on |fast - exact| for every candidate scoring at most the largest kept score.
  /// Exact scores carry only the final rounding to T (relative u); twice that for safety.
  KOKKOS_FUNCTION double bound(std::size_t qg, double largest_kept) const
  {
    if (exact_scores)
      return 2 * unit_roundoff<T>() * Kokkos::fabs(largest_kept);
    return error_bound<M, T>(largest_kept, q_norm(qg), x_norm_max, d, absolute(qg));
  }

  /// Lower bound on the exact score of every discarded row (see detail::discarded_floor).
  KOKKOS_FUNCTION double discarded_floor(std::size_t qg, double largest_kept) const
  {
    if (exact_scores)
      return largest_kept - bound(qg, largest_kept);
    return detail::discarded_floor<M, T>(largest_kept, q_norm(qg), x_norm_max, d, absolute(qg));
  }

  KOKKOS_FUNCTION void operator()(Prepare, std::size_t ql) const
  {
    std::size_t const qg = q0 + ql;
    std::size_t const b = ql * segments;
    T *hv = &cand_val(b, 0);
    index_type *hi = &cand_idx(b, 0);
    int const count = cand_count(b);
    if (count > kept)
      keep_smallest(hv, hi, count, kept);
    // Every discarded candidate scored at least the largest kept fast score.
    T largest = hv[0];
    for (int j = 1; j < kept; ++j)
      largest = hv[j] > largest ? hv[j] : largest;
    a_kept(ql) = largest;
    double const err = bound(qg, largest);
    // The k best fast scores first: their exact values are at most kth + err, so the k-th exact
    // key is at most key_of(kth + err), and a pad candidate whose exact value is certainly
    // above that key cannot enter the top k (most of a large k's pad; each skip saves reading a
    // database row).
    // Exact scores stay as they are: sorted now (the buffer's second half is the workspace),
    // they need no selection or sort in Finish. Others are re-scored, so only partitioned.
    if (kept > k && count >= kept)
    {
      if (exact_scores)
        sort_pairs(hv, hi, kept, hv + kept, hi + kept);
      else
        select_smallest(hv, hi, kept, k);
    }
    T kth = hv[0];
    for (int j = 1; j < k; ++j)
      kth = hv[j] > kth ? hv[j] : kth;
    double const kth_bound = double(kth) + err;
    double const reach =
        exact_above_key<M>(key_of<M, T>(M == Metric::L2 && kth_bound < 0 ? 0.0 : kth_bound));
    auto valid = [&](int j) { return j < count && hi[j] >= 0 && std::size_t(hi[j]) < n; };
    int marks = 0;
    for (int j = 0; j < kept; ++j)
    {
      if (!valid(j))
      {
        nonfinite() = 1; // a sentinel survived: some score was NaN/Inf
        hv[j] = Kokkos::Experimental::infinity_v<T>;
        hi[j] = 0;
      }
      else if (j >= k && double(hv[j]) - err > reach)
        hv[j] = Kokkos::Experimental::infinity_v<T>; // cannot be in the top k
      else if (double(hv[j]) < exact_below)
        hv[j] = key_of<M, T>(double(hv[j]));
      else if (by_row)
        marked(ql, marks++) = j;
      else
      {
        ++marks;
        // The candidates' rows are scattered over the database: ask for the next one early.
        if (j + 1 < kept && valid(j + 1))
          backends::prefetch_row(&database(std::size_t(hi[j + 1]), 0),
                                 d * sizeof(typename XV::value_type));
        hv[j] = key_of<M, T>(exact_score<M>(queries, qg, database, std::size_t(hi[j]), d));
      }
    }
    marked_count(ql) = marks;
  }

  /// Whether the buffer's first k pairs are its k best in ascending order (as Prepare leaves
  /// exact scores that needed no re-scoring): one pass without branches on the data.
  KOKKOS_FUNCTION bool leads_in_order(T const *hv, index_type const *hi) const
  {
    bool ordered = true;
    for (int j = 1; j < kept; ++j)
    {
      int const before = j < k ? j - 1 : k - 1;
      ordered &= pair_less(hv[before], hi[before], hv[j], hi[j]);
    }
    return ordered;
  }

  KOKKOS_FUNCTION void operator()(Finish, std::size_t ql) const
  {
    std::size_t const qg = q0 + ql;
    std::size_t const b = ql * segments;
    T *hv = &cand_val(b, 0);
    index_type *hi = &cand_idx(b, 0);
    // Only the k best need an order; the buffer's second half (free since the cut to `kept`)
    // is the sort's workspace.
    static_assert(candidate_buffer_factor >= 2);
    if (!(exact_scores && leads_in_order(hv, hi)))
    {
      if (kept > k)
        keep_smallest(hv, hi, kept, k);
      sort_pairs(hv, hi, k, hv + kept, hi + kept);
    }
    double const largest = a_kept(ql);
    bool const proven = std::size_t(kept) >= n_eligible ||
                        discarded_floor(qg, largest) > exact_above_key<M>(hv[k - 1]);
    redo(ql) = proven ? 0 : 1;
    for (int j = 0; j < k; ++j)
    {
      out_idx(qg, j) = hi[j];
      out_dist(qg, j) = reported<M>(hv[j]);
    }
  }
};

/// The slow path: exact scores of the whole database for queries the bound could not prove.
template <Metric M, class ExecSpace, class T, class QV, class XV>
struct ExactScanKernel
{
  using MS = typename ExecSpace::memory_space;
  using Member = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  static constexpr int rows_per_thread = 4;
  QV queries;
  XV database;
  Kokkos::View<T **, Kokkos::LayoutRight, MS> cand_val;
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> cand_idx;
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> out_idx;
  Kokkos::View<T **, Kokkos::LayoutRight, MS> out_dist;
  Kokkos::View<int *, MS> redo;
  std::size_t d, q0, n;
  int k;
  bool exclude_self;
  int segments; // query ql's buffer (used as the heap) is row ql * segments

  KOKKOS_FUNCTION void operator()(Member const &team) const
  {
    std::size_t const ql = team.league_rank();
    if (redo(ql) == 0)
      return;
    std::size_t const qg = q0 + ql;
    T *hv = &cand_val(ql * segments, 0);
    index_type *hi = &cand_idx(ql * segments, 0);
    std::size_t const block = std::size_t(team.team_size()) * rows_per_thread;
    T *keys = static_cast<T *>(team.team_scratch(0).get_shmem(block * sizeof(T)));
    Kokkos::single(Kokkos::PerTeam(team),
                   [&]()
                   {
                     for (int j = 0; j < k; ++j)
                     {
                       hv[j] = Kokkos::Experimental::infinity_v<T>;
                       hi[j] = Kokkos::Experimental::finite_max_v<index_type>;
                     }
                   });
    for (std::size_t b0 = 0; b0 < n; b0 += block)
    {
      std::size_t const rows = b0 + block <= n ? block : n - b0;
      team.team_barrier();
      Kokkos::parallel_for(
          Kokkos::TeamThreadRange(team, rows), [&](std::size_t r)
          { keys[r] = key_of<M, T>(exact_score<M>(queries, qg, database, b0 + r, d)); });
      team.team_barrier();
      Kokkos::single(Kokkos::PerTeam(team),
                     [&]()
                     {
                       for (std::size_t r = 0; r < rows; ++r)
                       {
                         std::size_t const x = b0 + r;
                         if (exclude_self && x == qg)
                           continue;
                         if (keys[r] < hv[0])
                           heap_replace_top(hv, hi, k, keys[r], static_cast<index_type>(x));
                       }
                     });
    }
    team.team_barrier();
    Kokkos::single(Kokkos::PerTeam(team),
                   [&]()
                   {
                     heap_sort(hv, hi, k);
                     for (int j = 0; j < k; ++j)
                     {
                       out_idx(qg, j) = hi[j];
                       out_dist(qg, j) = reported<M>(hv[j]);
                     }
                   });
  }
};

/// Reports progress after the first block of work, then at most a few times a second (fencing
/// first, so the fraction is true); throws Cancelled when the callback asks to stop.
class ProgressReporter
{
public:
  explicit ProgressReporter(ProgressCallback const &cb) : _cb(cb) {}
  template <class ExecSpace>
  void update(ExecSpace const &space, double fraction)
  {
    if (!_cb)
      return;
    auto const now = std::chrono::steady_clock::now();
    if (_reported && now - _last < std::chrono::milliseconds(200))
      return;
    space.fence("fastknn::search::progress");
    _last = now;
    _reported = true;
    if (!_cb(fraction))
      throw Cancelled("the search was stopped by its progress callback; no result was kept");
  }
  /// The work is complete: the callback's answer no longer matters.
  void done()
  {
    if (_cb)
      static_cast<void>(_cb(1.0));
  }

private:
  ProgressCallback const &_cb;
  std::chrono::steady_clock::time_point _last{};
  bool _reported = false;
};

/// Integer path: per row, |v|^2 - w sum(v) with v = x - lowest (exact in int32 for the
/// dimensions the integer path accepts). w = 0 for database rows, 256 for queries.
template <class ExecSpace, class V, class Out>
void integer_norms(ExecSpace const &space, V const &data, double lowest, std::int32_t w,
                   Out const &out)
{
  std::size_t const d = data.extent(1);
  Kokkos::parallel_for(
      "fastknn::search::integer_norms",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>(space, 0, data.extent(0)),
      KOKKOS_LAMBDA(std::size_t r) {
        std::int32_t sq = 0, sum = 0;
        for (std::size_t p = 0; p < d; ++p)
        {
          std::int32_t const v = static_cast<std::int32_t>(double(data(r, p)) - lowest);
          sq += v * v;
          sum += v;
        }
        out(r) = sq - w * sum;
      });
}

/// Whether the exact integer pre-selection runs on this backend: where its kernel is faster
/// than float. Test builds may define FASTKNN_TEST_FORCE_INTEGER_PATH to run it everywhere (with
/// the generic kernel where the backend has no instruction for it), so that code is checked on
/// every build against the reference.
template <class ExecSpace>
inline constexpr bool integer_path_enabled =
#ifdef FASTKNN_TEST_FORCE_INTEGER_PATH
    true;
#else
    backends::Int8Dot<ExecSpace>::accelerated;
#endif

/// Whether integer data spanning [lo, hi] takes the exact byte path for metric M on ExecSpace.
template <Metric M, class ExecSpace>
bool integer_eligible(RowStats const &s, double lo, double hi, std::size_t d)
{
  return uses_centring(M) && integer_path_enabled<ExecSpace> && s.integral && s.first_bad < 0 &&
         hi - lo <= 255 && d >= 8 && d <= Int8Scores<float, ExecSpace>::max_dimension;
}

/// What one pass over the database finds out (independent of the queries): the centre, the
/// per-row values of the fast score, statistics for the checks and the error bound, and, for
/// integer data, the integer path's row norms relative to the database's smallest value.
/// fastknn::Index keeps it across searches.
template <class T, class MS>
struct DatabaseSummary
{
  Kokkos::View<T *, MS> centre;
  Kokkos::View<T *, MS> aux;
  Kokkos::View<std::int32_t *, MS> int_norms; // empty unless the data is integer-eligible
  RowStats stats{};
};

template <Metric M, class ExecSpace, class XV>
auto summarise_database(ExecSpace const &space, XV const &database, bool integer_norms_wanted)
{
  using T = std::remove_const_t<typename XV::value_type>;
  using MS = typename ExecSpace::memory_space;
  using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>;
  std::size_t const n = database.extent(0), d = database.extent(1);
  DatabaseSummary<T, MS> s;
  // Centre for L2: the mean of up to 4096 evenly spaced rows. Any translation is exact for L2;
  // this one just makes the norms, and so the expansion's cancellation, small.
  s.centre = Kokkos::View<T *, MS>(Kokkos::view_alloc(space, "fastknn::search::centre"), d);
  if constexpr (uses_centring(M))
  {
    auto centre = s.centre;
    std::size_t const samples = n < 4096 ? n : 4096;
    std::size_t const stride = n / samples;
    Kokkos::parallel_for(
        "fastknn::search::centre", Range(space, 0, d), KOKKOS_LAMBDA(std::size_t p) {
          double sum = 0;
          for (std::size_t i = 0; i < samples; ++i)
            sum += database(i * stride, p);
          centre(p) = static_cast<T>(sum / double(samples));
        });
  }
  s.aux = Kokkos::View<T *, MS>(
      Kokkos::view_alloc(space, Kokkos::WithoutInitializing, "fastknn::search::database_norms"), n);
  Kokkos::parallel_reduce("fastknn::search::check_database", Range(space, 0, n),
                          RowPass<M, XV, T>{database, s.centre, s.aux, d}, s.stats);
  if (integer_norms_wanted &&
      integer_eligible<M, ExecSpace>(s.stats, s.stats.min_val, s.stats.max_val, d))
  {
    s.int_norms = Kokkos::View<std::int32_t *, MS>(
        Kokkos::view_alloc(space, Kokkos::WithoutInitializing,
                           "fastknn::search::database_integer_norms"),
        n);
    integer_norms(space, database, s.stats.min_val, 0, s.int_norms);
  }
  return s;
}

/// What the checks found out about the inputs; both pre-selection variants start from it.
template <class T, class MS>
struct Prepared
{
  Kokkos::View<T *, MS> centre;           // L2: subtracted before the float pre-selection
  Kokkos::View<T *, MS> x_aux, q_aux;     // per-row values of the float fast score
  Kokkos::View<std::int32_t *, MS> x_int; // integer path: |x - lowest|^2 per database row
  double x_norm_max = 0;                  // max |x - centre|, for the error bound
  double x_inv_norm_max = 0;              // cosine: 1 / min |x|, for the underflow term
  double lowest = 0;                      // smallest value of both sets (integer path)
};

/// The tiled pre-selection, exact re-ranking and fallback with scores computed as P says.
template <Metric M, class P, class ExecSpace, class XV, class QV, class T, class MS>
std::size_t run_tiles(ExecSpace const &space, XV const &database, QV const &queries,
                      Plan const &plan, SearchOptions const &opt, Prepared<T, MS> const &prep,
                      Neighbors<MS, T> const &result, std::size_t &packs, std::size_t &rescored)
{
  using Traits = backends::TileTraits<ExecSpace>;
  constexpr int MR = Traits::query_block;
  constexpr int NR = Traits::database_block;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>;
  using Aux = typename P::aux_type;
  auto alloc = [&](char const *label)
  { return Kokkos::view_alloc(space, Kokkos::WithoutInitializing, std::string(label)); };
  std::size_t const n = plan.n, q = plan.q, d = plan.d;
  std::size_t const dp = round_up(d, P::group);
  int const k = plan.k, kept = plan.kept;

  // Per-row values of the fast score. The integer path's query values reuse the float query
  // norms' storage (T is at least as wide as int32); its database values come prepared.
  Kokkos::View<Aux *, MS, Kokkos::MemoryTraits<Kokkos::Unmanaged>> x_aux, q_aux;
  if constexpr (P::exact)
  {
    static_assert(sizeof(Aux) <= sizeof(T));
    x_aux = decltype(x_aux)(prep.x_int.data(), n);
    q_aux = decltype(q_aux)(reinterpret_cast<Aux *>(prep.q_aux.data()), q);
    integer_norms(space, queries, prep.lowest, 256, q_aux);
  }
  else
  {
    x_aux = decltype(x_aux)(prep.x_aux.data(), n);
    q_aux = decltype(q_aux)(prep.q_aux.data(), q);
  }

  using X = typename P::x_type;
  Kokkos::View<X *, MS> packed_x(alloc("fastknn::search::packed_database"),
                                 plan.stream ? 0 : plan.db_tile * dp);
  Kokkos::View<typename P::q_type *, MS> packed_q(alloc("fastknn::search::packed_queries"),
                                                  plan.query_tile * dp);
  int const segs = plan.segments;
  std::size_t const buffers = plan.query_tile * std::size_t(segs);
  Kokkos::View<T **, Kokkos::LayoutRight, MS> cand_val(alloc("fastknn::search::candidate_values"),
                                                       buffers, candidate_buffer_width(kept));
  Kokkos::View<index_type **, Kokkos::LayoutRight, MS> cand_idx(
      alloc("fastknn::search::candidate_indices"), buffers, candidate_buffer_width(kept));
  Kokkos::View<int *, MS> cand_count(alloc("fastknn::search::candidate_count"), buffers);
  Kokkos::View<T *, MS> cand_threshold(alloc("fastknn::search::candidate_threshold"), buffers);
  Kokkos::View<int *, MS> redo(Kokkos::view_alloc(space, "fastknn::search::redo"), plan.query_tile);
  Kokkos::View<int, MS> nonfinite(Kokkos::view_alloc(space, "fastknn::search::nonfinite"));
  // The re-scoring by database row: per query the slots to re-score and the largest kept score;
  // per database row its count (zero between passes) and the start of its list in `order`.
  std::size_t const row_lists = plan.rerank_tile > 0 ? n : 0;
  Kokkos::View<int **, Kokkos::LayoutRight, MS> marked(alloc("fastknn::search::rerank_marked"),
                                                       row_lists > 0 ? plan.query_tile : 0, kept);
  Kokkos::View<int *, MS> marked_count(alloc("fastknn::search::rerank_marked_count"),
                                       plan.query_tile);
  Kokkos::View<double *, MS> a_kept(alloc("fastknn::search::rerank_largest_kept"), plan.query_tile);
  Kokkos::View<int *, MS> row_fill(Kokkos::view_alloc(space, "fastknn::search::rerank_row_fill"),
                                   row_lists);
  Kokkos::View<int *, MS> row_start(alloc("fastknn::search::rerank_row_start"),
                                    row_lists > 0 ? row_lists + 1 : 0);
  Kokkos::View<int *, MS> order(alloc("fastknn::search::rerank_order"),
                                plan.rerank_tile * std::size_t(kept));

  auto pack = [&]<int B, bool IsDatabase>(char const *label, auto const &data, std::size_t first,
                                          std::size_t rows, std::size_t padded, auto const &packed)
  {
    if constexpr (P::exact)
    {
      using Out = typename std::remove_reference_t<decltype(packed)>::value_type;
      // Queries as q - lo in [0, 255]; database rows as x - lo - 128 in [-128, 127].
      double const offset = IsDatabase ? prep.lowest + 128 : prep.lowest;
      pack_rows<B, P::group>(space, label, data, first, rows, padded, d, ByteShift<Out>{offset},
                             packed);
    }
    else
      pack_rows<B, P::group>(space, label, data, first, rows, padded, d,
                             CentreShift<T, MS>{prep.centre}, packed);
  };

  // Streaming plans pack nothing up front: teams pack their own chunks.
  bool const pack_once = plan.stream || plan.db_tile >= n;
  auto pack_database = [&](std::size_t x0)
  {
    std::size_t const rows = x0 + plan.db_tile <= n ? plan.db_tile : n - x0;
    pack.template operator()<NR, true>("fastknn::search::pack_database", database, x0, rows,
                                       round_up(rows, plan.chunk), packed_x);
    ++packs;
  };
  if (pack_once && !plan.stream)
    pack_database(0);
  auto const x_shift = [&]
  {
    if constexpr (P::exact)
      return ByteShift<typename P::x_type>{prep.lowest + 128};
    else
      return CentreShift<T, MS>{prep.centre};
  }();

  // The integer path's packed rows are sizeof(T) / sizeof(x_type) times smaller: the fused
  // kernel (which needs no scratch for scores) sweeps as many more rows per launch (measured:
  // ~10 % faster on Fashion-MNIST than the float chunk's rows).
  std::size_t const launch = P::exact && Traits::fused_select
                                 ? plan.chunk * (sizeof(T) / sizeof(typename P::x_type))
                                 : plan.chunk;
  auto tile_rows_at = [&](std::size_t x0)
  { return x0 + plan.db_tile <= n ? plan.db_tile : n - x0; };
  // Chunks of a tile each run covers; launched one chunk of every run at a time, or all in one
  // launch when streaming.
  auto chunks_per_run = [&](std::size_t tile_rows)
  { return ((tile_rows + launch - 1) / launch + segs - 1) / segs; };
  auto launches_in = [&](std::size_t tile_rows) -> std::size_t
  { return plan.stream ? 1 : chunks_per_run(tile_rows); };
  ProgressReporter progress(opt.progress);
  std::size_t launches_per_query_tile = 0;
  for (std::size_t x0 = 0; x0 < n; x0 += plan.db_tile)
    launches_per_query_tile += launches_in(tile_rows_at(x0));
  std::size_t const query_tiles = (q + plan.query_tile - 1) / plan.query_tile;
  std::size_t const total_chunks = launches_per_query_tile * query_tiles;
  std::size_t chunks_done = 0;
  std::size_t fallbacks = 0;
  // Below this the integer path's T scores are the exact values: no re-scoring needed.
  double const exact_below = P::exact
                                 ? double(std::size_t(1) << (std::numeric_limits<T>::digits < 53
                                                                 ? std::numeric_limits<T>::digits
                                                                 : 53))
                                 : -Kokkos::Experimental::infinity_v<double>;

  for (std::size_t q0 = 0; q0 < q; q0 += plan.query_tile)
  {
    std::size_t const q_rows = q0 + plan.query_tile <= q ? plan.query_tile : q - q0;
    std::size_t const blocks = (q_rows + MR - 1) / MR;
    pack.template operator()<MR, false>("fastknn::search::pack_queries", queries, q0, q_rows,
                                        blocks * MR, packed_q);
    Kokkos::parallel_for(
        "fastknn::search::init_candidates", Range(space, 0, q_rows * segs),
        KOKKOS_LAMBDA(std::size_t i) {
          cand_count(i) = 0;
          cand_threshold(i) = Kokkos::Experimental::infinity_v<T>;
        });

    for (std::size_t x0 = 0; x0 < n; x0 += plan.db_tile)
    {
      if (!pack_once)
        pack_database(x0);
      std::size_t const tile_rows = tile_rows_at(x0);
      std::size_t const launches = launches_in(tile_rows);
      std::size_t const seg_chunks = chunks_per_run(tile_rows);
      std::size_t const score_bytes = MR * launch * sizeof(T);
      std::size_t const chunk_bytes = plan.stream ? launch * dp * sizeof(X) : 0;
      for (std::size_t c = 0; c < launches; ++c)
      {
        static_assert(!Traits::fused_select || Traits::team_size == 1,
                      "fused selection needs one thread per team");
        ChunkKernel<M, MR, NR, Traits::depth_block, Traits::scratch_level, Traits::fused_select,
                    ExecSpace, T, P, XV, decltype(x_shift)>
            kernel{packed_q,
                   packed_x,
                   q_aux,
                   x_aux,
                   cand_val,
                   cand_idx,
                   cand_count,
                   cand_threshold,
                   dp,
                   q0,
                   q_rows,
                   x0,
                   n,
                   tile_rows,
                   launch,
                   c,
                   seg_chunks,
                   d,
                   segs,
                   kept,
                   opt.exclude_self,
                   plan.stream,
                   static_cast<int>(blocks),
                   database,
                   x_shift};
        int const league = plan.stream ? segs : static_cast<int>(blocks) * segs;
        Policy policy(space, league, Traits::team_size);
        if constexpr (Traits::scratch_level == 1)
          policy.set_scratch_size(1, Kokkos::PerTeam(score_bytes + chunk_bytes));
        else
        {
          policy.set_scratch_size(0, Kokkos::PerTeam(score_bytes));
          if (chunk_bytes > 0)
            policy.set_scratch_size(1, Kokkos::PerTeam(chunk_bytes));
        }
        Kokkos::parallel_for(plan.stream ? "fastknn::search::preselect_stream"
                                         : "fastknn::search::preselect_chunk",
                             policy, kernel);
        progress.update(space, 0.95 * double(++chunks_done) / double(total_chunks));
      }
    }
    if (segs > 1)
    {
      // Each query's segment buffers into its first one: compact, then keep the best `kept`.
      // Every discarded candidate scored at least the kept ones, as the bound assumes.
      Kokkos::parallel_for(
          "fastknn::search::merge_segments", Range(space, 0, q_rows),
          KOKKOS_LAMBDA(std::size_t ql) {
            std::size_t const b = ql * segs;
            T *val = &cand_val(b, 0);
            index_type *idx = &cand_idx(b, 0);
            int total = cand_count(b);
            for (int s = 1; s < segs; ++s)
            {
              int const c = cand_count(b + s);
              T const *sv = &cand_val(b + s, 0);
              index_type const *si = &cand_idx(b + s, 0);
              for (int j = 0; j < c; ++j)
              {
                val[total + j] = sv[j];
                idx[total + j] = si[j];
              }
              total += c;
            }
            if (total > kept)
            {
              keep_smallest(val, idx, total, kept);
              total = kept;
            }
            cand_count(b) = total;
          });
    }

    bool const by_row = plan.rerank_tile > 0;
    FinalizeKernel<M, ExecSpace, T, QV, XV> fin{queries,
                                                database,
                                                prep.q_aux,
                                                cand_val,
                                                cand_idx,
                                                cand_count,
                                                result.indices,
                                                result.distances,
                                                redo,
                                                nonfinite,
                                                marked,
                                                marked_count,
                                                a_kept,
                                                d,
                                                q0,
                                                n,
                                                plan.n_eligible,
                                                k,
                                                kept,
                                                prep.x_norm_max,
                                                prep.x_inv_norm_max,
                                                P::exact,
                                                exact_below,
                                                segs,
                                                by_row};
    using Fin = decltype(fin);
    Kokkos::parallel_for(
        "fastknn::search::rerank_prepare",
        Kokkos::RangePolicy<ExecSpace, typename Fin::Prepare, Kokkos::IndexType<std::size_t>>(
            space, 0, q_rows),
        fin);
    // Re-scoring by database row, a sub-tile of queries at a time: each listed row is read once
    // per sub-tile (sequentially) and meets its queries in cache, instead of each query reading
    // its candidates' rows (with k = 1024 on Fashion-MNIST, ~34 GB of scattered reads).
    for (std::size_t s0 = 0; by_row && s0 < q_rows; s0 += plan.rerank_tile)
    {
      std::size_t const s1 = s0 + plan.rerank_tile < q_rows ? s0 + plan.rerank_tile : q_rows;
      int listed = 0;
      Kokkos::parallel_for(
          "fastknn::search::rerank_count", Range(space, s0, s1), KOKKOS_LAMBDA(std::size_t ql) {
            for (int c = 0; c < marked_count(ql); ++c)
              Kokkos::atomic_add(&row_fill(cand_idx(ql * segs, marked(ql, c))), 1);
          });
      Kokkos::parallel_scan(
          "fastknn::search::rerank_offsets", Range(space, 0, n + 1),
          KOKKOS_LAMBDA(std::size_t r, int &sum, bool final) {
            int const c = r < n ? row_fill(r) : 0;
            if (final)
            {
              row_start(r) = sum;
              if (r < n)
                row_fill(r) = 0;
            }
            sum += c;
          },
          listed);
      if (listed == 0) // e.g. the integer path, whose scores are mostly exact already
        continue;
      Kokkos::parallel_for(
          "fastknn::search::rerank_place", Range(space, s0, s1), KOKKOS_LAMBDA(std::size_t ql) {
            for (int c = 0; c < marked_count(ql); ++c)
            {
              int const j = marked(ql, c);
              std::size_t const row = std::size_t(cand_idx(ql * segs, j));
              int const pos = Kokkos::atomic_fetch_add(&row_fill(row), 1);
              order(std::size_t(row_start(row) + pos)) = int(ql - s0) * kept + j;
            }
          });
      Kokkos::parallel_for(
          "fastknn::search::rerank_rows",
          Kokkos::RangePolicy<ExecSpace, Kokkos::Schedule<Kokkos::Dynamic>,
                              Kokkos::IndexType<std::size_t>>(space, 0, n),
          KOKKOS_LAMBDA(std::size_t r) {
            int const e1 = row_start(r + 1);
            for (int e = row_start(r); e < e1; ++e)
            {
              std::size_t const ql = s0 + std::size_t(order(std::size_t(e)) / kept);
              int const j = order(std::size_t(e)) % kept;
              cand_val(ql * segs, j) =
                  key_of<M, T>(exact_score<M>(queries, q0 + ql, database, r, d));
            }
            row_fill(r) = 0;
          });
    }
    Kokkos::parallel_for(
        "fastknn::search::rerank_finish",
        Kokkos::RangePolicy<ExecSpace, typename Fin::Finish, Kokkos::IndexType<std::size_t>>(
            space, 0, q_rows),
        fin);

    int redo_count = 0;
    std::size_t rescored_tile = 0;
    Kokkos::parallel_reduce(
        "fastknn::search::count_redo", Range(space, 0, q_rows),
        KOKKOS_LAMBDA(std::size_t i, int &c, std::size_t &r) {
          c += redo(i);
          r += std::size_t(marked_count(i));
        },
        redo_count, rescored_tile);
    fallbacks += std::size_t(redo_count);
    rescored += rescored_tile;
    if (redo_count > 0)
    {
      ExactScanKernel<M, ExecSpace, T, QV, XV> scan{queries,
                                                    database,
                                                    cand_val,
                                                    cand_idx,
                                                    result.indices,
                                                    result.distances,
                                                    redo,
                                                    d,
                                                    q0,
                                                    n,
                                                    k,
                                                    opt.exclude_self,
                                                    segs};
      Policy policy(space, static_cast<int>(q_rows), Traits::team_size);
      policy.set_scratch_size(
          0, Kokkos::PerTeam(std::size_t(Traits::team_size) * scan.rows_per_thread * sizeof(T)));
      Kokkos::parallel_for("fastknn::search::exact_scan", policy, scan);
    }
  }
  int nonfinite_host = 0;
  Kokkos::deep_copy(space, nonfinite_host, nonfinite);
  space.fence("fastknn::search::done");
  require(nonfinite_host == 0, "some distances are NaN or Inf (non-finite input with "
                               "check_finite = false); clean the data or enable check_finite");
  progress.done();
  return fallbacks;
}

template <Metric M, class ExecSpace, class XV, class QV>
auto search_impl(ExecSpace const &space, XV const &database,
                 DatabaseSummary<std::remove_const_t<typename XV::value_type>,
                                 typename ExecSpace::memory_space> const &summary,
                 QV const &queries, Plan const &plan, SearchOptions const &opt)
{
  using T = std::remove_const_t<typename XV::value_type>;
  using MS = typename ExecSpace::memory_space;
  using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>;
  auto alloc = [&](char const *label)
  { return Kokkos::view_alloc(space, Kokkos::WithoutInitializing, std::string(label)); };

  std::size_t const n = plan.n, q = plan.q, d = plan.d;
  int const k = plan.k;

  Prepared<T, MS> prep;
  prep.centre = summary.centre;
  prep.x_aux = summary.aux;
  prep.q_aux = Kokkos::View<T *, MS>(alloc("fastknn::search::query_norms"), q);
  RowStats const xs = summary.stats;
  RowStats qs{};
  Kokkos::parallel_reduce("fastknn::search::check_queries", Range(space, 0, q),
                          RowPass<M, QV, T>{queries, prep.centre, prep.q_aux, d}, qs);
  // The pass that computes the norms finds non-finite values whatever check_finite says, so
  // they are refused either way (a NaN row would otherwise vanish from every result: its scores
  // never compare); check_finite = false only leaves out which row it is.
  if (opt.check_finite)
  {
    require(xs.first_bad < 0, "database row " + std::to_string(xs.first_bad) +
                                  " contains NaN or Inf; clean the data");
    require(qs.first_bad < 0,
            "query row " + std::to_string(qs.first_bad) + " contains NaN or Inf; clean the data");
  }
  require(xs.first_bad < 0 && qs.first_bad < 0,
          "some distances are NaN or Inf (non-finite input with check_finite = false); clean the "
          "data");
  // The fast score must not overflow T (squares for dot products, sums for L1): refuse such
  // inputs rather than return a wrong answer.
  double const t_max = double(Kokkos::Experimental::finite_max_v<T>);
  double const limit =
      uses_dot(M) ? Kokkos::sqrt(t_max / (64.0 * double(d))) : t_max / (4.0 * double(d));
  double const biggest = xs.max_abs > qs.max_abs ? xs.max_abs : qs.max_abs;
  require(!(biggest > limit),
          "input values up to " + std::to_string(biggest) + " exceed " + std::to_string(limit) +
              ", where this metric's accumulation overflows in this precision; scale the data "
              "down (or pass double Views)");
  if constexpr (M == Metric::Cosine)
  {
    require(xs.min_norm2 > 0, "a database row is all zeros: the cosine similarity is undefined "
                              "for it; remove zero rows or use the inner product");
    require(qs.min_norm2 > 0, "a query row is all zeros: the cosine similarity is undefined "
                              "for it; remove zero rows or use the inner product");
  }
  prep.x_norm_max = Kokkos::sqrt(xs.max_norm2);
  prep.x_inv_norm_max = 1.0 / Kokkos::sqrt(xs.min_norm2);
  prep.lowest = Kokkos::min(xs.min_val, qs.min_val);
  double const highest = Kokkos::max(xs.max_val, qs.max_val);

  Neighbors<MS, T> result{
      Kokkos::View<index_type **, Kokkos::LayoutRight, MS>(alloc("fastknn::search::indices"), q, k),
      Kokkos::View<T **, Kokkos::LayoutRight, MS>(alloc("fastknn::search::distances"), q, k)};

  // Integer data spanning at most 256 values (images, byte-quantised vectors) is scored
  // exactly with byte dot products where the backend has an instruction for them.
  using Int8 = Int8Scores<T, ExecSpace>;
  bool const integer_path = opt.integer_preselection && qs.integral &&
                            integer_eligible<M, ExecSpace>(xs, prep.lowest, highest, d);
  if (integer_path)
  {
    // The database's integer norms are relative to its own smallest value; queries reaching
    // lower need them relative to theirs.
    if (summary.int_norms.extent(0) == n && summary.stats.min_val == prep.lowest)
      prep.x_int = summary.int_norms;
    else
    {
      prep.x_int =
          Kokkos::View<std::int32_t *, MS>(alloc("fastknn::search::database_integer_norms"), n);
      integer_norms(space, database, prep.lowest, 0, prep.x_int);
    }
  }
  std::size_t packs = 0, rescored = 0;
  std::size_t const fallbacks =
      integer_path
          ? run_tiles<M, Int8>(space, database, queries, plan, opt, prep, result, packs, rescored)
          : run_tiles<M, FloatScores<T>>(space, database, queries, plan, opt, prep, result, packs,
                                         rescored);
  if (opt.stats)
  {
    opt.stats->workspace_bytes = plan.workspace;
    opt.stats->query_tiles = (q + plan.query_tile - 1) / plan.query_tile;
    opt.stats->database_tiles = packs;
    opt.stats->chunk_rows = plan.chunk;
    opt.stats->kept = plan.kept;
    opt.stats->exact_fallbacks = fallbacks;
    opt.stats->integer_preselection = integer_path;
    opt.stats->segments = plan.segments;
    opt.stats->streamed = plan.stream;
    opt.stats->rescored = rescored;
    using Traits = backends::TileTraits<ExecSpace>;
    opt.stats->query_block = Traits::query_block;
    opt.stats->database_block = Traits::database_block;
    opt.stats->isa = Traits::isa;
  }
  return result;
}
template <class ExecSpace>
constexpr bool is_space_v = Kokkos::is_execution_space<ExecSpace>::value;

/// Compile-time checks on a database or query View.
template <class ExecSpace, class V>
constexpr void check_view()
{
  using T = std::remove_const_t<typename V::value_type>;
  static_assert(Kokkos::is_view<V>::value, "fastknn: database and queries must be Kokkos::Views");
  static_assert(V::rank() == 2,
                "fastknn: database and queries must be rank-2 Views (rows x dimension)");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "fastknn: values must be float or double");
  static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename V::memory_space>::accessible,
                "fastknn: database and queries must be accessible from the execution space");
}

/// Calls f.template operator()<M>() for the run-time metric.
template <class F>
decltype(auto) with_metric(Metric metric, F &&f)
{
  switch (metric)
  {
  case Metric::L2Squared:
    return f.template operator()<Metric::L2Squared>();
  case Metric::L2:
    return f.template operator()<Metric::L2>();
  case Metric::L1:
    return f.template operator()<Metric::L1>();
  case Metric::InnerProduct:
    return f.template operator()<Metric::InnerProduct>();
  case Metric::Cosine:
    return f.template operator()<Metric::Cosine>();
  }
  throw Error("unknown metric value " + std::to_string(int(metric)));
}

/// Validates the arguments, plans the tiles and runs `run(plan)`, turning a failed allocation
/// into an Error that says what to do.
template <class ExecSpace, class T, class Run>
auto planned_search(ExecSpace const &space, std::size_t n, std::size_t q, std::size_t d,
                    std::size_t d_queries, int k, SearchOptions const &options, Run &&run)
{
  using Traits = backends::TileTraits<ExecSpace>;
  Plan const plan = make_plan(n, q, d, d_queries, k, options, sizeof(T), Traits::query_block,
                              Traits::database_block, Traits::chunk_bytes, Traits::max_chunk_rows,
                              // two teams per thread slot keep the space busy (and balanced)
                              std::max<std::size_t>(1, 2 * std::size_t(space.concurrency()) /
                                                           std::size_t(Traits::team_size)),
                              Traits::stream_query_bytes, Traits::rerank_query_bytes);
  try
  {
    return run(plan);
  }
  catch (std::bad_alloc const &e)
  {
    // Kokkos reports a failed allocation as a bad_alloc naming the View; add what to do.
    throw Error(std::string("out of memory (") + e.what() + ") with a workspace of " +
                std::to_string(plan.workspace) +
                " bytes plus the Q x k outputs; lower SearchOptions::workspace_bytes or search "
                "the queries in smaller batches");
  }
}

} // namespace detail

/// Exact k nearest neighbours of each query row among the database rows.
/// `database` (N x D) and `queries` (Q x D) are rank-2 Views of float or double accessible from
/// `space`. Returns Q x k indices and distances (best first, ties by smaller index) in the
/// space's memory space. Throws fastknn::Error on invalid input. Searching the same database
/// again and again? fastknn::Index does its pass over the database once.
template <class ExecSpace, class DatabaseView, class QueryView>
requires detail::is_space_v<ExecSpace>
    Neighbors<typename ExecSpace::memory_space,
              std::remove_const_t<typename DatabaseView::value_type>>
    search(ExecSpace const &space, DatabaseView const &database, QueryView const &queries, int k,
           SearchOptions const &options = {})
{
  using T = std::remove_const_t<typename DatabaseView::value_type>;
  detail::check_view<ExecSpace, DatabaseView>();
  detail::check_view<ExecSpace, QueryView>();
  static_assert(std::is_same_v<T, std::remove_const_t<typename QueryView::value_type>>,
                "fastknn::search: database and queries must have the same value type");
  Kokkos::Profiling::ScopedRegion region("fastknn::search");
  return detail::planned_search<ExecSpace, T>(
      space, database.extent(0), queries.extent(0), database.extent(1), queries.extent(1), k,
      options,
      [&](detail::Plan const &plan)
      {
        return detail::with_metric(
            options.metric,
            [&]<Metric M>()
            {
              auto const summary =
                  detail::summarise_database<M>(space, database, options.integer_preselection);
              return detail::search_impl<M>(space, database, summary, queries, plan, options);
            });
      });
}

/// A database prepared for repeated searches (like FAISS's IndexFlat or cuVS's brute-force
/// index): the pass over its rows that every search needs (centre, row norms, finiteness and
/// range checks, the integer path's norms) runs once, in the constructor. Each search then
/// reads the database once. Results are those of fastknn::search with the same arguments.
/// The index keeps a reference to the View, not a copy: build a new index after changing the
/// data.
template <class ExecSpace, class DatabaseView>
requires detail::is_space_v<ExecSpace>
class Index
{
public:
  using value_type = std::remove_const_t<typename DatabaseView::value_type>;
  using memory_space = typename ExecSpace::memory_space;

  Index(ExecSpace const &space, DatabaseView const &database, Metric metric = Metric::L2Squared)
      : _database(database), _metric(metric)
  {
    detail::check_view<ExecSpace, DatabaseView>();
    detail::check_database_shape(database.extent(0), database.extent(1));
    Kokkos::Profiling::ScopedRegion region("fastknn::Index");
    detail::with_metric(metric, [&]<Metric M>()
                        { _summary = detail::summarise_database<M>(space, database, true); });
  }

  /// k nearest neighbours of each query row, as fastknn::search. options.metric must be the
  /// index's metric (the overload without options uses it).
  template <class QueryView>
  Neighbors<memory_space, value_type> search(ExecSpace const &space, QueryView const &queries,
                                             int k, SearchOptions const &options) const
  {
    detail::check_view<ExecSpace, QueryView>();
    static_assert(std::is_same_v<value_type, std::remove_const_t<typename QueryView::value_type>>,
                  "fastknn::Index::search: the queries must have the database's value type");
    detail::require(options.metric == _metric,
                    "this index was built for metric " + std::string(metric_name(_metric)) +
                        " but the search asks for " + std::string(metric_name(options.metric)) +
                        "; build an Index with that metric");
    Kokkos::Profiling::ScopedRegion region("fastknn::Index::search");
    return detail::planned_search<ExecSpace, value_type>(
        space, _database.extent(0), queries.extent(0), _database.extent(1), queries.extent(1), k,
        options,
        [&](detail::Plan const &plan)
        {
          return detail::with_metric(_metric,
                                     [&]<Metric M>() {
                                       return detail::search_impl<M>(space, _database, _summary,
                                                                     queries, plan, options);
                                     });
        });
  }
  template <class QueryView>
  Neighbors<memory_space, value_type> search(ExecSpace const &space, QueryView const &queries,
                                             int k) const
  {
    SearchOptions options;
    options.metric = _metric;
    return search(space, queries, k, options);
  }

  Metric metric() const { return _metric; }
  std::size_t size() const { return _database.extent(0); }
  std::size_t dimension() const { return _database.extent(1); }
  DatabaseView const &database() const { return _database; }

private:
  DatabaseView _database;
  Metric _metric;
  detail::DatabaseSummary<value_type, memory_space> _summary;
};

/// Results of the host convenience overload: row-major Q x k.
template <class T>
struct HostNeighbors
{
  std::size_t queries = 0;
  int k = 0;
  std::vector<index_type> indices;
  std::vector<T> distances;
};

/// Host convenience overload for code that does not use Kokkos: row-major arrays in, vectors
/// out, run on Kokkos' default execution space (Kokkos must be initialised, e.g. by a
/// Kokkos::ScopeGuard). Returns Q x k neighbours, best first.
template <class T>
requires(std::is_same_v<T, float> || std::is_same_v<T, double>)
    HostNeighbors<T> search(std::span<T const> database, std::span<T const> queries,
                            std::size_t dim, int k, SearchOptions const &options = {})
{
  detail::require(Kokkos::is_initialized(),
                  "Kokkos is not initialised; create a Kokkos::ScopeGuard before calling search");
  detail::require(dim > 0, "the dimension is 0; points need at least one coordinate");
  detail::require(database.size() % dim == 0, "database length " + std::to_string(database.size()) +
                                                  " is not a multiple of the dimension " +
                                                  std::to_string(dim));
  detail::require(queries.size() % dim == 0, "query length " + std::to_string(queries.size()) +
                                                 " is not a multiple of the dimension " +
                                                 std::to_string(dim));
  using Space = Kokkos::DefaultExecutionSpace;
  using Unmanaged = Kokkos::View<T const **, Kokkos::LayoutRight, Kokkos::HostSpace,
                                 Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  Unmanaged x(database.data(), database.size() / dim, dim);
  Unmanaged y(queries.data(), queries.size() / dim, dim);
  Space space;
  auto xd = Kokkos::create_mirror_view_and_copy(space, x);
  auto yd = Kokkos::create_mirror_view_and_copy(space, y);
  auto found = search(space, xd, yd, k, options);
  HostNeighbors<T> out;
  out.queries = y.extent(0);
  out.k = k;
  out.indices.resize(out.queries * std::size_t(k));
  out.distances.resize(out.queries * std::size_t(k));
  Kokkos::View<index_type **, Kokkos::LayoutRight, Kokkos::HostSpace> hi(out.indices.data(),
                                                                         out.queries, k);
  Kokkos::View<T **, Kokkos::LayoutRight, Kokkos::HostSpace> hd(out.distances.data(), out.queries,
                                                                k);
  Kokkos::deep_copy(space, hi, found.indices);
  Kokkos::deep_copy(space, hd, found.distances);
  space.fence("fastknn::search::host_copy");
  return out;
}

} // namespace fastknn
