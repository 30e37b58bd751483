#!/usr/bin/env bash
# Installs what the checks need on a fresh machine that has only the Rust toolchain:
# rustfmt and clippy, the aarch64 and musl Rust targets, and the Debian packages for the
# C checks, the build-system checks, the cross (aarch64 under qemu-user) and musl runs
# and the bindings check, each only when it is missing.
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
# For ci/cross.sh: aarch64 cross compilers and headers, qemu-user to run the tests.
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
# For ci/musl.sh: musl's headers, libraries and musl-gcc.
command -v musl-gcc >/dev/null || need+=(musl-tools)
# For ci/regen-bindings.sh --check: libclang, which bindgen loads.
compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null || need+=(libclang-dev)
command -v clang >/dev/null || need+=(clang)
# For ci/c-checks.sh: the C++ tests compiled with clang++ too.
command -v clang++ >/dev/null || need+=(clang)
# For fshm-ffi/tests/c_api.rs: the event-loop tests (c/tests/test_loop_*.c) link libuv
# and GLib.
[ -f /usr/include/uv.h ] || need+=(libuv1-dev)
pkg-config --exists glib-2.0 2>/dev/null || need+=(libglib2.0-dev)
# For ci/python.sh: a Python 3.11+ that can make virtual environments (with pip).
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# For fshm-tunnel/tests/netns.rs (ci/tunnel.sh): ip and ss, and nft for the packet-loss
# rules inside a network namespace.
command -v ip >/dev/null || need+=(iproute2)
command -v ss >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
# For ci/unprivileged.sh: useradd, setpriv and unshare (usually there already).
command -v useradd >/dev/null || need+=(passwd)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The cross and musl targets' standard libraries.
rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-musl >/dev/null
