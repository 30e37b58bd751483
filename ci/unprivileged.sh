#!/usr/bin/env bash
# Runs the README's test command, `cargo test --workspace`, as an unprivileged user on a
# fresh copy of the tree, as a new user on a laptop would. Tests that need privileges
# must skip with a one-line reason (or use a user namespace), never fail.
#
#   ci/unprivileged.sh [ARGS]     (as root: creates the user if needed; ARGS go to cargo test)
#
# The user (default `fshm-ci`, override with FSHM_CI_USER) gets its own copy of the
# tracked files, its own CARGO_HOME (seeded from root's registry cache so nothing is
# downloaded twice) and its own target directory, all in a temporary directory that is
# removed afterwards. The Rust toolchain is the one root uses: when the user cannot
# read it (rustup installs under /root, which is mode 0700), it is bind-mounted
# read-only into the temporary directory inside a private mount namespace, so nothing
# on the machine changes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
user="${FSHM_CI_USER:-fshm-ci}"

if [ "$(id -u)" != 0 ]; then
    echo "unprivileged.sh: run as root (it creates the user and drops to it)" >&2
    exit 2
fi
if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$user"
fi
uid="$(id -u "$user")"
gid="$(id -g "$user")"

work="$(mktemp -d /tmp/fshm-unprivileged.XXXXXX)"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

# The tracked (and new, not ignored) files as they are in the working tree: in CI that
# is exactly a fresh clone.
mkdir "$work/src"
git -C "$root" ls-files -z --cached --others --exclude-standard \
    | (cd "$root" && tar --null --no-recursion -T - -cf -) \
    | tar -xf - -C "$work/src"

# CARGO_HOME, seeded with root's downloaded crates.
mkdir "$work/cargo-home"
root_cargo_home="${CARGO_HOME:-$HOME/.cargo}"
if [ -d "$root_cargo_home/registry" ]; then
    cp -a "$root_cargo_home/registry" "$work/cargo-home/"
fi
chown -R "$uid:$gid" "$work/src" "$work/cargo-home"

# The toolchain's bin directory (cargo, rustc), not rustup's proxies: the user has no
# rustup home of its own.
if command -v rustup >/dev/null; then
    toolchain="$(dirname "$(dirname "$(rustup which cargo)")")"
else
    toolchain="$(dirname "$(dirname "$(command -v cargo)")")"
fi
as_user=(setpriv --reuid="$uid" --regid="$gid" --init-groups --reset-env)
bind=0
if ! "${as_user[@]}" test -x "$toolchain/bin/cargo"; then
    mkdir "$work/toolchain"
    bind=1
    real_toolchain="$toolchain"
    toolchain="$work/toolchain"
fi

cat >"$work/run.sh" <<EOF
cd '$work/src'
exec env -i HOME='$work' USER='$user' LANG=C.UTF-8 \\
    PATH='$toolchain/bin:/usr/local/bin:/usr/bin:/bin' CARGO_HOME='$work/cargo-home' \\
    CARGO_TERM_COLOR=never cargo test --workspace $*
EOF

echo "unprivileged.sh: cargo test --workspace as $user (uid $uid) in $work/src"
if [ "$bind" = 1 ]; then
    # unshare(1) makes the new mount namespace's mounts private: the bind mount is seen
    # only by this command and its children, and goes away with them.
    unshare --mount sh -c 'mount --bind -o ro "$1" "$2" && shift 2 && exec "$@"' sh \
        "$real_toolchain" "$work/toolchain" "${as_user[@]}" sh "$work/run.sh"
else
    "${as_user[@]}" sh "$work/run.sh"
fi
