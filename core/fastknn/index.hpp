#pragma once
/// \file fastknn/index.hpp
/// fastknn::Index: a database prepared once for many exact searches.

#include <Kokkos_Core.hpp>
#include <Kokkos_Profiling_ScopedRegion.hpp>

#include <string>
#include <type_traits>

#include <fastknn/detail/eti.hpp>
#include <fastknn/detail/search_impl.hpp>
#include <fastknn/detail/summary.hpp>
#include <fastknn/error.hpp>
#include <fastknn/options.hpp>

namespace fastknn
{

/// Tag for the Index constructor that uses the caller's View without a copy.
struct BorrowData
{
  explicit BorrowData() = default;
};
inline constexpr BorrowData borrow_data{};

/// A database prepared for repeated searches (like FAISS's IndexFlat or cuVS's brute-force
/// index): the pass over its rows that every search needs (centre, row norms, finiteness and
/// range checks, the integer path's norms) runs once, in the constructor. Each search then
/// reads the database once. Results are those of fastknn::search with the same arguments.
///
/// The data rule: `Index(space, view, metric)` copies the rows into memory of its own, so the
/// caller may change or free its View afterwards and every answer is that of the rows as they
/// were at construction (never a mix of old norms and new rows). `Index(space, view, metric,
/// fastknn::borrow_data)` uses the View itself, with no copy: the caller must not change its
/// rows while the index lives (fastknn::search, and wrappers that own their data, use it).
template <class ExecSpace, class DatabaseView>
requires detail::is_space_v<ExecSpace>
class Index
{
public:
  using value_type = std::remove_const_t<typename DatabaseView::value_type>;
  using memory_space = typename ExecSpace::memory_space;

  /// Copies the rows (in the View's memory space; a LayoutStride View is copied to LayoutRight).
  Index(ExecSpace const &space, DatabaseView const &database, Metric metric = Metric::L2Squared)
      : _metric(metric)
  {
    detail::check_view<ExecSpace, DatabaseView>();
    detail::check_database_shape(database.extent(0), database.extent(1));
    Kokkos::Profiling::ScopedRegion region("fastknn::Index");
    _owned = Owned(Kokkos::view_alloc(space, Kokkos::WithoutInitializing, "fastknn::Index::rows"),
                   database.extent(0), database.extent(1));
    Kokkos::deep_copy(space, _owned, database);
    _database = _owned;
    _summary = detail::summarise(space, _database, metric);
  }

  /// Uses the caller's View as it is: its rows must not change while the index lives.
  Index(ExecSpace const &space, DatabaseView const &database, Metric metric, BorrowData)
      : _database(database), _metric(metric)
  {
    detail::check_view<ExecSpace, DatabaseView>();
    detail::check_database_shape(database.extent(0), database.extent(1));
    Kokkos::Profiling::ScopedRegion region("fastknn::Index");
    _summary = detail::summarise(space, database, metric);
  }

  /// k nearest neighbours of each query row, as fastknn::search. options.metric must be the
  /// index's metric (the overload without options uses it).
  template <class QueryView>
  Neighbors<memory_space, value_type> search(ExecSpace const &space, QueryView const &queries,
                                             int k, SearchOptions const &options) const
  {
    detail::check_view<ExecSpace, QueryView>();
    static_assert(std::is_same_v<value_type, std::remove_const_t<typename QueryView::value_type>>,
                  "fastknn::Index::search: the queries must have the database's value type");
    detail::require(options.metric == _metric,
                    "this index was built for metric " + std::string(metric_name(_metric)) +
                        " but the search asks for " + std::string(metric_name(options.metric)) +
                        "; build an Index with that metric");
    Kokkos::Profiling::ScopedRegion region("fastknn::Index::search");
    detail::Plan const plan =
        detail::plan<ExecSpace, value_type>(space, _database.extent(0), queries.extent(0),
                                            _database.extent(1), queries.extent(1), k, options);
    return detail::planned_search(plan,
                                  [&] { return search_planned(space, queries, plan, options); });
  }

  /// The search with a given tile plan (from detail::make_plan, possibly altered): tests use it
  /// to force tile shapes and code paths. options.metric must be the index's metric.
  template <class QueryView>
  Neighbors<memory_space, value_type>
  search_planned(ExecSpace const &space, QueryView const &queries, detail::Plan const &plan,
                 SearchOptions const &options) const
  {
    detail::require(options.metric == _metric, "the plan's options ask for metric " +
                                                   std::string(metric_name(options.metric)) +
                                                   " but this index was built for " +
                                                   std::string(metric_name(_metric)));
    return detail::search(space, _database, _summary, queries, plan, options);
  }
  template <class QueryView>
  Neighbors<memory_space, value_type> search(ExecSpace const &space, QueryView const &queries,
                                             int k) const
  {
    SearchOptions options;
    options.metric = _metric;
    return search(space, queries, k, options);
  }

  Metric metric() const { return _metric; }
  std::size_t size() const { return _database.extent(0); }
  std::size_t dimension() const { return _database.extent(1); }
  DatabaseView const &database() const { return _database; }

private:
  using OwnedLayout =
      std::conditional_t<std::is_same_v<typename DatabaseView::array_layout, Kokkos::LayoutStride>,
                         Kokkos::LayoutRight, typename DatabaseView::array_layout>;
  using Owned = Kokkos::View<value_type **, OwnedLayout, typename DatabaseView::memory_space>;
  Owned _owned; // the copy the index searches (empty when borrowed)
  DatabaseView _database;
  Metric _metric;
  detail::DatabaseSummary<value_type, memory_space> _summary;
};

} // namespace fastknn
