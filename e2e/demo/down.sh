#!/usr/bin/env bash
# `make demo-down`: stop the demo operator, remove the shop, and stop the local
# cluster if the demo started it (a cluster that was running before is left up:
# `make cluster-down` stops it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
source "$HERE/../cluster/lib.sh"
source "$HERE/lib.sh"

stop_operator
if [ -f "$DEMO_DIR/started-cluster" ]; then
  rm -f "$DEMO_DIR/started-cluster"
  "$CLUSTER_DIR/down.sh"
elif cluster_healthy; then
  say "removing namespace $DEMO_NS"
  kubectl_admin delete namespace "$DEMO_NS" --ignore-not-found --wait=false >/dev/null
  say "the cluster was running before the demo and stays up; make cluster-down stops it"
fi
