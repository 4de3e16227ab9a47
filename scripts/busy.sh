#!/usr/bin/env bash
# Runs a command with the machine kept busy: BUSY_LOOPS (default 2) CPU-burning processes beside
# it, stopped by their PIDs when it ends. The test suite must pass this way:
#   scripts/busy.sh npm test
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/busy.sh <command> [args...]" >&2; exit 2; }
loops=()
stop_loops() { [ ${#loops[@]} -eq 0 ] || kill "${loops[@]}" 2>/dev/null || true; }
trap stop_loops EXIT
for _ in $(seq 1 "${BUSY_LOOPS:-2}"); do
  bash -c 'while :; do :; done' &
  loops+=($!)
done
echo "[busy] ${#loops[@]} CPU-burning loops beside the command (pids ${loops[*]})" >&2
set +e
"$@"
code=$?
set -e
exit "$code"
