#!/usr/bin/env bash
# iwae_table1.sh - reproduce Table 1 of Burda, Grosse & Salakhutdinov,
# "Importance Weighted Autoencoders" (ICLR 2016): MNIST, one stochastic
# layer, test negative log-likelihood in nats estimated with K = 5000.
#
# usage: scripts/iwae_table1.sh [options]   (--help for them)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF
usage: $0 [--results DIR] [--stages N] [--data DIR] [--eval-k K] [--jobs J]
          [--cells LIST] [--vae PATH] [--mpirun PREFIX] [--table]

Trains and evaluates the cells of the table (the paper's setup: 784-200-200-
50-200-200-784, tanh, dynamically binarized MNIST, Glorot init, batch 20,
Adam with eps 1e-4, the staged schedule of 3^i epochs at 1e-3 * 10^(-i/7))
and prints the paper's number, ours and the difference in each cell, with
the time each cell took, the test ELBO as a mean over 20 draws (one vae eval
per seed; one draw is noisy) and the active units (vae eval --active-units;
two layers: h1+h2) beside the paper's. Everything stays under the results
folder, one sub-folder per cell (checkpoint, a copy of it at the end of each stage,
train.log, eval-*.json). Killed and run again, it resumes every unfinished
run where it stopped (vae train --resume) and skips what is finished; a
smaller --stages later evaluates the kept copy of that stage.

  --results DIR   results folder (default results/iwae-table1)
  --stages N      the schedule's first N stages only (1-8; default 8, the
                  paper's 3,280 epochs; 2 stages are 4 epochs)
  --data DIR      MNIST-format data (default data/, fetched if missing)
  --eval-k K      importance samples of the test NLL (default 5000)
  --jobs J        cells trained side by side, one thread each (default 1;
                  with 1, a cell uses every core)
  --cells LIST    comma-separated subset of: vae-k1,vae-k5,vae-k50,
                  iwae-k5,iwae-k50, the encoder gradient estimators
                  iwae-k5-stl,iwae-k5-dreg, and the same cells of the
                  paper's model with two stochastic layers, 2l-vae-k1,
                  2l-vae-k5,2l-vae-k50,2l-iwae-k5,2l-iwae-k50 (784-200-200-
                  100-100-100-50: --latent 100,50 --hidden 200,200/100,100)
                  and 2l-iwae-k5-dreg
                  (default the paper's five one-layer cells; IWAE with
                  k = 1 is the same objective as the VAE with k = 1, so its
                  row shows that cell)
  --vae PATH      the vae binary (default build/vae, built if missing)
  --table         print the table from what the results folder holds, and
                  train and evaluate nothing (an unfinished cell shows the
                  epochs it has done)
  --mpirun PREFIX a launcher put before each vae train and vae eval, split
                  at spaces, e.g. "mpirun -np 2 -x OPENBLAS_NUM_THREADS=1"
                  (each rank otherwise starts a thread per core; the vae
                  must be built with MPI). A stop (Ctrl-C) then signals
                  mpirun, which passes SIGTERM on and SIGKILLs a second
                  later: the last whole checkpoint stays, but the exact
                  state may not be saved (docs/mpi.md)

Cells whose objective or estimator this vae does not have yet (vae train
--help lists no --objective or --estimator) are shown as "not run" with the
reason.
EOF
}

results="$root/results/iwae-table1"
stages=8
data="$root/data"
eval_k=5000
jobs=1
cells="vae-k1,vae-k5,vae-k50,iwae-k5,iwae-k50"
vae="$root/build/vae"
launcher=()
table_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --table) table_only=1; shift; continue ;;
        --results|--stages|--data|--eval-k|--jobs|--cells|--vae|--mpirun)
            [ $# -ge 2 ] || { echo "iwae_table1.sh: $1 needs a value" >&2; exit 2; }
            case "$1" in
                --results) results="$2" ;; --stages) stages="$2" ;;
                --data) data="$2" ;; --eval-k) eval_k="$2" ;; --jobs) jobs="$2" ;;
                --cells) cells="$2" ;; --vae) vae="$2" ;;
                --mpirun) read -r -a launcher <<<"$2" ;;
            esac
            shift ;;
        *) echo "iwae_table1.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$stages" in [1-8]) ;; *) echo "iwae_table1.sh: --stages must be 1 to 8, not '$stages'" >&2; exit 2 ;; esac
case "$eval_k" in ''|*[!0-9]*|0) echo "iwae_table1.sh: --eval-k must be a whole number >= 1" >&2; exit 2 ;; esac
case "$jobs" in ''|*[!0-9]*|0) echo "iwae_table1.sh: --jobs must be a whole number >= 1" >&2; exit 2 ;; esac
IFS=, read -r -a wanted <<<"$cells"
for c in "${wanted[@]}"; do
    case "$c" in vae-k1|vae-k5|vae-k50|iwae-k5|iwae-k50|iwae-k5-stl|iwae-k5-dreg) ;;
        2l-vae-k1|2l-vae-k5|2l-vae-k50|2l-iwae-k5|2l-iwae-k50|2l-iwae-k5-dreg) ;;
        *) echo "iwae_table1.sh: unknown cell '$c' (see --help)" >&2; exit 2 ;; esac
done

if [ ! -x "$vae" ]; then
    if [ "$vae" != "$root/build/vae" ]; then
        echo "iwae_table1.sh: --vae $vae: no such program" >&2
        exit 2
    fi
    "$root/scripts/deps.sh"
    "$root/scripts/build.sh" "$root/build" -DVAE_TESTS=ON
fi
if [ "$data" = "$root/data" ] && [ "$table_only" = 0 ]; then
    "$root/scripts/fetch_data.sh" "$root/data" >/dev/null
fi

# Epochs in the first N stages: 3^0 + ... + 3^(N-1).
epochs=0
len=1
for ((i = 0; i < stages; i++)); do
    epochs=$((epochs + len))
    len=$((len * 3))
done

has_objective=0
# (Not "vae train --help | grep -q": grep leaving early can fail the pipe.)
train_help=$("$vae" train --help)
grep -q -- '--objective' <<<"$train_help" && has_objective=1
has_estimator=0
grep -q -- '--estimator' <<<"$train_help" && has_estimator=1
has_two=0
grep -q -- 'two stochastic layers' <<<"$train_help" && has_two=1

# The paper's Table 1 (one stochastic layer): cell -> NLL.
# Two stochastic layers: the paper's rows of that model, as 2l-CELL.
declare -A paper=([vae-k1]=86.76 [vae-k5]=86.47 [vae-k50]=86.35
                  [iwae-k1]=86.76 [iwae-k5]=85.54 [iwae-k50]=84.78
                  [2l-vae-k1]=85.33 [2l-vae-k5]=85.01 [2l-vae-k50]=84.78
                  [2l-iwae-k1]=85.33 [2l-iwae-k5]=83.89 [2l-iwae-k50]=82.90)
# Its active units (two layers: h1+h2), the same cells.
declare -A paper_units=([vae-k1]=19 [vae-k5]=20 [vae-k50]=20
                        [iwae-k1]=19 [iwae-k5]=22 [iwae-k50]=25
                        [2l-vae-k1]=16+5 [2l-vae-k5]=17+5 [2l-vae-k50]=17+5
                        [2l-iwae-k1]=16+5 [2l-iwae-k5]=21+5 [2l-iwae-k50]=26+7)

# A cell's name: [2l-]OBJ-kK[-ESTIMATOR]. Sets layers (1 or 2), obj, k and
# est (empty: the bound's own gradient).
parse_cell() {
    local name="$1"
    layers=1
    if [ "${name#2l-}" != "$name" ]; then
        layers=2
        name="${name#2l-}"
    fi
    obj="${name%%-*}"
    local rest="${name#*-k}"
    k="${rest%%-*}"
    est=""
    [ "$rest" != "$k" ] && est="${rest#*-}"
    return 0
}

# The training options of a cell (its objective, k and estimator after the
# setup).
cell_opts() {
    local layers obj k est
    parse_cell "$1"
    local opts=(--hidden 200,200 --latent 50 --act tanh --binarize dynamic --batch 20
                --schedule staged --adam-eps 1e-4 --init glorot)
    [ "$layers" = 2 ] && opts[1]=200,200/100,100 && opts[3]=100,50
    # The paper's VAE rows train the ELBO (its reconstruction term averaged
    # over k draws), its IWAE rows the importance-weighted bound.
    [ "$obj" = vae ] && obj=elbo
    if [ "$obj" = iwae ] || [ "$k" != 1 ]; then
        opts+=(--objective "$obj" --k "$k")
    fi
    [ -n "$est" ] && opts+=(--estimator "$est")
    printf '%s\n' "${opts[@]}"
}

# "epoch" from vae info --json of a checkpoint (0 if there is none).
epochs_done() {
    [ -f "$1" ] || { echo 0; return; }
    "$vae" info --ckpt "$1" --json | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p'
}

# Epochs at the end of stage S: 3^0 + ... + 3^(S-1).
stage_end() {
    local e=0 len=1 i
    for ((i = 0; i < $1; i++)); do
        e=$((e + len))
        len=$((len * 3))
    done
    echo "$e"
}

# Trains (or resumes) one cell up to $epochs, one stage at a time, keeping
# a copy of the checkpoint at the end of each stage (CELL/stageS.bin: the
# staged schedule does not depend on the run's length, so a run of N stages
# is the first N stages of a longer one, and a later --stages N reads its
# snapshot instead of training again); then evaluates stage $stages with
# K = $eval_k. Writes CELL/status: done, or "not run: why".
run_cell() {
    local cell="$1" threads="$2" dir="$results/$1"
    mkdir -p "$dir"
    local layers obj k est
    parse_cell "$cell"
    if [ "$has_objective" = 0 ] && { [ "$obj" = iwae ] || [ "$k" != 1 ]; }; then
        echo "not run: this vae has no --objective/--k yet" >"$dir/status"
        return 0
    fi
    if [ "$has_estimator" = 0 ] && [ -n "$est" ]; then
        echo "not run: this vae has no --estimator yet" >"$dir/status"
        return 0
    fi
    if [ "$has_two" = 0 ] && [ "$layers" = 2 ]; then
        echo "not run: this vae has no two stochastic layers yet" >"$dir/status"
        return 0
    fi
    local done_e
    done_e=$(epochs_done "$dir/vae.bin")
    local thr=()
    [ "$threads" -gt 0 ] && thr=(--threads "$threads")
    local s end
    for ((s = 1; s <= stages; s++)); do
        end=$(stage_end "$s")
        if [ "$done_e" -lt "$end" ]; then
            local how=()
            mapfile -t how < <(cell_opts "$cell")
            [ "$done_e" -gt 0 ] || [ -f "$dir/vae.bin" ] && how=(--resume)
            echo "$cell: training epochs $((done_e + 1))-$end, stage $s (log: $dir/train.log)"
            if ! in_background "$dir" "${launcher[@]}" "$vae" train --data "$data" \
                --ckpt "$dir/vae.bin" --out "$dir/out" --epochs "$end" --json "${thr[@]}" \
                "${how[@]}" \
                >>"$dir/train.log" 2>>"$dir/train.err"; then
                echo "not run: training stopped (see $dir/train.err)" >"$dir/status"
                return 1
            fi
            done_e=$end
        fi
        if [ "$done_e" = "$end" ] && [ ! -f "$dir/stage$s.bin" ]; then
            cp "$dir/vae.bin" "$dir/stage$s.bin.tmp"
            mv "$dir/stage$s.bin.tmp" "$dir/stage$s.bin"
        fi
    done
    local au=()
    grep -q -- '--active-units' <<<"$("$vae" eval --help)" && au=(--active-units)
    local snap="$dir/stage$stages.bin"
    if [ ! -f "$snap" ]; then
        echo "not run: the run passed stage $stages before stage snapshots were kept" >"$dir/status"
        return 0
    fi
    local ev="$dir/eval-k$eval_k-e$epochs.json"
    if [ ! -s "$ev" ]; then
        echo "$cell: evaluating stage $stages with K = $eval_k"
        if ! in_background "$dir" "${launcher[@]}" "$vae" eval --ckpt "$snap" \
            --data "$data" --iw "$eval_k" --json "${thr[@]}" >"$ev.tmp"; then
            rm -f "$ev.tmp"
            echo "not run: evaluation failed" >"$dir/status"
            return 1
        fi
        mv "$ev.tmp" "$ev"
    fi
    # Beside the bound: the test ELBO as a mean over ELBO_DRAWS draws (one
    # draw is noisy), one vae eval per seed, and the active units.
    local el="$dir/elbo-e$epochs.jsonl"
    if [ ! -s "$el" ]; then
        echo "$cell: test ELBO over $ELBO_DRAWS draws and active units of stage $stages"
        local seed
        : >"$el.tmp"
        for ((seed = 1; seed <= ELBO_DRAWS; seed++)); do
            if ! "$vae" eval --ckpt "$snap" --data "$data" --seed "$seed" --json \
                "${thr[@]}" "${au[@]}" >>"$el.tmp"; then
                rm -f "$el.tmp"
                echo "not run: the ELBO's evaluation failed" >"$dir/status"
                return 1
            fi
        done
        mv "$el.tmp" "$el"
    fi
    echo done >"$dir/status"
}

# Runs a command in the background and waits for it, its pid in
# DIR/run.PID.pid meanwhile (PID: this script's, so that another instance
# evaluating a finished stage in the same folder keeps its own), so that a
# signal to this script reaches it (stop_all): vae train then saves its
# exact state, and the next run resumes from it.
ELBO_DRAWS=20
me=$$
in_background() { # DIR CMD...
    local dir="$1"
    shift
    "$@" &
    local pid=$!
    echo "$pid" >"$dir/run.$me.pid"
    local rc=0
    wait "$pid" || rc=$?
    rm -f "$dir/run.$me.pid"
    return "$rc"
}

# Side by side with --jobs J > 1 (one thread each), else one after another.
pids=()
stop_all() {
    trap '' INT TERM
    local f
    for f in "$results"/*/run.$me.pid; do
        [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
    done
    # The vae processes save and exit; so do the cells waiting for them.
    for f in "$results"/*/run.$me.pid; do
        while [ -f "$f" ] && kill -0 "$(cat "$f" 2>/dev/null || echo 0)" 2>/dev/null; do
            sleep 0.1
        done
    done
    wait || true
    echo "iwae_table1.sh: stopped; run it again to resume" >&2
    exit 130
}
trap stop_all INT TERM
threads=0
[ "$jobs" -gt 1 ] && threads=1
failed=0
for c in "${wanted[@]}"; do
    [ "$table_only" = 1 ] && break
    if [ "$jobs" -gt 1 ]; then
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
        run_cell "$c" "$threads" &
        pids+=($!)
    else
        run_cell "$c" "$threads" || failed=1
    fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
trap - INT TERM

# The table: each cell's NLL (K = eval_k), the paper's, the difference,
# and the hours it took (training seconds from its log plus evaluation).
value() { # FILE KEY
    sed -n "s/.*\"$2\":\([-0-9.e]*\).*/\1/p" "$1" | tail -n 1
}
cell_text() { # CELL [PAPER_CELL] -> "ours (diff) time" or the reason it was not run
    local dir="$results/$1" ev="$results/$1/eval-k$eval_k-e$epochs.json"
    local paper_nll="${paper[${2:-$1}]}"
    if [ ! -s "$ev" ]; then
        # Why there is no number: the epochs a started cell has done, or,
        # for a cell with no checkpoint, the reason its run gave (an older
        # vae, a failed start).
        local why="not run" st="" e
        [ -f "$dir/status" ] && st=$(cat "$dir/status")
        case "$st" in "not run"*) why="$st" ;; esac
        if [ -f "$dir/vae.bin" ]; then
            e=$(epochs_done "$dir/vae.bin")
            if [ "$e" -lt "$epochs" ]; then
                why="not finished: $e of $epochs epochs"
            else
                why="not evaluated yet: $epochs epochs trained"
            fi
        fi
        printf '%s' "$why"
        return
    fi
    local ours train_s eval_s
    ours=$(value "$ev" iw_nll)
    # The last line of each epoch up to the stage's end (a resumed run
    # repeats none, but keep the last if it did).
    # A finished cell keeps its log compressed (train.log.gz).
    local log="$dir/train.log"
    [ -f "$log" ] || log="$dir/train.log.gz"
    train_s=$(zcat -f -- "$log" 2>/dev/null |
              sed -n 's/.*"epoch":\([0-9]*\),.*"seconds":\([0-9.]*\).*/\1 \2/p' |
              awk -v n="$epochs" '$1 <= n {t[$1] = $2} END {for (e in t) s += t[e]; printf "%.0f", s}')
    eval_s=$(value "$ev" iw_seconds)
    awk -v o="$ours" -v p="$paper_nll" -v t="$train_s" -v e="$eval_s" \
        'BEGIN {printf "%.2f (%+.2f), %.2f h", o, o - p, (t + e) / 3600}'
    # The ELBO's mean (and the standard deviation of one draw) and the
    # active units, if evaluated.
    local el="$dir/elbo-e$epochs.jsonl"
    if [ -s "$el" ]; then
        sed -n 's/.*"test_loss":\([-0-9.e]*\).*/\1/p' "$el" |
            awk '{s += $1; q += $1 * $1; n++}
                 END {m = s / n; v = q / n - m * m; if (v < 0) v = 0;
                      printf "; ELBO %.2f (%d draws, sd %.2f)", m, n, sqrt(v)}'
        local units
        # Per layer, bottom first, joined by + as the paper writes them.
        units=$(sed -n 's/.*"active_units":\[\([0-9,]*\)\].*"latent":\[\([0-9,]*\)\].*/\1 of \2/p' "$el" |
                head -n 1 | tr , +)
        [ -n "$units" ] && printf '; %s active (paper %s)' "$units" "${paper_units[${2:-$1}]}"
    fi
}
# The VAE and IWAE rows, k = 1, 5, 50, of the cells named PREFIX{vae,iwae}-kK
# (PREFIX "" for one stochastic layer, "2l-" for two).
vae_iwae_table() { # [PREFIX]
    local pre="${1:-}" k v w
    printf '| k | VAE: paper | VAE: ours (diff), time | IWAE: paper | IWAE: ours (diff), time |\n'
    printf '|---|---|---|---|---|\n'
    for k in 1 5 50; do
        v="not asked for"; w="not asked for"
        [[ ",$cells," == *",${pre}vae-k$k,"* ]] && v=$(cell_text "${pre}vae-k$k")
        if [ "$k" = 1 ]; then
            w="$v (the same objective)"
        elif [[ ",$cells," == *",${pre}iwae-k$k,"* ]]; then
            w=$(cell_text "${pre}iwae-k$k")
        fi
        printf '| %s | %s | %s | %s | %s |\n' "$k" "${paper[${pre}vae-k$k]}" "$v" \
            "${paper[${pre}iwae-k$k]}" "$w"
    done
}
echo
echo "IWAE Table 1, MNIST, one stochastic layer: test NLL in nats (K = $eval_k)"
echo "schedule: $stages of 8 stages ($epochs epochs); paper: 8 stages"
echo
vae_iwae_table
# The model with two stochastic layers.
if [[ ",$cells," == *",2l-"* ]]; then
    echo
    echo "IWAE Table 1, MNIST, two stochastic layers: test NLL in nats (K = $eval_k)"
    echo
    vae_iwae_table 2l-
fi
# The encoder gradient estimators, beside the bound's own (iwae-k5).
if [[ ",$cells," == *",iwae-k5-"* || ",$cells," == *",2l-iwae-k5-dreg,"* ]]; then
    echo
    echo "IWAE k = 5, one stochastic layer, by the encoder's gradient estimator:"
    echo "test NLL in nats (K = $eval_k); the paper trained with the standard one"
    echo
    printf '| estimator | ours (diff from the paper'"'"'s IWAE k = 5), time |\n|---|---|\n'
    for e in standard stl dreg; do
        c="iwae-k5-$e"
        [ "$e" = standard ] && c=iwae-k5
        v="not asked for"
        [[ ",$cells," == *",$c,"* ]] && v=$(cell_text "$c" iwae-k5)
        printf '| %s | %s |\n' "$e" "$v"
    done
    if [[ ",$cells," == *",2l-iwae-k5-dreg,"* ]]; then
        echo
        echo "The same, two stochastic layers (the paper's IWAE k = 5: ${paper[2l-iwae-k5]}):"
        echo
        printf '| estimator | ours (diff), time |\n|---|---|\n'
        v="not asked for"
        [[ ",$cells," == *",2l-iwae-k5,"* ]] && v=$(cell_text 2l-iwae-k5)
        printf '| standard | %s |\n' "$v"
        printf '| dreg | %s |\n' "$(cell_text 2l-iwae-k5-dreg 2l-iwae-k5)"
    fi
fi
exit "$failed"
