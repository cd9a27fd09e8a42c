#!/usr/bin/env bash
# Real node pressure and a real eviction, on demand (testbed/node-pressure/). It disturbs the whole
# node: while it is on, the kubelet evicts one pod after another (the scenario's pod first: lowest
# priority, using more than it requested) and the node is tainted, so nothing new is scheduled. test-all.sh runs it
# last, after every other end-to-end test.
#
#   pressure.sh on        apply testbed/node-pressure/manifest.yaml, wait for its pod to run, restart
#                         the kubelet with memory.available<99% (a threshold no node meets), then wait
#                         for MemoryPressure=True and for the kubelet to evict the pod
#   pressure.sh capture   while on: testbed/node-pressure/bundle.json.gz (`unloop snapshot`; UNLOOP_BIN,
#                         default target/release/unloop)
#   pressure.sh off       restart the kubelet with its own configuration, wait for the pressure and the
#                         taint to clear, delete the scenario
source "$(dirname "$0")/lib/common.sh"
need_root
export KUBECONFIG=$KUBECONFIG_ADMIN

DIR=$TESTBED_DIR/node-pressure
NS=node-pressure
CONFIG=$STATE/kubelet/config.yaml
PRESSURE_CONFIG=$STATE/kubelet/pressure.yaml

[ -f "$CONFIG" ] && pid_alive kubelet || die "the testbed is not up (testbed/up.sh)"

memory_pressure_is() {
  [ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="MemoryPressure")].status}')" = "$1" ]
}
pod_running() { kubectl -n $NS get pods -o jsonpath='{.items[*].status.phase}' | grep -qx Running; }
# Evicted: status.reason Evicted, or (when the container exits 0 on SIGTERM and the pod ends
# Succeeded) only the DisruptionTarget condition the kubelet sets.
pod_evicted() {
  kubectl -n $NS get pods -o jsonpath='{.items[*].status.reason} {.items[*].status.conditions[?(@.type=="DisruptionTarget")].reason}' |
    grep -qwE 'Evicted|TerminationByKubelet'
}
untainted() { ! kubectl get node "$NODE_NAME" -o jsonpath='{.spec.taints[*].key}' | grep -q memory-pressure; }

case ${1:-} in
on)
  kubectl apply -f "$DIR/manifest.yaml" >/dev/null
  wait_until "the $NS pod to run" 180 pod_running
  # Same configuration, but the eviction threshold says the node needs 99% of its memory free.
  sed 's/^  memory.available: .*/  memory.available: "99%"/' "$CONFIG" >"$PRESSURE_CONFIG"
  grep -q 'memory.available: "99%"' "$PRESSURE_CONFIG" || die "no evictionHard memory.available in $CONFIG"
  restart_kubelet "$PRESSURE_CONFIG"
  wait_until "the node to be Ready again" 120 node_ready
  wait_until "MemoryPressure=True" 180 memory_pressure_is True
  wait_until "the kubelet to evict the $NS pod" 180 pod_evicted
  log "node $NODE_NAME is under memory pressure and has evicted the $NS pod"
  ;;
capture)
  bin=${UNLOOP_BIN:-$REPO_DIR/target/release/unloop}
  pod_evicted || die "the $NS pod is not evicted: run pressure.sh on first"
  "$bin" snapshot --whole-pods -n $NS "$DIR/.bundle.tmp.json.gz"
  mv "$DIR/.bundle.tmp.json.gz" "$DIR/bundle.json.gz"
  log "captured $DIR/bundle.json.gz"
  ;;
off)
  kubelet_runs_with "$CONFIG" || restart_kubelet "$CONFIG"
  wait_until "the node to be Ready" 120 node_ready
  wait_until "MemoryPressure=False" 120 memory_pressure_is False
  wait_until "the memory-pressure taint to go" 120 untainted
  kubectl delete -f "$DIR/manifest.yaml" --ignore-not-found --wait=false >/dev/null
  rm -f "$PRESSURE_CONFIG"
  log "node $NODE_NAME is back to its own kubelet configuration"
  ;;
*)
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
