#!/usr/bin/env bash
# Restarts the testbed's kube-apiserver with the command line it runs with now (the agent's e2e checks
# that watches resume): SIGTERM, wait for it to exit, start it again the way up.sh does, wait for
# /readyz. Leaves it running. Prints how long the apiserver was away.
source "$(dirname "$0")/lib/common.sh"
need_root
pid_alive kube-apiserver || die "kube-apiserver is not running: run testbed/up.sh"
pid=$(cat "$PIDS/kube-apiserver.pid")
mapfile -d '' cmd <"/proc/$pid/cmdline"
[ "${#cmd[@]}" -gt 1 ] || die "cannot read kube-apiserver's command line"
t0=$(date +%s%N)
kill -TERM "$pid"
for _ in $(seq 120); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
[ ! -d "/proc/$pid" ] || die "kube-apiserver (pid $pid) did not exit within 60s"
start kube-apiserver "${cmd[@]}"
for _ in $(seq 240); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
kubectl get --raw /readyz >/dev/null 2>&1 || die "kube-apiserver not ready within 120s after the restart"
echo "kube-apiserver restarted: away $(( ($(date +%s%N) - t0) / 1000000 )) ms"
