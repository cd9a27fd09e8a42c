#!/usr/bin/env bash
# The scale fixture on the testbed's real apiserver: 10,000 pods in 100 namespaces on 200 fake nodes,
# owned by Deployments and ReplicaSets that the real controllers manage, 200 of them crash-looping the
# ways the catalog's scenarios do, with the kubelet's events and logs as the real kubelet produced them.
#
#   testbed/scale.sh up       build kwok (cached), start it, create the fixture, wait until it is complete
#   testbed/scale.sh down     remove all of it: namespaces, pods, fake nodes, their leases, kwok, files
#   testbed/scale.sh status   what is there now
#
# kwok (sigs.k8s.io/kwok, built from the Go module proxy into the cache) runs the fake nodes: it keeps
# their leases and status fresh and marks their pods Running. It manages only nodes labelled
# unloop.test/fake-node=true (tainted so that nothing else lands there) and leaves alone the status of
# pods labelled unloop.test/frozen=true: the crash-looping ones, whose status, events and logs come from
# the captured bundles (testbed/scenarios/*/bundle.json.gz), renamed and shifted to the present. kwok's
# kubelet-like server on $NODE_IP:$KWOK_PORT (the fake nodes' address and port) serves those logs, so
# `kubectl logs --previous` and unloop's log reads work for them; it serves no /configz (404: a gap).
# Nothing here leaves the machine: the fake nodes' address is the node's own, the pod addresses are
# in the pod range, and kwok talks only to the apiserver.
#
# Sizes: SCALE_PODS (10000), SCALE_NAMESPACES (100), SCALE_NODES (200), SCALE_CRASHING (200).
# ~5 minutes on 2 cores (the controllers create the pods at their API rate), less when re-run.
source "$(dirname "$0")/lib/common.sh"
need_root

export SCALE_PODS=${SCALE_PODS:-10000} SCALE_NAMESPACES=${SCALE_NAMESPACES:-100}
export SCALE_NODES=${SCALE_NODES:-200} SCALE_CRASHING=${SCALE_CRASHING:-200}
KWOK_PORT=${KWOK_PORT:-10247}
# kwok's pod addresses: inside the pod range (routed to the CNI bridge and guarded, never off the
# machine), far above what the node's host-local IPAM hands out; the frozen pods get 10.232.192.x.
KWOK_CIDR=10.232.128.0/18
WORK=$STATE/scale
export NODE_IP PKI K8S_VERSION KUBECONFIG_ADMIN KUBECTL=$BIN/kubectl KWOK_STAGES=$TOOLS/kwok-$KWOK_VERSION/stages
SCALE_PY=$TESTBED_DIR/lib/scale.py

cluster_up() { kubectl get --raw /readyz >/dev/null 2>&1; }

stop_kwok() {
  local pid
  pid_alive kwok || { rm -f "$PIDS/kwok.pid"; return 0; }
  pid=$(cat "$PIDS/kwok.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do pid_alive kwok || break; sleep 0.5; done
  pid_alive kwok && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDS/kwok.pid"
}

# kwok's client certificate (it writes node and pod status and leases: system:masters) and the serving
# certificate of its kubelet-like server (the apiserver checks it against the testbed CA).
kwok_certs() {
  [ -f "$PKI/kwok.crt" ] && [ -f "$PKI/kwok-serving.crt" ] && [ -f "$STATE/kwok.kubeconfig" ] && return
  cert kwok "/O=system:masters/CN=unloop-testbed:kwok" clientAuth
  cert kwok-serving /CN=unloop-testbed-kwok serverAuth "IP:$NODE_IP"
  chmod 600 "$PKI/kwok.key" "$PKI/kwok-serving.key"
  cat >"$STATE/kwok.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: unloop-testbed
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: kwok
  user:
    client-certificate-data: $(base64 -w0 "$PKI/kwok.crt")
    client-key-data: $(base64 -w0 "$PKI/kwok.key")
contexts:
- name: unloop-testbed
  context: {cluster: unloop-testbed, user: kwok}
current-context: unloop-testbed
EOF
  chmod 600 "$STATE/kwok.kubeconfig"
}

start_kwok() {
  stop_kwok
  log "starting kwok $KWOK_VERSION (fake nodes labelled unloop.test/fake-node=true; server on $NODE_IP:$KWOK_PORT)"
  setsid nohup "$KWOK_BIN" --config "$WORK/kwok.yaml" --kubeconfig "$STATE/kwok.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-label-selector=unloop.test/fake-node=true \
    --disregard-status-with-label-selector=unloop.test/frozen=true \
    --cidr="$KWOK_CIDR" --node-ip="$NODE_IP" --node-port="$KWOK_PORT" --node-lease-duration-seconds=40 \
    --server-address="$NODE_IP:$KWOK_PORT" \
    --tls-cert-file="$PKI/kwok-serving.crt" --tls-private-key-file="$PKI/kwok-serving.key" \
    >>"$LOGS/kwok.log" 2>&1 </dev/null &
  echo $! >"$PIDS/kwok.pid"
  local deadline=$(($(date +%s) + 30))
  until curl -fsS --cacert "$PKI/ca.crt" "https://$NODE_IP:$KWOK_PORT/healthz" >/dev/null 2>&1; do
    pid_alive kwok || { tail -20 "$LOGS/kwok.log" >&2; die "kwok exited while starting (log: $LOGS/kwok.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "kwok's server did not answer on $NODE_IP:$KWOK_PORT in 30s"
    sleep 0.5
  done
}

# wait_until WHAT SECONDS CMD...: polls CMD (which prints progress) until it succeeds.
wait_until() {
  local what=$1 timeout=$2 deadline last=""
  shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@"; do
    pid_alive kwok || { tail -20 "$LOGS/kwok.log" >&2; die "kwok died (log: $LOGS/kwok.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "scale: $what not reached in ${timeout}s"
    sleep 5
  done
}

COUNTS=()
counts() { read -r -a COUNTS < <(python3 "$SCALE_PY" count); }
nodes_ready() {
  local n
  n=$(kubectl get nodes -l unloop.test/fake-node=true --no-headers 2>/dev/null | grep -c ' Ready ' || true)
  printf '\r[testbed] fake nodes Ready: %s/%s   ' "$n" "$SCALE_NODES" >&2
  [ "$n" -ge "$SCALE_NODES" ] && echo >&2
}
running_phase1() {
  counts
  printf '\r[testbed] pods: %s created, %s scheduled, %s running   ' "${COUNTS[0]}" "${COUNTS[1]}" "${COUNTS[2]}" >&2
  [ "${COUNTS[2]}" -ge $((SCALE_PODS - SCALE_CRASHING)) ] && echo >&2
}
all_placed() {
  counts
  printf '\r[testbed] pods: %s/%s created, %s scheduled, %s running, %s crash-looping   ' \
    "${COUNTS[0]}" "$SCALE_PODS" "${COUNTS[1]}" "${COUNTS[2]}" "${COUNTS[3]}" >&2
  [ "${COUNTS[0]}" -ge "$SCALE_PODS" ] && [ "${COUNTS[1]}" -ge "$SCALE_PODS" ] && [ "${COUNTS[3]}" -ge "$SCALE_CRASHING" ] && echo >&2
}

up() {
  cluster_up || die "the testbed is not running: testbed/up.sh first"
  local t0=$SECONDS
  "$TESTBED_DIR/build.sh" kwok
  mkdir -p "$WORK"
  python3 "$SCALE_PY" plan "$WORK"
  kwok_certs
  start_kwok
  python3 "$SCALE_PY" apply "$WORK"
  wait_until "$SCALE_NODES Ready fake nodes" 120 nodes_ready
  wait_until "$((SCALE_PODS - SCALE_CRASHING)) running pods" 900 running_phase1
  python3 "$SCALE_PY" rollout "$WORK"
  wait_until "all $SCALE_PODS pods placed" 300 all_placed
  python3 "$SCALE_PY" freeze "$WORK"
  log "scale fixture ready in $((SECONDS - t0))s: $SCALE_PODS pods ($SCALE_CRASHING crash-looping) in $SCALE_NAMESPACES namespaces on $SCALE_NODES fake nodes"
  log "the crash-looping pods' events expire with the apiserver's event TTL (1 h): re-run 'scale.sh up' to refresh them"
}

down() {
  if cluster_up; then
    python3 "$SCALE_PY" delete
    local deadline=$(($(date +%s) + 300)) left
    while :; do
      left=$(python3 "$SCALE_PY" remaining)
      [ "$left" = "0 0" ] && break
      [ "$(date +%s)" -lt "$deadline" ] || die "scale: namespaces or nodes still there after 300s (namespaces, nodes: $left)"
      # Pods a controller recreated meanwhile, or that were still being created.
      python3 "$SCALE_PY" delete >/dev/null 2>&1 || true
      sleep 3
    done
  fi
  stop_kwok
  rm -rf "$WORK" "$STATE/kwok.kubeconfig" "$PKI"/kwok.* "$PKI"/kwok-serving.*
  log "scale fixture removed"
}

status() {
  pid_alive kwok && log "kwok running (pid $(cat "$PIDS/kwok.pid"))" || log "kwok not running"
  cluster_up || die "the testbed is not running"
  counts
  log "fake nodes: $(kubectl get nodes -l unloop.test/fake-node=true --no-headers 2>/dev/null | wc -l); pods: ${COUNTS[0]} (scheduled ${COUNTS[1]}, running ${COUNTS[2]}, crash-looping ${COUNTS[3]})"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: scale.sh up|down|status" ;;
esac
