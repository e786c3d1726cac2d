#!/usr/bin/env python3
"""Speed from Python: fastknn.sklearn vs scikit-learn brute force vs FAISS IndexFlatL2 on the
full Fashion-MNIST (10,000 test x 60,000 train x 784, float32, Euclidean), same threads, rounds
interleaved; and the binding's overhead (argument checks, conversions, numpy outputs) next to
the library's search time.

    PYTHONPATH=build/openmp/python /usr/bin/python3 bench/python_bench.py [--threads 2]
        [--rounds 3] [--k 1 --k 10 --k 100] [--out bench/results]

Each library runs in its own process per measurement. The peers' processes run without
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (which may be set on these machines and slow OpenBLAS);
fastknn's keep the environment as it is.
"""

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FASHION = os.environ.get("FASTKNN_FASHION_DIR", "/usr/share/datasets/fashion-mnist")


def read_idx(name):
    import numpy as np
    with gzip.open(os.path.join(FASHION, name), "rb") as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * ndim).reshape(dims[0], -1)


def measure(lib, k, threads):
    """One search in this process; prints a JSON line."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    x = read_idx("train-images-idx3-ubyte.gz").astype(np.float32)
    q = read_idx("t10k-images-idx3-ubyte.gz").astype(np.float32)
    out = {"lib": lib, "k": k}
    with threadpool_limits(limits=threads):
        if lib == "fastknn":
            import fastknn
            from fastknn.sklearn import NearestNeighbors
            nn = NearestNeighbors(n_neighbors=k, n_jobs=threads).fit(x)
            t = time.perf_counter()
            nn.kneighbors(q)
            out["seconds"] = time.perf_counter() - t
            # The binding's share: the same search through fastknn.Index, timed around the call
            # and, inside it, around the library's search alone.
            index = fastknn.Index(x, "l2", threads)
            stats = {}
            t = time.perf_counter()
            index.search(q, k, stats=stats)
            call = time.perf_counter() - t
            out.update(index_call_seconds=call, library_seconds=stats["search_seconds"],
                       overhead_seconds=call - stats["search_seconds"],
                       integer_preselection=stats["integer_preselection"], isa=stats["isa"],
                       exact_fallbacks=stats["exact_fallbacks"])
        elif lib == "sklearn-brute":
            from sklearn.neighbors import NearestNeighbors
            nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=threads).fit(x)
            t = time.perf_counter()
            nn.kneighbors(q)
            out["seconds"] = time.perf_counter() - t
        elif lib == "faiss-flat":
            import faiss
            faiss.omp_set_num_threads(threads)
            index = faiss.IndexFlatL2(x.shape[1])
            index.add(x)
            t = time.perf_counter()
            index.search(q, k)
            out["seconds"] = time.perf_counter() - t
        out["blas"] = sorted({i.get("internal_api", "?") + ":" + str(i.get("architecture"))
                              for i in threadpool_info() if i.get("user_api") == "blas"})
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--k", type=int, action="append")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--measure", nargs=2, metavar=("LIB", "K"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        return measure(a.measure[0], int(a.measure[1]), a.threads)
    ks = a.k or [1, 10, 100]
    libs = ["fastknn", "sklearn-brute", "faiss-flat"]
    runs = {(lib, k): [] for lib in libs for k in ks}
    base_env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer_env = {v: base_env[v] for v in base_env if v not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for r in range(a.rounds):
        for k in ks:
            for lib in libs:
                env = base_env if lib == "fastknn" else peer_env
                p = subprocess.run([sys.executable, __file__, "--threads", str(a.threads),
                                    "--measure", lib, str(k)], env=env, capture_output=True,
                                   text=True, check=True)
                res = json.loads(p.stdout.strip().splitlines()[-1])
                runs[(lib, k)].append(res)
                print(f"round {r + 1} k={k} {lib}: {res['seconds']:.3f} s", file=sys.stderr)
    med = lambda lib, k, key="seconds": statistics.median(x[key] for x in runs[(lib, k)])
    commit, cls = provenance()
    first = runs[("fastknn", ks[0])][0]
    lines = [f"Fashion-MNIST from Python, Q = 10000 x N = 60000 x D = 784, Euclidean, float32, "
             f"{a.threads} threads, median of {a.rounds} interleaved rounds, each search in its own "
             f"process. fastknn.sklearn.NearestNeighbors.kneighbors at commit {commit} (kernels "
             f"{first['isa']}, integer pre-selection {first['integer_preselection']}); "
             f"scikit-learn brute force (float32 input) and FAISS IndexFlatL2 with "
             f"OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset; peers' BLAS "
             f"{', '.join(runs[('sklearn-brute', ks[0])][0]['blas'])}; CPU class {cls}, "
             f"{platform.node()}.", "",
             "| k | fastknn.sklearn s | sklearn brute s | FAISS flat s | x vs sklearn | x vs FAISS "
             "| library search s | binding overhead s | overhead % |",
             "|---|---|---|---|---|---|---|---|---|"]
    table = []
    for k in ks:
        f, s, fa = med("fastknn", k), med("sklearn-brute", k), med("faiss-flat", k)
        lib_s, over = med("fastknn", k, "library_seconds"), med("fastknn", k, "overhead_seconds")
        table.append(dict(k=k, fastknn=f, sklearn=s, faiss=fa, library=lib_s, overhead=over))
        lines.append(f"| {k} | {f:.3f} | {s:.3f} | {fa:.3f} | {s / f:.2f} | {fa / f:.2f} | "
                     f"{lib_s:.3f} | {over:.4f} | {100 * over / lib_s:.2f} |")
    save(a.out, f"{commit}-cpu-{cls}-python", lines, table, runs)


def provenance():
    """(short commit, CPU class) for the results and their file names."""
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    flags = open("/proc/cpuinfo").read()
    return commit, "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "generic"


def save(out, name, lines, table, runs):
    """Prints the table and writes it (.md) with every run (.json) as out/<date>-<name>."""
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"{time.strftime('%Y-%m-%d')}-{name}")
    with open(stem + ".md", "w") as fh:
        fh.write(text)
    with open(stem + ".json", "w") as fh:
        json.dump({"table": table, "runs": {"/".join(map(str, key)): v
                                            for key, v in runs.items()}}, fh, indent=1)


if __name__ == "__main__":
    main()
