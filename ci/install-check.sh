#!/usr/bin/env bash
# Checks `make install` the way a C user or a packager uses it: installs into a
# temporary staging tree (DESTDIR=$tmp PREFIX=/usr), then, through pkg-config only,
# builds a small C program against the installed header and library, dynamically and
# statically, and runs both; checks the .so links, the soname, the man pages, and
# `make install PREFIX=...` + `make uninstall`. Leaves nothing behind (temp dir,
# /dev/shm).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pkg-config >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq pkg-config >/dev/null
fi
for tool in make gcc readelf; do
    command -v "$tool" >/dev/null || { echo "install-check: $tool is needed" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fshm-install-check.XXXXXX")
stream="/fshm-install-check-$$"
cleanup() {
    rm -rf "$tmp"
    rm -f "/dev/shm/${stream#/}"
}
trap cleanup EXIT

fail() {
    echo "install-check: FAIL: $*" >&2
    exit 1
}

version=1.2.0

echo "== make, make install DESTDIR=$tmp/stage PREFIX=/usr"
make --no-print-directory
make --no-print-directory install DESTDIR="$tmp/stage" PREFIX=/usr >/dev/null
root="$tmp/stage/usr"
libdir="$root/lib"

echo "== installed files"
for f in include/shmfile.h lib/libshmfile.so.$version lib/libshmfile.a \
    lib/pkgconfig/shmfile.pc; do
    [ -f "$root/$f" ] || fail "$f not installed"
done
for link in libshmfile.so.1 libshmfile.so; do
    [ -L "$libdir/$link" ] || fail "$link is not a symlink"
    [ "$(readlink -f "$libdir/$link")" = "$(readlink -f "$libdir/libshmfile.so.$version")" ] ||
        fail "$link does not resolve to libshmfile.so.$version"
done
soname=$(readelf -d "$libdir/libshmfile.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libshmfile.so.1 ] || fail "soname is '$soname', not libshmfile.so.1"

echo "== man pages"
pages="fshm_open fshm_create fshm_guest_open fshm_chmod fshm_chgrp fshm_force_destroy
       fshm_wait fshm_sync fshm_owner_state shmfile_get_version _fshm_printCopyrightVersion"
mandir="$root/share/man"
for p in $pages; do
    [ -f "$mandir/man3/$p.3" ] || fail "man page $p.3 not installed"
    # Render from the installed tree, so the `.so man3/...` redirects resolve as they
    # will for man(1); any warning fails.
    out=$(cd "$mandir" && groff -man -ww -z "man3/$p.3" 2>&1)
    [ -z "$out" ] || fail "man3/$p.3 renders with warnings: $out"
    grep -q "^\\.TH \\|^\\.so man3/" "$mandir/man3/$p.3" || fail "$p.3 is not a man page"
done
if command -v man >/dev/null; then
    for p in fshm_create fshm_sync _fshm_printCopyrightVersion; do
        text=$(MANWIDTH=80 man --warnings -M "$mandir" 3 "$p" 2>"$tmp/man.err") ||
            fail "man -M $mandir 3 $p failed: $(cat "$tmp/man.err")"
        [ ! -s "$tmp/man.err" ] || fail "man 3 $p: $(cat "$tmp/man.err")"
        case "$text" in
        *"$p"*) ;;
        *) fail "man 3 $p does not show $p" ;;
        esac
    done
fi

echo "== pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pc() { pkg-config --define-prefix "$@" shmfile; }
[ "$(pc --modversion)" = "$version" ] || fail "pkg-config --modversion: $(pc --modversion)"
pc_libdir=$(pc --variable=libdir)
[ "$pc_libdir" -ef "$libdir" ] || fail "pkg-config libdir $pc_libdir is not $libdir"
[ "$(pc --variable=includedir)" -ef "$root/include" ] ||
    fail "pkg-config includedir $(pc --variable=includedir) is not $root/include"
grep -q '^prefix=/usr$' "$PKG_CONFIG_PATH/shmfile.pc" || fail "shmfile.pc: prefix is not /usr"
echo "cflags: $(pc --cflags)"
echo "libs:   $(pc --libs)"
echo "static: $(pc --static --libs)"

cat >"$tmp/roundtrip.c" <<'EOF'
/* Creates a stream, writes, reopens it as a guest, reads back; checks the version. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <shmfile.h>

#define CHECK(c) do { if (!(c)) { \
    printf("roundtrip: line %d: %s failed (errno %d: %s)\n", __LINE__, #c, errno, \
           strerror(errno)); \
    if (name) fshm_force_destroy(name); \
    return 1; } } while (0)

int main(int argc, char **argv)
{
    const char *name = NULL;
    CHECK(argc == 2);
    name = argv[1];
    unsigned char major = 0, minor = 0, patch = 0;
    const char *extra = NULL;
    shmfile_get_version(&major, &minor, &patch, &extra);
    CHECK(major == 1 && minor == 2 && patch == 0 && extra && strcmp(extra, "fshm") == 0);

    const char msg[] = "hello through an installed libshmfile\n";
    FILE *owner = fshm_open(name, 0600, FSHM_OWNER);
    CHECK(owner != NULL);
    CHECK(fputs(msg, owner) >= 0 && fflush(owner) == 0);

    FILE *guest = fshm_guest_open(name);
    CHECK(guest != NULL);
    char buf[128] = {0};
    CHECK(fgets(buf, sizeof buf, guest) != NULL);
    CHECK(strcmp(buf, msg) == 0);
    CHECK(fshm_owner_state(guest) == FSHM_OWNER_ALIVE);
    CHECK(fclose(guest) == 0);

    CHECK(fclose(owner) == 0);
    errno = 0;
    CHECK(fshm_guest_open(name) == NULL && errno == ENOENT); /* the owner removed it */
    printf("roundtrip: ok (shmfile %u.%u.%u %s)\n", major, minor, patch, extra);
    return 0;
}
EOF

echo "== dynamic: cc roundtrip.c \$(pkg-config --cflags --libs shmfile)"
# shellcheck disable=SC2046 # pkg-config output is meant to be split into words
gcc -std=c99 -Wall -Wextra -Werror $(pc --cflags) "$tmp/roundtrip.c" $(pc --libs) \
    -o "$tmp/roundtrip-dyn"
readelf -d "$tmp/roundtrip-dyn" | grep -q 'NEEDED.*\[libshmfile\.so\.1\]' ||
    fail "the dynamic program does not need libshmfile.so.1"
found=$(LD_LIBRARY_PATH="$pc_libdir" ldd "$tmp/roundtrip-dyn" | sed -n 's/.*libshmfile\.so\.1 => \([^ ]*\).*/\1/p')
[ "$found" -ef "$libdir/libshmfile.so.$version" ] ||
    fail "the loader finds libshmfile.so.1 at '$found', not in $libdir"
LD_LIBRARY_PATH="$pc_libdir" "$tmp/roundtrip-dyn" "$stream"

echo "== static: libshmfile.a + \$(pkg-config --static --libs shmfile)"
static_libs=()
# shellcheck disable=SC2046
for w in $(pc --static --libs); do
    if [ "$w" = -lshmfile ]; then
        static_libs+=(-Wl,-Bstatic -lshmfile -Wl,-Bdynamic)
    else
        static_libs+=("$w")
    fi
done
# shellcheck disable=SC2046
gcc -std=c99 -Wall -Wextra -Werror $(pc --cflags) "$tmp/roundtrip.c" "${static_libs[@]}" \
    -o "$tmp/roundtrip-static"
if readelf -d "$tmp/roundtrip-static" | grep -q 'NEEDED.*libshmfile'; then
    fail "the static program still needs libshmfile.so"
fi
env -u LD_LIBRARY_PATH "$tmp/roundtrip-static" "$stream"

echo "== make install PREFIX=$tmp/prefix, then make uninstall"
make --no-print-directory install PREFIX="$tmp/prefix" LDCONFIG=: >/dev/null
grep -q "^prefix=$tmp/prefix\$" "$tmp/prefix/lib/pkgconfig/shmfile.pc" ||
    fail "shmfile.pc does not carry PREFIX=$tmp/prefix"
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --dont-define-prefix --cflags shmfile |
    grep -q -- "-I$tmp/prefix/include" || fail "pkg-config --cflags misses $tmp/prefix/include"
make --no-print-directory uninstall PREFIX="$tmp/prefix" >/dev/null
left=$(find "$tmp/prefix" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"

[ ! -e "/dev/shm/${stream#/}" ] || fail "$stream left in /dev/shm"
echo "install-check: ok"
