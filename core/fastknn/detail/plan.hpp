#pragma once
/// \file fastknn/detail/plan.hpp
/// Argument validation and tile sizing from the workspace budget (host only, no Kokkos calls).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include <fastknn/backends/block_tile.hpp>
#include <fastknn/error.hpp>
#include <fastknn/options.hpp>

namespace fastknn::detail
{

inline std::size_t round_up(std::size_t x, std::size_t m)
{
  return (x + m - 1) / m * m;
}
inline std::size_t round_down(std::size_t x, std::size_t m)
{
  return x / m * m;
}

/// a*b, or a fastknn::Error naming what overflowed.
inline std::size_t checked_mul(std::size_t a, std::size_t b, char const *what)
{
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
    throw Error(std::string(what) + " overflows the size type (" + std::to_string(a) + " x " +
                std::to_string(b) + "); split the input into smaller batches");
  return a * b;
}

/// Extra candidates kept beyond k so that the exact re-ranking of the float pre-selection can
/// prove it lost nothing (see search.hpp).
inline int candidate_pad(int k)
{
  return std::max(32, k / 4);
}

/// Capacity of a query's candidate buffer in units of `kept`: a full buffer is cut back to the
/// kept best, so each cut costs O(capacity) and comes every (factor - 1) x kept appends.
inline constexpr int candidate_buffer_factor = 2;

/// The count at which a buffer keeping `kept` candidates is cut: candidate_buffer_factor x kept,
/// computed in 64 bits and capped so that the count (an int) with a register block's spare
/// slots never overflows; above kept whenever make_plan accepts the search (kept < 2^31 - 65).
KOKKOS_INLINE_FUNCTION constexpr int candidate_capacity(int kept)
{
  constexpr long long top = 2147483647LL - 64;
  long long const c = static_cast<long long>(candidate_buffer_factor) * kept;
  return static_cast<int>(c < top ? c : top);
}

/// Slots of a query's candidate buffer: the capacity, plus room for a masked append of a whole
/// register-block row (at most 64 pairs) that passes it before the cut.
inline std::size_t candidate_buffer_width(int kept)
{
  return std::size_t(candidate_capacity(kept)) + 64;
}

/// Team scratch the cooperative selection (detail/team_select.hpp) takes besides the scores:
/// a 256-bin histogram and one staged (value, index) pair per thread, with room for the
/// scratch allocator's alignment of each of the three.
inline std::size_t team_select_scratch_bytes(int team_size, std::size_t value_size)
{
  return 256 * sizeof(int) + std::size_t(team_size) * (value_size + sizeof(index_type)) + 3 * 64;
}

/// Team scratch of a pre-selection launch: the scores of `queries` queries against `rows`
/// rows, a count per query, and the selection's.
inline std::size_t preselect_scratch_bytes(std::size_t queries, std::size_t rows, int team_size,
                                           std::size_t value_size)
{
  return queries * rows * value_size + 64 + queries * sizeof(int) + 64 +
         team_select_scratch_bytes(team_size, value_size);
}

/// Team scratch of a block-tiled pre-selection launch (backends/block_tile.hpp): the staging
/// area (two depth slices of the query block and the column tile, or a slab's scores), two
/// counts per query, and the selection's. The same for every chunk length.
inline std::size_t block_tile_scratch_bytes(int mr, int nr, std::size_t slice_row_bytes,
                                            int team_size, std::size_t value_size)
{
  return backends::block_area_bytes(mr, nr, slice_row_bytes, value_size) + 64 +
         2 * std::size_t(mr) * sizeof(int) + 64 + team_select_scratch_bytes(team_size, value_size);
}

/// Everything the search needs to know about sizes, decided once on the host.
struct Plan
{
  std::size_t n = 0, q = 0, d = 0; // database rows, query rows, dimension
  int k = 0;
  int kept = 0;                // candidates kept per query in the pre-selection (>= k)
  std::size_t n_eligible = 0;  // n, or n-1 with exclude_self
  int mr = 0, nr = 0;          // register block shape
  std::size_t chunk = 0;       // database rows one pre-selection launch sweeps (multiple of nr)
  std::size_t db_tile = 0;     // database rows packed at once (multiple of chunk)
  std::size_t query_tile = 0;  // queries processed at once (multiple of mr)
  int segments = 1;            // database runs with their own candidate buffers (few queries)
  bool stream = false;         // few queries: teams pack their chunks themselves (no packed copy)
  std::size_t rerank_tile = 0; // queries re-scored by database row at once; 0: each on its own
  std::size_t workspace = 0;   // bytes the plan allocates
  // Team scratch of the pre-selection's launches (at the traits' scratch level): the scores of
  // a query block against a chunk and the selection's; and of the exact scan.
  std::size_t preselect_scratch = 0, exact_scan_scratch = 0;
};

/// Rows each thread of the exact scan scores per step (the team's block of keys in scratch).
inline constexpr int exact_scan_rows_per_thread = 4;

/// How the execution space runs the pre-selection, from its tile traits (make_plan's inputs).
struct TeamShape
{
  int mr = 1, nr = 1;                 // register block
  std::size_t chunk_bytes = 0;        // packed database bytes one launch sweeps
  std::size_t max_chunk_rows = 0;     // at most this many rows per chunk
  int team_size = 1;                  // threads per team
  int team_query_blocks = 1;          // query blocks a team scores together
  std::size_t team_scratch_limit = 0; // the most team scratch one team may take
  std::size_t teams_wanted = 1;       // teams that keep the space busy
  std::size_t stream_query_bytes = 0; // see backends::TileTraits
  std::size_t rerank_query_bytes = 0; // see backends::TileTraits
  bool integer_path = false;          // the exact 8-bit pre-selection can run (detail::tile_shape)
  // Block-tiled pre-selection (the GPU's): bytes per query and per database row of a staged
  // depth slice; 0: scores of the whole chunk in scratch (preselect_scratch_bytes).
  std::size_t stage_row_bytes = 0;
};

/// The shape a tile-traits type (backends/tile_traits.hpp) describes.
template <class Traits>
TeamShape team_shape(std::size_t teams_wanted)
{
  return {.mr = Traits::query_block,
          .nr = Traits::database_block,
          .chunk_bytes = Traits::chunk_bytes,
          .max_chunk_rows = Traits::max_chunk_rows,
          .team_size = Traits::team_size,
          .team_query_blocks = Traits::team_query_blocks,
          .team_scratch_limit = Traits::team_scratch_bytes,
          .teams_wanted = teams_wanted,
          .stream_query_bytes = Traits::stream_query_bytes,
          .rerank_query_bytes = Traits::rerank_query_bytes,
          .stage_row_bytes = Traits::stage_row_bytes};
}

/// The workspace bound a search plans with: the caller's, or, left at the default on a device
/// with `free_device` bytes free (0: unknown or host memory), half of them (at least the default).
inline std::size_t workspace_budget(std::size_t requested, std::size_t free_device)
{
  if (requested != SearchOptions::default_workspace_bytes || free_device == 0)
    return requested;
  return std::max(requested, free_device / 2);
}

/// Validates the database's shape (what an Index needs before any query arrives).
inline void check_database_shape(std::size_t n, std::size_t d)
{
  require(n > 0, "the database is empty (0 rows); pass at least one point");
  require(d > 0, "the dimension is 0; points need at least one coordinate");
  auto const max_index = static_cast<std::size_t>(std::numeric_limits<index_type>::max());
  require(n < max_index, "the database has " + std::to_string(n) +
                             " rows, more than the 32-bit index type holds; split it into "
                             "parts below 2^31-1 rows and merge the results");
  require(d < (std::size_t(1) << 31), "dimension " + std::to_string(d) + " is too large");
  checked_mul(n, d, "database size N x D");
}

/// Validates the arguments of a search (shapes, k, exclude_self, sizes that must not overflow).
/// Throws fastknn::Error naming the argument and the fix.
inline void check_search_arguments(std::size_t n, std::size_t q, std::size_t d,
                                   std::size_t d_queries, long long k, SearchOptions const &opt)
{
  check_database_shape(n, d);
  require(q > 0, "the query set is empty (0 rows); pass at least one query");
  require(d == d_queries, "dimension mismatch: the database has " + std::to_string(d) +
                              " columns but the queries have " + std::to_string(d_queries) +
                              "; both must have the same number of columns");
  require(k >= 1, "k = " + std::to_string(k) + " is invalid; k must be at least 1");
  auto const max_index = static_cast<std::size_t>(std::numeric_limits<index_type>::max());
  require(q < max_index, "the query set has " + std::to_string(q) +
                             " rows, more than the 32-bit index type holds; query in batches");
  if (opt.exclude_self)
  {
    require(q == n, "exclude_self needs the queries to be the database (Q == N), got Q = " +
                        std::to_string(q) + " and N = " + std::to_string(n));
    require(static_cast<std::size_t>(k) <= n - 1,
            "k = " + std::to_string(k) +
                " with exclude_self needs k <= N-1 = " + std::to_string(n - 1) + "; lower k");
  }
  else
  {
    require(static_cast<std::size_t>(k) <= n,
            "k = " + std::to_string(k) + " is larger than the database (N = " + std::to_string(n) +
                "); use k <= N");
  }
  checked_mul(q, d, "query size Q x D");
  checked_mul(checked_mul(q, static_cast<std::size_t>(k), "output size Q x k"),
              sizeof(double) + sizeof(index_type), "output bytes");
}

/// Team scratch: a launch's team holds its block's scores against the chunk and the selection's
/// histogram and staging; the exact scan a block of keys and the same. Both stay within the
/// space's limit (a GPU block's shared memory) for every type, metric, k and D: the chunk is
/// clamped to it. Returns the queries a team scores together.
inline std::size_t fit_team_scratch(Plan &p, TeamShape const &shape, std::size_t value_size)
{
  std::size_t const select_bytes = team_select_scratch_bytes(shape.team_size, value_size);
  p.exact_scan_scratch =
      std::size_t(shape.team_size) * exact_scan_rows_per_thread * value_size + 64 + select_bytes;
  std::size_t const least_scores =
      shape.stage_row_bytes > 0 ? 0 : std::size_t(p.mr) * p.nr * value_size;
  require(p.exact_scan_scratch + least_scores <= shape.team_scratch_limit,
          "the execution space's team scratch (" + std::to_string(shape.team_scratch_limit) +
              " bytes) is too small for teams of " + std::to_string(shape.team_size) +
              " threads; report this with the backend's name");
  std::size_t const queries = std::size_t(p.mr) * std::size_t(shape.team_query_blocks);
  if (shape.stage_row_bytes > 0)
  {
    // Block-tiled: the scratch does not grow with the chunk.
    p.preselect_scratch = block_tile_scratch_bytes(p.mr, p.nr, shape.stage_row_bytes,
                                                   shape.team_size, value_size);
    require(p.preselect_scratch <= shape.team_scratch_limit,
            "the execution space's team scratch (" + std::to_string(shape.team_scratch_limit) +
                " bytes) is too small for a block tile of " + std::to_string(p.mr) + " x " +
                std::to_string(p.nr) + "; report this with the backend's name");
    return queries;
  }
  std::size_t const fixed = preselect_scratch_bytes(queries, 0, shape.team_size, value_size);
  require(fixed + queries * p.nr * value_size <= shape.team_scratch_limit,
          "the execution space's team scratch (" + std::to_string(shape.team_scratch_limit) +
              " bytes) is too small for " + std::to_string(queries) +
              " queries' scores; report this with the backend's name");
  std::size_t const score_rows = (shape.team_scratch_limit - fixed) / (queries * value_size);
  p.chunk = std::min(p.chunk, std::max<std::size_t>(p.nr, round_down(score_rows, p.nr)));
  return queries;
}

/// Candidates a query keeps in the pre-selection: k and a pad, at most the eligible rows. A
/// buffer must hold candidate_buffer_factor (2) times what it keeps, its int count never
/// wrapping: the re-ranking uses the buffer's second half as workspace (Finish's sort of the k
/// best, the team Prepare's list of slots to re-score), which a capped capacity would overrun
/// into the next query's buffer. Refused otherwise.
inline int kept_candidates(std::size_t n_eligible, long long k)
{
  std::size_t const want = std::min<std::size_t>(
      n_eligible, static_cast<std::size_t>(k) + std::size_t(candidate_pad(int(std::min<long long>(
                                                    k, std::numeric_limits<int>::max())))));
  constexpr std::size_t most = (std::size_t(std::numeric_limits<int>::max()) - 64) /
                               std::size_t(candidate_buffer_factor);
  require(want <= most, "k = " + std::to_string(k) + " keeps " + std::to_string(want) +
                            " candidates per query, more than a candidate buffer holds twice (" +
                            std::to_string(most) + "); use a smaller k or split the database");
  int const kept = static_cast<int>(want);
  return kept;
}

/// Validates the arguments and sizes the tiles so the workspace stays within the budget.
/// Throws fastknn::Error naming the argument and the fix.
inline Plan make_plan(std::size_t n, std::size_t q, std::size_t d, std::size_t d_queries,
                      long long k, SearchOptions const &opt, std::size_t value_size,
                      TeamShape const &shape)
{
  check_search_arguments(n, q, d, d_queries, k, opt);
  int const mr = shape.mr, nr = shape.nr;
  std::size_t const teams_wanted = shape.teams_wanted;
  std::size_t const stream_query_bytes = shape.stream_query_bytes;
  std::size_t const rerank_query_bytes = shape.rerank_query_bytes;
  Plan p;
  p.n = n;
  p.q = q;
  p.d = d;
  p.k = static_cast<int>(k);
  p.n_eligible = opt.exclude_self ? n - 1 : n;
  p.kept = kept_candidates(p.n_eligible, k);
  p.mr = mr;
  p.nr = nr;
  std::size_t const row_bytes = d * value_size;
  p.chunk =
      std::clamp<std::size_t>(round_down(shape.chunk_bytes / row_bytes, nr), nr,
                              std::max<std::size_t>(nr, round_down(shape.max_chunk_rows, nr)));
  p.chunk = std::min(p.chunk, round_up(n, nr));
  std::size_t const team_queries = fit_team_scratch(p, shape, value_size);

  // Fixed part: per-row norms of database and queries, the centring vector, the integer path's
  // database norms, the re-scoring's per-row counts and list starts.
  std::size_t const fixed = (n + q + d) * value_size + (3 * n + 1) * sizeof(int);
  // Per query: packed copy, norm, threshold and count, a buffer of factor x kept candidates,
  // the re-scoring's slots and list entries, its count and the largest kept score.
  std::size_t const per_query = row_bytes + 2 * value_size + sizeof(int) +
                                candidate_buffer_width(p.kept) * (value_size + sizeof(index_type)) +
                                2 * std::size_t(p.kept) * sizeof(int) + sizeof(int) +
                                sizeof(double);
  // Re-scoring by database row pays once a tile's candidates are many next to the rows (each
  // sub-tile costs passes over the per-row counts); its queries should stay in cache meanwhile.
  auto const rerank_tile = [&](Plan const &pl)
  {
    if (std::size_t(pl.kept) * std::min(pl.query_tile, q) * 4 < n)
      return std::size_t(0);
    std::size_t const cached = rerank_query_bytes > 0
                                   ? std::max<std::size_t>(1, rerank_query_bytes / row_bytes)
                                   : pl.query_tile;
    // List entries are int: sub-tile x kept stays below 2^31.
    std::size_t const entries = std::size_t(std::numeric_limits<int>::max()) / std::size_t(pl.kept);
    return std::min({cached, pl.query_tile, entries});
  };
  std::size_t const budget = opt.workspace_bytes;
  // The least that works: one query block and one register block of database rows.
  std::size_t const min_need = fixed + mr * per_query + nr * row_bytes;
  require(budget >= min_need, "workspace budget of " + std::to_string(budget) +
                                  " bytes is too small for one tile (" + std::to_string(min_need) +
                                  " bytes needed for N = " + std::to_string(n) +
                                  ", D = " + std::to_string(d) + ", k = " + std::to_string(k) +
                                  "); raise SearchOptions::workspace_bytes");
  std::size_t const avail = budget - fixed;
  // Room for packed database rows: at most half of what is left, and always enough left for
  // one query block.
  std::size_t db_room = std::min(avail / 2, avail - mr * per_query);
  if (db_room < nr * row_bytes)
    db_room = avail - mr * per_query;
  p.chunk = std::min(p.chunk, round_down(db_room / row_bytes, nr));
  // Pack the whole database once when it fits; otherwise pack tiles of it.
  std::size_t const full_db = round_up(n, p.chunk);
  if (full_db * row_bytes <= db_room)
    p.db_tile = full_db;
  else
    p.db_tile = round_down(db_room / row_bytes, p.chunk);
  std::size_t const left = avail - p.db_tile * row_bytes;
  p.query_tile =
      std::min(round_up(q, mr), std::max<std::size_t>(mr, round_down(left / per_query, mr)));
  p.workspace = fixed + p.db_tile * row_bytes + p.query_tile * per_query;
  // Few queries: split the database into runs, each with its own candidate buffers, so that the
  // execution space is busy (and, when streaming, the queries are reused from cache).
  // Teams one query tile gives (each takes team_query_blocks blocks of mr queries).
  std::size_t const blocks =
      (p.query_tile / mr + shape.team_query_blocks - 1) / std::size_t(shape.team_query_blocks);
  std::size_t const per_segment =
      p.query_tile * (candidate_buffer_width(p.kept) * (value_size + sizeof(index_type)) +
                      value_size + sizeof(int));
  std::size_t const chunks_total = (n + p.chunk - 1) / p.chunk;
  // Streaming pays when the queries are few enough to be swept against each chunk from cache;
  // measured on 2 cores: 10^2 and 10^3 Fashion-MNIST queries 15-40 % faster, 10^4 slower.
  bool const small_queries = p.query_tile * row_bytes <= stream_query_bytes;
  if (stream_query_bytes > 0 && shape.stage_row_bytes == 0 && (blocks < teams_wanted || small_queries) && chunks_total > 1 &&
      p.query_tile >= q)
  {
    // Streaming: no packed copy of the database; each team packs its chunks into its own
    // scratch and runs every query block against them, so the database is read once.
    // Per team: its buffers for every query and its packed chunk.
    std::size_t const per_team = per_segment + p.chunk * row_bytes;
    std::size_t const base = fixed + p.query_tile * per_query - per_segment;
    std::size_t const fit = budget > base ? (budget - base) / per_team : 0;
    std::size_t const s = std::min({teams_wanted, chunks_total, fit, std::size_t(1024)});
    if (s >= 2)
    {
      p.stream = true;
      p.segments = static_cast<int>(s);
      p.db_tile = round_up(n, p.chunk);
      p.workspace = base + s * per_team;
      p.rerank_tile = rerank_tile(p);
      if (shape.stage_row_bytes == 0)
        p.preselect_scratch =
            preselect_scratch_bytes(team_queries, p.chunk, shape.team_size, value_size);
      return p;
    }
  }
  if (blocks < teams_wanted)
  {
    std::size_t const chunks = p.db_tile / p.chunk;
    std::size_t const room = budget > p.workspace ? budget - p.workspace : 0;
    std::size_t const s = std::min(
        {(teams_wanted + blocks - 1) / blocks, chunks, 1 + room / per_segment, std::size_t(1024)});
    p.segments = static_cast<int>(std::max<std::size_t>(1, s));
    p.workspace += (p.segments - 1) * per_segment;
  }
  p.rerank_tile = rerank_tile(p);
  if (shape.stage_row_bytes == 0)
    p.preselect_scratch =
        preselect_scratch_bytes(team_queries, p.chunk, shape.team_size, value_size);
  return p;
}

} // namespace fastknn::detail
