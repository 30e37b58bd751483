#!/usr/bin/env bash
# Reliability checks under valgrind memcheck (issue 7): the hostile-header property test
# and the header scribbler, run from their test binaries with one test thread. Forked
# children stay under valgrind (fork is not exec), and a memcheck error in a child turns
# its exit code into 99, which the tests report as a failed child. Bounded: a few minutes
# on 2 cores. See RELIABILITY.md.
#
#   bash ci/reliability.sh                 # 64 fuzz cases under valgrind, then the scribbler
#   VALGRIND_PROPTEST_CASES=256 bash ci/reliability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Code runs 20-50 times slower under memcheck: the tests' hard time bounds scale by this
# (fshm/tests/common: time_factor).
export FSHM_TEST_TIME_FACTOR="${FSHM_TEST_TIME_FACTOR:-30}"

command -v valgrind >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
}

# Builds the test binary of fshm/tests/$1.rs and prints its path.
test_binary() {
    cargo test -p fshm --test "$1" --no-run 2>&1 |
        sed -n "s|.*Executable tests/$1.rs (\(.*\))|\1|p" | tail -n 1
}

run_under_valgrind() {
    local name=$1 limit=$2 bin
    bin=$(test_binary "$name")
    [ -x "$bin" ] || { echo "no test binary for $name" >&2; exit 1; }
    echo "== valgrind memcheck: $name (limit ${limit}s)"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" \
        valgrind --error-exitcode=99 --trace-children=no --quiet \
        "$bin" --test-threads=1 --nocapture
    echo "== $name: clean under valgrind in $((SECONDS - start)) s"
}

shm_before=$(mktemp)
bash ci/check-shm-clean.sh snapshot "$shm_before"
PROPTEST_CASES=${VALGRIND_PROPTEST_CASES:-64} run_under_valgrind fuzz_header 600
run_under_valgrind scribbler 600
bash ci/check-shm-clean.sh check "$shm_before"
rm -f "$shm_before"
