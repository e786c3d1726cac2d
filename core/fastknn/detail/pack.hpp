#pragma once
/// \file fastknn/detail/pack.hpp
/// The packed layout the register-blocked pre-selection reads, and the value conversions
/// applied while packing (centring for floats, a byte shift for the integer path).

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>

#include <fastknn/detail/plan.hpp>

namespace fastknn::detail
{

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

} // namespace fastknn::detail
