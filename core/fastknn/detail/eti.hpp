#pragma once
/// \file fastknn/detail/eti.hpp
/// The compiled library's instantiations of the pipeline's entry points (detail/entry.hpp): for
/// every execution space the library was built for x {float, double} x database {LayoutRight,
/// LayoutLeft}, queries LayoutRight. Callers with those types instantiate nothing: they call
/// the library. Any other type or space still works header-only.
///
/// Device spaces (CUDA, HIP, SYCL): explicit instantiations in libfastknn. Host spaces
/// (OpenMP, Serial, Threads): explicit specialisations that libfastknn defines as forwarders to
/// the instruction-set variant chosen at run time (core/src/dispatch.cpp, fastknn/isa.hpp);
/// each variant's module instantiates the primary templates for its instruction set.
///
/// A translation unit whose pipeline must differ from the library's compiles it itself:
/// FASTKNN_HEADER_ONLY (a user's choice, or a test that forces other kernels) and the test hooks
/// that change the pipeline (FASTKNN_GPU_SHAPED_HOST, FASTKNN_TEST_FORCE_INTEGER_PATH) turn the
/// declarations below off.

#include <Kokkos_Core.hpp>

#include <fastknn/config.hpp>
#include <fastknn/detail/entry.hpp>
#include <fastknn/isa.hpp>

#include <string>
#include <type_traits>

/// The name a module's table gives an entry point (core/src/isa_module.cpp).
#define FASTKNN_ETI_NAME(WHAT, SPACE, T, LAYOUT) #WHAT "|" #SPACE "|" #T "|" #LAYOUT

/// The entry points of one space, value type and database layout (X: `extern template`,
/// `template` or `template <>`).
#define FASTKNN_ETI_ENTRY(X, SPACE, T, LAYOUT)                                                     \
  X ::fastknn::detail::DatabaseSummary<T, SPACE::memory_space>                                     \
  fastknn::detail::summarise_entry<SPACE, T, LAYOUT>(                                              \
      SPACE const &, fastknn::detail::EntryView<T, LAYOUT, SPACE::memory_space> const &,           \
      ::fastknn::Metric);                                                                          \
  X ::fastknn::Neighbors<SPACE::memory_space, T> fastknn::detail::search_entry<SPACE, T, LAYOUT>(  \
      SPACE const &, fastknn::detail::EntryView<T, LAYOUT, SPACE::memory_space> const &,           \
      fastknn::detail::DatabaseSummary<T, SPACE::memory_space> const &,                            \
      fastknn::detail::EntryView<T, Kokkos::LayoutRight, SPACE::memory_space> const &,             \
      fastknn::detail::Plan const &, ::fastknn::SearchOptions const &);

/// The plan of one space and value type.
#define FASTKNN_ETI_PLAN(X, SPACE, T)                                                              \
  X ::fastknn::detail::Plan fastknn::detail::plan_entry<SPACE, T>(                                 \
      SPACE const &, std::size_t, std::size_t, std::size_t, std::size_t, int,                      \
      ::fastknn::SearchOptions const &);

/// Everything of one space.
#define FASTKNN_ETI_SPACE(X, SPACE)                                                                \
  X ::fastknn::detail::TeamShape fastknn::detail::shape_entry<SPACE>(std::size_t);                 \
  FASTKNN_ETI_PLAN(X, SPACE, float)                                                                \
  FASTKNN_ETI_PLAN(X, SPACE, double)                                                               \
  FASTKNN_ETI_ENTRY(X, SPACE, float, Kokkos::LayoutRight)                                          \
  FASTKNN_ETI_ENTRY(X, SPACE, float, Kokkos::LayoutLeft)                                           \
  FASTKNN_ETI_ENTRY(X, SPACE, double, Kokkos::LayoutRight)                                         \
  FASTKNN_ETI_ENTRY(X, SPACE, double, Kokkos::LayoutLeft)

#if !defined(FASTKNN_HEADER_ONLY) && !defined(FASTKNN_GPU_SHAPED_HOST) &&                          \
    !defined(FASTKNN_TEST_FORCE_INTEGER_PATH)
#if !defined(FASTKNN_ETI_BUILDING)
#define FASTKNN_ETI_EXTERN(SPACE) FASTKNN_ETI_SPACE(extern template, SPACE)
FASTKNN_ETI_DEVICE_SPACES(FASTKNN_ETI_EXTERN)
#undef FASTKNN_ETI_EXTERN
#endif
#if !defined(FASTKNN_ETI_BUILDING) || defined(FASTKNN_ETI_DISPATCHER)
#define FASTKNN_ETI_SPECIALISED(SPACE) FASTKNN_ETI_SPACE(template <>, SPACE)
FASTKNN_ETI_HOST_SPACES(FASTKNN_ETI_SPECIALISED)
#undef FASTKNN_ETI_SPECIALISED
#endif
/// Defined where this translation unit calls the compiled library's entry points.
#define FASTKNN_USES_ETI 1
#endif

namespace fastknn::detail
{

#ifdef FASTKNN_USES_ETI
inline constexpr bool uses_eti = true;
#else
inline constexpr bool uses_eti = false;
#endif

/// The tile shape the search's kernels plan with, and whether they have the exact integer
/// pre-selection (the compiled library's, where it runs them).
template <class ExecSpace>
TeamShape tile_shape(std::size_t teams_wanted)
{
  if constexpr (uses_eti)
    return shape_entry<ExecSpace>(teams_wanted);
  else
    return space_shape<ExecSpace>(teams_wanted);
}

/// Validates the arguments and plans the tiles (with the compiled library's traits where it
/// runs the search).
template <class ExecSpace, class T>
Plan plan(ExecSpace const &space, std::size_t n, std::size_t q, std::size_t d,
          std::size_t d_queries, int k, SearchOptions const &options)
{
  if constexpr (uses_eti)
    return plan_entry<ExecSpace, T>(space, n, q, d, d_queries, k, options);
  else
    return plan_for<ExecSpace, T>(space, n, q, d, d_queries, k, options);
}

/// The pass over the database: the library's entry point for an entry View, the pipeline in
/// place otherwise.
template <class ExecSpace, class XV>
DatabaseSummary<std::remove_const_t<typename XV::value_type>, typename ExecSpace::memory_space>
summarise(ExecSpace const &space, XV const &database, Metric metric)
{
  using T = std::remove_const_t<typename XV::value_type>;
  using MS = typename ExecSpace::memory_space;
  if constexpr (uses_eti && entry_view_v<ExecSpace, XV>)
    return summarise_entry<ExecSpace, T, typename XV::array_layout>(
        space, EntryView<T, typename XV::array_layout, MS>(database), metric);
  else
    return summarise_any(space, database, metric);
}

/// One search: the library's entry point for entry Views (LayoutLeft queries copied to
/// LayoutRight first, Q x D: the small side), the pipeline in place otherwise.
template <class ExecSpace, class XV, class QV>
Neighbors<typename ExecSpace::memory_space, std::remove_const_t<typename XV::value_type>>
search(ExecSpace const &space, XV const &database,
       DatabaseSummary<std::remove_const_t<typename XV::value_type>,
                       typename ExecSpace::memory_space> const &summary,
       QV const &queries, Plan const &plan, SearchOptions const &options)
{
  using T = std::remove_const_t<typename XV::value_type>;
  using MS = typename ExecSpace::memory_space;
  using XL = typename XV::array_layout;
  if constexpr (uses_eti && entry_view_v<ExecSpace, XV> && entry_view_v<ExecSpace, QV>)
  {
    EntryView<T, XL, MS> const x(database);
    if constexpr (std::is_same_v<typename QV::array_layout, Kokkos::LayoutRight>)
      return search_entry<ExecSpace, T, XL>(
          space, x, summary, EntryView<T, Kokkos::LayoutRight, MS>(queries), plan, options);
    else
    {
      Kokkos::View<T **, Kokkos::LayoutRight, MS> q(
          Kokkos::view_alloc(space, Kokkos::WithoutInitializing,
                             std::string("fastknn::search::queries_row_major")),
          queries.extent(0), queries.extent(1));
      Kokkos::deep_copy(space, q, queries);
      return search_entry<ExecSpace, T, XL>(space, x, summary, q, plan, options);
    }
  }
  else
    return search_any(space, database, summary, queries, plan, options);
}

} // namespace fastknn::detail

namespace fastknn::detail
{
/// The instruction set (or device) of the kernels a search on ExecSpace runs: the variant the
/// compiled library chose for a host space (fastknn::host_isa()), the traits' name otherwise.
template <class ExecSpace>
std::string kernel_isa()
{
  if constexpr (uses_eti && backends::host_execution_space<ExecSpace>)
    return host_isa();
  else
    return backends::TileTraits<ExecSpace>::isa;
}
} // namespace fastknn::detail
