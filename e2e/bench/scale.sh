#!/usr/bin/env bash
# The scale benchmark (`make bench-scale`): R Releases x 5 services in flight
# on one operator built in release mode, on the local cluster. Brings the
# cluster up if needed (same ports as up.sh: set them as for up.sh), builds
# the operator and the bench with cargo --release, runs bench-scale once per
# size and records each result in docs/performance.md (RESULTS= to write
# elsewhere, RESULTS=none to only print).
#
#   make bench-scale SIZES="100 500 1000 2000" LABEL=before
#   make bench-restart                       # SIGKILL mid-run, 200 Releases
#
# Variables (environment): SIZES, BAKE, INTERVAL, REPLICAS, CAP_FACTOR,
# BACKGROUND, IDLE, LABEL, MODE, RESTART_RELEASES, KILL_AFTER; see the head of
# e2e/src/bin/bench-scale.rs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../cluster/lib.sh
source "$HERE/../cluster/lib.sh"

"$REPO/e2e/cluster/up.sh"
# shellcheck disable=SC1091
source "$E2E_DIR/env"

say "building the operator and the bench (cargo build --release; target dir $CARGO_TARGET_DIR)"
(cd "$REPO" && cargo build --release -p signalman --bins && cargo build --release -p signalman-e2e --bin bench-scale)

export SIGNALMAN_BIN="$CARGO_TARGET_DIR/release/signalman"
export CLK_TCK="${CLK_TCK:-$(getconf CLK_TCK)}"
# The code measured: the last commit that changed the operator (src/ or the
# workspace's Cargo.toml), marked when the working tree differs from it.
COMMIT="$(git -C "$REPO" log -1 --format=%h -- src Cargo.toml)"
git -C "$REPO" diff --quiet HEAD -- src Cargo.toml || COMMIT="$COMMIT+changes"
export COMMIT
export LABEL="${LABEL:-$(git -C "$REPO" rev-parse --abbrev-ref HEAD)}"
case "${RESULTS:-}" in
  none) export RESULTS="" ;;
  "") export RESULTS="$REPO/docs/performance.md" ;;
esac

say "bench: sizes '${SIZES:-100 500}' mode ${MODE:-scale}, code $LABEL ($COMMIT)"
exec "$CARGO_TARGET_DIR/release/bench-scale"
