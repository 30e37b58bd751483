#!/usr/bin/env bash
# Checks `make install` the way a C user or a packager uses it: installs into a
# temporary staging tree (DESTDIR=$tmp PREFIX=/usr), then, through pkg-config only,
# builds a small C program against the installed header and library, dynamically and
# statically, and runs both; the same with CMake's find_package on the staged tree (the
# CMake package is relocatable); checks the .so links, the soname, the man pages, and
# `make install PREFIX=...` (there also Meson's dependency() through pkg-config) +
# `make uninstall`. The version expected everywhere is `make -s version`, read from its
# one source (fshm-ffi/Cargo.toml). Leaves nothing behind (temp dir, /dev/shm).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pkg-config >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq pkg-config >/dev/null
fi
for tool in make gcc readelf cmake meson ninja; do
    command -v "$tool" >/dev/null || { echo "install-check: $tool is needed (ci/setup.sh installs it)" >&2; exit 1; }
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

version=$(make -s --no-print-directory version)
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "make version printed '$version'"
major=${version%%.*}

echo "== make check-version, make check-man"
make --no-print-directory check-version
make --no-print-directory check-man

echo "== make, make check-abi, make install DESTDIR=$tmp/stage PREFIX=/usr"
make --no-print-directory
make --no-print-directory check-abi
make --no-print-directory install DESTDIR="$tmp/stage" PREFIX=/usr >/dev/null
root="$tmp/stage/usr"
libdir="$root/lib"

echo "== installed files"
for f in include/shmfile.h include/shmfile.hpp lib/libshmfile.so.$version lib/libshmfile.a \
    lib/pkgconfig/shmfile.pc lib/cmake/shmfile/shmfileConfig.cmake \
    lib/cmake/shmfile/shmfileConfigVersion.cmake; do
    [ -f "$root/$f" ] || fail "$f not installed"
done
for link in "libshmfile.so.$major" libshmfile.so; do
    [ -L "$libdir/$link" ] || fail "$link is not a symlink"
    [ "$(readlink -f "$libdir/$link")" = "$(readlink -f "$libdir/libshmfile.so.$version")" ] ||
        fail "$link does not resolve to libshmfile.so.$version"
done
soname=$(readelf -d "$libdir/libshmfile.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libshmfile.so.$major" ] || fail "soname is '$soname', not libshmfile.so.$major"

echo "== man pages"
# One page (or .so link) per function that shmfile.h declares.
pages=$(bash ci/check-man.sh --list)
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
    for p in fshm_open_ex fshm_lost_bytes fshm_create fshm_sync _fshm_printCopyrightVersion; do
        text=$(MANWIDTH=80 man --warnings -M "$mandir" 3 "$p" 2>"$tmp/man.err") ||
            fail "man -M $mandir 3 $p failed: $(cat "$tmp/man.err")"
        [ ! -s "$tmp/man.err" ] || fail "man 3 $p: $(cat "$tmp/man.err")"
        case "$text" in
        *"$p"*) ;;
        *) fail "man 3 $p does not show $p" ;;
        esac
    done
fi
# The fshm command's own pages (generated from its clap definition, fshm-cli/man).
for p in fshm fshm-top fshm-ls; do
    [ -f "$mandir/man1/$p.1" ] || fail "man page $p.1 not installed"
    out=$(groff -man -ww -z "$mandir/man1/$p.1" 2>&1)
    [ -z "$out" ] || fail "man1/$p.1 renders with warnings: $out"
done
if command -v man >/dev/null; then
    text=$(MANWIDTH=80 man -M "$mandir" 1 fshm 2>&1) || fail "man -M $mandir 1 fshm failed: $text"
    case "$text" in
    *"Named byte streams"*) ;;
    *) fail "man 1 fshm does not show the fshm command's page" ;;
    esac
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

cp ci/install-projects/roundtrip.c "$tmp/roundtrip.c"
cflags_version="-DEXPECT_VERSION=\"$version\""

echo "== dynamic: cc roundtrip.c \$(pkg-config --cflags --libs shmfile)"
# shellcheck disable=SC2046 # pkg-config output is meant to be split into words
gcc -std=c99 -Wall -Wextra -Werror "$cflags_version" $(pc --cflags) "$tmp/roundtrip.c" $(pc --libs) \
    -o "$tmp/roundtrip-dyn"
readelf -d "$tmp/roundtrip-dyn" | grep -q "NEEDED.*\\[libshmfile\\.so\\.$major\\]" ||
    fail "the dynamic program does not need libshmfile.so.$major"
found=$(LD_LIBRARY_PATH="$pc_libdir" ldd "$tmp/roundtrip-dyn" |
    sed -n "s/.*libshmfile\\.so\\.$major => \\([^ ]*\\).*/\\1/p")
[ "$found" -ef "$libdir/libshmfile.so.$version" ] ||
    fail "the loader finds libshmfile.so.$major at '$found', not in $libdir"
LD_LIBRARY_PATH="$pc_libdir" "$tmp/roundtrip-dyn" "$stream"

echo "== C++: c++ -std=c++17 roundtrip_cxx.cpp \$(pkg-config --cflags --libs shmfile)"
# shellcheck disable=SC2046
g++ -std=c++17 -Wall -Wextra -Werror $(pc --cflags) ci/install-projects/roundtrip_cxx.cpp \
    $(pc --libs) -o "$tmp/roundtrip-cxx"
LD_LIBRARY_PATH="$pc_libdir" "$tmp/roundtrip-cxx" "$stream"

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
gcc -std=c99 -Wall -Wextra -Werror "$cflags_version" $(pc --cflags) "$tmp/roundtrip.c" \
    "${static_libs[@]}" \
    -o "$tmp/roundtrip-static"
if readelf -d "$tmp/roundtrip-static" | grep -q 'NEEDED.*libshmfile'; then
    fail "the static program still needs libshmfile.so"
fi
env -u LD_LIBRARY_PATH "$tmp/roundtrip-static" "$stream"

echo "== CMake, on the staged tree (installed for /usr, found in $root)"
bash ci/build-systems-check.sh cmake "$root"

echo "== CMake, on a multiarch layout (LIBDIR=/usr/lib/x86_64-linux-gnu), moved"
make --no-print-directory install DESTDIR="$tmp/multi" PREFIX=/usr \
    LIBDIR=/usr/lib/x86_64-linux-gnu >/dev/null
mv "$tmp/multi/usr" "$tmp/multi/moved"
bash ci/build-systems-check.sh cmake "$tmp/multi/moved" "$tmp/multi/moved/lib/x86_64-linux-gnu"

echo "== make install PREFIX=$tmp/prefix, then make uninstall"
make --no-print-directory install PREFIX="$tmp/prefix" LDCONFIG=: >/dev/null
grep -q "^prefix=$tmp/prefix\$" "$tmp/prefix/lib/pkgconfig/shmfile.pc" ||
    fail "shmfile.pc does not carry PREFIX=$tmp/prefix"
PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --dont-define-prefix --cflags shmfile |
    grep -q -- "-I$tmp/prefix/include" || fail "pkg-config --cflags misses $tmp/prefix/include"
bash ci/build-systems-check.sh meson "$tmp/prefix"
bash ci/build-systems-check.sh cmake "$tmp/prefix"
make --no-print-directory uninstall PREFIX="$tmp/prefix" >/dev/null
left=$(find "$tmp/prefix" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"

[ ! -e "/dev/shm/${stream#/}" ] || fail "$stream left in /dev/shm"
echo "install-check: ok"
