#!/usr/bin/env python3
"""scikit-learn pipelines on Fashion-MNIST's 60,000 training images (784 values, float32,
Euclidean) with fastknn's transformers against scikit-learn alone (issue #32's pipelines):

- TSNE's neighbour graph: KNeighborsTransformer(n_neighbors=91, mode="distance").fit_transform,
  the graph TSNE builds at its default perplexity 30 (3 x 30 + 1 neighbours), fastknn.sklearn's
  against scikit-learn's (brute force, its choice for 784 dimensions);
- DBSCAN(eps, min_samples=5): make_pipeline(fastknn.sklearn.RadiusNeighborsTransformer(eps),
  DBSCAN(eps, metric="precomputed")) against DBSCAN(eps) as it is.

    PYTHONPATH=build/openmp/python /usr/bin/python3 bench/python_pipeline_bench.py
        [--threads 2] [--rounds 3] [--rows 60000] [--eps 1000] [--out bench/results]

Rounds interleaved, each measurement in its own process (whole stage: fit and search), medians.
Outputs are compared: the graphs' distances (k-th neighbour per row) and DBSCAN's labels.
scikit-learn's processes run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (which may be set on
these machines and slow OpenBLAS); fastknn's keep the environment as it is.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from python_bench import provenance, read_idx, save

K = 91


def measure(lib, stage, rows, eps, threads, out_file):
    """One stage in this process; prints a JSON line and saves its output to out_file."""
    import numpy as np
    from sklearn.cluster import DBSCAN
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_info, threadpool_limits
    x = read_idx("train-images-idx3-ubyte.gz")[:rows].astype(np.float32)
    out = {"lib": lib, "stage": stage}
    with threadpool_limits(limits=threads):
        if lib == "fastknn":
            import fastknn.sklearn as mod
        else:
            import sklearn.neighbors as mod
        t = time.perf_counter()
        if stage == "knn-graph":
            g = mod.KNeighborsTransformer(n_neighbors=K, mode="distance",
                                          n_jobs=threads).fit_transform(x)
            result = g.data.reshape(rows, K + 1).max(axis=1)  # each row's K-th distance
        elif lib == "fastknn":
            result = make_pipeline(mod.RadiusNeighborsTransformer(radius=eps, mode="distance",
                                                                  n_jobs=threads),
                                   DBSCAN(eps=eps, min_samples=5, metric="precomputed",
                                          n_jobs=threads)).fit(x)[-1].labels_
        else:
            result = DBSCAN(eps=eps, min_samples=5, n_jobs=threads).fit(x).labels_
        out["seconds"] = time.perf_counter() - t
        out["blas"] = sorted({i.get("internal_api", "?") + ":" + str(i.get("architecture"))
                              for i in threadpool_info() if i.get("user_api") == "blas"})
    np.save(out_file, result)
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--eps", type=float, default=1000.0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results"))
    ap.add_argument("--measure", nargs=3, metavar=("LIB", "STAGE", "FILE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        return measure(a.measure[0], a.measure[1], a.rows, a.eps, a.threads, a.measure[2])
    import numpy as np
    base_env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer_env = {v: base_env[v] for v in base_env
                if v not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    runs, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for stage in ("knn-graph", "dbscan"):
                for lib in ("fastknn", "sklearn"):
                    f = os.path.join(tmp, f"{lib}-{stage}.npy")
                    p = subprocess.run(
                        [sys.executable, __file__, "--threads", str(a.threads), "--rows",
                         str(a.rows), "--eps", str(a.eps), "--measure", lib, stage, f],
                        env=base_env if lib == "fastknn" else peer_env, capture_output=True,
                        text=True, check=True)
                    res = json.loads(p.stdout.strip().splitlines()[-1])
                    runs.setdefault((lib, stage), []).append(res)
                    outputs[(lib, stage)] = np.load(f)
                    print(f"round {r + 1} {stage} {lib}: {res['seconds']:.2f} s", file=sys.stderr)
    med = {key: statistics.median(x["seconds"] for x in v) for key, v in runs.items()}
    kth_f, kth_s = outputs[("fastknn", "knn-graph")], outputs[("sklearn", "knn-graph")]
    kth_diff = float(np.max(np.abs(kth_f.astype(np.float64) - kth_s) / np.maximum(kth_s, 1)))
    lab_f, lab_s = outputs[("fastknn", "dbscan")], outputs[("sklearn", "dbscan")]
    same_labels = bool(np.array_equal(lab_f, lab_s))
    clusters = len(set(lab_f.tolist()) - {-1})
    commit, cls = provenance()
    blas = ", ".join(runs[("sklearn", "knn-graph")][0]["blas"])
    lines = [f"scikit-learn pipelines on Fashion-MNIST's first {a.rows} training images (784 "
             f"values, float32, Euclidean), {a.threads} threads, median of {a.rounds} "
             f"interleaved rounds, each stage (fit and search) in its own process, commit "
             f"{commit}; scikit-learn with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (BLAS "
             f"{blas}); CPU class {cls}.", "",
             "| stage | fastknn s | scikit-learn s | x | outputs |", "|---|---|---|---|---|",
             f"| TSNE's graph: KNeighborsTransformer(n_neighbors={K}).fit_transform | "
             f"{med[('fastknn', 'knn-graph')]:.2f} | {med[('sklearn', 'knn-graph')]:.2f} | "
             f"{med[('sklearn', 'knn-graph')] / med[('fastknn', 'knn-graph')]:.2f} | k-th "
             f"distances within {kth_diff:.1e} (relative) |",
             f"| DBSCAN(eps={a.eps:g}, min_samples=5).fit | {med[('fastknn', 'dbscan')]:.2f} | "
             f"{med[('sklearn', 'dbscan')]:.2f} | "
             f"{med[('sklearn', 'dbscan')] / med[('fastknn', 'dbscan')]:.2f} | labels "
             f"{'equal' if same_labels else 'DIFFER'} ({clusters} clusters, "
             f"{int(np.sum(lab_f == -1))} noise) |"]
    table = dict(rows=a.rows, eps=a.eps, k=K, medians={f"{k[0]}/{k[1]}": v for k, v in med.items()},
                 kth_relative_difference=kth_diff, same_labels=same_labels, clusters=clusters)
    save(a.out, f"{commit}-cpu-{cls}-pipelines", lines, table, runs)


if __name__ == "__main__":
    main()
