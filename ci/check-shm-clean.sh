#!/usr/bin/env bash
# Fails if fshm's tests or examples left objects in /dev/shm (names they use start
# with "fshm-" or "doc-").
set -euo pipefail
left=$(find /dev/shm -maxdepth 1 -type f \( -name 'fshm-*' -o -name 'doc-*' \) -printf '%f\n' | sort)
if [ -n "$left" ]; then
    echo "objects left in /dev/shm:" >&2
    echo "$left" >&2
    exit 1
fi
echo "/dev/shm: nothing left behind"
