#!/usr/bin/env bash
# A short crash-loop backoff cap on the node's real kubelet (KubeletCrashLoopBackOffMax, beta and on
# by default in 1.35): the kubelet restarted with `crashLoopBackOff.maxContainerRestartPeriod`, which
# it also takes as the first delay when it is under the usual 10 s. For the live test
# crates/unloop-cli/tests/backoff_cap.rs (test-all.sh runs it next to the node-pressure step).
# Containers keep running across the restart; the kubelet's in-memory backoff starts over.
#
#   backoff-cap.sh on [PERIOD]   restart the kubelet with its own configuration plus
#                                maxContainerRestartPeriod PERIOD (default 4s), and wait until
#                                its configz says so
#   backoff-cap.sh off           restart the kubelet with its own configuration (when it runs with
#                                another), wait until its configz shows the default cap again and
#                                the node is Ready
source "$(dirname "$0")/lib/common.sh"
need_root
export KUBECONFIG=$KUBECONFIG_ADMIN

CONFIG=$STATE/kubelet/config.yaml
CAP_CONFIG=$STATE/kubelet/backoff-cap.yaml

[ -f "$CONFIG" ] || die "the testbed is not up (testbed/up.sh)"

# The cap the running kubelet reports, as configz writes it (Go duration: 4s, 5m0s).
configz_cap() {
  kubectl get --raw "/api/v1/nodes/$NODE_NAME/proxy/configz" |
    grep -o '"maxContainerRestartPeriod":"[^"]*"' | cut -d'"' -f4
}
cap_is() { [ "$(configz_cap)" = "$1" ]; }
kubelet_healthy() { curl -fsS --max-time 2 http://127.0.0.1:10248/healthz >/dev/null; }

case ${1:-} in
on)
  period=${2:-4s}
  grep -q '^crashLoopBackOff:' "$CONFIG" && die "$CONFIG sets crashLoopBackOff already"
  { cat "$CONFIG"; printf 'crashLoopBackOff:\n  maxContainerRestartPeriod: %s\n' "$period"; } >"$CAP_CONFIG"
  restart_kubelet "$CAP_CONFIG"
  wait_until "the kubelet's health" 60 kubelet_healthy
  wait_until "configz to report maxContainerRestartPeriod $period" 60 cap_is "$period"
  wait_until "the node to be Ready" 60 node_ready
  log "the kubelet runs with maxContainerRestartPeriod $period"
  ;;
off)
  kubelet_runs_with "$CONFIG" || restart_kubelet "$CONFIG"
  wait_until "the kubelet's health" 60 kubelet_healthy
  wait_until "configz to report the default cap 5m0s" 60 cap_is 5m0s
  wait_until "the node to be Ready" 60 node_ready
  rm -f "$CAP_CONFIG"
  log "the kubelet is back to its own configuration"
  ;;
*)
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
