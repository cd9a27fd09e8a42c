#!/usr/bin/env bash
# Runs Helm, built once from the Go module proxy into $CACHE (outside the repo, never committed),
# as testbed/krew-validate.sh does for krew. Needs Go (as testbed/build.sh); no cluster, no root.
#   testbed/helm.sh template unloop-agent deploy/chart -n unloop-system
set -euo pipefail
CACHE=${UNLOOP_TESTBED_CACHE:-/var/cache/unloop-testbed}
HELM_VERSION=v3.21.4
helm=$CACHE/bin/helm-$HELM_VERSION/helm
if [ ! -x "$helm" ]; then
  command -v go >/dev/null || { echo "helm.sh: needs Go to build Helm $HELM_VERSION" >&2; exit 1; }
  echo "helm.sh: building Helm $HELM_VERSION from the Go module proxy (once, a few minutes)" >&2
  mkdir -p "$(dirname "$helm")"
  GOBIN=$(dirname "$helm") GOPATH=$CACHE/go GOFLAGS=-mod=mod nice go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
fi
# Helm's own state (repositories, cache) in a throw-away place: nothing is fetched.
export HELM_CACHE_HOME=${HELM_CACHE_HOME:-$CACHE/helm/cache} HELM_CONFIG_HOME=${HELM_CONFIG_HOME:-$CACHE/helm/config} HELM_DATA_HOME=${HELM_DATA_HOME:-$CACHE/helm/data}
exec "$helm" "$@"
