#!/usr/bin/env bash
# Installs what the checks need on a fresh machine that has only the Rust toolchain:
# rustfmt and clippy, and the Debian packages for the C checks and the build-system
# checks, each only when it is missing.
set -euo pipefail
rustup component add rustfmt clippy >/dev/null 2>&1 || true
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v valgrind >/dev/null || need+=(valgrind)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v make >/dev/null || need+=(make)
# For ci/build-systems-check.sh: CMake and Meson users of an installed libshmfile.
command -v cmake >/dev/null || need+=(cmake)
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
