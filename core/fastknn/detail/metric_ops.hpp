#pragma once
/// \file fastknn/detail/metric_ops.hpp
/// Per-metric pieces of the search, inlined into the kernels:
/// - the fast float score used for pre-selection (smaller is better for every metric),
/// - the exact score recomputed in double by direct differences for the kept candidates,
/// - a rigorous bound on |fast - exact|, used to prove the pre-selection lost nothing.

#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstddef>
#include <type_traits>

#include <fastknn/options.hpp>

namespace fastknn::detail
{

/// Unit round-off of T.
template <class T>
KOKKOS_INLINE_FUNCTION constexpr double unit_roundoff()
{
  return sizeof(T) == 4 ? 5.9604644775390625e-08 : 1.1102230246251565e-16;
}

/// gamma_n = n u / (1 - n u): the classical bound on the relative error of an n-term sum.
template <class T>
KOKKOS_INLINE_FUNCTION double gamma_n(double n)
{
  double const nu = n * unit_roundoff<T>();
  return nu / (1.0 - nu);
}

/// Metrics that rank by a dot product (L2 via the norm expansion) rather than by |q - x|.
KOKKOS_INLINE_FUNCTION constexpr bool uses_dot(Metric m)
{
  return m == Metric::L2 || m == Metric::L2Squared || m == Metric::InnerProduct ||
         m == Metric::Cosine;
}
/// Metrics without a fast pre-selection (Chebyshev and every metric declared after it): every
/// pair is scored exactly (in double, the exact scan of exact_scan.hpp), so the ranking is that
/// of the exact scores by construction.
KOKKOS_INLINE_FUNCTION constexpr bool exact_only(Metric m)
{
  return int(m) >= int(Metric::Chebyshev);
}
/// The exact-only metrics share one instantiation of the search, this value's: their scores
/// dispatch on the run-time metric (MetricParam::metric) once per pair (compile time).
inline constexpr Metric exact_only_family = Metric::Chebyshev;
/// The metrics that count true/false coordinate pairs (true: non-zero).
KOKKOS_INLINE_FUNCTION constexpr bool is_boolean(Metric m)
{
  return int(m) >= int(Metric::Jaccard);
}
/// Metrics for which the data is centred first: translation does not change L2 distances but
/// shrinks the norms, and with them the cancellation error of the norm expansion.
KOKKOS_INLINE_FUNCTION constexpr bool uses_centring(Metric m)
{
  return m == Metric::L2 || m == Metric::L2Squared;
}

/// x^p for finite x >= 0 and finite p > 0, from IEEE additions, multiplications, divisions and
/// fused multiply-adds only (frexp, ldexp and round are exact): the same bits on every backend,
/// unlike libm's pow (glibc and CUDA differ in the last bits). x = 2^e m with m in
/// [1/sqrt 2, sqrt 2); ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its series to
/// s^25 (the next term is below 2^-64 of the sum); y = p log2 x split as n + r, n = round(y),
/// r from one fma; 2^r = exp(r ln 2) by its Taylor series to the 17th power (|r ln 2| <= 0.35:
/// the rest is below 2^-70). Every product meeting an addition is an explicit fma. Relative
/// error < 1e-14 (1 + |p log2 x|) (test_metrics.cpp). Overflow gives infinity, underflow 0.
KOKKOS_INLINE_FUNCTION double portable_pow(double x, double p)
{
  if (!(x > 0))
    return 0;
  int e = 0;
  double m = ::frexp(x, &e); // [1/2, 1); ::, not Kokkos:: (Kokkos 4.6 has no frexp)
  if (m < 0.7071067811865476)
  {
    m = 2 * m;
    --e;
  }
  double const s = (m - 1) / (m + 1);
  double const s2 = s * s;
  constexpr double odd[13] = {1.0,
                              0.3333333333333333,
                              0.2,
                              0.14285714285714285,
                              0.1111111111111111,
                              0.09090909090909091,
                              0.07692307692307693,
                              0.06666666666666667,
                              0.058823529411764705,
                              0.05263157894736842,
                              0.047619047619047616,
                              0.043478260869565216,
                              0.04};
  double series = odd[12];
  for (int j = 11; j >= 0; --j)
    series = Kokkos::fma(series, s2, odd[j]);
  double const ln_m = (2 * s) * series;
  double const log2_x = Kokkos::fma(ln_m, 1.4426950408889634, double(e));
  double const y = p * log2_x;
  if (!(y < 1024.5))
    return Kokkos::Experimental::infinity_v<double>;
  if (y < -1100)
    return 0;
  double const n = Kokkos::round(y);
  double const t = Kokkos::fma(p, log2_x, -n) * 0.6931471805599453;
  constexpr double inv_factorial[18] = {1.0,
                                        1.0,
                                        0.5,
                                        0.16666666666666666,
                                        0.041666666666666664,
                                        0.008333333333333333,
                                        0.001388888888888889,
                                        0.0001984126984126984,
                                        2.48015873015873e-05,
                                        2.7557319223985893e-06,
                                        2.755731922398589e-07,
                                        2.505210838544172e-08,
                                        2.08767569878681e-09,
                                        1.6059043836821613e-10,
                                        1.1470745597729725e-11,
                                        7.647163731819816e-13,
                                        4.779477332387385e-14,
                                        2.8114572543455206e-15};
  double ex = inv_factorial[17];
  for (int j = 16; j >= 0; --j)
    ex = Kokkos::fma(ex, t, inv_factorial[j]);
  return ::ldexp(ex, int(n)); // (CUDA and HIP declare both for the device too)
}

/// Run-time parameters of an exact-only metric's score: which metric, and Minkowski's p (for
/// the other metrics unread). `whole` is p when p is a whole number up to 32 (its powers are
/// products, 0 otherwise).
struct MetricParam
{
  Metric metric = exact_only_family;
  double p = 2;
  double inv_p = 0.5;
  int whole = 2;
};

inline MetricParam metric_param(Metric metric, double p)
{
  MetricParam mp;
  mp.metric = metric;
  mp.p = p;
  mp.inv_p = 1 / p;
  mp.whole = p == Kokkos::round(p) && p >= 1 && p <= 32 ? int(p) : 0;
  return mp;
}

/// |t|^p as Minkowski's exact score adds it: for a whole p the product t^(p-1) (multiplied from
/// the left) fused into the partial sum with t, otherwise portable_pow.
KOKKOS_FORCEINLINE_FUNCTION double minkowski_add(double t, MetricParam const &mp, double s)
{
  if (mp.whole == 1)
    return s + t;
  if (mp.whole > 1)
  {
    double w = t;
    for (int j = 2; j < mp.whole; ++j)
      w = w * t;
    return Kokkos::fma(w, t, s);
  }
  return s + portable_pow(t, mp.p);
}

/// The Minkowski distance from its sum of powers: the sum itself for p = 1, sqrt for p = 2 (IEEE
/// rounded), portable_pow with 1/p otherwise.
KOKKOS_INLINE_FUNCTION double minkowski_root(double sum, MetricParam const &mp)
{
  if (mp.whole == 1)
    return sum;
  if (mp.whole == 2)
    return Kokkos::sqrt(sum);
  return portable_pow(sum, mp.inv_p);
}

/// Fast score from the register-block accumulator (dot product or L1 sum) and per-row aux
/// values: |q_c|^2 and |x_c|^2 for L2, 1/|q| and 1/|x| for cosine, unused otherwise.
template <Metric M, class T>
KOKKOS_FORCEINLINE_FUNCTION T fast_score(T acc, T q_aux, T x_aux)
{
  if constexpr (M == Metric::L2 || M == Metric::L2Squared)
    return q_aux + x_aux - T(2) * acc;
  else if constexpr (M == Metric::InnerProduct)
    return -acc;
  else if constexpr (M == Metric::Cosine)
    return -acc * q_aux * x_aux;
  else
    return acc;
}

/// The exact score's number of partial sums: term p goes to partial sum p mod 8.
inline constexpr int exact_partial_sums = 8;

/// Adds term (a, b) to partial sum l of the exact score. Every product is added with one fused
/// multiply-add (one rounding), written out, so that no compiler decides: nvcc contracts
/// a * b + c by default, GCC with -march=native under gnu++ does, a generic x86-64 build cannot
/// (it calls the correctly rounded libm fma). The exact score then has the same bits on every
/// backend and machine (docs/design.md).
template <Metric M>
KOKKOS_FORCEINLINE_FUNCTION void exact_term(double a, double b, double &s, double &qq, double &xx)
{
  static_assert(!exact_only(M), "exact-only metrics are scored by exact_score alone");
  if constexpr (M == Metric::L2 || M == Metric::L2Squared)
  {
    double const t = a - b;
    s = Kokkos::fma(t, t, s);
  }
  else if constexpr (M == Metric::L1)
    s += Kokkos::fabs(a - b);
  else
  {
    s = Kokkos::fma(a, b, s);
    if constexpr (M == Metric::Cosine)
    {
      qq = Kokkos::fma(a, a, qq);
      xx = Kokkos::fma(b, b, xx);
    }
  }
  (void)qq;
  (void)xx;
}

/// The exact score from its eight partial sums (pairwise; cosine's norms likewise).
template <Metric M>
KOKKOS_FORCEINLINE_FUNCTION double exact_combine(double const (&s)[exact_partial_sums],
                                                 double const (&qq)[exact_partial_sums],
                                                 double const (&xx)[exact_partial_sums])
{
  auto total = [](double const(&v)[exact_partial_sums])
  { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); };
  if constexpr (M == Metric::InnerProduct)
    return -total(s);
  else if constexpr (M == Metric::Cosine)
    return -total(s) / (Kokkos::sqrt(total(qq)) * Kokkos::sqrt(total(xx)));
  else
  {
    (void)qq;
    (void)xx;
    return total(s);
  }
}

/// The exact-only metrics' scores from their eight partial sums (s, qq, xx: what exact_score's
/// loop adds for the metric), combined pairwise; counts are exact integers in double, so every
/// boolean metric and Hamming is its true value rounded once (one division).
template <Metric M>
KOKKOS_INLINE_FUNCTION double
exact_only_combine(double const (&s)[exact_partial_sums], double const (&qq)[exact_partial_sums],
                   double const (&xx)[exact_partial_sums], std::size_t d, MetricParam const &mp)
{
  auto total = [](double const(&v)[exact_partial_sums])
  { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); };
  double const dim = double(d);
  if constexpr (M == Metric::Chebyshev)
    return Kokkos::fmax(Kokkos::fmax(Kokkos::fmax(s[0], s[1]), Kokkos::fmax(s[2], s[3])),
                        Kokkos::fmax(Kokkos::fmax(s[4], s[5]), Kokkos::fmax(s[6], s[7])));
  else if constexpr (M == Metric::Minkowski)
    return minkowski_root(total(s), mp);
  else if constexpr (M == Metric::Canberra)
    return total(s);
  else if constexpr (M == Metric::BrayCurtis)
  {
    double const den = total(qq);
    return den > 0 ? total(s) / den : 0.0;
  }
  else if constexpr (M == Metric::Hamming)
    return total(s) / dim;
  else
  {
    double const tt = total(s), tf = total(qq) - tt, ft = total(xx) - tt, neq = tf + ft;
    if constexpr (M == Metric::Jaccard)
      return tt + neq > 0 ? neq / (tt + neq) : 0.0;
    else if constexpr (M == Metric::Dice)
      return neq / (2 * tt + neq);
    else if constexpr (M == Metric::Kulsinski)
      return (neq - tt + dim) / (neq + dim);
    else if constexpr (M == Metric::Matching)
      return neq / dim;
    else if constexpr (M == Metric::RogersTanimoto || M == Metric::SokalMichener)
      return 2 * neq / (dim + neq);
    else if constexpr (M == Metric::RussellRao)
      return (dim - tt) / dim;
    else if constexpr (M == Metric::SokalSneath)
      return 2 * neq / (tt + 2 * neq);
    else
    {
      static_assert(M == Metric::Yule);
      double const half = tf * ft, ff = dim - tt - neq;
      return half == 0 ? 0.0 : 2 * half / (tt * ff + half);
    }
  }
}

/// Exact internal score in double from the original rows (smaller is better): squared
/// distance for L2 and L2Squared, L1 distance, minus the inner product, minus the cosine.
template <Metric M, class QV, class XV>
KOKKOS_INLINE_FUNCTION double exact_score(QV const &queries, std::size_t qi, XV const &database,
                                          std::size_t xi, std::size_t d, MetricParam const &mp = {})
{
  // Eight partial sums in a fixed order: independent chains the compiler can vectorise, and the
  // same order on every backend and thread count.
  constexpr int L = exact_partial_sums;
  double s[L] = {}, qq[L] = {}, xx[L] = {};
  // Rows of LayoutRight Views are contiguous: plain pointers let the compiler vectorise the
  // partial sums (through the View's operator() GCC 12 keeps them scalar).
  constexpr bool contiguous = std::is_same_v<typename QV::array_layout, Kokkos::LayoutRight> &&
                              std::is_same_v<typename XV::array_layout, Kokkos::LayoutRight>;
  auto const *qrow = &queries(qi, 0);
  auto const *xrow = &database(xi, 0);
  auto term = [&](int l, std::size_t p)
  {
    double a, b;
    if constexpr (contiguous)
    {
      a = qrow[p];
      b = xrow[p];
    }
    else
    {
      a = queries(qi, p);
      b = database(xi, p);
    }
    // exact_term's operations, written here again: through exact_term's references GCC 12
    // vectorises cosine's three chains ~8 % slower (measured, AVX2 Zen 3 class).
    if constexpr (M == Metric::L2 || M == Metric::L2Squared)
    {
      double const t = a - b;
      s[l] = Kokkos::fma(t, t, s[l]);
    }
    else if constexpr (M == Metric::L1)
      s[l] += Kokkos::fabs(a - b);
    else if constexpr (M == Metric::Chebyshev)
    {
      // a ternary, not fmax (a libm call per coordinate in GCC: 6x slower); inputs are finite
      double const t = Kokkos::fabs(a - b);
      s[l] = s[l] < t ? t : s[l];
    }
    else if constexpr (M == Metric::Minkowski)
      s[l] = minkowski_add(Kokkos::fabs(a - b), mp, s[l]);
    else if constexpr (M == Metric::Canberra)
    {
      double const den = Kokkos::fabs(a) + Kokkos::fabs(b);
      if (den > 0)
        s[l] += Kokkos::fabs(a - b) / den;
    }
    else if constexpr (M == Metric::BrayCurtis)
    {
      s[l] += Kokkos::fabs(a - b);
      qq[l] += Kokkos::fabs(a + b);
    }
    else if constexpr (M == Metric::Hamming)
      s[l] += a != b ? 1.0 : 0.0;
    else if constexpr (is_boolean(M))
    {
      // counts of (true, true) pairs and of each row's true coordinates, exact in double;
      // |v| > 0, not v != 0: GCC vectorises the ordered compare (3x faster), inputs are finite
      double const ta = Kokkos::fabs(a) > 0 ? 1.0 : 0.0, tb = Kokkos::fabs(b) > 0 ? 1.0 : 0.0;
      s[l] += ta * tb;
      qq[l] += ta;
      xx[l] += tb;
    }
    else
    {
      s[l] = Kokkos::fma(a, b, s[l]);
      if constexpr (M == Metric::Cosine)
      {
        qq[l] = Kokkos::fma(a, a, qq[l]);
        xx[l] = Kokkos::fma(b, b, xx[l]);
      }
    }
  };
  std::size_t p = 0;
  for (; p + L <= d; p += L)
    for (int l = 0; l < L; ++l)
      term(l, p + l);
  for (int l = 0; p < d; ++p, ++l)
    term(l, p);
  if constexpr (exact_only(M))
    return exact_only_combine<M>(s, qq, xx, d, mp);
  else
    return exact_combine<M>(s, qq, xx);
}

/// The exact score of an exact-only metric chosen at run time (mp.metric): one dispatch per
/// pair, to exact_score's loop for that metric.
template <class QV, class XV>
KOKKOS_INLINE_FUNCTION double exact_only_score(QV const &queries, std::size_t qi,
                                               XV const &database, std::size_t xi, std::size_t d,
                                               MetricParam const &mp)
{
  switch (mp.metric)
  {
  case Metric::Minkowski:
    return exact_score<Metric::Minkowski>(queries, qi, database, xi, d, mp);
  case Metric::Canberra:
    return exact_score<Metric::Canberra>(queries, qi, database, xi, d, mp);
  case Metric::BrayCurtis:
    return exact_score<Metric::BrayCurtis>(queries, qi, database, xi, d, mp);
  case Metric::Hamming:
    return exact_score<Metric::Hamming>(queries, qi, database, xi, d, mp);
  case Metric::Jaccard:
    return exact_score<Metric::Jaccard>(queries, qi, database, xi, d, mp);
  case Metric::Dice:
    return exact_score<Metric::Dice>(queries, qi, database, xi, d, mp);
  case Metric::Kulsinski:
    return exact_score<Metric::Kulsinski>(queries, qi, database, xi, d, mp);
  case Metric::Matching:
    return exact_score<Metric::Matching>(queries, qi, database, xi, d, mp);
  case Metric::RogersTanimoto:
    return exact_score<Metric::RogersTanimoto>(queries, qi, database, xi, d, mp);
  case Metric::RussellRao:
    return exact_score<Metric::RussellRao>(queries, qi, database, xi, d, mp);
  case Metric::SokalMichener:
    return exact_score<Metric::SokalMichener>(queries, qi, database, xi, d, mp);
  case Metric::SokalSneath:
    return exact_score<Metric::SokalSneath>(queries, qi, database, xi, d, mp);
  case Metric::Yule:
    return exact_score<Metric::Yule>(queries, qi, database, xi, d, mp);
  default:
    return exact_score<Metric::Chebyshev>(queries, qi, database, xi, d, mp);
  }
}

/// The score the exact scan ranks by: exact_score<M>, or for the exact-only family the run-time
/// metric's.
template <Metric M, class QV, class XV>
KOKKOS_INLINE_FUNCTION double scan_score(QV const &queries, std::size_t qi, XV const &database,
                                         std::size_t xi, std::size_t d, MetricParam const &mp)
{
  if constexpr (exact_only(M))
    return exact_only_score(queries, qi, database, xi, d, mp);
  else
    return exact_score<M>(queries, qi, database, xi, d);
}

/// Partial sum `lane` of exact_score (its terms p = lane, lane + 8, ... in that order), for
/// eight threads that score one pair of rows together: side by side they read eight consecutive
/// values of each row at a time (a 32-byte sector of floats) instead of one row each.
struct ExactPartial
{
  double s = 0, qq = 0, xx = 0;
};
template <Metric M, class QV, class XV>
KOKKOS_INLINE_FUNCTION ExactPartial exact_partial(QV const &queries, std::size_t qi,
                                                  XV const &database, std::size_t xi, std::size_t d,
                                                  int lane)
{
  ExactPartial out;
  for (std::size_t p = std::size_t(lane); p < d; p += exact_partial_sums)
    exact_term<M>(queries(qi, p), database(xi, p), out.s, out.qq, out.xx);
  return out;
}

/// The value that orders results, in the output type: ascending key = best first.
template <Metric M, class T>
KOKKOS_INLINE_FUNCTION T key_of(double exact)
{
  if constexpr (M == Metric::L2)
    return static_cast<T>(Kokkos::sqrt(exact));
  else
    return static_cast<T>(exact);
}

/// The smallest exact internal score whose key is certainly larger than `key` (so it cannot
/// tie with it or come before it).
template <Metric M, class T>
KOKKOS_INLINE_FUNCTION double exact_above_key(T key)
{
  double const next = Kokkos::nextafter(key, Kokkos::Experimental::infinity_v<T>);
  if constexpr (M == Metric::L2)
    return next * next;
  else
    return next;
}

/// The reported distance (similarities are reported with their sign).
template <Metric M, class T>
KOKKOS_INLINE_FUNCTION T reported(T key)
{
  if constexpr (M == Metric::InnerProduct || M == Metric::Cosine)
    return -key;
  else
    return key;
}

/// L2 metrics: the error of one pair's fast score is at most this factor times (|q| + |x|)^2,
/// with the pair's own centred norms (error_bound takes the largest |x| for every pair).
template <class T>
KOKKOS_INLINE_FUNCTION double l2_error_factor(std::size_t d)
{
  double const u = unit_roundoff<T>();
  return 2 * (gamma_n<T>(double(d) + 2) + gamma_n<double>(double(d) + 2) + 6 * u);
}

/// The smallest positive (subnormal) value of T, as a double.
template <class T>
KOKKOS_INLINE_FUNCTION constexpr double smallest_subnormal()
{
  return sizeof(T) == 4 ? 0x1p-149 : 0x1p-1074;
}

/// The absolute part of the bound on |fast - exact|. A rounding whose result falls below T's
/// normal range errs by up to half the smallest subnormal whatever the result's size (counted
/// here as a whole one), which no
/// relative term covers (values ~1e-20 have subnormal products in float). A fast score takes at
/// most D + 2 such roundings in its accumulator (products or fused multiply-adds and the final
/// sums), one per coordinate in each conversion to T (weighing at most sqrt(D) times the other
/// row's norm), and a few in the per-row values and the combination; the double re-scoring
/// adds the same with double's subnormal. Cosine scales the accumulator by 1/|q| and 1/|x|:
/// x_inv_norm_max is the largest 1/|x| (in double; when it or 1/|q| exceeds what T holds, some
/// per-row value is clamped and no bound holds: infinity). Twice the count, as error_bound.
template <Metric M, class T>
KOKKOS_INLINE_FUNCTION double underflow_bound(double q_norm, double x_norm_max, double q_inv_norm,
                                              double x_inv_norm_max, std::size_t d)
{
  // A whole smallest subnormal each, not half: half of double's is not a double (it rounds to
  // 0, which made this term vanish for double data).
  double const h = double(smallest_subnormal<T>()) + smallest_subnormal<double>();
  double const dd = double(d);
  if constexpr (M == Metric::L1)
    return 2 * h * (2 * dd + 2);
  double const acc = h * (Kokkos::sqrt(dd) * (q_norm + x_norm_max) + dd + 2);
  if constexpr (M == Metric::L2 || M == Metric::L2Squared)
    return 2 * (2 * acc + 4 * h);
  else if constexpr (M == Metric::InnerProduct)
    return 2 * (acc + h);
  else
  {
    double const big = Kokkos::Experimental::finite_max_v<T>;
    if (!(q_inv_norm < big) || !(x_inv_norm_max < big)) // clamped: see RowPass (cosine)
      return Kokkos::Experimental::infinity_v<double>;
    return 2 * (acc * q_inv_norm * x_inv_norm_max + 4 * h);
  }
}

/// Bound on |fast score - exact score| for every candidate of a query whose fast score is >=
/// a_kept. q_norm and x_norm_max are |q| and max |x| of the (centred, for L2) rows. Twice the
/// worst-case error analysis (dot product gamma_{D+2}, norms, centring round-off, the double
/// recomputation), so ordinary rounding in the bound itself cannot make it fail.
/// `absolute` is underflow_bound's term for this query, added to the relative one.
template <Metric M, class T>
KOKKOS_INLINE_FUNCTION double error_bound(double a_kept, double q_norm, double x_norm_max,
                                          std::size_t d, double absolute)
{
  double const u = unit_roundoff<T>();
  double const g = gamma_n<T>(double(d) + 2) + gamma_n<double>(double(d) + 2);
  if constexpr (M == Metric::L2 || M == Metric::L2Squared)
  {
    double const s = q_norm + x_norm_max;
    return l2_error_factor<T>(d) * s * s + absolute;
  }
  else if constexpr (M == Metric::InnerProduct)
    return 2 * (g + 2 * u) * q_norm * x_norm_max + absolute;
  else if constexpr (M == Metric::Cosine)
    return 2 * (2 * g + 8 * u) + absolute;
  else
    return 2 * (g + u) * Kokkos::fabs(a_kept) + absolute;
}

/// A lower bound on the exact score of every row the pre-selection discarded (fast score at
/// least a_kept): a_kept minus the error bound, and, for the L2 metrics, better where a few rows
/// have norms far above the rest (standardised data: a pixel with a tiny spread makes rows
/// with norms ~10x the median; on Fashion-MNIST the bound with the largest norm exceeded the
/// gap between the 100th and 132nd neighbours for a third of the queries). A row of centred
/// norm r has error at most E (|q| + r)^2, and also exact >= (r - |q|)^2 (|q - x| >= |x| - |q|).
/// Rows with r up to rho, where the two meet, are held by the first, rows beyond rho by the
/// second, so every discarded row scores at least a_kept - E (|q| + rho)^2. Slack of 1e-5 on
/// the norms covers their rounding (the query's is stored in T).
template <Metric M, class T>
KOKKOS_INLINE_FUNCTION double discarded_floor(double a_kept, double q_norm, double x_norm_max,
                                              std::size_t d, double absolute)
{
  double const plain = a_kept - error_bound<M, T>(a_kept, q_norm, x_norm_max, d, absolute);
  if constexpr (!uses_centring(M))
    return plain;
  else
  {
    double const e = l2_error_factor<T>(d), q = q_norm;
    // (r - q)^2 = a_kept - e (q + r)^2  <=>  (1 + e) r^2 - 2 q (1 - e) r + (1 + e) q^2 - a_kept = 0
    double const half_b = q * (1 - e), a = 1 + e, c = (1 + e) * q * q - a_kept;
    double const disc = half_b * half_b - a * c;
    if (!(disc >= 0))
      return plain;
    // A little beyond the meeting point, so that the triangle side still holds after the
    // slack on |q| below (at the meeting point itself it would miss by that slack).
    double const rho = (half_b + Kokkos::sqrt(disc)) / a * (1 + 1e-4);
    if (!(rho < x_norm_max))
      return plain;
    double const floor = a_kept - e * (q + rho) * (1 + 1e-5) * (q + rho) * (1 + 1e-5) - absolute;
    double const gap = rho - q * (1 + 1e-5); // beyond rho: exact >= gap^2
    return gap > 0 && gap * gap >= floor && floor > plain ? floor : plain;
  }
}

} // namespace fastknn::detail
