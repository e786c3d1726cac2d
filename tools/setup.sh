#!/usr/bin/env bash
# fastknn: install everything the build, tests, demo and benchmarks need on Debian bookworm.
# Idempotent: prints what it does and does nothing when everything is present.
# Kokkos (OpenMP) and Catch2 v3 come from Debian sid, pinned low so nothing else is taken from it;
# the packages they need from sid (glibc, libstdc++6, base-files) are listed before they change.
# The sid mirror URI and signing key are taken from this machine's own bookworm apt sources.
set -euo pipefail

say() { printf '[fastknn setup] %s\n' "$*"; }
die() { printf '[fastknn setup] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "run as root (or install sudo): apt-get is needed"
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# Packages from bookworm (the default release).
BOOKWORM_PKGS=(g++ cmake make pkg-config zlib1g-dev libeigen3-dev libbenchmark-dev
               dataset-fashion-mnist python3 python3-numpy python3-sklearn python3-faiss
               python3-matplotlib python3-threadpoolctl libopenblas0-pthread clang
               libclang-rt-14-dev python3-dev pybind11-dev python3-pybind11 python3-pytest
               python3-pandas python3-scipy libopenmpi-dev openmpi-bin)
# Packages from sid (pinned at priority 100).
SID_PKGS=(libkokkos-dev libcatch2-dev)

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

missing=()
for p in "${BOOKWORM_PKGS[@]}" "${SID_PKGS[@]}"; do have_pkg "$p" || missing+=("$p"); done

kokkos_cfg_ok() {
  local f
  for f in /usr/lib/x86_64-linux-gnu/libkokkosalgorithms.a /usr/lib/x86_64-linux-gnu/libkokkossimd.a; do
    [ -e "$f" ] || return 1
  done
}

if [ ${#missing[@]} -eq 0 ] && ! have_pkg libtrilinos-kokkos-dev && kokkos_cfg_ok; then
  say "everything is present; nothing to do"
  exit 0
fi

# --- the sid source, derived from the existing bookworm source -----------------------------
SID_LIST=/etc/apt/sources.list.d/fastknn-sid.sources
if [ ! -e "$SID_LIST" ]; then
  uri="" key=""
  if [ -e /etc/apt/sources.list.d/debian.sources ]; then
    # deb822 stanza whose Suites include plain 'bookworm'
    read -r uri key < <(awk '
      /^$/ { if (isbw && uri != "") { print uri, key; exit } isbw=0; uri=""; key="" }
      /^URIs:/ { uri=$2 }
      /^Signed-By:/ { key=$2 }
      /^Suites:/ { for (i=2;i<=NF;i++) if ($i=="bookworm") isbw=1 }
      END { if (isbw && uri != "") print uri, key }' /etc/apt/sources.list.d/debian.sources) || true
  fi
  if [ -z "$uri" ] && [ -e /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 ~ / bookworm / { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "no bookworm apt source found to derive the sid mirror from; add one to /etc/apt/sources.list.d/debian.sources"
  [ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
  say "adding Debian sid source ($uri, key $key) pinned at priority 100"
  $SUDO tee "$SID_LIST" >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: sid
Components: main
Signed-By: $key
SRC
fi
PIN=/etc/apt/preferences.d/fastknn-sid-pin
if [ ! -e "$PIN" ]; then
  say "pinning sid to priority 100"
  $SUDO tee "$PIN" >/dev/null <<PINTXT
Package: *
Pin: release n=sid
Pin-Priority: 100
PINTXT
fi

say "apt-get update"
$SUDO apt-get update -qq || die "apt-get update failed; check the machine's apt sources"

if have_pkg libtrilinos-kokkos-dev; then
  say "removing libtrilinos-kokkos-dev (Kokkos 3.4, owns the same CMake config path)"
  $SUDO apt-get remove -y -qq libtrilinos-kokkos-dev
fi

bw_missing=() sid_missing=()
for p in "${BOOKWORM_PKGS[@]}"; do have_pkg "$p" || bw_missing+=("$p"); done
for p in "${SID_PKGS[@]}"; do have_pkg "$p" || sid_missing+=("$p"); done
if [ ${#bw_missing[@]} -gt 0 ]; then
  say "installing from bookworm: ${bw_missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${bw_missing[@]}" || die "installing ${bw_missing[*]} failed"
fi
if [ ${#sid_missing[@]} -gt 0 ]; then
  # Take from sid only what the two packages need. sid's Kokkos needs sid's libc6 and
  # libstdc++6; libc6 brings its own family (libc-bin, libc6-dev, ...) and base-files, which it
  # declares it breaks in older versions. Start from that set (plus the installed packages
  # known to move with libc6), then add each package apt names in an unmet Depends or Breaks,
  # until the simulated install succeeds. Everything else stays at bookworm's version.
  want=("${sid_missing[@]}" libc6 libc-bin libc6-dev base-files)
  for p in libc6-i386 libc6-dbg locales libc-l10n; do have_pkg "$p" && want+=("$p"); done
  if have_pkg dpkg-dev; then want+=(dpkg-dev libdpkg-perl make); fi
  plan=""
  for _round in 1 2 3 4 5 6 7 8 9 10; do
    args=()
    for p in "${want[@]}"; do args+=("$p/sid"); done
    if plan=$(LC_ALL=C apt-get install -s --no-install-recommends "${args[@]}" 2>&1); then
      break
    fi
    # Lines such as " libc-bin : Depends: libc6 (< 2.37) but 2.43-7 is to be installed" or
    # " libc6 : Breaks: base-files (< 13.3~) but 12.4 is to be installed": both names move.
    more=$(printf '%s\n' "$plan" | sed -n -E \
      -e 's/^ *([a-z0-9][a-z0-9.+-]*)(:[a-z0-9]+)? : (Pre)?(Depends|Breaks): ([a-z0-9][a-z0-9.+-]*).*/\1 \5/p' \
      -e 's/^ +(Pre)?(Depends|Breaks): ([a-z0-9][a-z0-9.+-]*).*/\3/p' | tr ' ' '\n' | sort -u)
    added=0
    for p in $more; do
      case " ${want[*]} " in *" $p "*) ;; *) want+=("$p"); added=1 ;; esac
    done
    if [ "$added" -eq 0 ]; then
      printf '%s\n' "$plan" >&2
      die "apt cannot install ${sid_missing[*]} from sid with the packages above; see its message"
    fi
  done
  changes=$(printf '%s\n' "$plan" | awk '$1 == "Inst" { print $2 }' | tr '\n' ' ')
  say "installing from sid: ${sid_missing[*]}"
  say "this changes these packages to sid's versions (new or upgraded): $changes"
  say "among them glibc (libc6 ...) and libstdc++6, which sid's Kokkos is built against, and"
  say "base-files, which sid's libc6 requires: afterwards /etc/os-release names forky/sid."
  say "Nothing else comes from sid (pinned at 100). To stop taking anything from sid, delete"
  say "$SID_LIST and $PIN; the packages above stay (Debian cannot downgrade glibc)."
  $SUDO apt-get install -y -qq --no-install-recommends "${args[@]}" || die "installing ${sid_missing[*]} from sid failed"
fi

# The Debian Kokkos CMake config names two static archives the package does not ship.
for f in /usr/lib/x86_64-linux-gnu/libkokkosalgorithms.a /usr/lib/x86_64-linux-gnu/libkokkossimd.a; do
  if [ ! -e "$f" ]; then
    say "creating empty archive $f (named by KokkosTargets.cmake, missing from the package)"
    $SUDO ar rc "$f"
  fi
done
say "done"
