#!/usr/bin/env python3
"""The exact-only metrics from Python (Chebyshev, Minkowski, Canberra, Jaccard, ...; issue #32)
on Fashion-MNIST (Q test images x 60,000 training images x 784): fastknn.sklearn's
NearestNeighbors.kneighbors against scikit-learn's brute force with the same metric and
threads, the same neighbours checked. Rounds interleaved, each search in its own process,
medians.

    PYTHONPATH=build/openmp/python /usr/bin/python3 bench/python_metrics_bench.py
        [--threads 2] [--rounds 3] [--queries 100] [--metric chebyshev --metric minkowski:3]
        [--out bench/results]

A metric is NAME or minkowski:P. scikit-learn's processes run without OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE (which may be set on these machines and slow OpenBLAS); fastknn's keep the
environment as it is.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from python_bench import provenance, read_idx, save

HERE = os.path.dirname(os.path.abspath(__file__))
K = 10


def parse(metric):
    name, _, p = metric.partition(":")
    return name, float(p) if p else 2.0


def measure(lib, metric, queries, threads):
    """One search in this process; prints a JSON line."""
    import warnings
    import numpy as np
    from threadpoolctl import threadpool_limits
    name, p = parse(metric)
    x = read_idx("train-images-idx3-ubyte.gz").astype(np.float32)
    q = read_idx("t10k-images-idx3-ubyte.gz").astype(np.float32)[:queries]
    if lib == "fastknn":
        from fastknn.sklearn import NearestNeighbors
    else:
        from sklearn.neighbors import NearestNeighbors
        x, q = x.astype(np.float64), q.astype(np.float64)  # its float64 reference
    nn = NearestNeighbors(n_neighbors=K, metric=name, p=p, algorithm="brute",
                          n_jobs=threads).fit(x)
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's conversion to bool
        t = time.perf_counter()
        dist, ind = nn.kneighbors(q)
        seconds = time.perf_counter() - t
    print(json.dumps({"lib": lib, "metric": metric, "seconds": seconds,
                      "dist": dist[:, -1].tolist(), "ind": ind.tolist()}), flush=True)


def run_one(lib, metric, a, env):
    p = subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--queries",
                        str(a.queries), "--measure", lib, metric], env=env, capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--metric", action="append")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--measure", nargs=2, metavar=("LIB", "METRIC"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        return measure(a.measure[0], a.measure[1], a.queries, a.threads)
    metrics = a.metric or ["chebyshev", "minkowski:3", "canberra", "hamming", "jaccard"]
    base_env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer_env = {v: base_env[v] for v in base_env
                if v not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    runs = {}
    for r in range(a.rounds):
        for metric in metrics:
            for lib in ("fastknn", "sklearn"):
                res = run_one(lib, metric, a, base_env if lib == "fastknn" else peer_env)
                runs.setdefault((lib, metric), []).append(res)
                print(f"round {r + 1} {metric} {lib}: {res['seconds']:.3f} s", file=sys.stderr)
    commit, cls = provenance()
    lines = [f"Exact-only metrics from Python, Fashion-MNIST Q = {a.queries} x N = 60000 x D = "
             f"784, k = {K}, {a.threads} threads, median of {a.rounds} interleaved rounds, each "
             f"search in its own process, commit {commit}; fastknn on float32, scikit-learn's "
             f"brute force on float64, OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset for it; CPU "
             f"class {cls}, {platform.node()}.", "",
             "| metric | fastknn s | scikit-learn brute s | x vs scikit-learn | same k-th "
             "distances | same neighbours (queries) |", "|---|---|---|---|---|---|"]
    table = []
    for metric in metrics:
        f = statistics.median(x["seconds"] for x in runs[("fastknn", metric)])
        s = statistics.median(x["seconds"] for x in runs[("sklearn", metric)])
        mine, theirs = runs[("fastknn", metric)][0], runs[("sklearn", metric)][0]
        close = all(abs(u - v) <= 1e-5 * max(1.0, abs(v))
                    for u, v in zip(mine["dist"], theirs["dist"]))
        same = sum(sorted(u) == sorted(v) for u, v in zip(mine["ind"], theirs["ind"]))
        table.append(dict(metric=metric, fastknn=f, sklearn=s, same_kth=close, same=same))
        lines.append(f"| {metric} | {f:.3f} | {s:.3f} | {s / f:.2f} | {'yes' if close else 'NO'}"
                     f" | {same} of {a.queries} |")
    for key in runs:  # keep the timings, not the neighbour lists, in the json
        for x in runs[key]:
            x.pop("dist")
            x.pop("ind")
    save(a.out, f"{commit}-cpu-{cls}-metrics", lines, table, runs)


if __name__ == "__main__":
    main()
