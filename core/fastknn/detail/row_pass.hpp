#pragma once
/// \file fastknn/detail/row_pass.hpp
/// The pass over a set of rows that every search needs: finiteness, the norms for the error
/// bound and the per-row value of the fast score (stage 1 of docs/design.md).

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <limits>
#include <type_traits>

#include <fastknn/detail/metric_ops.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
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
    // because fast-math builds, which could fold it to x, are refused (detail/search_impl.hpp).
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

} // namespace fastknn::detail
