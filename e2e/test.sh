#!/usr/bin/env bash
# The body of `make test` and `make e2e`.
#
#   e2e/test.sh          unit tests + e2e suite (`make test`)
#   e2e/test.sh --e2e    e2e suite only (`make e2e`)
#
# Brings the local cluster up when none is running (e2e/cluster/up.sh) and,
# if this script started it, brings it down again at the end -- also on
# failure -- unless KEEP_CLUSTER=1. `make e2e` always keeps it up.
# Extra arguments after `--` go to `cargo test` of the e2e suite, e.g.
#   e2e/test.sh --e2e -- --test smoke rbac
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/lib.sh
source "$HERE/cluster/lib.sh"

unit=1
keep="${KEEP_CLUSTER:-0}"
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --e2e) unit=0; keep=1 ;;
    --) shift; cargo_args=("$@"); break ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
check_prereqs test

started=0
finish() {
  local rc=$?
  if [ "$started" = 1 ] && [ "$keep" != 1 ]; then
    say "bringing down the cluster this run started (KEEP_CLUSTER=1 keeps it)"
    "$HERE/cluster/down.sh" || true
  fi
  exit "$rc"
}
trap finish EXIT

if cluster_healthy; then
  say "using the running cluster"
else
  started=1
  "$HERE/cluster/up.sh"
fi

cd "$REPO"
# Tests may call kubectl and helm: use the pinned builds.
export PATH="$KUBECTL_BIN:$HELM_BIN:$PATH"
if [ "$unit" = 1 ]; then
  say "unit tests: make unit"
  "${MAKE:-make}" --no-print-directory unit
fi

# Controller scenarios run the operator binary ($CARGO_TARGET_DIR/debug/signalman).
say "building the operator: cargo build -p signalman --bins"
cargo build -p signalman --bins

# e2e/tests/gitops_health.rs runs kstatus and Argo CD's Lua VM through this
# harness (built once per version of e2e/gitops, like the control plane).
"$HERE/cluster/build.sh" gitops

say "e2e suite: cargo test -p signalman-e2e"
KUBECONFIG="$KUBECONFIG_ADMIN" PROMETHEUS_URL="http://127.0.0.1:$PROM_PORT" \
  GITOPS_HEALTH="$GITOPS_BIN/gitops-health" \
  cargo test -p signalman-e2e "${cargo_args[@]}"

# `make test` also runs the README's first command, non-interactively, and
# checks that its first release succeeds and its second rolls back.
if [ "$unit" = 1 ]; then
  say "demo: make demo-check"
  "${MAKE:-make}" --no-print-directory demo-check
fi
