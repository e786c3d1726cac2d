#!/usr/bin/python3
"""The seed experiment, reproduced in one go: classify the 10,000 test images of an
MNIST-format data set against the 60,000 training images with fastknn (configured backend) and
with scikit-learn's KNeighborsClassifier (algorithm='brute' and the default 'auto'), same k and
metric, and print accuracy, seconds and the speed-up in the style of the original experiment
("Learning to Remember Rare Events": 0.18 s on a GPU vs ~560 s estimated for scikit-learn).

scikit-learn runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from its environment only
(this machine sets them for old OpenBLAS builds; they halve a current one's speed).
"""
import argparse
import datetime
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SKLEARN_CHILD = r"""
import gzip, json, os, sys, time
import numpy as np
from sklearn.neighbors import KNeighborsClassifier
d, algo, k, metric, limit, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
def idx(name):
    for cand in (name + '.gz', name):
        p = os.path.join(d, cand)
        if os.path.exists(p):
            raw = gzip.open(p).read() if cand.endswith('.gz') else open(p, 'rb').read()
            nd = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], 'big') for i in range(nd)]
            return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)
    raise SystemExit('missing ' + name)
xt = idx('train-images-idx3-ubyte').reshape(-1, 784).astype(np.float32)
yt = idx('train-labels-idx1-ubyte')
xq = idx('t10k-images-idx3-ubyte').reshape(-1, 784).astype(np.float32)[:limit]
yq = idx('t10k-labels-idx1-ubyte')[:limit]
clf = KNeighborsClassifier(n_neighbors=k, algorithm=algo, metric=metric, n_jobs=threads).fit(xt, yt)
t0 = time.perf_counter(); pred = clf.predict(xq); s = time.perf_counter() - t0
print(json.dumps({'seconds': s, 'accuracy': float((pred == yq).mean()), 'algorithm_used': clf._fit_method}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "openmp", "tools", "fastknn"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("-k", type=int, default=1)
    ap.add_argument("--metric", default="l2", choices=["l2", "cosine", "l1"])
    ap.add_argument("--limit-test", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-auto", action="store_true", help="do not run algorithm='auto'")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        js = os.path.join(tmp, "fastknn.json")
        subprocess.run([args.cli, "classify", "--data", args.data, "-k", str(args.k), "--metric",
                        args.metric, "--limit-test", str(args.limit_test), "--threads",
                        str(args.threads), "--quiet", "--json", js], check=True,
                       env=dict(os.environ, OMP_PROC_BIND="false"))
        with open(js) as f:
            ours = json.load(f)

    sk_metric = {"l2": "euclidean", "cosine": "cosine", "l1": "manhattan"}[args.metric]
    peer_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    peers = {}
    for algo in ["brute"] + ([] if args.skip_auto or args.metric == "cosine" else ["auto"]):
        out = subprocess.run([sys.executable, "-c", SKLEARN_CHILD, args.data, algo, str(args.k),
                              sk_metric, str(args.limit_test), str(args.threads)],
                             check=True, capture_output=True, text=True, env=peer_env).stdout
        peers[algo] = json.loads(out.strip().splitlines()[-1])

    n_test = ours["n_test"]
    lines = [f"Data: {args.data} ({ours['n_train']} train x {n_test} test x {ours['dim']} dims), "
             f"{args.k}-NN, metric {args.metric}, {args.threads} threads",
             f"fastknn ({ours['backend']}): accuracy {ours['accuracy']:.4f}, "
             f"{ours['seconds']:.2f} s ({ours['queries_per_second']:.0f} queries/s)"]
    for algo, r in peers.items():
        lines.append(f"scikit-learn KNeighborsClassifier(algorithm='{algo}' -> {r['algorithm_used']}): "
                     f"accuracy {r['accuracy']:.4f}, {r['seconds']:.2f} s; "
                     f"fastknn is {r['seconds'] / ours['seconds']:.1f}x faster")
    lines.append("Seed experiment (2017, MNIST, TITAN X Pascal vs scikit-learn 0.18 kd-tree): "
                 "0.18 s vs ~560 s (extrapolated)")
    print("\n".join(lines))
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"{datetime.date.today()}-{commit}-seed-k{args.k}-{args.metric}")
    with open(base + ".json", "w") as f:
        json.dump({"fastknn": ours, "sklearn": peers, "threads": args.threads, "commit": commit}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write("\n\n".join(lines) + "\n")
    print(f"wrote {base}.json and .md")


if __name__ == "__main__":
    main()
