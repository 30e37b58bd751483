#!/usr/bin/env bash
# Builds fshm, fshm-ffi and fshm-cli for x86_64-unknown-linux-musl and runs the test
# suites of fshm-sys, fshm and fshm-ffi (its C programs included, built with musl-gcc)
# natively.
#
#   ci/musl.sh           (after ci/setup.sh: rustup target, musl-tools)
#
# The default musl build is static (the fshm command is one static binary) and Rust
# makes no cdylib for it, so the C programs can be tested against libshmfile.a only
# (the `shared`, `portable_file` and `*_shared` cases need libshmfile.so and are
# skipped; on musl every FILE* is in the portable mode anyway). They are built with
# musl-gcc and linked with what `rustc --print native-static-libs` asks for on this
# target: musl's libc and the LLVM libunwind that Rust ships for it. A dynamically
# linked musl build is no way out on Debian: it would need a libgcc_s built for musl.
#
# The C programs run natively on musl too. What musl's stdio does differently from
# glibc's, they check per C library: a cookie FILE has no fd (fileno fails with
# EBADF), the write callback fails with -1 where glibc wants a count (fshm-ffi's
# src/file.rs), and a write right after a read lands where musl's read-ahead ended.
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

echo "== musl: clippy (the published crates)"
cargo clippy --target "$target" -p fshm-sys -p fshm -p fshm-ffi -p fshm-cli --all-targets -- -D warnings

echo "== musl: tests of fshm-sys, fshm, fshm-ffi"
cargo test --no-fail-fast --target "$target" -p fshm-sys -p fshm
self_contained="$(rustc --print sysroot)/lib/rustlib/$target/lib/self-contained"
# No C++ compiler for musl ships with Debian (musl-tools has musl-gcc only), so the
# C++ programs (shmfile.h as C++, shmfile.hpp) are skipped here; they run on glibc. So
# are the README's and the guide's C and C++ blocks (doc_blocks.rs: shared library, C++).
FSHM_TEST_CC=musl-gcc \
FSHM_TEST_STATIC_LIBS="-L$self_contained -lunwind -lc" \
    cargo test --no-fail-fast --target "$target" -p fshm-ffi -- \
    --skip ::shared --skip ::portable_file --skip _shared --skip header_is_cxx_clean \
    --skip cxx_wrapper_over_real_streams --skip c_and_cpp_blocks_of_the_readme
