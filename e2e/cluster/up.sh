#!/usr/bin/env bash
# Bring up the local e2e environment (idempotent):
#   etcd, kube-apiserver (TLS, client CA, RBAC), kube-controller-manager,
#   kube-scheduler, kwok with fake Nodes, the Gateway API CRDs,
#   the traffic simulator and Prometheus scraping it -- all on 127.0.0.1.
# If everything is already up and healthy it returns within seconds.
#
# State lives in $E2E_DIR (default <repo>/.e2e): pki/, kubeconfig, logs/,
# pids/, etcd/, prometheus/. Stop with down.sh (`make cluster-down`).
#
# Ports (override via env): ETCD_PORT=12379 ETCD_PEER_PORT=12380
#   APISERVER_PORT=16443 KCM_PORT=20257 SCHEDULER_PORT=20259
#   PROM_PORT=9090 SIM_PORT=9464.  KWOK_NODES=3 sets the number of fake Nodes.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
check_prereqs cluster

T0=$SECONDS
elapsed() { echo "$((SECONDS - T0))s"; }

mkdir -p "$E2E_DIR" "$LOGS" "$PIDS"

if cluster_healthy; then
  # Started by an up.sh that did not record its ports yet: they are the ones
  # this run was given (every run of a cluster must be given the same).
  [ -f "$E2E_DIR/ports.env" ] || write_ports
  say "cluster already up and healthy ($(elapsed))"
  print_summary
  exit 0
fi
if any_running; then
  say "cluster partly up or unhealthy: restarting it"
  "$HERE/down.sh"
  mkdir -p "$E2E_DIR" "$LOGS" "$PIDS"
fi

for p in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT PROM_PORT SIM_PORT; do
  port_busy "${!p}" && die "127.0.0.1:${!p} is already in use by another process; free it or set $p"
done
write_ports

# --- binaries -----------------------------------------------------------------
say "building / locating binaries (cached in $SIGNALMAN_CACHE/bin)"
"$HERE/build.sh"

# The traffic simulator is cached by a hash of its sources, so a warm start
# never waits for cargo (whose target dir other builds may hold locked).
SIM_CACHED="$BIN_ROOT/traffic-sim-$(traffic_sim_hash)/traffic-sim"
CARGO_PID=""
if [ -x "$SIM_CACHED" ]; then
  say "traffic-sim: cached in $(dirname "$SIM_CACHED")"
else
  # Build it in the background while the cluster starts.
  say "building traffic-sim (cargo, target dir $CARGO_TARGET_DIR; log: $LOGS/cargo-traffic-sim.log)"
  (cd "$REPO" && cargo build -p signalman-e2e --bin traffic-sim) >"$LOGS/cargo-traffic-sim.log" 2>&1 &
  CARGO_PID=$!
fi

# --- PKI ------------------------------------------------------------------------
gen_pki

# --- etcd -----------------------------------------------------------------------
rm -rf "$E2E_DIR/etcd"
start_etcd
wait_until "etcd healthy" 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

# --- Prometheus (independent of the cluster, so start it early) -----------------
rm -rf "$E2E_DIR/prometheus"
sed -e "s/@SIM_PORT@/$SIM_PORT/g" "$HERE/prometheus.yml" >"$E2E_DIR/prometheus.yml"
start prometheus "$PROMETHEUS_BIN" \
  --config.file="$E2E_DIR/prometheus.yml" \
  --storage.tsdb.path="$E2E_DIR/prometheus" \
  --storage.tsdb.retention.time=1d \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --web.enable-lifecycle \
  --query.lookback-delta=30s \
  --log.level=warn

# --- kube-apiserver ---------------------------------------------------------------
start_apiserver
wait_until "kube-apiserver /readyz" 90 kubectl_admin get --raw=/readyz

# --- controllers, scheduler, kwok ------------------------------------------------
start_controllers

# Fake Nodes, managed by kwok (pods need no toleration: there are no real nodes).
for i in $(seq 1 "$KWOK_NODES"); do
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    type: kwok
    topology.kubernetes.io/zone: zone-$i
---
EOF
done | kubectl_admin apply --server-side --field-manager=signalman-e2e -f - >/dev/null
wait_until "$KWOK_NODES Nodes Ready" 60 nodes_ready
wait_until "ServiceAccount default/default (token controller up)" 60 \
  kubectl_admin get serviceaccount default -n default

# --- Gateway API CRDs --------------------------------------------------------------
GW_DIR=$(gateway_api_dir)
say "installing Gateway API $GATEWAY_API_VERSION standard CRDs"
kubectl_admin apply --server-side --force-conflicts --field-manager=signalman-e2e \
  -f "$GW_DIR/config/crd/standard/" >/dev/null
wait_until "Gateway API CRDs established" 60 crds_established \
  httproutes.gateway.networking.k8s.io gateways.gateway.networking.k8s.io

# --- traffic simulator --------------------------------------------------------------
if [ -n "$CARGO_PID" ]; then
  say "waiting for the traffic-sim build"
  if ! wait "$CARGO_PID"; then
    tail -n 30 "$LOGS/cargo-traffic-sim.log" >&2
    die "cargo build of traffic-sim failed (log: $LOGS/cargo-traffic-sim.log)"
  fi
  mkdir -p "$(dirname "$SIM_CACHED")"
  cp "$CARGO_TARGET_DIR/debug/traffic-sim" "$SIM_CACHED.tmp" && mv "$SIM_CACHED.tmp" "$SIM_CACHED"
fi
cp "$SIM_CACHED" "$E2E_DIR/traffic-sim"
start traffic-sim env KUBECONFIG="$KUBECONFIG_ADMIN" SIM_PORT="$SIM_PORT" "$E2E_DIR/traffic-sim"
wait_until "traffic-sim /healthz" 30 curl -fsS "http://127.0.0.1:$SIM_PORT/healthz"
wait_until "Prometheus ready" 60 curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready"
wait_until "Prometheus scraping traffic-sim" 30 prom_target_up

write_env
cluster_healthy || die "cluster came up but the health check fails; see $LOGS"
say "cluster up in $(elapsed)"
print_summary
