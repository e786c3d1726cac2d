"""fastknn: exact k-nearest-neighbour search (C++/Kokkos core) for numpy arrays.

    import fastknn
    distances, indices = fastknn.search(database, queries, k=10, metric="l2")
    index = fastknn.Index(database, metric="cosine")
    distances, indices = index.search(queries, k=10)
    offsets, indices, distances = index.radius_search(queries, radius=2.5)

Results are the true top k, best first, ties broken by the smaller index, identical on every
backend and thread count. Distances are in the input's dtype (float32 or float64), indices are
int64; no input is rounded without a word (a float64 query float32 cannot hold is searched in
float64 by search() and refused by a float32 Index). For "ip" and "cosine" the distances are similarities, largest first (fastknn.sklearn
turns cosine into scikit-learn's 1 - similarity). Bad input raises fastknn.Error (a
ValueError) with what to do; Ctrl-C stops a long search (KeyboardInterrupt). The scikit-learn
estimators are in fastknn.sklearn. See docs/python.md.
"""

import numpy as _np

from . import _core
from ._core import Cancelled, Error, __version__

__all__ = ["search", "radius_search", "Index", "Error", "Cancelled", "backend", "isa", "METRICS", "__version__"]

#: Metric names the search accepts (aliases in parentheses in docs/python.md).
METRICS = ("l2", "euclidean", "sqeuclidean", "l2sq", "l1", "manhattan", "cityblock", "ip",
           "inner_product", "dot", "cosine")


def backend():
    """The Kokkos execution space the searches run on ("OpenMP", "Serial", "Cuda", ...)."""
    return _core.backend()


def isa():
    """The kernels the searches run: the instruction-set variant the library chose for this CPU
    ("generic", "avx2", "avx512", "avx512vnni"; FASTKNN_ISA forces a lower one), or the device
    ("cuda")."""
    return _core.isa()


def _as_float_array(x, what, dtype=None):
    """x as a 2-D float32/float64 numpy array; float32 and float64 arrays pass unchanged (no
    copy), other dtypes become float64 when that is exact (integers up to 2**53, bool, float16)
    and are refused otherwise."""
    a = _np.asarray(x) if dtype is None else _np.asarray(x, dtype=dtype)
    if a.dtype not in (_np.float32, _np.float64):
        if a.dtype.kind not in "biuf":
            raise Error(f"{what} must hold numbers, got dtype {a.dtype}; convert it with "
                        "numpy.asarray(x, dtype=numpy.float32)")
        if a.dtype.kind in "iu" and a.dtype.itemsize > 4 and a.size:
            # float64 holds every integer up to 2**53 exactly, and no larger one reliably.
            big = max(abs(int(a.min())), abs(int(a.max())))
            if big > 2**53:
                raise Error(f"{what} holds integers up to {big}, beyond 2**53, which float64 "
                            "(the type fastknn computes in) cannot represent exactly; scale "
                            "or offset them first")
        if a.dtype.kind == "f" and a.dtype.itemsize > 8:
            raise Error(f"{what} is {a.dtype}, which fastknn would round; convert it with "
                        "numpy.asarray(x, dtype=numpy.float64) if that rounding is acceptable")
        a = a.astype(_np.float64)
    if a.ndim != 2:
        raise Error(f"{what} must be a 2-D array (rows x dimension), got shape {a.shape}; "
                    "reshape it, e.g. x.reshape(1, -1) for one point")
    return a


def _queries_for(q, dtype):
    """The queries in the index's dtype, refusing a conversion that would change a value: a
    float64 query rounded to float32 can be nearer to another row than the query itself is."""
    if q.dtype == dtype or dtype == _np.float64:
        return q  # the same, or float32 -> float64 (exact)
    q32 = q.astype(_np.float32)
    with _np.errstate(over="ignore", invalid="ignore"):
        exact = _np.array_equal(q32.astype(_np.float64), q, equal_nan=True)
    if not exact:
        raise Error("the queries are float64 and hold values float32 cannot represent, but "
                    "the index holds float32 data: rounding them could change the answer. "
                    "Build the index from database.astype(numpy.float64) for the float64 "
                    "answer, or pass queries.astype(numpy.float32) to search the rounded "
                    "queries")
    return q32


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, _np.integer)):
        raise Error(f"k must be an integer, got {k!r}")
    return int(k)


class Index:
    """A database prepared for repeated searches (fastknn::Index).

    The pass over the database that every search needs (norms, finiteness and range checks)
    runs once, here. The index keeps its own read-only copy of the database (C- or F-ordered
    as given), so a later change to the caller's array cannot reach it: searches answer from
    the data as it was when the index was built. Build a new index to search changed data.

    Queries are converted to the database's dtype only where that is exact: float64 queries
    that float32 cannot represent are refused on a float32 index (build the index from float64
    data for the float64 answer).

    threads: OpenMP threads the searches use (None or <= 0: all of the backend's).
    p: the exponent of metric="minkowski" (finite, > 0; read for no other metric).
    Metrics: l2 (euclidean), sqeuclidean, l1 (manhattan), ip, cosine, chebyshev, minkowski,
    canberra, braycurtis, hamming and the boolean metrics (jaccard, dice, kulsinski, matching,
    rogerstanimoto, russellrao, sokalmichener, sokalsneath, yule: non-zero is true), with
    scikit-learn's definitions; from chebyshev on every pair is scored exactly (slower).
    """

    def __init__(self, database, metric="l2", threads=None, *, p=2, _copy=True):
        db = _as_float_array(database, "the database")
        if _copy or not (db.flags.c_contiguous or db.flags.f_contiguous):
            db = _np.array(db, order="F" if db.flags.f_contiguous and not db.flags.c_contiguous
                           else "C", copy=True)
        else:
            db = db.view()  # the flag below must not change the caller's array
        db.flags.writeable = False
        self._database = db  # private: the core reads it at every search
        if not isinstance(metric, str):
            raise Error(f"metric must be a name such as 'l2' or 'cosine', got {metric!r}")
        self._threads = 0 if threads is None else int(threads)
        self._index = _core.Index(db, metric, self._threads, float(p))

    @property
    def size(self):
        """Rows of the database (N)."""
        return self._index.size

    @property
    def dimension(self):
        """Columns of the database (D)."""
        return self._index.dimension

    @property
    def metric(self):
        """The metric's canonical name (l2, sqeuclidean, l1, ip, cosine, chebyshev,
        minkowski)."""
        return self._index.metric

    @property
    def p(self):
        """Minkowski's exponent (as given; read for metric="minkowski" only)."""
        return self._index.p

    @property
    def dtype(self):
        """float32 or float64: the database's dtype, which the queries are converted to."""
        return self._index.dtype

    def search(self, queries, k, exclude_self=False, workspace_bytes=None, progress=None,
               stats=None):
        """(distances, indices) of the k nearest database rows of each query row, best first.

        exclude_self: the queries are the database (same rows, same order) and query i never
        returns row i. workspace_bytes bounds the scratch memory (default 512 MiB). progress:
        a callable taking the fraction done; returning False stops the search
        (fastknn.Cancelled). stats: a dict that receives what the search did
        (exact_fallbacks, rescored, integer_preselection, workspace_bytes, isa, and
        search_seconds: the library's search alone, without the binding's conversions).
        """
        q = _queries_for(_as_float_array(queries, "the queries"), self.dtype)
        return self._index.search(q, _check_k(k), bool(exclude_self),
                                  0 if workspace_bytes is None else int(workspace_bytes),
                                  progress, stats)

    def radius_search(self, queries, radius, exclude_self=False, workspace_bytes=None,
                      initial_k=32, max_results=None, progress=None):
        """(offsets, indices, distances): every database row within `radius` of each query row
        as compressed rows: the rows of query i are indices[offsets[i]:offsets[i + 1]], best
        first, ties by the smaller index, with their distances (distance <= radius; for "ip"
        and "cosine" the values are similarities and the rows are those with similarity >=
        radius). Exact: built on the exact k search (docs/python.md). initial_k: the k of the
        first round (a query with more rows inside is searched again with 8x the k).
        max_results: refuse (fastknn.Error) when more (query, row) pairs are inside.
        """
        q = _queries_for(_as_float_array(queries, "the queries"), self.dtype)
        return self._index.radius_search(q, float(radius), bool(exclude_self),
                                         0 if workspace_bytes is None else int(workspace_bytes),
                                         _check_k(initial_k),
                                         0 if max_results is None else int(max_results),
                                         progress)

    def __reduce__(self):
        raise TypeError("a fastknn.Index is not pickled; pickle its database array and build "
                        "the index again (fastknn.sklearn estimators do this for you)")


def search(database, queries, k, metric="l2", exclude_self=False, workspace_bytes=None,
           progress=None, stats=None, threads=None, p=2):
    """(distances, indices) of the k nearest rows of `database` to each row of `queries`.

    One call of Index(database, metric, threads).search(queries, k, ...); see Index.search.
    The database is not copied. Float64 queries on float32 data that float32 cannot represent
    are searched in float64 (the database converted exactly), so the answer is the float64
    one and the distances are float64.
    """
    index, q = _index_for_call(database, queries, metric, threads, p)
    return index.search(q, k, exclude_self, workspace_bytes, progress, stats)


def _index_for_call(database, queries, metric, threads, p):
    """(Index, queries) for one call of search() or radius_search(): float64 queries on
    float32 data that float32 cannot represent make the index float64 (converted exactly)."""
    db = _as_float_array(database, "the database")
    q = _as_float_array(queries, "the queries")
    if db.dtype == _np.float32 and q.dtype == _np.float64:
        try:
            q = _queries_for(q, db.dtype)
        except Error:
            db = db.astype(_np.float64)
    return Index(db, metric, threads, p=p, _copy=False), q


def radius_search(database, queries, radius, metric="l2", exclude_self=False,
                  workspace_bytes=None, initial_k=32, max_results=None, progress=None,
                  threads=None, p=2):
    """(offsets, indices, distances) of the rows of `database` within `radius` of each row of
    `queries`: one call of Index(database, metric, threads).radius_search(...); see there."""
    index, q = _index_for_call(database, queries, metric, threads, p)
    return index.radius_search(q, radius, exclude_self, workspace_bytes, initial_k, max_results,
                               progress)
