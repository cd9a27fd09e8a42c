#!/usr/bin/env bash
# Starts the testbed: a real single-node Kubernetes cluster on this machine, without systemd or kubeadm.
# Returns when the node is Ready, the default ServiceAccount exists, and logs --previous, exec, the
# kubelet's configz and `kubectl top` (metrics-server) work through the apiserver (checked with a probe pod). Idempotent: a second `up`
# while the cluster runs does nothing; leftovers of a crashed run are cleaned first (see down.sh).
#
# Network safety: nothing from the pod network or the service range may leave this machine. The node
# address is on a bridge of its own (unloop0), the CNI bridge does not masquerade, CoreDNS forwards
# nothing, the images are imported (never pulled) and an egress guard (iptables + routes) rejects any
# pod or service packet that would leave through another interface.
source "$(dirname "$0")/lib/common.sh"
need_root

START=$(date +%s)
MANIFESTS=$TESTBED_DIR/lib

# --- helpers -----------------------------------------------------------------------------------------

# fail NAME WHY: names the component that failed, with the tail of its log, and exits.
fail() {
  local name=$1 why=$2
  printf '\n[testbed] error: %s %s\n' "$name" "$why" >&2
  if [ -f "$LOGS/$name.log" ]; then
    printf '[testbed] last lines of %s:\n' "$LOGS/$name.log" >&2
    tail -n 25 "$LOGS/$name.log" | sed 's/^/    /' >&2
  fi
  printf '[testbed] the cluster is left as it is for inspection; testbed/down.sh cleans it up\n' >&2
  exit 1
}


# wait_for NAME SECONDS CMD...: polls CMD until it succeeds; fails naming NAME if NAME dies or time runs out.
wait_for() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    pid_alive "$name" || fail "$name" "exited while starting"
    [ "$(date +%s)" -lt "$deadline" ] || fail "$name" "was not ready after ${timeout}s"
    sleep 0.5
  done
}

already_running() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  [ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

guidance() {
  cat <<EOF

The testbed is up: Kubernetes $K8S_VERSION, node $NODE_NAME ($NODE_IP).
  export KUBECONFIG=$KUBECONFIG_ADMIN
  export PATH=$BIN:\$PATH        # kubectl $K8S_VERSION
  kubectl get pods -A
  kubectl top pods -A             # metrics-server $METRICS_SERVER_VERSION
Scenarios:  testbed/scenarios.sh apply && testbed/scenarios.sh wait
Stop:       testbed/down.sh
Logs:       $LOGS/   audit log: $STATE/audit.log
EOF
}

# --- preconditions -----------------------------------------------------------------------------------

if [ -x "$BIN/kubectl" ] && already_running; then
  # A running cluster can have lost imported images (a full disk left containerd without the
  # sandbox image once): import them again, which changes nothing when they are all there.
  "$TESTBED_DIR/images.sh" import >>"$LOGS/images.log" 2>&1 || fail images "could not be imported again"
  log "already running (pids in $PIDS); images checked"
  guidance
  exit 0
fi

# Packages and binaries (cached: a fraction of a second; cold: ~13 minutes).
"$TESTBED_DIR/build.sh"

# Whatever a crashed or half-started run left behind (processes, mounts, interfaces, iptables chains,
# routes, cgroups, state) goes first: down.sh is idempotent.
"$TESTBED_DIR/down.sh" --leftovers

mkdir -p "$STATE" "$PIDS" "$LOGS" "$PKI"
chmod 700 "$STATE"

# --- host settings -------------------------------------------------------------------------------------

# Remember what the kubelet and the testbed change, so down.sh restores it.
: >"$STATE/sysctl.orig"
for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory vm.panic_on_oom \
  kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
  v=$(sysctl -n "$k" 2>/dev/null) && echo "$k=$v" >>"$STATE/sysctl.orig"
done
sysctl -qw net.ipv4.ip_forward=1
# Bridged pod-to-pod traffic must traverse iptables, or a Service answered by a pod on the same bridge
# would get its reply from the wrong address.
sysctl -qw net.bridge.bridge-nf-call-iptables=1

# --- network -------------------------------------------------------------------------------------------

ip link add "$NODE_IF" type bridge
ip addr add "$NODE_CIDR" dev "$NODE_IF"
ip link set "$NODE_IF" up
# The service range is routed to the node's own (port-less) bridge, never to the default route: a
# ClusterIP that kube-proxy does not translate still reaches kube-proxy's filter rules (a Service
# without endpoints is REJECTed: "connection refused") and otherwise dies here. An `unreachable` route
# would answer "no route to host" before kube-proxy's REJECT could.
ip route replace "$SERVICE_CIDR" dev "$NODE_IF"
# Until the CNI bridge exists (and if it goes away), pod addresses are a black hole, not the default route.
ip route replace blackhole "$POD_CIDR" metric 4000

# The egress guard. Pod and service addresses may only use lo, the node bridge, the CNI bridge and the
# pods' veths; anything else (eth0 and every other interface) is rejected in filter and dropped in
# mangle POSTROUTING, which sees the original source before any NAT.
install_guard() {
  local ipt=$1 table=$2 verdict=$3 hook chain=UNLOOP-EGRESS reject_with=""
  # "No route to host" for the guard, so it is never mistaken for kube-proxy's "connection refused".
  [ "$verdict" = REJECT ] && reject_with="--reject-with icmp-admin-prohibited"
  $ipt -t "$table" -N "$chain"
  local ifc
  for ifc in lo "$NODE_IF" "$POD_BRIDGE" 'veth+'; do $ipt -t "$table" -A "$chain" -o "$ifc" -j RETURN; done
  for net in "$POD_CIDR" "$SERVICE_CIDR"; do
    $ipt -t "$table" -A "$chain" -s "$net" -m comment --comment "unloop testbed egress guard" -j "$verdict" $reject_with
    $ipt -t "$table" -A "$chain" -d "$net" -m comment --comment "unloop testbed egress guard" -j "$verdict" $reject_with
  done
  if [ "$table" = filter ]; then
    for hook in FORWARD OUTPUT; do $ipt -t filter -I "$hook" 1 -j "$chain"; done
  else
    $ipt -t mangle -I POSTROUTING 1 -j "$chain"
  fi
}
install_guard iptables filter REJECT
install_guard iptables mangle DROP

# pin_guard: keeps the guard's jumps first in their chains (kube-proxy prepends its own).
pin_guard() {
  local hook
  for hook in FORWARD OUTPUT; do
    iptables -t filter -D "$hook" -j UNLOOP-EGRESS
    iptables -t filter -I "$hook" 1 -j UNLOOP-EGRESS
  done
  iptables -t mangle -D POSTROUTING -j UNLOOP-EGRESS
  iptables -t mangle -I POSTROUTING 1 -j UNLOOP-EGRESS
}

# --- certificates ------------------------------------------------------------------------------------

log "creating certificates"
# ca NAME CN: a self-signed CA.
ca() {
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}
ca ca unloop-testbed-ca
ca front-proxy-ca unloop-testbed-front-proxy-ca
cert apiserver /CN=kube-apiserver serverAuth \
  "IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:$NODE_NAME,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
cert apiserver-kubelet-client /CN=kube-apiserver-kubelet-client clientAuth
cert admin "/O=system:masters/CN=unloop-testbed-admin" clientAuth
cert controller-manager /CN=system:kube-controller-manager clientAuth
cert scheduler /CN=system:kube-scheduler clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
cert kube-proxy /CN=system:kube-proxy clientAuth
cert coredns /CN=unloop-testbed:coredns clientAuth
cert metrics-server /CN=unloop-testbed:metrics-server clientAuth
# The aggregator checks the name of the Service it routes to (metrics-server.kube-system.svc).
cert metrics-server-serving /CN=metrics-server serverAuth \
  "IP:$NODE_IP,DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.$CLUSTER_DOMAIN"
cert front-proxy-client /CN=front-proxy-client clientAuth "" front-proxy-ca
openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 600 "$PKI"/*.key

# kubeconfig NAME CERT: a kubeconfig for the client certificate CERT.
kubeconfig() {
  cat >"$STATE/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: unloop-testbed
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: unloop-testbed
  context: {cluster: unloop-testbed, user: $2}
current-context: unloop-testbed
EOF
  chmod 600 "$STATE/$1.kubeconfig"
}
kubeconfig admin admin
for c in controller-manager scheduler kubelet kube-proxy coredns metrics-server; do kubeconfig "$c" "$c"; done

# --- etcd, control plane ---------------------------------------------------------------------------------

start etcd "$BIN/etcd" --name unloop-testbed --data-dir "$STATE/etcd" \
  --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
  --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
  --initial-cluster unloop-testbed=http://127.0.0.1:12380 --initial-cluster-state new \
  --unsafe-no-fsync --log-level warn
wait_for etcd 60 curl -fsS http://127.0.0.1:12379/health

cat >"$STATE/audit-policy.yaml" <<'EOF'
# Every request at Metadata level (who, what, when, response code; no bodies): the scale benchmark
# counts unloop's requests from this log.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF

start kube-apiserver "$BIN/kube-apiserver" \
  --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 \
  --etcd-servers=http://127.0.0.1:12379 \
  --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
  --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-extra-headers-prefix=X-Remote-Extra- --requestheader-group-headers=X-Remote-Group \
  --requestheader-username-headers=X-Remote-User \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --enable-aggregator-routing=true \
  --audit-policy-file="$STATE/audit-policy.yaml" --audit-log-path="$STATE/audit.log" \
  --audit-log-maxsize=512 --audit-log-maxbackup=2 \
  --profiling=false --v=1
wait_for kube-apiserver 120 kubectl get --raw /readyz

log "applying bootstrap objects (RBAC, kube-dns Service)"
sed -e "s/@DNS_IP@/$DNS_IP/g" -e "s/@NODE_IP@/$NODE_IP/g" -e "s/@NODE_NAME@/$NODE_NAME/g" \
  "$MANIFESTS/bootstrap.yaml" | kubectl apply -f - >"$LOGS/bootstrap.log" 2>&1 ||
  fail bootstrap "objects could not be applied"

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false \
  --kube-api-qps=200 --kube-api-burst=400 --concurrent-replicaset-syncs=10 \
  --profiling=false --v=1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --kube-api-qps=200 --kube-api-burst=400 \
  --profiling=false --v=1

# --- containerd ------------------------------------------------------------------------------------------

mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/containerd/certs.d"
cat >"$STATE/containerd/config.toml" <<EOF
# The testbed's own containerd: its own root, state, sockets and runc root, so it never meets a system one.
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$STATE/containerd/containerd.sock.ttrpc"

[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "unloop.test/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE: a container's oom_score_adj may not go below containerd's own
  # (the kubelet asks -998 for sandboxes, and runc dies with "can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$STATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
EOF
# The testbed never pulls from the Internet: well-known registries point at a closed local port, so a
# stray image name fails on this machine instead of resolving and dialling out. (The dead registry at
# $DEAD_REGISTRY is on the node's own address and needs no entry.)
for reg in docker.io registry-1.docker.io registry.k8s.io k8s.gcr.io gcr.io quay.io ghcr.io mcr.microsoft.com public.ecr.aws; do
  mkdir -p "$STATE/containerd/certs.d/$reg"
  printf 'server = "http://127.0.0.1:9"\n\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
    >"$STATE/containerd/certs.d/$reg/hosts.toml"
done
cat >"$STATE/cni/net.d/10-unloop.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "unloop",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
start containerd /usr/bin/containerd --config "$STATE/containerd/config.toml"
wait_for containerd 60 ctr version

"$TESTBED_DIR/images.sh" import >>"$LOGS/images.log" 2>&1 || fail images "could not be built or imported"

# --- CoreDNS ---------------------------------------------------------------------------------------------

mkdir -p "$STATE/coredns"
# The kubernetes plugin also takes the root zone, so a name outside the cluster domain (payments-db.)
# is a real NXDOMAIN, as an upstream resolver would answer, and nothing is ever forwarded.
cat >"$STATE/coredns/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    log
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa . {
        kubeconfig $STATE/coredns.kubeconfig
        pods insecure
        ttl 30
    }
}
EOF
start coredns "$BIN/coredns" -conf "$STATE/coredns/Corefile"
wait_for coredns 60 curl -fsS http://127.0.0.1:18181/ready

# --- kubelet, kube-proxy ---------------------------------------------------------------------------------

# Cgroups for pods go under a root of our own in every v1 hierarchy; cpuset needs cpus and mems first.
for d in /sys/fs/cgroup/*/; do
  [ -f "$d/cgroup.procs" ] && [ "$(basename "$d")" != unified ] || continue
  mkdir -p "$d/$CGROUP_ROOT"
done
if [ -d /sys/fs/cgroup/cpuset/$CGROUP_ROOT ]; then
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems
fi

echo "nameserver $DNS_IP" >"$STATE/resolv.conf"
mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
# This machine is cgroup v1: the kubelet refuses it from 1.35 unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $STATE/resolv.conf
podLogsDir: $STATE/pod-logs
failSwapOn: false
maxPods: 110
serializeImagePulls: false
# Imported images must never be garbage-collected (they cannot be pulled again), and a small disk
# must not evict the scenarios.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
containerLogMaxSize: 10Mi
EOF
start_kubelet "$STATE/kubelet/config.yaml"
wait_for kubelet 120 node_ready

cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the node's own address, never on eth0.
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy.yaml" --v=1
proxy_synced() {
  local rules
  rules=$(iptables -t nat -S KUBE-SERVICES 2>/dev/null)
  grep -q "$KUBERNETES_SVC_IP/32" <<<"$rules" && grep -q "$DNS_IP/32" <<<"$rules"
}
wait_for kube-proxy 60 proxy_synced
pin_guard

# --- metrics-server ----------------------------------------------------------------------------------

# A host process like CoreDNS, with its own client certificate; it scrapes the kubelet's
# /metrics/resource with the testbed CA (no --kubelet-insecure-tls), and only real nodes (the scale
# fixture's fake nodes carry unloop.test/fake-node=true). The APIService is registered once it runs.
ms_objects() {
  sed -e "s/@NODE_IP@/$NODE_IP/g" -e "s/@NODE_NAME@/$NODE_NAME/g" -e "s/@METRICS_PORT@/$METRICS_PORT/g" \
    -e "s/@CA_BUNDLE@/$(base64 -w0 "$PKI/ca.crt")/" "$MANIFESTS/$1" |
    kubectl apply -f - >>"$LOGS/metrics-server-objects.log" 2>&1 || fail metrics-server "objects ($1) could not be applied"
}
ms_objects metrics-server.yaml
start metrics-server "$METRICS_SERVER_BIN" \
  --kubeconfig="$STATE/metrics-server.kubeconfig" \
  --authentication-kubeconfig="$STATE/metrics-server.kubeconfig" \
  --authorization-kubeconfig="$STATE/metrics-server.kubeconfig" \
  --bind-address="$NODE_IP" --secure-port="$METRICS_PORT" \
  --tls-cert-file="$PKI/metrics-server-serving.crt" --tls-private-key-file="$PKI/metrics-server-serving.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --kubelet-use-node-status-port --node-selector='unloop.test/fake-node!=true' \
  --metric-resolution=15s --profiling=false --v=1
metrics_server_ready() { curl -fsS --cacert "$PKI/ca.crt" "https://$NODE_IP:$METRICS_PORT/readyz"; }
wait_for metrics-server 60 metrics_server_ready
ms_objects metrics-server-apiservice.yaml

# --- readiness: the things unloop needs from a cluster ------------------------------------------------

default_sa() { kubectl -n default get serviceaccount default; }
wait_for kube-controller-manager 60 default_sa

log "checking logs --previous, exec, configz, cluster DNS and kubectl top with a probe pod"
PROBE=unloop-testbed-probe
kubectl -n default delete pod "$PROBE" --ignore-not-found --wait=false >/dev/null
kubectl apply -f "$MANIFESTS/probe.yaml" >/dev/null
probe_restarted_and_ready() {
  [ "$(kubectl -n default get pod "$PROBE" -o jsonpath='{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].ready}')" = 1/true ]
}
probe_fail() {
  kubectl -n default describe pod "$PROBE" >"$LOGS/probe.log" 2>&1 || true
  fail probe "$1"
}
deadline=$(($(date +%s) + 90))
until probe_restarted_and_ready 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || probe_fail "pod did not crash once and come back within 90s"
  for c in kubelet containerd; do pid_alive "$c" || fail "$c" "exited"; done
  sleep 1
done
# (Outputs are read whole before grep: `cmd | grep -q` fails under pipefail when grep exits first.)
out=$(kubectl -n default logs "$PROBE" --previous 2>&1 || true)
grep -q 'first start' <<<"$out" || { echo "$out" >>"$LOGS/probe.log"; probe_fail "kubectl logs --previous does not work"; }
out=$(kubectl -n default exec "$PROBE" -- sh -c "nslookup kubernetes.default.svc.$CLUSTER_DOMAIN $DNS_IP; echo | nc -w 3 $KUBERNETES_SVC_IP 443 >/dev/null && echo svc-ok" 2>&1) ||
  { echo "$out" >>"$LOGS/probe.log"; probe_fail "kubectl exec does not work"; }
grep -q "$KUBERNETES_SVC_IP" <<<"$out" || { echo "$out" >>"$LOGS/probe.log"; fail coredns "does not resolve kubernetes.default (seen: $out)"; }
grep -q svc-ok <<<"$out" || { echo "$out" >>"$LOGS/probe.log"; fail kube-proxy "does not forward $KUBERNETES_SVC_IP:443 to the apiserver"; }
out=$(kubectl get --raw "/api/v1/nodes/$NODE_NAME/proxy/configz" 2>&1 || true)
grep -q '"kubeletconfig"' <<<"$out" ||
  fail kubelet "configz is not reachable through the apiserver"
# `kubectl top` (metrics.k8s.io through the aggregator) once metrics-server has scraped the probe pod
# twice (a CPU rate needs two samples): ~30 s after it started, mostly spent above already.
top_works() {
  local out
  out=$(kubectl top pods -n default --no-headers 2>&1) && grep -q "^$PROBE " <<<"$out" &&
    kubectl top pods -A >/dev/null 2>&1 && kubectl top node "$NODE_NAME" >/dev/null 2>&1
}
wait_for metrics-server 120 top_works
kubectl -n default delete pod "$PROBE" --wait=false >/dev/null

log "up in $(($(date +%s) - START))s"
guidance
