#!/usr/bin/python3
"""Tests of `mpirun -np P fastknn classify|search`: output files byte-identical to the
single-process run (and the search's indices to a numpy brute force), and failures on one rank
(truncated file, NaN in one rank's part, k too large) ending every rank with one message, a
non-zero exit status and no output file, within a timeout (a hang fails).

usage: test_cli_mpi.py PATH/TO/fastknn MPIEXEC [MPIEXEC FLAGS...] [--data DIR]
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

FAILURES = []
TIMEOUT = 240


def check(cond, what):
    print(f"  {'ok  ' if cond else 'FAIL'}  {what}")
    if not cond:
        FAILURES.append(what)


def run(cmd):
    """Runs a command; returns (returncode, stdout, stderr), or (None, '', 'timeout')."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timeout"
    return p.returncode, p.stdout, p.stderr


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def main():
    args = sys.argv[1:]
    data = "/usr/share/datasets/fashion-mnist"
    if "--data" in args:
        i = args.index("--data")
        data = args[i + 1]
        del args[i : i + 2]
    exe, mpiexec = args[0], args[1:]

    def mpi(np_, *rest):
        return run([*mpiexec, "-np", str(np_), exe, *map(str, rest), "--threads", "1"])

    tmp = tempfile.mkdtemp(prefix="fastknn_mpi_")
    rng = np.random.default_rng(7)
    n, nq, d = 503, 61, 17
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[100::97] = x[3]  # duplicates in every rank's part: ties across ranks
    q = rng.standard_normal((nq, d)).astype(np.float32)
    q[0] = x[250]
    xp, qp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "q.npy")
    np.save(xp, x)
    np.save(qp, q)

    print("search: every rank count gives the single-process files")
    for metric, k, self_ in [("l2", 7, False), ("cosine", 12, False), ("l1", 200, False),
                             ("sqeuclidean", 5, True), ("ip", 3, False)]:
        io = ["--exclude-self"] if self_ else ["--queries", qp]
        base = [os.path.join(tmp, f"{metric}_1_{s}.npy") for s in ("i", "d")]
        rc, _, err = run([exe, "search", "--database", xp, *io, "-k", str(k), "--metric", metric,
                          "--out-indices", base[0], "--out-distances", base[1], "-q",
                          "--threads", "1"])
        check(rc == 0, f"{metric} k={k}: single-process search ({err.strip()[:200]})")
        if metric == "l2" and rc == 0:
            dist = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
            ref = np.lexsort((np.broadcast_to(np.arange(n), dist.shape), dist), axis=1)[:, :k]
            check(np.array_equal(np.load(base[0]), ref), "l2: indices equal numpy's brute force")
        for ranks in (2, 3, 4):
            out = [os.path.join(tmp, f"{metric}_{ranks}_{s}.npy") for s in ("i", "d")]
            rc, _, err = mpi(ranks, "search", "--database", xp, *io, "-k", k, "--metric", metric,
                             "--out-indices", out[0], "--out-distances", out[1], "-q")
            ok = rc == 0 and all(same_bytes(a, b) for a, b in zip(base, out))
            check(ok, f"{metric} k={k} exclude_self={self_}: -np {ranks} byte-identical "
                      f"({err.strip()[-200:] if rc != 0 else ''})")

    print("search --radius: every rank count gives the single-process files")
    xi = np.round(x * 2).astype(np.float32)  # integer values: rows exactly on the radius
    qi = np.round(q * 2).astype(np.float32)
    xip, qip = os.path.join(tmp, "xi.npy"), os.path.join(tmp, "qi.npy")
    np.save(xip, xi)
    np.save(qip, qi)
    for metric, radius, self_ in [("sqeuclidean", 70, False), ("l1", 22, True), ("ip", 6, False)]:
        io = ["--exclude-self"] if self_ else ["--queries", qip]
        names = ("o", "i", "d")
        base = [os.path.join(tmp, f"r{metric}_1_{s}.npy") for s in names]
        rc, _, err = run([exe, "search", "--database", xip, *io, "--radius", str(radius),
                          "--metric", metric, "--out-offsets", base[0], "--out-indices", base[1],
                          "--out-distances", base[2], "-q", "--threads", "1"])
        check(rc == 0, f"--radius {metric}: single-process search ({err.strip()[:200]})")
        if rc == 0:
            off, ind = np.load(base[0]), np.load(base[1])
            check(off[-1] > len(off) and np.diff(off).min() < np.diff(off).max(),
                  f"--radius {metric}: varying row counts ({off[-1]} pairs)")
            if metric == "sqeuclidean":
                dist = ((qi[:, None, :].astype(np.float64) - xi[None, :, :]) ** 2).sum(-1)
                want = [np.lexsort((np.flatnonzero(r <= radius), r[r <= radius])) for r in dist]
                want = np.concatenate([np.flatnonzero(r <= radius)[w] for r, w in zip(dist, want)])
                check(np.array_equal(ind, want), "--radius: indices equal numpy's brute force")
        for ranks in (2, 3):
            out = [os.path.join(tmp, f"r{metric}_{ranks}_{s}.npy") for s in names]
            rc, _, err = mpi(ranks, "search", "--database", xip, *io, "--radius", radius,
                             "--metric", metric, "--out-offsets", out[0], "--out-indices", out[1],
                             "--out-distances", out[2], "-q")
            ok = rc == 0 and all(same_bytes(a, b) for a, b in zip(base, out))
            check(ok, f"--radius {metric} exclude_self={self_}: -np {ranks} byte-identical "
                      f"({err.strip()[-200:] if rc != 0 else ''})")

    print("search: failures on one rank")
    bad = os.path.join(tmp, "truncated.npy")
    with open(xp, "rb") as f:
        raw = f.read()
    with open(bad, "wb") as f:
        f.write(raw[: len(raw) - 40])
    nan = x.copy()
    nan[450, 3] = np.nan  # in the last rank's part with 3 ranks
    nanp = os.path.join(tmp, "nan.npy")
    np.save(nanp, nan)
    for name, db, k, needle in [("truncated database", bad, 3, "truncated"),
                                ("NaN in rank 2's part", nanp, 3, "rank 2"),
                                ("k above N", xp, n + 1, "larger than the global database")]:
        out = os.path.join(tmp, "fail_i.npy")
        rc, _, err = mpi(3, "search", "--database", db, "--queries", qp, "-k", k,
                         "--out-indices", out, "-q")
        check(rc is not None, f"{name}: no hang")
        check(rc not in (None, 0), f"{name}: non-zero exit")
        check(needle in err, f"{name}: the message says '{needle}' ({err.strip()[-200:]})")
        check(err.count("fastknn: error") == 1, f"{name}: one message, from rank 0")
        check(not os.path.exists(out) and not os.path.exists(out + ".partial"),
              f"{name}: no output file")

    print("classify on Fashion-MNIST: -np 3 gives the single-process predictions")
    if not os.path.isdir(data):
        if os.environ.get("FASTKNN_REQUIRE_TEST_DATA") == "1":
            check(False, f"{data} is missing (FASTKNN_REQUIRE_TEST_DATA=1)")
        else:
            print(f"  skip  {data} not installed")
    else:
        for extra in (["-k", "5", "--weights", "distance"], ["-k", "3", "--metric", "cosine"]):
            one, three = os.path.join(tmp, "p1.npy"), os.path.join(tmp, "p3.npy")
            common = ["classify", "--data", data, "--limit-test", "1500", "-q", *extra]
            rc1, out1, _ = run([exe, *common, "--save-predictions", one, "--threads", "2"])
            rc3, out3, err3 = mpi(3, *common, "--save-predictions", three)
            check(rc1 == 0 and rc3 == 0, f"{' '.join(extra)}: both runs succeed "
                                         f"({err3.strip()[-200:]})")
            check(out1 == out3 and out1.startswith("accuracy"),
                  f"{' '.join(extra)}: same accuracy line ({out1.strip()} / {out3.strip()})")
            check(rc1 == 0 and rc3 == 0 and same_bytes(one, three),
                  f"{' '.join(extra)}: predictions byte-identical")

    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
