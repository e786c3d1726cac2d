#pragma once
/// \file fastknn/classifier.hpp
/// k-nearest-neighbour classification with the semantics of scikit-learn's KNeighborsClassifier
/// (brute force): majority or inverse-distance vote over the exact k nearest training points.

#include <Kokkos_Core.hpp>
#include <Kokkos_Profiling_ScopedRegion.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fastknn/error.hpp>
#include <fastknn/io/matrix.hpp>
#include <fastknn/options.hpp>
#include <fastknn/search.hpp>

namespace fastknn
{

/// How the k neighbours of a query vote, as scikit-learn's `weights` parameter.
enum class Weights
{
  Uniform, ///< one vote per neighbour (majority vote)
  Distance ///< vote 1/d; neighbours at distance exactly 0, when any, take all the weight
};

/// The weighting's name as scikit-learn spells it ("uniform" or "distance").
inline std::string_view weights_name(Weights w)
{
  return w == Weights::Uniform ? "uniform" : "distance";
}

/// Parses "uniform" or "distance"; returns the Weights value or throws fastknn::Error.
inline Weights parse_weights(std::string_view s)
{
  if (s == "uniform")
    return Weights::Uniform;
  if (s == "distance")
    return Weights::Distance;
  throw Error("unknown weights '" + std::string(s) + "': use uniform or distance");
}

/// Options of KNeighborsClassifier. The defaults are scikit-learn's (k = 5, Euclidean, uniform).
struct ClassifierOptions
{
  /// Number of neighbours that vote; 1 <= k <= number of training rows.
  int k = 5;
  /// Distance between points. Cosine votes with the cosine distance 1 - similarity (as
  /// scikit-learn's metric="cosine"); InnerProduct has no distance, so it allows uniform weights
  /// only.
  Metric metric = Metric::L2;
  /// Forwarded to SearchOptions::minkowski_p (Metric::Minkowski's exponent).
  double minkowski_p = 2;
  Weights weights = Weights::Uniform;
  /// Forwarded to SearchOptions::workspace_bytes.
  std::size_t workspace_bytes = SearchOptions{}.workspace_bytes;
  /// Forwarded to SearchOptions::progress: called on the host with the fraction done (0..1);
  /// one returning false stops the search (fastknn::Cancelled).
  ProgressCallback progress;
  /// Forwarded to SearchOptions::stats: what the last search did (null: not reported).
  SearchStats *stats = nullptr;
};

namespace detail
{

/// A Kokkos::View of any type.
template <class V>
concept KokkosView = Kokkos::is_view<V>::value;

/// Returns the sum of a[0..n) added in the order numpy's pairwise summation uses, so that vote
/// totals round exactly as scikit-learn's (np.sum inside weighted_mode and predict_proba).
inline double numpy_pairwise_sum(double const *a, std::size_t n)
{
  if (n < 8)
  {
    double res = 0.;
    for (std::size_t i = 0; i < n; ++i)
      res += a[i];
    return res;
  }
  if (n <= 128)
  {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j)
      r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (std::size_t j = 0; j < 8; ++j)
        r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i)
      res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_pairwise_sum(a, n2) + numpy_pairwise_sum(a + n2, n - n2);
}

/// Returns the vote weight of each of the k neighbours of one query (scikit-learn's
/// _get_weights): 1 for uniform; 1/d for distance, except that when some neighbour lies at
/// distance exactly 0 those neighbours get weight 1 and all others 0. `values` are what search
/// returned: distances, or cosine similarities (turned into 1 - similarity, clamped at 0).
template <class Value>
void vote_weights(Weights weights, Metric metric, Value const *values, int k, double *out)
{
  if (weights == Weights::Uniform)
  {
    std::fill(out, out + k, 1.0);
    return;
  }
  bool any_zero = false;
  for (int j = 0; j < k; ++j)
  {
    double d = double(values[j]);
    if (metric == Metric::Cosine)
      d = std::max(0.0, 1.0 - d);
    out[j] = d;
    any_zero |= d == 0.0;
  }
  for (int j = 0; j < k; ++j)
    out[j] = any_zero ? (out[j] == 0.0 ? 1.0 : 0.0) : 1.0 / out[j];
}

/// Returns the winning class of one query: the label with the largest total weight, ties to the
/// smallest label (scikit-learn's weighted_mode / scipy's mode).
inline std::int32_t vote_winner(std::int32_t const *labels, double const *weights, int k,
                                std::vector<std::int32_t> &distinct, std::vector<double> &masked)
{
  distinct.assign(labels, labels + k);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  masked.resize(std::size_t(k));
  std::int32_t best = distinct.front();
  double best_score = 0; // strict '>' from 0, as weighted_mode: the smallest label wins ties
  for (std::int32_t c : distinct)
  {
    for (int j = 0; j < k; ++j)
      masked[j] = labels[j] == c ? weights[j] : 0.0;
    double const score = numpy_pairwise_sum(masked.data(), masked.size());
    if (score > best_score)
    {
      best_score = score;
      best = c;
    }
  }
  return best;
}

} // namespace detail

/// Exact k-nearest-neighbour classifier with scikit-learn's KNeighborsClassifier semantics.
/// Class labels are the integers 0..C-1 with C = max label + 1 (labels that never occur get
/// probability 0). The training data lives in `ExecSpace`'s memory; the vote runs on the host.
template <class ExecSpace = Kokkos::DefaultExecutionSpace, class Value = float>
class KNeighborsClassifier
{
  static_assert(Kokkos::is_execution_space<ExecSpace>::value,
                "fastknn::KNeighborsClassifier: ExecSpace must be a Kokkos execution space");
  static_assert(std::is_same_v<Value, float> || std::is_same_v<Value, double>,
                "fastknn::KNeighborsClassifier: Value must be float or double");

public:
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = Value;
  /// Rows x dimension, the layout and memory search works on.
  using matrix_view = Kokkos::View<Value const **, Kokkos::LayoutRight, memory_space>;

  /// Returns a classifier with the given options; throws fastknn::Error for invalid options.
  explicit KNeighborsClassifier(ClassifierOptions options = {}, ExecSpace const &space = {})
      : _options(std::move(options)), _space(space)
  {
    detail::require(_options.k >= 1,
                    "k = " + std::to_string(_options.k) + " is invalid; k must be at least 1");
    detail::require(
        !(_options.metric == Metric::InnerProduct && _options.weights == Weights::Distance),
        "weights = distance needs a distance, but metric ip ranks by similarity; use "
        "weights = uniform, or metric cosine or l2");
  }

  /// Stores the training rows (N x D View, shared when already a LayoutRight View of this
  /// space's memory, copied otherwise) and their labels; returns *this. Throws fastknn::Error
  /// when the label count differs from N, a label is negative or k > N.
  template <detail::KokkosView TrainView>
  KNeighborsClassifier &fit(TrainView const &train, std::vector<std::int32_t> labels)
  {
    Kokkos::Profiling::ScopedRegion region("fastknn::KNeighborsClassifier::fit");
    check_labels(labels, train.extent(0));
    _train = to_space(train, "train", true);
    // The pass over the training rows (norms, checks) runs here once, not in every prediction.
    _index.emplace(_space, _train, _options.metric);
    _labels = std::move(labels);
    _n_classes = _labels.empty() ? 0 : *std::max_element(_labels.begin(), _labels.end()) + 1;
    return *this;
  }

  /// Host overload of fit: copies a row-major matrix (e.g. from fastknn::io) into the space.
  KNeighborsClassifier &fit(io::Matrix<Value> const &train, std::vector<std::int32_t> labels)
  {
    return fit(host_view(train, "train"), std::move(labels));
  }

  /// Returns the exact k nearest training rows of each query row (search's Neighbors: Q x k,
  /// best first, ties to the smaller index; cosine gives similarities).
  template <detail::KokkosView QueryView>
  Neighbors<memory_space, Value> kneighbors(QueryView const &queries) const
  {
    require_fitted();
    SearchOptions search_options;
    search_options.metric = _options.metric;
    search_options.minkowski_p = _options.minkowski_p;
    search_options.workspace_bytes = _options.workspace_bytes;
    search_options.progress = _options.progress;
    search_options.stats = _options.stats;
    return _index->search(_space, to_space(queries, "queries", false), _options.k, search_options);
  }

  /// Returns the predicted label of each query row (Q x D View): the class with the largest
  /// vote, ties to the smallest label. An empty query set is refused (fastknn::Error), as by
  /// fastknn::search, the command line and the Python API (one rule: Q = 0 is an error).
  template <detail::KokkosView QueryView>
  std::vector<std::int32_t> predict(QueryView const &queries) const
  {
    Kokkos::Profiling::ScopedRegion region("fastknn::KNeighborsClassifier::predict");
    std::vector<std::int32_t> out(queries.extent(0), 0);
    std::vector<std::int32_t> distinct;
    std::vector<double> masked;
    for_each_vote(queries, [&](std::size_t q, std::int32_t const *labels, double const *weights)
                  { out[q] = detail::vote_winner(labels, weights, _options.k, distinct, masked); });
    return out;
  }

  /// Host overload of predict for a row-major matrix; returns one label per row.
  std::vector<std::int32_t> predict(io::Matrix<Value> const &queries) const
  {
    return predict(host_view(queries, "queries"));
  }

  /// Returns row-major Q x n_classes() class probabilities: each class's share of the vote
  /// weight (rows sum to 1), as scikit-learn's predict_proba.
  template <detail::KokkosView QueryView>
  std::vector<double> predict_proba(QueryView const &queries) const
  {
    Kokkos::Profiling::ScopedRegion region("fastknn::KNeighborsClassifier::predict_proba");
    std::size_t const c = std::size_t(_n_classes);
    std::vector<double> out(queries.extent(0) * c, 0.0);
    for_each_vote(queries,
                  [&](std::size_t q, std::int32_t const *labels, double const *weights)
                  {
                    double *row = out.data() + q * c;
                    for (int j = 0; j < _options.k; ++j)
                      row[labels[j]] += weights[j];
                    double total = detail::numpy_pairwise_sum(row, c);
                    if (total == 0.0)
                      total = 1.0;
                    for (std::size_t j = 0; j < c; ++j)
                      row[j] /= total;
                  });
    return out;
  }

  /// Host overload of predict_proba; returns row-major rows x n_classes() probabilities.
  std::vector<double> predict_proba(io::Matrix<Value> const &queries) const
  {
    return predict_proba(host_view(queries, "queries"));
  }

  /// Returns the number of classes, max label + 1 (0 before fit).
  int n_classes() const { return _n_classes; }
  /// Returns the number of training rows (0 before fit).
  std::size_t n_train() const { return _train.extent(0); }
  /// Returns the dimension of the training rows (0 before fit).
  std::size_t dim() const { return _train.extent(1); }
  /// Returns the options the classifier was built with.
  ClassifierOptions const &options() const { return _options; }
  /// Returns the execution space instance every search runs on.
  ExecSpace const &space() const { return _space; }

private:
  using HostMatrix = Kokkos::View<Value const **, Kokkos::LayoutRight, Kokkos::HostSpace,
                                  Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  static HostMatrix host_view(io::Matrix<Value> const &m, char const *what)
  {
    detail::require(m.data.size() == m.rows * m.cols,
                    std::string(what) + " matrix holds " + std::to_string(m.data.size()) +
                        " values but says it is " + std::to_string(m.rows) + " x " +
                        std::to_string(m.cols) + "; make rows * cols match the data");
    return HostMatrix(m.data.data(), m.rows, m.cols);
  }

  void check_labels(std::vector<std::int32_t> const &labels, std::size_t rows) const
  {
    // Larger labels would make predict_proba rows absurdly wide; real class ids are small.
    constexpr std::int32_t max_label = (std::int32_t(1) << 24) - 1;
    detail::require(rows > 0, "train has 0 rows; fit needs at least one labelled point");
    detail::require(labels.size() == rows, "labels has " + std::to_string(labels.size()) +
                                               " entries but train has " + std::to_string(rows) +
                                               " rows; pass exactly one label per training row");
    for (std::size_t i = 0; i < labels.size(); ++i)
    {
      detail::require(labels[i] >= 0, "labels[" + std::to_string(i) +
                                          "] = " + std::to_string(labels[i]) +
                                          " is negative; class labels must be 0, 1, 2, ...");
      detail::require(labels[i] <= max_label,
                      "labels[" + std::to_string(i) + "] = " + std::to_string(labels[i]) +
                          " is too large; renumber the classes as 0 .. C-1 (C <= 2^24)");
    }
    detail::require(std::size_t(_options.k) <= rows,
                    "k = " + std::to_string(_options.k) + " is larger than the training set (" +
                        std::to_string(rows) + " rows); lower k or fit more points");
  }

  void require_fitted() const
  {
    detail::require(_train.extent(0) > 0,
                    "the classifier is not fitted; call fit(train, labels) before predicting");
  }

  /// Returns v as a LayoutRight View in this space's memory: v itself when it already is one,
  /// except that an unmanaged v is copied when the result is kept (`own`), since it may dangle.
  template <class V>
  matrix_view to_space(V const &v, char const *what, bool own) const
  {
    static_assert(V::rank() == 2, "fastknn::KNeighborsClassifier: train and queries must be "
                                  "rank-2 Views (rows x dimension)");
    static_assert(std::is_same_v<std::remove_const_t<typename V::value_type>, Value>,
                  "fastknn::KNeighborsClassifier: the View's value type must be the classifier's "
                  "Value (float by default)");
    constexpr bool shareable = std::is_same_v<typename V::array_layout, Kokkos::LayoutRight> &&
                               std::is_same_v<typename V::memory_space, memory_space>;
    if constexpr (shareable)
    {
      // Unmanaged Views (e.g. over an io::Matrix) may dangle after fit returns: copy those.
      if (!own || v.use_count() > 0)
        return v;
    }
    Kokkos::View<Value **, Kokkos::LayoutRight, memory_space> out(
        Kokkos::view_alloc(_space, Kokkos::WithoutInitializing,
                           std::string("fastknn::KNeighborsClassifier::") + what),
        v.extent(0), v.extent(1));
    auto const in_space = Kokkos::create_mirror_view_and_copy(_space, v);
    Kokkos::deep_copy(_space, out, in_space);
    _space.fence("fastknn::KNeighborsClassifier::copy");
    return out;
  }

  /// Runs the search and calls f(q, labels, weights) for each query q in order, with the k
  /// neighbour labels and vote weights on the host.
  template <class QueryView, class F>
  void for_each_vote(QueryView const &queries, F &&f) const
  {
    require_fitted();
    auto const found = kneighbors(queries); // Q = 0: Error, as every search
    auto const idx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
    auto const val = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
    int const k = _options.k;
    std::vector<std::int32_t> labels(std::size_t(k), 0);
    std::vector<double> weights(std::size_t(k), 0.0);
    for (std::size_t q = 0; q < idx.extent(0); ++q)
    {
      for (int j = 0; j < k; ++j)
        labels[j] = _labels[std::size_t(idx(q, j))];
      detail::vote_weights(_options.weights, _options.metric, &val(q, 0), k, weights.data());
      f(q, labels.data(), weights.data());
    }
  }

  ClassifierOptions _options;
  ExecSpace _space;
  matrix_view _train;
  std::optional<Index<ExecSpace, matrix_view>> _index; // built by fit
  std::vector<std::int32_t> _labels;
  int _n_classes = 0;
};

/// Returns the fraction (0..1) of predictions equal to the true labels; throws fastknn::Error
/// when the lengths differ or are 0.
inline double accuracy(std::span<std::int32_t const> predicted, std::span<std::int32_t const> truth)
{
  detail::require(predicted.size() == truth.size(),
                  "accuracy got " + std::to_string(predicted.size()) + " predictions but " +
                      std::to_string(truth.size()) + " true labels; pass one of each per query");
  detail::require(!truth.empty(), "accuracy got no predictions; pass at least one");
  std::size_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i)
    correct += predicted[i] == truth[i];
  return double(correct) / double(truth.size());
}

/// Returns the row-major n_classes x n_classes confusion matrix: entry (t, p) counts the queries
/// of true label t predicted as p. Throws fastknn::Error on a length mismatch or a label outside
/// 0 .. n_classes-1.
inline std::vector<std::int64_t> confusion_matrix(std::span<std::int32_t const> predicted,
                                                  std::span<std::int32_t const> truth,
                                                  int n_classes)
{
  detail::require(n_classes >= 1, "confusion_matrix: n_classes = " + std::to_string(n_classes) +
                                      " is invalid; pass the number of classes (>= 1)");
  detail::require(predicted.size() == truth.size(),
                  "confusion_matrix got " + std::to_string(predicted.size()) + " predictions but " +
                      std::to_string(truth.size()) + " true labels; pass one of each per query");
  std::size_t const c = std::size_t(n_classes);
  std::vector<std::int64_t> m(c * c, 0);
  auto const check = [n_classes](char const *name, std::int32_t label, std::size_t i)
  {
    detail::require(label >= 0 && label < n_classes,
                    std::string("confusion_matrix: ") + name + " " + std::to_string(label) +
                        " at position " + std::to_string(i) + " is outside 0.." +
                        std::to_string(n_classes - 1) + "; pass a larger n_classes");
  };
  for (std::size_t i = 0; i < truth.size(); ++i)
  {
    check("true label", truth[i], i);
    check("predicted label", predicted[i], i);
    ++m[std::size_t(truth[i]) * c + std::size_t(predicted[i])];
  }
  return m;
}

} // namespace fastknn
