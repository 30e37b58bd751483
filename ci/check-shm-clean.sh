#!/usr/bin/env bash
# Checks that the run left nothing in /dev/shm: `check-shm-clean.sh snapshot FILE`
# records what is there before the run; `check-shm-clean.sh check FILE` fails if any
# object named like fshm's tests and examples ("fshm-*", "doc-*") appeared since.
set -euo pipefail
list() {
    find /dev/shm -maxdepth 1 -type f \( -name 'fshm-*' -o -name 'doc-*' -o -name 'oc-*' \) -printf '%f\n' | sort
}
case "${1:-}" in
    snapshot) list > "$2" ;;
    check)
        left=$(list | comm -13 "$2" -)
        if [ -n "$left" ]; then
            echo "objects left in /dev/shm by this run:" >&2
            echo "$left" >&2
            exit 1
        fi
        echo "/dev/shm: nothing left behind"
        ;;
    *) echo "usage: $0 snapshot|check FILE" >&2; exit 2 ;;
esac
