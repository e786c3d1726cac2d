#pragma once
/// \file fastknn/detail/entry.hpp
/// The two places fastknn::Index enters the pipeline (the pass over the database, and one
/// search), as functions of a few canonical View types that the compiled library instantiates
/// once (detail/eti.hpp lists them). Every View a caller passes whose value type, layout and
/// memory space match one of them (const or not, managed or not, any device type of that memory
/// space) is converted to it here, so one instantiation serves them all; LayoutLeft queries are
/// copied to LayoutRight (Q x D, the small side). Any other View runs the same pipeline
/// instantiated in the caller's translation unit.

#include <Kokkos_Core.hpp>

#include <string>
#include <type_traits>

#include <fastknn/detail/search_impl.hpp>
#include <fastknn/detail/summary.hpp>
#include <fastknn/options.hpp>

/// Entry points stay visible from the compiled library to callers built with hidden
/// visibility (a Python extension module, for one).
#if defined(__GNUC__) || defined(__clang__)
#define FASTKNN_EXPORT __attribute__((visibility("default")))
#else
#define FASTKNN_EXPORT
#endif

namespace fastknn::detail
{

/// The canonical View of a database or query set: const T, rank 2, the space's memory.
template <class T, class Layout, class MS>
using EntryView = Kokkos::View<T const **, Layout, MS>;

/// Whether V converts to an EntryView of ExecSpace without a copy: LayoutRight or LayoutLeft
/// in the space's memory space (any memory traits).
template <class ExecSpace, class V>
inline constexpr bool entry_view_v =
    std::is_same_v<typename V::memory_space, typename ExecSpace::memory_space> &&
    (std::is_same_v<typename V::array_layout, Kokkos::LayoutRight> ||
     std::is_same_v<typename V::array_layout, Kokkos::LayoutLeft>);

/// The pass over the database for `metric` (fastknn::Index's constructor).
template <class ExecSpace, class T, class Layout>
FASTKNN_EXPORT DatabaseSummary<T, typename ExecSpace::memory_space>
summarise_entry(ExecSpace const &space,
                EntryView<T, Layout, typename ExecSpace::memory_space> const &database,
                Metric metric)
{
  return with_metric(metric, [&]<Metric M>()
                     { return summarise_database<M>(space, database, true); });
}

/// One search of a summarised database with a given plan, for options.metric.
template <class ExecSpace, class T, class Layout>
FASTKNN_EXPORT Neighbors<typename ExecSpace::memory_space, T>
search_entry(ExecSpace const &space,
             EntryView<T, Layout, typename ExecSpace::memory_space> const &database,
             DatabaseSummary<T, typename ExecSpace::memory_space> const &summary,
             EntryView<T, Kokkos::LayoutRight, typename ExecSpace::memory_space> const &queries,
             Plan const &plan, SearchOptions const &options)
{
  return with_metric(options.metric, [&]<Metric M>()
                     { return search_impl<M>(space, database, summary, queries, plan, options); });
}

/// summarise_entry for an entry View, the pipeline in place otherwise.
template <class ExecSpace, class XV>
DatabaseSummary<std::remove_const_t<typename XV::value_type>, typename ExecSpace::memory_space>
summarise(ExecSpace const &space, XV const &database, Metric metric)
{
  using T = std::remove_const_t<typename XV::value_type>;
  using MS = typename ExecSpace::memory_space;
  if constexpr (entry_view_v<ExecSpace, XV>)
    return summarise_entry<ExecSpace, T, typename XV::array_layout>(
        space, EntryView<T, typename XV::array_layout, MS>(database), metric);
  else
    return with_metric(metric, [&]<Metric M>()
                       { return summarise_database<M>(space, database, true); });
}

/// search_entry for entry Views (LayoutLeft queries copied to LayoutRight first), the
/// pipeline in place otherwise.
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
  if constexpr (entry_view_v<ExecSpace, XV> && entry_view_v<ExecSpace, QV>)
  {
    EntryView<T, XL, MS> const x(database);
    if constexpr (std::is_same_v<typename QV::array_layout, Kokkos::LayoutRight>)
      return search_entry<ExecSpace, T, XL>(space, x, summary,
                                            EntryView<T, Kokkos::LayoutRight, MS>(queries), plan,
                                            options);
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
    return with_metric(options.metric, [&]<Metric M>()
                       { return search_impl<M>(space, database, summary, queries, plan, options); });
}

} // namespace fastknn::detail
