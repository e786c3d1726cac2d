#!/usr/bin/env bash
# The device check: fastknn on a machine with an NVIDIA GPU, in two short commands that each end
# within 10 minutes (a lent GPU allows 10 minutes a command and 15 in all; no network):
#
#   tools/device_check.sh bench KOKKOS_CUDA_PREFIX OUT_DIR [FASHION_DIR]
#       builds fastknn_gpu_bench and the CLI only (cuda preset, all cores), dumps the kernels'
#       registers/stack/spills (cuobjdump), times fastknn (Fashion-MNIST k = 1, 10, 100, 1024,
#       4096; 10^6 x 128 with Q = 1, 16, 10,000; data on the device) and then torch (mm / cdist
#       + topk, TF32 off) on the same jobs; results are written after every job.
#   tools/device_check.sh tests KOKKOS_CUDA_PREFIX OUT_DIR
#       second command, on the still-warm machine (same build folder): builds fastknn_tests and
#       runs the search suites on Kokkos::Cuda and the host spaces.
#   tools/device_check.sh rehearse [KOKKOS_CUDA_PREFIX] OUT_DIR [FASHION_DIR]
#       what runs without a GPU: the checks below, the cuda-preset build of the two benchmark
#       targets (when a CUDA Kokkos is given), the timing driver on OpenMP (--quick) and the
#       report without torch.
#   tools/device_check.sh --help
#
# Every command first names each missing input (nvcc, the CUDA paths Kokkos recorded, zlib,
# CMake, the data, Catch2/Eigen for the tests, torch for the peer) before building anything, and
# prints the size of what has to be carried to the machine (at most 64 MiB). A failing step
# prints its first error as it is; the steps share the command's time budget
# (FASTKNN_DEVICE_SECONDS, default 570 s), each getting what is left. Writes OUT_DIR/card.txt,
# preflight.txt, build.log, resource-usage.txt, fastknn.json, fastknn.log, torch.log,
# results.md, results.json, ctest.log. FASTKNN_DEVICE_DEPS may name a folder with the CMake
# packages of Catch2 v3 and Eigen 3 (for `tests`), put on CMAKE_PREFIX_PATH.
set -u
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
-h | --help | help)
  usage
  exit 0
  ;;
bench | tests) [ $# -ge 3 ] || { usage; exit 2; } ;;
rehearse) [ $# -ge 2 ] || { usage; exit 2; } ;;
*)
  usage
  exit 2
  ;;
esac
mode=$1
shift
kokkos=""
if [ "$mode" = rehearse ] && [ $# -eq 1 ]; then
  out_arg=$1
  fashion=/usr/share/datasets/fashion-mnist
elif [ "$mode" = rehearse ] && [ $# -ge 2 ] && [ ! -d "$1/lib" ] && [ ! -d "$1/lib64" ]; then
  out_arg=$1 # rehearse OUT_DIR FASHION_DIR
  fashion=$2
else
  kokkos=$(cd "$1" 2>/dev/null && pwd) || { echo "device_check: no such folder $1"; exit 2; }
  out_arg=$2
  fashion=${3:-/usr/share/datasets/fashion-mnist}
fi
mkdir -p "$out_arg" && out=$(cd "$out_arg" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build/device-check"
budget=${FASTKNN_DEVICE_SECONDS:-570}
start=$(date +%s)
failed=()
skipped=()
say() { echo "== device_check $mode [$(($(date +%s) - start)) s] $*"; }
# Seconds a step may take: its own cap, and never past the command's budget (10 s kept back).
left() {
  local rest=$((budget - ($(date +%s) - start) - 10))
  [ "$rest" -lt "$1" ] && echo $((rest > 1 ? rest : 1)) || echo "$1"
}
first_error() { grep -m1 -E -A4 'CMake Error|error:|Error [0-9]|error #' "$1" | head -n 6; }

# --- The card and the software: they go with every number. ---
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with local changes)')"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu --format=csv
  else
    echo "nvidia-smi: absent"
  fi
  echo "nvcc: $( (nvcc --version 2>/dev/null || { [ -n "$kokkos" ] && "$kokkos/bin/nvcc_wrapper" --version 2>/dev/null; }) | tail -n 2 | head -n 1)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "kokkos: ${kokkos:-none (rehearsal without CUDA)}"
} >"$out/card.txt" 2>&1
cat "$out/card.txt"
gpu=yes
{ command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; } || gpu=no

# --- Preflight: every missing input named before anything is built. ---
missing=()
need() { missing+=("$1"); }
command -v cmake >/dev/null || need "cmake (3.22 or newer) on the PATH"
[ -f /usr/include/zlib.h ] || need "zlib's header (Debian: zlib1g-dev; fastknn's loaders need it)"
{ ldconfig -p 2>/dev/null | grep -q 'libz\.so'; } || [ -e /usr/lib/x86_64-linux-gnu/libz.so ] ||
  need "zlib's library libz.so (Debian: zlib1g-dev)"
if [ -n "$kokkos" ]; then
  [ -x "$kokkos/bin/nvcc_wrapper" ] || need "$kokkos/bin/nvcc_wrapper (not a CUDA Kokkos install?)"
  ls "$kokkos"/lib*/libkokkoscore.so >/dev/null 2>&1 ||
    need "a shared Kokkos (libkokkoscore.so in $kokkos/lib*; build it with -DBUILD_SHARED_LIBS=ON)"
  command -v nvcc >/dev/null || need "nvcc on the PATH (export PATH=/usr/local/cuda/bin:\$PATH)"
  # Kokkos records the CUDA toolkit it was built with; a machine where those paths are absent
  # fails at configure or link time with a message that does not say so.
  for f in "$kokkos"/lib*/cmake/Kokkos/Kokkos*.cmake; do
    [ -f "$f" ] || continue
    grep -oE '(^|[ "(])/[^ ";$()]*(cuda|nvcc)[^ ";$()]*' "$f" | sed 's/^[ "(]//' | sort -u |
      while read -r p; do
        [ -e "$p" ] || echo "the CUDA path $p recorded in $(basename "$f")"
      done
  done >"$out/kokkos_paths.txt"
  while read -r line; do need "$line"; done <"$out/kokkos_paths.txt"
  rm -f "$out/kokkos_paths.txt"
elif [ "$mode" != rehearse ]; then
  need "a CUDA Kokkos install prefix"
fi
have_fashion=yes
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -e "$fashion/$f" ] || [ -e "$fashion/$f.gz" ] || have_fashion=no
done
if [ "$have_fashion" = no ]; then
  if [ "$mode" = tests ]; then
    skipped+=("Fashion-MNIST not at $fashion (the tests that read it say so)")
  else
    need "Fashion-MNIST's four IDX files in $fashion (gzipped or not; carry them)"
  fi
fi
deps="${FASTKNN_DEVICE_DEPS:-}"
if [ "$mode" = tests ]; then
  { [ -d /usr/include/catch2 ] || [ -n "$deps" ]; } || need "Catch2 v3 (or FASTKNN_DEVICE_DEPS with its CMake package)"
  { [ -d /usr/include/eigen3 ] || [ -n "$deps" ]; } || need "Eigen 3 (or FASTKNN_DEVICE_DEPS with its CMake package)"
fi
# The Python for the report and the torch peer: the first on the PATH that has numpy (and torch).
py=""
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import numpy, torch' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
  for p in python3 /usr/bin/python3; do
    if "$p" -c 'import numpy' 2>/dev/null; then py=$p; break; fi
  done
  [ "$mode" = tests ] || skipped+=("torch peer: no python3 here imports torch (the report is made without it)")
fi
[ -n "$py" ] || [ "$mode" = tests ] || need "a python3 with numpy (for the report)"
if [ "$mode" != rehearse ] && [ "$gpu" = no ]; then
  need "an NVIDIA GPU (nvidia-smi -L lists none)"
fi
# What has to travel to the machine (the lent machine takes at most 64 MiB besides the tree).
{
  echo "carried (du -sh):"
  [ -n "$kokkos" ] && du -sh "$kokkos" 2>/dev/null
  [ -n "$deps" ] && du -sh "$deps" 2>/dev/null
  case "$fashion" in /usr/share/*) ;; *) du -shL "$fashion" 2>/dev/null ;; esac
  total=$({
    [ -n "$kokkos" ] && du -sk "$kokkos" 2>/dev/null
    [ -n "$deps" ] && du -sk "$deps" 2>/dev/null
    case "$fashion" in /usr/share/*) ;; *) du -skL "$fashion" 2>/dev/null ;; esac
  } | awk '{s += $1} END {print int(s / 1024)}')
  echo "total carried: ${total:-0} MiB of 64 MiB"
  [ "${total:-0}" -le 64 ] || echo "TOO BIG: more than the 64 MiB a lent machine takes"
  echo "source tree without build/ and .git: $(du -sh --exclude=build --exclude=.git "$repo" | cut -f1)"
} >"$out/preflight.txt" 2>&1
cat "$out/preflight.txt"
grep -q '^TOO BIG' "$out/preflight.txt" && need "carried files under 64 MiB (see preflight.txt)"
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "MISSING: $m"; done | tee -a "$out/preflight.txt"
  exit 1
fi

# --- Configure and build (cuda preset; the host kernels in their generic variant only: the
# device's timings are the point, and every host variant would double the nvcc build). ---
configure() { # $1: tests ON/OFF
  local prefix_path="$kokkos"
  [ -n "$deps" ] && prefix_path="$prefix_path;$deps"
  say "configure (cuda preset, tests $1)"
  if ! Kokkos_ROOT="$kokkos" timeout "$(left 90)" cmake --preset cuda -B "$build" \
    -DCMAKE_PREFIX_PATH="$prefix_path" -DFASTKNN_ENABLE_PYTHON=OFF -DFASTKNN_ENABLE_MPI=OFF \
    -DFASTKNN_ISA_VARIANTS=generic -DFASTKNN_GPU_SHAPED_TESTS=OFF -DFASTKNN_ENABLE_TESTS="$1" \
    >>"$out/build.log" 2>&1; then
    echo "configure failed; its first error:"
    first_error "$out/build.log"
    failed+=("configure (build.log)")
    return 1
  fi
}
build_targets() { # $1: seconds cap, then targets
  local cap=$1
  shift
  say "build $* on $(nproc) cores (limit $(left "$cap") s)"
  if ! timeout "$(left "$cap")" cmake --build "$build" -j "$(nproc)" --target "$@" \
    >>"$out/build.log" 2>&1; then
    echo "build failed or ran out of time; its first error:"
    first_error "$out/build.log"
    failed+=("build of $* (build.log)")
    return 1
  fi
}
resource_usage() {
  command -v cuobjdump >/dev/null || { skipped+=("cuobjdump absent: no register/spill report"); return; }
  say "kernels' registers, stack and spills (cuobjdump --dump-resource-usage)"
  for f in "$build"/libfastknn*.so* "$build"/bench/fastknn_gpu_bench; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    echo "### $(basename "$f")"
    cuobjdump --dump-resource-usage "$f" 2>&1 | c++filt | grep -E 'Function|REG|STACK|spill' || true
  done >"$out/resource-usage.txt"
  grep -c 'Function' "$out/resource-usage.txt" | sed 's/^/kernels listed: /'
}

run_bench() { # $1: the driver; $2: extra arguments
  say "fastknn timings ($1)"
  mkdir -p "$out/indices"
  # shellcheck disable=SC2086
  timeout "$(left 200)" "$1" --out "$out/fastknn.json" --fashion "$fashion" \
    --indices-dir "$out/indices" --repeats 5 $2 >"$out/fastknn.log" 2>&1 ||
    failed+=("fastknn_gpu_bench (fastknn.log; fastknn.json holds the jobs it finished)")
  cat "$out/fastknn.log"
}
report() { # $1: extra arguments of gpu_compare.py
  [ -f "$out/fastknn.json" ] || { failed+=("no fastknn.json: no report"); return; }
  say "torch peer and report"
  # shellcheck disable=SC2086
  timeout "$(left 200)" "$py" "$repo/bench/gpu_compare.py" --fastknn "$out/fastknn.json" \
    --out-dir "$out" --fashion "$fashion" --indices-dir "$out/indices" --card "$out/card.txt" \
    --commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --repeats 5 $1 >"$out/torch.log" 2>&1 || failed+=("gpu_compare.py (torch.log)")
  grep -E '^SKIPPED' "$out/torch.log"
  [ -f "$out/results.md" ] && cat "$out/results.md"
}

: >"$out/build.log"
case "$mode" in
bench)
  configure OFF && build_targets 330 fastknn_gpu_bench fastknn_cli && resource_usage
  [ -x "$build/bench/fastknn_gpu_bench" ] && run_bench "$build/bench/fastknn_gpu_bench" "" && report ""
  ;;
tests)
  configure ON && build_targets 420 fastknn_tests &&
    {
      say "ctest: the suites on Kokkos::Cuda and the host spaces"
      timeout "$(left 150)" ctest --test-dir "$build" -R '^fastknn_tests' -LE slow \
        --output-on-failure --timeout 140 >"$out/ctest.log" 2>&1 ||
        failed+=("ctest ($(grep -E 'tests passed|tests failed' "$out/ctest.log" || echo 'no summary: time limit?'))")
      tail -n 5 "$out/ctest.log"
    }
  ;;
rehearse)
  if [ -n "$kokkos" ]; then
    configure OFF && build_targets 900 fastknn_gpu_bench fastknn_cli && resource_usage
  else
    skipped+=("the cuda-preset build: no CUDA Kokkos given")
  fi
  # The driver and the report on this machine's OpenMP build (a GPU is not needed for them).
  host_bench="$repo/build/openmp/bench/fastknn_gpu_bench"
  if [ -x "$host_bench" ]; then
    run_bench "$host_bench" "--quick"
    report "--quick"
  else
    skipped+=("the driver on OpenMP: build build/openmp's fastknn_gpu_bench first")
  fi
  ;;
esac

say "done in $(($(date +%s) - start)) s of $budget"
for s in "${skipped[@]+"${skipped[@]}"}"; do echo "SKIPPED: $s"; done
for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
