#!/bin/sh
# Usage: sandbox_nonroot_test.sh REWARD_SANDBOX_TEST [GTEST FLAGS]
# Runs the sandbox battery as an unprivileged uid (nobody), the way a non-root
# host or a Restricted pod runs the reward server. Exit 77 (skipped) when not
# root, since only root can switch to another uid. The binary is copied into
# a directory of nobody's, so the build tree may be private to root.
set -e
[ "$(id -u)" = 0 ] || { echo "not root: cannot switch to an unprivileged uid"; exit 77; }
dir=$(mktemp -d /tmp/zerorl-sandbox-nonroot.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$1" "$dir/reward_sandbox_test"
chmod 755 "$dir" "$dir/reward_sandbox_test"
chown -R 65534:65534 "$dir"
shift
cd "$dir"
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$dir" TMPDIR="$dir" TEST_TMPDIR="$dir" \
  "$dir/reward_sandbox_test" "$@"
