#!/usr/bin/env bash
# lib_check.sh - libvae as a program of its users sees it: installed into a
# temporary prefix, examples/anomaly.c built against the installed files
# (pkg-config, CMake's find_package(vae), and libvae.a), run on a small
# model trained on generated data, docs/library.md's first program and
# Python snippet run on it, and the shared library's exports and SONAME
# checked. Exits non-zero at the first failure, saying what failed.
#
# usage: scripts/lib_check.sh [BUILD_DIR]   (default build/; built first)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
build="${1:-$root/build}"
tmp=$(mktemp -d /tmp/lib-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "lib_check: $*" >&2; exit 1; }

# Build (configure first if BUILD_DIR is new), then install.
if [ -f "$build/CMakeCache.txt" ]; then
    cmake --build "$build" --parallel "$(nproc)" >/dev/null
else
    "$root/scripts/build.sh" "$build" >/dev/null
fi
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || fail "cmake --install failed"
libdir="$prefix/$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")"
so="$libdir/libvae.so.0"
for f in "$prefix/include/vae.h" "$so" "$libdir/libvae.so" "$libdir/libvae.a" \
         "$libdir/pkgconfig/vae.pc" "$libdir/cmake/vae/vaeConfig.cmake" \
         "$libdir/cmake/vae/vaeConfigVersion.cmake" "$prefix/bin/vae"; do
    [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
echo "installed into $prefix (libraries in ${libdir#"$prefix"/})"

# Exports: exactly the VAE_API calls of include/vae.h, in both libraries;
# the SONAME; and no Open MPI (a library call is one process).
api=$(sed -n 's/^VAE_API [^(]*[ *]\(vae_[a-z_0-9]*\)(.*/\1/p' "$root/include/vae.h" | sort)
[ -n "$api" ] || fail "no VAE_API calls found in include/vae.h"
shared=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
static=$(nm -g --defined-only "$libdir/libvae.a" | awk 'NF == 3 {print $3}' | sort)
[ "$shared" = "$api" ] || fail "libvae.so.0 exports other than include/vae.h's calls:
$(diff <(echo "$api") <(echo "$shared") || true)"
[ "$static" = "$api" ] || fail "libvae.a defines other globals than include/vae.h's calls:
$(diff <(echo "$api") <(echo "$static") || true)"
echo "exports: $(echo $shared)"
# Each listing whole before grep reads it: "cmd | grep -q" under pipefail
# fails when grep leaves early and cmd is still writing (SIGPIPE).
dyn=$(objdump -p "$so")
grep -Eq '^ *SONAME +libvae\.so\.0$' <<<"$dyn" || fail "libvae.so.0 has no SONAME libvae.so.0"
! grep -q 'NEEDED.*libmpi' <<<"$dyn" || fail "libvae.so.0 loads Open MPI"

# Compile against the installed files only: vae.pc, the CMake package, and
# libvae.a with vae.pc's private libraries; a static program may use the
# names of libvae's internals (err_set, rng_seed) for its own.
export PKG_CONFIG_PATH="$libdir/pkgconfig" LD_LIBRARY_PATH="$libdir"
cflags=(-std=c11 -O2 -Wall -Wextra -Werror)
cc "${cflags[@]}" "$root/examples/anomaly.c" -o "$tmp/anomaly-pc" $(pkg-config --cflags --libs vae) ||
    fail "anomaly.c does not build with pkg-config"
cmake -S "$root/examples" -B "$tmp/examples" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null &&
    cmake --build "$tmp/examples" >/dev/null || fail "examples/ does not build with find_package(vae)"
grep -qx "vae_DIR:PATH=$libdir/cmake/vae" "$tmp/examples/CMakeCache.txt" ||
    fail "find_package(vae) found another vae than $prefix's"
static_libs=$(pkg-config --static --libs vae)
cat >"$tmp/own.c" <<'EOF'
int err_set(void) { return 1; }
int rng_seed(void) { return 2; }
EOF
cc "${cflags[@]}" "$root/examples/anomaly.c" "$tmp/own.c" -o "$tmp/anomaly-static" \
    $(pkg-config --cflags vae) ${static_libs/-lvae/$libdir/libvae.a} ||
    fail "anomaly.c does not link with libvae.a and pkg-config --static"
deps=$(ldd "$tmp/anomaly-pc")
grep -qF "libvae.so.0 => $so" <<<"$deps" || fail "anomaly-pc does not load $so:
$deps"
deps=$(ldd "$tmp/anomaly-static")
! grep -q libvae <<<"$deps" || fail "anomaly-static loads libvae.so"

# 200 training and 40 test images of a bar at a row that moves with the
# index; test images 7 and 23 are noise instead: the anomalies.
mkdir "$tmp/data"
python3 - "$tmp/data" <<'EOF'
import random, struct, sys
def write(path, images):
    with open(path, "wb") as f:
        f.write(struct.pack(">4I", 0x803, len(images), 28, 28) + b"".join(images))
def bar(i):
    row = 4 + i % 20
    return bytes(28 * row) + b"\xff" * 28 + bytes(28 * (27 - row))
rng = random.Random(1)
write(sys.argv[1] + "/train-images-idx3-ubyte", [bar(i) for i in range(200)])
write(sys.argv[1] + "/t10k-images-idx3-ubyte",
      [bytes(rng.randrange(256) for _ in range(784)) if i in (7, 23) else bar(i)
       for i in range(40)])
EOF
images="$tmp/data/t10k-images-idx3-ubyte"
model="$tmp/vae.bin"
"$prefix/bin/vae" train --data "$tmp/data" --ckpt "$model" --out "$tmp/run" --epochs 2 \
    --batch 20 --hidden 64 --latent 4 --init glorot --threads 1 >/dev/null ||
    fail "vae train failed"

# The three builds print the same TOP lines, the noise images first; the
# scores are vae score's (--threads 1).
out=$("$tmp/anomaly-pc" "$model" "$images" 5) || fail "anomaly failed"
echo "anomaly $model t10k 5:"
echo "$out"
[ "$(grep -Ec '^[0-9]+ -?[0-9]+\.[0-9]{6}$' <<<"$out")" = 5 ] || fail "not 5 'index score' lines"
[ "$(cut -d' ' -f1 <<<"$out" | head -2 | sort -n | xargs)" = "7 23" ] ||
    fail "the noise images 7 and 23 are not the top two"
for bin in "$tmp/examples/anomaly" "$tmp/anomaly-static"; do
    [ "$("$bin" "$model" "$images" 5)" = "$out" ] || fail "$bin prints other lines"
done
"$prefix/bin/vae" score --ckpt "$model" --data "$tmp/data" --threads 1 -o "$tmp/scores.csv" >/dev/null
[ "$(tail -n +2 "$tmp/scores.csv" | sort -t, -k3,3gr -k1,1n | head -5 | awk -F, '{print $1, $3}')" = "$out" ] ||
    fail "anomaly's scores are not vae score's"
[ "$("$tmp/anomaly-pc" -k 5 "$model" "$images" 3 | wc -l)" = 3 ] || fail "anomaly -k 5 failed"

# Bad input: a non-zero exit and a message naming the problem.
echo "errors:"
expect_error() { # WHAT-IN-THE-MESSAGE ARGS...
    local want="$1" rc=0 msg
    shift
    msg=$("$tmp/anomaly-pc" "$@" 2>&1 >/dev/null) || rc=$?
    { [ "$rc" = 1 ] || [ "$rc" = 2 ]; } && grep -q -- "$want" <<<"$msg" ||
        fail "anomaly $* exited $rc with '$msg', not an error about '$want'"
    echo "  $msg"
}
head -c -1 "$images" >"$tmp/short"
{ head -c 16 "$images"; head -c 10 /dev/zero; } >"$tmp/ten-bytes"
printf 'not an image file\n' >"$tmp/text"
{ printf '\0\0\x08\x03\0\0\0\x01\0\0\0\x0e\0\0\0\x0e'; head -c 196 /dev/zero; } >"$tmp/small"
expect_error "$tmp/missing.bin" "$tmp/missing.bin" "$images"
expect_error "No such file" "$model" "$tmp/missing"
expect_error "not what its header" "$model" "$tmp/short"
expect_error "not what its header" "$model" "$tmp/ten-bytes"
expect_error "not an idx3 or idx4" "$model" "$tmp/text"
expect_error "not the model's" "$model" "$tmp/small"
expect_error "usage" "$model"
expect_error "usage" "$model" "$images" 0
# docs/library.md's Python (ctypes) snippet, as the page has it, run
# where its vae.bin and data/ are this model and data: its ten least likely
# images are anomaly's.
mkdir "$tmp/py" && ln -s "$model" "$tmp/py/vae.bin" && ln -s "$tmp/data" "$tmp/py/data"
sed -n '/^```python$/,/^```$/p' "$root/docs/library.md" | sed '1d;$d' >"$tmp/py/snippet.py"
[ -s "$tmp/py/snippet.py" ] || fail "docs/library.md has no python block"
# Debian's python3 (numpy from scripts/deps.sh); one earlier on PATH may lack it.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
py=$(cd "$tmp/py" && "$python" snippet.py) || fail "docs/library.md's Python snippet failed"
echo "docs/library.md's Python: $py"
want="mlp [$("$tmp/anomaly-pc" "$model" "$images" 10 | cut -d' ' -f1 | xargs)]"
[ "$(tr -s ' ' <<<"$py" | sed 's/\[ /[/; s/ \]/]/')" = "$want" ] ||
    fail "docs/library.md's Python printed '$py', not anomaly's '$want'"
# docs/library.md's first program, as the page has it: ten blank images
# scored, one line each.
sed -n '/^## A first program$/,/^## /p' "$root/docs/library.md" |
    sed -n '/^```c$/,/^```$/p' | sed '1d;$d' >"$tmp/py/first.c"
cc "${cflags[@]}" "$tmp/py/first.c" -o "$tmp/py/first" $(pkg-config --cflags --libs vae) ||
    fail "docs/library.md's first program does not build"
[ "$(cd "$tmp/py" && ./first | grep -Ec '^[0-9] [0-9]+\.[0-9]{3}$')" = 10 ] ||
    fail "docs/library.md's first program does not print ten scores"
# A C++ program includes the header as it is (extern "C") and links.
if command -v c++ >/dev/null; then
    printf '#include <vae.h>\nint main() { vae *m = nullptr; vae_error e;\n%s\n' \
        '  return vae_load("missing.bin", &m, &e) == -1 && e.code == VAE_ELOAD ? 0 : 1; }' \
        >"$tmp/py/prog.cpp"
    c++ -std=c++11 -Wall -Wextra -Werror "$tmp/py/prog.cpp" -o "$tmp/py/prog-cpp" \
        $(pkg-config --cflags --libs vae) && "$tmp/py/prog-cpp" ||
        fail "a C++ program does not build or run against vae.h"
    echo "a C++ program builds against vae.h and runs"
else
    echo "lib_check: SKIP the C++ check: no c++ compiler"
fi
# The command's version is the library's.
[ "$("$prefix/bin/vae" --version | sed -n '1s/^vae //p')" = "$(pkg-config --modversion vae)" ] ||
    fail "vae --version does not say $(pkg-config --modversion vae), include/vae.h's version"
echo "lib_check: libvae installs, exports only its API, and the example builds and runs"
