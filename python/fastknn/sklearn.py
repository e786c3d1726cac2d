"""scikit-learn estimators backed by fastknn's exact search.

    from fastknn.sklearn import KNeighborsClassifier   # instead of sklearn.neighbors'
    clf = KNeighborsClassifier(n_neighbors=5).fit(X_train, y_train)
    clf.score(X_test, y_test)

The seven estimators (NearestNeighbors, KNeighborsClassifier, KNeighborsRegressor,
RadiusNeighborsClassifier, RadiusNeighborsRegressor, KNeighborsTransformer,
RadiusNeighborsTransformer) subclass scikit-learn's own (1.2): its parameters, fit, predict,
predict_proba, score and transform run as they are, and the neighbour searches they call
(kneighbors, radius_neighbors and their graphs) are fastknn's. What differs:
- the search is always fastknn's exact brute force: `algorithm` and `leaf_size` keep their
  meaning for scikit-learn's fit (its `_fit_method` says what it would have used) but every
  algorithm gives the exact answer; fastknn's ties go to the smaller training index;
- metrics: "minkowski" with p = 1 or 2, "euclidean"/"l2", "manhattan"/"cityblock"/"l1",
  "sqeuclidean" and "cosine" (1 - cosine similarity; rows of zeros are at distance 1, as in
  scikit-learn). Others raise ValueError after scikit-learn's own checks; `metric_params` must
  hold nothing but p. "precomputed" (the distances given) is answered by scikit-learn's own
  selection: there is nothing for fastknn to compute;
- `fit` keeps its own copy of the training points: changing the caller's array afterwards does
  not change the answers (scikit-learn answers from the changed array; neither mixes the two);
- float64 queries on float32 training points are answered in float64, as scikit-learn does (a
  float64 copy of the training points is made on the first such query);
- `n_jobs` is the number of OpenMP threads (None or -1: all);
- `radius_neighbors` and `radius_neighbors_graph` are exact (fastknn.Index.radius_search):
  with sort_results nearest first, ties by index; without, by index (as scikit-learn's brute
  force leaves them);
- sparse input is densified (training points and queries) where the dense copy fits
  DENSE_LIMIT_BYTES (2 GiB), and refused with a TypeError above.
"""
import numbers

import numpy as np
from scipy import sparse
from sklearn import neighbors as _skn
from sklearn.utils.validation import check_is_fitted

from . import Index

__all__ = ["NearestNeighbors", "KNeighborsClassifier", "KNeighborsRegressor",
           "RadiusNeighborsClassifier", "RadiusNeighborsRegressor", "KNeighborsTransformer",
           "RadiusNeighborsTransformer"]

# scikit-learn's metric names -> (fastknn metric, how fastknn's value becomes the distance)
_METRICS = {
    "euclidean": "l2", "l2": "l2",
    "manhattan": "l1", "cityblock": "l1", "l1": "l1",
    "sqeuclidean": "sqeuclidean",
    "cosine": "cosine",
    "chebyshev": "chebyshev", "infinity": "chebyshev",
    **{m: m for m in ("canberra", "braycurtis", "hamming", "jaccard", "dice", "kulsinski",
                      "matching", "rogerstanimoto", "russellrao", "sokalmichener", "sokalsneath",
                      "yule")},
}


#: For the metrics fastknn does not compute, the nearest thing it does (in the refusal).
_NEAREST = {
    "correlation": "metric='cosine' on rows minus their own mean ranks the same",
    "seuclidean": "metric='euclidean' on columns divided by sqrt(V) ranks the same",
    "mahalanobis": "metric='euclidean' on X @ L, with VI = L @ L.T (Cholesky), ranks the same",
    "wminkowski": "metric='minkowski' on columns times w ** (1 / p) ranks the same",
    "nan_euclidean": "metric='euclidean' after imputing the missing values",
    "haversine": "metric='euclidean' on 3-D unit vectors (cos lat cos lon, cos lat sin lon, "
                 "sin lat) ranks the same",
    "callable": "metric='precomputed' with the distances computed by your function",
}


def _refuse(what, nearest):
    raise ValueError(f"{what} is not supported by fastknn; {_NEAREST[nearest]}. fastknn's "
                     f"metrics: {sorted(_METRICS) + ['minkowski']}")


def _fastknn_metric(metric, p, metric_params):
    if metric_params:
        keys = set(metric_params)
        nearest = ("seuclidean" if keys == {"V"} else "mahalanobis" if keys == {"VI"} else
                   "wminkowski" if keys == {"w"} else None)
        if nearest is not None:
            _refuse(f"metric_params={metric_params!r}", nearest)
        raise ValueError(f"metric_params={metric_params!r} is not supported by fastknn; pass "
                         "metric_params=None")
    if callable(metric):
        _refuse("a callable metric", "callable")
    if metric == "minkowski":
        if p == 2:
            return "l2"
        if p == 1:
            return "l1"
        if p == np.inf:
            return "chebyshev"
        if not (isinstance(p, numbers.Real) and 0 < p < np.inf):
            raise ValueError(f"metric='minkowski' with p={p!r}: fastknn needs a finite p > 0 "
                             "(p=inf is metric='chebyshev')")
        return "minkowski"
    if metric not in _METRICS:
        if metric in _NEAREST:
            _refuse(f"metric={metric!r}", metric)
        raise ValueError(f"metric={metric!r} is not supported by fastknn; use one of "
                         f"{sorted(_METRICS) + ['minkowski']}")
    return _METRICS[metric]


def _threads(n_jobs):
    if n_jobs is None or n_jobs == -1:
        return None
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs={n_jobs!r}: use None, -1 or a positive number of threads")
    return int(n_jobs)


#: Sparse input is densified where the dense copy stays below this many bytes, and refused
#: above (fastknn's kernels read dense rows).
DENSE_LIMIT_BYTES = 2 << 30


def _dense(X, what):
    """X as a dense C-ordered array (sparse input converted where it fits DENSE_LIMIT_BYTES)."""
    if not sparse.issparse(X):
        return X
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    size = X.shape[0] * X.shape[1] * np.dtype(dtype).itemsize
    if size > DENSE_LIMIT_BYTES:
        raise TypeError(f"{what} are a sparse matrix whose dense form needs {size} bytes, "
                        f"above fastknn.sklearn.DENSE_LIMIT_BYTES = {DENSE_LIMIT_BYTES}: "
                        "fastknn searches dense rows; pass fewer rows at a time, or raise the "
                        "limit if the memory is there")
    return np.ascontiguousarray(X.toarray(), dtype=dtype)


class _Searches:
    """The neighbour searches every estimator here answers with fastknn (kneighbors,
    radius_neighbors and their graphs) over `_fit_X`, and the preparation of its index. A
    plain mixin (no BaseEstimator: scikit-learn's tag collection would let its defaults
    override the tags of the scikit-learn classes some estimators build on)."""

    def _build_index(self):
        # The pass over the training points every search needs runs once, here. Cosine: rows of
        # zeros (undefined for fastknn) are at cosine distance 1 from everything, as in
        # scikit-learn; the index holds the other rows and kneighbors merges the two.
        self._zero_rows = None
        self._index64 = None
        if self._fastknn_metric_ == "cosine":
            zero = ~np.any(self._fit_X != 0, axis=1)
            if zero.any():
                self._zero_rows = np.flatnonzero(zero)
                self._nonzero_rows = np.flatnonzero(~zero)
        self._index = self._make_index(self._fit_X.dtype)

    def _make_index(self, dtype):
        """An Index over the training rows it searches (cosine: the non-zero ones) in dtype."""
        X = self._fit_X if self._zero_rows is None else self._fit_X[self._nonzero_rows]
        if X.shape[0] == 0:
            return None
        return Index(X.astype(dtype, copy=False), self._fastknn_metric_,
                     _threads(self.n_jobs), p=self._fastknn_p_, _copy=False)  # X is the estimator's own array

    def _index_for(self, dtype):
        """The index that answers queries of `dtype` exactly. As in scikit-learn, float64
        queries on float32 training points are answered in float64: rounding them to float32
        could change their neighbours. That index (a float64 copy of the training points) is
        built on the first such query."""
        if dtype != np.float64 or self._fit_X.dtype == np.float64:
            return self._index, self._fit_X.dtype
        if self._index64 is None:
            self._index64 = self._make_index(np.float64)
        return self._index64, np.dtype(np.float64)

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: it may be the instance dict itself
        state.pop("_index", None)  # built from _fit_X again after unpickling
        state.pop("_index64", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_fit_X" in state:
            self._build_index()

    def _search(self, Q, k, query_is_train):
        index, dtype = self._index_for(Q.dtype)
        if self._zero_rows is None:
            return index.search(Q.astype(dtype, copy=False), k, exclude_self=query_is_train)
        return self._search_with_zero_rows(index, dtype, Q, k, query_is_train)

    def _search_with_zero_rows(self, index, dtype, Q, k, query_is_train):
        """Cosine with rows of zeros in the training set: fastknn's top k among the other rows,
        merged with the zero rows (similarity 0) by (similarity, index)."""
        n_q = Q.shape[0]
        q_zero = ~np.any(Q != 0, axis=1)
        parts_s, parts_i = [], []
        # Non-zero queries against the non-zero training rows.
        if index is not None and (~q_zero).any():
            nz_q = np.flatnonzero(~q_zero)
            room = index.size - (1 if query_is_train else 0)
            kk = min(k, room)
            s_nz = np.full((n_q, kk), -np.inf)
            i_nz = np.full((n_q, kk), -1, dtype=np.int64)
            if kk > 0:
                if query_is_train:  # the queries are the index's own rows: exclude_self
                    s, i = index.search(self._fit_X[self._nonzero_rows], kk,
                                        exclude_self=True)
                    pos = np.searchsorted(self._nonzero_rows, nz_q)
                    s, i = s[pos], i[pos]
                else:
                    s, i = index.search(Q[nz_q].astype(dtype, copy=False), kk)
                s_nz[nz_q] = s
                i_nz[nz_q] = self._nonzero_rows[i]
            parts_s.append(s_nz)
            parts_i.append(i_nz)
        # Every other pair has similarity 0: zero training rows for every query, and every
        # training row for a zero query. The first k + 1 such rows by index are enough.
        first_zero = self._zero_rows[: k + 1]
        z_s = np.zeros((n_q, first_zero.size))
        z_i = np.broadcast_to(first_zero, (n_q, first_zero.size)).copy()
        parts_s.append(z_s)
        parts_i.append(z_i)
        if q_zero.any():
            all_first = np.arange(min(k + 1, self.n_samples_fit_))
            a_s = np.repeat(np.where(q_zero, 0.0, -np.inf)[:, None], all_first.size, axis=1)
            a_i = np.broadcast_to(all_first, (n_q, all_first.size)).copy()
            parts_s.append(a_s)
            parts_i.append(a_i)
        sims = np.concatenate(parts_s, axis=1)
        inds = np.concatenate(parts_i, axis=1)
        if query_is_train:  # never the query's own row
            sims[inds == np.arange(n_q)[:, None]] = -np.inf
        sims[inds < 0] = -np.inf
        # Best first: larger similarity, then smaller index; drop duplicates of an index.
        out_s = np.empty((n_q, k), dtype=dtype)
        out_i = np.empty((n_q, k), dtype=np.int64)
        for qi in range(n_q):
            o = np.lexsort((inds[qi], -sims[qi]))
            seen = set()
            j = 0
            for t in o:
                idx = inds[qi, t]
                if idx in seen or sims[qi, t] == -np.inf:
                    continue
                seen.add(idx)
                out_s[qi, j] = sims[qi, t]
                out_i[qi, j] = idx
                j += 1
                if j == k:
                    break
        return out_s, out_i

    def _given(self):
        """True for metric="precomputed": X holds the distances, and scikit-learn's own
        methods select from them (fastknn has nothing to compute)."""
        return getattr(self, "_fastknn_metric_", None) == "precomputed"

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Distances and indices of the n_neighbors nearest training points of each row of X
        (X=None: of each training point, itself excluded), nearest first."""
        check_is_fitted(self)
        if self._given():
            return super().kneighbors(X, n_neighbors, return_distance)
        if n_neighbors is None:
            n_neighbors = self.n_neighbors
        elif n_neighbors <= 0:  # scikit-learn's checks and messages, in its order
            raise ValueError(f"Expected n_neighbors > 0. Got {n_neighbors}")
        elif not isinstance(n_neighbors, numbers.Integral):
            raise TypeError(f"n_neighbors does not take {type(n_neighbors)} value, enter "
                            "integer value")
        n_neighbors = int(n_neighbors)
        Q, query_is_train = self._queries(X)
        room = self.n_samples_fit_ - (1 if query_is_train else 0)
        if n_neighbors > room:
            raise ValueError(f"Expected n_neighbors <= n_samples_fit, but n_neighbors = "
                             f"{n_neighbors + (1 if query_is_train else 0)}, n_samples_fit = "
                             f"{self.n_samples_fit_}, n_samples = {Q.shape[0]}")
        dist, ind = self._search(Q, n_neighbors, query_is_train)
        if not return_distance:
            return ind
        if self._fastknn_metric_ == "cosine":
            dist = 1.0 - dist  # similarity -> scikit-learn's cosine distance
            np.maximum(dist, 0, out=dist)
        return dist, ind

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Sparse (n_queries, n_samples_fit) graph of the k nearest neighbours (CSR)."""
        if self._given():
            return super().kneighbors_graph(X, n_neighbors, mode)
        if mode == "connectivity":
            ind = self.kneighbors(X, n_neighbors, return_distance=False)
            data = np.ones(ind.size)
        elif mode == "distance":
            dist, ind = self.kneighbors(X, n_neighbors, return_distance=True)
            data = np.ravel(dist)
        else:
            raise ValueError(f'Unsupported mode, must be one of "connectivity", or "distance" '
                             f'but got "{mode}" instead')
        n_queries, k = ind.shape
        indptr = np.arange(0, n_queries * k + 1, k)
        return sparse.csr_matrix((data, ind.ravel(), indptr),
                                 shape=(n_queries, self.n_samples_fit_))

    def _queries(self, X):
        """(queries, query_is_train) for a search method's X (None: the training points)."""
        check_is_fitted(self)
        if X is None:
            return self._fit_X, True
        X = self._validate_data(X, dtype=[np.float64, np.float32], order="C",
                                accept_sparse="csr", reset=False)
        return _dense(X, "the queries"), False

    def _radius_rows(self, Q, radius, query_is_train, sort_results):
        """(offsets, indices, distances) of the training rows within `radius` (scikit-learn's
        distance <= radius, in its units) of each query row: nearest first, ties by index
        (sort_results), or by index as scikit-learn's brute force leaves them."""
        off, ind, dist = self._radius_rows_sorted(Q, radius, query_is_train)
        if not sort_results and ind.size:
            # By (query, index): one int64 key (query x n_samples_fit + index); a third of a
            # two-key lexsort's time.
            key = np.repeat(np.arange(off.size - 1, dtype=np.int64) * self.n_samples_fit_,
                            np.diff(off)) + ind
            order = np.argsort(key, kind="stable")
            ind, dist = ind[order], dist[order]
        return off, ind, dist

    def _radius_rows_sorted(self, Q, radius, query_is_train):
        index, dtype = self._index_for(Q.dtype)
        n_q = Q.shape[0]
        if self._fastknn_metric_ != "cosine":
            return index.radius_search(Q.astype(dtype, copy=False), radius,
                                       exclude_self=query_is_train)
        # Cosine: fastknn ranks by similarity s, scikit-learn's distance is 1 - s. Ask for the
        # rows with s >= 1 - radius - margin (more than enough: 1 - s is rounded once), turn s
        # into 1 - s as kneighbors does, keep those <= radius: a prefix of each row, as 1 - s
        # does not decrease along it.
        margin = 1e-4
        counts = np.zeros(n_q, np.int64)
        ind, dist = np.empty(0, np.int64), np.empty(0, dtype)
        q_zero = ~np.any(Q != 0, axis=1)
        if index is not None and (~q_zero).any():
            nz_q = np.flatnonzero(~q_zero)
            if query_is_train:
                off, ind, sim = index.radius_search(self._fit_X[self._nonzero_rows]
                                                    if self._zero_rows is not None
                                                    else self._fit_X,
                                                    1.0 - radius - margin, exclude_self=True)
                rows_of = (np.searchsorted(self._nonzero_rows, nz_q)
                           if self._zero_rows is not None else nz_q)
            else:
                off, ind, sim = index.radius_search(Q[nz_q].astype(dtype, copy=False),
                                                    1.0 - radius - margin)
                rows_of = np.arange(nz_q.size)
            dist = 1.0 - sim
            np.maximum(dist, 0, out=dist)
            # The kept pairs of each searched row (a prefix), in order: rows_of is increasing.
            keep = dist <= radius
            before = np.concatenate([[0], np.cumsum(keep)])
            counts[nz_q] = (before[off[1:]] - before[off[:-1]])[rows_of]
            ind, dist = ind[keep].astype(np.int64), dist[keep]
            if self._zero_rows is not None:
                ind = self._nonzero_rows[ind]
        off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # Pairs with a row of zeros are at distance 1 (scikit-learn's convention).
        if radius >= 1 and (self._zero_rows is not None or q_zero.any()):
            per_query = [(ind[off[qi]:off[qi + 1]], dist[off[qi]:off[qi + 1]])
                         for qi in range(n_q)]
            everything = np.arange(self.n_samples_fit_)
            for qi in range(n_q):
                extra = everything if q_zero[qi] else (
                    self._zero_rows if self._zero_rows is not None else everything[:0])
                if query_is_train:
                    extra = extra[extra != qi]
                i = np.concatenate([per_query[qi][0], extra])
                d = np.concatenate([per_query[qi][1], np.ones(extra.size, dtype)])
                i, first = np.unique(i, return_index=True)  # a pair counted twice
                d = d[first]
                o = np.lexsort((i, d))
                per_query[qi] = (i[o], d[o])
            counts = np.array([p[0].size for p in per_query], dtype=np.int64)
            off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            ind = np.concatenate([p[0] for p in per_query]) if n_q else np.empty(0, np.int64)
            dist = np.concatenate([p[1] for p in per_query]) if n_q else np.empty(0, dtype)
        return off, ind.astype(np.int64, copy=False), dist.astype(dtype, copy=False)

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Distances and indices of the training points within `radius` of each row of X
        (X=None: of each training point, itself excluded): arrays of arrays, as scikit-learn
        returns them; sorted nearest first (ties by index) with sort_results, otherwise by
        index (the order scikit-learn's brute force leaves)."""
        if self._given():
            return super().radius_neighbors(X, radius, return_distance, sort_results)
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        Q, query_is_train = self._queries(X)
        if radius is None:
            radius = self.radius
        off, ind, dist = self._radius_rows(Q, float(radius), query_is_train, sort_results)
        n_q = Q.shape[0]
        neigh_ind = np.empty(n_q, dtype=object)
        neigh_ind[:] = np.split(ind, off[1:-1])
        if not return_distance:
            return neigh_ind
        neigh_dist = np.empty(n_q, dtype=object)
        neigh_dist[:] = np.split(dist, off[1:-1])
        return neigh_dist, neigh_ind

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity",
                               sort_results=False):
        """Sparse (n_queries, n_samples_fit) graph of the training points within `radius`
        (CSR; each row nearest first with sort_results, otherwise by index)."""
        if self._given():
            return super().radius_neighbors_graph(X, radius, mode, sort_results)
        if mode not in ("connectivity", "distance"):
            raise ValueError(f'Unsupported mode, must be one of "connectivity", or "distance" '
                             f'but got "{mode}" instead')
        Q, query_is_train = self._queries(X)
        if radius is None:
            radius = self.radius
        off, ind, dist = self._radius_rows(Q, float(radius), query_is_train, sort_results)
        data = np.ones(ind.size) if mode == "connectivity" else dist
        return sparse.csr_matrix((data, ind, off), shape=(Q.shape[0], self.n_samples_fit_))


class _OnScikitLearn(_Searches):
    """fastknn's estimators are scikit-learn's own classes with fastknn's searches: its fit
    (parameter validation, messages, targets, outlier labels, attributes such as `_fit_method`
    and `effective_metric_`), predict and transform run as they are and call the searches
    above. After scikit-learn's fit, the training points become fastknn's (dense float32 or
    float64, owned, read-only) and the metric is checked against what fastknn computes."""

    def fit(self, X, y=None):
        """Stores the training points (and targets) as scikit-learn does, and prepares
        fastknn's search over them."""
        given = X
        super().fit(X, y)
        if self.effective_metric_ == "precomputed":
            # The distances are given: there is nothing for fastknn to compute, and
            # scikit-learn's own selection answers (see _Searches._given).
            self._fastknn_metric_ = "precomputed"
            return self
        params = {k: v for k, v in self.effective_metric_params_.items()
                  if k != "p" and v is not None}  # scikit-learn adds w=None to minkowski's
        p = self.effective_metric_params_.get("p", self.p)
        self._fastknn_metric_ = _fastknn_metric(self.effective_metric_, p, params)
        self._fastknn_p_ = float(p) if self._fastknn_metric_ == "minkowski" else 2.0
        _threads(self.n_jobs)
        X = self._fit_X
        if sparse.issparse(X):
            X = _dense(X, "the training points")
        else:
            X = np.asarray(X)  # (a tree given as X leaves a memoryview)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)  # scikit-learn keeps integers; fastknn computes in floats
        # The estimator owns its training points: a caller who changes its array after fit
        # must not get answers mixing old norms with new rows.
        if isinstance(given, np.ndarray) and np.may_share_memory(X, given):
            X = X.copy()
        X = np.ascontiguousarray(X)
        X.flags.writeable = False
        self._fit_X = X
        self._tree = None  # scikit-learn's tree (where its rule built one) is never searched
        self._build_index()
        return self


class NearestNeighbors(_OnScikitLearn, _skn.NearestNeighbors):
    """Unsupervised nearest neighbours (scikit-learn's NearestNeighbors), exact, by fastknn."""


class KNeighborsClassifier(_OnScikitLearn, _skn.KNeighborsClassifier):
    """k-nearest-neighbour vote (scikit-learn's KNeighborsClassifier), exact, by fastknn."""


class KNeighborsRegressor(_OnScikitLearn, _skn.KNeighborsRegressor):
    """k-nearest-neighbour mean (scikit-learn's KNeighborsRegressor), exact, by fastknn."""


class RadiusNeighborsClassifier(_OnScikitLearn, _skn.RadiusNeighborsClassifier):
    """Vote among the training points within a radius (scikit-learn's
    RadiusNeighborsClassifier: its parameters, outlier labels and vote), exact, by fastknn."""


class RadiusNeighborsRegressor(_OnScikitLearn, _skn.RadiusNeighborsRegressor):
    """Mean target of the training points within a radius (scikit-learn's
    RadiusNeighborsRegressor), exact, by fastknn."""


class KNeighborsTransformer(_OnScikitLearn, _skn.KNeighborsTransformer):
    """The sparse graph of each point's k nearest training points (scikit-learn's
    KNeighborsTransformer, for TSNE, Isomap, SpectralEmbedding, DBSCAN with
    metric="precomputed"), exact, by fastknn."""


class RadiusNeighborsTransformer(_OnScikitLearn, _skn.RadiusNeighborsTransformer):
    """The sparse graph of the training points within a radius of each point
    (scikit-learn's RadiusNeighborsTransformer), exact, by fastknn."""
