#!/usr/bin/env bash
# Restarts the testbed's kube-apiserver with the command line it runs with now (the agent's e2e checks
# that watches resume): SIGTERM, SIGKILL after 20 s (its graceful stop takes over a minute here),
# start it again the way up.sh does (also when this script fails half-way), wait for /readyz. Leaves
# it running. Prints how long the apiserver was away.
source "$(dirname "$0")/lib/common.sh"
need_root
pid_alive kube-apiserver || die "kube-apiserver is not running: run testbed/up.sh"
pid=$(cat "$PIDS/kube-apiserver.pid")
mapfile -d '' cmd <"/proc/$pid/cmdline"
[ "${#cmd[@]}" -gt 1 ] || die "cannot read kube-apiserver's command line"
t0=$(date +%s%N)
# Whatever happens from here, the apiserver is started again.
trap 'pid_alive kube-apiserver || start kube-apiserver "${cmd[@]}"' EXIT
kill -TERM "$pid"
# A graceful stop drains watches for a minute or more on this testbed: after 20 s it is killed.
for _ in $(seq 40); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
if [ -d "/proc/$pid" ]; then
  kill -KILL "$pid"
  for _ in $(seq 20); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
fi
[ ! -d "/proc/$pid" ] || die "kube-apiserver (pid $pid) did not exit"
start kube-apiserver "${cmd[@]}"
for _ in $(seq 240); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
kubectl get --raw /readyz >/dev/null 2>&1 || die "kube-apiserver not ready within 120s after the restart"
echo "kube-apiserver restarted: away $(( ($(date +%s%N) - t0) / 1000000 )) ms"
