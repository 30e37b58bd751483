#!/usr/bin/env bash
# Builds fshm, fshm-ffi and fshm-cli for x86_64-unknown-linux-musl and runs the test
# suites of fshm-sys, fshm and fshm-ffi (its C programs included, built with musl-gcc)
# natively.
#
#   ci/musl.sh           (after ci/setup.sh: rustup target, musl-tools)
#
# Two builds: the default one (static musl, what `cargo build --target
# x86_64-unknown-linux-musl` gives a user: the fshm command as one static binary), and
# the tests' build with `-C target-feature=-crt-static`, in its own target directory.
# Rust builds no cdylib for static musl, and the C tests link libshmfile.so as well as
# libshmfile.a; dynamically linked, the test programs use Debian's musl loader.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=x86_64-unknown-linux-musl
export CC_x86_64_unknown_linux_musl=musl-gcc

echo "== musl: build fshm, fshm-ffi, fshm-cli (static)"
cargo build --target "$target" -p fshm -p fshm-ffi -p fshm-cli
if readelf -l "target/$target/debug/fshm" | grep -q "program interpreter"; then
    echo "musl.sh: target/$target/debug/fshm is not statically linked" >&2
    exit 1
fi
"target/$target/debug/fshm" --help >/dev/null

echo "== musl: tests of fshm-sys, fshm, fshm-ffi (dynamic musl)"
# No C++ compiler for musl ships with Debian (musl-tools has musl-gcc only), so the C++
# header check, which needs g++ and a C++ runtime built for musl, is skipped here; it
# runs on glibc.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/musl-dynamic" \
RUSTFLAGS="-C target-feature=-crt-static" \
FSHM_TEST_CC=musl-gcc \
    cargo test --target "$target" -p fshm-sys -p fshm -p fshm-ffi -- \
    --skip header_is_cxx_clean
