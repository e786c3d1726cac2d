#pragma once
// Independent reference for the tests: float64 direct differences with Eigen (no norm
// expansion, no tiling, no heaps), a full ranking sorted by (reported value, index).

#include <fastknn/fastknn.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
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

/// Values (in the metric's reported units) of query row qi against every database row.
inline Eigen::VectorXd reference_values(RowMatrix const &x, RowMatrix const &q, std::size_t qi,
                                        Metric metric)
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
  }
  return {};
}

struct Ranked
{
  std::vector<index_type> index;
  std::vector<double> value;
};

/// Full ranking of the database for query qi, best first, ties by index, as fastknn promises:
/// the order uses the value rounded to the output type T.
template <class T>
Ranked reference_rank(RowMatrix const &x, RowMatrix const &q, std::size_t qi, Metric metric,
                      bool exclude_self)
{
  Eigen::VectorXd const v = reference_values(x, q, qi, metric);
  double const sign = is_similarity(metric) ? -1.0 : 1.0;
  std::vector<index_type> order;
  for (Eigen::Index i = 0; i < v.size(); ++i)
    if (!(exclude_self && std::size_t(i) == qi))
      order.push_back(index_type(i));
  std::stable_sort(order.begin(), order.end(),
                   [&](index_type a, index_type b) { return T(sign * v(a)) < T(sign * v(b)); });
  Ranked r;
  r.index = order;
  for (auto i : order)
    r.value.push_back(v(i));
  return r;
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
