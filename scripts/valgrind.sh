#!/usr/bin/env bash
# valgrind.sh - memcheck every vae command on a small generated data set:
# no invalid read or write, no use of uninitialised memory, no leak.
#
# usage: scripts/valgrind.sh [BUILD_DIR]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF2
usage: $0 [BUILD_DIR]

Builds vae without -march=native (valgrind 3.19 has no AVX-512) in BUILD_DIR
(default: build-valgrind), writes a data set of 300 training and 100 test
images (28x28, generated here, no MNIST needed) to a temp folder, and runs
under valgrind --tool=memcheck --leak-check=full --error-exitcode=1:
  vae train --epochs 2 --batch 50 --hidden 32 --latent 4 --threads 2
  vae train --epochs 3 --resume
  vae sample --n 16, vae reconstruct --n 8, vae eval --iw 3, vae export,
  vae interpolate --steps 4, vae score --iw 3 --top 4, vae probe --k 3,
  vae manifold (the latent map, drawn by gnuplot)
  vae train --arch conv --hidden 4,8,16 --latent 4 --epochs 1, vae sample, vae info
  vae train --latent 4,2 --hidden 32/8 --objective iwae --k 3 --epochs 1 (two
  stochastic layers), vae eval --iw 3 --active-units, vae sample, vae encode,
  vae traverse --steps 5
  vae export of the conv model, vae train --force over it
  vae bench --epochs 1, vae import of a folder of the PNGs written above
  vae sample -o over a checkpoint (refused, exit 2)
Exits 1 if memcheck reports any error or leak (definite, indirect or possible).
EOF2
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
build="${1:-$root/build-valgrind}"
command -v valgrind >/dev/null || "$root/scripts/deps.sh" --dev
"$root/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVAE_NATIVE=OFF \
    -DVAE_TESTS=OFF >/dev/null
vae="$build/vae"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vae-valgrind.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT

# IDX files: a big-endian header, then bytes (awk in the C locale writes
# each value as one byte).
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
write_split() { # NAME COUNT SEED
    local name="$1" n="$2" seed="$3"
    { be32 $((0x803)); be32 "$n"; be32 28; be32 28
      LC_ALL=C awk -v n="$n" -v s="$seed" 'BEGIN {
          for (i = 0; i < n; i++) { p = (i * 7 + s) % 20 + 4
              for (y = 0; y < 28; y++) for (x = 0; x < 28; x++)
                  printf "%c", ((i % 2 ? x : y) == p && y > 3 && y < 24 && x > 3 && x < 24) ? 255 : 0 } }'
    } > "$tmp/$name-images-idx3-ubyte"
    { be32 $((0x801)); be32 "$n"
      LC_ALL=C awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "%c", i % 10 }'
    } > "$tmp/$name-labels-idx1-ubyte"
}
write_split train 300 1
write_split t10k 100 2

vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
    --show-leak-kinds=definite,indirect,possible --track-origins=yes --error-exitcode=1 -q)
# OpenBLAS picks its kernels from cpuid, which valgrind reports; name a core
# every x86-64 machine runs, the same under valgrind and without it.
export OPENBLAS_CORETYPE=Haswell
run() {
    echo "\$ valgrind vae $*"
    "${vg[@]}" "$vae" "$@" >"$tmp/out.txt" 2>"$tmp/err.txt" || {
        cat "$tmp/out.txt" "$tmp/err.txt" >&2
        echo "valgrind.sh: memcheck failed on: vae $*" >&2
        exit 1
    }
    grep -v '^$' "$tmp/out.txt" | tail -n 2
}
common=(--data "$tmp" --ckpt "$tmp/vae.bin")
run train "${common[@]}" --out "$tmp/out" --epochs 2 --batch 50 --hidden 32 --latent 4 --threads 2
run train "${common[@]}" --out "$tmp/out" --epochs 3 --resume --threads 2
run sample --ckpt "$tmp/vae.bin" --n 16 -o "$tmp/s.png"
run reconstruct "${common[@]}" --n 8 -o "$tmp/r.png"
run eval "${common[@]}" --iw 3
run export --ckpt "$tmp/vae.bin" -o "$tmp/vae.safetensors"
run interpolate "${common[@]}" --steps 4 -o "$tmp/i.png"
run score "${common[@]}" --iw 3 --top 4 -o "$tmp/worst.png"
run probe "${common[@]}" --k 3
run manifold "${common[@]}" -o "$tmp/map.png"
run train --data "$tmp" --ckpt "$tmp/conv.bin" --out "$tmp/conv" --arch conv --hidden 4,8,16 \
    --latent 4 --epochs 1 --batch 50 --threads 2
run sample --ckpt "$tmp/conv.bin" --n 8 -o "$tmp/conv.png"
run info --ckpt "$tmp/conv.bin"
two=(--data "$tmp" --ckpt "$tmp/two.bin")
run train "${two[@]}" --out "$tmp/two" --latent 4,2 --hidden 32/8 --objective iwae --k 3 \
    --epochs 1 --batch 50 --threads 2
run eval "${two[@]}" --iw 3 --active-units
run sample --ckpt "$tmp/two.bin" --n 8 -o "$tmp/two.png"
run encode "${two[@]}" -o "$tmp/two.csv"
run traverse "${two[@]}" --steps 5 -o "$tmp/t.png"
run export --ckpt "$tmp/conv.bin" -o "$tmp/conv.safetensors"
run train --data "$tmp" --ckpt "$tmp/conv.bin" --out "$tmp/conv" --hidden 8 --latent 2 \
    --epochs 1 --batch 50 --threads 2 --force
run bench --data "$tmp" --epochs 1 --batch 50 --hidden 32 --latent 4 --threads 2
mkdir "$tmp/pics"
cp "$tmp/s.png" "$tmp/r.png" "$tmp/i.png" "$tmp/t.png" "$tmp/two.png" "$tmp/pics/"
run import "$tmp/pics" -o "$tmp/imported" --size 28x28 --test-fraction 0.4
# A refused command (exit 2: -o over the checkpoint) is clean too; memcheck's
# own failure is exit 1.
echo "\$ valgrind vae sample --ckpt \$TMP/vae.bin -o \$TMP/vae.bin (refused)"
rc=0
"${vg[@]}" "$vae" sample --ckpt "$tmp/vae.bin" -o "$tmp/vae.bin" >"$tmp/out.txt" \
    2>"$tmp/err.txt" || rc=$?
if [ "$rc" != 2 ]; then
    cat "$tmp/out.txt" "$tmp/err.txt" >&2
    echo "valgrind.sh: expected exit 2 from the refused command, got $rc" >&2
    exit 1
fi
echo "valgrind.sh: memcheck clean: no errors, no leaks"
