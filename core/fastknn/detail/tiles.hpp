#pragma once
/// \file fastknn/detail/tiles.hpp
/// The tiles of one search: the Views every tile reuses, how the database tiles split into
/// chunk launches, and the packing of a tile's rows.

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <limits>
#include <string>
#include <type_traits>

#include <fastknn/detail/candidate_buffer.hpp>
#include <fastknn/detail/pack.hpp>
#include <fastknn/detail/plan.hpp>
#include <fastknn/detail/rerank.hpp>
#include <fastknn/detail/summary.hpp>

namespace fastknn::detail
{

/// Every View the tiles of a search use, allocated once per search (sized by the plan).
template <class P, class T, class MS>
struct TileWorkspace
{
  Kokkos::View<typename P::x_type *, MS> packed_x;
  Kokkos::View<typename P::q_type *, MS> packed_q;
  CandidateLists<T, MS> lists;
  RerankState<MS> state;
  // The re-scoring by database row: per database row its count (zero between passes) and the
  // start of its list in `order`.
  Kokkos::View<int *, MS> row_fill, row_start, order;

  template <class ExecSpace>
  TileWorkspace(ExecSpace const &space, Plan const &plan, std::size_t dp)
  {
    auto alloc = [&](char const *label)
    { return Kokkos::view_alloc(space, Kokkos::WithoutInitializing, std::string(label)); };
    auto zeroed = [&](char const *label) { return Kokkos::view_alloc(space, std::string(label)); };
    std::size_t const n = plan.n, kept = std::size_t(plan.kept);
    packed_x = decltype(packed_x)(alloc("fastknn::search::packed_database"),
                                  plan.stream ? 0 : plan.db_tile * dp);
    packed_q = decltype(packed_q)(alloc("fastknn::search::packed_queries"), plan.query_tile * dp);
    std::size_t const buffers = plan.query_tile * std::size_t(plan.segments);
    std::size_t const width = candidate_buffer_width(plan.kept);
    lists.cand_val =
        decltype(lists.cand_val)(alloc("fastknn::search::candidate_values"), buffers, width);
    lists.cand_idx =
        decltype(lists.cand_idx)(alloc("fastknn::search::candidate_indices"), buffers, width);
    lists.cand_count =
        decltype(lists.cand_count)(alloc("fastknn::search::candidate_count"), buffers);
    lists.cand_threshold =
        decltype(lists.cand_threshold)(alloc("fastknn::search::candidate_threshold"), buffers);
    state.redo = decltype(state.redo)(zeroed("fastknn::search::redo"), plan.query_tile);
    state.nonfinite = decltype(state.nonfinite)(zeroed("fastknn::search::nonfinite"));
    std::size_t const row_lists = plan.rerank_tile > 0 ? n : 0;
    state.marked = decltype(state.marked)(alloc("fastknn::search::rerank_marked"),
                                          row_lists > 0 ? plan.query_tile : 0, kept);
    state.marked_count = decltype(state.marked_count)(alloc("fastknn::search::rerank_marked_count"),
                                                      plan.query_tile);
    state.a_kept =
        decltype(state.a_kept)(alloc("fastknn::search::rerank_largest_kept"), plan.query_tile);
    row_fill = decltype(row_fill)(zeroed("fastknn::search::rerank_row_fill"), row_lists);
    row_start = decltype(row_start)(alloc("fastknn::search::rerank_row_start"),
                                    row_lists > 0 ? row_lists + 1 : 0);
    order = decltype(order)(alloc("fastknn::search::rerank_order"), plan.rerank_tile * kept);
  }
};

/// How the database tiles split into chunk launches. The tile's chunks are split into
/// `segments` runs; each launch does one chunk of every run, or all of them when streaming.
struct TileSchedule
{
  std::size_t n, db_tile, launch;
  std::size_t segments;
  bool stream;

  std::size_t tile_rows_at(std::size_t x0) const { return x0 + db_tile <= n ? db_tile : n - x0; }
  /// Chunks of a tile each run covers.
  std::size_t chunks_per_run(std::size_t tile_rows) const
  {
    return ((tile_rows + launch - 1) / launch + segments - 1) / segments;
  }
  std::size_t launches_in(std::size_t tile_rows) const
  {
    return stream ? 1 : chunks_per_run(tile_rows);
  }
  std::size_t launches_per_query_tile() const
  {
    std::size_t total = 0;
    for (std::size_t x0 = 0; x0 < n; x0 += db_tile)
      total += launches_in(tile_rows_at(x0));
    return total;
  }
};

/// How a pre-selection converts database values as it packs them (P's shift).
template <class P, class T, class MS>
auto database_shift(Prepared<T, MS> const &prep)
    -> std::conditional_t<P::exact, ByteShift<typename P::x_type>, CentreShift<T, MS>>
{
  if constexpr (P::exact)
    return ByteShift<typename P::x_type>{prep.lowest + 128};
  else
    return CentreShift<T, MS>{prep.centre};
}

/// Packs `rows` rows of `data` from `first` in blocks of B (`padded` rows in all) for the
/// pre-selection P: for the integer path, queries as q - lo in [0, 255] and database rows as
/// x - lo - 128 in [-128, 127]; for floats, both minus the centre.
template <int B, bool IsDatabase, class P, class ExecSpace, class V, class T, class MS, class Out>
void pack_for(ExecSpace const &space, char const *label, V const &data, std::size_t first,
              std::size_t rows, std::size_t padded, std::size_t d, Prepared<T, MS> const &prep,
              Kokkos::View<Out *, MS> const &packed)
{
  if constexpr (P::exact)
  {
    double const offset = IsDatabase ? prep.lowest + 128 : prep.lowest;
    pack_rows<B, P::group>(space, label, data, first, rows, padded, d, ByteShift<Out>{offset},
                           packed);
  }
  else
    pack_rows<B, P::group>(space, label, data, first, rows, padded, d,
                           CentreShift<T, MS>{prep.centre}, packed);
}

/// Below this the integer path's T scores are the exact values (no re-scoring needed); minus
/// infinity for the float path.
template <class P, class T>
double exact_scores_below()
{
  if constexpr (P::exact)
    return double(std::size_t(1) << (std::numeric_limits<T>::digits < 53
                                         ? std::numeric_limits<T>::digits
                                         : 53));
  else
    return -std::numeric_limits<double>::infinity();
}

} // namespace fastknn::detail
