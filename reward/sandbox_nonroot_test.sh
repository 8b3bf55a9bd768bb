#!/bin/sh
# Usage: sandbox_nonroot_test.sh REWARD_SANDBOX_TEST [GTEST FLAGS]
# Runs the sandbox battery as an unprivileged uid (nobody), the way a non-root
# host or a Restricted pod runs the reward server. Exit 77 (skipped) when not
# root, since only root can switch to another uid.
set -e
[ "$(id -u)" = 0 ] || { echo "not root: cannot switch to an unprivileged uid"; exit 77; }
dir=$(mktemp -d /tmp/zerorl-sandbox-nonroot.XXXXXX)
chown 65534:65534 "$dir"
trap 'rm -rf "$dir"' EXIT
cd "$dir"
bin=$1; shift
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$dir" TMPDIR="$dir" TEST_TMPDIR="$dir" "$bin" "$@"
