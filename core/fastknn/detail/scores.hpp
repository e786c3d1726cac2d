#pragma once
/// \file fastknn/detail/scores.hpp
/// How the pre-selection computes its scores: FloatScores (every metric, in T) or Int8Scores
/// (L2 on 8-bit-range integer data, exact in int32), and when the integer path applies.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>

#include <fastknn/backends/float_dot.hpp>
#include <fastknn/backends/int8_dot.hpp>
#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/detail/row_pass.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

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

} // namespace fastknn::detail
