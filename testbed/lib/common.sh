# Shared settings for the testbed scripts. Sourced, never run.
# Everything the testbed downloads or builds lives under $CACHE (outside the repo, keyed by version);
# everything a running cluster writes lives under $STATE.
set -euo pipefail

# A sourced file sees its caller's arguments: kept so need_root can run the script again under sudo.
SCRIPT_ARGS=("$@")

K8S_VERSION=${K8S_VERSION:-v1.35.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}
CACHE=${UNLOOP_TESTBED_CACHE:-/var/cache/unloop-testbed}
STATE=${UNLOOP_TESTBED_STATE:-/var/lib/unloop-testbed}
BIN=$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-coredns-$COREDNS_VERSION
# Add-ons built from the Go module proxy, one directory per program and version: $TOOLS/NAME-VERSION/NAME.
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.0}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
TOOLS=$CACHE/bin/tools
METRICS_SERVER_BIN=$TOOLS/metrics-server-$METRICS_SERVER_VERSION/metrics-server
KWOK_BIN=$TOOLS/kwok-$KWOK_VERSION/kwok
TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$TESTBED_DIR/.." && pwd)

# Network layout. The node address sits on a bridge interface the testbed creates (the kubelet refuses
# loopback); pods and Services use ranges that no route off this machine should ever carry.
NODE_NAME=${NODE_NAME:-unloop-node}
NODE_IF=unloop0
NODE_IP=10.231.0.1
NODE_CIDR=10.231.0.1/32
POD_CIDR=10.232.0.0/16
POD_BRIDGE=cni-unloop0
SERVICE_CIDR=10.233.0.0/24
KUBERNETES_SVC_IP=10.233.0.1
DNS_IP=10.233.0.10
# metrics-server's port on the node address (the kubelet has 10250).
METRICS_PORT=4443
CLUSTER_DOMAIN=cluster.local
KUBECONFIG_ADMIN=$STATE/admin.kubeconfig
# Where every pod's cgroups live (under each cgroup v1 controller): ours alone, so cleanup is exact.
CGROUP_ROOT=unloop-testbed
# A port on the node's own address where nothing listens: a registry that refuses, for real pull errors.
DEAD_REGISTRY=$NODE_IP:5999
PKI=$STATE/pki
PIDS=$STATE/pids
LOGS=$STATE/logs
CONTAINERD_SOCK=$STATE/containerd/containerd.sock
IMAGE_CACHE=$CACHE/images
# The components in start order (down.sh stops them in reverse). Each NAME is also its binary's name.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd coredns kubelet kube-proxy metrics-server)

log() { printf '\033[1m[testbed]\033[0m %s\n' "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }

# The testbed starts a kubelet and containerd: root is needed. As root, go on; otherwise run the same
# script again under sudo (keeping PATH, so cargo and go are still found), or stop if there is no sudo.
need_root() {
  [ "$(id -u)" = 0 ] && return
  command -v sudo >/dev/null || die "run as root (the testbed starts a kubelet and containerd); no sudo here"
  exec sudo -E env "PATH=$PATH" bash "$0" "${SCRIPT_ARGS[@]}"
}

kubectl() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr() { command ctr --address "$CONTAINERD_SOCK" "$@"; }

# pid_alive NAME: the component's recorded pid is a live process running the component's binary (a pid
# file left by a crashed run may name a reused pid).
pid_alive() {
  local f=$PIDS/$1.pid pid exe
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "${exe% (deleted)}")" = "$1" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

# start NAME CMD...: runs CMD in its own session, detached, logging to $LOGS/NAME.log.
start() {
  local name=$1
  shift
  log "starting $name"
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

# start_kubelet CONFIG: the node's kubelet, with the KubeletConfiguration file CONFIG (up.sh writes
# $STATE/kubelet/config.yaml; pressure.sh swaps in a variant).
start_kubelet() {
  start kubelet "$BIN/kubelet" --config="$1" --kubeconfig="$STATE/kubelet.kubeconfig" \
    --root-dir="$STATE/kubelet" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=2
}

# restart_kubelet CONFIG: stop the node's kubelet (TERM, then KILL after 15 s) and start it again with
# the KubeletConfiguration file CONFIG. Containers keep running; the kubelet's in-memory crash-loop
# backoff starts over. pressure.sh and backoff-cap.sh swap in a variant this way and restore it.
restart_kubelet() {
  local pid
  pid=$(cat "$PIDS/kubelet.pid")
  log "restarting the kubelet with $1"
  # Only a live kubelet is signalled: a dead one's pid may belong to another process by now.
  if pid_alive kubelet; then kill -TERM "$pid" 2>/dev/null || true; fi
  for _ in $(seq 1 30); do pid_alive kubelet || break; sleep 0.5; done
  if pid_alive kubelet; then kill -KILL "$pid" 2>/dev/null || true; sleep 1; fi
  start_kubelet "$1"
}

# kubelet_runs_with CONFIG: the running kubelet was started with CONFIG.
kubelet_runs_with() {
  pid_alive kubelet && tr '\0' '\n' <"/proc/$(cat "$PIDS/kubelet.pid")/cmdline" | grep -qxF -- "--config=$1"
}

# wait_until WHAT SECONDS CMD...: run CMD every second until it succeeds, or die after SECONDS.
wait_until() {
  local what=$1 deadline=$(($(date +%s) + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "gave up waiting for $what"
    sleep 1
  done
}

node_ready() {
  [ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# cert NAME SUBJECT USAGE [SANS] [CA]: a key and a certificate in $PKI signed by CA (default ca:
# the testbed CA that up.sh makes).
cert() {
  local name=$1 subject=$2 usage=$3 sans=${4:-} signer=${5:-ca}
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$signer.crt" -CAkey "$PKI/$signer.key" -set_serial "0x$(openssl rand -hex 12)" \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}
