#!/usr/bin/env bash
# Check every prerequisite of the local cluster (`prereqs.sh cluster`, the
# default), of `make test` (`prereqs.sh test`) or of `make bench-dashboard`
# (`prereqs.sh browser`) without building anything:
# one line per missing tool with the Debian command that installs it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
case "${1:-cluster}" in
  cluster | test | browser) check_prereqs "${1:-cluster}" ;;
  *) die "usage: $0 [cluster|test|browser]" ;;
esac
