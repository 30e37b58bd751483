#!/usr/bin/env bash
# `make check-man`: the man pages in c/man against c/shmfile.h.
#   - every function declared in shmfile.h has a page c/man/<function>.3: a full page
#     whose NAME section lists it, or a one-line `.so man3/<page>.3` to such a page;
#   - every full page renders without a warning (groff -ww, and man(1) where it is
#     installed), resolving `.so man3/...` from a man root as an installed tree does;
#   - no page holds control characters other than tab and newline;
#   - the fshm command's pages in fshm-cli/man are what it generates (`fshm man DIR`)
#     and render without a warning.
# With --list, prints the functions found in shmfile.h instead (one a line).
set -euo pipefail
cd "$(dirname "$0")/.."
header=c/shmfile.h
mandir=c/man

# Function declarations: a line outside comments and preprocessor lines that starts
# with a type and holds `name(`. Comments are dropped first (they quote calls).
functions() {
    sed -e 's|/\*.*\*/||g' "$header" |
        awk '/\/\*/ { skip = 1 } !skip { print } /\*\// { skip = 0 }' |
        grep -E '^[A-Za-z_][A-Za-z0-9_ ]*[ *]+[A-Za-z_][A-Za-z0-9_]*\(' |
        sed -E 's/^[A-Za-z_][A-Za-z0-9_ ]*[ *]+([A-Za-z_][A-Za-z0-9_]*)\(.*/\1/' |
        grep -vE '^(if|while|for|switch|return|sizeof)$' | sort -u
}

if [ "${1:-}" = --list ]; then
    functions
    exit 0
fi

bad=0
fail() {
    echo "check-man: $*" >&2
    bad=1
}

fns=$(functions)
[ -n "$fns" ] || fail "found no function declarations in $header"

# The NAME line of a full page: the line after `.SH NAME`.
name_line() { sed -n '/^\.SH NAME/{n;p;q}' "$1"; }

for fn in $fns; do
    page="$mandir/$fn.3"
    if [ ! -f "$page" ]; then
        fail "$fn (declared in $header) has no man page $page"
        continue
    fi
    target=$(sed -n 's|^\.so man3/\(.*\)$|\1|p' "$page")
    if [ -n "$target" ]; then
        [ "$(wc -l <"$page")" -eq 1 ] || fail "$page: a .so page must hold that line alone"
        [ -f "$mandir/$target" ] || { fail "$page: .so to missing $mandir/$target"; continue; }
        page="$mandir/$target"
    fi
    name_line "$page" | grep -qE "(^|[ ,])$fn([ ,]|$)" ||
        fail "$page: its NAME section does not list $fn"
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
ln -s "$PWD/$mandir" "$root/man3"
for page in "$mandir"/*.3; do
    p=$(basename "$page")
    if LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$page"; then
        fail "$page holds control characters"
    fi
    if grep -q '^\.so ' "$page"; then
        target=$(sed -n 's|^\.so man3/\(.*\)$|\1|p' "$page")
        [ -n "$target" ] && [ -f "$mandir/$target" ] || fail "$page: bad .so line"
        continue
    fi
    out=$(cd "$root" && groff -man -ww -z "man3/$p" 2>&1)
    [ -z "$out" ] || fail "$page: $out"
    if command -v man >/dev/null; then
        out=$(cd "$root" && MANWIDTH=80 man --warnings -l "man3/$p" 2>&1 >/dev/null)
        [ -z "$out" ] || fail "$page: man: $out"
    fi
done

# The fshm command's pages (fshm-cli/man): the same as the command generates from its
# clap definition now (with cargo; FSHM_BIN names a built fshm instead), and each renders
# without a warning.
climan=fshm-cli/man
gen="$root/gen"
mkdir -p "$gen"
if [ -n "${FSHM_BIN:-}" ]; then
    "$FSHM_BIN" man "$gen"
else
    cargo run -q -p fshm-cli -- man "$gen"
fi
diff -r "$gen" "$climan" >/dev/null ||
    fail "$climan differs from what the command generates (diff -r; regenerate with: cargo run -p fshm-cli -- man $climan)"
for page in "$climan"/*.1; do
    out=$(groff -man -ww -z "$page" 2>&1)
    [ -z "$out" ] || fail "$page: $out"
    if command -v man >/dev/null; then
        out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        [ -z "$out" ] || fail "$page: man: $out"
    fi
done

[ "$bad" = 0 ] || exit 1
echo "check-man: $(echo "$fns" | wc -l) functions of $header, each with a page; $(ls "$mandir"/*.3 | wc -l) pages render without warnings; $(ls "$climan"/*.1 | wc -l) fshm(1) pages as generated, rendering without warnings"
