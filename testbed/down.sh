#!/usr/bin/env bash
# Stops the testbed and removes everything it made: the processes it started (by pid), the pods'
# containers and shims, mounts under the state dir, cgroups, interfaces, routes, iptables chains, the
# host settings it changed, and the state dir itself. Idempotent; also what up.sh runs to clean the
# leftovers of a crashed run (`down.sh --leftovers`: quiet when there is nothing to clean).
source "$(dirname "$0")/lib/common.sh"
need_root

QUIET=0
[ "${1:-}" = --leftovers ] && QUIET=1
say() { [ $QUIET = 1 ] && [ "${FOUND:-0}" = 0 ] && return; log "$@"; }
FOUND=0
if [ -d "$STATE" ] || ip link show "$NODE_IF" >/dev/null 2>&1 || ip link show "$POD_BRIDGE" >/dev/null 2>&1 ||
  iptables -t filter -S UNLOOP-EGRESS >/dev/null 2>&1 || ls -d /sys/fs/cgroup/*/"$CGROUP_ROOT" >/dev/null 2>&1; then
  FOUND=1
fi
[ $QUIET = 1 ] && [ $FOUND = 1 ] && log "cleaning up what a previous run left behind"
[ $FOUND = 1 ] || { [ $QUIET = 1 ] || log "nothing to stop"; exit 0; }

# stop NAME: SIGTERM to the recorded pid, up to 15 s to exit, then SIGKILL.
stop() {
  local name=$1 pid i
  pid_alive "$name" || { rm -f "$PIDS/$name.pid"; return 0; }
  pid=$(cat "$PIDS/$name.pid")
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    pid_alive "$name" || break
    sleep 0.5
  done
  if pid_alive "$name"; then
    log "$name (pid $pid) did not stop in 15s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 10); do pid_alive "$name" || break; sleep 0.2; done
  fi
  rm -f "$PIDS/$name.pid"
}

# pids of processes whose command line names our containerd socket: our shims, nobody else's.
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -- "containerd-shim.* -address $CONTAINERD_SOCK\( \|$\)" >/dev/null && basename "$p"
  done
  return 0
}

# shim_sockets PID...: the sockets those shims listen on (/run/containerd/s/<sha256 of address/ns/id>),
# removed once the shims are gone: a killed shim leaves its socket behind.
shim_sockets() {
  local p args ns id
  for p in "$@"; do
    args=$({ tr '\0' '\n' <"/proc/$p/cmdline"; } 2>/dev/null) || continue
    ns=$(grep -A1 -x -- -namespace <<<"$args" | tail -1)
    id=$(grep -A1 -x -- -id <<<"$args" | tail -1)
    [ -n "$ns" ] && [ -n "$id" ] || continue
    echo "/run/containerd/s/$(printf '%s' "$CONTAINERD_SOCK/$ns/$id" | sha256sum | cut -d' ' -f1)"
  done
}
# shellcheck disable=SC2046
SOCKETS=$(shim_sockets $(our_shims))

# The kubelet first, so it restarts nothing; kube-proxy with it.
stop kube-proxy
stop kubelet

# The pods' containers: through our containerd while it runs, then whatever is left in our cgroups,
# then our shims.
CTR_BIN=$(type -P ctr)
if pid_alive containerd && [ -S "$CONTAINERD_SOCK" ]; then
  tasks=$(timeout 20 "$CTR_BIN" --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
  if [ -n "$tasks" ]; then
    say "killing $(wc -w <<<"$tasks") containers"
    for t in $tasks; do timeout 10 "$CTR_BIN" --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $tasks; do timeout 10 "$CTR_BIN" --address "$CONTAINERD_SOCK" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true; done
  fi
fi
kill_cgroup_procs() {
  local f pids=""
  for f in $(find /sys/fs/cgroup/*/"$CGROUP_ROOT" -name cgroup.procs 2>/dev/null); do
    pids="$pids $(cat "$f" 2>/dev/null)"
  done
  pids=$(tr ' ' '\n' <<<"$pids" | sort -un | tr '\n' ' ')
  [ -n "${pids// /}" ] || return 1
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}
for i in 1 2 3 4 5; do kill_cgroup_procs || break; sleep 0.5; done
shims=$(our_shims)
if [ -n "$shims" ]; then
  say "stopping containerd shims: $(tr "\n" " " <<<"$shims")"
  # shellcheck disable=SC2086
  kill -TERM $shims 2>/dev/null || true
  sleep 1
  shims=$(our_shims)
  # shellcheck disable=SC2086
  [ -z "$shims" ] || kill -KILL $shims 2>/dev/null || true
fi

for f in $SOCKETS; do if [ -S "$f" ]; then rm -f "$f"; fi; done

# The rest, in reverse start order; then any other pid file.
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop "${COMPONENTS[$i]}"; done
for f in "$PIDS"/*.pid; do
  [ -e "$f" ] || continue
  stop "$(basename "$f" .pid)"
done

# Mounts under the state dir (pod volumes, container root filesystems, sandbox /dev/shm, network
# namespaces), deepest first; lazily if busy. (Mount lists are read whole: `grep -q` in a pipeline
# would fail it under pipefail.)
state_mounts() { findmnt -rn -o TARGET | awk -v s="$STATE" 'index($0, s "/") == 1 || $0 == s' | sort -r; }
unmount_state() {
  local m
  for m in $(state_mounts); do
    m=$(printf '%b' "$m") # findmnt escapes spaces as \x20
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
mounts=$(state_mounts)
if [ -n "$mounts" ]; then
  say "unmounting $(wc -l <<<"$mounts") mounts under $STATE"
  unmount_state
  [ -z "$(state_mounts)" ] || unmount_state
fi

# Our pod cgroups, deepest first.
for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
  [ -d "$d" ] || continue
  find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done

# Interfaces: veths still on the CNI bridge, the bridge, the node bridge (routes on them go with them).
if ip link show "$POD_BRIDGE" >/dev/null 2>&1; then
  for v in $(ip -o link show master "$POD_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$POD_BRIDGE" 2>/dev/null || true
fi
ip link del "$NODE_IF" 2>/dev/null || true
ip route del "$SERVICE_CIDR" 2>/dev/null || true
ip route del blackhole "$POD_CIDR" 2>/dev/null || true

# iptables: our guard, kube-proxy's and the kubelet's chains (KUBE-*: no other Kubernetes runs here), and
# any CNI chains, in every table, IPv4 and IPv6.
clean_iptables() {
  local ipt=$1 t line chains c
  command -v "$ipt" >/dev/null || return 0
  for t in filter nat mangle raw; do
    $ipt -t "$t" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE-|UNLOOP-|CNI-)' |
      while read -r line; do eval "$ipt -t $t -D ${line#-A }" 2>/dev/null || true; done || true
    chains=$($ipt -t "$t" -S 2>/dev/null | awk '/^-N (KUBE-|UNLOOP-|CNI-)/ {print $2}' || true)
    for c in $chains; do $ipt -t "$t" -F "$c" 2>/dev/null || true; done
    for c in $chains; do $ipt -t "$t" -X "$c" 2>/dev/null || true; done
  done
}
clean_iptables iptables
clean_iptables ip6tables

# The kubelet's log symlinks into our pod log dir.
find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null || true

# Host settings back as they were.
if [ -f "$STATE/sysctl.orig" ]; then
  while IFS== read -r k v; do sysctl -qw "$k=$v" 2>/dev/null || true; done <"$STATE/sysctl.orig"
fi

mounts=$(state_mounts)
[ -z "$mounts" ] || die "mounts remain under $STATE, not removing it: $(head -3 <<<"$mounts" | tr '\n' ' ')"
rm -rf --one-file-system "$STATE"
say "down"
