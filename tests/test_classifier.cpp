// KNeighborsClassifier: hand-made cases with known answers (scikit-learn's rules), an
// independent float64 reference vote on random data, helpers and error cases.

#include "enabled_spaces.hpp"
#include "helpers.hpp"

#include <fastknn/classifier.hpp>

#include <catch2/catch_approx.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <map>
#include <random>

using namespace fastknn;
using namespace fastknn::test;
using Catch::Approx;
using Catch::Matchers::ContainsSubstring;

namespace
{
using Labels = std::vector<std::int32_t>;

/// Rows of 1-D points as a host matrix.
template <class T = float>
io::Matrix<T> points_1d(std::vector<T> const &x)
{
  return io::Matrix<T>{x, x.size(), 1};
}

template <class Space, class T = float>
KNeighborsClassifier<Space, T> make(int k, Weights w, Metric m = Metric::L2)
{
  ClassifierOptions opt;
  opt.k = k;
  opt.weights = w;
  opt.metric = m;
  return KNeighborsClassifier<Space, T>(opt);
}

/// Independent reference: ranks with the float64 Eigen reference (ties by index), then votes
/// with scikit-learn's rules written out directly (std::map in label order, sequential sums).
template <class T>
Labels reference_predict(std::vector<T> const &x, std::size_t n, Labels const &y,
                         std::vector<T> const &q, std::size_t nq, std::size_t d, int k,
                         Metric metric, Weights weights)
{
  RowMatrix const xm = to_eigen(x, n, d);
  RowMatrix const qm = to_eigen(q, nq, d);
  Labels out;
  for (std::size_t i = 0; i < nq; ++i)
  {
    Ranked const r = reference_rank<T>(xm, qm, i, metric, false);
    std::vector<double> dist(r.value.begin(), r.value.begin() + k);
    if (metric == Metric::Cosine)
      for (double &v : dist)
        v = std::max(0.0, 1.0 - v);
    bool const zero = std::find(dist.begin(), dist.end(), 0.0) != dist.end();
    std::map<std::int32_t, double> score;
    for (int j = 0; j < k; ++j)
    {
      double w = 1.0;
      if (weights == Weights::Distance)
        w = zero ? (dist[j] == 0.0 ? 1.0 : 0.0) : 1.0 / dist[j];
      score[y[r.index[j]]] += w;
    }
    auto best = score.begin();
    for (auto it = score.begin(); it != score.end(); ++it)
      if (it->second > best->second)
        best = it;
    out.push_back(best->first);
  }
  return out;
}
} // namespace

TEMPLATE_LIST_TEST_CASE("uniform weights: majority vote", "[classifier]", EnabledSpaces)
{
  auto clf = make<TestType>(3, Weights::Uniform);
  clf.fit(points_1d<float>({0, 1, 2, 10, 11, 12}), {0, 0, 0, 1, 1, 1});
  CHECK(clf.n_classes() == 2);
  CHECK(clf.n_train() == 6);
  CHECK(clf.dim() == 1);
  CHECK(clf.predict(points_1d<float>({0.5f, 10.5f, 5.9f, 6.1f})) == Labels{0, 1, 0, 1});
}

TEMPLATE_LIST_TEST_CASE("distance weights: 1/d can outvote the majority", "[classifier]",
                        EnabledSpaces)
{
  // Query 0.5: neighbours 0 (d 0.5, label 1), 3 (d 2.5, label 0), 3.2 (d 2.7, label 0).
  auto const train = points_1d<float>({0, 3, 3.2f, 20});
  Labels const y{1, 0, 0, 2};
  auto const query = points_1d<float>({0.5f});
  CHECK(make<TestType>(3, Weights::Uniform).fit(train, y).predict(query) == Labels{0});
  auto clf = make<TestType>(3, Weights::Distance);
  clf.fit(train, y);
  CHECK(clf.predict(query) == Labels{1});
  auto const p = clf.predict_proba(query);
  REQUIRE(p.size() == 3);
  double const w1 = 1 / 0.5, w0 = 1 / 2.5 + 1 / 2.7;
  CHECK(p[0] == Approx(w0 / (w0 + w1)).epsilon(1e-6));
  CHECK(p[1] == Approx(w1 / (w0 + w1)).epsilon(1e-6));
  CHECK(p[2] == 0.0);
}

TEMPLATE_LIST_TEST_CASE("distance weights: zero-distance neighbours take all the weight",
                        "[classifier]", EnabledSpaces)
{
  // Query 0 sits on two training points (labels 2 and 1); three very close points of label 0
  // would win any finite 1/d vote, but scikit-learn lets only the exact matches vote.
  auto const train = points_1d<float>({0, 0, 0.001f, 0.002f, 0.003f, 5});
  Labels const y{2, 1, 0, 0, 0, 3};
  auto clf = make<TestType>(5, Weights::Distance);
  clf.fit(train, y);
  auto const query = points_1d<float>({0});
  CHECK(clf.predict(query) == Labels{1}); // 1:1 tie between labels 1 and 2 -> smaller label
  CHECK(clf.predict_proba(query) == std::vector<double>{0, 0.5, 0.5, 0});
  CHECK(make<TestType>(5, Weights::Uniform).fit(train, y).predict(query) == Labels{0});
}

TEMPLATE_LIST_TEST_CASE("vote ties go to the smallest label, not the nearest neighbour",
                        "[classifier]", EnabledSpaces)
{
  auto const query = points_1d<float>({0});
  auto const w = GENERATE(Weights::Uniform, Weights::Distance);
  // Equal distances: either label order gives the smaller label.
  CHECK(make<TestType>(2, w).fit(points_1d<float>({-1, 1}), {3, 2}).predict(query) == Labels{2});
  CHECK(make<TestType>(2, w).fit(points_1d<float>({-1, 1}), {2, 3}).predict(query) == Labels{2});
  // Uniform 1:1 tie where the nearer neighbour has the larger label.
  CHECK(make<TestType>(2, Weights::Uniform)
            .fit(points_1d<float>({0.1f, 0.9f}), {5, 4})
            .predict(query) == Labels{4});
  // Neighbour sets tied at the k-th distance keep the smaller training index.
  CHECK(make<TestType>(1, w).fit(points_1d<float>({1, -1}), {7, 6}).predict(query) == Labels{7});
}

TEMPLATE_LIST_TEST_CASE("cosine votes with the cosine distance 1 - similarity", "[classifier]",
                        EnabledSpaces)
{
  // Query (1,0): (1,1) and (1,-1) have distance 1 - 1/sqrt(2); (2,0.2) is nearly parallel.
  io::Matrix<float> train{{1, 1, 1, -1, 2, 0.2f}, 3, 2};
  Labels const y{0, 0, 1};
  io::Matrix<float> query{{1, 0}, 1, 2};
  CHECK(make<TestType>(3, Weights::Uniform, Metric::Cosine).fit(train, y).predict(query) ==
        Labels{0});
  auto clf = make<TestType>(3, Weights::Distance, Metric::Cosine);
  clf.fit(train, y);
  CHECK(clf.predict(query) == Labels{1});
  double const w0 = 2 / (1 - 1 / std::sqrt(2.0)), w1 = 1 / (1 - 2 / std::sqrt(4.04));
  auto const p = clf.predict_proba(query);
  CHECK(p[1] == Approx(w1 / (w0 + w1)).epsilon(1e-4));
  // A parallel training vector is at cosine distance 0 and takes the whole vote.
  io::Matrix<float> with_parallel{{1, 1, 1, -1, 2, 0.2f, 3, 0}, 4, 2};
  CHECK(make<TestType>(4, Weights::Distance, Metric::Cosine)
            .fit(with_parallel, {0, 0, 1, 2})
            .predict(query) == Labels{2});
}

TEMPLATE_LIST_TEST_CASE("predict_proba rows sum to 1 and agree with predict", "[classifier]",
                        EnabledSpaces)
{
  std::size_t const n = 300, nq = 40, d = 5;
  auto const x = random_matrix<float>(n, d, 5);
  auto const q = random_matrix<float>(nq, d, 6);
  Labels y(n);
  for (std::size_t i = 0; i < n; ++i)
    y[i] = std::int32_t((i * 7) % 6);
  auto const w = GENERATE(Weights::Uniform, Weights::Distance);
  auto const metric = GENERATE(Metric::L2, Metric::L1, Metric::Cosine);
  auto clf = make<TestType>(7, w, metric);
  clf.fit(io::Matrix<float>{x, n, d}, y);
  io::Matrix<float> const queries{q, nq, d};
  auto const p = clf.predict_proba(queries);
  auto const pred = clf.predict(queries);
  REQUIRE(p.size() == nq * 6);
  for (std::size_t i = 0; i < nq; ++i)
  {
    double sum = 0;
    for (std::size_t c = 0; c < 6; ++c)
    {
      CHECK(p[i * 6 + c] >= 0.0);
      sum += p[i * 6 + c];
    }
    CHECK(sum == Approx(1.0).epsilon(1e-12));
    auto const best = std::max_element(p.begin() + i * 6, p.begin() + (i + 1) * 6);
    CHECK(pred[i] == std::int32_t(best - (p.begin() + i * 6)));
  }
}

TEMPLATE_LIST_TEST_CASE("predictions match an independent float64 reference vote", "[classifier]",
                        EnabledSpaces)
{
  std::size_t const d = 4, nq = 60;
  auto const k = GENERATE(1, 4, 7);
  SECTION("integer grid data (many exact distance ties), uniform weights")
  {
    // Coordinates in {0,1,2,3}: distances tie often, so the tie rules decide many votes.
    std::size_t const n = 200;
    std::mt19937 gen(11);
    std::uniform_int_distribution<int> coord(0, 3), label(0, 4);
    std::vector<float> x(n * d), q(nq * d);
    for (auto &v : x)
      v = float(coord(gen));
    for (auto &v : q)
      v = float(coord(gen));
    Labels y(n);
    for (auto &v : y)
      v = label(gen);
    auto const metric = GENERATE(Metric::L2, Metric::L2Squared, Metric::L1);
    auto clf = make<TestType>(k, Weights::Uniform, metric);
    clf.fit(io::Matrix<float>{x, n, d}, y);
    INFO("k=" << k << " metric=" << metric_name(metric));
    CHECK(clf.predict(io::Matrix<float>{q, nq, d}) ==
          reference_predict(x, n, y, q, nq, d, k, metric, Weights::Uniform));
  }
  SECTION("continuous double data, both weightings")
  {
    std::size_t const n = 500;
    auto const x = random_matrix<double>(n, d, 21, -1, 1);
    auto const q = random_matrix<double>(nq, d, 22, -1, 1);
    Labels y(n);
    for (std::size_t i = 0; i < n; ++i)
      y[i] = std::int32_t((i * 13) % 5);
    auto const metric = GENERATE(Metric::L2, Metric::L2Squared, Metric::L1, Metric::Cosine);
    auto const w = GENERATE(Weights::Uniform, Weights::Distance);
    auto clf = make<TestType, double>(k, w, metric);
    clf.fit(io::Matrix<double>{x, n, d}, y);
    INFO("k=" << k << " metric=" << metric_name(metric) << " weights=" << weights_name(w));
    CHECK(clf.predict(io::Matrix<double>{q, nq, d}) ==
          reference_predict(x, n, y, q, nq, d, k, metric, w));
  }
}

TEMPLATE_LIST_TEST_CASE("fit and predict take Views of any layout", "[classifier]", EnabledSpaces)
{
  std::size_t const n = 120, nq = 15, d = 3;
  auto const x = random_matrix<float>(n, d, 31);
  auto const q = random_matrix<float>(nq, d, 32);
  Labels y(n);
  for (std::size_t i = 0; i < n; ++i)
    y[i] = std::int32_t(i % 4);
  auto host = make<TestType>(5, Weights::Distance);
  host.fit(io::Matrix<float>{x, n, d}, y);
  auto const expected = host.predict(io::Matrix<float>{q, nq, d});

  TestType space;
  auto const xd = to_device(space, x, n, d);
  auto const qd = to_device(space, q, nq, d);
  auto clf = make<TestType>(5, Weights::Distance);
  clf.fit(xd, y);
  CHECK(clf.predict(qd) == expected);
  auto const nb = clf.kneighbors(qd);
  CHECK(nb.indices.extent(0) == nq);
  CHECK(nb.indices.extent(1) == 5);

  Kokkos::View<float **, Kokkos::LayoutLeft, Kokkos::HostSpace> left("left", n, d);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < d; ++p)
      left(i, p) = x[i * d + p];
  auto clf_left = make<TestType>(5, Weights::Distance);
  clf_left.fit(left, y);
  CHECK(clf_left.predict(qd) == expected);
  // Q = 0 is refused, as by search, the command line and Python (one rule everywhere).
  CHECK_THROWS_WITH(clf_left.predict(Kokkos::View<float **, Kokkos::LayoutRight, Kokkos::HostSpace>(
                        "empty", 0, d)),
                    ContainsSubstring("query set is empty"));
}

TEMPLATE_LIST_TEST_CASE("classifier errors name the argument", "[classifier][errors]",
                        EnabledSpaces)
{
  auto const train = points_1d<float>({0, 1, 2, 3});
  auto clf = make<TestType>(3, Weights::Uniform);
  SECTION("label count differs from the row count")
  {
    REQUIRE_THROWS_AS(clf.fit(train, {0, 1, 2}), fastknn::Error);
    REQUIRE_THROWS_WITH(clf.fit(train, {0, 1, 2}),
                        ContainsSubstring("labels has 3 entries but train has 4 rows"));
  }
  SECTION("negative label names its row")
  {
    REQUIRE_THROWS_WITH(clf.fit(train, {0, 1, -2, 1}),
                        ContainsSubstring("labels[2] = -2 is negative"));
  }
  SECTION("k larger than the training set")
  {
    auto big = make<TestType>(5, Weights::Uniform);
    REQUIRE_THROWS_WITH(big.fit(train, {0, 1, 0, 1}),
                        ContainsSubstring("k = 5 is larger than the training set (4 rows)"));
  }
  SECTION("k < 1")
  {
    REQUIRE_THROWS_WITH(make<TestType>(0, Weights::Uniform),
                        ContainsSubstring("k must be at least 1"));
  }
  SECTION("inner product has no distance to weight by")
  {
    REQUIRE_THROWS_WITH(make<TestType>(3, Weights::Distance, Metric::InnerProduct),
                        ContainsSubstring("weights = distance needs a distance"));
    CHECK_NOTHROW(make<TestType>(3, Weights::Uniform, Metric::InnerProduct));
  }
  SECTION("predict before fit")
  {
    REQUIRE_THROWS_WITH(clf.predict(train), ContainsSubstring("not fitted"));
  }
  SECTION("query dimension differs from the training dimension")
  {
    clf.fit(train, {0, 1, 0, 1});
    REQUIRE_THROWS_AS(clf.predict(io::Matrix<float>{{0, 0}, 1, 2}), fastknn::Error);
  }
  SECTION("a matrix whose size disagrees with its shape")
  {
    REQUIRE_THROWS_WITH(clf.fit(io::Matrix<float>{{0, 1, 2}, 4, 1}, {0, 1, 0, 1}),
                        ContainsSubstring("make rows * cols match"));
  }
}

TEST_CASE("parse_weights, accuracy and confusion_matrix", "[classifier]")
{
  CHECK(parse_weights("uniform") == Weights::Uniform);
  CHECK(parse_weights("distance") == Weights::Distance);
  CHECK(weights_name(Weights::Distance) == "distance");
  REQUIRE_THROWS_WITH(parse_weights("inverse"), ContainsSubstring("use uniform or distance"));

  Labels const pred{0, 1, 1, 2}, truth{0, 1, 2, 2};
  CHECK(accuracy(pred, truth) == 0.75);
  CHECK(confusion_matrix(pred, truth, 3) == std::vector<std::int64_t>{1, 0, 0, 0, 1, 0, 0, 1, 1});
  CHECK(confusion_matrix(pred, truth, 4).size() == 16);
  REQUIRE_THROWS_WITH(accuracy(pred, Labels{0, 1}), ContainsSubstring("4 predictions but 2"));
  REQUIRE_THROWS_AS(accuracy(Labels{}, Labels{}), fastknn::Error);
  REQUIRE_THROWS_WITH(confusion_matrix(pred, truth, 2),
                      ContainsSubstring("true label 2 at position 2 is outside 0..1"));
}
