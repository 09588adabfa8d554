# Shared definitions for up.sh / down.sh, test.sh, the demo and .ci/run
# (sourced, not executed).
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
# The Go that install_go puts in the cache always comes first (also before a
# /usr/local/go that make or build.sh put in front): it exists only because
# the machine's own Go was missing or too old.
GO_CACHED="$SIGNALMAN_CACHE/go-$GO_VERSION"
[ ! -x "$GO_CACHED/bin/go" ] || PATH="$GO_CACHED/bin:$PATH"
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
# shellcheck source=../gitops/version.sh
source "$REPO/e2e/gitops/version.sh"
GITOPS_BIN="$BIN_ROOT/gitops-$(gitops_version)"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(command -v prometheus || true)}"

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
    prometheus) basename "${PROMETHEUS_BIN:-prometheus}" ;;
    *) echo "$1" ;;
  esac
}

# start <name> <command...>: run detached in its own session, log to
# logs/<name>.log (appended to when APPEND_LOG=1, as on a restart).
start() {
  local name="$1"; shift
  say "starting $name (log: $LOGS/$name.log)"
  [ -x "$1" ] || [ "$1" = env ] || die "$name: $1 is not executable"
  if [ "${APPEND_LOG:-0}" = 1 ]; then
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  else
    setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$PIDS/$name.pid"
}

# stop_component <name> [grace seconds, default 15]: SIGTERM the component if
# it is still ours, wait up to the grace, then SIGKILL; forget its pid.
stop_component() {
  local name="$1" grace="${2:-15}" pid
  if pid=$(alive_pid "$name"); then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 5))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not exit after ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  fi
  rm -f "$PIDS/$name.pid"
}

# etcd on $ETCD_PORT, its data in $E2E_DIR/etcd (up.sh starts it on an empty
# directory; etcd.sh starts it again on the data it had).
start_etcd() {
  start etcd "$ETCD_BIN/etcd" \
    --name=signalman-e2e \
    --data-dir="$E2E_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="signalman-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls="" \
    --auto-compaction-retention=1 \
    --quota-backend-bytes=4294967296 \
    --unsafe-no-fsync=true \
    --log-level=warn
}

# The kube-apiserver, on etcd at $ETCD_PORT, serving $APISERVER_PORT (up.sh,
# and apiserver.sh when a test restarts it).
start_apiserver() {
  # Audit: the writes of ServiceAccounts outside kube-system (the operator
  # replicas of e2e/tests/leader_election.rs each write as their own), at
  # Metadata level (who, what, when, answer code; no bodies), so a test can
  # read who wrote what in which order from the API server itself. The
  # controllers of kube-system (kube-controller-manager writes as its
  # ServiceAccounts) and every read are left out: the log stays small.
  cat >"$E2E_DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
POLICY
  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --audit-policy-file="$E2E_DIR/audit-policy.yaml" \
    --audit-log-path="$LOGS/audit.log" \
    --audit-log-maxsize=50 \
    --audit-log-maxbackup=1 \
    --audit-log-mode=blocking \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC \
    --allow-privileged=true \
    --enable-priority-and-fairness=false \
    --max-requests-inflight=0 \
    --max-mutating-requests-inflight=0 \
    --event-ttl=30m \
    --endpoint-reconciler-type=none \
    --profiling=false \
    --v=1
}

# kube-controller-manager, kube-scheduler and kwok (up.sh, and apiserver.sh
# after an outage).
start_controllers() {
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$E2E_DIR/kubeconfigs/controller-manager" \
    --authentication-kubeconfig="$E2E_DIR/kubeconfigs/controller-manager" \
    --authorization-kubeconfig="$E2E_DIR/kubeconfigs/controller-manager" \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --controllers='*,-nodeipam' \
    --node-monitor-grace-period=60s \
    --kube-api-qps=200 --kube-api-burst=400 \
    --v=1
  start kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig="$E2E_DIR/kubeconfigs/scheduler" \
    --authentication-kubeconfig="$E2E_DIR/kubeconfigs/scheduler" \
    --authorization-kubeconfig="$E2E_DIR/kubeconfigs/scheduler" \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false \
    --kube-api-qps=200 --kube-api-burst=400 \
    --v=1
  start kwok "$KWOK_BIN/kwok" \
    --config="$CLUSTER_DIR/kwok-stages.yaml" \
    --kubeconfig="$E2E_DIR/kubeconfigs/kwok" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --cidr=10.244.0.1/16 \
    --node-ip=10.240.0.1
}

# The ports a cluster was started with, for scripts that act on a running
# cluster (apiserver.sh) without being given them again.
write_ports() {
  local p
  for p in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT PROM_PORT SIM_PORT; do
    echo "$p=${!p}"
  done >"$E2E_DIR/ports.env"
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

# --- prerequisites -----------------------------------------------------------------
# Checked before anything is built: a cold build of the control plane takes
# about half an hour, too long to wait for news of a missing tool.

# version_ge A B: true if version A (e.g. 1.26.8) is at least B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# The version of the go on PATH, without switching toolchains (empty if none).
go_local_version() {
  local v
  v=$(GOTOOLCHAIN=local GOFLAGS='' go env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  case "$v" in [0-9]*) echo "${v%%[!0-9.]*}" ;; *) return 1 ;; esac
}

# The oldest Go that builds the pinned modules: GO_MIN_VERSION, or more if a
# pinned module's go.mod in the module cache asks for more.
go_min_version() {
  local min="$GO_MIN_VERSION" f v
  for f in "k8s.io/kubernetes/@v/$KUBE_VERSION.mod" \
    "go.etcd.io/etcd/server/v3/@v/$ETCD_VERSION.mod" \
    "go.etcd.io/etcd/etcdctl/v3/@v/$ETCD_VERSION.mod" \
    "sigs.k8s.io/kwok/@v/$KWOK_VERSION.mod" \
    "helm.sh/helm/v3/@v/$HELM_VERSION.mod"; do
    f="$GOMODCACHE/cache/download/$f"
    [ -f "$f" ] || continue
    v=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$f" | head -n1)
    if [ -n "$v" ] && ! version_ge "$min" "$v"; then min=$v; fi
  done
  echo "$min"
}

# The Rust version the workspace declares (rust-version in Cargo.toml).
rust_min_version() { sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$REPO/Cargo.toml" | head -n1; }

# check_prereqs cluster|test|browser: every tool `make cluster-up` / `make demo`
# (cluster) or `make test` (test: also what the e2e tests run) needs; browser:
# what `make bench-dashboard` needs beyond the build. Prints
# one line per missing tool with the Debian command that installs it, all at
# once, and fails if any is missing.
check_prereqs() {
  local scope="${1:-cluster}" missing=() v min
  # need <command> <how to install it>
  need() { type -P "$1" >/dev/null || missing+=("$1 is missing: $2"); }

  if [ "$scope" != browser ]; then
    min=$(go_min_version)
    local go_hint="e2e/cluster/install-go.sh   # Go $GO_VERSION into $SIGNALMAN_CACHE, through \$GOPROXY or else Debian's golang-go (root)"
    if ! type -P go >/dev/null; then
      missing+=("go >= $min is missing: $go_hint")
    elif ! v=$(go_local_version); then
      missing+=("go at $(type -P go) does not run: $go_hint")
    elif [ "$GOTOOLCHAIN" != local ]; then
      # The local go downloads and runs $GOTOOLCHAIN itself (Go 1.21 and later).
      version_ge "$v" 1.21 || missing+=("go $v at $(type -P go) cannot switch to GO_TOOLCHAIN=$GOTOOLCHAIN (needs 1.21+): $go_hint")
      version_ge "${GOTOOLCHAIN#go}" "$min" || missing+=("GO_TOOLCHAIN=$GOTOOLCHAIN in versions.env is older than the Go $min the pinned modules need")
    elif ! version_ge "$v" "$min"; then
      missing+=("go >= $min is missing (go $v at $(type -P go) is too old): $go_hint")
    fi

    min=$(rust_min_version)
    if ! type -P cargo >/dev/null; then
      missing+=("cargo (Rust >= $min) is missing: apt-get install cargo-web (Debian 12; its cargo package is too old), or rustup")
    else
      v=$(cargo --version 2>/dev/null | awk '{print $2}') || v=""
      v=${v%%-*}
      if [ -z "$v" ]; then
        missing+=("cargo at $(type -P cargo) does not run (cargo --version fails): apt-get install cargo-web (Debian 12), or rustup default stable")
      elif ! version_ge "$v" "$min"; then
        missing+=("cargo >= $min is missing (cargo $v at $(type -P cargo) is too old): apt-get install cargo-web (Debian 12), or rustup update")
      fi
    fi
    need cc "apt-get install build-essential   # C compiler and linker for cargo"
    [ -x "$PROMETHEUS_BIN" ] ||
      missing+=("prometheus is missing: apt-get install prometheus   # or set PROMETHEUS_BIN")
    need openssl "apt-get install openssl"
    need curl "apt-get install curl"
    [ -r /etc/ssl/certs/ca-certificates.crt ] ||
      missing+=("CA certificates are missing (go and cargo download over TLS): apt-get install ca-certificates")
    need flock "apt-get install util-linux"
    need setsid "apt-get install util-linux"
    if [ "$scope" = test ]; then
      need make "apt-get install make"
      # The e2e tests run these as programs, not as shell builtins.
      need kill "apt-get install procps"
      need tmux "apt-get install tmux"
    fi
  fi
  if [ "$scope" = test ] || [ "$scope" = browser ]; then
    # e2e/tests/dashboard.rs and `make bench-dashboard` drive a real browser.
    [ -x "${CHROMIUM:-/usr/bin/chromium}" ] ||
      missing+=("chromium is missing: apt-get install chromium   # or set CHROMIUM")
    [ -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ] ||
      missing+=("chromedriver is missing: apt-get install chromium-driver   # or set CHROMEDRIVER")
  fi
  unset -f need

  [ ${#missing[@]} -eq 0 ] && return 0
  local m
  for m in "${missing[@]}"; do printf '%s\n' "$m" >&2; done
  printf '%s prerequisite(s) missing, nothing was built; install them as above (as root), see docs/testing.md\n' \
    "${#missing[@]}" >&2
  return 1
}

# install_go: make a Go new enough for the pinned modules the first go on PATH,
# installing Go $GO_VERSION into $GO_CACHED if the machine has none. The
# toolchain is the golang.org/toolchain module (what GOTOOLCHAIN switching
# runs). Where it comes from is the machine's configuration, never a host
# written here:
#   1. GOPROXY set: from its first URL entry (direct and off are skipped);
#   2. else a go that is there but too old, or Debian's golang-go installed
#      with apt-get, fetches it through its own proxy setting: Go 1.21 and
#      later by switching (GOTOOLCHAIN=go$GO_VERSION); older ones, such as
#      Debian 12's 1.19, predate GOTOOLCHAIN and get the same module with
#      `go mod download` instead, which we unpack ourselves;
#   3. else it fails, saying how to install Go.
install_go() {
  local min v arch mod ver tmp p proxy="" zip="" dir=""
  min=$(go_min_version)
  if v=$(go_local_version) && version_ge "$v" "$min"; then
    say "go $v at $(type -P go)"
    return 0
  fi
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) say "no Go toolchain for $(uname -m) here; install Go >= $min yourself" >&2; return 1 ;;
  esac
  mod=golang.org/toolchain ver="v0.0.1-go$GO_VERSION.linux-$arch"
  mkdir -p "$SIGNALMAN_CACHE"
  tmp=$(mktemp -d "$SIGNALMAN_CACHE/go-install.XXXXXX")

  p=${GOPROXY:-}
  for p in ${p//[,|]/ }; do
    case "$p" in direct | off) ;; *) proxy=${p%/} && break ;; esac
  done
  if [ -n "$proxy" ]; then
    say "fetching Go $GO_VERSION ($mod@$ver) from the first URL in \$GOPROXY"
    curl -fsSL -o "$tmp/go.zip" "$proxy/$mod/@v/$ver.zip" && zip="$tmp/go.zip"
    [ -n "$zip" ] || { say "could not fetch $mod@$ver from $proxy" >&2; rm -rf "$tmp"; return 1; }
  else
    if ! type -P go >/dev/null; then
      if type -P apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        say "apt-get install golang-go (to fetch Go $GO_VERSION with it)"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go >&2
      else
        say "go is missing: install Go >= $min (as root: apt-get install golang-go, then e2e/cluster/install-go.sh), or set GOPROXY and rerun" >&2
        rm -rf "$tmp"
        return 1
      fi
    fi
    v=$(go_local_version) || { say "go at $(type -P go) does not run" >&2; rm -rf "$tmp"; return 1; }
    if version_ge "$v" "$min"; then
      say "go $v at $(type -P go)"
      rm -rf "$tmp"
      return 0
    fi
    if version_ge "$v" 1.21; then
      say "go $v is too old: GOTOOLCHAIN=go$GO_VERSION (go fetches it through its GOPROXY)"
      dir=$(GOTOOLCHAIN="go$GO_VERSION" GOFLAGS='' go env GOROOT) || dir=""
    else
      say "go $v is too old and predates GOTOOLCHAIN: go mod download $mod@$ver (through its GOPROXY)"
      zip=$(cd "$tmp" && GO111MODULE=on GOFLAGS='' go mod download -json "$mod@$ver" |
        sed -n 's/^[[:space:]]*"Zip": "\(.*\)",*$/\1/p') || zip=""
    fi
    [ -n "$zip$dir" ] || { say "go $v could not fetch Go $GO_VERSION" >&2; rm -rf "$tmp"; return 1; }
  fi

  rm -rf "$GO_CACHED" "$GO_CACHED.tmp"
  if [ -n "$zip" ]; then
    type -P unzip >/dev/null || { say "unzip is missing: apt-get install unzip" >&2; rm -rf "$tmp"; return 1; }
    unzip -q "$zip" -d "$tmp/unz"
    mv "$tmp/unz/$mod@$ver" "$GO_CACHED.tmp"
    # Module zips keep no file modes.
    chmod -R u+w "$GO_CACHED.tmp"
    chmod +x "$GO_CACHED.tmp"/bin/* "$GO_CACHED.tmp"/pkg/tool/*/*
    mv "$GO_CACHED.tmp" "$GO_CACHED"
  else
    # Already unpacked (and executable) in the module cache.
    ln -s "$dir" "$GO_CACHED"
  fi
  rm -rf "$tmp"
  v=$(PATH="$GO_CACHED/bin:$PATH" go_local_version) ||
    { say "the Go unpacked in $GO_CACHED does not run" >&2; return 1; }
  version_ge "$v" "$min" ||
    { say "GO_VERSION=$GO_VERSION in versions.env is older than the Go $min the pinned modules need" >&2; return 1; }
  export PATH="$GO_CACHED/bin:$PATH"
  say "go $v installed in $GO_CACHED"
}
