#!/usr/bin/env bash
# The scale benchmark, in one command (as root, on the testbed machine):
#
#   bench/run.sh
#
# Starts the testbed if it is not running (testbed/up.sh), builds and refreshes the scale fixture
# (testbed/scale.sh up: 10,000 pods, 200 crash-looping, 100 namespaces, 200 fake nodes), takes a
# snapshot, then measures `unloop diagnose -A`, `unloop diagnose --from SNAPSHOT` and k8sgpt on the same
# state (bench/bench.py: median wall time of BENCH_RUNS runs, peak RSS, API requests from the audit log)
# and prints the table, the ratios and the targets. The fixture is left in place (testbed/scale.sh down
# removes it) unless BENCH_TEARDOWN=1.
#
#   UNLOOP_BIN        unloop to measure (default target/release/unloop; build: cargo build --release -p unloop)
#   K8SGPT_BIN        a real k8sgpt to measure; by default bench/k8sgpt-pattern, built into the testbed cache
#                     (k8sgpt is not served by the Go module proxy this machine reaches)
#   BENCH_RUNS        runs per command (default 5), after one warm-up run
#   BENCH_SKIP_SETUP  1: use the cluster and fixture as they are
#   BENCH_OUT         where results go (default $STATE/bench)
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib/common.sh
need_root

UNLOOP_BIN=${UNLOOP_BIN:-$REPO_DIR/target/release/unloop}
[ -x "$UNLOOP_BIN" ] || die "no unloop at $UNLOOP_BIN: cargo build --release -p unloop (or set UNLOOP_BIN)"

if [ "${BENCH_SKIP_SETUP:-0}" != 1 ]; then
  testbed/up.sh
  testbed/scale.sh up
fi
kubectl get --raw /readyz >/dev/null 2>&1 || die "the testbed is not running (testbed/up.sh)"

# k8sgpt: a real one if given; otherwise the request-pattern stand-in, built once per source version.
if [ -n "${K8SGPT_BIN:-}" ]; then
  K8SGPT_KIND=k8sgpt
else
  K8SGPT_KIND=k8sgpt-pattern
  src=$REPO_DIR/bench/k8sgpt-pattern
  key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
  K8SGPT_BIN=$TOOLS/k8sgpt-pattern-$key/k8sgpt-pattern
  if [ ! -x "$K8SGPT_BIN" ]; then
    log "building bench/k8sgpt-pattern (client-go; ~1 minute on 2 cores)"
    mkdir -p "$(dirname "$K8SGPT_BIN")"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$K8SGPT_BIN.tmp" .)
    mv "$K8SGPT_BIN.tmp" "$K8SGPT_BIN"
  fi
fi

# Every tool reads the cluster as the testbed admin, through its kubeconfig only: nothing else is
# reachable (k8sgpt gets no AI backend and no network beyond the apiserver on the node address).
export KUBECONFIG=$KUBECONFIG_ADMIN
export KUBECTL=$BIN/kubectl APISERVER_PIDFILE=$PIDS/kube-apiserver.pid AUDIT_LOG=$STATE/audit.log BENCH_OUT=${BENCH_OUT:-$STATE/bench} UNLOOP_BIN K8SGPT_BIN K8SGPT_KIND
python3 bench/bench.py

if [ "${BENCH_TEARDOWN:-0}" = 1 ]; then testbed/scale.sh down; fi
