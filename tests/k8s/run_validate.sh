#!/usr/bin/env bash
# ctest k8s_manifests: installs the pinned npm packages (package-lock.json) into
# the build directory when they are missing or stale, then runs validate.mjs.
# usage: run_validate.sh TESTS_K8S_DIR NPM_DIR SOURCE_DIR ZERORL_BIN
set -euo pipefail
src="$1"; npm_dir="$2"; root="$3"; zerorl="$4"
if ! command -v node >/dev/null 2>&1; then
  echo "k8s_manifests: node is not installed (scripts/install-deps installs nodejs and npm)" >&2
  exit 1
fi
mkdir -p "$npm_dir"
if [ ! -d "$npm_dir/node_modules" ] || ! cmp -s "$src/package-lock.json" "$npm_dir/package-lock.json"; then
  cp "$src/package.json" "$src/package-lock.json" "$npm_dir/"
  rm -rf "$npm_dir/node_modules"
  npm ci --prefix "$npm_dir" --no-audit --no-fund --loglevel=error
fi
# The scripts run from beside node_modules so that their imports resolve there.
cp "$src"/*.mjs "$npm_dir/"
exec node "$npm_dir/validate.mjs" --root "$root" --zerorl "$zerorl"
