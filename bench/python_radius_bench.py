#!/usr/bin/env python3
"""Radius search from Python on Fashion-MNIST (10,000 test x 60,000 train x 784, float32,
Euclidean): fastknn.sklearn.NearestNeighbors.radius_neighbors against scikit-learn's brute-force
radius_neighbors (the goal of issue #32: >= 2x), and against fastknn's own k search with k = the
mean number of rows inside (the same result size: "as fast as the k search"). Rounds
interleaved, each measurement in its own process, medians.

    PYTHONPATH=build/openmp/python /usr/bin/python3 bench/python_radius_bench.py [--threads 2]
        [--rounds 3] [--radius 1200 --radius 1600] [--queries 10000] [--out bench/results]

scikit-learn's processes run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (which may be set on
these machines and slow OpenBLAS); fastknn's keep the environment as it is.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

from python_bench import provenance, read_idx, save

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(lib, radius, k, queries, threads):
    """One search in this process; prints a JSON line."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    x = read_idx("train-images-idx3-ubyte.gz").astype(np.float32)
    q = read_idx("t10k-images-idx3-ubyte.gz").astype(np.float32)[:queries]
    out = {"lib": lib, "radius": radius, "k": k}
    with threadpool_limits(limits=threads):
        if lib == "fastknn-radius":
            from fastknn.sklearn import NearestNeighbors
            nn = NearestNeighbors(radius=radius, n_jobs=threads).fit(x)
            t = time.perf_counter()
            _, ind = nn.radius_neighbors(q)
            out["seconds"] = time.perf_counter() - t
            out["pairs"] = int(sum(len(i) for i in ind))
        elif lib == "fastknn-k":
            from fastknn.sklearn import NearestNeighbors
            nn = NearestNeighbors(n_neighbors=k, n_jobs=threads).fit(x)
            t = time.perf_counter()
            nn.kneighbors(q)
            out["seconds"] = time.perf_counter() - t
        elif lib == "sklearn-brute-radius":
            from sklearn.neighbors import NearestNeighbors
            nn = NearestNeighbors(radius=radius, algorithm="brute", n_jobs=threads).fit(x)
            t = time.perf_counter()
            _, ind = nn.radius_neighbors(q)
            out["seconds"] = time.perf_counter() - t
            out["pairs"] = int(sum(len(i) for i in ind))
        out["blas"] = sorted({i.get("internal_api", "?") + ":" + str(i.get("architecture"))
                              for i in threadpool_info() if i.get("user_api") == "blas"})
    print(json.dumps(out), flush=True)


def run_one(lib, radius, k, a, env):
    p = subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--queries",
                        str(a.queries), "--measure", lib, str(radius), str(k)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--radius", type=float, action="append")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--measure", nargs=3, metavar=("LIB", "RADIUS", "K"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        return measure(a.measure[0], float(a.measure[1]), int(a.measure[2]), a.queries,
                       a.threads)
    radii = a.radius or [1200.0, 1600.0]
    base_env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer_env = {v: base_env[v] for v in base_env
                if v not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    runs = {}
    ks = {}
    for r in range(a.rounds):
        for radius in radii:
            for lib in ("fastknn-radius", "fastknn-k", "sklearn-brute-radius"):
                if lib == "fastknn-k" and radius not in ks:
                    continue  # k is known after the first radius search
                res = run_one(lib, radius, ks.get(radius, 0), a,
                              base_env if lib.startswith("fastknn") else peer_env)
                runs.setdefault((lib, radius), []).append(res)
                if lib == "fastknn-radius" and radius not in ks:
                    ks[radius] = max(1, math.ceil(res["pairs"] / a.queries))
                    runs[("fastknn-k", radius)] = [run_one("fastknn-k", radius, ks[radius], a,
                                                           base_env)]
                print(f"round {r + 1} radius={radius} {lib}: {res['seconds']:.3f} s",
                      file=sys.stderr)
    med = lambda lib, radius: statistics.median(x["seconds"] for x in runs[(lib, radius)])
    commit, cls = provenance()
    lines = [f"Radius search from Python, Fashion-MNIST Q = {a.queries} x N = 60000 x D = 784, "
             f"Euclidean, float32, {a.threads} threads, median of {a.rounds} interleaved rounds, "
             f"each search in its own process, commit {commit}; scikit-learn brute force with "
             f"OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (BLAS "
             f"{', '.join(runs[('sklearn-brute-radius', radii[0])][0]['blas'])}); CPU class "
             f"{cls}, {platform.node()}.", "",
             "| radius | pairs inside | per query | fastknn radius s | sklearn brute radius s "
             "| x vs sklearn | fastknn k search s (k = mean) | radius / k search |",
             "|---|---|---|---|---|---|---|---|"]
    table = []
    for radius in radii:
        f, s, kk = (med("fastknn-radius", radius), med("sklearn-brute-radius", radius),
                    med("fastknn-k", radius))
        pairs = runs[("fastknn-radius", radius)][0]["pairs"]
        same = all(x["pairs"] == pairs for x in runs[("sklearn-brute-radius", radius)])
        table.append(dict(radius=radius, pairs=pairs, fastknn=f, sklearn=s, k=ks[radius],
                          k_search=kk, same_pairs=same))
        lines.append(f"| {radius:g} | {pairs}{'' if same else ' (sklearn differs!)'} | "
                     f"{pairs / a.queries:.1f} | {f:.3f} | {s:.3f} | {s / f:.2f} | "
                     f"{kk:.3f} (k = {ks[radius]}) | {f / kk:.2f} |")
    save(a.out, f"{commit}-cpu-{cls}-radius", lines, table, runs)


if __name__ == "__main__":
    main()
