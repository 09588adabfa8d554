#!/usr/bin/env bash
# Stop or start the local cluster's kube-apiserver alone, exactly as up.sh
# starts it and with the ports that cluster was started with
# ($E2E_DIR/ports.env), leaving etcd and everything else running: what an
# operator does while the API server is away is then testable
# (e2e/tests/apiserver_restart.rs).
#
#   e2e/cluster/apiserver.sh stop    SIGTERM, SIGKILL after APISERVER_STOP_GRACE
#                                    seconds (default 2); returns once it is gone
#   e2e/cluster/apiserver.sh start   returns once /readyz answers and the
#                                    Nodes are Ready
#   e2e/cluster/apiserver.sh freeze  SIGSTOP: connections stay open, nothing is answered
#   e2e/cluster/apiserver.sh thaw    SIGCONT
#
# `start` also restarts kube-controller-manager, kube-scheduler and kwok:
# they come back from an outage on their own, but slowly and not always
# cleanly (kwok's Nodes went NotReady half a minute later and pods of a
# rollout stayed uncreated), and what follows, this test's rollouts and the
# rest of the suite, needs a healthy cluster, not theirs.
#
# The grace is short because this kube-apiserver, once it has stopped
# listening, lingers for 15 s and more with its watch connections open but
# silent; an outage of a predictable length needs it gone.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

[ -f "$E2E_DIR/ports.env" ] || die "no local cluster in $E2E_DIR (no ports.env): make cluster-up first"
# shellcheck source=/dev/null
source "$E2E_DIR/ports.env"
alive_pid etcd >/dev/null || die "etcd of $E2E_DIR is not running: make cluster-up first"

case "${1:-}" in
  stop)
    stop_component kube-apiserver "${APISERVER_STOP_GRACE:-2}"
    ;;
  start)
    if alive_pid kube-apiserver >/dev/null; then
      say "kube-apiserver already runs"
    else
      port_busy "$APISERVER_PORT" && die "127.0.0.1:$APISERVER_PORT is taken by another process"
      APPEND_LOG=1 start_apiserver
    fi
    wait_until "kube-apiserver /readyz" 90 kubectl_admin get --raw=/readyz
    for c in kwok kube-scheduler kube-controller-manager; do stop_component "$c" 5; done
    APPEND_LOG=1 start_controllers
    wait_until "$KWOK_NODES Nodes Ready" 60 nodes_ready
    ;;
  freeze | thaw)
    pid=$(alive_pid kube-apiserver) || die "kube-apiserver is not running"
    if [ "$1" = freeze ]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi
    say "kube-apiserver (pid $pid): $1"
    ;;
  *) die "usage: $0 stop|start|freeze|thaw" ;;
esac
