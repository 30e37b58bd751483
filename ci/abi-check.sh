#!/usr/bin/env bash
# `make check-abi`: the C ABI of the tree that `make` builds (target/shmfile/):
#   1. lib/libshmfile.so.X.Y.Z exports exactly the symbols of
#      fshm-ffi/exported-symbols.txt (`nm -D --defined-only`, besides the version
#      nodes themselves), and fshm-ffi/symbols-1.1.0.txt is part of that list;
#   2. symbol versions (`objdump -T`): shmfile 1.1.0's functions under SHMFILE_1.1,
#      every other one under SHMFILE_<major>.<minor> of X.Y.Z, whose parent is
#      SHMFILE_1.1 (`readelf -V`); the soname is libshmfile.so.X, and the links
#      libshmfile.so.X and libshmfile.so lead to the library;
#   3. the commands of the README's C section (the block after the line
#      "<!-- ci/abi-check.sh runs these commands -->") build a C program against the
#      tree and run it as they are, from the repository root: no installation, no
#      LD_LIBRARY_PATH; the program records the versioned symbols it uses.
# Usage: ci/abi-check.sh TREE VERSION (the Makefile passes both). Leaves nothing
# behind (the program and its source, /dev/shm).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:?usage: abi-check.sh TREE VERSION}
version=${2:?usage: abi-check.sh TREE VERSION}
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || { echo "abi-check: bad version $version" >&2; exit 1; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
node="SHMFILE_$major.$minor"
so="$tree/lib/libshmfile.so.$version"
list=fshm-ffi/exported-symbols.txt
old=fshm-ffi/symbols-1.1.0.txt

fail() {
    echo "abi-check: FAIL: $*" >&2
    exit 1
}
[ -f "$so" ] || fail "$so is missing: run make first"

# 1. Exports.
LC_ALL=C sort -c "$list" || fail "$list is not sorted (LC_ALL=C sort)"
LC_ALL=C sort -c "$old" || fail "$old is not sorted (LC_ALL=C sort)"
missing=$(LC_ALL=C comm -23 "$old" "$list")
[ -z "$missing" ] || fail "shmfile 1.1.0's functions missing from $list: $missing"
exported=$(nm -D --defined-only --without-symbol-versions "$so" | awk '{ print $NF }' |
    grep -vE '^SHMFILE_[0-9]+\.[0-9]+$' | LC_ALL=C sort)
diff -u "$list" <(printf '%s\n' "$exported") ||
    fail "$so exports other symbols than $list (- listed, + exported)"
echo "abi-check: $so exports exactly the $(wc -l <"$list") symbols of $list"

# 2. Versions: objdump -T prints, for each defined symbol, its version then its name.
versions=$(objdump -T "$so" | awk '$4 != "*UND*" && $4 != "*ABS*" && NF >= 7 { print $NF, $(NF - 1) }')
bad=0
while read -r sym; do
    want=$node
    grep -qxF "$sym" "$old" && want=SHMFILE_1.1
    got=$(awk -v s="$sym" '$1 == s { print $2 }' <<<"$versions")
    if [ "$got" != "$want" ]; then
        echo "abi-check: $sym has version '$got', want $want" >&2
        bad=1
    fi
done <"$list"
[ "$bad" = 0 ] || fail "symbol versions (objdump -T $so)"
readelf -V "$so" | grep -A1 "Name: $node\$" | grep -q "Parent 1: SHMFILE_1.1\$" ||
    fail "$node does not follow SHMFILE_1.1 (readelf -V)"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libshmfile.so.$major" ] || fail "soname is '$soname', want libshmfile.so.$major"
for link in "libshmfile.so.$major" libshmfile.so; do
    [ "$tree/lib/$link" -ef "$so" ] || fail "$tree/lib/$link does not lead to $so"
done
echo "abi-check: $(wc -l <"$old") functions under SHMFILE_1.1, $(($(wc -l <"$list") - $(wc -l <"$old"))) under $node; soname $soname"

# 3. The README's commands, run as written (they name target/shmfile).
if ! [ "$tree" -ef target/shmfile ]; then
    echo "skipped abi-check README commands: the tree is $tree, not target/shmfile (CARGO_TARGET_DIR)"
    exit 0
fi
block=$(awk '/<!-- ci\/abi-check.sh runs these commands -->/ { on = 1; next }
    on && /^```sh$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }' README.md)
[ -n "$block" ] || fail "no command block after '<!-- ci/abi-check.sh runs these commands -->' in README.md"
grep -q 'myprog\.c' <<<"$block" || fail "the README's block does not build myprog.c"
[ ! -e myprog.c ] && [ ! -e myprog ] || fail "myprog.c or myprog exist in the repository root"
stream="/fshm-abi-check-$$"
cleanup() {
    rm -f myprog.c myprog
    rm -f "/dev/shm/${stream#/}"
}
trap cleanup EXIT
cat >myprog.c <<EOF
#include <shmfile.h>
#include <string.h>
int main(void)
{
    unsigned char a, b, c;
    char buf[8] = {0};
    FILE *o = fshm_create("$stream", 0600), *g;
    shmfile_get_version(&a, &b, &c, NULL);
    if (o == NULL || a != SHMFILE_VERSION_MAJOR || b != SHMFILE_VERSION_MINOR)
        return 1;
    fputs("tree", o);
    fflush(o);
    g = fshm_guest_open("$stream");
    if (g == NULL || fread(buf, 1, 4, g) != 4 || strcmp(buf, "tree") != 0 ||
        fshm_wait(g, 0) != -1)
        return 1;
    fclose(g);
    return fclose(o) == 0 ? 0 : 1;
}
EOF
echo "abi-check: running the README's commands:"
sed 's/^/    /' <<<"$block"
env -u LD_LIBRARY_PATH bash -euo pipefail -c "$block" || fail "the README's commands failed"
[ -x myprog ] || fail "the README's commands made no ./myprog"
# A function of 1.1.0 and an addition, each bound to its version node.
objdump -T myprog | grep -q '(SHMFILE_1.1) *fshm_create$' || fail "myprog's fshm_create is not SHMFILE_1.1"
objdump -T myprog | grep -q "($node) *fshm_wait\$" || fail "myprog's fshm_wait is not $node"
echo "abi-check: ok"
