// Differential fuzzer for fastknn::search: every input chooses a search (shapes, metric, float or
// double, exclude_self, workspace budget) and data from an adversarial family; the result must
// be exactly the specified one (tests/spec.hpp, written independently of the library): at every
// rank the index of the order by (specified score rounded to the output type, index) and that
// rounded value bit for bit, the specified score itself within its rounding bound of the long
// double truth; or a refusal with fastknn::Error for a documented reason.
//
// The entry point is LLVMFuzzerTestOneInput, so a libFuzzer build can drive it. Built with the
// project's compiler (g++: no libFuzzer, since Debian's Kokkos is built with GCC's OpenMP), its
// own main() runs the given files, or random inputs for a time or a number of runs:
//   fuzz_search [--seconds S] [--runs N] [--seed X] [--min-searches N] [--min-answered N]
//               [--save DIR] [FILE...]
// Without --seed each run starts from a fresh seed, printed first; --seed replays a run. A run
// that made fewer than --min-searches searches (default 20) or got fewer than --min-answered
// non-refused answers (default 10) fails: it explored nothing. A finding prints the case and the
// input in hex (to add under tests/fuzz/regressions/search/), writes it to DIR/finding-<hash> and
// exits with status 1. See docs/fuzzing.md.

#include "spec.hpp"

#include <fastknn/fastknn.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace
{

using fastknn::Metric;

/// Reads the input front to back; past its end every read is 0.
struct Bytes
{
  std::uint8_t const *p;
  std::size_t n, at = 0;
  unsigned byte() { return at < n ? p[at++] : 0u; }
  unsigned u16() { return byte() | (byte() << 8); }
  std::uint64_t seed()
  {
    std::uint64_t h = 1469598103934665603ull; // FNV-1a over the rest of the input
    for (; at < n; ++at)
      h = (h ^ p[at]) * 1099511628211ull;
    return h;
  }
};

enum class Family
{
  uniform,
  subnormal,  // values ~1e-39 .. 1e-41 (subnormal floats)
  underflow,  // ~1e-20: normal floats whose products are subnormal
  threshold,  // near the overflow refusal threshold of the float path
  offset,     // a large common offset (1e6) plus small detail
  duplicates, // few distinct rows, many exact copies
  grid,       // small integers (the exact 8-bit path)
  one_ulp,    // rows one ulp apart around one point
  mixed,      // huge and tiny coordinates in one row
  count
};

char const *family_name(Family f)
{
  static char const *names[] = {"uniform",    "subnormal", "underflow", "threshold", "offset",
                                "duplicates", "grid",      "one_ulp",   "mixed"};
  return names[int(f)];
}

struct Case
{
  Metric metric;
  bool use_double, exclude_self;
  std::size_t n, q, d;
  int k;
  std::size_t workspace;
  Family family;
  std::uint64_t seed;
};

Case decode(Bytes &in)
{
  Case c{};
  unsigned const flags = in.byte();
  c.metric = Metric(flags % 5);
  c.use_double = (flags >> 3) & 1;
  unsigned const shape = in.byte();
  c.d = (shape & 3) == 0 ? 1 : 1 + in.byte() % 80; // D = 1 a quarter of the time
  c.n = 1 + in.u16() % 600;
  c.exclude_self = ((flags >> 4) & 1) && c.n >= 2;
  c.q = c.exclude_self ? c.n : 1 + in.byte() % 40;
  unsigned const kk = in.u16();
  c.k = (shape >> 2) & 1 ? int(c.n) : 1 + int(kk % std::min<std::size_t>(c.n, 200));
  if (c.exclude_self)
    c.k = std::max(1, std::min(c.k, int(c.n) - 1));
  c.workspace = (shape >> 3) & 1 ? std::size_t(64 + in.byte() * 4) << 10 : std::size_t(512) << 20;
  c.family = Family(in.byte() % unsigned(Family::count));
  c.seed = in.seed();
  return c;
}

template <class T>
void fill(Case const &c, std::vector<T> &x, std::vector<T> &q)
{
  std::mt19937_64 gen(c.seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  double const fmax = double(std::numeric_limits<float>::max());
  double const limit =
      c.metric == Metric::L1 ? fmax / (4.0 * double(c.d)) : std::sqrt(fmax / (64.0 * double(c.d)));
  std::size_t const distinct = 1 + gen() % 5;
  std::vector<double> base(c.d);
  for (auto &v : base)
    v = u(gen);
  auto value = [&](std::size_t row, std::size_t p) -> double
  {
    switch (c.family)
    {
    case Family::uniform:
      return u(gen);
    case Family::subnormal:
      return u(gen) * 1e-39 * std::pow(10.0, -double(gen() % 3));
    case Family::underflow:
      return u(gen) * 1e-20;
    case Family::threshold:
      return u(gen) * limit * (gen() % 2 ? 0.999 : 1.001);
    case Family::offset:
      return 1e6 + u(gen);
    case Family::duplicates:
    {
      std::mt19937_64 g(c.seed ^ (row % distinct) * 0x9e3779b97f4a7c15ull ^ p);
      return std::uniform_real_distribution<double>(-1.0, 1.0)(g);
    }
    case Family::grid:
      return double(gen() % 256);
    case Family::one_ulp:
    {
      float v = float(base[p]);
      for (std::size_t s = gen() % 4; s > 0; --s)
        v = std::nextafter(v, gen() % 2 ? 2.0f : -2.0f);
      return v;
    }
    case Family::mixed:
      return (p % 2 ? 1e-25 : 1e15) * u(gen);
    default:
      return 0;
    }
  };
  x.resize(c.n * c.d);
  for (std::size_t i = 0; i < c.n; ++i)
    for (std::size_t p = 0; p < c.d; ++p)
      x[i * c.d + p] = T(value(i, p));
  if (c.exclude_self)
    q = x;
  else
  {
    q.resize(c.q * c.d);
    for (std::size_t i = 0; i < c.q; ++i)
      for (std::size_t p = 0; p < c.d; ++p)
        q[i * c.d + p] = T(value(i, p));
  }
}

std::string describe(Case const &c)
{
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "metric %s, %s, N = %zu, Q = %zu, D = %zu, k = %d, exclude_self %d, "
                "workspace %zu, family %s",
                std::string(fastknn::metric_name(c.metric)).c_str(),
                c.use_double ? "double" : "float", c.n, c.q, c.d, c.k, int(c.exclude_self),
                c.workspace, family_name(c.family));
  return buf;
}

[[noreturn]] void finding(Case const &c, std::string const &what)
{
  std::fprintf(stderr, "fastknn fuzz_search: FINDING: %s\n  case: %s\n", what.c_str(),
               describe(c).c_str());
  std::fflush(stderr);
  std::abort();
}

/// Refusals the documentation promises for valid calls on such data.
bool expected_refusal(std::string const &msg)
{
  for (char const *ok : {"overflows", "all zeros", "too small for one tile"})
    if (msg.find(ok) != std::string::npos)
      return true;
  return false;
}

struct Counts
{
  std::size_t runs = 0, refused = 0, checked_ranks = 0;
} counts;

template <class T>
void run_case(Case const &c)
{
  std::vector<T> x, q;
  fill(c, x, q);
  fastknn::SearchOptions opt;
  opt.metric = c.metric;
  opt.exclude_self = c.exclude_self;
  opt.workspace_bytes = c.workspace;
  using Host = Kokkos::DefaultHostExecutionSpace;
  using Unmanaged = Kokkos::View<T const **, Kokkos::LayoutRight, Kokkos::HostSpace,
                                 Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  Unmanaged xv(x.data(), c.n, c.d), qv(q.data(), c.q, c.d);
  fastknn::Neighbors<Host::memory_space, T> found;
  try
  {
    found = fastknn::search(Host{}, xv, qv, c.k, opt);
  }
  catch (fastknn::Error const &e)
  {
    if (!expected_refusal(e.what()))
      finding(c, std::string("unexpected refusal: ") + e.what());
    ++counts.refused;
    return;
  }
  if (found.indices.extent(0) != c.q || found.indices.extent(1) != std::size_t(c.k))
    finding(c, "result has the wrong shape");
  using fastknn::test::spec_key;
  using fastknn::test::spec_reported;
  using fastknn::test::spec_score;
  std::vector<T> key(c.n);
  std::vector<std::int32_t> order(c.n);
  for (std::size_t i = 0; i < c.q; ++i)
  {
    T const *qi = &q[i * c.d];
    for (std::size_t r = 0; r < c.n; ++r)
      key[r] = spec_key<T>(c.metric, spec_score(c.metric, qi, &x[r * c.d], c.d));
    // The library's contract: ranked by the specified value in T, ties by the smaller index.
    order.resize(c.n);
    std::iota(order.begin(), order.end(), 0);
    if (c.exclude_self)
      order.erase(order.begin() + std::ptrdiff_t(i));
    std::sort(order.begin(), order.end(),
              [&](std::int32_t a, std::int32_t b)
              { return key[a] < key[b] || (!(key[b] < key[a]) && a < b); });
    for (int j = 0; j < c.k; ++j)
    {
      std::int32_t const got = found.indices(i, j), want = order[std::size_t(j)];
      T const value = found.distances(i, j), want_value = spec_reported<T>(c.metric, key[want]);
      std::string const where = "query " + std::to_string(i) + " rank " + std::to_string(j);
      if ((got != want || !(value == want_value)) && std::getenv("FASTKNN_FUZZ_VERBOSE"))
        for (int jj = 0; jj < c.k; ++jj)
          std::fprintf(stderr, "rank %d: got %d (%.17g), specified %d (%.17g)\n", jj,
                       found.indices(i, jj), double(found.distances(i, jj)), order[jj],
                       double(spec_reported<T>(c.metric, key[order[jj]])));
      if (got != want)
        finding(c,
                where + ": index " + std::to_string(got) + ", specified " + std::to_string(want));
      if (!(value == want_value))
        finding(c, where + ": value " + std::to_string(double(value)) + ", specified " +
                       std::to_string(double(want_value)) + " (bit for bit)");
      // The specification against the mathematics.
      auto const s = fastknn::test::check_spec(c.metric, qi, &x[std::size_t(want) * c.d], c.d);
      if (!s.ok)
        finding(c, where + ": specified value " + std::to_string(s.spec) + " off the truth " +
                       std::to_string(double(s.truth.value)) + " by more than its rounding bound");
      ++counts.checked_ranks;
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const *data, std::size_t size)
{
  static bool const started = []
  {
    setenv("OMP_PROC_BIND", "false", 0);
    Kokkos::initialize();
    std::atexit([] { Kokkos::finalize(); });
    return true;
  }();
  (void)started;
  Bytes in{data, size};
  Case const c = decode(in);
  ++counts.runs;
  if (c.use_double)
    run_case<double>(c);
  else
    run_case<float>(c);
  return 0;
}

#ifndef FASTKNN_LIBFUZZER
namespace
{
std::string save_dir = ".";
std::vector<std::uint8_t> current;

void save_current()
{
  std::uint64_t h = 1469598103934665603ull;
  for (auto b : current)
    h = (h ^ b) * 1099511628211ull;
  char name[64];
  std::snprintf(name, sizeof name, "finding-%016llx", static_cast<unsigned long long>(h));
  std::ofstream(save_dir + "/" + name, std::ios::binary)
      .write(reinterpret_cast<char const *>(current.data()), std::streamsize(current.size()));
  // The input in hex as well, so that a finding in a CI log whose build tree is gone can be
  // added to the regression inputs as it is.
  std::string hex;
  for (auto b : current)
  {
    char two[5];
    std::snprintf(two, sizeof two, "\\x%02x", unsigned(b));
    hex += two;
  }
  std::fprintf(stderr,
               "  input saved as %s/%s; to keep it as a regression input:\n"
               "    printf '%s' > tests/fuzz/regressions/search/%s\n",
               save_dir.c_str(), name, hex.c_str(), name);
}
} // namespace

int main(int argc, char *argv[])
{
  double seconds = 0;
  long long runs = -1;
  std::uint64_t seed = 0;
  bool seeded = false;
  std::size_t min_searches = 20, min_answered = 10;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i)
  {
    std::string const a = argv[i];
    if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--runs" && i + 1 < argc)
      runs = std::atoll(argv[++i]);
    else if (a == "--seed" && i + 1 < argc)
    {
      seed = std::strtoull(argv[++i], nullptr, 0);
      seeded = true;
    }
    else if (a == "--min-searches" && i + 1 < argc)
      min_searches = std::size_t(std::atoll(argv[++i]));
    else if (a == "--min-answered" && i + 1 < argc)
      min_answered = std::size_t(std::atoll(argv[++i]));
    else if (a == "--save" && i + 1 < argc)
      save_dir = argv[++i];
    else if (a.rfind("--", 0) == 0)
    {
      std::fprintf(stderr, "fuzz_search: unknown option %s\n", a.c_str());
      return 2;
    }
    else
      files.push_back(a);
  }
  if (!seeded) // a fresh seed each run, so that CI does not check the same cases every time
    seed = (std::uint64_t(std::random_device{}()) << 32) ^ std::random_device{}() ^
           std::uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  std::signal(SIGABRT,
              [](int)
              {
                save_current();
                std::_Exit(1);
              });
  for (auto const &f : files)
  {
    std::ifstream in(f, std::ios::binary);
    if (!in)
    {
      std::fprintf(stderr, "fuzz_search: cannot read %s\n", f.c_str());
      return 2;
    }
    current.assign(std::istreambuf_iterator<char>(in), {});
    LLVMFuzzerTestOneInput(current.data(), current.size());
  }
  std::size_t const from_files = counts.runs, refused_files = counts.refused;
  if (files.empty() && runs < 0 && seconds <= 0)
    runs = 200;
  bool const random_phase = runs != 0;
  if (random_phase)
    std::printf("fuzz_search: seed %llu (replay with --seed %llu)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 gen(seed);
  auto const t0 = std::chrono::steady_clock::now();
  auto elapsed = [&]
  { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (long long r = 0; (runs < 0 || r < runs) && (seconds <= 0 || elapsed() < seconds); ++r)
  {
    current.resize(8 + gen() % 24);
    for (auto &b : current)
      b = std::uint8_t(gen());
    LLVMFuzzerTestOneInput(current.data(), current.size());
  }
  std::size_t const searches = counts.runs - from_files;
  std::size_t const answered = searches - (counts.refused - refused_files);
  std::printf("fuzz_search: %zu input files, %zu random searches in %.1f s (seed %llu), %zu "
              "refused as documented, %zu answered; %zu ranks checked bit for bit against the "
              "specified score, no finding\n",
              from_files, searches, elapsed(), static_cast<unsigned long long>(seed),
              counts.refused, answered, counts.checked_ranks);
  if (random_phase && (searches < min_searches || answered < min_answered))
  {
    std::printf("fuzz_search: FAIL: too little explored (at least %zu searches and %zu answered "
                "ones wanted)\n",
                min_searches, min_answered);
    return 1;
  }
  return 0;
}
#endif
