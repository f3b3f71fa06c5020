#!/usr/bin/env bash
# same_bits.sh - a change that is not meant to change numbers did not: the
# same fixed-seed runs with the vae of a base commit and with this tree's,
# compared byte for byte (checkpoints' numbers whatever their format
# version, sample and reconstruction PNGs, the
# metrics without their timings, eval's output), and a run started by the
# base binary and resumed by the new one against one the base ran alone.
#
# usage: scripts/same_bits.sh [--base REV] [--new PATH]   (--help for more)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The last commit before the redesign of issue 24 (settings table, folders).
base_rev=2a19973
new=""

usage() {
    cat <<EOF
usage: $0 [--base REV] [--new PATH]

Builds the vae of commit REV (default $base_rev, the last before the
redesign) in a temporary worktree, and uses PATH as the new vae (default:
this tree built with scripts/build.sh in build/). On a small generated data
set, both run the same fixed-seed trainings: the default MLP, a conditional
model, an IWAE k = 5 run with the staged schedule and a validation split, a
short conv run, each on 1 and 2 threads; then sample, reconstruct, eval
(with --iw) and encode with each checkpoint. Every file must be the same
bytes (the metrics CSV without its seconds and images/s columns; a checkpoint
as its numbers: version 5's header fields, the parameters and moments). Then a run
the base binary starts and the new one resumes must end as the base's own.
Prints one line per comparison; exits 1 at the first difference.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --base|--new)
            [ $# -ge 2 ] || { echo "same_bits.sh: $1 needs a value" >&2; exit 2; }
            [ "$1" = --base ] && base_rev="$2" || new="$2"
            shift ;;
        *) echo "same_bits.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

tmp=$(mktemp -d /tmp/same-bits.XXXXXX)
cleanup() {
    git -C "$root" worktree remove --force "$tmp/base-src" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

git -C "$root" rev-parse --verify -q "$base_rev^{commit}" >/dev/null ||
    { echo "same_bits.sh: no commit $base_rev in this clone" >&2; exit 2; }
git -C "$root" worktree add --detach "$tmp/base-src" "$base_rev" >/dev/null 2>&1
"$tmp/base-src/scripts/build.sh" "$tmp/base-build" >/dev/null
old="$tmp/base-build/vae"
[ -n "$new" ] || new="$("$root/scripts/build.sh" "$root/build" | tail -1)"

# A small data set: 28x28 grey images of noisy strokes, labels 0-9.
mkdir -p "$tmp/data"
/usr/bin/python3 - "$tmp/data" <<'EOF'
import random, struct, sys
out = sys.argv[1]
def split(name, n, seed):
    r = random.Random(seed)
    img = bytearray(struct.pack('>IIII', 0x803, n, 28, 28))
    lab = bytearray(struct.pack('>II', 0x801, n))
    for i in range(n):
        px = bytearray(784)
        c = i % 10
        for k in range(60):
            y, x = (3 + c + k // 4) % 28, (4 + 2 * c + k % 20) % 28
            px[y * 28 + x] = r.randrange(128, 256)
        for k in range(30):
            px[r.randrange(784)] = r.randrange(256)
        img += px
        lab.append(c)
    open(f'{out}/{name}-images-idx3-ubyte', 'wb').write(img)
    open(f'{out}/{name}-labels-idx1-ubyte', 'wb').write(lab)
split('train', 600, 1)
split('t10k', 100, 2)
EOF

# A checkpoint as numbers, whatever its format version: the header fields
# the base's version (5) has, then the parameters and Adam's moments. The
# fields a later version added must hold what the base's runs had (0: the
# standard estimator), or the run is not the base's. Replaces FILE by
# FILE.nums.
ckpt_nums() { # FILE
    python3 - "$1" <<'EOF'
import struct, sys
p = sys.argv[1]
b = open(p, 'rb').read()
hsize = struct.unpack_from('<I', b, 12)[0]
base = 61 * 8                      # version 5's header
head, body = b[16:16 + hsize], b[16 + hsize:-4]
if hsize < base or any(head[base:]):
    sys.exit(f'{p}: header fields beyond version 5 are not 0 (or the header is short)')
open(p + '.nums', 'wb').write(head[:base] + body)
EOF
    rm -f "$1"
}

# Runs one case with one binary into $tmp/NAME-WHICH: train, then every
# command that reads the checkpoint.
run_case() { # WHICH BIN NAME TRAIN-ARGS...
    local which="$1" bin="$2" name="$3"
    shift 3
    local d="$tmp/$name-$which"
    mkdir -p "$d"
    env -u OPENBLAS_CORETYPE "$bin" train --data "$tmp/data" --ckpt "$d/vae.bin" \
        --out "$d/out" --json "$@" >"$d/train.json" 2>"$d/train.err"
    local label=()
    case " $* " in *" --conditional "*) label=(--label 3) ;; esac
    "$bin" sample --ckpt "$d/vae.bin" --n 32 "${label[@]}" -o "$d/sample.png" >/dev/null
    "$bin" reconstruct --ckpt "$d/vae.bin" --data "$tmp/data" -o "$d/recon.png" >/dev/null
    "$bin" eval --ckpt "$d/vae.bin" --data "$tmp/data" --iw 5 --json >"$d/eval.json"
    "$bin" encode --ckpt "$d/vae.bin" --data "$tmp/data" -o "$d/encode.csv" >/dev/null
    # Timings differ run to run: drop them from the logs.
    sed -E 's/"(seconds|images_per_s)":[0-9.e+-]+//g' "$d/train.json" >"$d/train.nums"
    sed -E 's/"[a-z_]*seconds":[0-9.e+-]+//g' "$d/eval.json" >"$d/eval.nums"
    for f in "$d"/*.bin; do ckpt_nums "$f"; done
    rm -f "$d/train.json" "$d/eval.json" "$d/train.err" "$d/out/index.html" \
        "$d/out/metrics.png" "$d/out/loss.png"
    python3 - "$d/out/metrics.csv" <<'EOF'
import csv, sys
p = sys.argv[1]
rows = list(csv.reader(open(p)))
drop = {i for i, h in enumerate(rows[0]) if h in ('seconds', 'images_per_s')}
open(p, 'w').write(''.join(','.join(c for i, c in enumerate(r) if i not in drop) + '\n'
                           for r in rows))
EOF
}

same() { # NAME
    if diff -r "$tmp/$1-old" "$tmp/$1-new" >/dev/null; then
        echo "same bits: $1 ($(find "$tmp/$1-new" -type f | wc -l) files)"
    else
        echo "DIFFERENT: $1" >&2
        diff -rq "$tmp/$1-old" "$tmp/$1-new" >&2 || true
        exit 1
    fi
}

case_() { # NAME TRAIN-ARGS...
    local name="$1"
    shift
    run_case old "$old" "$name" "$@"
    run_case new "$new" "$name" "$@"
    same "$name"
}

for t in 1 2; do
    case_ "mlp-t$t" --epochs 2 --seed 3 --threads "$t"
    case_ "cond-t$t" --epochs 2 --conditional --hidden 64 --latent 4 --threads "$t"
    case_ "iwae-t$t" --epochs 4 --objective iwae --k 5 --schedule staged --valid 100 \
        --hidden 64,64 --latent 8 --act tanh --batch 20 --init glorot --adam-eps 1e-4 \
        --binarize dynamic --threads "$t"
    case_ "conv-t$t" --epochs 1 --arch conv --hidden 8,16 --latent 4 --batch 50 \
        --threads "$t"
done

# Started by the base, resumed by the new binary: the base's own run.
args=(--epochs 2 --objective iwae --k 5 --schedule staged --hidden 64,64 --latent 8
      --act tanh --batch 20 --init glorot --threads 1)
for which in old new; do
    d="$tmp/resume-$which"
    mkdir -p "$d"
    "$old" train --data "$tmp/data" --ckpt "$d/vae.bin" --out "$d/out" "${args[@]}" >/dev/null
done
"$old" train --data "$tmp/data" --ckpt "$tmp/resume-old/vae.bin" --out "$tmp/resume-old/out" \
    --epochs 4 --resume >/dev/null
"$new" train --data "$tmp/data" --ckpt "$tmp/resume-new/vae.bin" --out "$tmp/resume-new/out" \
    --epochs 4 --resume >/dev/null
ckpt_nums "$tmp/resume-old/vae.bin"
ckpt_nums "$tmp/resume-new/vae.bin"
if cmp -s "$tmp/resume-old/vae.bin.nums" "$tmp/resume-new/vae.bin.nums"; then
    echo "same bits: resume (base to epoch 2, then each to epoch 4)"
else
    echo "DIFFERENT: resume" >&2
    exit 1
fi
echo "same_bits.sh: every file the same as $base_rev's"
