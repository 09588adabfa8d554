#!/usr/bin/env bash
# Stop the local e2e environment started by up.sh (idempotent): kills exactly
# the processes recorded in .e2e/pids/ (checking each is still ours), then
# removes the etcd and Prometheus data. Keeps logs/ and pki/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

stopped=0
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c="${COMPONENTS[$i]}"
  if pid=$(alive_pid "$c"); then
    say "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$c did not exit after 10s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    stopped=$((stopped + 1))
  fi
  rm -f "$PIDS/$c.pid"
done
rm -rf "$E2E_DIR/etcd" "$E2E_DIR/prometheus" "$E2E_DIR/versions.stamp"
if [ "$stopped" -eq 0 ]; then
  say "nothing was running"
else
  say "stopped $stopped processes (logs kept in $LOGS)"
fi
