#!/usr/bin/env bash
# Smoke test of the benchmark program: runs `fshm-bench --quick` (every configuration
# once, small volumes, under a minute) and fails only if it does not complete — a job
# that crashes, hangs, loses data or leaves objects in /dev/shm. No performance
# thresholds: the figures of a quick run on a shared machine are not meaningful.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo run --release -p fshm-bench -- --quick
left=$(find /dev/shm -maxdepth 1 -name 'fshm-bench-*' -printf '%f\n' | sort)
if [ -n "$left" ]; then
    echo "fshm-bench left objects in /dev/shm:" >&2
    echo "$left" >&2
    exit 1
fi
