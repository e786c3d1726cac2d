#pragma once
/// \file fastknn/detail/summary.hpp
/// What a search needs to know about the database (fastknn::Index keeps it), and what the
/// checks found about both inputs.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <fastknn/detail/row_pass.hpp>
#include <fastknn/detail/scores.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

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
DatabaseSummary<std::remove_const_t<typename XV::value_type>, typename ExecSpace::memory_space>
summarise_database(ExecSpace const &space, XV const &database, bool integer_norms_wanted)
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

} // namespace fastknn::detail
