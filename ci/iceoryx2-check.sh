#!/usr/bin/env bash
# The benchmark's optional iceoryx2 comparison (feature `iceoryx2` of fshm-bench, off by
# default): it must build and run its jobs once in quick mode — a job that
# crashes, hangs, loses or corrupts data, or leaves files behind fails. No performance
# thresholds (see BENCHMARKS.md). Fetches and builds iceoryx2 from crates.io (needs
# rustc ≥ 1.89, iceoryx2's own minimum).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo run --release -p fshm-bench --features iceoryx2 -- --quick --only iox
left=$(find /dev/shm /tmp -maxdepth 1 -name 'fshm-bench-*' -printf '%p\n' | sort)
if [ -n "$left" ]; then
    echo "fshm-bench (iceoryx2 jobs) left files behind:" >&2
    echo "$left" >&2
    exit 1
fi
echo "iceoryx2-check: ok"
