#!/usr/bin/env bash
# run.sh - set everything up and train: deps, build, MNIST, `vae train --epochs 15`.
#
# usage: scripts/run.sh [vae train options...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<EOF
usage: $0 [vae train options...]

Installs missing Debian packages (scripts/deps.sh), builds vae in build/
(scripts/build.sh), fetches MNIST into data/ (scripts/fetch_data.sh), then
runs, from the repo root:
    build/vae train --epochs 15 [options...]
so data/, out/ (the per-epoch pictures and metrics) and vae.bin are at the
repo root, and git ignores them. Options are passed to 'vae train' as given;
an --epochs of yours replaces the default 15.

Run again, it never destroys the earlier run: when vae.bin holds one (and
you gave none of --ckpt, --resume, --force), it continues that run with
--resume if it has fewer epochs than asked for, and otherwise says so and
evaluates it. --force starts over; --ckpt FILE trains another run.
See 'build/vae train --help' for the options.
EOF
}

for arg in "$@"; do
    case "$arg" in -h|--help) usage; exit 0 ;; esac
done

# The CLI rejects an option given twice, so add the default only when the
# user did not choose an epoch count.
defaults=(--epochs 15)
epochs=15
own_run=0 # the user chose the checkpoint or what happens to it
prev=""
for arg in "$@"; do
    case "$arg" in
        --epochs) defaults=() ;;
        --epochs=*) defaults=(); epochs="${arg#--epochs=}" ;;
        --ckpt|--ckpt=*|--resume|--force) own_run=1 ;;
    esac
    [ "$prev" = "--epochs" ] && epochs="$arg"
    prev="$arg"
done

"$root/scripts/deps.sh"
# The same build as scripts/test.sh (tests included), so the two never
# flip each other's CMake cache.
"$root/scripts/build.sh" "$root/build" -DVAE_TESTS=ON
"$root/scripts/fetch_data.sh" "$root/data"

cd "$root"
case "$epochs" in ''|*[!0-9]*) own_run=1 ;; esac # vae train explains the value
if [ "$own_run" = 0 ] && [ -e vae.bin ]; then
    if ! info=$(build/vae info --ckpt vae.bin --json); then
        echo "run.sh: vae.bin is in the way (see above); move it, or pass --force" \
             "to replace it or --ckpt FILE to train into another file" >&2
        exit 1
    fi
    done_epochs=$(printf '%s\n' "$info" | sed -n 's/.*"epoch":\([0-9]*\).*/\1/p')
    if [ "$done_epochs" -ge "$epochs" ]; then
        echo "run.sh: vae.bin already holds a finished run of $done_epochs epochs" \
             "(pictures in out/); its test loss:"
        build/vae eval --ckpt vae.bin
        echo "run.sh: to train again from scratch: scripts/run.sh --force;" \
             "for more epochs: scripts/run.sh --epochs N"
        exit 0
    fi
    echo "run.sh: continuing the run in vae.bin ($done_epochs of $epochs epochs" \
         "done) with --resume; scripts/run.sh --force starts over"
    exec build/vae train "${defaults[@]}" --resume "$@"
fi
exec build/vae train "${defaults[@]}" "$@"
