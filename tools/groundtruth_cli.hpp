// `fastknn groundtruth`: the exact k nearest database rows of each query with the database
// streamed from disk in blocks (bounded memory), the per-block lists merged by (value, global
// row): the same bytes as `fastknn search` on the whole file. Included by fastknn_cli.cpp after
// its helpers (ArgList, ProgressBar, OutputSet, KokkosSession, ...).

#include <fastknn/io/bin.hpp>

namespace
{

constexpr char const *groundtruth_help =
    R"(usage: fastknn groundtruth --database FILE --queries FILE -k K --out PREFIX [options]

The exact k nearest database rows of each query row, with the database read in blocks that fit
--memory (big-ann-benchmarks' .fbin, .u8bin and .i8bin files are streamed; other formats are
read whole first). Writes PREFIX.bin (big-ann-benchmarks' ground truth: uint32 Q, uint32 k,
Q x k int32 ids, Q x k float32 distances), PREFIX.indices.npy and PREFIX.distances.npy: the same
rows and values, in the same order (best first, ties to the smaller row), as `fastknn search`
over the whole file.

options:
  --database FILE       the database (.fbin/.u8bin/.i8bin streamed; .npy/.fvecs/.bvecs/IDX)
  --queries FILE        the queries (any of those formats)
  -k K                  neighbours per query (1 .. the rows searched)
  --out PREFIX          where the three outputs go
  --metric M            l2 (default), sqeuclidean, l1, ip, cosine, chebyshev, minkowski, ...
  --p P                 Minkowski's p
  --memory SIZE         bytes to stay within (K, M, G: 2^10, 2^20, 2^30; default 1G)
  --rows A:B            search database rows A .. B-1 only (ids stay the file's rows)
  --checkpoint-every S  save PREFIX.checkpoint every S seconds (default 60; 0: every block)
  --resume              go on from PREFIX.checkpoint (same files, k, metric and --rows)
  --threads N           number of host threads
  -q, --quiet           no plan, progress bar or summary
  -h, --help            show this help
)";

/// "123", "64K", "1.5G": bytes (K, M, G are powers of 2^10).
std::size_t size_option(ArgList &args, std::string const &name)
{
  std::string const v = args.value(name);
  char *end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  std::string const unit(static_cast<char const *>(end), v.c_str() + v.size());
  double const scale = unit.empty()                   ? 1.0
                       : (unit == "K" || unit == "k") ? 1024.0
                       : (unit == "M" || unit == "m") ? 1024.0 * 1024.0
                       : (unit == "G" || unit == "g") ? 1024.0 * 1024.0 * 1024.0
                                                      : 0.0;
  if (end == v.c_str() || scale == 0.0 || !(x > 0) || !std::isfinite(x) || x * scale > 1e18)
    throw UsageError(name + " '" + v + "' is not a size (a number of bytes, or with K, M or G)" +
                     args.hint());
  return std::size_t(x * scale);
}

/// The running top k of every query, merged block by block by (value, global row): best value
/// first (the smallest distance, the largest similarity), ties to the smaller row.
class RunningLists
{
public:
  RunningLists(std::size_t queries, std::size_t k, bool similarity)
      : _q(queries), _k(k), _similarity(similarity), _idx(queries * k), _val(queries * k),
        _tmp_idx(queries * k), _tmp_val(queries * k)
  {
  }

  /// Merges a block's lists (kb per query, best first; `first_row` added to its rows).
  void merge(std::vector<fastknn::index_type> const &idx, std::vector<float> const &val,
             std::size_t kb, std::size_t first_row)
  {
    std::size_t const keep = std::min(_k, _have + kb);
    for (std::size_t q = 0; q < _q; ++q)
    {
      std::size_t a = 0, b = 0;
      for (std::size_t j = 0; j < keep; ++j)
      {
        bool take_a = b >= kb;
        if (a < _have && b < kb)
        {
          float const va = _val[q * _k + a], vb = val[q * kb + b];
          auto const ib = fastknn::index_type(std::size_t(idx[q * kb + b]) + first_row);
          take_a = va != vb ? (_similarity ? va > vb : va < vb) : _idx[q * _k + a] < ib;
        }
        if (take_a)
        {
          _tmp_idx[q * _k + j] = _idx[q * _k + a];
          _tmp_val[q * _k + j] = _val[q * _k + a];
          ++a;
        }
        else
        {
          _tmp_idx[q * _k + j] = fastknn::index_type(std::size_t(idx[q * kb + b]) + first_row);
          _tmp_val[q * _k + j] = val[q * kb + b];
          ++b;
        }
      }
    }
    _idx.swap(_tmp_idx);
    _val.swap(_tmp_val);
    _have = keep;
  }

  /// Host bytes of the lists (running, merged, and a block's of the same size).
  static std::size_t bytes(std::size_t queries, std::size_t k)
  {
    return 3 * queries * k * (sizeof(fastknn::index_type) + sizeof(float));
  }

  std::vector<fastknn::index_type> const &indices() const { return _idx; }
  std::vector<float> const &values() const { return _val; }
  std::size_t have() const { return _have; }
  /// Restores lists saved by a checkpoint (`have` rows per query so far).
  void restore(std::vector<fastknn::index_type> idx, std::vector<float> val, std::size_t have)
  {
    _idx = std::move(idx);
    _val = std::move(val);
    _have = have;
  }

private:
  std::size_t _q, _k;
  bool _similarity;
  std::size_t _have = 0;
  std::vector<fastknn::index_type> _idx;
  std::vector<float> _val;
  std::vector<fastknn::index_type> _tmp_idx;
  std::vector<float> _tmp_val;
};

/// What `groundtruth` parsed.
struct GroundTruthArgs
{
  std::string database_path, queries_path, out;
  std::size_t k = 0, memory = std::size_t(1) << 30;
  std::size_t row_begin = 0, row_end = std::size_t(-1);
  fastknn::SearchOptions options;
  RunOptions run;
  bool resume = false;
  double checkpoint_every = 60; // seconds; 0: after every block
};

/// What a checkpoint must match to be resumed: the inputs (sizes, the database's first and last
/// MiB, every query value), k, the metric and the rows searched (FNV-1a).
std::uint64_t job_fingerprint(GroundTruthArgs const &a, std::size_t rows, std::size_t cols,
                              fastknn::io::Matrix<float> const &queries)
{
  std::uint64_t h = 1469598103934665603ull;
  auto const mix = [&h](void const *p, std::size_t n)
  {
    for (std::size_t i = 0; i < n; ++i)
      h = (h ^ static_cast<unsigned char const *>(p)[i]) * 1099511628211ull;
  };
  std::uint64_t const fields[] = {rows,
                                  cols,
                                  a.k,
                                  std::uint64_t(a.options.metric),
                                  std::bit_cast<std::uint64_t>(a.options.minkowski_p),
                                  a.row_begin,
                                  std::min<std::uint64_t>(a.row_end, rows),
                                  queries.rows,
                                  queries.cols};
  mix(fields, sizeof fields);
  mix(queries.data.data(), queries.data.size() * sizeof(float));
  std::error_code ec;
  std::uint64_t const size = std::filesystem::file_size(a.database_path, ec);
  mix(&size, sizeof size);
  if (std::FILE *f = std::fopen(a.database_path.c_str(), "rb"))
  {
    std::vector<unsigned char> buf(std::size_t(1) << 20);
    mix(buf.data(), std::fread(buf.data(), 1, buf.size(), f));
    if (size > 2 * buf.size() && ::fseeko(f, off_t(size - buf.size()), SEEK_SET) == 0)
      mix(buf.data(), std::fread(buf.data(), 1, buf.size(), f));
    std::fclose(f);
  }
  return h;
}

/// The running lists and the next row, saved atomically (PREFIX.checkpoint) so that a killed
/// job can go on with --resume: "FKNNGT01", then uint64 fingerprint, next row, rows per list,
/// Q, k, then the Q x k ids and values.
struct Checkpoint
{
  std::string path;
  std::uint64_t fingerprint = 0;

  void save(std::size_t next, RunningLists const &lists, std::size_t nq, std::size_t k) const
  {
    std::string const partial = path + ".partial";
    std::FILE *f = std::fopen(partial.c_str(), "wb");
    if (f == nullptr)
      throw fastknn::Error("'" + path + "': cannot write the checkpoint: " + std::strerror(errno));
    std::uint64_t const head[] = {fingerprint, next, lists.have(), nq, k};
    bool ok = std::fwrite("FKNNGT01", 1, 8, f) == 8 && std::fwrite(head, 8, 5, f) == 5 &&
              std::fwrite(lists.indices().data(), 4, nq * k, f) == nq * k &&
              std::fwrite(lists.values().data(), 4, nq * k, f) == nq * k;
    ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0 && ok;
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(partial.c_str(), path.c_str()) != 0)
    {
      std::remove(partial.c_str());
      throw fastknn::Error("'" + path + "': writing the checkpoint failed (disk full?)");
    }
  }

  /// The next row to search, with `lists` restored; throws when the checkpoint is not this
  /// job's or is damaged.
  std::size_t load(RunningLists &lists, std::size_t nq, std::size_t k) const
  {
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
      throw fastknn::Error("'" + path + "': cannot read the checkpoint: " + std::strerror(errno));
    char magic[8] = {};
    std::uint64_t head[5] = {};
    std::vector<fastknn::index_type> idx(nq * k);
    std::vector<float> val(nq * k);
    bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, "FKNNGT01", 8) == 0 &&
              std::fread(head, 8, 5, f) == 5;
    bool const same = ok && head[0] == fingerprint && head[3] == nq && head[4] == k;
    ok = same && head[2] <= k && std::fread(idx.data(), 4, nq * k, f) == nq * k &&
         std::fread(val.data(), 4, nq * k, f) == nq * k && std::fgetc(f) == EOF;
    std::fclose(f);
    if (!same)
      throw fastknn::Error("'" + path +
                           "' is not a checkpoint of this job (another database, "
                           "query file, k, metric or --rows); delete it, or use another --out");
    if (!ok)
      throw fastknn::Error("'" + path + "': the checkpoint is damaged; delete it to start over");
    lists.restore(std::move(idx), std::move(val), std::size_t(head[2]));
    return std::size_t(head[1]);
  }
};

/// The database's rows [begin, end) as blocks: streamed from a big-ann-benchmarks file, or cut
/// from the whole matrix of any other format.
class BlockSource
{
public:
  explicit BlockSource(std::string const &path)
  {
    if (fastknn::io::bin_element_size(path) != 0)
    {
      _bin.emplace(path);
      rows = _bin->rows;
      cols = _bin->cols;
    }
    else
    {
      _whole = fastknn::io::read_matrix(path);
      rows = _whole.rows;
      cols = _whole.cols;
    }
  }
  bool streamed() const { return _bin.has_value(); }
  std::size_t resident_bytes() const { return _whole.data.size() * sizeof(float); }
  void read(std::size_t first, std::size_t count, float *out)
  {
    if (_bin)
      _bin->read_rows(first, count, out);
    else
      std::copy_n(_whole.data.data() + first * cols, count * cols, out);
  }
  std::size_t rows = 0, cols = 0;

private:
  std::optional<fastknn::io::BinFile> _bin;
  fastknn::io::Matrix<float> _whole;
};

/// Bytes of one block row: its floats on the host and (on a device) in the space's memory.
std::size_t block_row_bytes(std::size_t cols)
{
  return 2 * cols * sizeof(float);
}

int groundtruth_run(GroundTruthArgs const &a)
{
  using Space = fastknn::DefaultBackend;
  using Unmanaged = Kokkos::View<float const **, Kokkos::LayoutRight, Kokkos::HostSpace,
                                 Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  Space space;
  BlockSource db(a.database_path);
  fastknn::io::Matrix<float> const queries = fastknn::io::read_matrix(a.queries_path);
  if (queries.cols != db.cols)
    throw fastknn::Error("dimension mismatch: the database has " + std::to_string(db.cols) +
                         " columns but the queries have " + std::to_string(queries.cols));
  std::size_t const begin = std::min(a.row_begin, db.rows), end = std::min(a.row_end, db.rows);
  if (begin >= end)
    throw UsageError("--rows selects no row of the database's " + std::to_string(db.rows));
  std::size_t const n = end - begin, k = a.k, nq = queries.rows;
  if (k > n)
    throw fastknn::Error("k = " + std::to_string(k) + " is larger than the " + std::to_string(n) +
                         " rows searched; lower k");
  // The plan: the lists and the queries first, then the search's workspace, then the block.
  std::size_t const lists = RunningLists::bytes(nq, k),
                    fixed = lists + 2 * queries.data.size() * sizeof(float) + db.resident_bytes();
  if (fixed >= a.memory / 2)
    throw fastknn::Error(
        "the " + std::to_string(nq) + " x " + std::to_string(k) + " lists, the queries" +
        (db.streamed() ? std::string()
                       : " and the whole database (not a .fbin/.u8bin/.i8bin file)") +
        " alone need " + std::to_string(fixed >> 20) + " MiB, over half of --memory (" +
        std::to_string(a.memory >> 20) + " MiB); give --memory " +
        std::to_string((2 * fixed >> 20) + 64) + "M or more, or fewer queries or a smaller k");
  fastknn::SearchOptions options = a.options;
  options.workspace_bytes = std::min(options.workspace_bytes, (a.memory - fixed) / 2);
  std::size_t const block = std::clamp<std::size_t>(
      (a.memory - fixed - options.workspace_bytes) / block_row_bytes(db.cols), 1, n);
  std::size_t const blocks = (n + block - 1) / block;
  if (!a.run.quiet)
    std::printf("groundtruth: %zu queries x %zu rows (%zu columns), k = %zu, metric %s; memory "
                "%zu MiB: lists %zu, queries %zu, workspace %zu, %zu blocks of %zu rows (%zu)%s\n",
                nq, n, db.cols, k, std::string(fastknn::metric_name(options.metric)).c_str(),
                a.memory >> 20, lists >> 20, (2 * queries.data.size() * sizeof(float)) >> 20,
                options.workspace_bytes >> 20, blocks, block,
                (block * block_row_bytes(db.cols)) >> 20,
                db.streamed() ? "" : "; the database was read whole (not a .bin format)");
  auto const qd =
      Kokkos::create_mirror_view_and_copy(space, Unmanaged(queries.data.data(), nq, queries.cols));
  RunningLists running(nq, k, fastknn::is_similarity(options.metric));
  Checkpoint const checkpoint{a.out + ".checkpoint", job_fingerprint(a, db.rows, db.cols, queries)};
  std::size_t next = begin;
  if (std::filesystem::exists(checkpoint.path))
  {
    if (!a.resume)
      throw fastknn::Error("'" + checkpoint.path +
                           "' exists (an interrupted run): add --resume "
                           "to go on from it, or delete it to start over");
    next = checkpoint.load(running, nq, k);
    if (next < begin || next >= end || running.have() != std::min(k, next - begin))
      throw fastknn::Error("'" + checkpoint.path +
                           "': the checkpoint is damaged; delete it to start over");
    if (!a.run.quiet)
      std::printf("resuming at row %zu of %zu..%zu\n", next, begin, end);
  }
  std::vector<float> host_block(block * db.cols);
  ProgressBar bar(!a.run.quiet, nq);
  bar.start();
  auto const t0 = Clock::now();
  auto saved = t0;
  double reading = 0;
  for (std::size_t b = (next - begin + block - 1) / block; next < end; ++b)
  {
    std::size_t const first = next, rows = std::min(block, end - first);
    auto const tr = Clock::now();
    db.read(first, rows, host_block.data());
    reading += seconds_since(tr);
    auto const xd =
        Kokkos::create_mirror_view_and_copy(space, Unmanaged(host_block.data(), rows, db.cols));
    options.progress = [&bar, b, blocks](double f)
    {
      bar((double(b) + f) / double(blocks));
      return stop_requested == 0;
    };
    std::size_t const kb = std::min(k, rows);
    fastknn::Neighbors<Space::memory_space, float> found;
    try
    {
      found = fastknn::search(space, xd, qd, int(kb), options);
    }
    catch (fastknn::Cancelled const &)
    {
      throw;
    }
    catch (fastknn::Error const &e) // its rows are the block's: say which
    {
      throw fastknn::Error("database rows " + std::to_string(first) + " to " +
                           std::to_string(first + rows - 1) +
                           " (numbered from 0 below): " + e.what());
    }
    std::vector<fastknn::index_type> idx(nq * kb);
    std::vector<float> val(nq * kb);
    Kokkos::deep_copy(space,
                      Kokkos::View<fastknn::index_type **, Kokkos::LayoutRight, Kokkos::HostSpace>(
                          idx.data(), nq, kb),
                      found.indices);
    Kokkos::deep_copy(
        space, Kokkos::View<float **, Kokkos::LayoutRight, Kokkos::HostSpace>(val.data(), nq, kb),
        found.distances);
    space.fence("fastknn_cli::groundtruth::block");
    running.merge(idx, val, kb, first);
    next = first + rows;
    if (next < end && seconds_since(saved) >= a.checkpoint_every)
    {
      checkpoint.save(next, running, nq, k);
      saved = Clock::now();
    }
    stop_point();
  }
  double const seconds = seconds_since(t0);
  close_progress_line();
  OutputSet outputs;
  outputs.write(a.out + ".bin",
                [&](std::string const &p)
                {
                  fastknn::io::write_groundtruth_bin(p, running.indices().data(),
                                                     running.values().data(), nq, k);
                });
  outputs.write(a.out + ".indices.npy", [&](std::string const &p)
                { fastknn::io::write_npy(p, running.indices().data(), nq, k); });
  outputs.write(a.out + ".distances.npy", [&](std::string const &p)
                { fastknn::io::write_npy(p, running.values().data(), nq, k); });
  outputs.commit();
  std::remove(checkpoint.path.c_str());
  if (!a.run.quiet)
    std::printf(
        "searched %zu queries in %zu rows, k = %zu: %.3f s (%.3f s reading, %.1f MB/s), "
        "%.0f rows/s (%s, %d threads)\n",
        nq, n, k, seconds, reading,
        reading > 0 ? double(n * db.cols) * double(fastknn::io::bin_element_size(a.database_path)) /
                          reading / 1e6
                    : 0.0,
        seconds > 0 ? double(n) / seconds : 0.0, fastknn::backend_name(), space.concurrency());
  return 0;
}

/// `fastknn groundtruth`: parses the options, then groundtruth_run.
int run_groundtruth(std::vector<std::string> args_in, std::vector<std::string> const &kokkos_flags)
{
  ArgList args(std::move(args_in), "groundtruth");
  GroundTruthArgs a;
  a.options.metric = fastknn::Metric::L2;
  std::optional<long long> k;
  while (!args.done())
  {
    std::string const name = args.next_option();
    if (name == "-h" || name == "--help")
    {
      std::fputs(groundtruth_help, stdout);
      return 0;
    }
    if (common_option(args, name, a.run))
      continue;
    if (name == "--database")
      a.database_path = args.value(name);
    else if (name == "--queries")
      a.queries_path = args.value(name);
    else if (name == "-k")
      k = args.integer(name, 1);
    else if (name == "--out")
      a.out = args.value(name);
    else if (name == "--metric")
      a.options.metric = metric_option(args, name);
    else if (name == "--p")
      a.options.minkowski_p = p_option(args, name);
    else if (name == "--memory")
      a.memory = size_option(args, name);
    else if (name == "--resume")
    {
      args.no_value(name);
      a.resume = true;
    }
    else if (name == "--checkpoint-every")
      a.checkpoint_every = double(args.integer(name, 0));
    else if (name == "--rows")
    {
      std::string const v = args.value(name);
      auto const colon = v.find(':');
      unsigned long long lo = 0, hi = 0;
      bool ok = colon != std::string::npos;
      ok = ok && std::from_chars(v.data(), v.data() + colon, lo).ptr == v.data() + colon;
      ok = ok && std::from_chars(v.data() + colon + 1, v.data() + v.size(), hi).ptr ==
                     v.data() + v.size();
      if (!ok || lo >= hi)
        throw UsageError("--rows '" + v + "' is not A:B with A < B" + args.hint());
      a.row_begin = lo;
      a.row_end = hi;
    }
    else
      args.unknown(name);
  }
  if (a.database_path.empty() || a.queries_path.empty() || a.out.empty() || !k)
    throw UsageError("groundtruth needs --database FILE, --queries FILE, -k K and --out PREFIX" +
                     args.hint());
  if (*k > INT32_MAX)
    throw UsageError("-k " + std::to_string(*k) + " is too large" + args.hint());
  a.k = std::size_t(*k);
#ifdef FASTKNN_CLI_MPI
  if (distributed())
    throw UsageError("groundtruth is not distributed yet: run it in one process (without mpirun)" +
                     args.hint());
#endif
  KokkosSession kokkos(kokkos_flags, a.run);
  return groundtruth_run(a);
}

} // namespace
