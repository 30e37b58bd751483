#!/usr/bin/env bash
# Checks that the four published crates package and build from their packages alone:
# `cargo package` for fshm-sys, fshm, fshm-ffi and fshm-cli (what `cargo publish` would
# upload, verified by building each .crate unpacked, as a user would get it).
#
#   ci/package.sh
#
# How the unpublished siblings resolve: fshm, fshm-ffi and fshm-cli depend on
# fshm-sys / fshm by path *and* version (workspace.dependencies), and a package keeps
# only the version. Since cargo 1.84, one `cargo package` naming several members
# packages them in dependency order into a temporary local registry that overlays
# crates.io, and verifies each package against the siblings packaged just before, so
# nothing needs to be on crates.io yet. (Packaging one dependent alone fails to
# resolve its sibling; `--no-verify` would skip the build check altogether.)
#
# cargo unpacks that temporary registry's crates under $CARGO_HOME/registry/src in a
# directory named after the registry's path, and reuses an unpacked copy of the same
# name and version without looking at its contents: with a fixed target directory, a
# second run would verify against the first run's sources. So each run uses its own
# target directory, and removes what it unpacked afterwards.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo_home="${CARGO_HOME:-$HOME/.cargo}"
work="$(mktemp -d /tmp/fshm-package.XXXXXX)"
before="$work/registry-dirs"
registry_dirs() {
    ls -d "$cargo_home"/registry/src/-* "$cargo_home"/registry/cache/-* \
          "$cargo_home"/registry/index/-* 2>/dev/null | sort || true
}
registry_dirs >"$before"
cleanup() {
    # The temporary registry's unpacked crates (directories named "-<hash>") that
    # this run made.
    registry_dirs | comm -13 "$before" - | while read -r d; do rm -rf "$d"; done
    rm -rf "$work"
}
trap cleanup EXIT

# --allow-dirty: what is checked is the packages' contents, so uncommitted work can be
# checked too (CI runs on a clean clone anyway).
CARGO_TARGET_DIR="$work/target" \
    cargo package --allow-dirty -p fshm-sys -p fshm -p fshm-ffi -p fshm-cli
for c in fshm-sys fshm fshm-ffi fshm-cli; do
    crate="$(ls "$work/target/package/$c"-[0-9]*.crate)"
    files="$(tar -tzf "$crate")"
    for f in LICENSE-MIT LICENSE-APACHE README.md; do
        grep -qx "$c-[^/]*/$f" <<<"$files" ||
            { echo "package.sh: $crate lacks $f" >&2; exit 1; }
    done
done
echo "package.sh: fshm-sys, fshm, fshm-ffi and fshm-cli package and build, with licenses and README"
