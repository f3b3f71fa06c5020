#!/usr/bin/env bash
# build.sh - configure (Release by default) and build vae with CMake.
#
# usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF
usage: $0 [BUILD_DIR] [extra cmake args...]

Configures vae with CMake in BUILD_DIR (default: $root/build), as a Release
build unless the extra args set CMAKE_BUILD_TYPE, builds it on all cores and
prints the path of the vae binary on the last line.
Example: $0 /tmp/vae-debug -DCMAKE_BUILD_TYPE=Debug -DVAE_NATIVE=OFF
EOF
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
esac

build_dir="$root/build"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    build_dir="$1"
    shift
fi

build_type=(-DCMAKE_BUILD_TYPE=Release)
for arg in "$@"; do
    case "$arg" in -DCMAKE_BUILD_TYPE=*) build_type=() ;; esac
done

jobs="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"

cmake -S "$root" -B "$build_dir" "${build_type[@]}" "$@"
cmake --build "$build_dir" --parallel "$jobs"

bin="$(cd "$build_dir" && pwd)/vae"
[ -x "$bin" ] || { echo "build.sh: $bin was not built" >&2; exit 1; }
echo "$bin"
