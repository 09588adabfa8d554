# Shared by the demo scripts (sourced after ../cluster/lib.sh).
# shellcheck shell=bash

DEMO_NS="${DEMO_NS:-shop}"

say() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
DEMO_DIR="$E2E_DIR/demo"

# The demo operator, if it is still the process we started.
operator_pid() {
  local f="$DEMO_DIR/operator.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "signalman run --namespace $DEMO_NS" || return 1
  echo "$pid"
}

stop_operator() {
  local pid
  if pid=$(operator_pid); then
    say "stopping the demo operator (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DEMO_DIR/operator.pid"
}

# A free TCP port on 127.0.0.1 for the operator's metrics and health server.
free_port() {
  local p
  for p in $(seq 18480 18580); do
    port_busy "$p" || { echo "$p"; return; }
  done
  die "no free port in 18480-18580 for the demo operator"
}
