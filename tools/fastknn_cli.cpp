// The `fastknn` command: k-NN classification of MNIST-format data sets and exact k-NN search of
// .npy/.fvecs/.bvecs/IDX files. Exit codes: 0 success, 1 bad data or failed search, 2 bad usage.

#include "backend.hpp"
#include <fastknn/classifier.hpp>
#include <fastknn/fastknn.hpp>
#include <fastknn/io.hpp>

#include <Kokkos_Core.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace
{

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr int exit_interrupted = 130; // 128 + SIGINT, as shells report a Ctrl-C

/// Set by the first SIGINT or SIGTERM; the search's progress callback reads it and stops.
volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int sig)
{
  if (stop_requested != 0) // the second Ctrl-C ends the process at once
  {
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  stop_requested = 1;
}

/// Lets the first Ctrl-C (or SIGTERM) stop the work cleanly: no output file is left behind.
void install_stop_handlers()
{
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

/// Throws fastknn::Cancelled once a stop was asked for (between stages of the work).
void stop_point()
{
  if (stop_requested != 0)
    throw fastknn::Cancelled("interrupted");
}
constexpr char const *default_data_dir = "/usr/share/datasets/fashion-mnist";

/// A command-line mistake: reported on one line, exit code 2.
class UsageError : public std::runtime_error
{
public:
  using std::runtime_error::runtime_error;
};

constexpr char const *main_help = R"(usage: fastknn <command> [options]

Exact k-nearest-neighbour search and classification (fastknn )" FASTKNN_VERSION_STRING R"().

commands:
  classify   k-NN classification of an MNIST-format data set, with accuracy and timing
  search     k nearest database rows of each query row, written as .npy files
  groundtruth  the same with the database streamed in blocks (bounded memory), for ANN ground truth

options:
  -h, --help     show this help (or `fastknn <command> --help` for a command's options)
  --version      print the version and exit

Kokkos options (--kokkos-num-threads=N, --kokkos-device-id=N, ...) are passed to Kokkos.
Exit status: 0 success, 1 invalid data or failed search, 2 invalid command line.
)";

constexpr char const *classify_help = R"(usage: fastknn classify [options]

Classifies the test split of an MNIST-format data set with the exact k nearest training images
(scikit-learn KNeighborsClassifier semantics) and reports accuracy and speed.

options:
  --data DIR               folder with train-images-idx3-ubyte, train-labels-idx1-ubyte,
                           t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (plain or .gz)
                           [default: /usr/share/datasets/fashion-mnist]
  -k K                     number of neighbours that vote [default: 1]
  --metric M               l2 | sqeuclidean | l1 | cosine | ip | chebyshev | minkowski
                           [default: l2]
  --p P                    minkowski's exponent, finite and > 0 [default: 2]
  --weights W              uniform | distance (1/d; 1/(1 - similarity) for cosine; not with ip)
                           [default: uniform]
  --limit-test N           classify only the first N test images
  --json FILE              also write the results as a JSON object to FILE
  --save-predictions FILE  write the predicted labels as an int32 .npy of shape (Q, 1)
  --threads N              number of host threads (Kokkos' --kokkos-num-threads)
  -q, --quiet              no progress bar; print only the accuracy line
  -h, --help               show this help

Only the search and the vote are timed; loading is reported separately.
)";

constexpr char const *search_help =
    R"(usage: fastknn search --database FILE [--queries FILE] (-k K | --radius R) [options]

Writes the exact k nearest database rows of each query row (best first, ties to the smaller
index) as Q x k .npy files; with --radius, every row within R of each query (distance <= R;
for cosine and ip, similarity >= R), best first, as compressed rows: the rows of query i are
indices[offsets[i]:offsets[i+1]]. Files: .npy, .fvecs, .bvecs, .ivecs or IDX (plain or gzip).

options:
  --database FILE          the N x D points to search
  --queries FILE           the Q x D query points (omit with --exclude-self)
  -k K                     number of neighbours per query
  --radius R               every row within R instead (needs --out-offsets)
  --out-offsets FILE       with --radius: write the int64 row offsets (Q + 1 .npy)
  --metric M               l2 | sqeuclidean | l1 | cosine | ip | chebyshev | minkowski |
                           canberra | braycurtis | hamming | jaccard | dice | kulsinski |
                           matching | rogerstanimoto | russellrao | sokalmichener |
                           sokalsneath | yule [default: l2] (cosine and ip report
                           similarities, largest first)
  --p P                    minkowski's exponent, finite and > 0 [default: 2]
  --exclude-self           the queries are the database; query i never returns row i
  --out-indices FILE       write the int32 neighbour indices (Q x k .npy; with --radius 1-D)
  --out-distances FILE     write the float32 distances or similarities (likewise)
  --threads N              number of host threads (Kokkos' --kokkos-num-threads)
  -q, --quiet              no progress bar and no summary line
  -h, --help               show this help
)";

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0)
{
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// True while a progress line is on stderr without its newline (an error must end it first).
bool progress_line_open = false;

/// Ends a half-drawn progress line; returns nothing.
void close_progress_line()
{
  if (progress_line_open)
    std::fputc('\n', stderr);
  progress_line_open = false;
}

/// Draws "searching 10000 queries [#####     ] 52%  3.1 s, 1650 queries/s, 2.9 s left" on
/// stderr once the work has run for a second, only when stderr is a terminal; fastknn calls it
/// at most ~5 times a second.
class ProgressBar
{
public:
  ProgressBar(bool enabled, std::size_t queries)
      : _enabled(enabled && isatty(STDERR_FILENO) == 1), _queries(queries)
  {
  }

  void start() { _start = Clock::now(); }

  void operator()(double fraction)
  {
    double const elapsed = seconds_since(_start);
    if (!_enabled || (!progress_line_open && (elapsed < 1.0 || fraction >= 1.0)))
      return;
    constexpr int width = 30;
    fraction = std::clamp(fraction, 0.0, 1.0);
    int const filled = int(fraction * width);
    std::string line = "\rsearching " + std::to_string(_queries) + " quer" +
                       (_queries == 1 ? "y" : "ies") + " [" + std::string(filled, '#') +
                       std::string(width - filled, ' ') + "] ";
    char tail[96];
    double const rate = fraction * double(_queries) / elapsed;
    if (fraction > 0.0 && fraction < 1.0)
      std::snprintf(tail, sizeof tail, "%3d%%  %.1f s, %.0f queries/s, %.0f s left",
                    int(fraction * 100), elapsed, rate,
                    std::ceil(elapsed * (1.0 - fraction) / fraction));
    else
      std::snprintf(tail, sizeof tail, "%3d%%  %.1f s, %.0f queries/s", int(fraction * 100),
                    elapsed, rate);
    // "\033[K" clears what a longer earlier line left (the bar is drawn on terminals only).
    std::fputs((line + tail + "\033[K").c_str(), stderr);
    std::fflush(stderr);
    progress_line_open = true;
    if (fraction >= 1.0)
      close_progress_line();
  }

private:
  bool _enabled;
  std::size_t _queries;
  Clock::time_point _start = Clock::now();
};

/// The arguments of one command, consumed front to back.
class ArgList
{
public:
  ArgList(std::vector<std::string> args, std::string command)
      : _args(std::move(args)), _command(std::move(command))
  {
  }

  bool done() const { return _pos >= _args.size(); }

  /// Returns the next option name; a "--name=value" token keeps its value for value().
  std::string next_option()
  {
    std::string tok = _args[_pos++];
    _inline_value.reset();
    if (tok.rfind("--", 0) == 0)
    {
      auto const eq = tok.find('=');
      if (eq != std::string::npos)
      {
        _inline_value = tok.substr(eq + 1);
        tok.resize(eq);
      }
    }
    else if (tok.size() > 2 && tok[0] == '-' && tok[1] != '-')
    {
      _inline_value = tok.substr(tok[2] == '=' ? 3 : 2); // -k5, -k=5
      tok.resize(2);
    }
    else if (tok.empty() || tok[0] != '-')
      throw UsageError("unexpected argument '" + tok + "'" + hint());
    return tok;
  }

  /// Returns the value of option `name`: inline, or the next argument.
  std::string value(std::string const &name)
  {
    if (_inline_value)
      return std::exchange(_inline_value, std::nullopt).value();
    if (done() || _args[_pos].rfind("--", 0) == 0)
      throw UsageError(name + " needs a value" + hint());
    return _args[_pos++];
  }

  /// Returns an option's value as an integer >= min_value.
  long long integer(std::string const &name, long long min_value)
  {
    std::string const v = value(name);
    long long out = 0;
    auto const [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec == std::errc::result_out_of_range)
      throw UsageError(name + " " + v + " is out of range" + hint());
    if (ec != std::errc() || end != v.data() + v.size() || v.empty())
      throw UsageError(name + " '" + v + "' is not a whole number" + hint());
    if (out < min_value)
      throw UsageError(name + " " + v + " is invalid; it must be at least " +
                       std::to_string(min_value) + hint());
    return out;
  }

  /// Rejects a flag given the "--flag=value" form.
  void no_value(std::string const &name)
  {
    if (_inline_value)
      throw UsageError(name + " takes no value" + hint());
  }

  [[noreturn]] void unknown(std::string const &name) const
  {
    throw UsageError("unknown option '" + name + "' for " + _command + hint());
  }

  std::string hint() const { return " (see 'fastknn " + _command + " --help')"; }

private:
  std::vector<std::string> _args;
  std::string _command;
  std::size_t _pos = 0;
  std::optional<std::string> _inline_value;
};

/// Returns the metric named by an option value, or throws UsageError.
fastknn::Metric metric_option(ArgList &args, std::string const &name)
{
  std::string const v = args.value(name);
  try
  {
    return fastknn::parse_metric(v);
  }
  catch (fastknn::Error const &)
  {
    throw UsageError(name + " '" + v +
                     "' is unknown; use l2, sqeuclidean, l1, cosine, ip, chebyshev, minkowski, "
                     "canberra, braycurtis, hamming or a boolean metric (jaccard, dice, ...)" +
                     args.hint());
  }
}

/// Returns Minkowski's exponent from an option value (finite, > 0), or throws UsageError.
double p_option(ArgList &args, std::string const &name)
{
  std::string const v = args.value(name);
  char *end = nullptr;
  double const p = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !(p > 0) || !std::isfinite(p))
    throw UsageError(name + " '" + v +
                     "' is not a finite number > 0 (for p = infinity use --metric chebyshev)" +
                     args.hint());
  return p;
}

/// Options shared by every command that runs a search.
struct RunOptions
{
  std::optional<long long> threads;
  bool quiet = false;
};

/// Handles --threads and --quiet; returns true when `name` was one of them.
bool common_option(ArgList &args, std::string const &name, RunOptions &run)
{
  if (name == "--threads")
    run.threads = args.integer(name, 1);
  else if (name == "--quiet" || name == "-q")
  {
    args.no_value(name);
    run.quiet = true;
  }
  else
    return false;
  return true;
}

/// Owns Kokkos for one command: forwards --kokkos-* flags and maps --threads to
/// --kokkos-num-threads (ScopeGuard takes either argv or InitializationSettings, not both).
class KokkosSession
{
public:
  KokkosSession(std::vector<std::string> const &kokkos_flags, RunOptions const &run)
  {
    _storage.push_back("fastknn");
    _storage.insert(_storage.end(), kokkos_flags.begin(), kokkos_flags.end());
    if (run.threads)
      _storage.push_back("--kokkos-num-threads=" + std::to_string(*run.threads));
    for (auto &s : _storage)
      _argv.push_back(s.data());
    _argv.push_back(nullptr);
    int argc = int(_storage.size());
    static_cast<void>(_guard.emplace(argc, _argv.data()));
  }

private:
  std::vector<std::string> _storage;
  std::vector<char *> _argv;
  std::optional<Kokkos::ScopeGuard> _guard;
};

/// Returns s with JSON string escaping, in quotes.
std::string json_string(std::string_view s)
{
  std::string out = "\"";
  for (char c : s)
  {
    if (c == '"' || c == '\\')
      out += {'\\', c};
    else if (static_cast<unsigned char>(c) < 0x20)
    {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(static_cast<unsigned char>(c)));
      out += buf;
    }
    else
      out += c;
  }
  return out + "\"";
}

/// Returns a double as a JSON number (JSON has no NaN/Inf: those become null).
/// One line on what the search did: the kernels that ran, the candidates re-scored exactly per
/// query and the queries redone by an exact scan (the two that explain a slow run).
std::string stats_line(fastknn::SearchStats const &s, std::size_t queries)
{
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%s pre-selection (%s, %d x %d block), %.1f candidates re-scored per query, "
                "%zu exact fallback%s",
                s.integer_preselection ? "exact 8-bit" : "float", s.isa, s.query_block,
                s.database_block, queries > 0 ? double(s.rescored) / double(queries) : 0.0,
                s.exact_fallbacks, s.exact_fallbacks == 1 ? "" : "s");
  return buf;
}

/// The same as JSON fields (no braces), for --json.
std::string stats_json(fastknn::SearchStats const &s)
{
  return "\"preselection\": \"" + std::string(s.integer_preselection ? "int8" : "float") +
         "\", \"isa\": \"" + s.isa + "\", \"register_block\": \"" + std::to_string(s.query_block) +
         "x" + std::to_string(s.database_block) +
         "\", \"rescored\": " + std::to_string(s.rescored) +
         ", \"exact_fallbacks\": " + std::to_string(s.exact_fallbacks);
}

std::string json_number(double v)
{
  if (!std::isfinite(v))
    return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

/// Writes text to path; throws fastknn::Error naming the file.
void write_text_file(std::string const &path, std::string const &text)
{
  std::string const partial = path + ".partial"; // renamed once complete, as io::write_npy does
  std::FILE *f = std::fopen(partial.c_str(), "w");
  if (f == nullptr)
    throw fastknn::Error("'" + path + "': cannot open for writing (as '" + partial +
                         "'): " + std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fclose(f) == 0 && ok;
  if (ok && std::rename(partial.c_str(), path.c_str()) == 0)
    return;
  std::remove(partial.c_str());
  throw fastknn::Error("'" + path + "': write failed (disk full, I/O error or not a file)");
}

/// Writes a command's output files all or none: a failure removes those already written.
class OutputSet
{
public:
  template <class Write>
  void write(std::string const &path, Write const &write)
  {
    if (path.empty())
      return;
    write(path);
    _written.push_back(path);
  }
  void commit() { _written.clear(); }
  ~OutputSet()
  {
    for (auto const &p : _written)
      std::remove(p.c_str());
  }

private:
  std::vector<std::string> _written;
};

/// What `classify --json` reports (single-process and distributed runs alike).
struct ClassifyFacts
{
  std::string data_dir;
  int threads;
  fastknn::ClassifierOptions const &options;
  std::size_t n_train, n_test, dim;
  int n_classes;
  double accuracy;
  std::size_t correct;
  double seconds, load_seconds, fit_seconds;
  fastknn::SearchStats const &stats;
  std::string extra; // more fields ("key": value pairs, each followed by a comma), or empty
};

std::string classify_json(ClassifyFacts const &f)
{
  std::string json = "{\n";
  auto const field = [&json](char const *key, std::string const &value, bool last = false)
  { json += std::string("  \"") + key + "\": " + value + (last ? "\n" : ",\n"); };
  double const qps = f.seconds > 0 ? double(f.n_test) / f.seconds : 0.0;
  field("fastknn_version", json_string(FASTKNN_VERSION_STRING));
  field("command", json_string("classify"));
  field("data", json_string(f.data_dir));
  field("backend", json_string(fastknn::backend_name()));
  field("threads", std::to_string(f.threads));
  field("k", std::to_string(f.options.k));
  field("metric", json_string(fastknn::metric_name(f.options.metric)));
  field("weights", json_string(fastknn::weights_name(f.options.weights)));
  field("n_train", std::to_string(f.n_train));
  field("n_test", std::to_string(f.n_test));
  field("dim", std::to_string(f.dim));
  field("n_classes", std::to_string(f.n_classes));
  field("accuracy", json_number(f.accuracy));
  field("correct", std::to_string(f.correct));
  field("seconds", json_number(f.seconds));
  field("queries_per_second", json_number(qps));
  field("load_seconds", json_number(f.load_seconds));
  field("fit_seconds", json_number(f.fit_seconds));
  json += f.extra;
  field("search", "{" + stats_json(f.stats) + "}", true);
  return json + "}\n";
}

/// The search's progress callback: draws the bar, and stops the search after Ctrl-C/SIGTERM.
fastknn::ProgressCallback progress_to(ProgressBar &bar)
{
  return [&bar](double f)
  {
    bar(f);
    return stop_requested == 0;
  };
}

} // namespace

#ifdef FASTKNN_CLI_MPI
#include "distributed_cli.hpp"
#else
namespace
{
bool is_root()
{
  return true;
}
} // namespace
#endif

#include "groundtruth_cli.hpp"

namespace
{

int run_classify(std::vector<std::string> args_in, std::vector<std::string> const &kokkos_flags)
{
  ArgList args(std::move(args_in), "classify");
  std::string data_dir = default_data_dir, json_path, predictions_path;
  fastknn::ClassifierOptions options;
  options.k = 1;
  options.metric = fastknn::Metric::L2;
  std::optional<long long> limit_test;
  RunOptions run;
  while (!args.done())
  {
    std::string const name = args.next_option();
    if (name == "-h" || name == "--help")
    {
      std::fputs(classify_help, stdout);
      return 0;
    }
    if (common_option(args, name, run))
      continue;
    if (name == "--data")
      data_dir = args.value(name);
    else if (name == "-k")
    {
      long long const k = args.integer(name, 1);
      if (k > INT32_MAX)
        throw UsageError("-k " + std::to_string(k) + " is too large" + args.hint());
      options.k = int(k);
    }
    else if (name == "--metric")
      options.metric = metric_option(args, name);
    else if (name == "--p")
      options.minkowski_p = p_option(args, name);
    else if (name == "--weights")
    {
      std::string const v = args.value(name);
      if (v != "uniform" && v != "distance")
        throw UsageError("--weights '" + v + "' is unknown; use uniform or distance" + args.hint());
      options.weights = fastknn::parse_weights(v);
    }
    else if (name == "--limit-test")
      limit_test = args.integer(name, 1);
    else if (name == "--json")
      json_path = args.value(name);
    else if (name == "--save-predictions")
      predictions_path = args.value(name);
    else
      args.unknown(name);
  }
  if (options.metric == fastknn::Metric::InnerProduct &&
      options.weights == fastknn::Weights::Distance)
    throw UsageError("--weights distance needs a distance, but --metric ip ranks by similarity; "
                     "use --weights uniform, or --metric cosine or l2");

  KokkosSession kokkos(kokkos_flags, run);
#ifdef FASTKNN_CLI_MPI
  if (distributed())
    return classify_distributed(
        ClassifyArgs{data_dir, json_path, predictions_path, options, limit_test, run});
#endif
  using Space = fastknn::DefaultBackend;
  int const threads = Space().concurrency();

  auto const t_load = Clock::now();
  fastknn::io::MnistData data = fastknn::io::load_mnist_dir(data_dir);
  stop_point();
  double const load_seconds = seconds_since(t_load);
  auto &test = data.test;
  std::size_t const test_available = test.images.rows;
  if (limit_test && std::size_t(*limit_test) < test.images.rows)
  {
    test.images.rows = std::size_t(*limit_test);
    test.images.data.resize(test.images.rows * test.images.cols);
    test.labels.resize(test.images.rows);
  }
  std::size_t const n_train = data.train.images.rows, n_test = test.images.rows;
  std::size_t const dim = data.train.images.cols;

  ProgressBar bar(!run.quiet, n_test);
  options.progress = progress_to(bar);
  fastknn::SearchStats stats;
  options.stats = &stats;
  fastknn::KNeighborsClassifier<Space> classifier(options);
  auto const t_fit = Clock::now();
  classifier.fit(data.train.images, data.train.labels);
  Space().fence("fastknn_cli::fit");
  double const fit_seconds = seconds_since(t_fit);
  std::string const metric(fastknn::metric_name(options.metric));
  std::string const weights(fastknn::weights_name(options.weights));

  // The header goes out before the search, so a terminal shows what the bar is measuring.
  if (!run.quiet)
  {
    std::printf("fastknn %s classify  %s\n", FASTKNN_VERSION_STRING, data_dir.c_str());
    std::printf("  data      train %zu x %zu, test %zu", n_train, dim, n_test);
    if (n_test < test_available)
      std::printf(" (first %zu of %zu)", n_test, test_available);
    std::printf(", %d classes\n", classifier.n_classes());
    std::printf("  backend   %s, %d thread%s\n", fastknn::backend_name(), threads,
                threads == 1 ? "" : "s");
    std::printf("  model     k = %d, metric %s, weights %s\n", options.k, metric.c_str(),
                weights.c_str());
    std::printf("  load      %.3f s reading files, %.3f s fit\n", load_seconds, fit_seconds);
    std::fflush(stdout);
  }
  bar.start();
  auto const t_predict = Clock::now();
  std::vector<std::int32_t> const predicted = classifier.predict(test.images);
  double const seconds = seconds_since(t_predict);
  close_progress_line();

  double const acc = fastknn::accuracy(predicted, test.labels);
  std::size_t const correct = std::size_t(std::llround(acc * double(n_test)));
  double const qps = seconds > 0 ? double(n_test) / seconds : 0.0;

  stop_point();
  OutputSet outputs;
  outputs.write(predictions_path, [&](std::string const &p)
                { fastknn::io::write_npy(p, predicted.data(), predicted.size(), 1); });
  if (!json_path.empty())
  {
    ClassifyFacts const facts{
        data_dir, threads, options, n_train,      n_test,      dim,   classifier.n_classes(),
        acc,      correct, seconds, load_seconds, fit_seconds, stats, ""};
    std::string const json = classify_json(facts);
    outputs.write(json_path, [&](std::string const &p) { write_text_file(p, json); });
  }
  outputs.commit();

  if (run.quiet)
  {
    std::printf("accuracy %.4f (%zu / %zu)\n", acc, correct, n_test);
    return 0;
  }
  std::printf("  accuracy  %.4f (%zu / %zu correct)\n", acc, correct, n_test);
  std::printf("  time      %.3f s search + vote, %.1f queries/s\n", seconds, qps);
  std::printf("  search    %s\n", stats_line(stats, n_test).c_str());
  return 0;
}

/// search --radius: the radius search and its three outputs (all or none written).
template <class Space>
int write_radius(Space const &space, fastknn::io::Matrix<float> const &database,
                 fastknn::io::Matrix<float> const &queries, double radius,
                 fastknn::RadiusOptions const &options, std::string const &offsets_path,
                 std::string const &indices_path, std::string const &distances_path,
                 RunOptions const &run, Clock::time_point t0)
{
  auto const found =
      fastknn::radius_search(space, std::span<float const>(database.data),
                             std::span<float const>(queries.data), database.cols, radius, options);
  double const seconds = seconds_since(t0);
  close_progress_line();
  stop_point();
  std::vector<std::int64_t> offsets(found.offsets.begin(), found.offsets.end());
  OutputSet outputs;
  outputs.write(offsets_path, [&](std::string const &p)
                { fastknn::io::write_npy_vector(p, offsets.data(), offsets.size()); });
  outputs.write(indices_path, [&](std::string const &p)
                { fastknn::io::write_npy_vector(p, found.indices.data(), found.indices.size()); });
  outputs.write(distances_path,
                [&](std::string const &p) {
                  fastknn::io::write_npy_vector(p, found.distances.data(), found.distances.size());
                });
  outputs.commit();
  if (!run.quiet)
    std::printf("searched %zu queries in %zu x %zu points, radius %g, metric %s: %zu pairs "
                "inside (%.1f per query), %.3f s, %.1f queries/s (%s, %d threads)\n",
                queries.rows, database.rows, database.cols, radius,
                std::string(fastknn::metric_name(options.metric)).c_str(), found.indices.size(),
                double(found.indices.size()) / double(queries.rows), seconds,
                seconds > 0 ? double(queries.rows) / seconds : 0.0, fastknn::backend_name(),
                space.concurrency());
  if (!run.quiet && options.stats != nullptr)
    std::printf("  first round: %s\n", stats_line(*options.stats, queries.rows).c_str());
  return 0;
}

int run_search(std::vector<std::string> args_in, std::vector<std::string> const &kokkos_flags)
{
  ArgList args(std::move(args_in), "search");
  std::string database_path, queries_path, indices_path, distances_path;
  std::string offsets_path;
  std::optional<int> k;
  std::optional<double> radius;
  fastknn::RadiusOptions options; // a SearchOptions with the radius search's own two
  options.metric = fastknn::Metric::L2;
  RunOptions run;
  while (!args.done())
  {
    std::string const name = args.next_option();
    if (name == "-h" || name == "--help")
    {
      std::fputs(search_help, stdout);
      return 0;
    }
    if (common_option(args, name, run))
      continue;
    if (name == "--database")
      database_path = args.value(name);
    else if (name == "--queries")
      queries_path = args.value(name);
    else if (name == "-k")
    {
      long long const v = args.integer(name, 1);
      if (v > INT32_MAX)
        throw UsageError("-k " + std::to_string(v) + " is too large" + args.hint());
      k = int(v);
    }
    else if (name == "--radius")
    {
      std::string const v = args.value(name);
      char *end = nullptr;
      double const r = std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size() || std::isnan(r))
        throw UsageError("--radius '" + v + "' is not a number" + args.hint());
      radius = r;
    }
    else if (name == "--out-offsets")
      offsets_path = args.value(name);
    else if (name == "--metric")
      options.metric = metric_option(args, name);
    else if (name == "--p")
      options.minkowski_p = p_option(args, name);
    else if (name == "--exclude-self")
    {
      args.no_value(name);
      options.exclude_self = true;
    }
    else if (name == "--out-indices")
      indices_path = args.value(name);
    else if (name == "--out-distances")
      distances_path = args.value(name);
    else
      args.unknown(name);
  }
  if (database_path.empty())
    throw UsageError("search needs --database FILE" + args.hint());
  if (k && radius)
    throw UsageError("give -k K or --radius R, not both" + args.hint());
  if (!k && !radius)
    throw UsageError("search needs -k K (or --radius R)" + args.hint());
  if (radius && offsets_path.empty())
    throw UsageError("--radius needs --out-offsets FILE (where each query's rows start)" +
                     args.hint());
  if (!radius && !offsets_path.empty())
    throw UsageError("--out-offsets goes with --radius" + args.hint());
  if (options.exclude_self && !queries_path.empty() && queries_path != database_path)
    throw UsageError("--exclude-self searches the database against itself; omit --queries" +
                     args.hint());
  if (!options.exclude_self && queries_path.empty())
    throw UsageError("search needs --queries FILE (or --exclude-self)" + args.hint());
  if (indices_path.empty() && distances_path.empty())
    throw UsageError("search needs --out-indices FILE and/or --out-distances FILE" + args.hint());

  KokkosSession kokkos(kokkos_flags, run);
#ifdef FASTKNN_CLI_MPI
  if (distributed())
    return search_distributed(SearchArgs{database_path, queries_path, indices_path, distances_path,
                                         k.value_or(0), options, run, radius, offsets_path});
#endif
  using Space = fastknn::DefaultBackend;
  Space space;
  fastknn::io::Matrix<float> const database = fastknn::io::read_matrix(database_path);
  fastknn::io::Matrix<float> queries_storage;
  if (!options.exclude_self)
    queries_storage = fastknn::io::read_matrix(queries_path);
  stop_point();
  fastknn::io::Matrix<float> const &queries = options.exclude_self ? database : queries_storage;

  // The host entry point takes one dimension for both arrays: check the queries' here.
  if (queries.cols != database.cols)
    throw fastknn::Error("dimension mismatch: the database has " + std::to_string(database.cols) +
                         " columns but the queries have " + std::to_string(queries.cols) +
                         "; both must have the same number of columns");
  ProgressBar bar(!run.quiet, queries.rows);
  options.progress = progress_to(bar);
  fastknn::SearchStats stats;
  options.stats = &stats;
  bar.start();
  auto const t0 = Clock::now();
  if (radius)
    return write_radius(space, database, queries, *radius, options, offsets_path, indices_path,
                        distances_path, run, t0);
  auto const found =
      fastknn::search(space, std::span<float const>(database.data),
                      std::span<float const>(queries.data), database.cols, *k, options);
  double const seconds = seconds_since(t0);
  close_progress_line();

  stop_point();
  OutputSet outputs;
  std::size_t const found_k = std::size_t(found.k);
  outputs.write(indices_path, [&](std::string const &p)
                { fastknn::io::write_npy(p, found.indices.data(), found.queries, found_k); });
  outputs.write(distances_path, [&](std::string const &p)
                { fastknn::io::write_npy(p, found.distances.data(), found.queries, found_k); });
  outputs.commit();
  if (!run.quiet)
    std::printf("searched %zu queries in %zu x %zu points, k = %d, metric %s: %.3f s, "
                "%.1f queries/s (%s, %d threads)\n",
                queries.rows, database.rows, database.cols, *k,
                std::string(fastknn::metric_name(options.metric)).c_str(), seconds,
                seconds > 0 ? double(queries.rows) / seconds : 0.0, fastknn::backend_name(),
                space.concurrency());
  if (!run.quiet)
    std::printf("  %s\n", stats_line(stats, queries.rows).c_str());
  return 0;
}

int run(int argc, char *argv[])
{
  std::vector<std::string> args, kokkos_flags;
  for (int i = 1; i < argc; ++i)
  {
    std::string a = argv[i];
    (a.rfind("--kokkos-", 0) == 0 ? kokkos_flags : args).push_back(std::move(a));
  }
  if (args.empty())
  {
    std::fputs(main_help, stderr);
    return exit_usage;
  }
  std::string const command = args.front();
  args.erase(args.begin());
  if (command == "-h" || command == "--help" || command == "help")
  {
    std::fputs(main_help, stdout);
    return 0;
  }
  if (command == "--version")
  {
    // The kernels the search will run: the instruction-set variant the library chose.
    auto const shape = fastknn::detail::tile_shape<fastknn::DefaultBackend>(1);
    std::printf("fastknn %s (Kokkos %d.%d.%d, backend %s, kernels %s %d x %d)\n",
                FASTKNN_VERSION_STRING, KOKKOS_VERSION_MAJOR, KOKKOS_VERSION_MINOR,
                KOKKOS_VERSION_PATCH, fastknn::backend_name(),
                fastknn::detail::kernel_isa<fastknn::DefaultBackend>().c_str(), shape.mr, shape.nr);
    return 0;
  }
  if (command == "classify")
    return run_classify(std::move(args), kokkos_flags);
  if (command == "search")
    return run_search(std::move(args), kokkos_flags);
  if (command == "groundtruth")
    return run_groundtruth(std::move(args), kokkos_flags);
  throw UsageError("unknown command '" + command +
                   "'; use classify, search or groundtruth (see 'fastknn --help')");
}

/// Prints "fastknn: error: <message>" on one line of stderr (in a distributed run every rank
/// has the same error: rank 0 prints it).
void print_error(std::string message)
{
  close_progress_line();
  if (!is_root())
    return;
  if (message.rfind("fastknn: ", 0) == 0) // fastknn::Error already carries the prefix
    message.erase(0, 9);
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::fprintf(stderr, "fastknn: error: %s\n", message.c_str());
}

} // namespace

int main(int argc, char *argv[])
{
  // Kokkos' OpenMP backend warns when OMP_PROC_BIND is unset; an explicit choice silences it.
  setenv("OMP_PROC_BIND", "false", 0);
#ifdef FASTKNN_CLI_MPI
  MpiSession const mpi(argc, argv);
#endif
  install_stop_handlers();
  try
  {
    return run(argc, argv);
  }
  catch (fastknn::Cancelled const &)
  {
    print_error("stopped before the end (Ctrl-C or SIGTERM); no output file was written");
    return exit_interrupted;
  }
  catch (UsageError const &e)
  {
    print_error(e.what());
    return exit_usage;
  }
  catch (std::bad_alloc const &)
  {
    print_error("out of memory; use a smaller data set (e.g. --limit-test) or a larger machine");
    return exit_failure;
  }
  catch (std::exception const &e)
  {
    print_error(e.what());
    return exit_failure;
  }
}
