#!/usr/bin/env bash
# Regenerates the committed fshm-sys bindings, fshm-sys/src/bindings/<target>.rs, from
# fshm-sys/wrapper.h and each target's own C headers:
#
#   x86_64-unknown-linux-gnu    the host's glibc headers
#   aarch64-unknown-linux-gnu   Debian's libc6-dev-arm64-cross (/usr/aarch64-linux-gnu)
#   x86_64-unknown-linux-musl   Debian's musl-dev (/usr/include/x86_64-linux-musl)
#
#   ci/regen-bindings.sh           rewrite the committed files
#   ci/regen-bindings.sh --check   exit 1 (and show the diff) if one is out of date
#
# It builds fshm-sys with its `bindgen` cargo feature for each target, so the bindgen
# version (and the prettyplease formatter it uses) are the ones pinned in Cargo.lock,
# and the generation flags are the ones pinned in fshm-sys/build.rs (module
# `generate`): --use-core, --ctypes-prefix ::libc, an explicit --allowlist-function /
# --allowlist-type list, --rust-target = the crate's rust-version, --rust-edition 2021,
# clang's --target (and musl's include directory). The generated file's header repeats
# them as the equivalent bindgen-cli command line.
#
# Needs, on an x86_64-unknown-linux-gnu Debian host: libclang-dev clang
# gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl-tools (ci/setup.sh installs them),
# and the rustup targets aarch64-unknown-linux-gnu x86_64-unknown-linux-musl. The
# build also compiles the layout probe with each target's C compiler.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl)

check=0
case "${1-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

host="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$host" != x86_64-unknown-linux-gnu ]; then
  echo "regen-bindings: host is $host; the bindings are generated on x86_64-unknown-linux-gnu" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
stale=0
for target in "${targets[@]}"; do
  committed="fshm-sys/src/bindings/$(echo "$target" | sed 's/-unknown//; s/-/_/g').rs"
  out="$tmp/$target.rs"
  # A new path every run changes the env var, which makes cargo rerun the build script
  # (it declares rerun-if-env-changed) even when nothing else changed.
  if ! FSHM_SYS_BINDINGS_COPY_TO="$out" \
       cargo build --quiet -p fshm-sys --features bindgen --target "$target"; then
    echo "regen-bindings: build for $target with --features bindgen failed; are libclang," \
         "the target's headers and C compiler installed (ci/setup.sh), and the rustup" \
         "target added?" >&2
    exit 1
  fi
  if [ ! -s "$out" ]; then
    echo "regen-bindings: build.rs produced no bindings at $out" >&2
    exit 1
  fi
  if [ "$check" = 1 ]; then
    if diff -u "$committed" "$out"; then
      echo "regen-bindings: $committed is up to date"
    else
      echo "regen-bindings: $committed is out of date; run ci/regen-bindings.sh" >&2
      stale=1
    fi
  else
    cp "$out" "$committed"
    echo "regen-bindings: wrote $committed"
  fi
done
exit "$stale"
