#!/usr/bin/env bash
# check_links.sh - every relative link and image in the Markdown documents
# names a file that exists, and every #anchor a heading of that file.
#
# usage: scripts/check_links.sh [FILE.md ...]
# Without files: README.md, docs/*.md and results/iwae-table1/README.md.
# Prints each broken link as FILE:LINE: TARGET (why) and exits 1 if there
# is one; web links (http, https, mailto) are not followed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

case "${1:-}" in
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

if [ $# -eq 0 ]; then
    set -- README.md docs/*.md results/iwae-table1/README.md
fi

# The anchors of a Markdown file, as GitHub makes them from its headings:
# lower case, punctuation but '-' and '_' dropped, spaces as '-'. Headings
# inside code blocks do not count.
anchors() {
    awk '/^```/ { code = !code; next } !code && /^#+ / { sub(/^#+ /, ""); print }' "$1" |
        tr 'A-Z' 'a-z' | sed 's/[^a-z0-9 _-]//g; s/ /-/g'
}

# Every (line, target) of the file's inline links and images, outside code
# blocks and code spans.
links() {
    awk '/^```/ { code = !code; next }
         !code {
             line = $0
             gsub(/`[^`]*`/, "", line)
             while (match(line, /\]\([^) ]+\)/)) {
                 print NR "\t" substr(line, RSTART + 2, RLENGTH - 3)
                 line = substr(line, RSTART + RLENGTH)
             }
         }' "$1"
}

bad=0 n=0
for md in "$@"; do
    if [ ! -f "$md" ]; then
        echo "$md: no such file"
        bad=1
        continue
    fi
    dir="$(dirname "$md")"
    while IFS=$'\t' read -r line target; do
        n=$((n + 1))
        case "$target" in
            http://*|https://*|mailto:*) continue ;;
        esac
        file="${target%%#*}" anchor=""
        [ "$file" != "$target" ] && anchor="${target#*#}"
        path="$md"
        [ -n "$file" ] && path="$dir/$file"
        if [ ! -e "$path" ]; then
            echo "$md:$line: $target (no such file)"
            bad=1
        elif [ -n "$anchor" ] && ! grep -qxF -- "$anchor" <<<"$(anchors "$path")"; then
            echo "$md:$line: $target (no heading makes #$anchor)"
            bad=1
        fi
    done < <(links "$md")
done
if [ "$bad" -eq 0 ]; then
    echo "check_links: $n links in $# files, all resolve"
fi
exit "$bad"
