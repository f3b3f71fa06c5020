#!/usr/bin/env bash
# bench_lib.sh - libvae's figures against the command's: the time to load a
# model, and to score the 10,000 MNIST test images with the negative ELBO
# and with the importance-weighted bound (K draws), through the library
# (tests/bench_lib.c, OpenBLAS at one thread) and through vae score
# --threads 1 (a whole process: start, load, read the data, write the CSV),
# each the best of REPS runs, and the mean scores of both (the same
# numbers); then the library's images a second from one thread and from
# as many threads as cores, each scoring all the images with its own call
# on the one model. Prints the CPU first: compare figures from one machine
# only.
#
# usage: scripts/bench_lib.sh [--ckpt MODEL] [--data DIR] [--k K] [--reps R] [--build DIR]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ckpt="" data="$root/data" k=50 reps=3 build="$root/build"
while [ $# -gt 0 ]; do
    case "$1" in
        --ckpt) ckpt="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --k) k="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        --build) build="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_lib.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -f "$data/t10k-images-idx3-ubyte" ] || "$root/scripts/fetch_data.sh" "$data"
"$root/scripts/build.sh" "$build" >/dev/null
cmake --build "$build" --target bench_lib >/dev/null
vae="$build/vae"
tmp=$(mktemp -d /tmp/bench-lib.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$ckpt" ]; then # the default model, one epoch
    ckpt="$tmp/vae.bin"
    "$vae" train --data "$data" --epochs 1 --ckpt "$ckpt" --out "$tmp/out" >/dev/null
fi
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); avx512f: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)"
"$vae" --version | sed -n 2p
echo "model: $ckpt ($("$vae" info --ckpt "$ckpt" | head -n 1))"

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
best() { # the smallest of its arguments
    printf '%s\n' "$@" | sort -g | head -n 1
}
cli_time() { # ARGS...: the best of $reps runs of vae score ARGS, seconds
    local t=() t0
    for _ in $(seq "$reps"); do
        t0=$(now)
        "$vae" score --ckpt "$ckpt" --data "$data" --threads 1 -o "$tmp/s.csv" "$@" >/dev/null
        t+=("$(calc "$(now) - $t0")")
    done
    best "${t[@]}"
}
mean_csv() { awk -F, 'NR > 1 {s += $3; n++} END {printf "%.6f", s / n}' "$tmp/s.csv"; }

lib=$(OPENBLAS_NUM_THREADS=1 "$build/bench_lib" "$ckpt" "$data/t10k-images-idx3-ubyte" "$k" \
    "$reps" "$(nproc)")
field() { echo "$lib" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
elbo_s=$(cli_time); elbo_mean=$(mean_csv)
iw_s=$(cli_time --iw "$k"); iw_mean=$(mean_csv)
t0=$(now); "$vae" info --ckpt "$ckpt" >/dev/null; info_s=$(calc "$(now) - $t0")

printf '%-34s %12s %12s %8s\n' "" "libvae" "vae score" "ratio"
printf '%-34s %12.4f %12.4f %8s\n' "load the model (s; CLI: vae info)" "$(field load_s)" "$info_s" \
    "$(calc "$info_s / $(field load_s)" | xargs printf '%.0f')"
printf '%-34s %12.3f %12.3f %8.2f\n' "score 10k, negative ELBO (s)" "$(field score_s)" "$elbo_s" \
    "$(calc "$elbo_s / $(field score_s)")"
printf '%-34s %12.3f %12.3f %8.2f\n' "score 10k, bound K = $k (s)" "$(field score_k_s)" "$iw_s" \
    "$(calc "$iw_s / $(field score_k_s)")"
printf '%-34s %12s %12s\n' "mean negative ELBO (nats)" "$(field mean_score)" "$elbo_mean"
printf '%-34s %12s %12s\n' "mean bound, K = $k (nats)" "$(field mean_score_k)" "$iw_mean"
printf 'libvae, negative ELBO: %s images/s from one thread, %s from %s threads at once\n' \
    "$(field one_images_per_s)" "$(field threads_images_per_s)" "$(field threads)"
