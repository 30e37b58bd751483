#!/usr/bin/env bash
# Checks the hand-written copies of the C API version against VERSION (`make
# check-version` passes the one from fshm-ffi/Cargo.toml's c-api-version):
#   - every man page's .TH line says "shmfile VERSION";
#   - shmfile.h's comments name VERSION where they name the library's version;
#   - the C tests that check shmfile_get_version and _fshm_printCopyrightVersion
#     expect VERSION;
#   - fshm_open(3) and shmfile_get_version(3) state VERSION as the library's version,
#     the latter also the SHMFILE_VERSION_* macros (fshm-ffi/build.rs checks the
#     header's own macros when it builds);
#   - no C test names another 1.x.y version than VERSION, except 1.1.0 (the shmfile
#     release fshm replaces).
# (A page may still say that something was added in an earlier version.)
# The library, shmfile.pc, the CMake package and the soname are generated from the
# same line, so they cannot disagree; the C tests run against the library.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: check-version.sh X.Y.Z}
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || {
    echo "check-version: '$version' is not X.Y.Z" >&2
    exit 1
}
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
bad=0
fail() {
    echo "check-version: $*" >&2
    bad=1
}

for page in c/man/*.3; do
    if grep -q '^\.so ' "$page"; then
        continue
    fi
    grep -q "^\\.TH .* \"shmfile $version\" " "$page" ||
        fail "$page: its .TH line does not say \"shmfile $version\""
done

# Each: a file, and a fixed string that must appear in it.
must=(
    "c/shmfile.h" "new in $version (fshm)"
    "c/shmfile.h" "library version ($version, extra"
    "c/man/fshm_open.3" "This library (version $version, extra string"
    "c/man/shmfile_get_version.3" "$major, $minor and $patch (shmfile"
    "docs/decisions-and-limits.md" "\`shmfile_get_version\` reports $version"
    "c/tests/test_cxx.cpp" "major == $major && minor == $minor && patch == $patch"
    "c/tests/test_errors.c" "\"before|shmfile $version\""
    "c/man/shmfile_get_version.3" "SHMFILE_VERSION_NUMBER $((major * 10000 + minor * 100 + patch))\""
    "c/man/shmfile_get_version.3" "SHMFILE_VERSION_STRING \\(dq$version\\(dq"
)
for ((i = 0; i < ${#must[@]}; i += 2)); do
    grep -qF -- "${must[i + 1]}" "${must[i]}" ||
        fail "${must[i]} does not hold '${must[i + 1]}'"
done

# Any other version written in these files is a copy that was not updated.
others=$(grep -noE '\b1\.[0-9]+\.[0-9]+\b' c/tests/* 2>/dev/null |
    grep -vE ":(1\.1\.0|$version)\$" || true)
[ -z "$others" ] || fail "versions other than $version and 1.1.0:"$'\n'"$others"

[ "$bad" = 0 ] || exit 1
echo "check-version: shmfile $version everywhere"
