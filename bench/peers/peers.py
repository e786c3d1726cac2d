#!/usr/bin/python3
"""Time exact k-nearest-neighbour "peers" (faiss, scikit-learn, plain numpy)
on the same data the fastknn C++ benchmark uses, so that it can print ratios.

Run with Debian's interpreter (it has numpy, scikit-learn, faiss):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 peers.py \
        --dataset fashion-mnist --limit-test 500 --k 1 --k 10 \
        --peer faiss-flat --peer sklearn-brute --peer numpy-gemm \
        --threads 2 --repeats 3 --json out.json

See README.md next to this file.
"""

import argparse
import importlib.util
import os
import platform
import sys
import time

PEERS = ("faiss-flat", "sklearn-brute", "sklearn-auto", "numpy-gemm")
METRICS = ("l2", "sqeuclidean", "l1", "cosine", "ip")
OPENBLAS_FAIRNESS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "BLIS_NUM_THREADS", "GOTO_NUM_THREADS")
# Python module each peer needs (beyond numpy).
PEER_MODULES = {
    "faiss-flat": "faiss",
    "sklearn-brute": "sklearn",
    "sklearn-auto": "sklearn",
    "numpy-gemm": "numpy",
}
# sklearn metric name per --metric (None: the peer cannot do it).
SKLEARN_METRIC = {"l2": "euclidean", "sqeuclidean": "sqeuclidean", "l1": "manhattan",
                  "cosine": "cosine", "ip": None}
NUMPY_GEMM_BLOCK = 1024


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)


def die(msg, code=2):
    eprint("peers.py: error: " + msg)
    sys.exit(code)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Time exact-KNN peers (faiss, scikit-learn, numpy GEMM) on one data set.")
    ap.add_argument("--dataset", choices=("fashion-mnist", "random"), required=True)
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist",
                    help="folder with the four Fashion-MNIST gzip IDX files")
    ap.add_argument("--n", type=int, default=60000, help="random: database rows")
    ap.add_argument("--q", type=int, default=1000, help="random: query rows")
    ap.add_argument("--d", type=int, default=784, help="random: dimension")
    ap.add_argument("--seed", type=int, default=0, help="random: numpy default_rng seed")
    ap.add_argument("--limit-test", type=int, default=None, metavar="Q",
                    help="use only the first Q query rows")
    ap.add_argument("--k", type=int, action="append", dest="ks", metavar="K",
                    help="neighbours per query (repeatable; default 10)")
    ap.add_argument("--peer", action="append", dest="peers", choices=PEERS,
                    help="peer to time (repeatable; default faiss-flat, sklearn-brute, numpy-gemm)")
    ap.add_argument("--metric", choices=METRICS, default="l2")
    ap.add_argument("--standardise", action="store_true",
                    help="fashion-mnist: standardise each pixel by the training set's mean and "
                         "standard deviation (scikit-learn's StandardScaler; 1 where it is 0), "
                         "as the benchmark's fashion_mnist_std jobs do")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed searches per (peer, k) before the timed repeats")
    ap.add_argument("--json", dest="json_out", default=None, metavar="OUT.json")
    ap.add_argument("--classify", action="store_true",
                    help="also compute majority-vote predictions and accuracy (needs labels)")
    ap.add_argument("--save-predictions", default=None, metavar="DIR",
                    help="save neighbour indices per (peer, k) as int64 .npy")
    ap.add_argument("--sklearn-auto-max-qn", type=float, default=1e8,
                    help="skip sklearn-auto when Q*N exceeds this (it may pick a tree); "
                         "use --limit-test to shrink Q")
    args = ap.parse_args(argv)
    args.ks = sorted(set(args.ks or [10]))
    args.peers = list(dict.fromkeys(args.peers or ["faiss-flat", "sklearn-brute", "numpy-gemm"]))
    if any(k < 1 for k in args.ks):
        ap.error("--k must be >= 1")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.limit_test is not None and args.limit_test < 1:
        ap.error("--limit-test must be >= 1")
    if args.dataset == "random" and min(args.n, args.q, args.d) < 1:
        ap.error("--n, --q, --d must be >= 1")
    if args.classify and args.dataset != "fashion-mnist":
        ap.error("--classify needs labels: only --dataset fashion-mnist has them")
    return args


def check_modules(peers):
    """Exit non-zero with a clear message if a needed module is missing."""
    needed = {"numpy": ["(all)"]}
    for p in peers:
        needed.setdefault(PEER_MODULES[p], []).append(p)
    missing = [(m, ps) for m, ps in needed.items() if importlib.util.find_spec(m) is None]
    if missing:
        lines = ["module '%s' (needed by %s) is not importable by %s"
                 % (m, ", ".join(ps), sys.executable) for m, ps in missing]
        die("; ".join(lines) + ". Run with Debian's /usr/bin/python3 "
            "(python3-numpy, python3-sklearn, python3-faiss).")


# --------------------------------------------------------------------------------------
# Thread control must be decided before numpy is imported.
ARGS = parse_args() if __name__ == "__main__" else None
HAVE_THREADPOOLCTL = importlib.util.find_spec("threadpoolctl") is not None
if ARGS is not None:
    check_modules(ARGS.peers)
    if not HAVE_THREADPOOLCTL:
        for _v in THREAD_ENV_VARS:
            os.environ[_v] = str(ARGS.threads)

import gzip  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402


# --------------------------------------------------------------------------------------
# Data

def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        die("%s: too short for an IDX file" % path)
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        die("%s: IDX magic 0x%08x, expected 0x%08x" % (path, got, magic))
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) - off != count:
        die("%s: %d data bytes, header says %s" % (path, len(raw) - off, dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


def load_fashion_mnist(data_dir):
    def p(name):
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            die("missing %s (use --data-dir)" % path)
        return path
    xtr = read_idx(p("train-images-idx3-ubyte.gz"), 0x00000803)
    ytr = read_idx(p("train-labels-idx1-ubyte.gz"), 0x00000801)
    xte = read_idx(p("t10k-images-idx3-ubyte.gz"), 0x00000803)
    yte = read_idx(p("t10k-labels-idx1-ubyte.gz"), 0x00000801)
    if xtr.shape[0] != ytr.shape[0] or xte.shape[0] != yte.shape[0]:
        die("image/label counts differ in %s" % data_dir)
    db = np.ascontiguousarray(xtr.reshape(xtr.shape[0], -1), dtype=np.float32)
    qs = np.ascontiguousarray(xte.reshape(xte.shape[0], -1), dtype=np.float32)
    return db, qs, ytr.astype(np.int64), yte.astype(np.int64)


def standardise(db, qs):
    """Per-coordinate (x - mean) / std of the database (std 0 -> 1), in float64, as float32."""
    mean = db.astype(np.float64).mean(axis=0)
    sd = db.astype(np.float64).std(axis=0)
    sd[sd == 0] = 1.0
    return tuple(np.ascontiguousarray((x - mean) / sd, dtype=np.float32) for x in (db, qs))


def load_data(args):
    if args.dataset == "fashion-mnist":
        db, qs, ytr, yte = load_fashion_mnist(args.data_dir)
    else:
        rng = np.random.default_rng(args.seed)
        db = rng.random((args.n, args.d), dtype=np.float32)
        qs = rng.random((args.q, args.d), dtype=np.float32)
        ytr = yte = None
    if getattr(args, "standardise", False):
        db, qs = standardise(db, qs)
    if args.limit_test is not None:
        qs = np.ascontiguousarray(qs[:args.limit_test])
        if yte is not None:
            yte = yte[:args.limit_test]
    return db, qs, ytr, yte


# --------------------------------------------------------------------------------------
# Environment / BLAS report

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {"platform": platform.platform(), "python": sys.version.split()[0],
            "executable": sys.executable, "cpu_model": cpu_model(),
            "nproc": affinity if affinity is not None else os.cpu_count(),
            "cpu_count": os.cpu_count()}


def loaded_native_libs():
    """BLAS/LAPACK/OpenMP shared objects mapped into this process (real paths)."""
    keys = ("blas", "lapack", "blis", "mkl", "gomp", "iomp", "omp.so", "flexiblas", "atlas")
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[5].startswith("/"):
                    base = os.path.basename(parts[5]).lower()
                    if any(k in base for k in keys):
                        libs.add(os.path.realpath(parts[5]))
    except OSError:
        pass
    return sorted(libs)


def blas_kernel_guess(libs):
    names = " ".join(libs).lower()
    if "openblas" in names:
        return "openblas"
    if "mkl" in names:
        return "mkl"
    if "blis" in names:
        return "blis"
    if "flexiblas" in names:
        return "flexiblas"
    if "atlas" in names:
        return "atlas"
    if any(os.path.basename(l).startswith("libblas.so") for l in libs):
        return "netlib-reference"
    return "unknown"


def blas_report():
    info = []
    if HAVE_THREADPOOLCTL:
        import threadpoolctl
        for d in threadpoolctl.threadpool_info():
            info.append({k: d.get(k) for k in ("user_api", "internal_api", "prefix", "filepath",
                                                 "version", "num_threads", "threading_layer",
                                                 "architecture", "corestype")
                         if d.get(k) is not None})
    return info


def openblas_env(libs):
    env = {v: os.environ.get(v) for v in OPENBLAS_FAIRNESS_VARS}
    return {"vars": env, "set": any(v is not None for v in env.values()),
            "openblas_loaded": any("openblas" in os.path.basename(l).lower() for l in libs)}


# --------------------------------------------------------------------------------------
# Peers. Each peer: build(db) -> state (timed once as build_s); search(state, qs, k) -> idx.

def normalise_rows(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return np.ascontiguousarray(x / n, dtype=np.float32)


class FaissFlat:
    name = "faiss-flat"

    def __init__(self, metric, threads):
        import faiss
        self.faiss = faiss
        self.metric = metric
        faiss.omp_set_num_threads(threads)
        self.detail = "faiss %s" % getattr(faiss, "__version__", "?")

    def supports(self):
        return None

    def build(self, db):
        f = self.faiss
        d = db.shape[1]
        if self.metric in ("l2", "sqeuclidean"):
            index = f.IndexFlatL2(d)
        elif self.metric == "ip":
            index = f.IndexFlatIP(d)
        elif self.metric == "cosine":
            index = f.IndexFlatIP(d)
            db = normalise_rows(db)
        elif self.metric == "l1":
            index = f.IndexFlat(d, f.METRIC_L1)
        index.add(np.ascontiguousarray(db, dtype=np.float32))
        self.index = index
        self.detail += ", %s" % type(index).__name__

    def search(self, qs, k):
        if self.metric == "cosine":
            qs = normalise_rows(qs)
        _, idx = self.index.search(qs, k)
        return idx


class SklearnNN:
    def __init__(self, algorithm, metric, threads):
        import sklearn
        self.algorithm = algorithm
        self.name = "sklearn-" + algorithm
        self.metric = metric
        self.threads = threads
        self.skmetric = SKLEARN_METRIC[metric]
        self.detail = "sklearn %s" % sklearn.__version__

    def supports(self):
        if self.skmetric is None:
            return "sklearn NearestNeighbors has no metric for %s" % self.metric
        return None

    def build(self, db):
        from sklearn.neighbors import NearestNeighbors
        self.nn = NearestNeighbors(algorithm=self.algorithm, metric=self.skmetric,
                                   n_jobs=self.threads).fit(db)
        self.detail += ", metric=%s, fit_method=%s" % (self.skmetric,
                                                     getattr(self.nn, "_fit_method", "?"))

    def search(self, qs, k):
        return self.nn.kneighbors(qs, n_neighbors=k, return_distance=False)

    def classify(self, db, ytr, qs, k):
        from sklearn.neighbors import KNeighborsClassifier
        kw = dict(algorithm=self.algorithm, n_neighbors=k, weights="uniform",
                  n_jobs=self.threads)
        if self.metric == "l2":
            kw.update(p=2)  # default minkowski, p=2 == euclidean
        else:
            kw.update(metric=self.skmetric)
        return KNeighborsClassifier(**kw).fit(db, ytr).predict(qs).astype(np.int64)


class NumpyGemm:
    """‖q‖² + ‖x‖² − 2 Q Xᵀ in float32 query blocks, argpartition, sort of the k
    (argmin for k=1: numpy's argpartition with kth=0 is pathologically slow)."""
    name = "numpy-gemm"

    def __init__(self, metric, threads):
        self.metric = metric
        self.detail = "numpy %s, block=%d" % (np.__version__, NUMPY_GEMM_BLOCK)

    def supports(self):
        if self.metric == "l1":
            return "l1 is not a GEMM"
        return None

    def build(self, db):
        # Database-side precomputation (like faiss add): row norms / normalisation.
        if self.metric == "cosine":
            db = normalise_rows(db)
        self.db = np.ascontiguousarray(db, dtype=np.float32)
        self.xn = np.einsum("ij,ij->i", self.db, self.db) if self.metric in ("l2", "sqeuclidean") \
            else None

    def search(self, qs, k):
        db, xn = self.db, self.xn
        n = db.shape[0]
        k_eff = min(k, n)
        if self.metric == "cosine":
            qs = normalise_rows(qs)
        out = np.empty((qs.shape[0], k_eff), dtype=np.int64)
        for s in range(0, qs.shape[0], NUMPY_GEMM_BLOCK):
            qb = qs[s:s + NUMPY_GEMM_BLOCK]
            g = qb @ db.T                              # float32 BLAS sgemm
            if xn is not None:
                g *= np.float32(-2.0)
                g += xn[None, :]
                g += np.einsum("ij,ij->i", qb, qb)[:, None]
            else:                                      # ip / cosine: larger is nearer
                np.negative(g, out=g)
            if k_eff == 1:                             # argpartition(kth=0) is very slow
                out[s:s + qb.shape[0], 0] = g.argmin(axis=1)
                continue
            if k_eff < n:
                cand = np.argpartition(g, k_eff - 1, axis=1)[:, :k_eff]
            else:
                cand = np.broadcast_to(np.arange(n), g.shape)
            cd = np.take_along_axis(g, cand, axis=1)
            order = np.lexsort((cand, cd), axis=-1)    # by distance, then index
            out[s:s + qb.shape[0]] = np.take_along_axis(cand, order, axis=1)
        return out


def make_peer(name, metric, threads):
    if name == "faiss-flat":
        return FaissFlat(metric, threads)
    if name == "sklearn-brute":
        return SklearnNN("brute", metric, threads)
    if name == "sklearn-auto":
        return SklearnNN("auto", metric, threads)
    if name == "numpy-gemm":
        return NumpyGemm(metric, threads)
    raise ValueError(name)


def majority_vote(idx, ytr):
    """KNeighborsClassifier(weights='uniform') style: most frequent label, ties -> smallest."""
    labels = ytr[idx]
    nclass = int(ytr.max()) + 1
    counts = np.zeros((labels.shape[0], nclass), dtype=np.int64)
    np.add.at(counts, (np.arange(labels.shape[0])[:, None], labels), 1)
    return counts.argmax(axis=1)  # argmax returns the first (smallest) label among ties


# --------------------------------------------------------------------------------------
# Agreement between peers

def exact_dists(db, qs, idx, metric):
    """float64 distances of each query to its listed neighbours (smaller = nearer)."""
    x = db[idx].astype(np.float64)               # (q, k, d)
    q = qs.astype(np.float64)[:, None, :]
    if metric in ("l2", "sqeuclidean"):
        return ((x - q) ** 2).sum(-1)
    if metric == "l1":
        return np.abs(x - q).sum(-1)
    dots = (x * q).sum(-1)
    if metric == "ip":
        return -dots
    nx = np.linalg.norm(x, axis=-1)
    nq = np.linalg.norm(q, axis=-1)
    return 1.0 - dots / np.maximum(nx * nq, 1e-300)


def agreement(db, qs, a, b, metric, rtol=1e-5):
    same_order = np.all(a == b, axis=1)
    same_set = np.array([np.array_equal(np.sort(x), np.sort(y)) for x, y in zip(a, b)])
    # Rows whose sets differ: are the sorted true distances equal (a tie / rounding swap)?
    diff = np.nonzero(~same_set)[0]
    equiv = same_set.copy()
    max_rel = 0.0
    if diff.size:
        da = np.sort(exact_dists(db, qs[diff], a[diff], metric), axis=1)
        dbb = np.sort(exact_dists(db, qs[diff], b[diff], metric), axis=1)
        scale = np.maximum(np.abs(da).max(axis=1, keepdims=True), 1e-30)
        rel = np.abs(da - dbb) / scale
        max_rel = float(rel.max())
        equiv[diff] = rel.max(axis=1) <= rtol
    q = a.shape[0]
    return {"ordered_pct": 100.0 * same_order.sum() / q,
            "set_pct": 100.0 * same_set.sum() / q,
            "distance_equivalent_pct": 100.0 * equiv.sum() / q,
            "rows_differing_sets": int(diff.size),
            "max_rel_distance_gap": max_rel}


# --------------------------------------------------------------------------------------

def main(args):
    t_load = time.perf_counter()
    db, qs, ytr, yte = load_data(args)
    t_load = time.perf_counter() - t_load
    n, d = db.shape
    q = qs.shape[0]

    limiter = None
    if HAVE_THREADPOOLCTL:
        import threadpoolctl
        limiter = threadpoolctl.threadpool_limits(limits=args.threads)

    peers = [make_peer(p, args.metric, args.threads) for p in args.peers]
    skipped = {}
    for p in peers:
        why = p.supports()
        if why is None and p.name == "sklearn-auto" and q * n > args.sklearn_auto_max_qn:
            why = ("Q*N=%.3g > --sklearn-auto-max-qn=%.3g (it may pick a tree); use --limit-test"
                   % (q * n, args.sklearn_auto_max_qn))
        if why is not None:
            skipped[p.name] = why
            eprint("peers.py: warning: skipping %s: %s" % (p.name, why))
    peers = [p for p in peers if p.name not in skipped]

    # Build (index add / fit) once per peer, timed separately.
    build_s = {}
    for p in peers:
        t0 = time.perf_counter()
        p.build(db)
        build_s[p.name] = time.perf_counter() - t0

    # Report what this process sees (after every native library is loaded).
    libs = loaded_native_libs()
    blas = blas_report()
    kernel = blas_kernel_guess(libs)
    oenv = openblas_env(libs)
    thread_env = {v: os.environ.get(v) for v in THREAD_ENV_VARS}

    print("dataset=%s n=%d q=%d d=%d metric=%s k=%s threads=%d repeats=%d (load %.2fs)"
          % (args.dataset, n, q, d, args.metric, args.ks, args.threads, args.repeats, t_load))
    print("python: %s  threadpoolctl: %s" % (sys.executable,
                                            "yes" if HAVE_THREADPOOLCTL else
                                            "NO (set %s=%d)" % ("/".join(THREAD_ENV_VARS),
                                                                args.threads)))
    print("native libs: %s" % (", ".join(libs) or "(none found)"))
    print("BLAS kernel (from loaded libs): %s" % kernel)
    for b in blas:
        print("threadpoolctl: internal_api=%s num_threads=%s architecture=%s corestype=%s "
              "version=%s file=%s" % (b.get("internal_api"), b.get("num_threads"),
                                      b.get("architecture"), b.get("corestype"),
                                      b.get("version"), b.get("filepath")))
    if HAVE_THREADPOOLCTL and not any(b.get("user_api") == "blas" for b in blas):
        print("threadpoolctl: sees no BLAS it can control (%s is single-threaded or unknown to it)"
              % kernel)
    print("OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s (OpenBLAS loaded: %s)"
          % (oenv["vars"]["OPENBLAS_CORETYPE"], oenv["vars"]["OPENBLAS_L2_SIZE"],
             oenv["openblas_loaded"]))
    if oenv["set"]:
        eprint("peers.py: WARNING: %s set in the environment; on this machine they slow BLAS "
               "down. Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 "
               "peers.py ...%s" % (" and ".join(v for v in OPENBLAS_FAIRNESS_VARS
                                                if oenv["vars"][v] is not None),
                                   "" if oenv["openblas_loaded"] else
                                   " (OpenBLAS is not loaded here, so they have no effect now)"))
    if kernel == "netlib-reference":
        eprint("peers.py: WARNING: BLAS is the netlib reference implementation (single-threaded, "
               "unoptimised); GEMM-based peers (numpy-gemm, faiss-flat, sklearn) are far slower "
               "than with OpenBLAS/MKL.")
    for p in peers:
        print("peer %-14s %s (build %.3fs)" % (p.name, p.detail, build_s[p.name]))
    sys.stdout.flush()

    # Timing: repeat loop outermost, peers interleaved inside it.
    times = {(p.name, k): [] for p in peers for k in args.ks}
    idx_first = {}
    deterministic = {}
    for p in peers:
        for k in args.ks:
            for _ in range(args.warmup):
                p.search(qs, k)
    for r in range(args.repeats):
        for p in peers:
            for k in args.ks:
                t0 = time.perf_counter()
                idx = p.search(qs, k)
                dt = time.perf_counter() - t0
                times[(p.name, k)].append(dt)
                idx = np.asarray(idx, dtype=np.int64)
                key = (p.name, k)
                if key not in idx_first:
                    idx_first[key] = idx
                    deterministic[key] = True
                elif not np.array_equal(idx_first[key], idx):
                    deterministic[key] = False
                eprint("  repeat %d/%d %-14s k=%-3d %.4fs" % (r + 1, args.repeats, p.name, k, dt))

    results = []
    for p in peers:
        for k in args.ks:
            key = (p.name, k)
            ts = times[key]
            med = statistics.median(ts)
            res = {"peer": p.name, "k": k, "metric": args.metric, "times_s": ts,
                   "median_s": med, "min_s": min(ts),
                   "queries_per_s": q / med if med > 0 else None,
                   "build_s": build_s[p.name], "deterministic": deterministic[key],
                   "detail": p.detail}
            if args.classify:
                if isinstance(p, SklearnNN):
                    pred = p.classify(db, ytr, qs, k)
                else:
                    pred = majority_vote(idx_first[key], ytr)
                res["accuracy"] = float((pred == yte).mean())
                if args.save_predictions:
                    os.makedirs(args.save_predictions, exist_ok=True)
                    np.save(os.path.join(args.save_predictions, "%s_k%d_labels.npy"
                                         % (p.name, k)), pred.astype(np.int64))
            if args.save_predictions:
                os.makedirs(args.save_predictions, exist_ok=True)
                np.save(os.path.join(args.save_predictions, "%s_k%d_indices.npy" % (p.name, k)),
                        idx_first[key].astype(np.int64))
            results.append(res)

    # Agreement of neighbour indices between peers, per k (against the first peer).
    agree = []
    names = [p.name for p in peers]
    for k in args.ks:
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                a, b = idx_first[(names[i], k)], idx_first[(names[j], k)]
                if a.shape != b.shape:
                    continue
                ag = agreement(db, qs, a, b, args.metric)
                ag.update({"k": k, "a": names[i], "b": names[j]})
                agree.append(ag)

    if limiter is not None:
        limiter.restore_original_limits()

    # Human table.
    print()
    hdr = "%-14s %4s %-11s %10s %10s %12s %9s" % ("peer", "k", "metric", "median_s", "min_s",
                                                 "queries/s", "build_s")
    if args.classify:
        hdr += " %8s" % "accuracy"
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        line = "%-14s %4d %-11s %10.4f %10.4f %12.1f %9.3f" % (
            r["peer"], r["k"], r["metric"], r["median_s"], r["min_s"], r["queries_per_s"] or 0,
            r["build_s"])
        if args.classify:
            line += " %8.4f" % r["accuracy"]
        print(line)
    for name, why in skipped.items():
        print("%-14s skipped: %s" % (name, why))
    if agree:
        print()
        print("neighbour agreement (% of queries): ordered / same set / same distances")
        for ag in agree:
            print("  k=%-3d %-14s vs %-14s %7.2f %7.2f %7.2f  (max rel gap %.2g)"
                  % (ag["k"], ag["a"], ag["b"], ag["ordered_pct"], ag["set_pct"],
                     ag["distance_equivalent_pct"], ag["max_rel_distance_gap"]))

    out = {"dataset": args.dataset, "n": int(n), "q": int(q), "d": int(d),
           "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
           "metric": args.metric, "ks": args.ks,
           "seed": args.seed if args.dataset == "random" else None,
           "limit_test": args.limit_test,
           "machine": machine_info(), "blas": blas, "blas_kernel": kernel,
           "native_libs": libs, "threadpoolctl": HAVE_THREADPOOLCTL,
           "thread_env": thread_env, "openblas_env": oenv,
           "results": results, "skipped": skipped, "agreement": agree}
    if args.json_out:
        dirn = os.path.dirname(os.path.abspath(args.json_out))
        os.makedirs(dirn, exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print("\nwrote %s" % args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
