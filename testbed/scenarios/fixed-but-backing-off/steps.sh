#!/usr/bin/env bash
# Starts the crash loop, waits until the back-off has grown (the container has died after its 5th restart:
# the next delay is 160 s), then creates the missing ConfigMap. The pod stays in CrashLoopBackOff with its cause fixed until that
# back-off ends (then it starts and runs): run `scenarios.sh apply fixed-but-backing-off` to re-arm it.
source "$(dirname "$0")/../../lib/common.sh"
ns=fixed-but-backing-off
dir=$(dirname "$0")
kubectl -n $ns delete configmap payments-config --ignore-not-found >/dev/null 2>&1 || true
kubectl apply -f "$dir/manifest.yaml"
deadline=$(($(date +%s) + 300))
while :; do
  st=$(kubectl -n $ns get pods -l app=payments -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.running.startedAt}{"\n"}{end}' 2>/dev/null | head -1)
  set -- $st
  # restartCount 5 and not running: the 6th run has died and the 160 s back-off has begun.
  if [ "${1:-0}" -ge 5 ] && [ -z "${2:-}" ]; then break; fi
  [ "$(date +%s)" -lt "$deadline" ] || { echo "fixed-but-backing-off: no 5th restart in 300s (seen: $st)" >&2; exit 1; }
  sleep 2
done
# A few seconds after the crash, so the ConfigMap is visibly newer than the last container's start.
sleep 5
kubectl apply -f "$dir/configmap.yaml"
