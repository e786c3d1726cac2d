#!/usr/bin/env bash
# Configures (every optional part required), builds and runs the whole test suite with the
# default (openmp) preset, then checks that every expected test ran and passed
# (tests/expected_tests.txt; a test for an instruction set this CPU lacks is named as not run).
# Arguments go to ctest (e.g. -j2, or -R pattern: a selection skips the count check).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset openmp -DFASTKNN_REQUIRE_ALL=ON >/dev/null
cmake --build --preset openmp
for a in "$@"; do
  case "$a" in
  -R | -E | -L | -LE | -I | -U | --tests-regex* | --exclude-regex* | --label-regex* | \
    --label-exclude* | --tests-information* | --union | -N | --show-only*)
    exec ctest --preset openmp "$@"
    ;;
  esac
done
report="$PWD/build/openmp/ctest-report.xml"
rm -f "$report"
status=0
ctest --preset openmp --output-junit "$report" "$@" || status=$?
/usr/bin/python3 tools/check_tests.py "$report" tests/expected_tests.txt || status=1
exit $status
