#pragma once
/// \file fastknn/detail/entry.hpp
/// The places fastknn::Index enters the pipeline (the tile shape and plan, the pass over the
/// database, one search), as functions of a few canonical View types that the compiled library
/// instantiates once (detail/eti.hpp lists them and routes calls to them).

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
inline constexpr bool
    entry_view_v = std::is_same_v<typename V::memory_space, typename ExecSpace::memory_space> &&
                   (std::is_same_v<typename V::array_layout, Kokkos::LayoutRight> ||
                    std::is_same_v<typename V::array_layout, Kokkos::LayoutLeft>);

/// The tile shape of the space's traits (what make_plan plans with): tests that make their
/// own plans ask for it here, so that a plan fits the kernels that will run it.
template <class ExecSpace>
TeamShape space_shape(std::size_t teams_wanted)
{
  TeamShape shape = team_shape<backends::TileTraits<ExecSpace>>(teams_wanted);
  shape.integer_path = integer_path_enabled<ExecSpace>;
  return shape;
}
template <class ExecSpace>
FASTKNN_EXPORT TeamShape shape_entry(std::size_t teams_wanted)
{
  return space_shape<ExecSpace>(teams_wanted);
}

/// The argument checks and the tile plan of a search (plan_for) with the traits of the kernels
/// that will run it.
template <class ExecSpace, class T>
FASTKNN_EXPORT Plan plan_entry(ExecSpace const &space, std::size_t n, std::size_t q, std::size_t d,
                               std::size_t d_queries, int k, SearchOptions const &options)
{
  return plan_for<ExecSpace, T>(space, n, q, d, d_queries, k, options);
}

/// The pass over the database for the run-time `metric`, on any database View.
template <class ExecSpace, class XV>
DatabaseSummary<std::remove_const_t<typename XV::value_type>, typename ExecSpace::memory_space>
summarise_any(ExecSpace const &space, XV const &database, Metric metric)
{
  return with_metric(metric,
                     [&]<Metric M>() { return summarise_database<M>(space, database, true); });
}

/// One search for the run-time options.metric, on any database and query Views.
template <class ExecSpace, class XV, class QV>
Neighbors<typename ExecSpace::memory_space, std::remove_const_t<typename XV::value_type>>
search_any(ExecSpace const &space, XV const &database,
           DatabaseSummary<std::remove_const_t<typename XV::value_type>,
                           typename ExecSpace::memory_space> const &summary,
           QV const &queries, Plan const &plan, SearchOptions const &options)
{
  return with_metric(options.metric, [&]<Metric M>()
                     { return search_impl<M>(space, database, summary, queries, plan, options); });
}

/// The pass over the database for `metric` (fastknn::Index's constructor).
template <class ExecSpace, class T, class Layout>
FASTKNN_EXPORT DatabaseSummary<T, typename ExecSpace::memory_space>
summarise_entry(ExecSpace const &space,
                EntryView<T, Layout, typename ExecSpace::memory_space> const &database,
                Metric metric)
{
  return summarise_any(space, database, metric);
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
  using Traits = backends::TileTraits<ExecSpace>;
  require(plan.mr == Traits::query_block && plan.nr == Traits::database_block,
          "the plan was made for a " + std::to_string(plan.mr) + " x " + std::to_string(plan.nr) +
              " register block but the kernels in use (" + Traits::isa + ") have " +
              std::to_string(Traits::query_block) + " x " + std::to_string(Traits::database_block) +
              "; make plans with detail::tile_shape, which asks the kernels that run them");
  return search_any(space, database, summary, queries, plan, options);
}

} // namespace fastknn::detail
