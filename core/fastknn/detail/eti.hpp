#pragma once
/// \file fastknn/detail/eti.hpp
/// Explicit instantiation of the pipeline's entry points (detail/entry.hpp) in the compiled
/// library: for every execution space the library was built for (FASTKNN_ETI_SPACES, from
/// config.hpp) x {float, double} x database {LayoutRight, LayoutLeft}, queries LayoutRight.
/// Callers with those types instantiate nothing: they call the library. Any other type or
/// space still works header-only.
///
/// A translation unit whose pipeline must differ from the library's compiles it itself:
/// FASTKNN_HEADER_ONLY (a user's choice, or a test that forces other kernels) and the test hooks
/// that change the pipeline (FASTKNN_GPU_SHAPED_HOST, FASTKNN_TEST_FORCE_INTEGER_PATH) turn the
/// declarations below off.

#include <Kokkos_Core.hpp>

#include <fastknn/config.hpp>
#include <fastknn/detail/entry.hpp>

/// The instantiations of the entry points for one space and value type (X: `extern template`
/// for the declarations, `template` for the library's definitions).
#define FASTKNN_ETI_ENTRY(X, SPACE, T, LAYOUT)                                                    \
  X ::fastknn::detail::DatabaseSummary<T, SPACE::memory_space>                                    \
  fastknn::detail::summarise_entry<SPACE, T, LAYOUT>(                                             \
      SPACE const &, fastknn::detail::EntryView<T, LAYOUT, SPACE::memory_space> const &,          \
      ::fastknn::Metric);                                                                         \
  X ::fastknn::Neighbors<SPACE::memory_space, T> fastknn::detail::search_entry<SPACE, T, LAYOUT>( \
      SPACE const &, fastknn::detail::EntryView<T, LAYOUT, SPACE::memory_space> const &,          \
      fastknn::detail::DatabaseSummary<T, SPACE::memory_space> const &,                           \
      fastknn::detail::EntryView<T, Kokkos::LayoutRight, SPACE::memory_space> const &,            \
      fastknn::detail::Plan const &, ::fastknn::SearchOptions const &);

#define FASTKNN_ETI_VALUE(X, SPACE, T)                                                            \
  FASTKNN_ETI_ENTRY(X, SPACE, T, Kokkos::LayoutRight)                                             \
  FASTKNN_ETI_ENTRY(X, SPACE, T, Kokkos::LayoutLeft)

#if !defined(FASTKNN_HEADER_ONLY) && !defined(FASTKNN_GPU_SHAPED_HOST) &&                        \
    !defined(FASTKNN_TEST_FORCE_INTEGER_PATH) && !defined(FASTKNN_ETI_BUILDING)
#define FASTKNN_ETI_DECLARE(SPACE)                                                                \
  FASTKNN_ETI_VALUE(extern template, SPACE, float)                                                \
  FASTKNN_ETI_VALUE(extern template, SPACE, double)
FASTKNN_ETI_SPACES(FASTKNN_ETI_DECLARE)
#undef FASTKNN_ETI_DECLARE
/// Defined where this translation unit calls the compiled library's instantiations.
#define FASTKNN_USES_ETI 1
#endif
