#!/usr/bin/env bash
# bench.sh - the numbers for the issue's bars: version, training speed against
# the sgemm floor, peak memory of a training epoch, sample latency and,
# with --quality, the 15-epoch test loss, and with --family the bars of the
# VAE family (a deeper tanh model's speed, the importance-weighted bound).
#
# usage: scripts/bench.sh [--quality] [--family] [--conv] [-- extra 'vae bench' options...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

RATIO_LIMIT=1.4      # median epoch time / sgemm floor
RSS_LIMIT_MIB=150    # peak RSS of a 1-epoch training run
SAMPLE_LIMIT_MS=100  # mean and max of `vae sample --n 128`, start to exit
LOSS_LIMIT=104.6     # test loss (nats/image) after 15 epochs
IW_RATIO_LIMIT=1.5   # importance-weighted bound (K=5000) / its sgemm floor
CONV_RATIO_LIMIT=1.6 # the conv VAE's epoch / its sgemm floor

usage() {
    cat <<EOF
usage: $0 [--quality] [--family] [--conv] [-- extra 'vae bench' options...]

Installs what is missing (scripts/deps.sh --dev), builds build/vae
(scripts/build.sh), fetches MNIST into data/ (scripts/fetch_data.sh), then
prints a report, one figure a line:
  a. vae --version
  b. speed: vae bench --data data --epochs 5 [extra options]: epoch time,
     sgemm floor (the same GEMM calls alone), their ratio, and the median ratio,
     PASS if the median is at most $RATIO_LIMIT
  c. memory: peak RSS of 'vae train --epochs 1' (GNU time -v), PASS if at
     most $RSS_LIMIT_MIB MiB
  d. sample latency: 'vae sample --n 128' from process start to exit
     (hyperfine --warmup 3 --runs 30, or a bash loop without hyperfine),
     PASS if mean and max are at most $SAMPLE_LIMIT_MS ms
  e. with --quality: 'vae train --epochs 15', PASS if the last test loss is
     at most $LOSS_LIMIT (takes several minutes)
  f. with --family: 'vae bench --hidden 500,500 --latent 20 --act tanh', PASS
     if the median ratio is at most $RATIO_LIMIT; then a model trained 15 epochs
     with --binarize dynamic, its ELBO and importance-weighted bound for
     K = 1, 50, 5000 (PASS if K = 1 is within 1% of the ELBO and the bound
     falls as K grows), and 'vae bench --iw 5000' on it (PASS if the ratio to
     the sgemm floor is at most $IW_RATIO_LIMIT); about 10 minutes
  g. with --conv: 'vae bench --arch conv --likelihood gaussian --beta 0.1
     --epochs 1', PASS if the ratio is at most $CONV_RATIO_LIMIT (about 2 minutes)
Temporary files go to a folder that is removed on exit. Speed figures are
noisy on shared machines. Exits 1 if a step fails or a bar is missed.
Example: $0 -- --threads 1 --epochs 3
EOF
}

quality=0
family=0
conv=0
bench_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --quality) quality=1 ;;
        --family) family=1 ;;
        --conv) conv=1 ;;
        --) shift; bench_extra=("$@"); break ;;
        *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vae-bench.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT TERM

die() { echo "bench.sh: $*" >&2; exit 1; }

# --- setup --------------------------------------------------------------------
"$root/scripts/deps.sh" --dev
if ! "$root/scripts/build.sh" "$root/build" -DVAE_TESTS=ON >"$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2
    die "build failed"
fi
"$root/scripts/fetch_data.sh" "$root/data"

cd "$root"
vae=build/vae
summary=()
missed=0

# verdict OK: sets $result to PASS or FAIL (and remembers a failure).
result=""
verdict() {
    if [ "$1" = 1 ]; then result=PASS; else result=FAIL; missed=1; fi
}

# bench_ratio LABEL LIMIT OUT vae-bench-args...: runs vae bench, shows and
# saves its output in OUT, and records PASS if its median ratio is at most LIMIT.
bench_ratio() {
    local label="$1" limit="$2" out="$3" median ok
    shift 3
    echo "\$ $vae bench $*"
    "$vae" bench "$@" | tee "$out" || die "vae bench $* failed"
    median="$(sed -n 's/^median ratio epoch \/ sgemm floor: \([0-9.]*\).*/\1/p' "$out")"
    ok="$(awk -v r="$median" -v lim="$limit" 'BEGIN { print (r != "" && r <= lim) ? 1 : 0 }')"
    verdict "$ok"
    line="$label: median ratio epoch / sgemm floor ${median:-?} ($(grep -c '^round ' "$out") rounds), limit $limit: $result"
    echo "$line"
    summary+=("$line")
}

# --- a. version ------------------------------------------------------------------
echo
echo "=== a. version"
"$vae" --version
summary+=("version: $("$vae" --version | head -n 1)")

# --- b. speed --------------------------------------------------------------------
echo
echo "=== b. speed: vae bench"
# The CLI rejects an option given twice: the user's --epochs / --data win.
use_epochs=1 use_data=1
for arg in "${bench_extra[@]+"${bench_extra[@]}"}"; do
    case "$arg" in
        --epochs|--epochs=*) use_epochs=0 ;;
        --data|--data=*) use_data=0 ;;
    esac
done
bench_args=()
[ "$use_data" = 1 ] && bench_args+=(--data data)
[ "$use_epochs" = 1 ] && bench_args+=(--epochs 5)
bench_ratio speed "$RATIO_LIMIT" "$tmp/bench.out" \
    "${bench_args[@]+"${bench_args[@]}"}" "${bench_extra[@]+"${bench_extra[@]}"}"

# --- c. memory -------------------------------------------------------------------
echo
echo "=== c. memory: peak RSS of vae train --epochs 1"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found; run scripts/deps.sh --dev"
mkdir -p "$tmp/train"
echo "\$ $vae train --epochs 1 --data data --out \$TMP/train --ckpt \$TMP/train/vae.bin"
/usr/bin/time -v -o "$tmp/time.txt" \
    "$vae" train --epochs 1 --data data --out "$tmp/train" --ckpt "$tmp/train/vae.bin" ||
    { cat "$tmp/time.txt" >&2; die "vae train failed"; }
rss_kb="$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): \([0-9]*\)$/\1/p' "$tmp/time.txt")"
[ -n "$rss_kb" ] || die "no 'Maximum resident set size' in the output of /usr/bin/time -v"
rss_mib="$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')"
ok="$(awk -v k="$rss_kb" -v lim="$RSS_LIMIT_MIB" 'BEGIN { print (k <= lim * 1024) ? 1 : 0 }')"
verdict "$ok"
line="memory: peak RSS $rss_mib MiB ($rss_kb kB), limit $RSS_LIMIT_MIB MiB: $result"
echo "$line"
summary+=("$line")

# --- d. sample latency ------------------------------------------------------------
echo
echo "=== d. sample latency: vae sample --n 128, process start to exit"
[ -f "$tmp/train/vae.bin" ] || die "the training run left no checkpoint"
sample_cmd=("$vae" sample --n 128 --ckpt "$tmp/train/vae.bin" -o "$tmp/s.png")
if command -v hyperfine >/dev/null 2>&1; then
    method="hyperfine, 3 warmup + 30 runs"
    # --shell=none: time the process itself, no shell in between.
    hyperfine --shell=none --warmup 3 --runs 30 --export-json "$tmp/hf.json" \
        "$(printf '%q ' "${sample_cmd[@]}")" || die "hyperfine failed"
    # hyperfine's JSON has one "key": value per line; seconds -> ms.
    json_ms() { sed -n "s/^ *\"$1\": *\([-0-9.eE+]*\),\{0,1\}$/\1/p" "$tmp/hf.json" |
                    head -n 1 | awk '{ printf "%.1f", $1 * 1000 }'; }
    mean_ms="$(json_ms mean)"
    max_ms="$(json_ms max)"
else
    method="bash loop, 3 warmup + 30 runs (hyperfine not found)"
    for _ in 1 2 3; do "${sample_cmd[@]}" >/dev/null || die "vae sample failed"; done
    : >"$tmp/times.txt"
    for _ in $(seq 30); do
        t0="$(date +%s%N)"
        "${sample_cmd[@]}" >/dev/null || die "vae sample failed"
        t1="$(date +%s%N)"
        echo $(( t1 - t0 )) >>"$tmp/times.txt"
    done
    mean_ms="$(awk '{ s += $1 } END { printf "%.1f", s / NR / 1e6 }' "$tmp/times.txt")"
    max_ms="$(awk '$1 > m { m = $1 } END { printf "%.1f", m / 1e6 }' "$tmp/times.txt")"
fi
if [ -z "$mean_ms" ] || [ -z "$max_ms" ]; then die "could not read the sample timings"; fi
ok="$(awk -v a="$mean_ms" -v b="$max_ms" -v lim="$SAMPLE_LIMIT_MS" \
        'BEGIN { print (a <= lim && b <= lim) ? 1 : 0 }')"
verdict "$ok"
line="sample latency: mean $mean_ms ms, max $max_ms ms ($method), limit $SAMPLE_LIMIT_MS ms: $result"
echo "$line"
summary+=("$line")

# --- e. quality --------------------------------------------------------------------
if [ "$quality" = 1 ]; then
    echo
    echo "=== e. quality: vae train --epochs 15"
    mkdir -p "$tmp/quality"
    echo "\$ $vae train --epochs 15 --json --data data --out \$TMP/quality --ckpt \$TMP/quality/vae.bin"
    "$vae" train --epochs 15 --json --data data --out "$tmp/quality" \
        --ckpt "$tmp/quality/vae.bin" | tee "$tmp/quality.jsonl" ||
        die "vae train failed"
    loss="$(sed -n 's/.*"test_loss":\([-0-9.eE+]*\).*/\1/p' "$tmp/quality.jsonl" | tail -n 1)"
    [ -n "$loss" ] || die "no test_loss in the output of vae train --json"
    ok="$(awk -v l="$loss" -v lim="$LOSS_LIMIT" 'BEGIN { print (l <= lim) ? 1 : 0 }')"
    verdict "$ok"
    line="quality: test loss after 15 epochs $loss nats/image, limit $LOSS_LIMIT: $result"
    echo "$line"
    summary+=("$line")
else
    summary+=("quality: not run (use --quality)")
fi

# --- f. the VAE family ------------------------------------------------------------
if [ "$family" = 1 ]; then
    echo
    echo "=== f. family: a 784-500-500-20 tanh model against its sgemm floor"
    bench_ratio "family speed (500,500 tanh)" "$RATIO_LIMIT" "$tmp/deep.out" \
        --data data --epochs 3 --hidden 500,500 --latent 20 --act tanh

    echo
    echo "=== f. family: the importance-weighted bound"
    mkdir -p "$tmp/dyn"
    echo "\$ $vae train --epochs 15 --binarize dynamic --data data --out \$TMP/dyn --ckpt \$TMP/dyn/vae.bin"
    "$vae" train --epochs 15 --binarize dynamic --json --data data --out "$tmp/dyn" \
        --ckpt "$tmp/dyn/vae.bin" | tail -n 1 || die "vae train failed"
    iws=()
    elbo=""
    for k in 1 50 5000; do
        echo "\$ $vae eval --iw $k --json --ckpt \$TMP/dyn/vae.bin --data data"
        "$vae" eval --iw "$k" --json --ckpt "$tmp/dyn/vae.bin" --data data | tee "$tmp/iw.json" ||
            die "vae eval failed"
        elbo="$(sed -n 's/.*"test_loss":\([-0-9.eE+]*\).*/\1/p' "$tmp/iw.json")"
        iws+=("$(sed -n 's/.*"iw_nll":\([-0-9.eE+]*\).*/\1/p' "$tmp/iw.json")")
    done
    ok="$(awk -v e="$elbo" -v a="${iws[0]}" -v b="${iws[1]}" -v c="${iws[2]}" \
        'BEGIN { d = a - e; if (d < 0) d = -d; print (d <= 0.01 * e && b < a && c < b) ? 1 : 0 }')"
    verdict "$ok"
    line="family IW: -ELBO $elbo, K=1 ${iws[0]}, K=50 ${iws[1]}, K=5000 ${iws[2]} nats/image: $result"
    echo "$line"
    summary+=("$line")

    echo "\$ $vae bench --iw 5000 --ckpt \$TMP/dyn/vae.bin --data data"
    "$vae" bench --iw 5000 --ckpt "$tmp/dyn/vae.bin" --data data | tee "$tmp/iwb.out" ||
        die "vae bench --iw failed"
    ratio="$(sed -n 's/.*thread-s  ratio \([0-9.]*\).*/\1/p' "$tmp/iwb.out")"
    ok="$(awk -v r="$ratio" -v lim="$IW_RATIO_LIMIT" 'BEGIN { print (r != "" && r <= lim) ? 1 : 0 }')"
    verdict "$ok"
    line="family IW speed: K=5000 over the test set, ratio to its sgemm floor $ratio, limit $IW_RATIO_LIMIT: $result"
    echo "$line"
    summary+=("$line")
else
    summary+=("family: not run (use --family)")
fi

# --- g. the conv VAE ----------------------------------------------------------------
if [ "$conv" = 1 ]; then
    echo
    echo "=== g. conv: the article's convolutional VAE against its sgemm floor"
    bench_ratio "conv speed" "$CONV_RATIO_LIMIT" "$tmp/conv.out" \
        --data data --arch conv --likelihood gaussian --beta 0.1 --epochs 1
else
    summary+=("conv: not run (use --conv)")
fi

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
[ "$missed" = 0 ] || exit 1
