#!/usr/bin/env bash
# Builds and runs the small CMake and Meson projects of ci/install-projects against an
# installed libshmfile, as a C user of those build systems would:
#
#   ci/build-systems-check.sh cmake PREFIX [LIBDIR]
#       find_package(shmfile 1.2 CONFIG REQUIRED), shmfile::shmfile and
#       shmfile::shmfile_static, a C++ program using <shmfile.hpp> through
#       shmfile::shmfile; requests of versions it must refuse
#   ci/build-systems-check.sh meson PREFIX
#       dependency('shmfile'), through pkg-config, shared and static
#
# PREFIX is an installed tree (LIBDIR, by default <PREFIX>/lib, and <PREFIX>/include,
# or wherever its CMake package / shmfile.pc point); for CMake it may have been
# moved since `make install` (the package is relocatable), for Meson its shmfile.pc must
# carry it (pkg-config). Each program checks that the library reports the version the
# build system found, and that its NEEDED/static linking is the one asked for. Called by
# ci/install-check.sh; ci/setup.sh installs cmake, meson and ninja when missing. Leaves nothing
# behind (build directories, /dev/shm).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode=${1:?usage: build-systems-check.sh cmake|meson PREFIX}
prefix=$(cd "${2:?usage: build-systems-check.sh cmake|meson PREFIX}" && pwd)
libdir=$(cd "${3:-$prefix/lib}" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fshm-build-systems.XXXXXX")
stream="/fshm-build-systems-$$"
cleanup() {
    rm -rf "$tmp"
    rm -f "/dev/shm/${stream#/}"
}
trap cleanup EXIT

fail() {
    echo "build-systems-check ($mode): FAIL: $*" >&2
    exit 1
}

# Runs a built program: the shared one must find libshmfile.so.1 in $libdir by itself
# (CMake: the build rpath) or through LD_LIBRARY_PATH (Meson), the static one must not
# need it at all.
run_pair() {
    local dir=$1 ld_path=$2
    local shared="$dir/roundtrip_shared" static="$dir/roundtrip_static"
    readelf -d "$shared" | grep -q 'NEEDED.*\[libshmfile\.so\.1\]' ||
        fail "$shared does not need libshmfile.so.1"
    local found
    found=$(env LD_LIBRARY_PATH="$ld_path" ldd "$shared" |
        sed -n 's/.*libshmfile\.so\.1 => \([^ ]*\).*/\1/p')
    [ -n "$found" ] && [ "$found" -ef "$libdir/libshmfile.so.1" ] ||
        fail "$shared loads libshmfile.so.1 from '$found', not from $libdir"
    env LD_LIBRARY_PATH="$ld_path" "$shared" "$stream"
    if readelf -d "$static" | grep -q 'NEEDED.*libshmfile'; then
        fail "$static still needs libshmfile.so"
    fi
    env -u LD_LIBRARY_PATH "$static" "$stream"
}

case "$mode" in
cmake)
    command -v cmake >/dev/null || fail "cmake is needed"
    cp "$here/install-projects/CMakeLists.txt" "$here/install-projects/roundtrip.c" \
        "$here/install-projects/roundtrip_cxx.cpp" "$tmp/"
    echo "== cmake: find_package(shmfile 1.2 CONFIG REQUIRED) in $prefix"
    cmake -S "$tmp" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$tmp/configure.log" 2>&1 ||
        fail "configure: $(cat "$tmp/configure.log")"
    found_dir=$(sed -n 's/^shmfile_DIR:PATH=//p' "$tmp/build/CMakeCache.txt")
    [ "$found_dir" -ef "$libdir/cmake/shmfile" ] ||
        fail "found the package in '$found_dir', not in $libdir/cmake/shmfile"
    cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 || fail "build: $(cat "$tmp/build.log")"
    run_pair "$tmp/build" ""
    "$tmp/build/roundtrip_cxx" "$stream" || fail "the C++ program failed"
    # Requests the installed version must not satisfy: another major, a newer minor.
    version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' \
        "$libdir/cmake/shmfile/shmfileConfigVersion.cmake")
    major=${version%%.*}
    rest=${version#*.}
    minor=${rest%%.*}
    for want in "$((major + 1)).0" "$major.$((minor + 1))" "$((major - 1)).0...$major.0"; do
        if cmake -S "$tmp" -B "$tmp/build-$want" -DCMAKE_PREFIX_PATH="$prefix" \
            -DWANT="$want" >"$tmp/refuse.log" 2>&1; then
            fail "find_package(shmfile $want) accepted version $version"
        fi
        grep -q "$version" "$tmp/refuse.log" ||
            fail "find_package(shmfile $want) did not name version $version: $(cat "$tmp/refuse.log")"
    done
    for want in "$major.0" "$version" "$major.0...<$((major + 1))"; do
        cmake -S "$tmp" -B "$tmp/build-ok" -DCMAKE_PREFIX_PATH="$prefix" -DWANT="$want" \
            >"$tmp/accept.log" 2>&1 || fail "find_package(shmfile $want) refused: $(cat "$tmp/accept.log")"
    done
    echo "cmake: ok (shmfile $version; $((major + 1)).0, $major.$((minor + 1)) refused)"
    ;;
meson)
    for tool in meson ninja pkg-config; do
        command -v "$tool" >/dev/null || fail "$tool is needed"
    done
    cp "$here/install-projects/meson.build" "$here/install-projects/roundtrip.c" "$tmp/"
    echo "== meson: dependency('shmfile') through pkg-config in $prefix"
    PKG_CONFIG_PATH="$libdir/pkgconfig" meson setup "$tmp/build" "$tmp" \
        >"$tmp/setup.log" 2>&1 || fail "meson setup: $(cat "$tmp/setup.log")"
    ninja -C "$tmp/build" >"$tmp/build.log" 2>&1 || fail "ninja: $(cat "$tmp/build.log")"
    run_pair "$tmp/build" "$libdir"
    echo "meson: ok"
    ;;
*)
    fail "unknown mode (cmake or meson)"
    ;;
esac
