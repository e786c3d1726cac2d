#pragma once
/// \file fastknn/options.hpp
/// Metric names, search options and the result type of fastknn::search.

#include <Kokkos_Core.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fastknn/error.hpp>

namespace fastknn
{

/// Index type of returned neighbours. 32-bit halves the output and selection memory; databases
/// with more than 2^31-1 rows are refused with a fastknn::Error.
using index_type = std::int32_t;

/// The distance or similarity that ranks neighbours.
enum class Metric
{
  L2Squared,    ///< sum (q-x)^2, ascending
  L2,           ///< sqrt(sum (q-x)^2), ascending (scikit-learn's "euclidean")
  L1,           ///< sum |q-x|, ascending (scikit-learn's "manhattan", p=1)
  InnerProduct, ///< sum q*x, descending: distances hold the similarity, best first
  Cosine,       ///< q.x / (|q||x|), descending: distances hold the similarity, best first
  Chebyshev,    ///< max |q-x|, ascending (scikit-learn's "chebyshev", p=inf)
  /// (sum |q-x|^p)^(1/p), ascending, p = SearchOptions::minkowski_p > 0 (0 < p < 1 ranks all
  /// the same, though it is no metric); scikit-learn's "minkowski"
  Minkowski,
  Canberra,   ///< sum |q-x| / (|q|+|x|) over the coordinates where |q|+|x| > 0
  BrayCurtis, ///< sum |q-x| / sum |q+x| (0 where the latter is 0)
  Hamming,    ///< the fraction of coordinates where q != x
  // The boolean metrics (scikit-learn's and SciPy's definitions): a coordinate is true where it
  // is non-zero; with n_tt, n_tf, n_ft, n_ff the counts of (q, x) pairs, neq = n_tf + n_ft and D
  // the dimension:
  Jaccard,        ///< neq / (n_tt + neq) (0 where both rows are all false)
  Dice,           ///< neq / (2 n_tt + neq) (undefined between two all-false rows: refused)
  Kulsinski,      ///< (neq - n_tt + D) / (neq + D)
  Matching,       ///< neq / D
  RogersTanimoto, ///< 2 neq / (D + neq)
  RussellRao,     ///< (D - n_tt) / D
  SokalMichener,  ///< 2 neq / (D + neq) (the same values as RogersTanimoto)
  SokalSneath,    ///< 2 neq / (n_tt + 2 neq) (undefined between two all-false rows: refused)
  Yule            ///< 2 n_tf n_ft / (n_tt n_ff + n_tf n_ft) (0 where n_tf n_ft = 0)
};

/// True when larger values are better (similarities), false for distances.
KOKKOS_INLINE_FUNCTION constexpr bool is_similarity(Metric m)
{
  return m == Metric::InnerProduct || m == Metric::Cosine;
}

/// The metric's name as the command line and scikit-learn spell it.
inline std::string_view metric_name(Metric m)
{
  switch (m)
  {
  case Metric::L2Squared:
    return "sqeuclidean";
  case Metric::L2:
    return "l2";
  case Metric::L1:
    return "l1";
  case Metric::InnerProduct:
    return "ip";
  case Metric::Cosine:
    return "cosine";
  case Metric::Chebyshev:
    return "chebyshev";
  case Metric::Minkowski:
    return "minkowski";
  case Metric::Canberra:
    return "canberra";
  case Metric::BrayCurtis:
    return "braycurtis";
  case Metric::Hamming:
    return "hamming";
  case Metric::Jaccard:
    return "jaccard";
  case Metric::Dice:
    return "dice";
  case Metric::Kulsinski:
    return "kulsinski";
  case Metric::Matching:
    return "matching";
  case Metric::RogersTanimoto:
    return "rogerstanimoto";
  case Metric::RussellRao:
    return "russellrao";
  case Metric::SokalMichener:
    return "sokalmichener";
  case Metric::SokalSneath:
    return "sokalsneath";
  case Metric::Yule:
    return "yule";
  }
  return "?";
}

/// Parses a metric name (l2|euclidean, sqeuclidean|l2sq, l1|manhattan, ip|inner_product, cosine,
/// chebyshev|linf, minkowski, and scikit-learn's names of the others: canberra, braycurtis,
/// hamming, jaccard, dice, kulsinski, matching, rogerstanimoto, russellrao, sokalmichener,
/// sokalsneath, yule).
inline Metric parse_metric(std::string_view s)
{
  if (s == "l2" || s == "euclidean")
    return Metric::L2;
  if (s == "sqeuclidean" || s == "l2sq" || s == "l2squared")
    return Metric::L2Squared;
  if (s == "l1" || s == "manhattan" || s == "cityblock")
    return Metric::L1;
  if (s == "ip" || s == "inner_product" || s == "dot")
    return Metric::InnerProduct;
  if (s == "cosine")
    return Metric::Cosine;
  if (s == "chebyshev" || s == "linf" || s == "infinity")
    return Metric::Chebyshev;
  if (s == "minkowski")
    return Metric::Minkowski;
  for (auto m : {Metric::Canberra, Metric::BrayCurtis, Metric::Hamming, Metric::Jaccard,
                 Metric::Dice, Metric::Kulsinski, Metric::Matching, Metric::RogersTanimoto,
                 Metric::RussellRao, Metric::SokalMichener, Metric::SokalSneath, Metric::Yule})
    if (s == metric_name(m))
      return m;
  throw Error("unknown metric '" + std::string(s) +
              "': use one of l2, sqeuclidean, l1, cosine, ip, chebyshev, minkowski, canberra, "
              "braycurtis, hamming or a boolean metric (jaccard, dice, kulsinski, matching, "
              "rogerstanimoto, russellrao, sokalmichener, sokalsneath, yule)");
}

/// What one search did, filled in when SearchOptions::stats points to it.
struct SearchStats
{
  std::size_t workspace_bytes = 0;   ///< bytes of scratch the plan allocated
  std::size_t query_tiles = 0;       ///< query tiles processed
  std::size_t database_tiles = 0;    ///< times (a tile of) the database was packed
  std::size_t chunk_rows = 0;        ///< database rows per pre-selection launch
  int kept = 0;                      ///< candidates kept per query before the exact re-ranking
  std::size_t exact_fallbacks = 0;   ///< queries redone by an exact scan (no proof from the bound)
  bool integer_preselection = false; ///< the exact 8-bit integer pre-selection was used
  int segments = 1;      ///< database runs scanned in parallel for each query block (small batches)
  bool streamed = false; ///< few queries: the database was packed chunk by chunk in team scratch
  /// Candidates re-scored exactly (in double, by direct differences) over all queries.
  std::size_t rescored = 0;
  /// The kernels' register block (queries x database rows) and the instruction set they were
  /// shaped for ("avx512", "avx2", "generic", "cuda").
  int query_block = 0, database_block = 0;
  char const *isa = "";
};

/// Options of fastknn::search. The defaults suit most uses.
/// A progress callback: any callable taking the fraction done (double). One that returns void
/// only observes; one that returns bool asks the search to go on (true) or to stop (false).
class ProgressCallback
{
public:
  ProgressCallback() = default;
  template <class F>
  requires(std::invocable<F &, double> && !std::same_as<std::remove_cvref_t<F>, ProgressCallback>)
      ProgressCallback(F f) // NOLINT(google-explicit-constructor): assigned from lambdas
  {
    if constexpr (std::is_constructible_v<bool, F const &>)
      if (!static_cast<bool>(f)) // an empty std::function or a null pointer
        return;
    if constexpr (std::is_void_v<std::invoke_result_t<F &, double>>)
      _f = [f = std::move(f)](double x) mutable
      {
        f(x);
        return true;
      };
    else
      _f = [f = std::move(f)](double x) mutable { return static_cast<bool>(f(x)); };
  }
  explicit operator bool() const { return static_cast<bool>(_f); }
  /// Reports `fraction`; returns false when the callback asks to stop.
  bool operator()(double fraction) const { return _f(fraction); }

private:
  std::function<bool(double)> _f;
};

struct SearchOptions
{
  Metric metric = Metric::L2Squared;
  /// Metric::Minkowski's exponent p: finite and > 0 (read for no other metric). p = 1 and p = 2
  /// rank as L1 and L2 do, which are faster (Minkowski scores every pair exactly, see
  /// docs/design.md); p = infinity is Metric::Chebyshev.
  double minkowski_p = 2;
  /// The queries are the database itself: query i never returns database row i (even when
  /// other rows are exact duplicates of it). Requires Q == N and k <= N-1.
  bool exclude_self = false;
  /// Upper bound in bytes on the scratch memory one search allocates besides inputs and outputs.
  /// Left at the default (512 MiB) on a device whose free memory the backend reports (CUDA), the
  /// bound becomes half of that free memory (never less than the default), so that large k and
  /// many queries fill the GPU instead of running in many small tiles; any other value is kept.
  std::size_t workspace_bytes = default_workspace_bytes;
  static constexpr std::size_t default_workspace_bytes = std::size_t(512) << 20;
  /// Name the first row with a NaN/Inf value in the error. Non-finite values are refused either
  /// way (the pass over the data that finds them is one every search needs); false gives a
  /// shorter message and saves nothing, and is kept for existing code.
  bool check_finite = true;
  /// Called on the host with the fraction done (0..1) while a long search runs (after the first
  /// block of work, then at most ~5 times a second). A callback that returns bool stops the
  /// search by returning false: the search throws fastknn::Cancelled within one block of work.
  ProgressCallback progress;
  /// L2 metrics on integer data spanning at most 256 consecutive values (e.g. 8-bit images):
  /// score the pre-selection exactly with byte dot products where the backend has an
  /// instruction for them (AVX512-VNNI). Results are identical either way; false forces the
  /// float pre-selection (for comparisons).
  bool integer_preselection = true;
  /// If set, receives what the search did (tiling, exact fallbacks).
  SearchStats *stats = nullptr;
};

/// Result of a search: row q holds the k neighbours of query q, best first; ties in value keep
/// the smaller database index first.
template <class MemorySpace, class Value = float>
struct Neighbors
{
  Kokkos::View<index_type **, Kokkos::LayoutRight, MemorySpace> indices;
  Kokkos::View<Value **, Kokkos::LayoutRight, MemorySpace> distances;
};

} // namespace fastknn
