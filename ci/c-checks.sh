#!/usr/bin/env bash
# Checks the C library as C programs and distributors see it. Run from the repository
# root after `cargo build -p fshm-ffi`:
#
#   1. libshmfile.so exports exactly the C API listed in fshm-ffi/exported-symbols.txt
#      (sorted, one symbol a line: update it deliberately when the API grows);
#   2. its soname is libshmfile.so.1;
#   3. libshmfile.a was built;
#   4. the C test programs (c/tests, driven by fshm-ffi/tests/c_api.rs) pass, the ones
#      linked against the shared library under valgrind (memory errors and leaks fail),
#      each in both FILE modes: the fast one (glibc internals: in-place refills, direct
#      writes) and, in the `portable_file` tests, the portable one forced with
#      FSHM_PORTABLE_FILE=1 (what musl and other architectures get);
#   5. fshm-ffi/tests/file_layout.rs: every glibc FILE field and flag the fast mode
#      uses matches the C headers and stdio;
#   6. the C++ test programs (test_cxx.cpp: shmfile.h as C++; test_hpp.cpp:
#      shmfile.hpp) compiled with clang++ too (cargo test uses g++).
#
# Installs valgrind with apt-get if it is missing (CI machines are fresh Debian, root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target="${CARGO_TARGET_DIR:-target}/debug"
so="$target/libshmfile.so"
a="$target/libshmfile.a"
list="fshm-ffi/exported-symbols.txt"

fail() {
    echo "c-checks: $*" >&2
    exit 1
}

[[ -f "$so" ]] || fail "$so is missing: run 'cargo build -p fshm-ffi' first"
[[ -f "$a" ]] || fail "$a is missing: run 'cargo build -p fshm-ffi' first"

# 1. Exported symbols: the defined dynamic symbols, names only, sorted.
exported="$(nm -D --defined-only "$so" | awk '{ print $NF }' | LC_ALL=C sort)"
if ! diff -u "$list" <(printf '%s\n' "$exported"); then
    fail "the symbols exported by $so differ from $list (- listed, + exported)"
fi
LC_ALL=C sort -c "$list" || fail "$list is not sorted (LC_ALL=C sort)"
echo "c-checks: $so exports exactly the $(wc -l <"$list") symbols of $list"

# 2. Soname.
soname="$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
[[ "$soname" == "libshmfile.so.1" ]] || fail "soname of $so is '$soname', want libshmfile.so.1"
echo "c-checks: soname $soname"

# 3. Static library: an archive that defines the API.
nm --defined-only "$a" 2>/dev/null | grep ' T fshm_open$' >/dev/null ||
    fail "$a does not define fshm_open"
echo "c-checks: $a defines the API"

# 4. The C tests, under valgrind.
if ! command -v valgrind >/dev/null 2>&1; then
    echo "c-checks: installing valgrind"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind
fi
FSHM_VALGRIND=1 cargo test -p fshm-ffi --test c_api
n_portable="$(cargo test -p fshm-ffi --test c_api -- --list 2>/dev/null | grep -c '::portable_file: test$' || true)"
[[ "$n_portable" -gt 0 ]] || fail "no portable_file C tests found in fshm-ffi/tests/c_api.rs"
echo "c-checks: the C tests ran in both FILE modes ($n_portable programs in the portable one)"

# 5. The glibc FILE layout the fast mode relies on.
cargo test -p fshm-ffi --test file_layout

# 6. The C++ programs with clang++ (-std=c++17 -Wall -Wextra -Werror, as with g++).
command -v clang++ >/dev/null 2>&1 || fail "clang++ is missing (ci/setup.sh installs clang)"
FSHM_TEST_CXX=clang++ cargo test -p fshm-ffi --test c_api -- cxx
echo "c-checks: ok"
