// fastknn_gpu_bench: the device check's fastknn half (tools/device_check.sh). Times
// fastknn::search on the build's default execution space (Kokkos::Cuda in a CUDA build, the CPU
// otherwise) with the data already in that space's memory, for the jobs docs/cuda.md sets the
// goals on, and writes one JSON object per job, the whole file again after every job ("complete":
// false until the last one), so a time limit loses nothing measured. No dependency beyond fastknn
// (the GPU machine has no Google Benchmark).
//
//   fastknn_gpu_bench --out FILE.json [--fashion DIR] [--repeats R] [--quick]
//                     [--indices-dir DIR]
//
// --quick shrinks every job (a check of the driver on a CPU); --indices-dir writes the
// Fashion-MNIST indices as .npy for the torch peer's agreement check.

#include "backend.hpp"
#include <fastknn/fastknn.hpp>
#include <fastknn/io.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace
{
using Space = fastknn::DefaultBackend;
using MS = Space::memory_space;
using Matrix = Kokkos::View<float **, Kokkos::LayoutRight, MS>;

struct Args
{
  std::string out, fashion = "/usr/share/datasets/fashion-mnist", indices_dir;
  int repeats = 5;
  bool quick = false;
};

Args parse(int argc, char **argv)
{
  Args a;
  for (int i = 1; i < argc; ++i)
  {
    std::string const s = argv[i];
    auto value = [&]() -> std::string
    {
      if (i + 1 >= argc)
        throw std::runtime_error(s + " needs a value");
      return argv[++i];
    };
    if (s == "--out")
      a.out = value();
    else if (s == "--fashion")
      a.fashion = value();
    else if (s == "--repeats")
      a.repeats = std::max(1, std::stoi(value()));
    else if (s == "--quick")
      a.quick = true;
    else if (s == "--indices-dir")
      a.indices_dir = value();
    else if (s.rfind("--kokkos", 0) != 0)
      throw std::runtime_error("unknown option " + s + " (see the comment at the top of " +
                               "bench/gpu_bench.cpp)");
  }
  if (a.out.empty())
    throw std::runtime_error("--out FILE.json is required");
  return a;
}

Matrix to_space(float const *data, std::size_t rows, std::size_t cols, char const *label)
{
  Matrix out(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), rows, cols);
  Kokkos::View<float const **, Kokkos::LayoutRight, Kokkos::HostSpace,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>>
      h(data, rows, cols);
  Kokkos::deep_copy(out, h);
  return out;
}

Matrix random_rows(std::size_t rows, std::size_t cols, unsigned seed, char const *label)
{
  std::vector<float> v(rows * cols);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (auto &x : v)
    x = u(rng);
  return to_space(v.data(), rows, cols, label);
}

struct Timing
{
  std::vector<double> seconds;
  fastknn::SearchStats stats;
  double median() const
  {
    auto s = seconds;
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
  }
};

/// One warm-up search (allocations, first-touch), then `repeats` timed ones, fenced.
Timing time_search(Matrix const &x, Matrix const &q, int k, int repeats,
                   fastknn::Neighbors<MS, float> *keep = nullptr)
{
  Space space;
  fastknn::SearchOptions opt;
  opt.metric = fastknn::Metric::L2Squared;
  Timing t;
  opt.stats = &t.stats;
  fastknn::Index const index(space, x, opt.metric);
  auto warm = index.search(space, q, k, opt);
  space.fence();
  for (int r = 0; r < repeats; ++r)
  {
    auto const t0 = std::chrono::steady_clock::now();
    auto found = index.search(space, q, k, opt);
    space.fence();
    t.seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (keep && r == 0)
      *keep = found;
  }
  return t;
}

std::string json_job(std::string const &name, std::size_t n, std::size_t q, std::size_t d, int k,
                     Timing const &t)
{
  std::ostringstream o;
  o.precision(6);
  o << "{\"job\": \"" << name << "\", \"n\": " << n << ", \"q\": " << q << ", \"d\": " << d
    << ", \"k\": " << k << ", \"median_s\": " << t.median() << ", \"runs_s\": [";
  for (std::size_t i = 0; i < t.seconds.size(); ++i)
    o << (i ? ", " : "") << t.seconds[i];
  o << "], \"gflops\": " << 2.0 * double(n) * double(q) * double(d) / t.median() / 1e9
    << ", \"exact_fallbacks\": " << t.stats.exact_fallbacks
    << ", \"integer_preselection\": " << (t.stats.integer_preselection ? "true" : "false")
    << ", \"isa\": \"" << (t.stats.isa ? t.stats.isa : "") << "\"}";
  return o.str();
}
} // namespace

int main(int argc, char **argv)
{
  Kokkos::ScopeGuard guard(argc, argv);
  try
  {
    Args const a = parse(argc, argv);
    std::vector<std::string> jobs;
    // The whole file is written again after every job: a run stopped by a time limit keeps
    // every figure measured so far (a lent GPU's minutes are few).
    auto write = [&](bool complete)
    {
      std::ofstream out(a.out + ".partial");
      out << "{\"backend\": \"" << Space::name() << "\", \"repeats\": " << a.repeats
          << ", \"quick\": " << (a.quick ? "true" : "false")
          << ", \"complete\": " << (complete ? "true" : "false") << ", \"jobs\": [\n";
      for (std::size_t i = 0; i < jobs.size(); ++i)
        out << "  " << jobs[i] << (i + 1 < jobs.size() ? ",\n" : "\n");
      out << "]}\n";
      out.close();
      if (!out || std::rename((a.out + ".partial").c_str(), a.out.c_str()) != 0)
        throw std::runtime_error("cannot write " + a.out);
    };
    auto report = [&](std::string const &line)
    {
      std::cout << line << std::endl;
      jobs.push_back(line);
      write(false);
    };
    // Fashion-MNIST 10,000 x 60,000 x 784, float32 pixel values, L2.
    try
    {
      auto const data = fastknn::io::load_mnist_dir(a.fashion);
      std::size_t const n = a.quick ? 6000 : data.train.images.rows;
      std::size_t const nq = a.quick ? 200 : data.test.images.rows;
      std::size_t const d = data.train.images.cols;
      Matrix const x = to_space(data.train.images.data.data(), n, d, "bench::fashion_train");
      Matrix const q = to_space(data.test.images.data.data(), nq, d, "bench::fashion_test");
      for (int k : {1, 10, 100, 1024, 4096})
      {
        fastknn::Neighbors<MS, float> found;
        Timing const t = time_search(x, q, k, a.repeats, &found);
        report(json_job("fashion_l2sq", n, nq, d, k, t));
        if (!a.indices_dir.empty() && k <= 100)
        {
          auto const h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
          std::vector<std::int32_t> v(h.data(), h.data() + h.size());
          fastknn::io::write_npy(a.indices_dir + "/fastknn_fashion_k" + std::to_string(k) + ".npy",
                                 v.data(), nq, std::size_t(k));
        }
      }
    }
    catch (fastknn::Error const &e)
    {
      std::cout << "SKIPPED fashion jobs: " << e.what() << std::endl;
    }
    // 10^6 x 128 uniform random rows, k = 10, batches of 1, 16 and 10,000 queries.
    std::size_t const n = a.quick ? 100'000 : 1'000'000, d = 128;
    Matrix const x = random_rows(n, d, 1, "bench::random_database");
    for (std::size_t nq : {std::size_t(1), std::size_t(16), std::size_t(a.quick ? 1000 : 10'000)})
    {
      Matrix const q = random_rows(nq, d, 2, "bench::random_queries");
      report(json_job("random_l2sq", n, nq, d, 10, time_search(x, q, 10, a.repeats)));
    }
    write(true);
  }
  catch (std::exception const &e)
  {
    std::cerr << "fastknn_gpu_bench: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
