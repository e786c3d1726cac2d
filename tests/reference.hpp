#pragma once
// Independent references for the tests, written without the library's code:
// - the specified exact score (docs/design.md, "contraction rule"): double, every term added
//   with one std::fma into eight partial sums combined pairwise; the library promises its
//   distances are this value rounded once to the output type, so results are compared with it
//   bit for bit and in the exact order (value rounded to the output type, then index);
// - the truth in long double with a rigorous bound on how far the specified double may be from
//   it, so that the specification itself is checked against the mathematics;
// - the float64 Eigen direct differences the classifier's vote reference uses.

#include "spec.hpp"

#include <fastknn/fastknn.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

namespace fastknn::test
{

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T>
RowMatrix to_eigen(std::vector<T> const &v, std::size_t rows, std::size_t cols)
{
  RowMatrix m(rows, cols);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j)
      m(i, j) = double(v[i * cols + j]);
  return m;
}

/// Values (in the metric's reported units) of query row qi against every database row, in
/// float64 direct differences (Eigen's order of summation).
inline Eigen::VectorXd reference_values(RowMatrix const &x, RowMatrix const &q, std::size_t qi,
                                        Metric metric, double p = 2)
{
  Eigen::RowVectorXd const row = q.row(qi);
  switch (metric)
  {
  case Metric::L2Squared:
    return (x.rowwise() - row).rowwise().squaredNorm();
  case Metric::L2:
    return (x.rowwise() - row).rowwise().norm();
  case Metric::L1:
    return (x.rowwise() - row).cwiseAbs().rowwise().sum();
  case Metric::InnerProduct:
    return x * row.transpose();
  case Metric::Cosine:
    return ((x * row.transpose()).array() / (x.rowwise().norm().array() * row.norm())).matrix();
  case Metric::Chebyshev:
    return (x.rowwise() - row).cwiseAbs().rowwise().maxCoeff();
  case Metric::Minkowski:
    return (x.rowwise() - row).cwiseAbs().array().pow(p).rowwise().sum().pow(1 / p).matrix();
  default: // the other exact-only metrics: the specified scores (the classifier's votes)
  {
    Eigen::VectorXd v(x.rows());
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      v(i) = spec_score(metric, &row(0), &x(i, 0), std::size_t(x.cols()), p);
    return v;
  }
  }
  return {};
}

struct Ranked
{
  std::vector<index_type> index;
  std::vector<double> value; // the reported value in double (for the vote reference)
};

/// Full ranking of the n database rows x (row-major, n x d) for the query row q, best first, as
/// fastknn promises: by the specified score rounded to the output type T, ties by the smaller
/// index (a tuple comparison here, not the library's comparator); row `skip` left out.
template <class T, class E>
Ranked spec_rank(E const *x, std::size_t n, std::size_t d, E const *q, Metric metric,
                 std::size_t skip = std::size_t(-1), double p = 2)
{
  std::vector<std::tuple<T, index_type>> keyed;
  keyed.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    if (i != skip)
      keyed.emplace_back(spec_key<T>(metric, spec_score(metric, q, x + i * d, d, p)),
                         index_type(i));
  std::sort(keyed.begin(), keyed.end());
  Ranked r;
  for (auto const &[key, i] : keyed)
  {
    r.index.push_back(i);
    r.value.push_back(double(spec_reported<T>(metric, key)));
  }
  return r;
}

/// The ranking the classifier's vote reference uses: the specified order (see spec_rank).
template <class T>
Ranked reference_rank(RowMatrix const &x, RowMatrix const &q, std::size_t qi, Metric metric,
                      bool exclude_self)
{
  return spec_rank<T>(x.data(), std::size_t(x.rows()), std::size_t(x.cols()), &q(qi, 0), metric,
                      exclude_self ? qi : std::size_t(-1));
}

template <class T>
std::vector<T> random_matrix(std::size_t rows, std::size_t cols, unsigned seed, double lo = 0.0,
                             double hi = 1.0)
{
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> m(rows * cols);
  for (auto &v : m)
    v = T(dist(gen));
  return m;
}

/// Integer-valued rows: uniform in [lo, hi], or only the two values lo and hi.
template <class T>
std::vector<T> integer_matrix(std::size_t rows, std::size_t cols, unsigned seed, int lo, int hi,
                              bool two_values = false)
{
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::bernoulli_distribution coin;
  std::vector<T> m(rows * cols);
  for (auto &v : m)
    v = T(two_values ? (coin(gen) ? hi : lo) : dist(gen));
  return m;
}

} // namespace fastknn::test
