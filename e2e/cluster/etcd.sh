#!/usr/bin/env bash
# Stop or start the local cluster's etcd alone, exactly as up.sh starts it,
# on the data it had and with the ports that cluster was started with
# ($E2E_DIR/ports.env), leaving the API server and everything else running:
# what the operator does while the API server has no storage is then
# testable (e2e/tests/fault_etcd_restart.rs).
#
#   e2e/cluster/etcd.sh stop    SIGTERM (SIGKILL after 5 s); returns once it is gone
#   e2e/cluster/etcd.sh start   returns once etcd is healthy, the API server's
#                               /readyz answers and the Nodes are Ready
#
# `start` restarts kube-controller-manager, kube-scheduler and kwok, as
# apiserver.sh does after an outage, so the rest of the suite finds a
# healthy cluster.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

[ -f "$E2E_DIR/ports.env" ] || die "no local cluster in $E2E_DIR (no ports.env): make cluster-up first"
# shellcheck source=/dev/null
source "$E2E_DIR/ports.env"
[ -d "$E2E_DIR/etcd" ] || die "no etcd data in $E2E_DIR/etcd: make cluster-up first"

case "${1:-}" in
  stop)
    stop_component etcd 5
    ;;
  start)
    if alive_pid etcd >/dev/null; then
      say "etcd already runs"
    else
      port_busy "$ETCD_PORT" && die "127.0.0.1:$ETCD_PORT is taken by another process"
      APPEND_LOG=1 start_etcd
    fi
    wait_until "etcd healthy" 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
    wait_until "kube-apiserver /readyz" 90 kubectl_admin get --raw=/readyz
    for c in kwok kube-scheduler kube-controller-manager; do stop_component "$c" 5; done
    APPEND_LOG=1 start_controllers
    wait_until "$KWOK_NODES Nodes Ready" 60 nodes_ready
    ;;
  *) die "usage: $0 stop|start" ;;
esac
