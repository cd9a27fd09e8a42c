#!/usr/bin/env bash
# The krew manifest, checked by krew itself and with nothing fetched from the internet:
#   1. krew's validate-krew-manifest (structure, platforms, no overlap) on deploy/krew/unloop.yaml
#      and on the manifest deploy/krew/package.sh writes for a local archive (-skip-install: its
#      own install step would download the release URIs);
#   2. `krew install --manifest --archive` of that local archive into a throw-away KREW_ROOT,
#      then the installed `kubectl-unloop --version`.
# krew v0.4.3 is built once from the Go module proxy into $CACHE (outside the repo).
# Packages $UNLOOP_DIST_BIN if set (test-all.sh passes the test build: quick), else a dist build.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${UNLOOP_TESTBED_CACHE:-/var/cache/unloop-testbed}
KREW_VERSION=v0.4.3
tools=$CACHE/bin/krew-$KREW_VERSION
command -v go >/dev/null || { echo "krew-validate: needs Go (as testbed/build.sh)" >&2; exit 1; }
for cmd in validate-krew-manifest krew; do
  if [ ! -x "$tools/$cmd" ]; then
    mkdir -p "$tools"
    GOBIN=$tools GOPATH=$CACHE/go GOFLAGS=-mod=mod nice go install "sigs.k8s.io/krew/cmd/$cmd@$KREW_VERSION"
  fi
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
deploy/krew/package.sh "$out/pkg"
"$tools/validate-krew-manifest" -manifest deploy/krew/unloop.yaml -skip-install 2>&1 | grep -v '^I'  || true
"$tools/validate-krew-manifest" -manifest deploy/krew/unloop.yaml -skip-install >/dev/null 2>&1
"$tools/validate-krew-manifest" -manifest "$out/pkg/unloop.yaml" -skip-install >/dev/null 2>&1
echo "validate-krew-manifest $KREW_VERSION: deploy/krew/unloop.yaml and the packaged manifest are valid"

# Install from the local archive as `kubectl krew install` would, on linux/amd64.
export KREW_ROOT=$out/krew KREW_OS=linux KREW_ARCH=amd64
"$tools/krew" install --manifest="$out/pkg/unloop.yaml" --archive="$out/pkg/kubectl-unloop-linux-amd64.tar.gz" </dev/null
installed=$KREW_ROOT/bin/kubectl-unloop
version=$("$installed" --version)
echo "installed through krew: $installed -> $version"
case $version in "unloop "*" (commit "*")") ;; *) echo "krew-validate: unexpected --version: $version" >&2; exit 1 ;; esac
"$installed" diagnose --from testbed/scenarios/jvm-heap/bundle.json.gz >/dev/null && rc=0 || rc=$?
[ "$rc" = 1 ] || { echo "krew-validate: the installed plugin's diagnose exited $rc, not 1 (trouble found)" >&2; exit 1; }
echo "the krew-installed plugin diagnoses the jvm-heap bundle (exit 1, trouble found)"
