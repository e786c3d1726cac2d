#!/usr/bin/env bash
# Configures, builds and runs the whole test suite with the default (openmp) preset.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset openmp >/dev/null
cmake --build --preset openmp
ctest --preset openmp "$@"
