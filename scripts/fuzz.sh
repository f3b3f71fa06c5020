#!/usr/bin/env bash
# fuzz.sh - fuzz the IDX parser, the checkpoint reader and vae import's image
# decoders with libFuzzer
# (clang, ASan + UBSan), starting from the seed corpus in tests/fuzz/seeds.
#
# usage: scripts/fuzz.sh [--time SECONDS] [--reseed] [idx|ckpt|image ...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF2
usage: $0 [--time SECONDS] [--reseed] [idx|ckpt|image ...]

Builds the harnesses tests/fuzz/fuzz_idx.c, fuzz_ckpt.c and fuzz_image.c (PNG
and JPEG through vae import's decoders) with clang
(-fsanitize=fuzzer,address,undefined) in build-fuzz/, then runs the named
ones (default: all, side by side) for SECONDS each
(default 600). Each starts from tests/fuzz/seeds/NAME plus the corpus it grew
before (build-fuzz/corpus-NAME). Prints each fuzzer's executions and result.
A crash is saved as build-fuzz/artifacts-NAME/crash-*: fix it, then copy it
into tests/fuzz/crashes/NAME/, where CTest replays it in every build.
--reseed rewrites tests/fuzz/seeds first (fuzz_make_seeds).
Exits 1 if any fuzzer found a crash.
EOF2
}

time_s=600
reseed=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --time) [ $# -ge 2 ] || { usage >&2; exit 2; }; time_s="$2"; shift ;;
        --reseed) reseed=1 ;;
        idx|ckpt|image) targets+=("$1") ;;
        *) echo "fuzz.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$time_s" in ''|*[!0-9]*) echo "fuzz.sh: --time needs whole seconds" >&2; exit 2 ;; esac
[ ${#targets[@]} -gt 0 ] || targets=(idx ckpt image)

"$root/scripts/deps.sh" --dev
if [ "$reseed" = 1 ]; then
    "$root/scripts/build.sh" "$root/build" -DVAE_TESTS=ON >/dev/null
    "$root/build/fuzz_make_seeds" "$root/tests/fuzz/seeds"
fi
out="$root/build-fuzz"
cmake -S "$root" -B "$out" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVAE_FUZZ=ON -DVAE_TESTS=OFF >/dev/null
cmake --build "$out" --parallel "$(nproc)" >/dev/null

pids=()
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus-$t" "$out/artifacts-$t"
    echo "fuzz_$t: ${time_s}s from tests/fuzz/seeds/$t, log in build-fuzz/fuzz-$t.log"
    "$out/fuzz_$t" "$out/corpus-$t" "$root/tests/fuzz/seeds/$t" \
        -max_total_time="$time_s" -print_final_stats=1 -rss_limit_mb=4096 \
        -artifact_prefix="$out/artifacts-$t/" >"$out/fuzz-$t.log" 2>&1 &
    pids+=($!)
done
failed=0
for i in "${!targets[@]}"; do
    t="${targets[$i]}"
    rc=0
    wait "${pids[$i]}" || rc=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz-$t.log" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "$out/fuzz-$t.log" | tail -n 1)"
    crashes="$(find "$out/artifacts-$t" -type f | wc -l)"
    if [ "$rc" = 0 ] && [ "$crashes" = 0 ]; then
        echo "fuzz_$t: ${execs:-?} executions in ${time_s}s, ${cov:-cov: ?} edges, corpus $(ls "$out/corpus-$t" | wc -l) inputs: no crash"
    else
        echo "fuzz_$t: exit $rc, $crashes crash file(s) in build-fuzz/artifacts-$t (after ${execs:-?} executions); see build-fuzz/fuzz-$t.log"
        failed=1
    fi
done
exit "$failed"
