# Shared definitions for up.sh / down.sh / status.sh (sourced, not executed).
# shellcheck shell=bash

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$CLUSTER_DIR/../.." && pwd)"
# shellcheck source=versions.env
source "$CLUSTER_DIR/versions.env"

export SIGNALMAN_CACHE="${SIGNALMAN_CACHE:-$HOME/.cache/signalman}"
export GOMODCACHE="${GOMODCACHE:-$SIGNALMAN_CACHE/gomod}"
export GOCACHE="${GOCACHE:-$SIGNALMAN_CACHE/gocache}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SIGNALMAN_CACHE/target}"
export GOTOOLCHAIN="${GO_TOOLCHAIN:-local}"
for d in /usr/local/go/bin "$HOME/.cargo/bin"; do
  case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && PATH="$d:$PATH" ;; esac
done
export PATH

E2E_DIR="${E2E_DIR:-$REPO/.e2e}"
PKI="$E2E_DIR/pki"
LOGS="$E2E_DIR/logs"
PIDS="$E2E_DIR/pids"
KUBECONFIG_ADMIN="$E2E_DIR/kubeconfig"

ETCD_PORT="${ETCD_PORT:-12379}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
KCM_PORT="${KCM_PORT:-20257}"
SCHEDULER_PORT="${SCHEDULER_PORT:-20259}"
PROM_PORT="${PROM_PORT:-9090}"
SIM_PORT="${SIM_PORT:-9464}"
KWOK_NODES="${KWOK_NODES:-3}"

BIN_ROOT="$SIGNALMAN_CACHE/bin"
ETCD_BIN="$BIN_ROOT/etcd-$ETCD_VERSION"
KUBE_BIN="$BIN_ROOT/kubernetes-$KUBE_VERSION"
KUBECTL_BIN="$BIN_ROOT/kubectl-$KUBE_VERSION"
KWOK_BIN="$BIN_ROOT/kwok-$KWOK_VERSION"
HELM_BIN="$BIN_ROOT/helm-$HELM_VERSION"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)}"

# Started in this order, stopped in reverse.
COMPONENTS=(etcd prometheus kube-apiserver kube-controller-manager kube-scheduler kwok traffic-sim)

say() { printf '[e2e-cluster %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

kubectl_bin() {
  if [ -x "$KUBECTL_BIN/kubectl" ]; then echo "$KUBECTL_BIN/kubectl"; else command -v kubectl; fi
}
kubectl_admin() { "$(kubectl_bin)" --kubeconfig="$KUBECONFIG_ADMIN" --request-timeout=10s "$@"; }

# True if something listens on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The pid of a component we started, if it is still that process.
alive_pid() {
  local f="$PIDS/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # Guard against pid reuse: the command line must still name the component.
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  case "$cmd" in *"$(component_binary_name "$1")"*) ;; *) return 1 ;; esac
  case "$cmd" in *"$E2E_DIR"*) ;; *) return 1 ;; esac
  echo "$pid"
}
component_binary_name() {
  case "$1" in
    prometheus) basename "$PROMETHEUS_BIN" ;;
    *) echo "$1" ;;
  esac
}

# start <name> <command...>: run detached in its own session, log to logs/<name>.log.
start() {
  local name="$1"; shift
  say "starting $name (log: $LOGS/$name.log)"
  [ -x "$1" ] || [ "$1" = env ] || die "$name: $1 is not executable"
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

# wait_until <what> <seconds> <command...>: retry the command until it succeeds.
wait_until() {
  local what="$1" timeout="$2" start=$SECONDS; shift 2
  say "waiting for $what"
  until "$@" >/dev/null 2>&1; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      say "timed out after ${timeout}s waiting for $what; last output:" >&2
      "$@" >&2 || true
      for c in "${COMPONENTS[@]}"; do
        if [ -f "$PIDS/$c.pid" ] && ! alive_pid "$c" >/dev/null; then
          say "$c is not running; tail of $LOGS/$c.log:" >&2
          tail -n 20 "$LOGS/$c.log" >&2 || true
        fi
      done
      exit 1
    fi
    sleep 0.5
  done
}

nodes_ready() {
  local n
  n=$(kubectl_admin get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
  [ "$n" -ge "$KWOK_NODES" ]
}

crds_established() {
  local crd
  for crd in "$@"; do
    [ "$(kubectl_admin get crd "$crd" \
      -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" = True ] || return 1
  done
}

prom_target_up() {
  curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up%7Bjob%3D%22traffic-sim%22%7D" |
    grep -q '"value":\[[0-9.]*,"1"\]'
}

# Directory of the Gateway API module (downloaded into GOMODCACHE once).
gateway_api_dir() {
  local dir
  dir=$(GOFLAGS= go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir/config/crd/standard" ] || die "no config/crd/standard in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  echo "$dir"
}

# Fingerprint of everything traffic-sim is built from.
traffic_sim_hash() {
  (cd "$REPO" && cat Cargo.lock e2e/Cargo.toml $(find e2e/src -type f -name '*.rs' | sort)) |
    sha256sum | cut -c1-16
}

# The versions the running cluster was started with (restart when they change).
versions_stamp() { cat "$CLUSTER_DIR/versions.env" "$CLUSTER_DIR/kwok-stages.yaml" "$CLUSTER_DIR/prometheus.yml" | cksum; }

any_running() {
  local c
  for c in "${COMPONENTS[@]}"; do alive_pid "$c" >/dev/null && return 0; done
  return 1
}

cluster_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive_pid "$c" >/dev/null || return 1; done
  [ -f "$E2E_DIR/versions.stamp" ] && [ "$(cat "$E2E_DIR/versions.stamp")" = "$(versions_stamp)" ] || return 1
  [ -f "$KUBECONFIG_ADMIN" ] || return 1
  kubectl_admin get --raw=/readyz >/dev/null 2>&1 || return 1
  nodes_ready 2>/dev/null || return 1
  curl -fsS "http://127.0.0.1:$SIM_PORT/healthz" >/dev/null 2>&1 || return 1
  curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 || return 1
}

# --- PKI --------------------------------------------------------------------------

# sign <name> <subject> <extensions>: key + certificate signed by the cluster CA.
sign() {
  local name="$1" subj="$2" ext="$3"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'

# write_kubeconfig <file> <cert name>
write_kubeconfig() {
  local file="$1" name="$2"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: signalman-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI/$name.key")
contexts:
- name: signalman-e2e
  context: {cluster: signalman-e2e, user: $name, namespace: default}
current-context: signalman-e2e
EOF
  chmod 600 "$file"
}

gen_pki() {
  mkdir -p "$PKI" "$E2E_DIR/kubeconfigs"
  if [ ! -f "$PKI/done" ]; then
    say "generating certificates and keys in $PKI (openssl)"
    command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=signalman-e2e-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
    sign apiserver "/CN=kube-apiserver" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local'
    sign admin "/O=system:masters/CN=kubernetes-admin" "$client_ext"
    sign controller-manager "/CN=system:kube-controller-manager" "$client_ext"
    sign scheduler "/CN=system:kube-scheduler" "$client_ext"
    sign front-proxy-client "/CN=front-proxy-client" "$client_ext"
    # kwok stands in for every kubelet; it needs to write any Node and Pod status.
    sign kwok "/O=system:masters/CN=kwok-controller" "$client_ext"
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    touch "$PKI/done"
  fi
  write_kubeconfig "$KUBECONFIG_ADMIN" admin
  write_kubeconfig "$E2E_DIR/kubeconfigs/controller-manager" controller-manager
  write_kubeconfig "$E2E_DIR/kubeconfigs/scheduler" scheduler
  write_kubeconfig "$E2E_DIR/kubeconfigs/kwok" kwok
}

write_env() {
  versions_stamp >"$E2E_DIR/versions.stamp"
  cat >"$E2E_DIR/env" <<EOF
# source this file to use the local e2e cluster by hand
export KUBECONFIG="$KUBECONFIG_ADMIN"
export PROMETHEUS_URL="http://127.0.0.1:$PROM_PORT"
export PATH="$KUBECTL_BIN:$HELM_BIN:$KWOK_BIN:$ETCD_BIN:\$PATH"
EOF
}

print_summary() {
  cat <<EOF

  Local e2e cluster is up (Kubernetes $KUBE_VERSION, $KWOK_NODES kwok nodes, Gateway API $GATEWAY_API_VERSION)
    KUBECONFIG=$KUBECONFIG_ADMIN
    PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
    traffic-sim:  http://127.0.0.1:$SIM_PORT/metrics
    API server:   https://127.0.0.1:$APISERVER_PORT
    logs:         $LOGS/
    by hand:      source $E2E_DIR/env   (kubectl $KUBE_VERSION, helm, etcdctl on PATH)
    stop:         make cluster-down

EOF
}
