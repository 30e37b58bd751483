#!/usr/bin/env bash
# Smoke test of the benchmark program: runs `fshm-bench --quick` (every configuration
# once, small volumes, under a minute) and fails only if it does not complete — a job
# that crashes, hangs, loses data or leaves objects in /dev/shm. No performance
# thresholds: the figures of a quick run on a shared machine are not meaningful.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo run --release -p fshm-bench -- --quick
# The benchmark measures fshm's default build (plus internal `__reactor-stats` and
# fshm-ffi's `__c-layer`): no test hook may be compiled into its hot paths.
if nm -C "${CARGO_TARGET_DIR:-target}/release/fshm-bench" | grep -q 'fshm::test_hooks'; then
    echo "fshm-bench was built with fshm's test hooks (feature __test-hooks)" >&2
    exit 1
fi
left=$(find /dev/shm -maxdepth 1 -name 'fshm-bench-*' -printf '%f\n' | sort)
if [ -n "$left" ]; then
    echo "fshm-bench left objects in /dev/shm:" >&2
    echo "$left" >&2
    exit 1
fi

# The probes (fshm-bench/probes/*.c, quoted in BENCHMARKS.md): they must build cleanly
# and run; small volumes here.
probes="$(mktemp -d)"
trap 'rm -rf "$probes"' EXIT
for src in fshm-bench/probes/*.c; do
    exe="$probes/$(basename "$src" .c)"
    gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$exe" "$src"
done
"$probes/read_paths" 16 >/dev/null
"$probes/fresh_writes" 16 >/dev/null
"$probes/create_syscalls" 200 >/dev/null
"$probes/ring_protocol" 16 >/dev/null
"$probes/ring_copy" 64 >/dev/null
"$probes/ring_touch" 16 >/dev/null
"$probes/guest_syscalls" 200 >/dev/null
"$probes/spin_pingpong" 2000 >/dev/null
"$probes/wake_pingpong" 2000 >/dev/null
left=$(find /dev/shm -maxdepth 1 -name 'fshm-probe-*' -printf '%f\n' | sort)
if [ -n "$left" ]; then
    echo "the probes left objects in /dev/shm:" >&2
    echo "$left" >&2
    exit 1
fi
echo "bench-smoke: probes ok"
