#!/usr/bin/env bash
# report_shot.sh - a screenshot of a training run's page (OUT/index.html,
# written by vae train) in headless Chromium.
#
# usage: scripts/report_shot.sh OUT [PNG]
set -euo pipefail

usage() {
    cat <<EOF2
usage: $0 OUT [PNG]

Opens OUT/index.html (the page vae train writes in its --out folder) in
headless Chromium and saves a 1200 x 2000 screenshot to PNG (default
OUT/../report-shot.png, beside the folder, so the page's folder stays as
vae wrote it). Set WINDOW=W,H for another size. Chromium comes from
scripts/deps.sh --browser.
EOF2
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
[ $# -le 2 ] || { usage >&2; exit 2; }

out="$(cd "$1" 2>/dev/null && pwd)" || { echo "report_shot.sh: no folder $1" >&2; exit 1; }
page="$out/index.html"
[ -f "$page" ] || { echo "report_shot.sh: no $page (run vae train --out $1 first)" >&2; exit 1; }
png="${2:-$(dirname "$out")/report-shot.png}"
case "$png" in /*) ;; *) png="$PWD/$png" ;; esac

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        browser="$b"
        break
    fi
done
[ -n "$browser" ] ||
    { echo "report_shot.sh: no chromium on PATH; install it with scripts/deps.sh --browser" >&2; exit 1; }

# --no-sandbox: the sandbox needs user namespaces, which containers and root
# often lack; the page is our own file and has no script.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="${WINDOW:-1200,2000}" --screenshot="$png" "file://$page" \
    >/dev/null 2>&1 || { echo "report_shot.sh: $browser failed" >&2; exit 1; }
[ -s "$png" ] || { echo "report_shot.sh: $browser wrote no $png" >&2; exit 1; }
echo "$png"
