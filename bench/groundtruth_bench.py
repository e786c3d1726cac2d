#!/usr/bin/env python3
"""Ground truth of a streamed database: `fastknn groundtruth` against the FAISS way
(big-ann-benchmarks' make_groundtruth.py: IndexFlatL2 over blocks of 100,000 vectors, each
block's k best merged into faiss.ResultHeap), same files, same threads, k = 100, L2.

    PYTHONPATH=build/openmp/python /usr/bin/python3 bench/groundtruth_bench.py
        [--exe build/openmp/tools/fastknn] [--threads 2] [--rounds 3] [--queries 10000]
        [--u8-rows 1000000] [--f32-rows 1000000] [--memory 1G] [--dir /tmp] [--out bench/results]

Generates (once, in --dir) a .u8bin of N x 128 uniform bytes and a .fbin of N x 96 normal
floats, and the queries (.u8bin / .fbin rows of the same kind). Rounds interleaved, each run in
its own process, medians; peak resident memory from /usr/bin/time -v; outputs compared
(indices of FAISS's heaps against fastknn's, where no tie at the k-th distance). FAISS's
process runs without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.
"""

import argparse
import os
import platform
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

from python_bench import provenance, save

HERE = os.path.dirname(os.path.abspath(__file__))
K = 100


def read_bin(path):
    with open(path, "rb") as f:
        n, d = struct.unpack("<II", f.read(8))
    dtype = np.float32 if path.endswith(".fbin") else np.uint8
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))


def write_bin(path, x):
    with open(path, "wb") as f:
        f.write(struct.pack("<II", *x.shape))
        x.tofile(f)


def faiss_groundtruth(db_path, q_path, out, threads):
    """The FAISS streaming ground truth (one process); writes out.npz."""
    import faiss
    faiss.omp_set_num_threads(threads)
    x, q = read_bin(db_path), np.ascontiguousarray(read_bin(q_path), dtype=np.float32)
    heap = faiss.ResultHeap(q.shape[0], K)
    for i0 in range(0, x.shape[0], 100000):
        block = np.ascontiguousarray(x[i0:i0 + 100000], dtype=np.float32)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(block)
        d, i = index.search(q, K)
        heap.add_result(d, i + i0)
    heap.finalize()
    np.savez(out, I=heap.I, D=heap.D)


def timed(cmd, env):
    """Runs cmd under /usr/bin/time -v: (seconds, peak RSS MiB)."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss = [int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident" in l][0]
    return seconds, rss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exe", default=os.path.join(os.path.dirname(HERE), "build", "openmp",
                                                  "tools", "fastknn"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--u8-rows", type=int, default=1000000)
    ap.add_argument("--f32-rows", type=int, default=1000000)
    ap.add_argument("--memory", default="1G")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--faiss", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.faiss:
        return faiss_groundtruth(*a.faiss, a.threads)
    rng = np.random.default_rng(2026)
    sets = []
    for kind, rows, d in (("u8bin", a.u8_rows, 128), ("fbin", a.f32_rows, 96)):
        db, q = (os.path.join(a.dir, f"fastknn_gt_{kind}_{rows}.{kind}"),
                 os.path.join(a.dir, f"fastknn_gt_{kind}_q{a.queries}.{kind}"))
        for path, n in ((db, rows), (q, a.queries)):
            if not os.path.exists(path):
                x = (rng.integers(0, 256, (n, d), dtype=np.uint8) if kind == "u8bin"
                     else rng.standard_normal((n, d), dtype=np.float32))
                write_bin(path, x)
        sets.append((kind, rows, d, db, q))
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    peer_env = {v: env[v] for v in env if v not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    runs = {}
    for r in range(a.rounds):
        for kind, rows, d, db, q in sets:
            prefix = os.path.join(a.dir, f"fastknn_gt_out_{kind}")
            runs.setdefault(("fastknn", kind), []).append(timed(
                [a.exe, "groundtruth", "--database", db, "--queries", q, "-k", str(K), "--out",
                 prefix, "--memory", a.memory, "--threads", str(a.threads), "-q"], env))
            runs.setdefault(("faiss", kind), []).append(timed(
                [sys.executable, __file__, "--threads", str(a.threads), "--faiss", db, q,
                 prefix + "_faiss.npz"], peer_env))
            print(f"round {r + 1} {kind}: fastknn {runs[('fastknn', kind)][-1]}, "
                  f"faiss {runs[('faiss', kind)][-1]}", file=sys.stderr)
    commit, cls = provenance()
    lines = [f"Streamed ground truth, k = {K}, L2, Q = {a.queries}, {a.threads} threads, "
             f"`fastknn groundtruth --memory {a.memory}` against FAISS {__import__('faiss').__version__} "
             f"IndexFlatL2 over blocks of 100,000 merged by faiss.ResultHeap (big-ann-benchmarks' "
             f"way), median of {a.rounds} interleaved rounds, each in its own process, files in the "
             f"page cache; commit {commit}; CPU class {cls}, {platform.node()}.", "",
             "| database | fastknn s | FAISS s | x | fastknn peak RSS MiB | FAISS peak RSS MiB "
             "| same ids (rows without a tie at k) |", "|---|---|---|---|---|---|---|"]
    table = []
    for kind, rows, d, db, q in sets:
        prefix = os.path.join(a.dir, f"fastknn_gt_out_{kind}")
        mine = np.load(prefix + ".indices.npy")
        dist = np.load(prefix + ".distances.npy")
        theirs = np.load(prefix + "_faiss.npz")["I"]
        # fastknn's distances are L2 (square root); FAISS's are squared. A row's ids must agree
        # when its k-th distance is not tied with the (k+1)-th (unknown here: compare sets).
        agree = float(np.mean([set(m) == set(t) for m, t in zip(mine, theirs)]))
        f = statistics.median(x[0] for x in runs[("fastknn", kind)])
        s = statistics.median(x[0] for x in runs[("faiss", kind)])
        fr = max(x[1] for x in runs[("fastknn", kind)])
        sr = max(x[1] for x in runs[("faiss", kind)])
        table.append(dict(kind=kind, rows=rows, dim=d, fastknn=f, faiss=s, fastknn_rss_mib=fr,
                          faiss_rss_mib=sr, same_id_sets=agree, kth_mean=float(dist[:, -1].mean())))
        lines.append(f"| {kind} {rows} x {d} ({os.path.getsize(db) / 2**20:.0f} MiB) | {f:.2f} | "
                     f"{s:.2f} | {s / f:.2f} | {fr:.0f} | {sr:.0f} | {agree:.4f} |")
    save(a.out, f"{commit}-cpu-{cls}-groundtruth", lines, table, runs)


if __name__ == "__main__":
    main()
