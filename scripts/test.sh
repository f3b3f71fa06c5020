#!/usr/bin/env bash
# test.sh - set everything up and run all tests: a Release build and a
# sanitizer (ASan + UBSan, Debug) build, each with ctest.
#
# usage: scripts/test.sh [--quick]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF
usage: $0 [--quick]

Installs missing Debian packages (scripts/deps.sh --dev), then builds and runs
every test twice, then memcheck:
  1. Release build in build/, ctest --output-on-failure, scripts/same_bits.sh
     (the same runs byte for byte as the last commit before the redesign), and
     scripts/lib_check.sh (libvae installed into a temporary prefix, its
     exports and SONAME, examples/anomaly.c built against it and run);
  2. AddressSanitizer + UBSan Debug build in build-asan/, ctest, with
     ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 and
     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1;
  3. scripts/valgrind.sh: every command under valgrind's memcheck;
  4. scripts/tsan.sh: libvae's test, four threads on one model included, under
     ThreadSanitizer in build-tsan/.
--quick skips 2 to 4. The tests need neither MNIST nor the network.
Exits non-zero if any step fails; a summary is printed at the end.
EOF
}

quick=0
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --quick) quick=1 ;;
        *) echo "test.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

"$root/scripts/deps.sh" --dev

summary=()
failed=0

# step NAME CMD...: run CMD, record PASS/FAIL for the summary, keep going.
step() {
    local name="$1"
    shift
    echo
    echo "=== $name"
    if "$@"; then
        summary+=("PASS  $name")
    else
        summary+=("FAIL  $name (exit $?)")
        failed=1
        return 1
    fi
}

# suite LABEL DIR [cmake args...]: build in DIR, then ctest there if the build worked.
suite() {
    local label="$1" dir="$2"
    shift 2
    if step "$label: build ($dir)" "$root/scripts/build.sh" "$dir" "$@"; then
        step "$label: ctest" ctest --test-dir "$dir" --output-on-failure \
            --no-tests=error || true
    fi
}

suite "release" "$root/build" -DCMAKE_BUILD_TYPE=Release -DVAE_TESTS=ON -DVAE_SANITIZE=OFF

# The redesign changes no number: the same runs with the vae of the last
# commit before it, byte for byte (needs that commit: a shallow clone
# skips it and says so).
base="$(sed -n 's/^base_rev=//p' "$root/scripts/same_bits.sh")"
if git -C "$root" rev-parse --verify -q "$base^{commit}" >/dev/null 2>&1; then
    step "same bits as $base (scripts/same_bits.sh)" "$root/scripts/same_bits.sh" \
        --new "$root/build/vae" || true
else
    summary+=("SKIP  same bits as $base: that commit is not in this clone")
fi

# libvae as a program of its users sees it (installed, not the build tree).
step "libvae: install, exports, the example (scripts/lib_check.sh)" \
    "$root/scripts/lib_check.sh" "$root/build" || true

if [ "$quick" = 1 ]; then
    summary+=("SKIP  sanitizer build and valgrind (--quick)")
else
    # allocator_may_return_null: a refused huge allocation must reach the
    # code that reports it, as malloc's NULL does outside ASan.
    export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
    # A leak inside the sanitizer's own thread start (tests/lsan.supp).
    export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp"
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    suite "asan+ubsan" "$root/build-asan" -DVAE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DVAE_TESTS=ON
    step "valgrind: memcheck of every command" "$root/scripts/valgrind.sh" || true
    step "tsan: libvae from four threads (scripts/tsan.sh)" "$root/scripts/tsan.sh" || true
fi

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" != 0 ]; then
    echo "test.sh: FAILED"
    exit 1
fi
echo "test.sh: all passed"
