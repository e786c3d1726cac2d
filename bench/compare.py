#!/usr/bin/python3
"""Runs fastknn (bench/fastknn_bench) and its peers (bench/peers/peers.py: FAISS IndexFlatL2,
scikit-learn brute force, a numpy/OpenBLAS GEMM + partial sort) on the same data, threads and
k, interleaving the runs, and prints medians and ratios. Saves JSON + Markdown (and a plot with
--sweep) under bench/results/.

The BLAS-based peers run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from *their*
environment only (this machine sets them for old OpenBLAS builds; they halve a current one).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_fastknn(bench, pattern, threads, env):
    out = subprocess.run(
        [bench, f"--benchmark_filter={pattern}", "--benchmark_format=json",
         f"--kokkos-num-threads={threads}"],
        check=True, capture_output=True, text=True, env=env).stdout
    data = json.loads(out)
    return data["context"], {b["name"]: b for b in data["benchmarks"]}


def run_peers(peers, ks, threads, limit, env):
    path = os.path.join(ROOT, "bench", "results", "tmp", "peers.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = [sys.executable, os.path.join(HERE, "peers", "peers.py"), "--dataset", "fashion-mnist",
           "--threads", str(threads), "--repeats", "1", "--warmup", "0", "--json", path]
    if limit:
        cmd += ["--limit-test", str(limit)]
    for k in ks:
        cmd += ["--k", str(k)]
    for p in peers:
        cmd += ["--peer", p]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    with open(path) as f:
        return json.load(f)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def save_results(out, name, info, table, payload):
    """Prints info and table; writes <date>-<commit>-<name>.json ({info} + payload) and .md."""
    print(info)
    print(table)
    os.makedirs(out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d")
    base = os.path.join(out, f"{stamp}-{git_commit()}-{name}")
    with open(base + ".json", "w") as f:
        json.dump({"info": info, **payload}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(info + "\n\n" + table + "\n")
    print(f"wrote {base}.json and .md")
    return base


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "openmp", "bench", "fastknn_bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--q", type=int, default=10000, help="Fashion-MNIST test queries (<= 10000)")
    ap.add_argument("--k", type=int, action="append", help="k values (default 1 10 100)")
    ap.add_argument("--peer", action="append", help="peers (default faiss-flat sklearn-brute numpy-gemm)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sweep", action="store_true", help="also run the Q/N/D/k sweeps of fastknn and plot")
    ap.add_argument("--small", action="store_true",
                    help="instead: small batches (Q = 1, 16) against 10^6 x 128 random rows, "
                         "fastknn search and Index.search against FAISS, in GB/s of database read")
    ap.add_argument("--standardised", action="store_true",
                    help="instead: Fashion-MNIST standardised per pixel (non-integer data, so the "
                         "float path), L2 and cosine, against FAISS IndexFlatL2 / IndexFlatIP on "
                         "the same standardised (and, for cosine, normalised) data")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    ks = args.k or [1, 10, 100]
    peers = args.peer or ["faiss-flat", "sklearn-brute", "numpy-gemm"]
    if args.q not in (100, 1000, 10000):
        ap.error("--q must be one of 100, 1000, 10000 (the benchmark's registered sizes)")

    ours_env = dict(os.environ, OMP_PROC_BIND="false")
    peer_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if args.small:
        return small_batches(args, ours_env, peer_env)
    if args.standardised:
        return standardised(args, ks, ours_env, peer_env)
    # Both pre-selections: the default (exact integer path for these 8-bit pixels where the
    # backend has one) and the float path forced.
    pattern = f"fashion_mnist_l2sq(_floatpath)?/q:{args.q}/k:({'|'.join(map(str, ks))})/"

    times = {}  # (system, k) -> [seconds]
    context, peer_meta = None, None
    for rep in range(args.repeats):
        # Interleave: fastknn, then every peer, in each round.
        context, res = run_fastknn(args.bench, pattern, args.threads, ours_env)
        for name, b in res.items():
            k = int(name.split("/k:")[1].split("/")[0])
            ours = "fastknn-float" if "_floatpath" in name else "fastknn"
            times.setdefault((ours, k), []).append(b["real_time"] / 1e3)
            times.setdefault((ours + "-fallbacks", k), []).append(b.get("exact_fallbacks", 0))
            times.setdefault((ours + "-integer", k), []).append(b.get("integer_preselection", 0))
        peer_meta = run_peers(peers, ks, args.threads, args.q, peer_env)
        for r in peer_meta["results"]:
            times.setdefault((r["peer"], r["k"]), []).append(r["median_s"])
        print(f"round {rep + 1}/{args.repeats} done", file=sys.stderr)

    flops = 2.0 * args.q * 60000 * 784
    peak = float(context.get("fma_peak_gflops", "nan"))
    rows = []
    for k in ks:
        ours = statistics.median(times[("fastknn", k)])
        fl = statistics.median(times[("fastknn-float", k)])
        row = {"k": k, "fastknn_s": ours, "fastknn_gflops": flops / ours / 1e9,
               "integer_preselection": bool(max(times[("fastknn-integer", k)])),
               "exact_fallbacks": max(times[("fastknn-fallbacks", k)]),
               "fastknn_float_s": fl, "fastknn_float_gflops": flops / fl / 1e9,
               "fastknn_float_peak_fraction": flops / fl / 1e9 / peak,
               "float_exact_fallbacks": max(times[("fastknn-float-fallbacks", k)])}
        for p in peers:
            if (p, k) in times:
                t = statistics.median(times[(p, k)])
                row[f"{p}_s"] = t
                row[f"speedup_vs_{p}"] = t / ours
                row[f"float_speedup_vs_{p}"] = t / fl
        rows.append(row)

    header = ["k", "fastknn s", "path", "fastknn float-path s", "float path % of FMA peak"] + \
             [f"{p} s" for p in peers] + [f"x vs {p}" for p in peers] + \
             [f"float path x vs {p}" for p in peers]
    cell_rows = []
    for r in rows:
        cells = [str(r["k"]), f"{r['fastknn_s']:.3f}",
                 "int8 exact" if r["integer_preselection"] else "float",
                 f"{r['fastknn_float_s']:.3f}", f"{100 * r['fastknn_float_peak_fraction']:.1f}"]
        cells += [f"{r.get(p + '_s', float('nan')):.3f}" for p in peers]
        cells += [f"{r.get('speedup_vs_' + p, float('nan')):.2f}" for p in peers]
        cells += [f"{r.get('float_speedup_vs_' + p, float('nan')):.2f}" for p in peers]
        cell_rows.append(cells)
    table = markdown_table(header, cell_rows)
    commit = git_commit()
    info = (f"Fashion-MNIST, Q = {args.q} test x N = 60000 train x D = 784, L2, float32, "
            f"{args.threads} threads, median of {args.repeats} interleaved rounds. "
            f"fastknn {context.get('fastknn_version')} ({context.get('backend')}, Kokkos "
            f"{context.get('kokkos_version')}) at commit {commit}; measured FMA peak "
            f"{peak:.1f} GFLOP/s; copy bandwidth {context.get('copy_bandwidth_GBps')} GB/s; "
            f"{machine_line(context)}; peers' BLAS: {peer_meta.get('blas_kernel')}.")
    base = save_results(args.out, f"cpu-{context.get('isa')}-fashion", info, table, {
        "context": context, "rows": rows,
        "raw": {f"{s}/k{k}": v for (s, k), v in times.items()},
        "peers": {k: peer_meta[k] for k in ("blas", "blas_kernel", "openblas_env", "machine")
                  if k in peer_meta}})

    if args.sweep:
        sweep(args, ours_env, base)


def machine_line(context):
    """The CPU class and the kernels that ran, for every results header."""
    return (f"kernels: {context.get('isa')} register block {context.get('register_block')}; "
            f"host {context.get('host_name')}, {context.get('num_cpus')} CPUs at "
            f"{context.get('mhz_per_cpu')} MHz")


def standardised(args, ks, ours_env, peer_env):
    """Fashion-MNIST standardised per pixel (StandardScaler: real non-integer data), L2 and
    cosine: fastknn (float path) against FAISS on the same data, interleaved rounds, medians,
    with the re-scored candidates per query and the exact fallbacks that explain a slow k."""
    metrics = {"l2sq": "l2", "cosine": "cosine"}
    pattern = f"fashion_mnist_std_(l2sq|cosine)/q:{args.q}/k:({'|'.join(map(str, ks))})/"
    path = os.path.join(ROOT, "bench", "results", "tmp", "peers-std.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    times, stats, context = {}, {}, None
    for rep in range(args.repeats):
        context, res = run_fastknn(args.bench, pattern, args.threads, ours_env)
        for name, b in res.items():
            m = name.split("fashion_mnist_std_")[1].split("/")[0]
            k = int(name.split("/k:")[1].split("/")[0])
            times.setdefault(("fastknn", m, k), []).append(b["real_time"] / 1e3)
            stats[(m, k)] = (b.get("rescored_per_query", float("nan")), b.get("exact_fallbacks", 0))
        for m, pm in metrics.items():
            cmd = [sys.executable, os.path.join(HERE, "peers", "peers.py"), "--dataset",
                   "fashion-mnist", "--standardise", "--metric", pm, "--threads",
                   str(args.threads), "--repeats", "1", "--limit-test", str(args.q),
                   "--peer", "faiss-flat", "--json", path]
            for k in ks:
                cmd += ["--k", str(k)]
            subprocess.run(cmd, check=True, capture_output=True, text=True, env=peer_env)
            with open(path) as f:
                for r in json.load(f)["results"]:
                    times.setdefault(("faiss", m, r["k"]), []).append(r["median_s"])
        print(f"round {rep + 1}/{args.repeats} done", file=sys.stderr)
    flops = 2.0 * args.q * 60000 * 784
    peak = float(context.get("fma_peak_gflops", "nan"))
    rows = []
    for m in metrics:
        for k in ks:
            ours = statistics.median(times[("fastknn", m, k)])
            faiss = statistics.median(times[("faiss", m, k)])
            rows.append({"metric": m, "k": k, "fastknn_s": ours, "faiss_s": faiss,
                         "speedup_vs_faiss": faiss / ours,
                         "peak_fraction": flops / ours / 1e9 / peak,
                         "rescored_per_query": stats[(m, k)][0],
                         "exact_fallbacks": stats[(m, k)][1]})
    header = ["metric", "k", "fastknn s", "% of FMA peak", "FAISS s", "x vs FAISS",
              "re-scored / query", "exact fallbacks"]
    table = markdown_table(header, [[
        r["metric"], str(r["k"]), f"{r['fastknn_s']:.3f}", f"{100 * r['peak_fraction']:.1f}",
        f"{r['faiss_s']:.3f}", f"{r['speedup_vs_faiss']:.2f}", f"{r['rescored_per_query']:.1f}",
        f"{r['exact_fallbacks']:.0f}"] for r in rows])
    info = (f"Fashion-MNIST standardised per pixel (StandardScaler), Q = {args.q} x N = 60000 x "
            f"D = 784, float32, {args.threads} threads, median of {args.repeats} interleaved "
            f"rounds; FAISS IndexFlatL2 (l2sq) / IndexFlatIP on normalised rows (cosine). "
            f"fastknn {context.get('fastknn_version')} at commit {git_commit()}; measured FMA "
            f"peak {peak:.1f} GFLOP/s; {machine_line(context)}.")
    save_results(args.out, f"cpu-{context.get('isa')}-fashion-std", info, table, {
        "context": context, "rows": rows,
        "raw": {f"{s}/{m}/k{k}": v for (s, m, k), v in times.items()}})


def small_batches(args, ours_env, peer_env):
    """Q = 1 and 16 queries against N = 10^6 random rows of D = 128 (512 MB of float32), k = 10:
    fastknn's one-shot search (which includes its pass over the database) and Index.search
    (database pass done beforehand), FAISS IndexFlatL2 search (index.add done beforehand) and
    add + search. Interleaved rounds; medians; database GB/s against the measured copy rate."""
    n, d, k, qs = 1000000, 128, 10, (1, 16)
    db_bytes = n * d * 4
    pattern = f"random_l2sq(_index)?/n:{n}/d:{d}/q:({'|'.join(map(str, qs))})/k:{k}/"
    times, copies, context = {}, [], None
    path = os.path.join(ROOT, "bench", "results", "tmp", "peers-small.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for rep in range(args.repeats):
        context, res = run_fastknn(args.bench, pattern, args.threads, ours_env)
        copies.append(float(context.get("copy_bandwidth_GBps", "nan")))
        for name, b in res.items():
            q = int(name.split("/q:")[1].split("/")[0])
            who = "index" if name.startswith("random_l2sq_index") else "search"
            times.setdefault((who, q), []).append(b["real_time"] / 1e3)
        for q in qs:
            subprocess.run([sys.executable, os.path.join(HERE, "peers", "peers.py"), "--dataset",
                            "random", "--n", str(n), "--d", str(d), "--q", str(q), "--k", str(k),
                            "--peer", "faiss-flat", "--threads", str(args.threads), "--repeats",
                            "3", "--json", path], check=True, capture_output=True, text=True,
                           env=peer_env)
            with open(path) as f:
                r = json.load(f)["results"][0]
            times.setdefault(("faiss", q), []).append(r["median_s"])
            times.setdefault(("faiss-add", q), []).append(r["build_s"])
        print(f"round {rep + 1}/{args.repeats} done", file=sys.stderr)
    copy = statistics.median(copies)
    rows = []
    for q in qs:
        m = {w: statistics.median(times[(w, q)]) for w in ("search", "index", "faiss", "faiss-add")}
        rows.append({"q": q, "fastknn_search_s": m["search"], "fastknn_index_s": m["index"],
                     "faiss_search_s": m["faiss"], "faiss_add_s": m["faiss-add"],
                     "index_GBps": db_bytes / m["index"] / 1e9,
                     "search_GBps": db_bytes / m["search"] / 1e9,
                     "index_x_faiss": m["faiss"] / m["index"],
                     "search_x_faiss_add_search": (m["faiss"] + m["faiss-add"]) / m["search"]})
    header = ["Q", "fastknn Index.search s", "GB/s", "fastknn search s", "GB/s", "FAISS search s",
              "FAISS add s", "Index x FAISS search", "search x FAISS add+search"]
    table = markdown_table(header, [[
        str(r["q"]), f"{r['fastknn_index_s'] * 1e3:.1f} ms", f"{r['index_GBps']:.1f}",
        f"{r['fastknn_search_s'] * 1e3:.1f} ms", f"{r['search_GBps']:.1f}",
        f"{r['faiss_search_s'] * 1e3:.1f} ms", f"{r['faiss_add_s'] * 1e3:.1f} ms",
        f"{r['index_x_faiss']:.2f}", f"{r['search_x_faiss_add_search']:.2f}"] for r in rows])
    commit = git_commit()
    info = (f"Small batches: Q queries x N = {n} random rows x D = {d} (uniform [0, 1), float32, "
            f"{db_bytes / 1e6:.0f} MB), L2, k = {k}, {args.threads} threads, median of "
            f"{args.repeats} interleaved rounds (FAISS: median of 3 searches per round). fastknn "
            f"{context.get('fastknn_version')} ({context.get('backend')}) at commit {commit}; "
            f"copy bandwidth (median of the rounds' best of 3, bytes copied per second) "
            f"{copy:.1f} GB/s; GB/s columns: database bytes / time. fastknn search includes its "
            f"pass over the database; Index.search and FAISS search do not (Index built / "
            f"index.add run beforehand).")
    save_results(args.out, "cpu-small-batch", info, table, {
        "context": context, "copy_bandwidth_GBps": copies, "rows": rows,
        "raw": {f"{w}/q{q}": v for (w, q), v in times.items()}})


def sweep(args, env, base):
    """fastknn alone over Q, N, D and k; a PNG of throughput."""
    _, fash = run_fastknn(args.bench, "fashion_mnist_l2sq/", args.threads, env)
    _, rnd = run_fastknn(args.bench, "random_l2sq/", args.threads, env)
    with open(base + "-sweep.json", "w") as f:
        json.dump({"fashion": fash, "random": rnd}, f, indent=1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def arg(name, key):
        return int(name.split(f"/{key}:")[1].split("/")[0])

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for q in (100, 1000, 10000):
        pts = sorted((arg(n, "k"), b["queries_per_s"]) for n, b in fash.items() if arg(n, "q") == q)
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"Q={q}")
    axes[0].set(xscale="log", xlabel="k", ylabel="queries/s", title="Fashion-MNIST: k")
    axes[0].legend()
    sel = [(arg(n, "q"), b) for n, b in rnd.items() if arg(n, "n") == 100000 and arg(n, "d") == 128]
    sel.sort(key=lambda t: t[0])
    axes[1].plot([s[0] for s in sel], [s[1]["GFLOPs"] for s in sel], "o-")
    axes[1].set(xscale="log", xlabel="Q", ylabel="GFLOP/s", title="random N=1e5 D=128: Q")
    sel = [(arg(n, "n"), b) for n, b in rnd.items() if arg(n, "q") == 1000 and arg(n, "d") == 128]
    sel.sort(key=lambda t: t[0])
    axes[2].plot([s[0] for s in sel], [s[1]["real_time"] / 1e3 for s in sel], "o-")
    axes[2].set(xscale="log", yscale="log", xlabel="N", ylabel="seconds", title="random Q=1000 D=128: N")
    sel = [(arg(n, "d"), b) for n, b in rnd.items() if arg(n, "q") == 1000 and arg(n, "n") == 100000]
    sel.sort(key=lambda t: t[0])
    axes[3].plot([s[0] for s in sel], [s[1]["GFLOPs"] for s in sel], "o-")
    axes[3].set(xscale="log", xlabel="D", ylabel="GFLOP/s", title="random N=1e5 Q=1000: D")
    fig.suptitle(f"fastknn {args.threads} threads (OpenMP)")
    fig.tight_layout()
    fig.savefig(base + "-sweep.png", dpi=80)
    print(f"wrote {base}-sweep.json and .png")


if __name__ == "__main__":
    main()
