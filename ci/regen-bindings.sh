#!/usr/bin/env bash
# Regenerates the committed fshm-sys bindings, fshm-sys/src/bindings/x86_64_linux_gnu.rs,
# from fshm-sys/wrapper.h.
#
#   ci/regen-bindings.sh           rewrite the committed file
#   ci/regen-bindings.sh --check   exit 1 (and show the diff) if it is out of date
#
# It builds fshm-sys with its `bindgen` cargo feature, so the bindgen version (and the
# prettyplease formatter it uses) are the ones pinned in Cargo.lock, and the generation
# flags are the ones pinned in fshm-sys/build.rs (module `generate`): --use-core,
# --ctypes-prefix ::libc, an explicit --allowlist-function / --allowlist-type list,
# --rust-target = the crate's rust-version, --rust-edition 2021. The generated file's
# header repeats them as the equivalent bindgen-cli command line.
#
# Needs libclang (Debian: apt-get install -y libclang-dev clang) and glibc headers, on an
# x86_64-unknown-linux-gnu host: the output describes the host's headers.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=x86_64-unknown-linux-gnu
committed=fshm-sys/src/bindings/x86_64_linux_gnu.rs

check=0
case "${1-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

host="$(rustc -vV | sed -n 's/^host: //p')"
if [ "$host" != "$target" ]; then
  echo "regen-bindings: host is $host; $committed must be generated on $target" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$tmp/bindings.rs"

# A new path every run changes the env var, which makes cargo rerun the build script
# (it declares rerun-if-env-changed) even when nothing else changed.
if ! FSHM_SYS_BINDINGS_COPY_TO="$out" cargo build --quiet -p fshm-sys --features bindgen; then
  echo "regen-bindings: build with --features bindgen failed; is libclang installed?" \
       "(Debian: apt-get install -y libclang-dev clang)" >&2
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
    exit 1
  fi
else
  cp "$out" "$committed"
  echo "regen-bindings: wrote $committed"
fi
