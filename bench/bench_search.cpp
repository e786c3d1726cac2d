// Google Benchmark driver for fastknn::search on the configured backend.
// Counters: queries/s, GFLOP/s (2 Q N D per search) and, on the CPU, the fraction of the FMA peak
// this program measures at start-up on the same threads. Data sets: Fashion-MNIST (the Debian
// package dataset-fashion-mnist) and uniform random data.

#include "backend.hpp"
#include <fastknn/fastknn.hpp>
#include <fastknn/io.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace
{
using Space = fastknn::DefaultBackend;
using MS = Space::memory_space;
using Matrix = Kokkos::View<float **, Kokkos::LayoutRight, MS>;

std::string const fashion_dir = []
{
  char const *dir = std::getenv("FASTKNN_FASHION_DIR");
  return std::string(dir ? dir : "/usr/share/datasets/fashion-mnist");
}();

Matrix to_space(fastknn::io::Matrix<float> const &m, char const *label)
{
  Matrix out(label, m.rows, m.cols);
  Kokkos::View<float const **, Kokkos::LayoutRight, Kokkos::HostSpace,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>>
      h(m.data.data(), m.rows, m.cols);
  Kokkos::deep_copy(out, h);
  return out;
}

struct Fashion
{
  Matrix train, test;
  Matrix train_std, test_std; // standardised per pixel (see standardise)
};
// Data stay loaded across benchmarks and are released before Kokkos finalises.
std::unique_ptr<Fashion> fashion_data;
std::map<std::tuple<std::size_t, std::size_t, unsigned>, Matrix> random_cache;

/// Per-pixel standardisation as scikit-learn's StandardScaler fitted on the training set: each
/// coordinate minus its training mean, over its training standard deviation (1 where that is
/// zero). Real non-integer data, which the exact 8-bit path cannot take.
void standardise(fastknn::io::Matrix<float> &train, fastknn::io::Matrix<float> &test)
{
  std::size_t const d = train.cols;
  std::vector<double> mean(d, 0.0), var(d, 0.0);
  for (std::size_t r = 0; r < train.rows; ++r)
    for (std::size_t p = 0; p < d; ++p)
      mean[p] += train.data[r * d + p];
  for (auto &m : mean)
    m /= double(train.rows);
  for (std::size_t r = 0; r < train.rows; ++r)
    for (std::size_t p = 0; p < d; ++p)
    {
      double const c = train.data[r * d + p] - mean[p];
      var[p] += c * c;
    }
  for (auto *m : {&train, &test})
    for (std::size_t r = 0; r < m->rows; ++r)
      for (std::size_t p = 0; p < d; ++p)
      {
        double const sd = std::sqrt(var[p] / double(train.rows));
        auto &v = m->data[r * d + p];
        v = float((v - mean[p]) / (sd > 0 ? sd : 1.0));
      }
}

Fashion const &fashion()
{
  if (!fashion_data)
  {
    auto d = fastknn::io::load_mnist_dir(fashion_dir);
    fashion_data = std::make_unique<Fashion>(
        Fashion{to_space(d.train.images, "train"), to_space(d.test.images, "test"), {}, {}});
    standardise(d.train.images, d.test.images);
    fashion_data->train_std = to_space(d.train.images, "train_standardised");
    fashion_data->test_std = to_space(d.test.images, "test_standardised");
  }
  return *fashion_data;
}

Matrix random_matrix(std::size_t rows, std::size_t cols, unsigned seed)
{
  auto &cache = random_cache;
  auto key = std::make_tuple(rows, cols, seed);
  if (auto it = cache.find(key); it != cache.end())
    return it->second;
  fastknn::io::Matrix<float> m;
  m.rows = rows;
  m.cols = cols;
  m.data.resize(rows * cols);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (auto &v : m.data)
    v = u(gen);
  if (cache.size() > 3)
    cache.clear();
  return cache[key] = to_space(m, "random");
}

/// Measured FMA peak of this machine's threads in GFLOP/s (host backends only): each thread
/// runs independent chains of vector FMAs that the compiler keeps in registers.
double measure_fma_peak()
{
  // GCC/Clang vector extension in the host instruction set's width, as many independent
  // accumulators as stay in its registers (AVX-512: 24 of 32 zmm; AVX2: 12 of 16 ymm; both
  // above the FMA latency x throughput, so the chains do not wait on each other).
  constexpr int vector_bytes = fastknn::backends::host_vector_bytes;
  typedef float v16 __attribute__((vector_size(vector_bytes)));
  constexpr int lanes = vector_bytes / 4, chains = vector_bytes == 64 ? 24 : 12;
  long long const iters = 50'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep)
  {
    int threads = 1;
    auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
#ifdef _OPENMP
#pragma omp single
      threads = omp_get_num_threads();
#endif
      v16 acc[chains];
      v16 a, b;
      for (int l = 0; l < lanes; ++l)
      {
        a[l] = 1.0f + 1e-7f * float(l);
        b[l] = 1e-8f;
      }
      for (int c = 0; c < chains; ++c)
        acc[c] = a * float(c);
      for (long long i = 0; i < iters; ++i)
      {
#ifndef __CUDACC__ // nvcc's front end does not know GCC's pragma (a host loop: no nvcc unroll)
#pragma GCC unroll 24
#endif
        for (int c = 0; c < chains; ++c)
          acc[c] = acc[c] * a + b;
      }
      for (int c = 0; c < chains; ++c)
        for (int l = 0; l < lanes; ++l)
          sink += acc[c][l];
    }
    double const s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sink);
    best = std::max(best, 2.0 * chains * lanes * double(iters) * threads / s / 1e9);
  }
  return best;
}

double fma_peak_gflops = 0;

/// A "Vm...:" field of /proc/self/status in KiB, or -1 (not Linux).
long status_kib(char const *field)
{
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0)
      return std::stol(line.substr(std::strlen(field)));
  return -1;
}

/// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux: clear_refs "5").
bool reset_peak_rss()
{
  std::ofstream f("/proc/self/clear_refs");
  return f && (f << "5") && f.flush();
}

/// Times fastknn::search, or with `index` its prepared search (the index built beforehand, as
/// FAISS's peers build theirs outside the timed search).
void run(benchmark::State &state, Matrix const &db, Matrix const &queries, int k,
         fastknn::Metric metric, bool integer_preselection = true,
         fastknn::Index<Space, Matrix> const *index = nullptr)
{
  Space space;
  fastknn::SearchOptions opt;
  opt.metric = metric;
  opt.integer_preselection = integer_preselection;
  fastknn::SearchStats stats;
  opt.stats = &stats;
  double const flops =
      2.0 * double(queries.extent(0)) * double(db.extent(0)) * double(db.extent(1));
  // Host memory the searches add at their peak, against what they may add: the outputs and the
  // plan's workspace (the inputs exist before).
  bool const peak_known = reset_peak_rss();
  long const rss_before = status_kib("VmRSS:");
  for (auto _ : state)
  {
    space.fence();
    auto t0 = std::chrono::steady_clock::now();
    auto r =
        index ? index->search(space, queries, k, opt) : fastknn::search(space, db, queries, k, opt);
    space.fence();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(r.indices.data());
  }
  state.counters["queries_per_s"] =
      benchmark::Counter(double(queries.extent(0)), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  long const peak = status_kib("VmHWM:");
  if (peak_known && rss_before >= 0 && peak >= 0)
  {
    state.counters["peak_rss_added_MiB"] = double(peak - rss_before) / 1024;
    state.counters["outputs_plus_workspace_MiB"] =
        (double(queries.extent(0)) * k * double(sizeof(float) + sizeof(fastknn::index_type)) +
         double(stats.workspace_bytes)) /
        double(1 << 20);
  }
  state.counters["exact_fallbacks"] = double(stats.exact_fallbacks);
  state.counters["rescored_per_query"] = double(stats.rescored) / double(queries.extent(0));
  state.counters["integer_preselection"] = stats.integer_preselection ? 1 : 0;
  state.counters["database_GBps"] =
      benchmark::Counter(double(db.extent(0)) * double(db.extent(1)) * 4 / 1e9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

/// Integer = false forces the float pre-selection (Fashion-MNIST's 8-bit pixels otherwise take
/// the exact integer path where the backend has one).
template <bool Integer>
void bm_fashion(benchmark::State &state)
{
  auto const &f = fashion();
  auto q = Kokkos::subview(f.test, std::make_pair(std::size_t(0), std::size_t(state.range(0))),
                           Kokkos::ALL);
  run(state, f.train, Matrix(q), int(state.range(1)), fastknn::Metric::L2Squared, Integer);
}

/// Fashion-MNIST standardised per pixel (non-integer: the float path), L2 or cosine.
template <fastknn::Metric M>
void bm_fashion_std(benchmark::State &state)
{
  auto const &f = fashion();
  auto q = Kokkos::subview(f.test_std, std::make_pair(std::size_t(0), std::size_t(state.range(0))),
                           Kokkos::ALL);
  run(state, f.train_std, Matrix(q), int(state.range(1)), M);
}

void bm_random(benchmark::State &state)
{
  auto const n = std::size_t(state.range(0)), d = std::size_t(state.range(1)),
             q = std::size_t(state.range(2));
  run(state, random_matrix(n, d, 1), random_matrix(q, d, 2), int(state.range(3)),
      fastknn::Metric::L2Squared);
}

/// Few queries against a prepared database (fastknn::Index): one read of the database each.
void bm_random_index(benchmark::State &state)
{
  auto const n = std::size_t(state.range(0)), d = std::size_t(state.range(1)),
             q = std::size_t(state.range(2));
  Matrix const db = random_matrix(n, d, 1);
  fastknn::Index<Space, Matrix> const index(Space(), db);
  run(state, db, random_matrix(q, d, 2), int(state.range(3)), fastknn::Metric::L2Squared, true,
      &index);
}

/// Host memory copy bandwidth (GB/s, read + write counted as bytes copied), for small batches.
double measure_copy_bandwidth()
{
  std::size_t const bytes = std::size_t(512) << 20;
  Kokkos::View<float *, MS> a("a", bytes / 4), b("b", bytes / 4);
  Kokkos::deep_copy(a, 1.0f);
  Kokkos::deep_copy(b, a);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep)
  {
    Kokkos::fence();
    auto t0 = std::chrono::steady_clock::now();
    Kokkos::deep_copy(b, a);
    Kokkos::fence();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s / 1e9);
  }
  return best;
}

} // namespace

BENCHMARK(bm_fashion<true>)
    ->Name("fashion_mnist_l2sq")
    ->ArgNames({"q", "k"})
    ->ArgsProduct({{100, 1000, 10000}, {1, 10, 100, 1024}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(bm_fashion<false>)
    ->Name("fashion_mnist_l2sq_floatpath")
    ->ArgNames({"q", "k"})
    ->ArgsProduct({{100, 1000, 10000}, {1, 10, 100, 1024}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(bm_fashion_std<fastknn::Metric::L2Squared>)
    ->Name("fashion_mnist_std_l2sq")
    ->ArgNames({"q", "k"})
    ->ArgsProduct({{100, 1000, 10000}, {1, 10, 100, 1024}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(bm_fashion_std<fastknn::Metric::Cosine>)
    ->Name("fashion_mnist_std_cosine")
    ->ArgNames({"q", "k"})
    ->ArgsProduct({{100, 1000, 10000}, {1, 10, 100, 1024}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(bm_random)
    ->Name("random_l2sq")
    ->ArgNames({"n", "d", "q", "k"})
    ->Args({10'000, 128, 1000, 10})
    ->Args({100'000, 128, 1000, 10})
    ->Args({1'000'000, 128, 1000, 10})
    ->Args({1'000'000, 128, 100, 10})
    ->Args({100'000, 128, 100, 10})
    ->Args({100'000, 128, 10000, 10})
    ->Args({100'000, 16, 1000, 10})
    ->Args({100'000, 784, 1000, 10})
    ->Args({100'000, 960, 1000, 10})
    ->Args({1'000'000, 128, 1, 10})
    ->Args({1'000'000, 128, 16, 10})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

BENCHMARK(bm_random_index)
    ->Name("random_l2sq_index")
    ->ArgNames({"n", "d", "q", "k"})
    ->Args({1'000'000, 128, 1, 10})
    ->Args({1'000'000, 128, 16, 10})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

int main(int argc, char **argv)
{
  if (!std::getenv("OMP_PROC_BIND"))
    setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard guard(argc, argv);
  benchmark::Initialize(&argc, argv);
  struct Release
  {
    ~Release()
    {
      fashion_data.reset();
      random_cache.clear();
    }
  } release;
  benchmark::AddCustomContext("fastknn_version", FASTKNN_VERSION_STRING);
  benchmark::AddCustomContext("backend", fastknn::backend_name());
  benchmark::AddCustomContext("concurrency", std::to_string(Space().concurrency()));
  benchmark::AddCustomContext("kokkos_version", std::to_string(KOKKOS_VERSION));
  {
    auto const shape = fastknn::detail::tile_shape<Space>(1);
    benchmark::AddCustomContext("isa", fastknn::detail::kernel_isa<Space>());
    benchmark::AddCustomContext("register_block",
                                std::to_string(shape.mr) + "x" + std::to_string(shape.nr));
  }
  if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MS>::accessible)
  {
    fma_peak_gflops = measure_fma_peak();
    benchmark::AddCustomContext("fma_peak_gflops", std::to_string(fma_peak_gflops));
    benchmark::AddCustomContext("copy_bandwidth_GBps", std::to_string(measure_copy_bandwidth()));
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
