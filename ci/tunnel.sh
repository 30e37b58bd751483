#!/usr/bin/env bash
# fshm-tunnel (Zenoh), a workspace of its own (fshm-tunnel/Cargo.toml; the root workspace
# excludes it): lint, format check and tests, in a target directory of its own so that
# its build shares no artifacts or build locks with the root workspace's.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=fshm-tunnel/Cargo.toml
target=target/tunnel
cargo fmt --manifest-path "$manifest" --all -- --check
cargo clippy --manifest-path "$manifest" --locked --all-targets --target-dir "$target" -- -D warnings
# As root (CI) the tests across simulated hosts (tests/netns.rs: network namespaces)
# must really run: a test that would skip for want of privileges fails instead.
if [ "$(id -u)" = 0 ]; then
    export FSHM_TEST_REQUIRE_PRIVILEGES=1
fi
cargo test --manifest-path "$manifest" --locked --target-dir "$target"
