#!/usr/bin/env bash
# Install the Go the local cluster's builds need into $SIGNALMAN_CACHE when the
# machine has none new enough (see install_go in lib.sh); a no-op otherwise.
# The cluster scripts and .ci/run put it on PATH by themselves.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
install_go
