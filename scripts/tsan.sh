#!/usr/bin/env bash
# tsan.sh - libvae's calls from many threads under ThreadSanitizer: builds
# vae, libvae and test_lib with -fsanitize=thread in BUILD_DIR (default
# build-tsan) and runs test_lib (every call against the command, and four
# threads sharing one model, test_threads). Exits 1 on any report.
#
# usage: scripts/tsan.sh [BUILD_DIR]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
build="${1:-$root/build-tsan}"
"$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVAE_TSAN=ON \
    -DVAE_MPI=OFF >/dev/null
cmake --build "$build" --target test_lib --parallel "$(nproc)" >/dev/null
# OpenBLAS is not instrumented: at one thread (test_lib runs there) it
# starts none of its own, so every thread TSan sees is the test's or ours.
# The vae binary the test runs is instrumented too.
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
    OPENBLAS_NUM_THREADS=1 VAE_BIN="$build/vae" "$build/test_lib"
echo "tsan.sh: test_lib clean under ThreadSanitizer"
