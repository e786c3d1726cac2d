#!/usr/bin/env bash
# One-shot check of fastknn on a machine with an NVIDIA GPU (no network needed):
#
#   tools/device_check.sh KOKKOS_CUDA_PREFIX OUT_DIR [FASHION_DIR]
#
# 1. builds fastknn with the cuda preset on all cores (tests, CLI, fastknn_gpu_bench);
# 2. runs the whole CTest suite (every test on Kokkos::Cuda and on the host spaces);
# 3. times fastknn on the GPU (Fashion-MNIST 10,000 x 60,000 x 784 for k = 1, 10, 100, 1024,
#    4096; 10^6 x 128 random rows for Q = 1, 16, 10,000) and torch (mm / cdist + topk, float32,
#    TF32 off) in the same run;
# 4. writes OUT_DIR/{card.txt, build.log, ctest.log, fastknn.json, results.md, results.json}
#    and says at the end what it skipped.
#
# KOKKOS_CUDA_PREFIX: an installed Kokkos with the CUDA backend (its bin/nvcc_wrapper is the
# compiler). FASHION_DIR (default /usr/share/datasets/fashion-mnist): the four IDX files,
# gzipped or not. Catch2 v3 and Eigen 3 are needed for the tests; where the machine lacks them,
# FASTKNN_DEVICE_DEPS may name a folder holding their CMake packages (share/eigen3, lib/cmake
# /Catch2 and their headers), which goes on CMAKE_PREFIX_PATH. Each step has a time limit so that
# the whole check ends within 8 minutes on 16 cores (FASTKNN_DEVICE_BUILD_SECONDS, default 300,
# sets the build's); a step that fails or runs out is reported and the next one still runs.
set -u
if [ $# -lt 2 ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
kokkos=$(cd "$1" && pwd) || { echo "device_check: no such folder $1"; exit 2; }
mkdir -p "$2" && out=$(cd "$2" && pwd)
fashion=${3:-/usr/share/datasets/fashion-mnist}
repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/device-check"
skipped=()
failed=()
start=$(date +%s)
say() { echo "== device_check [$(( $(date +%s) - start )) s] $*"; }

# The card, its clocks and the software, first: they go with every number.
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with local changes)')"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu --format=csv
  else
    echo "nvidia-smi: absent"
  fi
  echo "nvcc: $( (nvcc --version 2>/dev/null || "$kokkos/bin/nvcc_wrapper" --version 2>/dev/null) | tail -n 2 | head -n 1)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "kokkos: $kokkos"
} > "$out/card.txt" 2>&1
cat "$out/card.txt"
gpu=yes
command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 || gpu=no
[ "$gpu" = no ] && skipped+=("no NVIDIA GPU visible: the CUDA tests and the GPU timings cannot run")

say "configure (cuda preset)"
export Kokkos_ROOT="$kokkos"
prefix_path="$kokkos"
[ -n "${FASTKNN_DEVICE_DEPS:-}" ] && prefix_path="$prefix_path;$FASTKNN_DEVICE_DEPS"
tests=ON
if ! timeout 120 cmake --preset cuda -B "$build" -DCMAKE_PREFIX_PATH="$prefix_path" \
    -DFASTKNN_ENABLE_PYTHON=OFF -DFASTKNN_ENABLE_MPI=OFF -DFASTKNN_GENERIC_TESTS=OFF \
    -DFASTKNN_GPU_SHAPED_TESTS=OFF > "$out/build.log" 2>&1; then
  say "configure failed with the tests; trying without them (see build.log)"
  skipped+=("tests: configure failed with them (Catch2 v3 / Eigen 3 missing? set FASTKNN_DEVICE_DEPS)")
  tests=OFF
  timeout 120 cmake --preset cuda -B "$build" -DCMAKE_PREFIX_PATH="$prefix_path" \
    -DFASTKNN_ENABLE_PYTHON=OFF -DFASTKNN_ENABLE_MPI=OFF -DFASTKNN_ENABLE_TESTS=OFF \
    >> "$out/build.log" 2>&1 || { failed+=("configure"); }
fi

targets="fastknn_cli fastknn_gpu_bench"
# Without a GPU nothing can run: the CLI and the driver are built as a compile check only.
[ "$tests" = ON ] && [ "$gpu" = yes ] && targets="$targets fastknn_tests"
[ "$gpu" = no ] && skipped+=("fastknn_tests not built (nothing can run it without a GPU)")
build_seconds=${FASTKNN_DEVICE_BUILD_SECONDS:-300}
say "build: $targets on $(nproc) cores (limit $build_seconds s)"
if ! timeout "$build_seconds" cmake --build "$build" -j "$(nproc)" --target $targets \
    >> "$out/build.log" 2>&1; then
  failed+=("build (see build.log; the first error: $(grep -m1 -E 'error' "$out/build.log"))")
fi

if [ "$tests" = ON ] && [ -x "$build/tests/fastknn_tests" ]; then
  if [ "$gpu" = yes ]; then
    say "ctest (Kokkos::Cuda and the host spaces)"
    FASTKNN_FASHION_DIR="$fashion" timeout 150 ctest --test-dir "$build" -R '^fastknn_tests' \
      -LE slow --output-on-failure --timeout 140 > "$out/ctest.log" 2>&1 ||
      failed+=("ctest (see ctest.log: $(grep -E 'tests passed|tests failed' "$out/ctest.log"))")
    tail -n 5 "$out/ctest.log"
  else
    skipped+=("ctest: a CUDA Kokkos refuses to initialise without a GPU")
  fi
fi

if [ -x "$build/bench/fastknn_gpu_bench" ] && [ "$gpu" = yes ]; then
  say "fastknn timings"
  mkdir -p "$out/indices"
  timeout 120 "$build/bench/fastknn_gpu_bench" --out "$out/fastknn.json" --fashion "$fashion" \
    --indices-dir "$out/indices" --repeats 5 > "$out/fastknn.log" 2>&1 ||
    failed+=("fastknn_gpu_bench (see fastknn.log)")
  cat "$out/fastknn.log"
  say "torch peer and report"
  timeout 150 python3 "$repo/bench/gpu_compare.py" --fastknn "$out/fastknn.json" --out-dir "$out" \
    --fashion "$fashion" --indices-dir "$out/indices" --card "$out/card.txt" \
    --commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --repeats 5 > "$out/torch.log" 2>&1 || failed+=("gpu_compare.py (see torch.log)")
  grep -E '^SKIPPED' "$out/torch.log" | while read -r line; do echo "$line"; done
  [ -f "$out/results.md" ] && cat "$out/results.md"
else
  skipped+=("timings: no GPU or no fastknn_gpu_bench")
fi

say "done"
for s in "${skipped[@]+"${skipped[@]}"}"; do echo "SKIPPED: $s"; done
for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
