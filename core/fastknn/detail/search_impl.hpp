#pragma once
/// \file fastknn/detail/search_impl.hpp
/// From validated Views to a result: the plan, the query pass and checks, the choice between
/// the integer and the float pre-selection, and the pipeline. fastknn::Index calls it.

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <fastknn/backends/device_memory.hpp>
#include <fastknn/backends/tile_traits.hpp>
#include <fastknn/detail/exact_only.hpp>
#include <fastknn/detail/pipeline.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/detail/row_pass.hpp>
#include <fastknn/detail/scores.hpp>
#include <fastknn/detail/summary.hpp>
#include <fastknn/error.hpp>
#include <fastknn/options.hpp>

// The error bound that proves each result exact assumes IEEE arithmetic as written.
#if defined(__FAST_MATH__) || defined(__USE_FAST_MATH__)
#error                                                                                             \
    "fastknn needs IEEE floating-point semantics: compile without -ffast-math / --use_fast_math (its exactness proof and input checks rely on them)"
#endif

namespace fastknn::detail
{

/// The exact-only metrics' own refusals: Minkowski's p and powers that overflow double; Dice
/// and Sokal-Sneath between two all-false (all-zero) rows, where they are 0 / 0.
inline void check_exact_only(SearchOptions const &opt, RowStats const &xs, RowStats const &qs,
                             double biggest, std::size_t d)
{
  if (opt.metric == Metric::Minkowski)
  {
    double const p = opt.minkowski_p;
    require(p > 0 && p < Kokkos::Experimental::infinity_v<double>,
            "minkowski_p = " + std::to_string(p) +
                " is not a finite number > 0; use Metric::Chebyshev for p = infinity");
    // The exact score's sum of p-th powers must stay finite in double: (2 max|v|)^p d < 2^1000.
    double const widest = 2 * biggest;
    require(!(widest > 0) || p * Kokkos::log2(widest) + Kokkos::log2(double(d)) < 1000,
            "input values up to " + std::to_string(biggest) + " raised to p = " +
                std::to_string(p) + " overflow double; scale the data down or lower p");
  }
  if (opt.metric == Metric::Dice || opt.metric == Metric::SokalSneath)
    require(!(xs.min_norm2 == 0 && qs.min_norm2 == 0),
            std::string(metric_name(opt.metric)) +
                " is undefined (0 / 0) between two all-zero rows, and both the database and "
                "the queries have one; remove the zero rows or use jaccard");
}

/// Refuses inputs the search cannot answer exactly: non-finite values, values whose fast score
/// would overflow T, zero rows for cosine.
template <Metric M, class T>
void check_inputs(RowStats const &xs, RowStats const &qs, std::size_t d, SearchOptions const &opt)
{
  // The pass that computes the norms finds non-finite values whatever check_finite says, so
  // they are refused either way (a NaN row would otherwise vanish from every result: its scores
  // never compare); check_finite = false only leaves out which row it is.
  if (opt.check_finite)
  {
    require(xs.first_bad < 0, "database row " + std::to_string(xs.first_bad) +
                                  " contains NaN or Inf; clean the data");
    require(qs.first_bad < 0,
            "query row " + std::to_string(qs.first_bad) + " contains NaN or Inf; clean the data");
  }
  require(xs.first_bad < 0 && qs.first_bad < 0,
          "some distances are NaN or Inf (non-finite input with check_finite = false); clean the "
          "data");
  // The fast score must not overflow T (squares for dot products, sums for L1): refuse such
  // inputs rather than return a wrong answer.
  double const t_max = double(Kokkos::Experimental::finite_max_v<T>);
  double const limit =
      uses_dot(M) ? Kokkos::sqrt(t_max / (64.0 * double(d))) : t_max / (4.0 * double(d));
  double const biggest = xs.max_abs > qs.max_abs ? xs.max_abs : qs.max_abs;
  require(!(biggest > limit),
          "input values up to " + std::to_string(biggest) + " exceed " + std::to_string(limit) +
              ", where this metric's accumulation overflows in this precision; scale the data "
              "down (or pass double Views)");
  if constexpr (exact_only(M)) // the family's one instantiation: the metric is opt.metric
    check_exact_only(opt, xs, qs, biggest, d);
  if constexpr (M == Metric::Cosine)
  {
    require(xs.min_norm2 > 0, "a database row is all zeros: the cosine similarity is undefined "
                              "for it; remove zero rows or use the inner product");
    require(qs.min_norm2 > 0, "a query row is all zeros: the cosine similarity is undefined "
                              "for it; remove zero rows or use the inner product");
  }
}

/// One search of a summarised database: the query pass and checks, then the pipeline with the
/// integer or the float pre-selection.
template <Metric M, class ExecSpace, class XV, class QV>
Neighbors<typename ExecSpace::memory_space, std::remove_const_t<typename XV::value_type>>
search_impl(ExecSpace const &space, XV const &database,
            DatabaseSummary<std::remove_const_t<typename XV::value_type>,
                            typename ExecSpace::memory_space> const &summary,
            QV const &queries, Plan const &plan, SearchOptions const &opt)
{
  using T = std::remove_const_t<typename XV::value_type>;
  using MS = typename ExecSpace::memory_space;
  using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::size_t>>;
  auto alloc = [&](char const *label)
  { return Kokkos::view_alloc(space, Kokkos::WithoutInitializing, std::string(label)); };

  std::size_t const n = plan.n, q = plan.q, d = plan.d;
  int const k = plan.k;

  Prepared<T, MS> prep;
  prep.centre = summary.centre;
  prep.x_aux = summary.aux;
  prep.q_aux = Kokkos::View<T *, MS>(alloc("fastknn::search::query_norms"), q);
  RowStats const xs = summary.stats;
  RowStats qs{};
  Kokkos::parallel_reduce("fastknn::search::check_queries", Range(space, 0, q),
                          RowPass<M, QV, T>{queries, prep.centre, prep.q_aux, d}, qs);
  check_inputs<M, T>(xs, qs, d, opt);
  prep.x_norm_max = Kokkos::sqrt(xs.max_norm2);
  prep.x_inv_norm_max = 1.0 / Kokkos::sqrt(xs.min_norm2);
  prep.lowest = Kokkos::min(xs.min_val, qs.min_val);
  double const highest = Kokkos::max(xs.max_val, qs.max_val);

  Neighbors<MS, T> result{
      Kokkos::View<index_type **, Kokkos::LayoutRight, MS>(alloc("fastknn::search::indices"), q, k),
      Kokkos::View<T **, Kokkos::LayoutRight, MS>(alloc("fastknn::search::distances"), q, k)};

  // Integer data spanning at most 256 values (images, byte-quantised vectors) is scored
  // exactly with byte dot products where the backend has an instruction for them.
  using Int8 = Int8Scores<T, ExecSpace>;
  bool const integer_path = opt.integer_preselection && qs.integral &&
                            integer_eligible<M, ExecSpace>(xs, prep.lowest, highest, d);
  if (integer_path)
  {
    // The database's integer norms are relative to its own smallest value; queries reaching
    // lower need them relative to theirs.
    if (summary.int_norms.extent(0) == n && summary.stats.min_val == prep.lowest)
      prep.x_int = summary.int_norms;
    else
    {
      prep.x_int =
          Kokkos::View<std::int32_t *, MS>(alloc("fastknn::search::database_integer_norms"), n);
      integer_norms(space, database, prep.lowest, 0, prep.x_int);
    }
  }
  std::size_t packs = 0, rescored = 0;
  std::size_t fallbacks = 0;
  if constexpr (exact_only(M))
    run_exact_scan<M>(space, database, queries, plan, opt, result);
  else
  {
    // The integer pipeline is instantiated only where it can run (L2 metrics, a space with the
    // instruction): compile time is spent on paths that run.
    if constexpr (uses_centring(M) && integer_path_enabled<ExecSpace>)
      if (integer_path)
        fallbacks =
            run_tiles<M, Int8>(space, database, queries, plan, opt, prep, result, packs, rescored);
    if (!integer_path)
      fallbacks = run_tiles<M, FloatScores<T>>(space, database, queries, plan, opt, prep, result,
                                               packs, rescored);
  }
  if (opt.stats)
  {
    opt.stats->workspace_bytes = plan.workspace;
    opt.stats->query_tiles = (q + plan.query_tile - 1) / plan.query_tile;
    opt.stats->database_tiles = packs;
    opt.stats->chunk_rows = plan.chunk;
    opt.stats->kept = plan.kept;
    opt.stats->exact_fallbacks = fallbacks;
    opt.stats->integer_preselection = integer_path;
    opt.stats->segments = plan.segments;
    opt.stats->streamed = plan.stream;
    opt.stats->rescored = rescored;
    using Traits = backends::TileTraits<ExecSpace>;
    opt.stats->query_block = Traits::query_block;
    opt.stats->database_block = Traits::database_block;
    opt.stats->isa = Traits::isa;
  }
  return result;
}

template <class ExecSpace>
constexpr bool is_space_v = Kokkos::is_execution_space<ExecSpace>::value;

/// Compile-time checks on a database or query View.
template <class ExecSpace, class V>
constexpr void check_view()
{
  using T = std::remove_const_t<typename V::value_type>;
  static_assert(Kokkos::is_view<V>::value, "fastknn: database and queries must be Kokkos::Views");
  static_assert(V::rank() == 2,
                "fastknn: database and queries must be rank-2 Views (rows x dimension)");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "fastknn: values must be float or double");
  static_assert(Kokkos::SpaceAccessibility<ExecSpace, typename V::memory_space>::accessible,
                "fastknn: database and queries must be accessible from the execution space");
}

/// Calls f.template operator()<M>() for the run-time metric (exact_only_family for every
/// exact-only metric).
template <class F>
decltype(auto) with_metric(Metric metric, F &&f)
{
  if (exact_only(metric)) // one instantiation for all of them (metric_ops.hpp)
    return f.template operator()<exact_only_family>();
  switch (metric)
  {
  case Metric::L2Squared:
    return f.template operator()<Metric::L2Squared>();
  case Metric::L2:
    return f.template operator()<Metric::L2>();
  case Metric::L1:
    return f.template operator()<Metric::L1>();
  case Metric::InnerProduct:
    return f.template operator()<Metric::InnerProduct>();
  case Metric::Cosine:
    return f.template operator()<Metric::Cosine>();
  default:
    break;
  }
  throw Error("unknown metric value " + std::to_string(int(metric)));
}

/// Validates the arguments and plans the tiles for this space's traits.
template <class ExecSpace, class T>
Plan plan_for(ExecSpace const &space, std::size_t n, std::size_t q, std::size_t d,
              std::size_t d_queries, int k, SearchOptions const &options)
{
  using Traits = backends::TileTraits<ExecSpace>;
  // two teams per thread slot keep the space busy (and balanced)
  std::size_t const teams = std::max<std::size_t>(1, 2 * std::size_t(space.concurrency()) /
                                                         std::size_t(Traits::team_size));
  TeamShape shape = team_shape<Traits>(teams);
  // What this Kokkos allows a team of the space (the traits' figure is the design's; a build
  // or device with less wins).
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  shape.team_scratch_limit = std::min<std::size_t>(
      shape.team_scratch_limit, std::size_t(Policy::scratch_size_max(Traits::scratch_level)));
  // On a device, a default budget grows to what the device has free (backends/device_memory.hpp).
  SearchOptions budgeted = options;
  budgeted.workspace_bytes =
      workspace_budget(options.workspace_bytes, backends::free_device_bytes(space));
  return make_plan(n, q, d, d_queries, k, budgeted, sizeof(T), shape);
}

/// The Error for a failed allocation of a search's workspace or outputs: what failed and what to
/// lower.
inline Error out_of_memory(Plan const &plan, char const *what)
{
  return Error(std::string("out of memory (") + what + ") with a workspace of " +
               std::to_string(plan.workspace) +
               " bytes plus the Q x k outputs; lower SearchOptions::workspace_bytes or search the "
               "queries in smaller batches");
}

/// Runs `run()` (the search with `plan`), turning a failed allocation into an Error that says what
/// to do.
template <class Run>
auto planned_search(Plan const &plan, Run &&run)
{
  try
  {
    return run();
  }
  catch (std::bad_alloc const &e) // Kokkos 4: a bad_alloc naming the View
  {
    throw out_of_memory(plan, e.what());
  }
  catch (std::runtime_error const &e)
  {
    // Kokkos 5 reports it as Kokkos::Experimental::BadAlloc, a runtime_error ("... memory space
    // failed to allocate ..."); anything else goes on as it was.
    if (std::string_view(e.what()).find("failed to allocate") == std::string_view::npos)
      throw;
    throw out_of_memory(plan, e.what());
  }
}

} // namespace fastknn::detail
