#!/usr/bin/env bash
# iwae_table1_smoke.sh VAE_BIN - scripts/iwae_table1.sh end to end on a small
# generated data set: --stages 2 (4 epochs) of the VAE k = 1 cell, evaluated
# with K = 10; run again it trains nothing and prints the same table; the k = 5
# cells and a two-layer cell give their rows (active units beside the paper's);
# --table shows an unfinished cell's epochs and trains nothing;
# killed mid-run, it resumes. Exits non-zero on any failure.
set -euo pipefail
vae="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp=$(mktemp -d /tmp/iwae-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "iwae_table1_smoke: $*" >&2; exit 1; }
# The epochs a checkpoint holds (vae info --json).
epoch_of() { "$vae" info --ckpt "$1" --json | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p'; }

# IDX files: n 28x28 images of a bar at a place that moves with i, labels i % 10.
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
split() { # NAME N
    local n="$2" i row img="$tmp/data/$1-images-idx3-ubyte" lab="$tmp/data/$1-labels-idx1-ubyte"
    { printf '\x00\x00\x08\x03'; be32 "$n"; be32 28; be32 28; } >"$img"
    { printf '\x00\x00\x08\x01'; be32 "$n"; } >"$lab"
    for ((i = 0; i < n; i++)); do
        row=$((4 + i % 20))
        head -c $((row * 28)) /dev/zero >>"$img"
        printf '\xff%.0s' {1..28} >>"$img"
        head -c $(((27 - row) * 28)) /dev/zero >>"$img"
        printf "\\x0$((i % 10))" >>"$lab"
    done
}
mkdir -p "$tmp/data"
split train 200
split t10k 40
run() { "$root/scripts/iwae_table1.sh" --vae "$vae" --data "$tmp/data" --results "$tmp/r" \
        --stages 2 --eval-k 10 "$@"; }

out=$(run --cells vae-k1) || fail "first run failed: $out"
echo "$out"
grep -q 'training epochs 1-1, stage 1' <<<"$out" && grep -q 'training epochs 2-4, stage 2' <<<"$out" ||
    fail "no training stage by stage in the first run"
grep -Eq '^\| 1 \| 86\.76 \| [0-9]+\.[0-9]+ \([-+][0-9.]+\), [0-9.]+ h; ELBO [0-9.]+ \(20 draws, sd [0-9.]+\); [0-9]+ of 50 active \(paper 19\) \|' <<<"$out" ||
    fail "no VAE k = 1 row with a number, its ELBO over 20 draws and its active units beside the paper's"
[ "$(wc -l <"$tmp/r/vae-k1/elbo-e4.jsonl")" = 20 ] || fail "not 20 evaluations of the ELBO"
[ "$(epoch_of "$tmp/r/vae-k1/vae.bin")" = 4 ] ||
    fail "the checkpoint does not hold 4 epochs"
for s in 1 2; do
    [ "$(epoch_of "$tmp/r/vae-k1/stage$s.bin")" = $((s == 1 ? 1 : 4)) ] ||
        fail "no snapshot of stage $s"
done
# A shorter schedule later: the kept stage-1 copy is evaluated, nothing trained.
one=$(run --cells vae-k1 --stages 1) || fail "the --stages 1 run failed: $one"
grep -q 'training epochs' <<<"$one" && fail "--stages 1 trained again"
grep -q 'evaluating stage 1' <<<"$one" || fail "--stages 1 did not evaluate the stage-1 copy"
grep -Eq '^\| 1 \| 86\.76 \| [0-9]+\.[0-9]+ \(' <<<"$one" || fail "no number for stage 1"
again=$(run --cells vae-k1) || fail "second run failed"
grep -q 'training epochs' <<<"$again" && fail "the second run trained again"
[ "$(grep '^| 1 ' <<<"$out")" = "$(grep '^| 1 ' <<<"$again")" ] || fail "the table changed"
# The k = 5 cells: the K-sample ELBO and the IWAE, each stored in its
# checkpoint, and a number in the table.
other=$(run --cells vae-k5,iwae-k5) || fail "the k = 5 cells failed: $other"
echo "$other"
for c in vae-k5 iwae-k5; do
    info=$("$vae" info --ckpt "$tmp/r/$c/vae.bin" --json)
    grep -q '"k":5' <<<"$info" || fail "$c: not trained with k = 5"
done
grep -q '"objective":"iwae"' <<<"$("$vae" info --ckpt "$tmp/r/iwae-k5/vae.bin" --json)" ||
    fail "iwae-k5 not trained on the IW bound"
grep -Eq '^\| 5 \| 86\.47 \| [0-9]+\.[0-9]+ \(' <<<"$other" || fail "no vae-k5 number"
grep -Eq '\| 85\.54 \| [0-9]+\.[0-9]+ \(' <<<"$other" || fail "no iwae-k5 number"
# A two-layer cell: its own table, the active units of h1+h2 beside the paper's.
two=$(run --cells 2l-vae-k1) || fail "the two-layer cell failed: $two"
grep -Eq '"latent":100,.*"latent2":50,' <<<"$("$vae" info --ckpt "$tmp/r/2l-vae-k1/vae.bin" --json)" ||
    fail "2l-vae-k1 has not two stochastic layers of 100 and 50"
grep -Eq '^\| 1 \| 85\.33 \| [0-9]+\.[0-9]+ \(.*; [0-9]+\+[0-9]+ of 100\+50 active \(paper 16\+5\) \|' <<<"$two" ||
    fail "no two-layer VAE k = 1 row with its active units per layer beside the paper's: $two"
# Killed in the middle of a longer run (SIGTERM to the script, as a
# session's end sends), then run again: it resumes where vae train saved.
"$root/scripts/iwae_table1.sh" --vae "$vae" --data "$tmp/data" --results "$tmp/r" \
    --stages 6 --eval-k 10 --cells vae-k1 >"$tmp/long.txt" 2>&1 &
pid=$!
for _ in $(seq 3000); do
    grep -q '"epoch":8,' "$tmp/r/vae-k1/train.log" 2>/dev/null && break
    sleep 0.01
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "the killed script exited $rc, not 130: $(cat "$tmp/long.txt")"
grep -q 'interrupted by SIGTERM' "$tmp/r/vae-k1/train.err" || fail "vae train was not stopped"
done_e=$(epoch_of "$tmp/r/vae-k1/vae.bin")
[ "$done_e" -ge 8 ] && [ "$done_e" -lt 364 ] || fail "after the kill the run holds $done_e epochs"
# --table: the unfinished cell's epochs, nothing trained or evaluated.
shown=$("$root/scripts/iwae_table1.sh" --vae "$vae" --data "$tmp/data" --results "$tmp/r" \
        --stages 6 --eval-k 10 --cells vae-k1 --table) || fail "--table failed: $shown"
grep -q "^| 1 | 86.76 | not finished: $done_e of 364 epochs |" <<<"$shown" ||
    fail "--table does not show $done_e of 364 epochs: $shown"
grep -q 'training epochs\|evaluating' <<<"$shown" && fail "--table trained or evaluated"
[ "$(epoch_of "$tmp/r/vae-k1/vae.bin")" = "$done_e" ] ||
    fail "--table changed the checkpoint"
resumed=$("$root/scripts/iwae_table1.sh" --vae "$vae" --data "$tmp/data" --results "$tmp/r" \
          --stages 5 --eval-k 10 --cells vae-k1) || fail "the resumed run failed"
grep -q "training epochs $((done_e + 1))-" <<<"$resumed" || fail "not resumed at $((done_e + 1))"
grep -q "training epochs [0-9]*-121, stage 5" <<<"$resumed" || fail "stage 5 not trained"
[ "$(epoch_of "$tmp/r/vae-k1/stage5.bin")" = 121 ] ||
    fail "no snapshot of stage 5"
grep -q '^| 1 | 86.76 | [0-9]' <<<"$resumed" || fail "no table after the resume"
# With MPI (VAE_MPIRUN, set by CMake): a cell through --mpirun, 2 ranks of
# one thread; every vae train and vae eval runs under the launcher.
if [ -n "${VAE_MPIRUN:-}" ]; then
    launcher="$VAE_MPIRUN --allow-run-as-root --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS=1"
    ranks=$("$root/scripts/iwae_table1.sh" --vae "$vae" --data "$tmp/data" --results "$tmp/rm" \
            --stages 2 --eval-k 10 --cells vae-k1 --mpirun "$launcher") ||
        fail "the run under --mpirun failed: $ranks"
    grep -Eq '^\| 1 \| 86\.76 \| [0-9]+\.[0-9]+ \(' <<<"$ranks" || fail "no number under --mpirun"
    [ "$(epoch_of "$tmp/rm/vae-k1/vae.bin")" = 4 ] ||
        fail "under --mpirun the run does not hold 4 epochs"
    [ "$(grep -c '"epoch"' "$tmp/rm/vae-k1/train.log")" = 4 ] ||
        fail "under --mpirun the log does not hold 4 epochs (one rank prints)"
    echo "iwae_table1_smoke: --mpirun (2 ranks): $(grep '^| 1 ' <<<"$ranks")"
fi
echo "iwae_table1_smoke: passed (stopped at $done_e epochs, resumed to 121)"
