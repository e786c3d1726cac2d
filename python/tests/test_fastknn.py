"""fastknn's Python module: the low-level API against a float64 numpy reference, and the
scikit-learn estimators against scikit-learn's brute-force ones on real data."""

import gzip
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import sklearn.neighbors as skn
from sklearn.datasets import load_digits

import fastknn
from fastknn.sklearn import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

FASHION = os.environ.get("FASTKNN_FASHION_DIR", "/usr/share/datasets/fashion-mnist")
REQUIRE_DATA = os.environ.get("FASTKNN_REQUIRE_TEST_DATA") == "1"


def reference(db, q, metric):
    """float64 scores of every (query, row) pair by direct formulas, and the order fastknn
    promises: by the exact score rounded to the input's dtype (the value it returns), ties by the smaller index."""
    x = db.astype(np.float64)
    y = q.astype(np.float64)
    if metric in ("l2", "sqeuclidean"):
        s = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        if metric == "l2":
            s = np.sqrt(s)
    elif metric == "l1":
        s = np.abs(y[:, None, :] - x[None, :, :]).sum(-1)
    elif metric == "ip":
        s = -(y @ x.T)
    else:
        s = -(y @ x.T) / np.linalg.norm(y, axis=1)[:, None] / np.linalg.norm(x, axis=1)[None, :]
    order = np.lexsort((np.broadcast_to(np.arange(x.shape[0]), s.shape), s.astype(db.dtype)),
                       axis=1)
    return s, order


def assert_matches_reference(db, q, k, metric, dist, ind, exclude_self=False):
    s, order = reference(db, q, metric)
    if exclude_self:
        s[np.arange(len(q)), np.arange(len(q))] = np.inf
        order = np.lexsort((np.broadcast_to(np.arange(db.shape[0]), s.shape),
                            s.astype(np.asarray(db).dtype)), axis=1)
    want = order[:, :k]
    np.testing.assert_array_equal(ind, want)
    sign = -1 if metric in ("ip", "cosine") else 1
    ref = np.take_along_axis(s, want, axis=1) * sign
    assert_values(dist, ref, np.take_along_axis(magnitude(db, q, metric), want, axis=1),
                  np.asarray(db).shape[1])


def magnitude(db, q, metric):
    """Per (query, row) pair, the sum of the absolute terms a float64 evaluation rounds (what its
    error is proportional to), in the reported units."""
    x, y = np.abs(np.asarray(db, np.float64)), np.abs(np.asarray(q, np.float64))
    if metric in ("l2", "sqeuclidean", "l1"):
        s, _ = reference(db, q, metric)
        return np.abs(s)
    m = y @ x.T
    if metric == "cosine":
        m = m / np.linalg.norm(y, axis=1)[:, None] / np.linalg.norm(x, axis=1)[None, :]
    return m


def assert_values(dist, ref, mag, d):
    """Each value the float64 reference rounded to the output type: bit for bit where that
    rounding is certain, else the neighbour on the other side (1 ulp). The reference and the
    library add in different orders; each float64 sum is within (d + 8) u of the magnitude, the
    band in which the rounding is "not certain"."""
    err = (2 * (d + 8) * 2.0 ** -53) * mag
    lo = (ref - err).astype(dist.dtype)
    hi = (ref + err).astype(dist.dtype)
    ok = (dist >= lo) & (dist <= hi)
    if dist.dtype == np.float32:  # at most one rounding boundary inside the band: 1 ulp apart
        ok &= (hi - lo) <= np.spacing(np.abs(lo))
    bad = np.flatnonzero(~ok)
    assert bad.size == 0, (f"{bad.size} values off, first {dist.flat[bad[0]]!r} vs "
                           f"{ref.flat[bad[0]]!r}")


@pytest.mark.parametrize("metric", ["l2", "sqeuclidean", "l1", "ip", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_search_matches_reference(metric, dtype, order):
    rng = np.random.default_rng(7)
    # Integer-valued coordinates make exact ties common: the index order must break them.
    db = np.asarray(rng.integers(-4, 5, size=(700, 9)), dtype=dtype, order=order)
    q = np.asarray(rng.integers(-4, 5, size=(60, 9)), dtype=dtype, order=order)
    db[db.sum(1) == 0, 0] = 1  # (cosine) no zero rows
    q[~q.any(1), 0] = 1
    dist, ind = fastknn.search(db, q, 17, metric=metric)
    assert dist.dtype == dtype and ind.dtype == np.int64 and ind.shape == (60, 17)
    assert_matches_reference(db, q, 17, metric, dist, ind)


def test_index_many_searches_exclude_self_and_stats():
    rng = np.random.default_rng(3)
    db = rng.standard_normal((2000, 24)).astype(np.float32)
    index = fastknn.Index(db, metric="l2")
    assert (index.size, index.dimension, index.metric) == (2000, 24, "l2")
    stats = {}
    dist, ind = index.search(db, 5, exclude_self=True, stats=stats)
    assert_matches_reference(db, db, 5, "l2", dist, ind, exclude_self=True)
    assert stats["exact_fallbacks"] == 0 and stats["rescored"] >= 5 * 2000
    for k in (1, 2000):  # any k up to N
        d, i = index.search(db[:30], k)
        assert_matches_reference(db, db[:30], k, "l2", d, i)


def test_non_float_input_and_lists():
    db = [[0, 0], [1, 0], [0, 2], [3, 3]]
    dist, ind = fastknn.search(db, [[0.9, 0.1]], 2)
    np.testing.assert_array_equal(ind, [[1, 0]])
    assert dist.dtype == np.float64  # integers are searched as float64


@pytest.mark.parametrize("bad, words", [
    (lambda db, q: fastknn.search(db, q[:, :3], 3), "dimension mismatch"),
    (lambda db, q: fastknn.search(db, q, 500), "larger than the database"),
    (lambda db, q: fastknn.search(db, q, 0), "k must be at least 1"),
    (lambda db, q: fastknn.search(db[0], q, 1), "2-D array"),
    (lambda db, q: fastknn.search(db, q, 1, metric="haversine"), "unknown metric"),
    (lambda db, q: fastknn.search(db, q, 1, exclude_self=True), "exclude_self needs"),
    (lambda db, q: fastknn.search(np.where(db > 0.99, np.nan, db), q, 1), "NaN or Inf"),
    (lambda db, q: fastknn.search(db, q, 1, workspace_bytes=100), "too small for one tile"),
])
def test_errors_say_what_to_do(bad, words):
    rng = np.random.default_rng(1)
    db = rng.random((400, 8)).astype(np.float32)
    q = rng.random((10, 8)).astype(np.float32)
    with pytest.raises(fastknn.Error, match=words) as e:
        bad(db, q)
    assert isinstance(e.value, ValueError)


def test_progress_can_stop_a_search():
    rng = np.random.default_rng(2)
    db = rng.random((200_000, 32)).astype(np.float32)
    q = rng.random((2000, 32)).astype(np.float32)
    seen = []

    def progress(fraction):
        seen.append(fraction)
        return False

    with pytest.raises(fastknn.Cancelled):
        fastknn.search(db, q, 3, progress=progress)
    assert seen and 0 <= seen[0] < 1


def test_ctrl_c_stops_a_long_search():
    code = """
import sys, time, numpy as np, fastknn
rng = np.random.default_rng(0)
db = rng.random((400_000, 64)).astype(np.float32)
q = rng.random((20_000, 64)).astype(np.float32)
print("ready", flush=True)
t = time.monotonic()
try:
    fastknn.search(db, q, 5)
except KeyboardInterrupt:
    print("interrupted after %.2f s" % (time.monotonic() - t), flush=True)
    sys.exit(3)
print("finished", flush=True)
"""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert p.returncode == 3, out
    assert "interrupted" in out
    limit = 60 if os.environ.get("FASTKNN_TEST_SLOW_BUILD") == "1" else 3
    assert waited < limit, f"the search stopped {waited:.2f} s after Ctrl-C"


# --- scikit-learn estimators against scikit-learn's brute force ------------------------------

def tie_free(dist, rtol=1e-9):
    """Per query: True where no other of the k + 1 returned distances equals the k-th one
    (so the k nearest are unique and must agree)."""
    d = dist[:, -2], dist[:, -1]
    return ~np.isclose(d[0], d[1], rtol=rtol, atol=0)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    a = np.frombuffer(b, np.uint8, offset=4 + 4 * ndim)
    return a.reshape(dims[0], -1) if ndim > 1 else a


def datasets():
    digits = load_digits()
    yield "digits", digits.data[:1200], digits.target[:1200], digits.data[1200:], digits.target[1200:]
    path = os.path.join(FASHION, "train-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        if REQUIRE_DATA:
            raise AssertionError(f"{FASHION} is absent (Debian package dataset-fashion-mnist)")
        return
    x = read_idx(path).astype(np.float32)
    y = read_idx(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"))
    xt = read_idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")).astype(np.float32)
    yt = read_idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))
    yield "fashion", x[:6000], y[:6000], xt[:1000], yt[:1000]


@pytest.mark.parametrize("metric, p", [("minkowski", 2), ("minkowski", 1), ("cosine", 2)])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_classifier_and_neighbours_agree_with_sklearn(metric, p, weights):
    for name, x, y, xt, yt in datasets():
        k = 5
        ours = KNeighborsClassifier(k, weights=weights, metric=metric, p=p).fit(x, y)
        theirs = skn.KNeighborsClassifier(k, weights=weights, metric=metric, p=p,
                                          algorithm="brute").fit(x.astype(np.float64), y)
        d1, i1 = ours.kneighbors(xt, k + 1)
        d2, i2 = theirs.kneighbors(xt.astype(np.float64), k + 1)
        np.testing.assert_allclose(d1, d2, rtol=1e-5, atol=1e-5, err_msg=name)
        # Identical neighbours wherever the k-th is not tied with the (k+1)-th.
        clean = tie_free(d2)
        assert clean.mean() > 0.5, name
        same = (np.sort(i1[:, :k], axis=1) == np.sort(i2[:, :k], axis=1)).all(axis=1)
        assert same[clean].all(), f"{name}: {np.flatnonzero(clean & ~same)[:5]}"
        pred1, pred2 = ours.predict(xt), theirs.predict(xt.astype(np.float64))
        assert (pred1 == pred2)[clean].all(), name
        np.testing.assert_allclose(ours.predict_proba(xt)[clean],
                                   theirs.predict_proba(xt.astype(np.float64))[clean],
                                   rtol=1e-5, atol=1e-7)
        assert abs(ours.score(xt, yt) - theirs.score(xt.astype(np.float64), yt)) <= \
            (~clean).mean() + 1e-12


def test_regressor_and_self_query_agree_with_sklearn():
    digits = load_digits()
    x, y = digits.data[:1000], digits.target[:1000].astype(np.float64) * 1.5
    for weights in ("uniform", "distance", lambda d: np.exp(-d)):
        ours = KNeighborsRegressor(4, weights=weights).fit(x, y)
        theirs = skn.KNeighborsRegressor(4, weights=weights, algorithm="brute").fit(x, y)
        d1, i1 = ours.kneighbors(None, 5)   # X=None: each point's own row excluded
        d2, i2 = theirs.kneighbors(None, 5)
        np.testing.assert_allclose(d1, d2, rtol=1e-9, atol=1e-9)
        clean = tie_free(d2)
        assert (np.sort(i1[:, :4], 1) == np.sort(i2[:, :4], 1)).all(1)[clean].all()
        assert not (i1 == np.arange(1000)[:, None]).any()
        p1, p2 = ours.predict(digits.data[1000:]), theirs.predict(digits.data[1000:])
        d_test = theirs.kneighbors(digits.data[1000:], 5)[0]
        np.testing.assert_allclose(p1[tie_free(d_test)], p2[tie_free(d_test)], rtol=1e-9)


def test_estimators_pickle_params_and_graph():
    digits = load_digits()
    x, y = digits.data[:500], digits.target[:500]
    clf = KNeighborsClassifier(3, n_jobs=1).fit(x, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(digits.data[500:600]),
                                  clf.predict(digits.data[500:600]))
    assert clf.get_params()["n_neighbors"] == 3
    assert clf.set_params(n_neighbors=4).n_neighbors == 4
    nn = NearestNeighbors(n_neighbors=2).fit(x)
    g = nn.kneighbors_graph(digits.data[500:510], mode="distance").toarray()
    gs = skn.NearestNeighbors(n_neighbors=2).fit(x).kneighbors_graph(
        digits.data[500:510], mode="distance").toarray()
    np.testing.assert_allclose(np.sort(g, 1), np.sort(gs, 1), rtol=1e-9)
    for bad in (dict(metric="correlation"), dict(metric="haversine"),
                dict(metric_params={"w": 1})):
        with pytest.raises(ValueError, match="not supported by fastknn"):
            NearestNeighbors(**bad).fit(x)


def test_cosine_rows_of_zeros_as_sklearn():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(300, 4)).astype(np.float64)
    x[[3, 50, 51]] = 0
    q = np.vstack([rng.integers(0, 3, size=(40, 4)), np.zeros((2, 4))]).astype(np.float64)
    ours = NearestNeighbors(n_neighbors=6, metric="cosine").fit(x)
    theirs = skn.NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(x)
    for query in (q, None):
        d1, i1 = ours.kneighbors(query)
        d2, _ = theirs.kneighbors(query)
        np.testing.assert_allclose(d1, d2, atol=1e-12)
        # fastknn's order: by distance, then index, and every index once.
        for dr, ir in zip(d1, i1):
            assert len(set(ir)) == 6
            assert all((dr[j], ir[j]) < (dr[j + 1], ir[j + 1]) for j in range(5))


def _rounding_trap():
    """float32 rows (0, 0) and (1, 1) and a float64 query nearer to (1, 1) that float32 rounds
    onto the tie line (0.5, 0.5), where the smaller index (0, 0) wins: the wrong answer a
    silent float64 -> float32 conversion gives."""
    db = np.array([[0, 0], [1, 1]], dtype=np.float32)
    q = np.array([[0.5 + 1e-9, 0.5]], dtype=np.float64)
    assert ((q - db.astype(np.float64)) ** 2).sum(1).argmin() == 1
    return db, q


def test_float64_queries_on_float32_data_never_rounded_silently():
    db, q = _rounding_trap()
    # One-shot search: the float64 answer, in float64.
    dist, ind = fastknn.search(db, q, 1)
    assert ind[0, 0] == 1 and dist.dtype == np.float64
    np.testing.assert_allclose(dist[0, 0], np.hypot(0.5 - 1e-9, 0.5), rtol=1e-15)
    # A float32 index refuses such queries and says what to do ...
    index = fastknn.Index(db)
    with pytest.raises(fastknn.Error, match="float32 cannot represent"):
        index.search(q, 1)
    # ... and takes float64 queries float32 holds exactly (the same answer as float32).
    d, i = index.search(np.array([[0.75, 0.25]]), 2)
    np.testing.assert_array_equal(i, [[0, 1]])
    assert d.dtype == np.float32
    # The estimators answer in float64, as scikit-learn does.
    for est in (NearestNeighbors(n_neighbors=1), KNeighborsRegressor(1)):
        est.fit(db, *([np.array([10.0, 20.0])] if isinstance(est, KNeighborsRegressor) else []))
        theirs = skn.NearestNeighbors(n_neighbors=1, algorithm="brute").fit(db)
        assert est.kneighbors(q, 1)[1][0, 0] == theirs.kneighbors(q, 1)[1][0, 0] == 1
    assert KNeighborsRegressor(1).fit(db, [10.0, 20.0]).predict(q)[0] == 20.0


def test_integers_beyond_float64_refused():
    big = np.array([[2**53 + 1, 0], [0, 1]], dtype=np.int64)
    with pytest.raises(fastknn.Error, match="beyond 2\\*\\*53"):
        fastknn.search(big, big, 1)
    ok = np.array([[2**53, 0], [0, 1]], dtype=np.int64)
    assert fastknn.search(ok, ok[:1], 1)[1][0, 0] == 0


def test_changing_the_callers_array_never_mixes_old_and_new_data():
    rng = np.random.default_rng(11)
    for metric in ("l2", "cosine", "ip"):
        db = rng.standard_normal((500, 16)).astype(np.float32)
        q = rng.standard_normal((40, 16)).astype(np.float32)
        original = db.copy()
        index = fastknn.Index(db, metric=metric)
        nn = NearestNeighbors(n_neighbors=7, metric="cosine" if metric == "cosine" else
                              "euclidean").fit(db)
        db[::3] *= 7.0  # rows and norms change in the caller's array
        db[1] = q[0]
        d, i = index.search(q, 7)
        assert_matches_reference(original, q, 7, metric, d, i)  # the data as it was
        d2, i2 = nn.kneighbors(q)
        theirs = skn.NearestNeighbors(n_neighbors=7, algorithm="brute",
                                      metric=nn.metric).fit(original)
        np.testing.assert_array_equal(i2, theirs.kneighbors(q)[1])
    # The caller's array stays writeable (the index copied it; it did not lock it).
    assert db.flags.writeable


def test_unpickled_float64_data_stays_float64():
    # An unpickled array's dtype is an equal but distinct object: it once took the float32
    # path, rounding the data.
    db = pickle.loads(pickle.dumps(np.array([[0.0, 0.0], [1.0, 1.0]])))
    q = pickle.loads(pickle.dumps(np.array([[0.5 + 1e-9, 0.5]])))
    index = fastknn.Index(db)
    assert index.dtype == np.float64
    dist, ind = index.search(q, 1)
    assert ind[0, 0] == 1 and dist.dtype == np.float64
    with pytest.raises(fastknn.Error, match="float32 or float64"):
        fastknn._core.Index(np.zeros((3, 2), dtype=np.float16), "l2", 0)


def test_empty_query_set_refused_everywhere():
    """One rule for Q = 0 in C++, the command line and Python: an error that says so (the
    estimators' message is scikit-learn's own)."""
    rng = np.random.default_rng(5)
    db = rng.random((50, 4)).astype(np.float32)
    empty = db[:0]
    with pytest.raises(fastknn.Error, match="query set is empty"):
        fastknn.search(db, empty, 2)
    with pytest.raises(fastknn.Error, match="query set is empty"):
        fastknn.Index(db).search(empty, 2)
    for est in (NearestNeighbors(n_neighbors=2).fit(db),
                KNeighborsClassifier(n_neighbors=2).fit(db, np.arange(50) % 3),
                KNeighborsRegressor(n_neighbors=2).fit(db, np.arange(50.0))):
        ours = est.kneighbors if isinstance(est, NearestNeighbors) else est.predict
        with pytest.raises(ValueError, match="0 sample"):
            ours(empty)
    with pytest.raises(ValueError, match="0 sample"):  # scikit-learn's own rule, for comparison
        skn.NearestNeighbors(n_neighbors=2).fit(db).kneighbors(empty)


def test_strided_float16_bool_integer_inputs_and_threads():
    """Inputs a new user passes without thinking: views with strides, float16, bool and integer
    arrays (converted to float64 exactly, as documented), and the threads= argument; each
    against the float64 reference, and threads=1 and threads=2 bit for bit alike."""
    rng = np.random.default_rng(21)
    wide = rng.integers(-8, 9, size=(900, 20)).astype(np.float32)
    db, q = wide[::2, ::3], wide[1:120:3, ::3]  # neither C- nor F-contiguous
    assert not db.flags.c_contiguous and not db.flags.f_contiguous
    for metric in ("l2", "l1", "ip"):
        dist, ind = fastknn.search(db, q, 9, metric=metric)
        assert dist.dtype == np.float32
        assert_matches_reference(np.ascontiguousarray(db), np.ascontiguousarray(q), 9, metric,
                                 dist, ind)
    half = db.astype(np.float16)
    dist, ind = fastknn.search(half, q.astype(np.float16), 5)
    assert dist.dtype == np.float64  # float16 widened exactly, never narrowed
    assert_matches_reference(half.astype(np.float64), q.astype(np.float64), 5, "l2", dist, ind)
    flags = rng.random((300, 12)) < 0.3
    dist, ind = fastknn.search(flags, flags[:20], 4, metric="l1")
    assert dist.dtype == np.float64
    assert_matches_reference(flags.astype(np.float64), flags[:20].astype(np.float64), 4, "l1",
                             dist, ind)
    ints = rng.integers(-1000, 1000, size=(400, 6)).astype(np.int32)
    dist, ind = fastknn.search(ints, ints[:25], 6)
    assert_matches_reference(ints.astype(np.float64), ints[:25].astype(np.float64), 6, "l2",
                             dist, ind)
    big = rng.standard_normal((3000, 24)).astype(np.float32)
    one = fastknn.search(big, big[:200], 10, threads=1)
    two = fastknn.search(big, big[:200], 10, threads=2)
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[0], two[0])
    assert_matches_reference(big, big[:200], 10, "l2", *one)


@pytest.mark.parametrize("metric", ["l2", "sqeuclidean", "l1", "ip", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_radius_search_matches_reference(metric, dtype):
    rng = np.random.default_rng(11)
    db = np.asarray(rng.integers(-3, 4, size=(400, 7)), dtype=dtype)
    q = np.asarray(rng.integers(-3, 4, size=(50, 7)), dtype=dtype)
    db[~db.any(1), 0] = 1
    q[~q.any(1), 0] = 1
    s, order = reference(db, q, metric)
    sim = metric in ("ip", "cosine")
    # Integer scores are exact: a radius on an attained value puts rows on the boundary (they
    # are inside). Cosine's are not: its thresholds lie between values.
    radii = {"l2": [0.0, np.sqrt(10.0), np.sqrt(30.0)], "sqeuclidean": [0.0, 10.0, 30.0],
             "l1": [0.0, 6.0, 11.0], "ip": [20.0, 5.0, 0.0],
             "cosine": [0.9 + 2.0 ** -12, 0.5 + 2.0 ** -12, -0.3 + 2.0 ** -12]}[metric]
    index = fastknn.Index(db, metric=metric)
    for radius in radii:
        for initial_k in (1, 32):
            off, ind, dist = index.radius_search(q, radius, initial_k=initial_k)
            assert off.dtype == np.int64 and ind.dtype == np.int64 and dist.dtype == dtype
            assert off[0] == 0 and off[-1] == ind.size == dist.size
            for i in range(len(q)):
                ranked = order[i]
                value = (-s[i] if sim else s[i])[ranked]
                # Decided on the value returned (the exact score rounded to the dtype), in
                # float64 (numpy would round the radius to float32 against a float32 array).
                got = value.astype(dtype).astype(np.float64)
                count = np.count_nonzero(got >= radius if sim else got <= radius)
                assert off[i + 1] - off[i] == count, (radius, i)
                mine, mine_d = ind[off[i]:off[i + 1]], dist[off[i]:off[i + 1]]
                if metric != "cosine":  # integer data: exact values, the exact order
                    np.testing.assert_array_equal(mine, ranked[:count])
                    np.testing.assert_array_equal(mine_d, got[:count])
                    continue
                # Cosine: the radius lies between values; the reference's rounding may differ
                # by an ulp from the specified score's, so the order is checked on the
                # library's own values (best first, ties by index), each within the band.
                assert set(mine) == set(ranked[:count])
                assert all((-mine_d[j], mine[j]) < (-mine_d[j + 1], mine[j + 1])
                           for j in range(count - 1))
                want = -s[i][mine]
                nonzero = want != 0
                np.testing.assert_array_equal(mine_d[~nonzero], 0)
                assert_values(mine_d[nonzero], want[nonzero],
                              magnitude(db, q[i:i + 1], metric)[0][mine][nonzero], 7)
    # exclude_self, and the module-level function.
    off, ind, _ = fastknn.radius_search(db, db, 2.0, metric="l1", exclude_self=True)
    assert not any(i in ind[off[i]:off[i + 1]] for i in range(len(db)))
    off2, ind2, _ = fastknn.radius_search(db, db, 2.0, metric="l1")
    assert off2[-1] - off[-1] == len(db)  # every row is inside at distance 0 from itself
    with pytest.raises(fastknn.Error, match="max_results"):
        index.radius_search(q, 1e9 if not sim else -1e9, max_results=10)
    with pytest.raises(fastknn.Error, match="NaN"):
        index.radius_search(q, float("nan"))


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "cosine", "sqeuclidean"])
def test_radius_neighbors_as_sklearn(metric):
    digits = load_digits()
    x, xt = digits.data[:900], digits.data[900:1000]
    x[[5, 17]] = 0  # (cosine) rows of zeros: at distance 1 from everything
    xt[3] = 0
    radius = {"euclidean": 20.0, "manhattan": 90.0, "cosine": 0.1, "sqeuclidean": 400.0}[metric]
    ours = NearestNeighbors(radius=radius, metric=metric).fit(x)
    theirs = skn.NearestNeighbors(radius=radius, metric=metric, algorithm="brute").fit(x)
    for query in (xt, None):
        d1, i1 = ours.radius_neighbors(query, sort_results=True)
        d2, i2 = theirs.radius_neighbors(query, sort_results=True)
        assert len(i1) == len(i2) and sum(map(len, i1)) > 100
        for a, b, da, db_ in zip(i1, i2, d1, d2):
            assert sorted(a) == sorted(b)
            np.testing.assert_allclose(da, np.sort(db_), rtol=1e-9, atol=1e-9)
            assert all((da[j], a[j]) < (da[j + 1], a[j + 1]) for j in range(len(a) - 1))
        # Without sort_results: by index, as scikit-learn's brute force leaves them.
        d1, i1 = ours.radius_neighbors(query)
        d2, i2 = theirs.radius_neighbors(query)
        for a, b, da, db_ in zip(i1, i2, d1, d2):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(da, db_, rtol=1e-9, atol=1e-9)
        g1 = ours.radius_neighbors_graph(query, mode="distance")
        g2 = theirs.radius_neighbors_graph(query, mode="distance")
        assert (g1 != 0).sum() == (g2 != 0).sum() or metric == "cosine"
        np.testing.assert_allclose(g1.toarray(), g2.toarray(), atol=1e-9)
        c1 = ours.radius_neighbors_graph(query, radius=radius / 2)
        c2 = theirs.radius_neighbors_graph(query, radius=radius / 2)
        assert (c1 != c2).nnz == 0
    # Rows of zeros with a radius that reaches them (distance 1).
    if metric == "cosine":
        ours1 = NearestNeighbors(radius=1.0, metric=metric).fit(x)
        theirs1 = skn.NearestNeighbors(radius=1.0, metric=metric, algorithm="brute").fit(x)
        for query in (xt, None):
            _, i1 = ours1.radius_neighbors(query)
            _, i2 = theirs1.radius_neighbors(query)
            assert all(sorted(a) == sorted(b) for a, b in zip(i1, i2))
    with pytest.raises(ValueError, match="return_distance must be True"):
        ours.radius_neighbors(xt, return_distance=False, sort_results=True)


def test_radius_estimators_and_transformers_as_sklearn():
    from fastknn.sklearn import (KNeighborsTransformer, RadiusNeighborsClassifier,
                                 RadiusNeighborsRegressor, RadiusNeighborsTransformer)
    digits = load_digits()
    x, y, xt = digits.data[:1200], digits.target[:1200], digits.data[1200:]
    for weights in ("uniform", "distance"):
        kw = dict(radius=25.0, weights=weights, outlier_label="most_frequent")
        ours = RadiusNeighborsClassifier(**kw).fit(x, y)
        theirs = skn.RadiusNeighborsClassifier(**kw).fit(x, y)
        np.testing.assert_array_equal(ours.predict(xt), theirs.predict(xt))
        np.testing.assert_allclose(ours.predict_proba(xt), theirs.predict_proba(xt),
                                   rtol=1e-12, atol=1e-12)
        assert ours.algorithm == "auto" and ours._fit_method == "brute"
        kw = dict(radius=30.0, weights=weights)
        ours = RadiusNeighborsRegressor(**kw).fit(x, y * 1.5)
        theirs = skn.RadiusNeighborsRegressor(**kw).fit(x, y * 1.5)
        np.testing.assert_allclose(ours.predict(xt), theirs.predict(xt), rtol=1e-12)
    # Rows whose k-th neighbour is tied with the next may keep different points (digits are
    # integers: ties are common); every other row must be the same.
    # (Mode "distance" asks for one more neighbour: the point itself when it is a training one.)
    for mode in ("distance", "connectivity"):
        k = 6 + (mode == "distance")
        clean = tie_free(skn.NearestNeighbors().fit(x).kneighbors(xt, k + 1)[0])
        clean_self = tie_free(skn.NearestNeighbors().fit(x).kneighbors(x, k + 1)[0])
        assert clean.mean() > 0.9 and clean_self.mean() > 0.9
        a = KNeighborsTransformer(n_neighbors=6, mode=mode).fit(x)
        b = skn.KNeighborsTransformer(n_neighbors=6, mode=mode).fit(x)
        assert (abs(a.transform(xt) - b.transform(xt))[clean] > 1e-9).nnz == 0
        assert (abs(a.fit_transform(x) - b.fit_transform(x))[clean_self] > 1e-9).nnz == 0
        a = RadiusNeighborsTransformer(radius=22.0, mode=mode).fit(x)
        b = skn.RadiusNeighborsTransformer(radius=22.0, mode=mode).fit(x)
        assert a.transform(xt).nnz == b.transform(xt).nnz > 1000
        assert (abs(a.transform(xt) - b.transform(xt)) > 1e-9).nnz == 0
    with pytest.raises(ValueError, match="not supported by fastknn"):
        RadiusNeighborsClassifier(metric="correlation").fit(x, y)


def pipeline_sets():
    """(name, rows, DBSCAN's eps): 600 digits and 1,500 Fashion-MNIST training images, jittered
    so that no distances tie and the graphs are unique (up to rounding)."""
    yield "digits", load_digits().data[:600] + np.random.default_rng(3).uniform(0, 1e-3, (600, 64)), 20.0
    path = os.path.join(FASHION, "train-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        if REQUIRE_DATA:
            raise AssertionError(f"{FASHION} is absent (Debian package dataset-fashion-mnist)")
        return
    x = read_idx(path)[:1500].astype(np.float64)
    yield "fashion", x + np.random.default_rng(3).uniform(0, 1e-3, x.shape), 1000.0


@pytest.mark.parametrize("which", ["digits", "fashion"])
def test_pipelines_through_the_transformers_as_sklearn(which):
    """DBSCAN, Isomap and TSNE on fastknn's neighbour graphs give what they give on
    scikit-learn's (the same graphs, so the same labels and embeddings for the same seeds)."""
    from sklearn.cluster import DBSCAN
    from sklearn.manifold import TSNE, Isomap
    from sklearn.pipeline import make_pipeline

    from fastknn.sklearn import KNeighborsTransformer, RadiusNeighborsTransformer
    sets = [(x, eps) for name, x, eps in pipeline_sets() if name == which]
    if not sets:
        pytest.skip(f"{FASHION} is absent (FASTKNN_REQUIRE_TEST_DATA=1 makes this a failure)")
    x, eps = sets[0]
    ours = make_pipeline(RadiusNeighborsTransformer(radius=eps, mode="distance"),
                         DBSCAN(eps=eps, min_samples=5, metric="precomputed")).fit(x)
    theirs = DBSCAN(eps=eps, min_samples=5).fit(x)
    labels = ours[-1].labels_
    np.testing.assert_array_equal(labels, theirs.labels_)
    assert len(set(labels)) > 3
    a = make_pipeline(KNeighborsTransformer(n_neighbors=10, mode="distance"),
                      Isomap(n_neighbors=10, metric="precomputed")).fit_transform(x)
    b = Isomap(n_neighbors=10).fit_transform(x)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    kw = dict(perplexity=10.0, init="random", random_state=0, n_iter=250, method="barnes_hut",
              metric="precomputed", square_distances=True)
    a = make_pipeline(KNeighborsTransformer(n_neighbors=31, mode="distance"),
                      TSNE(**kw)).fit_transform(x)
    b = make_pipeline(skn.KNeighborsTransformer(n_neighbors=31, mode="distance"),
                      TSNE(**kw)).fit_transform(x)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)



def test_estimators_are_sklearn_subclasses_sparse_and_precomputed(monkeypatch):
    import fastknn.sklearn as fs
    from scipy import sparse as sp
    for name in fs.__all__:
        assert issubclass(getattr(fs, name), getattr(skn, name)), name
    digits = load_digits()
    x, xt = digits.data[:500], digits.data[500:560]
    dense = fs.NearestNeighbors(n_neighbors=4, metric="cosine").fit(x)
    csr = fs.NearestNeighbors(n_neighbors=4, metric="cosine").fit(sp.csr_matrix(x))
    for a, b in zip(dense.kneighbors(xt), csr.kneighbors(sp.csr_matrix(xt))):
        np.testing.assert_array_equal(a, b)
    r1 = dense.radius_neighbors(sp.csr_matrix(xt), radius=0.05)[1]
    r2 = csr.radius_neighbors(xt, radius=0.05)[1]
    assert all(np.array_equal(a, b) for a, b in zip(r1, r2))
    monkeypatch.setattr(fs, "DENSE_LIMIT_BYTES", 1000)
    with pytest.raises(TypeError, match="DENSE_LIMIT_BYTES"):
        fs.NearestNeighbors().fit(sp.csr_matrix(x))
    # precomputed distances: scikit-learn's own selection answers.
    d_train = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    d_test = np.sqrt(((xt[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    ours = fs.KNeighborsClassifier(3, metric="precomputed").fit(d_train, digits.target[:500])
    theirs = skn.KNeighborsClassifier(3, metric="precomputed").fit(d_train, digits.target[:500])
    np.testing.assert_array_equal(ours.predict(d_test), theirs.predict(d_test))
    assert ours._fit_method == "brute" and ours.effective_metric_ == "precomputed"


@pytest.mark.parametrize("metric, p", [("chebyshev", 2), ("minkowski", 3), ("minkowski", 1.5),
                                       ("minkowski", 0.5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_only_metrics_match_reference_and_sklearn(metric, p, dtype):
    """Chebyshev and Minkowski (exact scores for every pair): against numpy in float64 (integer
    data, so exact ties are common and must come in index order; whole-number results are exact
    for Chebyshev and whole p) and against scikit-learn's brute force on digits."""
    rng = np.random.default_rng(3)
    db = rng.integers(-4, 5, size=(500, 7)).astype(dtype)
    q = rng.integers(-4, 5, size=(40, 7)).astype(dtype)
    diff = np.abs(q[:, None, :].astype(np.float64) - db[None, :, :])
    s = diff.max(-1) if metric == "chebyshev" else (diff ** p).sum(-1) ** (1 / p)
    dist, ind = fastknn.search(db, q, 12, metric=metric, p=p)
    rtol = 1e-7 if dtype == np.float32 else 1e-12  # float32 results are rounded to float32
    np.testing.assert_allclose(dist, np.take_along_axis(s, ind, axis=1), rtol=rtol)
    if metric == "chebyshev" or p == 3:
        # Exact arithmetic on these integers (differences, cubes, their sums): exact ties, which
        # must come in index order.
        want = np.lexsort((np.broadcast_to(np.arange(500), s.shape), s), axis=1)[:, :12]
        np.testing.assert_array_equal(ind, want)
    else:
        # Rows at the same true distance may differ in the last bits of their scores (the
        # powers are rounded, in different orders): the true values along each answer rise
        # within that rounding, and no row left out is nearer than the last one kept.
        got = np.take_along_axis(s, ind, axis=1)
        assert (np.diff(got, axis=1) >= -1e-12 * got[:, 1:]).all()
        left = s.copy()
        np.put_along_axis(left, ind, np.inf, axis=1)
        assert (left.min(1) >= got[:, -1] * (1 - 1e-12)).all()
    offsets, rows, values = fastknn.radius_search(db, q, 3.0, metric=metric, p=p)
    for i in range(40):
        inside = np.flatnonzero(s[i] <= 3.0 + 1e-9)
        assert sorted(rows[offsets[i]:offsets[i + 1]]) == sorted(inside)
    assert fastknn.Index(db, metric=metric, p=p).p == p
    if p < 1:
        # scikit-learn 1.2 fits with p < 1 (a warning) but its brute force then refuses to
        # search ("p must be greater than 1"): the numpy reference above is the comparison.
        with pytest.warns(UserWarning, match="0 < p < 1"):
            ours = NearestNeighbors(n_neighbors=3, metric=metric, p=p).fit(db)
        np.testing.assert_array_equal(ours.kneighbors(q)[1], ind[:, :3])
        return

    digits = load_digits()
    # Jittered: Chebyshev on the raw 0..16 pixels ties at most ranks.
    jittered = digits.data + rng.random(digits.data.shape)
    x, xt = jittered[:1000].astype(dtype), jittered[1000:1300].astype(dtype)
    ours = NearestNeighbors(n_neighbors=6, metric=metric, p=p).fit(x)
    theirs = skn.NearestNeighbors(n_neighbors=6, metric=metric, p=p, algorithm="brute").fit(
        x.astype(np.float64))
    d1, i1 = ours.kneighbors(xt)
    d2, i2 = theirs.kneighbors(xt.astype(np.float64))
    np.testing.assert_allclose(d1, d2, rtol=rtol)
    clean = tie_free(d2)
    assert clean.mean() > 0.9
    assert (i1 == i2)[clean].all()
    radius = float(np.median(d2[:, -1]))
    r1 = ours.radius_neighbors(xt, radius=radius, return_distance=False)
    r2 = theirs.radius_neighbors(xt.astype(np.float64), radius=radius, return_distance=False)
    near = np.abs(d2 - radius) < 1e-9 * radius  # a row on the boundary decides in its rounding
    assert all(sorted(a) == sorted(b) for a, b, n in zip(r1, r2, near.any(1)) if not n)
    pred = KNeighborsClassifier(3, metric=metric, p=p).fit(x, digits.target[:1000]).predict(xt)
    want_pred = skn.KNeighborsClassifier(3, metric=metric, p=p, algorithm="brute").fit(
        x, digits.target[:1000]).predict(xt)
    assert (pred == want_pred).mean() > 0.99


def test_minkowski_p_refused_where_it_has_no_meaning():
    db = np.ones((5, 2))
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(fastknn.Error, match="finite number > 0"):
            fastknn.Index(db, metric="minkowski", p=bad)
    import fastknn.sklearn as ours  # the check behind the estimators' fit
    with pytest.raises(ValueError, match="finite p > 0"):
        ours._fastknn_metric("minkowski", -1, {})
    assert ours._fastknn_metric("minkowski", 3, {}) == "minkowski"
    assert ours._fastknn_metric("minkowski", np.inf, {}) == "chebyshev"
    # The metrics fastknn does not compute: refused, naming what ranks the same.
    for metric, params, words in (("correlation", None, "metric='cosine' on rows minus"),
                                  ("haversine", None, "3-D unit vectors"),
                                  ("mahalanobis", {"VI": np.eye(2)}, "Cholesky"),
                                  ("seuclidean", {"V": np.ones(2)}, "divided by sqrt(V)"),
                                  ("minkowski", {"w": np.ones(2)}, "w ** (1 / p)")):
        with pytest.raises(ValueError, match=re.escape(words)):
            NearestNeighbors(metric=metric, metric_params=params, algorithm="brute").fit(db)


BOOLEAN = ["jaccard", "dice", "kulsinski", "matching", "rogerstanimoto", "russellrao",
           "sokalmichener", "sokalsneath", "yule"]


@pytest.mark.parametrize("metric", ["canberra", "braycurtis", "hamming"] + BOOLEAN)
def test_count_and_ratio_metrics_match_scipy_and_sklearn(metric):
    """Canberra, Bray-Curtis, Hamming and the boolean metrics (non-zero is true) on digits
    (many zero pixels): against SciPy's cdist in float64 (the definitions scikit-learn's brute
    force uses), and through the estimators against scikit-learn's brute force."""
    import warnings
    from scipy.spatial.distance import cdist
    digits = load_digits()
    x, xt = digits.data[:900], digits.data[900:1000]
    x = x[x.any(1)]  # (dice, sokalsneath: 0 / 0 between two all-zero rows)
    boolean = metric in BOOLEAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy's deprecation of kulsinski
        s = cdist(xt != 0 if boolean else xt, x != 0 if boolean else x, metric)
    dist, ind = fastknn.search(x, xt, 15, metric=metric)
    if boolean or metric == "hamming":
        # Exact counts and one division on both sides: the same doubles, so the same order,
        # ties (very common here) by the smaller index.
        want = np.lexsort((np.broadcast_to(np.arange(len(x)), s.shape), s), axis=1)[:, :15]
        np.testing.assert_array_equal(ind, want)
        np.testing.assert_array_equal(dist, np.take_along_axis(s, want, axis=1))
    else:
        got = np.take_along_axis(s, ind, axis=1)
        np.testing.assert_allclose(dist, got, rtol=1e-13)
        assert (np.diff(got, axis=1) >= -1e-13 * got[:, 1:]).all()
        left = s.copy()
        np.put_along_axis(left, ind, np.inf, axis=1)
        assert (left.min(1) >= got[:, -1] * (1 - 1e-13)).all()
    ours = NearestNeighbors(n_neighbors=15, metric=metric).fit(x)
    theirs = skn.NearestNeighbors(n_neighbors=15, metric=metric, algorithm="brute").fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's conversion of the data to bool
        d1, _ = ours.kneighbors(xt)
        d2, _ = theirs.kneighbors(xt)
        r1 = ours.radius_neighbors(xt, radius=float(np.median(d2[:, 7])), return_distance=False)
        r2 = theirs.radius_neighbors(xt, radius=float(np.median(d2[:, 7])),
                                     return_distance=False)
    np.testing.assert_allclose(d1, d2, rtol=1e-12)  # the k smallest values, whatever the ties
    near = (np.abs(s - np.median(d2[:, 7])) < 1e-12).any(1)  # a row on the boundary
    assert all(sorted(a) == sorted(b) for a, b, n in zip(r1, r2, near) if not n)
