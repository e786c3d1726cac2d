#pragma once
// The specified exact score (docs/design.md, "the floating-point contraction rule") written
// independently of the library, and the truth in long double with a rigorous bound on the
// specification's rounding. Shared by the test suite (reference.hpp) and the search fuzzer.

#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/options.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace fastknn::test
{

/// The specified exact internal score of rows a and b (smaller is better: the squared distance
/// for L2 and L2Squared, the L1 distance, minus the inner product, minus the cosine), written
/// from the specification: coordinate p goes into partial sum p mod 8 for the full groups of
/// eight, the tail into sums 0, 1, ...; each product added with one fma; the sums combined as
/// ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)); sqrt and division IEEE-rounded. Chebyshev: the
/// largest |a - b| (each difference rounded once: the correctly rounded distance). Minkowski
/// (p): |a - b|^p added to the partial sums, for a whole p up to 32 as the product
/// |a - b|^(p-1) (multiplied from the left) fused with one fma, for any other p the
/// specification's power function (the library's detail::portable_pow, tested on its own
/// against powl in test_metrics.cpp); the distance is the sum for p = 1, its sqrt for p = 2, its
/// portable_pow(1 / p) otherwise.
/// A boolean metric from its counts (SciPy's and scikit-learn's formulas; works in double or
/// long double).
template <class F>
F spec_boolean(Metric metric, F tt, F tf, F ft, F n)
{
  F const neq = tf + ft, ff = n - tt - neq;
  switch (metric)
  {
  case Metric::Jaccard:
    return tt + neq > 0 ? neq / (tt + neq) : F(0);
  case Metric::Dice:
    return neq / (2 * tt + neq);
  case Metric::Kulsinski:
    return (neq - tt + n) / (neq + n);
  case Metric::Matching:
    return neq / n;
  case Metric::RogersTanimoto:
  case Metric::SokalMichener:
    return 2 * neq / (n + neq);
  case Metric::RussellRao:
    return (n - tt) / n;
  case Metric::SokalSneath:
    return 2 * neq / (tt + 2 * neq);
  default: // Yule
    return tf * ft == 0 ? F(0) : 2 * tf * ft / (tt * ff + tf * ft);
  }
}

template <class E>
double spec_score(Metric metric, E const *ra, E const *rb, std::size_t d, double power = 2)
{
  double s[8] = {}, aa[8] = {}, bb[8] = {};
  std::size_t const full = d / 8 * 8;
  int const whole = power == std::round(power) && power >= 1 && power <= 32 ? int(power) : 0;
  for (std::size_t p = 0; p < d; ++p)
  {
    std::size_t const l = p < full ? p % 8 : p - full;
    double const a = double(ra[p]), b = double(rb[p]);
    switch (metric)
    {
    case Metric::L2:
    case Metric::L2Squared:
      s[l] = std::fma(a - b, a - b, s[l]);
      break;
    case Metric::L1:
      s[l] = s[l] + std::fabs(a - b);
      break;
    case Metric::InnerProduct:
      s[l] = std::fma(a, b, s[l]);
      break;
    case Metric::Cosine:
      s[l] = std::fma(a, b, s[l]);
      aa[l] = std::fma(a, a, aa[l]);
      bb[l] = std::fma(b, b, bb[l]);
      break;
    case Metric::Chebyshev:
      s[l] = std::max(s[l], std::fabs(a - b));
      break;
    case Metric::Canberra:
      if (std::fabs(a) + std::fabs(b) > 0)
        s[l] = s[l] + std::fabs(a - b) / (std::fabs(a) + std::fabs(b));
      break;
    case Metric::BrayCurtis:
      s[l] = s[l] + std::fabs(a - b);
      aa[l] = aa[l] + std::fabs(a + b);
      break;
    case Metric::Hamming:
      s[l] = s[l] + (a != b);
      break;
    default: // the boolean metrics: the counts n_tt, n_tf, n_ft
      s[l] = s[l] + (a != 0 && b != 0);
      aa[l] = aa[l] + (a != 0 && b == 0);
      bb[l] = bb[l] + (a == 0 && b != 0);
      break;
    case Metric::Minkowski:
    {
      double const t = std::fabs(a - b);
      if (whole == 1)
        s[l] = s[l] + t;
      else if (whole > 1)
      {
        double w = t;
        for (int j = 2; j < whole; ++j)
          w = w * t;
        s[l] = std::fma(w, t, s[l]);
      }
      else
        s[l] = s[l] + detail::portable_pow(t, power);
      break;
    }
    }
  }
  auto sum8 = [](double const *v)
  { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); };
  switch (metric)
  {
  case Metric::InnerProduct:
    return -sum8(s);
  case Metric::Cosine:
    return -sum8(s) / (std::sqrt(sum8(aa)) * std::sqrt(sum8(bb)));
  case Metric::Chebyshev:
    return std::max(std::max(std::max(s[0], s[1]), std::max(s[2], s[3])),
                    std::max(std::max(s[4], s[5]), std::max(s[6], s[7])));
  case Metric::Minkowski:
    return whole == 1   ? sum8(s)
           : whole == 2 ? std::sqrt(sum8(s))
                        : detail::portable_pow(sum8(s), 1 / power);
  case Metric::BrayCurtis:
    return sum8(aa) > 0 ? sum8(s) / sum8(aa) : 0.0;
  case Metric::Hamming:
    return sum8(s) / double(d);
  default:
    break;
  }
  if (int(metric) >= int(Metric::Jaccard))
    return spec_boolean(metric, sum8(s), sum8(aa), sum8(bb), double(d));
  return sum8(s);
}

/// The order key in the output type T (ascending = best first) of a specified internal score.
template <class T>
T spec_key(Metric metric, double internal)
{
  return metric == Metric::L2 ? T(std::sqrt(internal)) : T(internal);
}

/// The distance the library reports for an order key (similarities with their sign).
template <class T>
T spec_reported(Metric metric, T key)
{
  return is_similarity(metric) ? T(-key) : key;
}

/// The reported value in long double (the truth, up to a relative 2^-60 or so) and a rigorous
/// bound on |specified double - truth| for these two rows (the specification's own rounding:
/// one rounding per subtraction, per fma and per pairwise addition, sqrt and division).
struct Truth
{
  long double value;
  long double bound;
};

template <class E>
Truth truth(Metric metric, E const *a, E const *b, std::size_t d, double power = 2)
{
  long double s = 0, mag = 0, aa = 0, bb = 0;
  for (std::size_t p = 0; p < d; ++p)
  {
    long double const x = a[p], y = b[p];
    if (int(metric) >= int(Metric::Jaccard)) // the boolean metrics' counts n_tt, n_tf, n_ft
    {
      s += x != 0 && y != 0;
      aa += x != 0 && y == 0;
      bb += x == 0 && y != 0;
      continue;
    }
    switch (metric)
    {
    case Metric::L2:
    case Metric::L2Squared:
      s += (x - y) * (x - y);
      break;
    case Metric::L1:
      s += fabsl(x - y);
      break;
    case Metric::Chebyshev:
      s = std::max(s, fabsl(x - y));
      break;
    case Metric::Minkowski:
      s += powl(fabsl(x - y), power);
      break;
    case Metric::Canberra:
      s += fabsl(x) + fabsl(y) > 0 ? fabsl(x - y) / (fabsl(x) + fabsl(y)) : 0.0L;
      break;
    case Metric::BrayCurtis:
      s += fabsl(x - y);
      mag += fabsl(x + y);
      break;
    case Metric::Hamming:
      s += x != y;
      break;
    default:
      s += x * y;
      mag += fabsl(x * y);
      aa += x * x;
      bb += y * y;
      break;
    }
  }
  // gamma for one chain of ceil(d/8) roundings, three pairwise levels and the two roundings of
  // a subtraction that is squared; generous by a factor of two for the long double's own error.
  long double const u = std::ldexp(1.0L, -53);
  long double const gamma = 2 * (std::ceil(d / 8.0L) + 8) * u;
  // Products or squares of tiny doubles underflow: an absolute term of one subnormal step each.
  long double const tiny = 4 * (d + 8) * (long double)(std::numeric_limits<double>::denorm_min());
  switch (metric)
  {
  case Metric::L2Squared:
  case Metric::L1:
    return {s, gamma * s + tiny};
  case Metric::L2:
  {
    long double const r = sqrtl(s);
    // |sqrt(s') - sqrt(s)| <= |s' - s| / sqrt(s) once s' is within a relative gamma of s, plus
    // the rounding of sqrt itself.
    long double const e = gamma * s + tiny;
    long double const lo = sqrtl(std::max(0.0L, s - e));
    return {r,
            (sqrtl(s + e) - lo) + 2 * u * r + std::sqrt(std::numeric_limits<double>::denorm_min())};
  }
  case Metric::InnerProduct:
    return {s, gamma * mag + tiny};
  case Metric::Cosine:
  {
    long double const n = sqrtl(aa) * sqrtl(bb);
    long double const c = s / n;
    return {c, (gamma * mag + tiny) / n + fabsl(c) * (gamma + 8 * u)};
  }
  case Metric::Chebyshev:
    return {s, u * s};   // one rounding: the difference
  case Metric::Canberra: // per term a subtraction, an addition and a division, then the sums
    return {s, 2 * (gamma + 3 * u) * s};
  case Metric::BrayCurtis:
    return {mag > 0 ? s / mag : 0.0L, mag > 0 ? 2 * (2 * gamma + u) * s / mag : 0.0L};
  case Metric::Hamming: // an exact count, one division
    return {s / d, u * s / d};
  case Metric::Jaccard:
  case Metric::Dice:
  case Metric::Kulsinski:
  case Metric::Matching:
  case Metric::RogersTanimoto:
  case Metric::RussellRao:
  case Metric::SokalMichener:
  case Metric::SokalSneath:
  case Metric::Yule:
  {
    long double const v = spec_boolean<long double>(metric, s, aa, bb, (long double)d);
    return {v, u * v}; // exact counts, one rounding of the last division
  }
  case Metric::Minkowski:
  {
    // Not a rigorous bound: the powers' error (below 1e-14 (1 + |p log2 t|) each, as measured in
    // test_metrics.cpp) and the sums', with room; values whose powers underflow double count
    // as the absolute term.
    long double const r = powl(s, 1.0L / power);
    return {r, 1e-11L * r + 1e-300L};
  }
  }
  return {0, 0};
}

/// The specification against the mathematics for rows a and b: the specified value in the
/// reported units, in double (before its rounding to the output type), the truth, and whether
/// the first lies within its rounding bound of the second.
struct SpecCheck
{
  double spec;
  Truth truth;
  bool ok;
};

template <class E>
SpecCheck check_spec(Metric metric, E const *a, E const *b, std::size_t d, double p = 2)
{
  double const internal = spec_score(metric, a, b, d, p);
  double const spec = metric == Metric::L2    ? std::sqrt(internal)
                      : is_similarity(metric) ? -internal
                                              : internal;
  Truth const t = truth(metric, a, b, d, p);
  return {spec, t, fabsl((long double)spec - t.value) <= t.bound};
}

} // namespace fastknn::test
