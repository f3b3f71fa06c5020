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
so data/, samples/ and vae.bin are at the repo root. Options are passed to
'vae train' as given; an --epochs of yours replaces the default 15.
See 'build/vae train --help' for the options.
EOF
}

for arg in "$@"; do
    case "$arg" in -h|--help) usage; exit 0 ;; esac
done

# The CLI rejects an option given twice, so add the default only when the
# user did not choose an epoch count.
defaults=(--epochs 15)
for arg in "$@"; do
    case "$arg" in --epochs|--epochs=*) defaults=() ;; esac
done

"$root/scripts/deps.sh"
# The same build as scripts/test.sh (tests included), so the two never
# flip each other's CMake cache.
"$root/scripts/build.sh" "$root/build" -DVAE_TESTS=ON
"$root/scripts/fetch_data.sh" "$root/data"

cd "$root"
exec build/vae train "${defaults[@]}" "$@"
