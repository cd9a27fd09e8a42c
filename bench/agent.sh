#!/usr/bin/env bash
# The agent's figures on the testbed (not a test; see bench/agent.py for what is measured and how):
#   bench/agent.sh latency   kubelet's back-off status -> CrashDiagnosis and -> notification, over the catalog
#   bench/agent.sh scale     memory on the 10,000-pod fixture vs `unloop diagnose -A`, API requests/min at rest
#   bench/agent.sh rest      API requests/min over 5 min on the testbed as it is vs `unloop diagnose -A` once a minute
#   bench/agent.sh soak      an hour (SOAK_S) of scenarios re-created in a loop: missed/duplicated notifications, memory
# Needs the testbed up (testbed/up.sh; the scenarios applied for latency) and, for scale, builds the
# fixture (testbed/scale.sh up, ~5 min) and leaves it up (testbed/scale.sh down removes it).
# UNLOOP_BIN: the binary to measure (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib/common.sh
need_root
export KUBECONFIG=$KUBECONFIG_ADMIN KUBECTL=$BIN/kubectl AUDIT_LOG=$STATE/audit.log BENCH_OUT=${BENCH_OUT:-$STATE/bench/agent}
if [ -z "${UNLOOP_BIN:-}" ]; then
  cargo build --release --locked -p unloop
  UNLOOP_BIN=${CARGO_TARGET_DIR:-target}/release/unloop
fi
export UNLOOP_BIN
# The agent publishes CrashDiagnosis resources: their CRD must be there (the chart installs it).
$KUBECTL apply --server-side -f deploy/crd.yaml >/dev/null
case "${1:-}" in
  latency) python3 bench/agent.py latency ;;
  scale) testbed/scale.sh up && python3 bench/agent.py scale ;;
  rest) python3 bench/agent.py rest ;;
  soak) python3 bench/soak.py ;;
  *) die "usage: bench/agent.sh latency|scale|rest|soak" ;;
esac
