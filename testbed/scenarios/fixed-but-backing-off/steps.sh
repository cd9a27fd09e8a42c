#!/usr/bin/env bash
# Starts the crash loop, waits until the back-off has grown (4 restarts: the next delay is 160 s), then
# creates the missing ConfigMap. The pod stays in CrashLoopBackOff with its cause fixed until that
# back-off ends (then it starts and runs): run `scenarios.sh apply fixed-but-backing-off` to re-arm it.
source "$(dirname "$0")/../../lib/common.sh"
ns=fixed-but-backing-off
dir=$(dirname "$0")
kubectl -n $ns delete configmap payments-config --ignore-not-found >/dev/null 2>&1 || true
kubectl apply -f "$dir/manifest.yaml"
deadline=$(($(date +%s) + 300))
while :; do
  st=$(kubectl -n $ns get pods -l app=payments -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.waiting.reason}{"\n"}{end}' 2>/dev/null | head -1)
  set -- $st
  if [ "${1:-0}" -ge 4 ] && [ "${2:-}" = CrashLoopBackOff ]; then break; fi
  [ "$(date +%s)" -lt "$deadline" ] || { echo "fixed-but-backing-off: no 4th restart in 300s (seen: $st)" >&2; exit 1; }
  sleep 2
done
kubectl apply -f "$dir/configmap.yaml"
