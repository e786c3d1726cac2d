#!/usr/bin/env bash
# Build times as a benchmark (issue #29): from a clean clone of HEAD in a temporary folder,
#   1. configure + build of the README's test command (the openmp preset, every target),
#   2. the same preset's command-line tool alone (the demo build preset),
#   3. examples/consumer's one file against the installed package (compile and link),
# each as wall and CPU seconds; prints a Markdown table. Usage: tools/build_times.sh [OUT.md]
# (CUDA: run the cuda preset the same way where a CUDA Kokkos is at hand; docs/cuda.md.)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/dev/stdout}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/src"
cd "$work/src"
commit=$(git rev-parse --short HEAD)
cpu=$(grep -q avx512f /proc/cpuinfo && echo "AVX-512" || echo "AVX2 (no AVX-512)")

timed() { # label, command...: appends "| label | wall | cpu |"
  local label=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >"$work/log" 2>&1 || { tail -30 "$work/log"; exit 1; }
  read -r wall user sys <"$work/time"
  rows+=("| $label | $wall | $(echo "$user + $sys" | bc) |")
}

rows=()
timed "configure + build, openmp preset, every target (README test command)" \
  bash -c "cmake --preset openmp && cmake --build --preset openmp"
rm -rf build
timed "configure + build, the CLI alone (demo build preset)" \
  bash -c "cmake --preset openmp && cmake --build --preset demo"
cmake --build --preset openmp --target fastknn >/dev/null
cmake --install build/openmp --prefix "$work/prefix" >/dev/null
cmake -S examples/consumer -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
timed "examples/consumer (one file, against the installed package)" \
  cmake --build "$work/consumer"

{
  echo "# Build times at $commit, $(nproc) cores, $cpu, $(date -u +%F)"
  echo
  echo "| what | wall s | CPU s |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$out"
cat "$out" >&2
