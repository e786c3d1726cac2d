#!/usr/bin/python3
"""Strong and weak scaling of `mpirun -np P fastknn classify|search` on one machine, with the
time split (rank 0's shard searches, MPI exchange, merge) the CLI reports. Configurations run
interleaved, `--repeat` times; the table gives medians.

usage: bench/mpi_scaling.py PATH/TO/fastknn [--repeat 3] [--out PREFIX] [--rows 1000000]
       [--queries 2000] [--data DIR]

Writes PREFIX.md and PREFIX.json when --out is given. Needs numpy (for the random data set).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

MPI_LINE = re.compile(r"(\d+) ranks, (\d+) rounds? of <= (\d+) queries per rank; rank 0: "
                      r"([\d.]+) s search, ([\d.]+) s exchange, ([\d.]+) s merge")


def cpu_class():
    flags = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", flags)
    isa = "AVX-512 (VNNI)" if "avx512_vnni" in flags else ("AVX2+FMA" if "avx2" in flags else "?")
    return f"{model.group(1) if model else platform.processor()}, {isa}, {os.cpu_count()} cores"


def launch(exe, ranks, threads, args):
    cmd = [exe, *args, "--threads", str(threads)]
    if ranks > 0:
        cmd = ["mpiexec", "--oversubscribe", "--bind-to", "none", "-np", str(ranks), *cmd]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return p.stdout


def parse(out):
    """Returns (total seconds of the search, split dict or None)."""
    t = re.search(r"time\s+([\d.]+) s search", out) or re.search(r": ([\d.]+) s, [\d.]+ queries/s",
                                                                  out)
    m = MPI_LINE.search(out)
    split = None
    if m:
        split = dict(ranks=int(m[1]), rounds=int(m[2]), batch=int(m[3]), search=float(m[4]),
                     exchange=float(m[5]), merge=float(m[6]))
    return float(t[1]), split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exe")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="fastknn_scaling_")
    rng = np.random.default_rng(1)
    big = os.path.join(tmp, "x.npy")
    half = os.path.join(tmp, "x_half.npy")
    qp = os.path.join(tmp, "q.npy")
    x = rng.standard_normal((a.rows, 128), dtype=np.float32)
    np.save(big, x)
    np.save(half, x[: a.rows // 2])
    del x
    np.save(qp, rng.standard_normal((a.queries, 128), dtype=np.float32))
    idx = os.path.join(tmp, "i.npy")

    fm = ["classify", "--data", a.data, "-k", "10"]
    srch = lambda db: ["search", "--database", db, "--queries", qp, "-k", "10",
                       "--out-indices", idx]
    # (name, problem, ranks (0: no mpirun), threads per rank, args)
    configs = []
    for metric in ("l2", "cosine"):
        for ranks, threads in ((0, 1), (0, 2), (2, 1), (1, 2)):
            configs.append((f"Fashion-MNIST classify k=10 {metric}", "strong", ranks, threads,
                            [*fm, "--metric", metric]))
    for ranks, threads in ((0, 1), (0, 2), (2, 1)):
        configs.append((f"{a.rows} x 128 search, Q={a.queries}, k=10", "strong", ranks, threads,
                        srch(big)))
    configs.append((f"{a.rows // 2} rows per rank x 128, Q={a.queries}", "weak", 0, 1, srch(half)))
    configs.append((f"{a.rows // 2} rows per rank x 128, Q={a.queries}", "weak", 2, 1, srch(big)))

    times = {i: [] for i in range(len(configs))}
    splits = {i: [] for i in range(len(configs))}
    for rep in range(a.repeat):
        for i, (name, kind, ranks, threads, args) in enumerate(configs):
            t, s = parse(launch(a.exe, ranks, threads, args))
            times[i].append(t)
            if s:
                splits[i].append(s)
            print(f"[{rep + 1}/{a.repeat}] {name} ranks={ranks or 'none'} threads={threads}: "
                  f"{t:.3f} s", file=sys.stderr)

    rows = []
    for i, (name, kind, ranks, threads, _) in enumerate(configs):
        med = statistics.median(times[i])
        sp = splits[i]
        rows.append(dict(problem=name, scaling=kind, ranks=ranks, threads_per_rank=threads,
                         seconds=med, runs=times[i],
                         search=statistics.median(s["search"] for s in sp) if sp else None,
                         exchange=statistics.median(s["exchange"] for s in sp) if sp else None,
                         merge=statistics.median(s["merge"] for s in sp) if sp else None,
                         rounds=sp[0]["rounds"] if sp else None))
    lines = [f"CPU: {cpu_class()}", "",
             "| problem | scaling | MPI ranks | threads/rank | median s | rank 0 search | "
             "exchange | merge | rounds |", "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "" if v is None else f"{v:.3f}"
    for r in rows:
        lines.append(f"| {r['problem']} | {r['scaling']} | {r['ranks'] or 'no mpirun'} | "
                     f"{r['threads_per_rank']} | {r['seconds']:.3f} | {fmt(r['search'])} | "
                     f"{fmt(r['exchange'])} | {fmt(r['merge'])} | {r['rounds'] or ''} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out + ".md", "w") as f:
            f.write(text + "\n")
        with open(a.out + ".json", "w") as f:
            json.dump(dict(cpu=cpu_class(), repeat=a.repeat, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
