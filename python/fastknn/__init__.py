"""fastknn: exact k-nearest-neighbour search (C++/Kokkos core) for numpy arrays.

    import fastknn
    distances, indices = fastknn.search(database, queries, k=10, metric="l2")
    index = fastknn.Index(database, metric="cosine")
    distances, indices = index.search(queries, k=10)

Results are the true top k, best first, ties broken by the smaller index, identical on every
backend and thread count. Distances are in the input's dtype (float32 or float64), indices are
int64. For "ip" and "cosine" the distances are similarities, largest first (fastknn.sklearn
turns cosine into scikit-learn's 1 - similarity). Bad input raises fastknn.Error (a
ValueError) with what to do; Ctrl-C stops a long search (KeyboardInterrupt). The scikit-learn
estimators are in fastknn.sklearn. See docs/python.md.
"""

import numpy as _np

from . import _core
from ._core import Cancelled, Error, __version__

__all__ = ["search", "Index", "Error", "Cancelled", "backend", "METRICS", "__version__"]

#: Metric names the search accepts (aliases in parentheses in docs/python.md).
METRICS = ("l2", "euclidean", "sqeuclidean", "l2sq", "l1", "manhattan", "cityblock", "ip",
           "inner_product", "dot", "cosine")


def backend():
    """The Kokkos execution space the searches run on ("OpenMP", "Serial", "Cuda", ...)."""
    return _core.backend()


def _as_float_array(x, what, dtype=None):
    """x as a 2-D float32/float64 numpy array; float32 and float64 arrays pass unchanged (no
    copy), other dtypes become float64 (exact for integers up to 2**53)."""
    a = _np.asarray(x) if dtype is None else _np.asarray(x, dtype=dtype)
    if a.dtype not in (_np.float32, _np.float64):
        if a.dtype.kind not in "biuf":
            raise Error(f"{what} must hold numbers, got dtype {a.dtype}; convert it with "
                        "numpy.asarray(x, dtype=numpy.float32)")
        a = a.astype(_np.float64)
    if a.ndim != 2:
        raise Error(f"{what} must be a 2-D array (rows x dimension), got shape {a.shape}; "
                    "reshape it, e.g. x.reshape(1, -1) for one point")
    return a


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, _np.integer)):
        raise Error(f"k must be an integer, got {k!r}")
    return int(k)


class Index:
    """A database prepared for repeated searches (fastknn::Index).

    The pass over the database that every search needs (norms, finiteness and range checks)
    runs once, here. The index reads the array at every search without copying it (C- or
    F-ordered float32/float64 on a host backend), so do not change the array while the index
    lives; build a new index instead.

    threads: OpenMP threads the searches use (None or <= 0: all of the backend's).
    """

    def __init__(self, database, metric="l2", threads=None):
        db = _as_float_array(database, "the database")
        if not isinstance(metric, str):
            raise Error(f"metric must be a name such as 'l2' or 'cosine', got {metric!r}")
        self._threads = 0 if threads is None else int(threads)
        self._index = _core.Index(db, metric, self._threads)

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
        """The metric's canonical name (l2, sqeuclidean, l1, ip, cosine)."""
        return self._index.metric

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
        q = _as_float_array(queries, "the queries")
        return self._index.search(q, _check_k(k), bool(exclude_self),
                                  0 if workspace_bytes is None else int(workspace_bytes),
                                  progress, stats)

    def __reduce__(self):
        raise TypeError("a fastknn.Index refers to its database array and is not pickled; "
                        "pickle the array and build the index again (fastknn.sklearn "
                        "estimators do this for you)")


def search(database, queries, k, metric="l2", exclude_self=False, workspace_bytes=None,
           progress=None, stats=None, threads=None):
    """(distances, indices) of the k nearest rows of `database` to each row of `queries`.

    One call of Index(database, metric, threads).search(queries, k, ...); see Index.search.
    """
    return Index(database, metric, threads).search(queries, k, exclude_self, workspace_bytes,
                                                   progress, stats)
