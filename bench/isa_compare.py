#!/usr/bin/python3
"""Interleaved timing of two fastknn_bench binaries on the same Fashion-MNIST jobs, e.g. the
run-time-dispatched library against a -march=native header-only build of an earlier commit
(issue #29's goal: within 3 %), or two FASTKNN_ISA variants of one binary. Prints the median
time of each job per binary and the ratio B / A.

    bench/isa_compare.py --a OLD_BENCH --b NEW_BENCH [--rounds 5] [--threads 2]
    bench/isa_compare.py --a BENCH --a-env FASTKNN_ISA=generic --b BENCH
"""
import argparse
import json
import os
import statistics
import subprocess

JOBS = [f"fashion_mnist_{job}/q:10000/k:{k}/" for job in ("l2sq", "l2sq_floatpath", "std_l2sq")
        for k in (1, 10, 100)]


def run(bench, env_extra, threads, jobs):
    env = dict(os.environ)
    for item in env_extra:
        key, value = item.split("=", 1)
        env[key] = value
    pattern = "^(" + "|".join(jobs) + ")"
    out = subprocess.run([bench, f"--benchmark_filter={pattern}", "--benchmark_format=json",
                          f"--kokkos-num-threads={threads}"], check=True, capture_output=True,
                         text=True, env=env).stdout
    data = json.loads(out)
    times = {}
    for b in data["benchmarks"]:
        name = b["name"].split("/iterations")[0] + "/"
        times[name] = b["real_time"] if b["time_unit"] == "ms" else b["real_time"] / 1e6
    return data["context"].get("isa", "?"), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--a-env", action="append", default=[])
    ap.add_argument("--b-env", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="run the jobs whose name contains this")
    args = ap.parse_args()
    jobs = [j for j in JOBS if not args.only or args.only in j]
    got = {"a": {}, "b": {}}
    isa = {}
    for _ in range(args.rounds):  # interleaved: a, b, a, b, ...
        for side in ("a", "b"):
            isa[side], times = run(getattr(args, side), getattr(args, f"{side}_env"), args.threads,
                                   jobs)
            for job, t in times.items():
                got[side].setdefault(job, []).append(t)
    print(f"A: {args.a} {' '.join(args.a_env)} (kernels {isa['a']})")
    print(f"B: {args.b} {' '.join(args.b_env)} (kernels {isa['b']})")
    print(f"medians of {args.rounds} interleaved rounds, {args.threads} threads")
    print("| job | A ms | B ms | B / A |")
    print("|---|---|---|---|")
    for job in jobs:
        if job in got["a"] and job in got["b"]:
            a = statistics.median(got["a"][job])
            b = statistics.median(got["b"][job])
            print(f"| {job} | {a:.1f} | {b:.1f} | {b / a:.3f} |")


if __name__ == "__main__":
    main()
