#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages the project needs, if any is missing.
#
# usage: scripts/deps.sh [--dev] [--browser]
#
# Checks every package with dpkg-query first; only when something is missing
# does it run `apt-get update` once and install the missing ones (as root, or
# through sudo). Prints one line "deps: all present" when nothing is to do.
set -euo pipefail

# Build and run: compiler, cmake, the libraries, gnuplot for the loss plots,
# libjpeg-turbo's TurboJPEG and stb_image_resize for vae import, and Open
# MPI for `mpirun -np R vae train` (optional: without libopenmpi-dev the
# build leaves MPI out and vae runs as one process, as before).
BASE=(build-essential cmake pkg-config libopenblas-dev libpng-dev zlib1g-dev
      libcmocka-dev gnuplot-nox libturbojpeg0-dev libstb-dev
      libopenmpi-dev openmpi-bin)
# --dev: sanitizer builds and fuzzers (clang + its runtime), valgrind,
# GNU time for peak memory, hyperfine for latency, PyTorch for the test
# that loads `vae export`'s file in scripts/vae_torch.py.
DEV=(clang libclang-rt-14-dev valgrind time hyperfine python3-torch python3-numpy)
# --browser: headless Chromium, for scripts/report_shot.sh's screenshot of a
# run's page (large, so in neither list above).
BROWSER=(chromium)

usage() {
    cat <<EOF
usage: $0 [--dev] [--browser]

Installs the Debian packages vae needs, only if some are missing:
  ${BASE[*]}
  npm (only if no 'npm' command is on PATH; scripts/fetch_data.sh uses it)
With --dev, also: ${DEV[*]}
(used by scripts/test.sh and scripts/bench.sh).
With --browser, also: ${BROWSER[*]} (used by scripts/report_shot.sh).

Runs apt-get as root, or through sudo when not root.
EOF
}

dev=0
browser=0
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --dev) dev=1 ;;
        --browser) browser=1 ;;
        *) echo "deps.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

wanted=("${BASE[@]}")
[ "$dev" = 1 ] && wanted+=("${DEV[@]}")
[ "$browser" = 1 ] && wanted+=("${BROWSER[@]}")
command -v npm >/dev/null 2>&1 || wanted+=(npm)

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

command -v dpkg-query >/dev/null 2>&1 ||
    { echo "deps.sh: dpkg-query not found; this script is for Debian 12" >&2; exit 1; }

missing=()
for pkg in "${wanted[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all present"
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: not root and sudo not found; install them as root:" >&2
    echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"

still=()
for pkg in "${missing[@]}"; do
    is_installed "$pkg" || still+=("$pkg")
done
if [ ${#still[@]} -gt 0 ]; then
    echo "deps.sh: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "deps: installed ${missing[*]}"
