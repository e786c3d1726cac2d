#!/usr/bin/python3
"""Checks a CTest JUnit report against the list of tests the repository expects, so that no test
can vanish or be quietly skipped: every expected test registered (and nothing unexpected), every
one run and passed, except those for an instruction set this CPU lacks, which must be listed as
not run ("Disabled") and are named. Prints the search fuzzers' figures (seed, searches).

usage: check_tests.py REPORT.xml tests/expected_tests.txt
"""

import sys
import xml.etree.ElementTree as ET

# The CPU flags (/proc/cpuinfo) each instruction-set test needs; a test disabled although the CPU
# has them is an error, as is any other test that did not run.
NEEDS = {
    "fastknn_tests_isa_avx2": {"avx2", "fma", "bmi2"},
    "fastknn_tests_isa_avx512": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"},
    "fastknn_tests_isa_avx512vnni": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd",
                                     "avx512_vnni"},
    "fastknn_isa_kernels_avx2": {"avx2", "fma"},
    "fastknn_isa_kernels_avx512": {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"},
}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    report, listing = sys.argv[1], sys.argv[2]
    expected = [l.strip() for l in open(listing) if l.strip() and not l.startswith("#")]
    root = ET.parse(report).getroot()
    cases = {c.get("name"): c.get("status") for c in root.iter("testcase")}
    # The search fuzzers' figures (seed, searches, refusals) for the log: CTest shows a passing
    # test's output nowhere else.
    for c in root.iter("testcase"):
        if c.get("name", "").startswith("fuzz_search"):
            out = c.findtext("system-out") or ""
            for line in out.splitlines():
                if line.startswith("fuzz_search: "):
                    print(f"{c.get('name')}: {line[len('fuzz_search: '):]}")
    flags = cpu_flags()
    problems = []
    missing = [t for t in expected if t not in cases]
    extra = sorted(t for t in cases if t not in expected)
    if missing:
        problems.append(f"expected (in {listing}) but not registered: "
                        + ", ".join(missing))
    if extra:
        problems.append(f"registered but not in {listing} (add them there): " + ", ".join(extra))
    passed, not_run = [], []
    for name, status in cases.items():
        if status == "run":
            passed.append(name)
        elif status == "disabled" and name in NEEDS and not NEEDS[name] <= flags:
            not_run.append(name)
        elif status == "disabled":
            problems.append(f"{name}: disabled, although this CPU can run it")
        else:
            problems.append(f"{name}: {status} (every test must run and pass)")
    print(f"tests: {len(expected)} expected, {len(cases)} registered, {len(passed)} run and "
          f"passed, {len(not_run)} not run (this CPU lacks their instruction set): "
          + (", ".join(sorted(not_run)) or "none"))
    for p in problems:
        print("  FAIL  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
