// fastknn's Python binding (module fastknn._core): fastknn::search, fastknn::radius_search and
// fastknn::Index on numpy arrays. The Python package (python/fastknn/__init__.py) wraps it; see
// docs/python.md.
//
// Arrays: float32 or float64, 2-D (other dtypes are refused; the Python package converts what
// it can convert exactly). A C-ordered (row-major) or F-ordered (column-major) database is
// searched where it lies, without a copy, on a backend whose memory the host can read (OpenMP,
// Serial); the package hands it a private read-only copy. Queries are read in place when
// C-ordered and of the database's dtype; strided or F-ordered ones are copied by numpy, and the
// package converts float64 queries for a float32 database only where that is exact. A device
// backend (CUDA) copies both into its memory. The GIL is released while a search runs;
// Ctrl-C stops it (the progress callback asks Python whether a signal arrived).

#include <fastknn/fastknn.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <Kokkos_Core.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <variant>

namespace py = pybind11;

namespace
{

using Space = Kokkos::DefaultExecutionSpace;
using MS = Space::memory_space;
constexpr bool host_memory = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MS>::accessible;

/// Objects that hold Kokkos memory; Kokkos is finalised at exit only when none is left.
std::atomic<long> live_objects{0};

void ensure_kokkos()
{
  if (Kokkos::is_initialized())
    return;
  // Kokkos' OpenMP backend prints advice when OMP_PROC_BIND is unset; a Python process should
  // not pin its threads behind the user's back. The last argument 0 keeps a value the user set.
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::InitializationSettings settings;
  settings.set_disable_warnings(true);
  Kokkos::initialize(settings);
}

/// The execution-space instance for `threads` (<= 0 or None: the default instance). On the
/// OpenMP backend a positive count gets its own instance with that many threads (at most the
/// backend's); other backends have no thread count and use the default instance.
Space space_for(int threads)
{
#ifdef KOKKOS_ENABLE_OPENMP
  if constexpr (std::is_same_v<Space, Kokkos::OpenMP>)
  {
    int const most = Kokkos::OpenMP().concurrency();
    if (threads > 0 && threads < most)
      return Kokkos::OpenMP(threads);
  }
#endif
  (void)threads;
  return Space{};
}

/// Stops a search when Python has a pending signal (Ctrl-C): called on the searching host
/// thread, which released the GIL, between blocks of work.
struct SignalCheck
{
  std::shared_ptr<bool> interrupted = std::make_shared<bool>(false);
  py::object progress; // optional user callable(fraction) -> None or bool
  bool operator()(double fraction) const
  {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0)
    {
      *interrupted = true; // the KeyboardInterrupt stays set for the caller to re-raise
      return false;
    }
    if (!progress.is_none())
    {
      py::object r = progress(fraction);
      if (!r.is_none() && !r.cast<bool>())
        return false;
    }
    return true;
  }
};

template <class T, class Layout>
using HostView = Kokkos::View<T const **, Layout, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
template <class T, class Layout>
using SpaceView = Kokkos::View<T const **, Layout, MS>;

/// A 2-D numpy array as a View of the backend's memory: in place where that is possible,
/// otherwise a copy into the backend's memory.
template <class T, class Layout>
SpaceView<T, Layout> as_view(py::array_t<T> const &a, char const *label)
{
  HostView<T, Layout> host(a.data(), std::size_t(a.shape(0)), std::size_t(a.shape(1)));
  if constexpr (host_memory)
    return SpaceView<T, Layout>(host); // unmanaged: aliases numpy's buffer
  else
  {
    Kokkos::View<T **, Layout, MS> dev(
        Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), host.extent(0),
        host.extent(1));
    Kokkos::deep_copy(dev, host);
    return dev;
  }
}

bool is_f_ordered(py::array const &a)
{
  return a.ndim() == 2 && (a.flags() & py::array::f_style) && !(a.flags() & py::array::c_style);
}

void check_2d(py::array const &a, char const *what)
{
  if (a.ndim() != 2)
    throw fastknn::Error(std::string(what) + " must be a 2-D array (rows x dimension), got " +
                         std::to_string(a.ndim()) +
                         " dimension(s); reshape it, e.g. x.reshape(1, -1) for one point");
}

/// (distances, indices) as numpy arrays: distances in the input's dtype, indices int64.
template <class T>
py::tuple to_numpy(fastknn::Neighbors<MS, T> const &found)
{
  auto idx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
  auto dist = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
  std::size_t const q = idx.extent(0), k = idx.extent(1);
  py::array_t<T> d({q, k});
  py::array_t<std::int64_t> i({q, k});
  auto dm = d.template mutable_unchecked<2>();
  auto im = i.template mutable_unchecked<2>();
  for (std::size_t r = 0; r < q; ++r)
    for (std::size_t c = 0; c < k; ++c)
    {
      dm(r, c) = dist(r, c);
      im(r, c) = idx(r, c);
    }
  return py::make_tuple(d, i);
}

/// Runs `search()` with the GIL released and the signal check installed; re-raises a pending
/// KeyboardInterrupt when that stopped it.
template <class Search>
auto guarded(fastknn::SearchOptions &options, py::object const &progress, Search &&search)
{
  SignalCheck check;
  check.progress = progress;
  options.progress = check;
  try
  {
    py::gil_scoped_release nogil;
    return search();
  }
  catch (fastknn::Cancelled const &)
  {
    if (*check.interrupted && PyErr_Occurred())
      throw py::error_already_set();
    throw;
  }
}

/// A prepared database: one fastknn::Index over a C- or F-ordered float32/float64 array.
class PyIndex
{
public:
  PyIndex(py::array database, std::string const &metric, int threads, double p)
      : _metric(fastknn::parse_metric(metric)), _threads(threads), _p(p)
  {
    if (_metric == fastknn::Metric::Minkowski && !(p > 0 && p < HUGE_VAL))
      throw fastknn::Error("p = " + std::to_string(p) +
                           " is not a finite number > 0; use metric='chebyshev' for p = inf");
    ensure_kokkos();
    check_2d(database, "the database");
    bool const f = is_f_ordered(database);
    // By value, not identity: an unpickled array's dtype is an equal but distinct object (an
    // identity test once sent such float64 data down the float32 path).
    bool const dbl = database.dtype().equal(py::dtype::of<double>());
    if (!dbl && !database.dtype().equal(py::dtype::of<float>()))
      throw fastknn::Error("the database must be float32 or float64, got " +
                           std::string(py::str(database.dtype())) +
                           "; convert it with numpy.asarray(x, dtype=numpy.float64)");
    // Keep numpy's buffer alive (and unchanged: the index reads it at every search).
    if (dbl)
      _array =
          f ? py::array(
                  py::array_t<double, py::array::f_style | py::array::forcecast>::ensure(database))
            : py::array(
                  py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(database));
    else
      _array =
          f ? py::array(
                  py::array_t<float, py::array::f_style | py::array::forcecast>::ensure(database))
            : py::array(
                  py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(database));
    if (!_array)
      throw fastknn::Error("the database could not be converted to a float32/float64 array");
    Space const space = space_for(threads);
    py::gil_scoped_release nogil;
    if (dbl && f)
      _index.emplace<IndexOf<double, Kokkos::LayoutLeft>>(
          space, as_view<double, Kokkos::LayoutLeft>(_array, "fastknn::python::database"), _metric,
          fastknn::borrow_data); // the module's own read-only copy
    else if (dbl)
      _index.emplace<IndexOf<double, Kokkos::LayoutRight>>(
          space, as_view<double, Kokkos::LayoutRight>(_array, "fastknn::python::database"), _metric,
          fastknn::borrow_data);
    else if (f)
      _index.emplace<IndexOf<float, Kokkos::LayoutLeft>>(
          space, as_view<float, Kokkos::LayoutLeft>(_array, "fastknn::python::database"), _metric,
          fastknn::borrow_data); // the module's own read-only copy
    else
      _index.emplace<IndexOf<float, Kokkos::LayoutRight>>(
          space, as_view<float, Kokkos::LayoutRight>(_array, "fastknn::python::database"), _metric,
          fastknn::borrow_data); // the module's own read-only copy
    ++live_objects;
  }
  PyIndex(PyIndex const &) = delete;
  PyIndex &operator=(PyIndex const &) = delete;
  ~PyIndex()
  {
    _index.emplace<std::monostate>();
    --live_objects;
  }

  py::tuple search(py::array queries, int k, bool exclude_self, std::size_t workspace_bytes,
                   py::object const &progress, py::object const &stats_out) const
  {
    check_2d(queries, "the queries");
    fastknn::SearchOptions options;
    set_options(options, exclude_self, workspace_bytes);
    fastknn::SearchStats st;
    options.stats = &st;
    Space const space = space_for(_threads);
    double search_seconds = 0; // the library's search alone (no conversion, no numpy output)
    py::tuple out = with_queries(
        queries,
        [&](auto const &index, auto const &qv) -> py::tuple
        {
          using T = typename std::remove_cvref_t<decltype(index)>::value_type;
          auto const t0 = std::chrono::steady_clock::now();
          auto found =
              guarded(options, progress, [&] { return index.search(space, qv, k, options); });
          search_seconds =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          return to_numpy<T>(found);
        });
    if (!stats_out.is_none())
    {
      py::dict stats = stats_out.cast<py::dict>();
      stats["exact_fallbacks"] = st.exact_fallbacks;
      stats["integer_preselection"] = st.integer_preselection;
      stats["workspace_bytes"] = st.workspace_bytes;
      stats["rescored"] = st.rescored;
      stats["search_seconds"] = search_seconds;
      stats["isa"] = st.isa ? std::string(st.isa) : std::string();
    }
    return out;
  }

  /// (offsets, indices, distances) of the rows within `radius` of each query (compressed rows,
  /// int64 offsets and indices, distances in the database's dtype).
  py::tuple radius_search(py::array queries, double radius, bool exclude_self,
                          std::size_t workspace_bytes, int initial_k, std::size_t max_results,
                          py::object const &progress) const
  {
    check_2d(queries, "the queries");
    fastknn::RadiusOptions options;
    set_options(options, exclude_self, workspace_bytes);
    options.initial_k = initial_k;
    options.max_results = max_results;
    Space const space = space_for(_threads);
    return with_queries(
        queries,
        [&](auto const &index, auto const &qv) -> py::tuple
        {
          using T = typename std::remove_cvref_t<decltype(index)>::value_type;
          auto found =
              guarded(options, progress,
                      [&] { return fastknn::radius_search(space, index, qv, radius, options); });
          auto off = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.offsets);
          auto idx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.indices);
          auto dist = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, found.distances);
          py::array_t<std::int64_t> o(off.extent(0)), i(idx.extent(0));
          py::array_t<T> d(dist.extent(0));
          auto om = o.template mutable_unchecked<1>();
          auto im = i.template mutable_unchecked<1>();
          auto dm = d.template mutable_unchecked<1>();
          for (std::size_t r = 0; r < off.extent(0); ++r)
            om(r) = std::int64_t(off(r));
          for (std::size_t r = 0; r < idx.extent(0); ++r)
          {
            im(r) = idx(r);
            dm(r) = dist(r);
          }
          return py::make_tuple(o, i, d);
        });
  }

  std::size_t size() const { return _array.shape(0); }
  std::size_t dimension() const { return _array.shape(1); }
  std::string metric() const { return std::string(fastknn::metric_name(_metric)); }
  double p() const { return _p; }
  py::dtype dtype() const { return _array.dtype(); }

private:
  /// The queries in the database's dtype T, C-ordered (numpy copies otherwise); never rounded
  /// here (the package rounds only where that is exact).
  template <class T>
  static py::array_t<T> queries_as(py::array const &queries)
  {
    bool const q_double = queries.dtype().equal(py::dtype::of<double>());
    if (!q_double && !queries.dtype().equal(py::dtype::of<float>()))
      throw fastknn::Error("the queries must be float32 or float64, got " +
                           std::string(py::str(queries.dtype())));
    if (std::is_same_v<T, float> && q_double)
      throw fastknn::Error("float64 queries on a float32 index would be rounded; "
                           "convert them (fastknn.Index.search does so where exact)");
    auto q = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(queries);
    if (!q)
      throw fastknn::Error("the queries could not be converted to the database's dtype");
    return q;
  }

  /// The options both searches take from Python (workspace_bytes 0: the default).
  void set_options(fastknn::SearchOptions &options, bool exclude_self,
                   std::size_t workspace_bytes) const
  {
    options.metric = _metric;
    options.minkowski_p = _p;
    options.exclude_self = exclude_self;
    if (workspace_bytes > 0)
      options.workspace_bytes = workspace_bytes;
  }

  /// Calls f(index, queries) with the index and the queries as a View of its value type
  /// (queries_as, as_view); Error when the index is closed.
  template <class F>
  py::tuple with_queries(py::array const &queries, F &&f) const
  {
    return std::visit(
        [&](auto const &index) -> py::tuple
        {
          using I = std::remove_cvref_t<decltype(index)>;
          if constexpr (std::is_same_v<I, std::monostate>)
            throw fastknn::Error("the index is closed");
          else
          {
            using T = typename I::value_type;
            auto q = queries_as<T>(queries);
            return f(index, as_view<T, Kokkos::LayoutRight>(q, "fastknn::python::queries"));
          }
        },
        _index);
  }

  template <class T, class Layout>
  using IndexOf = fastknn::Index<Space, SpaceView<T, Layout>>;
  py::array _array;
  fastknn::Metric _metric;
  int _threads;
  double _p; // Minkowski's exponent (read for that metric only)
  std::variant<std::monostate, IndexOf<float, Kokkos::LayoutRight>,
               IndexOf<float, Kokkos::LayoutLeft>, IndexOf<double, Kokkos::LayoutRight>,
               IndexOf<double, Kokkos::LayoutLeft>>
      _index;
};

} // namespace

PYBIND11_MODULE(_core, m)
{
  m.doc() = "fastknn's C++ core: exact k-nearest-neighbour search (see the fastknn package)";

  // fastknn.Error is a ValueError (bad input is what it reports); Cancelled is an Error.
  static py::exception<fastknn::Error> error(m, "Error", PyExc_ValueError);
  static py::exception<fastknn::Cancelled> cancelled(m, "Cancelled", error.ptr());
  py::register_exception_translator(
      [](std::exception_ptr p)
      {
        try
        {
          if (p)
            std::rethrow_exception(p);
        }
        catch (fastknn::Cancelled const &e)
        {
          PyErr_SetString(cancelled.ptr(), e.what());
        }
        catch (fastknn::Error const &e)
        {
          PyErr_SetString(error.ptr(), e.what());
        }
      });

  py::class_<PyIndex>(m, "Index")
      .def(py::init<py::array, std::string const &, int, double>(), py::arg("database"),
           py::arg("metric") = "l2", py::arg("threads") = 0, py::arg("p") = 2.0)
      .def("search", &PyIndex::search, py::arg("queries"), py::arg("k"),
           py::arg("exclude_self") = false, py::arg("workspace_bytes") = 0,
           py::arg("progress") = py::none(), py::arg("stats") = py::none())
      .def("radius_search", &PyIndex::radius_search, py::arg("queries"), py::arg("radius"),
           py::arg("exclude_self") = false, py::arg("workspace_bytes") = 0,
           py::arg("initial_k") = 32, py::arg("max_results") = 0, py::arg("progress") = py::none())
      .def_property_readonly("size", &PyIndex::size)
      .def_property_readonly("dimension", &PyIndex::dimension)
      .def_property_readonly("metric", &PyIndex::metric)
      .def_property_readonly("p", &PyIndex::p)
      .def_property_readonly("dtype", &PyIndex::dtype);

  m.def("backend", [] { return std::string(Space::name()); });
  m.def("isa", [] { return fastknn::detail::kernel_isa<Space>(); });
  m.def("concurrency",
        []
        {
          ensure_kokkos();
          return Space().concurrency();
        });
  m.attr("__version__") = FASTKNN_VERSION_STRING;

  // Kokkos is finalised at exit when no Index holds its memory any more (otherwise the process
  // ends without it; the operating system frees the rest).
  py::module_::import("atexit").attr("register")(py::cpp_function(
      []
      {
        if (Kokkos::is_initialized() && !Kokkos::is_finalized() && live_objects == 0)
          Kokkos::finalize();
      }));
}
