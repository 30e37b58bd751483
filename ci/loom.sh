#!/usr/bin/env bash
# The loom model checks of the shared-memory protocols (fshm/src/loom_tests.rs): length
# publication, appends, lossless-ring attach and reader slots, the wake rule. They build
# fshm with `--cfg fshm_loom` in a target directory of their own (so the normal build's
# artifacts stay valid), lint that build, and run only the models (`loom` filter): the
# other unit tests do not run on loom's atomics.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg fshm_loom"
target=target/loom
cargo clippy -p fshm --lib --tests --target-dir "$target" -- -D warnings
cargo test -p fshm --release --lib --target-dir "$target" loom
