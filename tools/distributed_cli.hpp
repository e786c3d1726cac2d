// `mpirun -np P fastknn classify|search`: the distributed commands of the CLI (built when MPI is
// found). Included by fastknn_cli.cpp after its helpers. Each rank reads only its part of the
// database (training) file and of the queries (test) file, searches with fastknn::mpi, and
// rank 0 writes the outputs and the report; accuracy and output files are those of the
// single-process run. Every step that can fail is agreed on by all ranks
// (fastknn::mpi::detail::collectively), so an error on one rank ends every rank with the same
// message (printed by rank 0) and no rank waits forever.

#include <fastknn/mpi.hpp>

#include <cstdlib>

namespace
{

/// True when an MPI launcher (Open MPI's mpirun, or a PMI-based one) started this process.
bool launched_by_mpi()
{
  for (char const *v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr)
      return true;
  return false;
}

/// MPI for the whole process when an MPI launcher started it (a plain run stays single-process).
class MpiSession
{
public:
  MpiSession(int &argc, char **&argv)
  {
    if (!launched_by_mpi())
      return;
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &_size);
    _active = true;
    active_session = this;
  }
  MpiSession(MpiSession const &) = delete;
  MpiSession &operator=(MpiSession const &) = delete;
  ~MpiSession()
  {
    if (_active)
      MPI_Finalize();
    active_session = nullptr;
  }
  int rank() const { return _rank; }
  int size() const { return _size; }
  static inline MpiSession *active_session = nullptr;

private:
  bool _active = false;
  int _rank = 0, _size = 1;
};

bool distributed()
{
  return MpiSession::active_session != nullptr;
}
bool is_root()
{
  return !distributed() || MpiSession::active_session->rank() == 0;
}

/// Runs f on every rank and raises any rank's error on all of them.
template <class F>
void together(F &&f)
{
  fastknn::mpi::detail::collectively(fastknn::mpi::detail::Comm(MPI_COMM_WORLD), "",
                                     std::forward<F>(f));
}

/// The rows of every rank concatenated in rank order, on every rank.
template <class V>
std::vector<V> all_rows(std::vector<V> const &mine, MPI_Datatype type, bool root_only = false)
{
  fastknn::mpi::detail::Comm const c(MPI_COMM_WORLD);
  auto const sizes = fastknn::mpi::detail::all_sizes(c, mine.size());
  auto const first = fastknn::mpi::detail::offsets_of(sizes);
  std::vector<V> out;
  together([&] { out.resize(root_only && c.rank != 0 ? 0 : first.back()); });
  auto const counts = fastknn::mpi::detail::to_int_counts(sizes);
  auto const displs =
      fastknn::mpi::detail::to_int_counts(std::vector<std::size_t>(first.begin(), first.end() - 1));
  if (root_only)
    MPI_Gatherv(mine.data(), int(mine.size()), type, out.data(), counts.data(), displs.data(), type,
                0, MPI_COMM_WORLD);
  else
    MPI_Allgatherv(mine.data(), int(mine.size()), type, out.data(), counts.data(), displs.data(),
                   type, MPI_COMM_WORLD);
  return out;
}

/// A View's elements (any memory space), concatenated over the ranks in rank order on rank 0.
template <class View>
std::vector<typename View::non_const_value_type> on_root(View const &v, MPI_Datatype type)
{
  auto const h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, v);
  return all_rows(std::vector<typename View::non_const_value_type>(h.data(), h.data() + h.size()),
                  type, true);
}

/// Writes a command's outputs on rank 0 (write(outputs) there), all or none: a stop asked for
/// on any rank, or a failed write, ends every rank with the same error and no output file.
template <class Write>
void write_on_root(Write &&write)
{
  OutputSet outputs;
  together(
      [&]
      {
        stop_point();
        if (MpiSession::active_session->rank() == 0)
          write(outputs);
      });
  outputs.commit();
}

using SpaceMatrix =
    Kokkos::View<float **, Kokkos::LayoutRight, fastknn::DefaultBackend::memory_space>;

SpaceMatrix to_space_matrix(fastknn::io::Matrix<float> const &m, char const *label)
{
  SpaceMatrix out(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), m.rows,
                  m.cols);
  Kokkos::View<float const **, Kokkos::LayoutRight, Kokkos::HostSpace,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>>
      h(m.data.data(), m.rows, m.cols);
  Kokkos::deep_copy(out, h);
  return out;
}

std::string time_split(fastknn::mpi::DistributedStats const &d)
{
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "%d ranks, %zu round%s of <= %zu queries per rank; rank 0: %.3f s search, "
                "%.3f s exchange, %.3f s merge",
                d.ranks, d.rounds, d.rounds == 1 ? "" : "s", d.batch, d.search_seconds,
                d.exchange_seconds, d.merge_seconds);
  return buf;
}

std::string time_split_json(fastknn::mpi::DistributedStats const &d)
{
  return "\"ranks\": " + std::to_string(d.ranks) + ", \"rounds\": " + std::to_string(d.rounds) +
         ", \"batch\": " + std::to_string(d.batch) +
         ", \"search_seconds\": " + json_number(d.search_seconds) +
         ", \"exchange_seconds\": " + json_number(d.exchange_seconds) +
         ", \"merge_seconds\": " + json_number(d.merge_seconds) +
         ", \"bytes_sent\": " + std::to_string(d.bytes_sent);
}

/// What `classify` parsed, for the distributed run.
struct ClassifyArgs
{
  std::string data_dir, json_path, predictions_path;
  fastknn::ClassifierOptions options;
  std::optional<long long> limit_test;
  RunOptions run;
};

/// Each rank: its part of the training and test images, all training labels (for the votes).
struct RankData
{
  fastknn::io::MnistData data;
  std::vector<std::int32_t> train_labels; // every rank's, in global row order
};

RankData load_parts(ClassifyArgs const &a, int rank, int ranks)
{
  RankData r;
  fastknn::io::RowPart const train{std::size_t(rank), std::size_t(ranks)};
  fastknn::io::RowPart test{std::size_t(rank), std::size_t(ranks)};
  if (a.limit_test)
    test.limit = std::size_t(*a.limit_test);
  together([&] { r.data = fastknn::io::load_mnist_dir(a.data_dir, train, test); });
  r.train_labels = all_rows(r.data.train.labels, MPI_INT32_T);
  together(
      [&]
      {
        for (std::size_t i = 0; i < r.train_labels.size(); ++i)
          fastknn::detail::require(r.train_labels[i] >= 0 && r.train_labels[i] < (1 << 24),
                                   "training label " + std::to_string(i) + " = " +
                                       std::to_string(r.train_labels[i]) +
                                       " is not a class id 0 .. 2^24-1");
      });
  return r;
}

/// This rank's predictions: the vote of each query's global k nearest training rows.
std::vector<std::int32_t> vote(fastknn::ClassifierOptions const &o,
                               std::vector<std::int32_t> const &train_labels,
                               fastknn::Neighbors<SpaceMatrix::memory_space, float> const &found)
{
  auto const idx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto const val = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  std::vector<std::int32_t> out(idx.extent(0)), labels(std::size_t(o.k)), distinct;
  std::vector<double> weights(std::size_t(o.k)), masked;
  for (std::size_t q = 0; q < idx.extent(0); ++q)
  {
    for (int j = 0; j < o.k; ++j)
      labels[std::size_t(j)] = train_labels[std::size_t(idx(q, j))];
    fastknn::detail::vote_weights(o.weights, o.metric, &val(q, 0), o.k, weights.data());
    out[q] = fastknn::detail::vote_winner(labels.data(), weights.data(), o.k, distinct, masked);
  }
  return out;
}

int classify_distributed(ClassifyArgs const &a)
{
  using Space = fastknn::DefaultBackend;
  MpiSession const &mpi = *MpiSession::active_session;
  bool const root = mpi.rank() == 0, verbose = root && !a.run.quiet;
  auto const t_load = Clock::now();
  RankData r = load_parts(a, mpi.rank(), mpi.size());
  double const load_seconds = seconds_since(t_load);
  auto const &train = r.data.train.images, &test = r.data.test.images;
  std::size_t const n_train = train.file_rows, test_available = test.file_rows;
  std::size_t const n_test = a.limit_test
                                 ? std::min<std::size_t>(test_available, std::size_t(*a.limit_test))
                                 : test_available;
  int const n_classes = *std::max_element(r.train_labels.begin(), r.train_labels.end()) + 1;

  Space space;
  auto const t_fit = Clock::now();
  std::optional<fastknn::mpi::Index<Space, SpaceMatrix>> index;
  SpaceMatrix shard, queries;
  together([&] { shard = to_space_matrix(train, "fastknn_cli::train_part"); });
  index.emplace(MPI_COMM_WORLD, space, shard, a.options.metric);
  together([&] { queries = to_space_matrix(test, "fastknn_cli::test_part"); });
  space.fence("fastknn_cli::fit");
  double const fit_seconds = seconds_since(t_fit);
  std::string const metric(fastknn::metric_name(a.options.metric));
  std::string const weights(fastknn::weights_name(a.options.weights));
  if (verbose)
  {
    std::printf("fastknn %s classify  %s\n", FASTKNN_VERSION_STRING, a.data_dir.c_str());
    std::printf("  data      train %zu x %zu, test %zu", n_train, train.cols, n_test);
    if (n_test < test_available)
      std::printf(" (first %zu of %zu)", n_test, test_available);
    std::printf(", %d classes\n", n_classes);
    std::printf("  backend   %s, %d thread%s per rank, %d MPI ranks\n", fastknn::backend_name(),
                space.concurrency(), space.concurrency() == 1 ? "" : "s", mpi.size());
    std::printf("  model     k = %d, metric %s, weights %s\n", a.options.k, metric.c_str(),
                weights.c_str());
    std::printf("  load      %.3f s reading this rank's parts, %.3f s fit\n", load_seconds,
                fit_seconds);
    std::fflush(stdout);
  }
  ProgressBar bar(verbose, n_test);
  fastknn::SearchOptions so;
  so.metric = a.options.metric;
  so.workspace_bytes = a.options.workspace_bytes;
  so.progress = progress_to(bar);
  fastknn::SearchStats stats;
  so.stats = &stats;
  fastknn::mpi::DistributedStats dist;
  bar.start();
  auto const t_predict = Clock::now();
  auto const found = index->search(space, queries, a.options.k, so, {0, &dist});
  std::vector<std::int32_t> predicted;
  together([&] { predicted = vote(a.options, r.train_labels, found); });
  double const seconds = seconds_since(t_predict);
  close_progress_line();

  long long correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i)
    correct += predicted[i] == r.data.test.labels[i] ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &correct, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  std::vector<std::int32_t> const all_predicted = all_rows(predicted, MPI_INT32_T, true);
  double const acc = n_test > 0 ? double(correct) / double(n_test) : 0.0;
  double const qps = seconds > 0 ? double(n_test) / seconds : 0.0;

  write_on_root(
      [&](OutputSet &outputs)
      {
        outputs.write(a.predictions_path,
                      [&](std::string const &p) {
                        fastknn::io::write_npy(p, all_predicted.data(), all_predicted.size(), 1);
                      });
        if (a.json_path.empty())
          return;
        ClassifyFacts const facts{a.data_dir,
                                  space.concurrency(),
                                  a.options,
                                  n_train,
                                  n_test,
                                  train.cols,
                                  n_classes,
                                  acc,
                                  std::size_t(correct),
                                  seconds,
                                  load_seconds,
                                  fit_seconds,
                                  stats,
                                  "  \"distributed\": {" + time_split_json(dist) + "},\n"};
        std::string const json = classify_json(facts);
        outputs.write(a.json_path, [&](std::string const &p) { write_text_file(p, json); });
      });
  if (!root)
    return 0;
  if (a.run.quiet)
  {
    std::printf("accuracy %.4f (%lld / %zu)\n", acc, correct, n_test);
    return 0;
  }
  std::printf("  accuracy  %.4f (%lld / %zu correct)\n", acc, correct, n_test);
  std::printf("  time      %.3f s search + vote, %.1f queries/s\n", seconds, qps);
  std::printf("  search    %s\n", stats_line(stats, predicted.size()).c_str());
  std::printf("  mpi       %s\n", time_split(dist).c_str());
  return 0;
}

/// What `search` parsed, for the distributed run.
struct SearchArgs
{
  std::string database_path, queries_path, indices_path, distances_path;
  int k = 0;
  fastknn::RadiusOptions options;
  RunOptions run;
  std::optional<double> radius; // set: the radius search, with its offsets to offsets_path
  std::string offsets_path;
};

/// search --radius under mpirun: each rank's queries' rows, gathered on rank 0 in query order
/// (global offsets from the per-query counts), which writes the three outputs (all or none).
int write_radius_distributed(
    SearchArgs const &a,
    fastknn::RadiusNeighbors<fastknn::DefaultBackend::memory_space> const &found,
    std::size_t n_queries, double seconds)
{
  bool const root = MpiSession::active_session->rank() == 0;
  auto const ho = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
  std::vector<std::int64_t> counts(ho.extent(0) - 1);
  for (std::size_t i = 0; i + 1 < ho.extent(0); ++i)
    counts[i] = std::int64_t(ho(i + 1) - ho(i));
  std::vector<std::int64_t> const all_counts = all_rows(counts, MPI_INT64_T, true);
  auto const all_i = on_root(found.indices, MPI_INT32_T);
  auto const all_v = on_root(found.distances, MPI_FLOAT);
  write_on_root(
      [&](OutputSet &outputs)
      {
        std::vector<std::int64_t> offsets(n_queries + 1, 0);
        for (std::size_t i = 0; i < n_queries; ++i)
          offsets[i + 1] = offsets[i] + all_counts[i];
        outputs.write(a.offsets_path, [&](std::string const &p)
                      { fastknn::io::write_npy_vector(p, offsets.data(), offsets.size()); });
        outputs.write(a.indices_path, [&](std::string const &p)
                      { fastknn::io::write_npy_vector(p, all_i.data(), all_i.size()); });
        outputs.write(a.distances_path, [&](std::string const &p)
                      { fastknn::io::write_npy_vector(p, all_v.data(), all_v.size()); });
      });
  if (root && !a.run.quiet)
    std::printf("searched %zu queries, radius %g, metric %s: %zu pairs inside (%.1f per "
                "query), %.3f s (%s, %d ranks)\n",
                n_queries, *a.radius, std::string(fastknn::metric_name(a.options.metric)).c_str(),
                all_i.size(), double(all_i.size()) / double(std::max<std::size_t>(n_queries, 1)),
                seconds, fastknn::backend_name(), MpiSession::active_session->size());
  return 0;
}

int search_distributed(SearchArgs const &a)
{
  using Space = fastknn::DefaultBackend;
  MpiSession const &mpi = *MpiSession::active_session;
  bool const root = mpi.rank() == 0, verbose = root && !a.run.quiet;
  fastknn::io::RowPart const part{std::size_t(mpi.rank()), std::size_t(mpi.size())};
  fastknn::io::Matrix<float> database, queries_storage;
  together(
      [&]
      {
        database = fastknn::io::read_matrix(a.database_path, part);
        if (!a.options.exclude_self)
          queries_storage = fastknn::io::read_matrix(a.queries_path, part);
      });
  fastknn::io::Matrix<float> const &queries = a.options.exclude_self ? database : queries_storage;
  Space space;
  SpaceMatrix shard, qd;
  together(
      [&]
      {
        shard = to_space_matrix(database, "fastknn_cli::database_part");
        qd = a.options.exclude_self ? shard : to_space_matrix(queries, "fastknn_cli::queries_part");
      });
  std::size_t const n_queries = queries.file_rows;
  ProgressBar bar(verbose, n_queries);
  fastknn::RadiusOptions options = a.options;
  options.progress = progress_to(bar);
  fastknn::SearchStats stats;
  options.stats = &stats;
  fastknn::mpi::DistributedStats dist;
  bar.start();
  auto const t0 = Clock::now();
  fastknn::mpi::Index<Space, SpaceMatrix> const index(MPI_COMM_WORLD, space, shard, options.metric);
  if (a.radius)
  {
    auto const rows = index.radius_search(space, qd, *a.radius, options, {0, &dist});
    double const seconds = seconds_since(t0);
    close_progress_line();
    return write_radius_distributed(a, rows, n_queries, seconds);
  }
  auto const found = index.search(space, qd, a.k, options, {0, &dist});
  auto const hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto const hv = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  double const seconds = seconds_since(t0);
  close_progress_line();
  auto const all_i = on_root(hi, MPI_INT32_T);
  auto const all_v = on_root(hv, MPI_FLOAT);
  std::size_t const k = std::size_t(a.k);
  write_on_root(
      [&](OutputSet &outputs)
      {
        outputs.write(a.indices_path, [&](std::string const &p)
                      { fastknn::io::write_npy(p, all_i.data(), n_queries, k); });
        outputs.write(a.distances_path, [&](std::string const &p)
                      { fastknn::io::write_npy(p, all_v.data(), n_queries, k); });
      });
  if (verbose)
  {
    std::printf("searched %zu queries in %zu x %zu points, k = %d, metric %s: %.3f s, "
                "%.1f queries/s (%s, %d threads per rank)\n",
                n_queries, index.size(), index.dimension(), a.k,
                std::string(fastknn::metric_name(options.metric)).c_str(), seconds,
                seconds > 0 ? double(n_queries) / seconds : 0.0, fastknn::backend_name(),
                space.concurrency());
    std::printf("  %s\n", stats_line(stats, queries.rows).c_str());
    std::printf("  mpi %s\n", time_split(dist).c_str());
  }
  return 0;
}

} // namespace
