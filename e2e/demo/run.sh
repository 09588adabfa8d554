#!/usr/bin/env bash
# `make demo`: a release train you can watch, from a fresh machine.
#
#   1. the local control plane (make cluster-up: built from source on first run)
#   2. the Release CRD and the operator (signalman run, watching namespace shop)
#   3. examples/demo/: a shop of three services, then two Releases:
#      checkout-v5 succeeds; checkout-v5-1 carries a bad build and rolls back
#   4. a summary, and how to tear it all down (make demo-down)
#
# Works without a terminal and without stdin (CI): the watch view then prints
# plain blocks. Exits 0 only if checkout-v5 ended Succeeded and checkout-v5-1
# RolledBack. DEMO_CHECK=1 (make demo-check) also stops what the demo started.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
source "$HERE/../cluster/lib.sh"
source "$HERE/lib.sh"
check_prereqs cluster

T0=$SECONDS
CHECK="${DEMO_CHECK:-0}"
WATCH_TIMEOUT="${DEMO_WATCH_TIMEOUT:-600}"
mkdir -p "$DEMO_DIR"

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B=; G=; R=; N=; fi
act() { printf '\n%s== %s%s  (%ss)\n\n' "$B" "$*" "$N" "$((SECONDS - T0))"; }

finish() {
  local rc=$?
  if [ "$CHECK" = 1 ]; then
    "$HERE/down.sh" >/dev/null || true
  elif [ "$rc" != 0 ]; then
    say "the demo failed; operator log: $DEMO_DIR/operator.log; tear down with make demo-down"
  fi
  exit "$rc"
}
trap finish EXIT

act "1/6 The local control plane (make cluster-up)"
if cluster_healthy; then
  say "a local cluster is already running; using it"
else
  "$CLUSTER_DIR/up.sh"
  touch "$DEMO_DIR/started-cluster"
fi
export KUBECONFIG="$KUBECONFIG_ADMIN"
export PROMETHEUS_URL="http://127.0.0.1:$PROM_PORT"
export PATH="$(dirname "$(kubectl_bin)"):$PATH"

act "2/6 Build the operator and the kubectl plugin"
(cd "$REPO" && cargo build -q -p signalman --bins)
# kubectl runs any kubectl-<name> on PATH as `kubectl <name>`.
export PATH="$CARGO_TARGET_DIR/debug:$PATH"
kubectl signalman --version

act "3/6 Install the Release CRD and start the operator"
kubectl apply -f "$REPO/crds/"
kubectl wait --for=condition=Established crd/releases.signalman.dev --timeout=60s
stop_operator
# A fresh shop every run: the Releases of a previous demo would be final already.
if kubectl get namespace "$DEMO_NS" >/dev/null 2>&1; then
  say "removing the shop of a previous demo"
  kubectl delete namespace "$DEMO_NS" --wait=true --timeout=120s
fi
port=$(free_port)
say "signalman run --namespace $DEMO_NS (log: $DEMO_DIR/operator.log, metrics: 127.0.0.1:$port)"
setsid "$CARGO_TARGET_DIR/debug/signalman" run \
  --namespace "$DEMO_NS" --prometheus-url "$PROMETHEUS_URL" \
  --metrics-addr "127.0.0.1:$port" --kubeconfig "$KUBECONFIG" \
  </dev/null >"$DEMO_DIR/operator.log" 2>&1 &
echo $! >"$DEMO_DIR/operator.pid"
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$DEMO_DIR/operator.pid")" 2>/dev/null || { tail -20 "$DEMO_DIR/operator.log"; die "the operator exited"; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || die "the operator did not become ready; see $DEMO_DIR/operator.log"

act "4/6 The shop: payments-api, inventory, checkout-web (examples/demo/00-shop.yaml)"
kubectl apply -f "$REPO/examples/demo/00-shop.yaml"
kubectl -n "$DEMO_NS" wait --for=condition=Available deployment --all --timeout=120s
kubectl -n "$DEMO_NS" get deployments

act "5/6 Release checkout-v5: three good versions, checkout-web after the two it needs"
kubectl signalman plan -f "$REPO/examples/demo/10-release-checkout-v5.yaml"
kubectl apply -f "$REPO/examples/demo/10-release-checkout-v5.yaml"
timeout "$WATCH_TIMEOUT" kubectl signalman get checkout-v5 -n "$DEMO_NS" --watch \
  || say "the watch ended early (exit $?)"

act "6/6 Release checkout-v5-1: payments fix, then a checkout build that fails 30% of requests"
kubectl signalman plan -f "$REPO/examples/demo/20-release-checkout-v5-1.yaml"
kubectl apply -f "$REPO/examples/demo/20-release-checkout-v5-1.yaml"
timeout "$WATCH_TIMEOUT" kubectl signalman get checkout-v5-1 -n "$DEMO_NS" --watch \
  || say "the watch ended early (exit $?)"
echo
kubectl signalman timeline checkout-v5-1 -n "$DEMO_NS"

first=$(kubectl -n "$DEMO_NS" get release checkout-v5 -o jsonpath='{.status.phase}')
second=$(kubectl -n "$DEMO_NS" get release checkout-v5-1 -o jsonpath='{.status.phase}')
images=$(kubectl -n "$DEMO_NS" get deployments -o jsonpath='{range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].image}{"\n"}{end}')

act "Summary"
kubectl signalman get -n "$DEMO_NS"
echo
echo "Stable versions now:"
echo "$images" | sed 's/^/  /'
echo
ok=1
if [ "$first" = Succeeded ]; then echo "  ${G}✔${N} checkout-v5 ended Succeeded"; else echo "  ${R}✖${N} checkout-v5 ended ${first:-without a phase}, expected Succeeded"; ok=0; fi
if [ "$second" = RolledBack ]; then echo "  ${G}✔${N} checkout-v5-1 ended RolledBack"; else echo "  ${R}✖${N} checkout-v5-1 ended ${second:-without a phase}, expected RolledBack"; ok=0; fi
echo "  the demo took $((SECONDS - T0))s"
if [ "$CHECK" != 1 ]; then
  cat <<MSG

Everything is still running. Look around:
  source .e2e/env && export PATH=$CARGO_TARGET_DIR/debug:\$PATH
  kubectl signalman get -n $DEMO_NS
  kubectl signalman timeline checkout-v5-1 -n $DEMO_NS
  open $PROMETHEUS_URL   (sim_http_requests_total{namespace="$DEMO_NS"})
Tear it down with: make demo-down
MSG
fi
[ "$ok" = 1 ]
