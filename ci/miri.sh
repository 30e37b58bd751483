#!/usr/bin/env bash
# Miri over fshm's unit tests: the ones on process memory (the header's byte image and
# its checks, the per-byte-atomic copy, the lossless ring's protocol steps between two
# threads, names, growth). Everything that maps shared memory needs system calls Miri
# does not emulate (shm_open, mmap, OFD locks) and is covered by the integration tests
# and the loom models instead. Needs the nightly toolchain; installs its Miri component.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add --toolchain nightly miri rust-src
cargo +nightly miri setup
cargo +nightly miri test -p fshm --lib
