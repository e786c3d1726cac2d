#!/usr/bin/env bash
# Usage: check_isa_objects.sh LEVEL FILE...
# Fails if a shared object compiled for LEVEL holds an instruction beyond it: for "generic", any
# VEX/EVEX-encoded instruction (AVX and later: mnemonics v..., or ymm/zmm/mask registers); for
# "avx2", any AVX-512 instruction (zmm or mask registers). This is what keeps a variant from
# running AVX-512 code on a CPU without it (docs/design.md, "One binary for every CPU").
set -euo pipefail
level=$1
shift
case "$level" in
  generic) pattern='^\s*[0-9a-f]+:\s+v[a-z0-9]+\s|%[yz]mm[0-9]|%k[0-7]' ;;
  avx2) pattern='%zmm[0-9]|%k[0-7]' ;;
  *) echo "unknown level $level" >&2; exit 2 ;;
esac
status=0
for f in "$@"; do
  count=$(objdump -d --no-show-raw-insn "$f" | grep -cE "$pattern" || true)
  if [ "$count" -ne 0 ]; then
    echo "FAIL: $f holds $count instructions beyond $level, e.g.:"
    objdump -d --no-show-raw-insn "$f" | grep -E "$pattern" | head -5
    status=1
  else
    echo "ok: $f holds no instruction beyond $level ($(objdump -d "$f" | grep -c '^\s*[0-9a-f]*:') instructions read)"
  fi
done
exit $status
