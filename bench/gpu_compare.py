#!/usr/bin/env python3
"""The device check's peer and report (tools/device_check.sh).

Runs torch's brute-force KNN (mm + topk and cdist + topk, float32, TF32 off) on the jobs
fastknn_gpu_bench timed, in the same run and on the same device, and writes results.md and
results.json (card, clocks, commit, both sides, ratios, index agreement on Fashion-MNIST).

    gpu_compare.py --fastknn fastknn.json --out-dir DIR [--fashion DIR] [--indices-dir DIR]
                   [--card card.txt] [--commit SHA] [--repeats R] [--quick]

Without torch it still writes the report (fastknn only) and says so; without a GPU torch runs
on the CPU and the report says that too.
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np


def load_idx_images(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 16 or raw[2] != 0x08 or raw[3] != 3:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes with 3 dimensions")
    n, rows, cols = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    data = np.frombuffer(raw, dtype=np.uint8, offset=16)
    if data.size != n * rows * cols:
        raise ValueError(f"{path}: truncated ({data.size} of {n * rows * cols} bytes)")
    return data.reshape(n, rows * cols).astype(np.float32)


def find(dirname, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(dirname, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{stem}[.gz] not in {dirname}")


def torch_jobs(args, fastknn_jobs):
    try:
        import torch
    except ImportError as e:
        print(f"SKIPPED torch peer: {e}")
        return None, "absent"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":
        print("torch: no CUDA device, the peer runs on the CPU")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def knn(x, xn, q, k, how):
        # Query batches keep the distance block near 4 GB (GPU) or 256 MB (CPU).
        limit = (4 << 30) if dev.type == "cuda" else (256 << 20)
        batch = max(1, min(q.shape[0], limit // (4 * x.shape[0])))
        out = []
        for i in range(0, q.shape[0], batch):
            qb = q[i:i + batch]
            if how == "mm":
                d = (qb * qb).sum(1, keepdim=True) + xn[None, :] - 2.0 * (qb @ x.T)
            else:
                d = torch.cdist(qb, x)
            out.append(torch.topk(d, k, dim=1, largest=False, sorted=True).indices)
        return torch.cat(out)

    def timed(x, q, k, how):
        xn = (x * x).sum(1)
        found = knn(x, xn, q, k, how)  # warm-up
        sync()
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            found = knn(x, xn, q, k, how)
            sync()
            runs.append(time.perf_counter() - t0)
        return runs, found

    results = []
    data = {}
    for job in fastknn_jobs:
        key = (job["job"], job["n"], job["q"], job["d"])
        if key not in data:
            if job["job"] == "fashion_l2sq":
                train = load_idx_images(find(args.fashion, "train-images-idx3-ubyte"))
                test = load_idx_images(find(args.fashion, "t10k-images-idx3-ubyte"))
                data[key] = (torch.from_numpy(train[:job["n"]]).to(dev),
                             torch.from_numpy(test[:job["q"]]).to(dev))
            else:
                g = torch.Generator(device="cpu").manual_seed(1)
                x = torch.rand(job["n"], job["d"], generator=g).to(dev)
                q = torch.rand(job["q"], job["d"], generator=g).to(dev)
                data = {k2: v for k2, v in data.items() if k2[0] != "random_l2sq"}
                data[key] = (x, q)
        x, q = data[key]
        for how in ("mm", "cdist"):
            try:
                runs, found = timed(x, q, job["k"], how)
            except RuntimeError as e:  # out of memory, topk limits
                print(f"SKIPPED torch {how} {job['job']} k={job['k']}: {e}")
                continue
            entry = dict(job=job["job"], peer=f"torch_{how}_topk", n=job["n"], q=job["q"],
                         d=job["d"], k=job["k"], median_s=statistics.median(runs), runs_s=runs)
            path = os.path.join(args.indices_dir or "", f"fastknn_fashion_k{job['k']}.npy")
            if job["job"] == "fashion_l2sq" and args.indices_dir and os.path.exists(path):
                ours = np.load(path)
                theirs = found.cpu().numpy()
                entry["same_top1"] = float(np.mean(ours[:, 0] == theirs[:, 0]))
                entry["same_set"] = float(np.mean([len(set(a) ^ set(b)) == 0
                                                   for a, b in zip(ours, theirs)]))
            results.append(entry)
            print(json.dumps(entry))
    return results, f"{torch.__version__} on {dev.type}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fastknn", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--indices-dir", default="")
    p.add_argument("--card", default="")
    p.add_argument("--commit", default="unknown")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    with open(args.fastknn) as f:
        ours = json.load(f)
    peers, torch_note = torch_jobs(args, ours["jobs"])
    card = open(args.card).read().strip() if args.card and os.path.exists(args.card) else "unknown"
    report = dict(commit=args.commit, card=card, fastknn_backend=ours["backend"],
                  torch=torch_note, repeats=args.repeats, fastknn=ours["jobs"], peers=peers or [])
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [f"# Device check at {args.commit}", "", "Card and clocks:", "", "```", card, "```", "",
             f"fastknn on `{ours['backend']}`, torch {torch_note}; medians of {args.repeats} runs, "
             "data in device memory, L2 squared, float32."
             + ("" if ours.get("complete", True) else
                " **INCOMPLETE: the fastknn driver stopped before its last job (time limit?); "
                "the jobs below are those it finished.**"), "",
             "| job | N | Q | D | k | fastknn (s) | fallbacks | best torch (s) | torch / fastknn |",
             "|---|---|---|---|---|---|---|---|---|"]
    for job in ours["jobs"]:
        same = [e for e in (peers or []) if (e["job"], e["n"], e["q"], e["d"], e["k"]) ==
                (job["job"], job["n"], job["q"], job["d"], job["k"])]
        best = min((e["median_s"] for e in same), default=None)
        ratio = f"{best / job['median_s']:.2f}" if best else "-"
        lines.append(f"| {job['job']} | {job['n']} | {job['q']} | {job['d']} | {job['k']} | "
                     f"{job['median_s']:.4f} | {job['exact_fallbacks']} | "
                     f"{'-' if best is None else f'{best:.4f}'} | {ratio} |")
    agree = [e for e in (peers or []) if "same_top1" in e]
    if agree:
        lines += ["", "Agreement with torch (float32 mm is not exact; near-ties may differ):", ""]
        lines += [f"- {e['peer']} k={e['k']}: same top-1 {e['same_top1']:.4f}, same set "
                  f"{e['same_set']:.4f}" for e in agree]
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
