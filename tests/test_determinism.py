#!/usr/bin/python3
"""`fastknn search` gives byte-identical .npy outputs with 1 and 2 threads, for every metric,
with and without --exclude-self, on data that contains exact duplicates (ties).

usage: test_determinism.py PATH/TO/fastknn
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    exe = sys.argv[1]
    failures = 0
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        db = rng.random((4000, 33), dtype=np.float32)
        db[1000:1100] = db[0:100]  # exact duplicates -> ties
        q = rng.random((300, 33), dtype=np.float32)
        q[:50] = db[:50]
        np.save(os.path.join(tmp, "db.npy"), db)
        np.save(os.path.join(tmp, "q.npy"), q)
        for metric in ("l2", "sqeuclidean", "l1", "cosine", "ip"):
            for self_mode in (False, True):
                outs = []
                for threads in (1, 2):
                    idx = os.path.join(tmp, f"i{threads}.npy")
                    dist = os.path.join(tmp, f"d{threads}.npy")
                    cmd = [exe, "search", "--database", os.path.join(tmp, "db.npy"), "-k", "17",
                           "--metric", metric, "--threads", str(threads), "--out-indices", idx,
                           "--out-distances", dist]
                    cmd += ["--exclude-self"] if self_mode else ["--queries", os.path.join(tmp, "q.npy")]
                    subprocess.run(cmd, check=True, capture_output=True,
                                   env=dict(os.environ, OMP_PROC_BIND="false"))
                    outs.append((open(idx, "rb").read(), open(dist, "rb").read()))
                same = outs[0] == outs[1]
                print(f"  {'ok  ' if same else 'FAIL'}  {metric} exclude_self={self_mode}: 1 vs 2 threads identical")
                failures += not same
    print(f"{10 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
