#!/usr/bin/env bash
# Build the binaries of the local e2e cluster from their Go modules, once per
# pinned version (see versions.env), into
#   $SIGNALMAN_CACHE/bin/<component>-<version>/
# A component whose binaries already exist is skipped, so a warm run takes
# well under a second.
#
# Usage: e2e/cluster/build.sh [etcd|kubernetes|kubectl|kwok|helm|gitops ...]   (default: all)
#
# Environment:
#   SIGNALMAN_CACHE  cache root (default $HOME/.cache/signalman)
#   GOMODCACHE, GOCACHE  default to $SIGNALMAN_CACHE/gomod and /gocache
#   GO_BUILD_JOBS    go build -p (default 2)
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../gitops/version.sh
source "$REPO/e2e/gitops/version.sh"

CACHE="${SIGNALMAN_CACHE:-$HOME/.cache/signalman}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
JOBS="${GO_BUILD_JOBS:-2}"

[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
# The Go that install_go (lib.sh) put in the cache exists only because the
# machine's own was missing or too old: it comes first.
[ -x "$CACHE/go-$GO_VERSION/bin/go" ] && export PATH="$CACHE/go-$GO_VERSION/bin:$PATH"
export GOMODCACHE="${GOMODCACHE:-$CACHE/gomod}"
export GOCACHE="${GOCACHE:-$CACHE/gocache}"
export GOTOOLCHAIN="${GO_TOOLCHAIN:-local}"
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
mkdir -p "$BIN" "$WORK" "$GOMODCACHE" "$GOCACHE"

# Progress goes to stderr; the build_* functions print only their output dir on stdout.
log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Binaries each component provides (all must exist for the build to be skipped).
binaries() {
  case "$1" in
    etcd) echo "etcd etcdctl" ;;
    kubernetes) echo "kube-apiserver kube-controller-manager kube-scheduler" ;;
    kubectl) echo "kubectl" ;;
    kwok) echo "kwok" ;;
    helm) echo "helm" ;;
    gitops) echo "gitops-health" ;;
    *) echo "unknown component: $1" >&2; return 1 ;;
  esac
}
version_of() {
  case "$1" in
    etcd) echo "$ETCD_VERSION" ;;
    kubernetes|kubectl) echo "$KUBE_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    gitops) gitops_version ;;
  esac
}
is_built() {
  local dir="$BIN/$1-$(version_of "$1")" b
  for b in $(binaries "$1"); do [ -x "$dir/$b" ] || return 1; done
}

# go build with a running "compiled N/M packages" progress line every 25
# packages. $1 = output dir, then go build flags and packages.
go_build_progress() {
  local out="$1"; shift
  local pkgs=() flags=() a
  for a in "$@"; do
    case "$a" in -*|*=*) flags+=("$a") ;; *) pkgs+=("$a") ;; esac
  done
  local total
  total=$(go list -deps "${pkgs[@]}" 2>/dev/null | wc -l || echo '?')
  log "compiling ${pkgs[*]} (${total} packages incl. std; cached ones are skipped)"
  local n=0 start=$SECONDS
  # go build -v prints each package it actually compiles.
  go build -p "$JOBS" -v -trimpath "${flags[@]}" -o "$out/" "${pkgs[@]}" 2>&1 |
    while IFS= read -r line; do
      case "$line" in
        *" "*|*:*) printf '%s\n' "$line" >&2 ;;  # errors / warnings: show verbatim
        *) n=$((n + 1))
           if [ $((n % 25)) -eq 0 ]; then
             log "  compiled $n/$total packages ($((SECONDS - start))s)"
           fi ;;
      esac
    done
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { log "go build failed (exit $rc)"; return "$rc"; }
}

# Run a command, showing its output only if it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    log "failed: $*"
    return 1
  fi
}

# Prepare a throwaway module dir for one component; prints its path.
new_module() {
  local dir="$WORK/$1-$2"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module signalman.local/build/%s\n\ngo 1.24.0\n' "$1" >"$dir/go.mod"
  echo "$dir"
}

build_etcd() {
  local v="$ETCD_VERSION" dir out
  dir=$(new_module etcd "$v"); out="$dir/out"
  cd "$dir"
  log "resolving go.etcd.io/etcd/{server,etcdctl}/v3@$v"
  quiet go get "go.etcd.io/etcd/server/v3@$v" "go.etcd.io/etcd/etcdctl/v3@$v"
  local ld="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$v"
  go_build_progress "$out" "-ldflags=$ld" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
  # go names a .../vN main package after its parent directory.
  mv "$out/server" "$out/etcd" 2>/dev/null || true
  echo "$out"
}

# A throwaway module requiring k8s.io/kubernetes@$KUBE_VERSION; prints the
# -ldflags that make the binaries report that version.
kube_module() {
  local v="$KUBE_VERSION" sv="$KUBE_STAGING_VERSION" gomod
  log "resolving k8s.io/kubernetes@$v"
  gomod=$(GOFLAGS= go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@$v"; return 1; }
  # The release's go.mod replaces every k8s.io/<staging> module with
  # ./staging/src/k8s.io/<staging>; point each at its published v0.x.y instead.
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$gomod")
  [ -n "$staging" ] || { log "no staging replaces found in $gomod"; return 1; }
  {
    printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$v"
    for m in $staging; do printf '\t%s => %s %s\n' "$m" "$m" "$sv"; done
    printf ')\n'
  } >>go.mod
  log "$(echo "$staging" | wc -l) staging modules pinned to $sv"
  local major minor
  major=${v#v}; major=${major%%.*}
  minor=${v#v"$major".}; minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  echo "$ld"
}

build_kubernetes() {
  local dir ld
  dir=$(new_module kubernetes "$KUBE_VERSION")
  cd "$dir"
  ld=$(kube_module)
  go_build_progress "$dir/out" "-ldflags=$ld" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
  echo "$dir/out"
}

build_kubectl() {
  local dir ld
  dir=$(new_module kubectl "$KUBE_VERSION")
  cd "$dir"
  ld=$(kube_module)
  go_build_progress "$dir/out" "-ldflags=$ld" k8s.io/kubernetes/cmd/kubectl
  echo "$dir/out"
}

build_kwok() {
  local v="$KWOK_VERSION" dir out
  dir=$(new_module kwok "$v"); out="$dir/out"
  cd "$dir"
  log "resolving sigs.k8s.io/kwok@$v"
  quiet go get "sigs.k8s.io/kwok@$v"
  go_build_progress "$out" "-ldflags=-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" \
    sigs.k8s.io/kwok/cmd/kwok
  echo "$out"
}

build_helm() {
  local v="$HELM_VERSION" dir out
  dir=$(new_module helm "$v"); out="$dir/out"
  cd "$dir"
  log "resolving helm.sh/helm/v3@$v"
  quiet go get "helm.sh/helm/v3@$v"
  go_build_progress "$out" "-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=$v" \
    helm.sh/helm/v3/cmd/helm
  echo "$out"
}

# Our own module, not a throwaway one: e2e/gitops/go.mod pins kstatus, Flux's
# fork and Argo CD (with Argo CD's replace block); only this build needs the
# newer Go that Argo CD asks for.
build_gitops() {
  local out="$WORK/gitops-$(gitops_version)/out"
  cd "$REPO/e2e/gitops"
  GOTOOLCHAIN="$GITOPS_GO_TOOLCHAIN" go_build_progress "$out" "-ldflags=-s -w" .
  [ -x "$out/gitops" ] && mv "$out/gitops" "$out/gitops-health"
  echo "$out"
}

build() {
  local c="$1" v dest out start=$SECONDS
  v=$(version_of "$c"); dest="$BIN/$c-$v"
  if is_built "$c"; then
    log "$c $v: cached in $dest"
    return 0
  fi
  log "$c $v: building (cold builds take minutes; progress below)"
  out=$("build_$c")
  local b
  for b in $(binaries "$c"); do
    [ -x "$out/$b" ] || { log "$c: $b missing after build"; return 1; }
  done
  rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  for b in $(binaries "$c"); do cp "$out/$b" "$dest.tmp/$b"; done
  rm -rf "$dest"; mv "$dest.tmp" "$dest"
  log "$c $v: built in $((SECONDS - start))s -> $dest"
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kubernetes kubectl kwok helm)

# One build of a component at a time per cache (CI and a developer may race on
# this machine); different components build side by side.
for c in "${components[@]}"; do
  binaries "$c" >/dev/null
  exec 9>"$CACHE/build-$c.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE/build-$c.lock; waiting for it"
    flock 9
  fi
  build "$c"
  exec 9>&-
done
