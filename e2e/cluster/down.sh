#!/usr/bin/env bash
# Stop the local e2e environment started by up.sh (idempotent): kills exactly
# the processes recorded in .e2e/pids/ (checking each is still ours), then
# removes the etcd and Prometheus data. Keeps logs/ and pki/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# SIGTERM everything we started (clients first), then wait up to 15 s in
# total and SIGKILL whatever is left.
declare -A pids=()
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c="${COMPONENTS[$i]}"
  if pid=$(alive_pid "$c"); then
    say "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    pids[$c]=$pid
  fi
done
for _ in $(seq 1 75); do
  left=0
  for c in "${!pids[@]}"; do kill -0 "${pids[$c]}" 2>/dev/null && left=1; done
  [ "$left" = 0 ] && break
  sleep 0.2
done
for c in "${!pids[@]}"; do
  if kill -0 "${pids[$c]}" 2>/dev/null; then
    say "$c (pid ${pids[$c]}) did not exit after 15s; killing it"
    kill -KILL "${pids[$c]}" 2>/dev/null || true
  fi
done
for c in "${COMPONENTS[@]}"; do rm -f "$PIDS/$c.pid"; done
rm -rf "$E2E_DIR/etcd" "$E2E_DIR/prometheus" "$E2E_DIR/versions.stamp" "$E2E_DIR/ports.env"
if [ ${#pids[@]} -eq 0 ]; then
  say "nothing was running"
else
  say "stopped ${#pids[@]} processes (logs kept in $LOGS)"
fi
