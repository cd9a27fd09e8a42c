#!/usr/bin/env bash
# Captures each scenario's real cluster state into its directory, once it shows its expected state:
#   testbed/scenarios/NAME/bundle.json.gz   `unloop snapshot --whole-pods -n NAME` (the hermetic test fixture)
#   testbed/scenarios/NAME/observed.json    what kubectl sees: the namespace's objects (managedFields
#                                           dropped, Secret values removed), the node, and every
#                                           container's current and previous log, for reference
#   testbed/scenarios/NAME/pod-metrics.json the metrics API's answers (metrics-server) for the
#                                           namespace, read METRICS_READS times (default 3)
#                                           METRICS_INTERVAL seconds apart (default 20): the usage
#                                           audit's right-sizing tests rest on
#
#   capture.sh [NAME...]      all scenarios by default; re-run to re-capture
#
# UNLOOP_BIN (default: target/release/unloop in the repo) makes the bundles; without it only
# observed.json is written.
source "$(dirname "$0")/lib/common.sh"
need_root

SCENARIOS_DIR=$TESTBED_DIR/scenarios
UNLOOP_BIN=${UNLOOP_BIN:-$REPO_DIR/target/release/unloop}
export KUBECONFIG=$KUBECONFIG_ADMIN

[ -f "$KUBECONFIG_ADMIN" ] || die "the testbed is not up (no $KUBECONFIG_ADMIN): run testbed/up.sh"
names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(find "$SCENARIOS_DIR" -mindepth 2 -maxdepth 2 -name expect.yaml -printf '%h\n' | xargs -n1 basename | sort)

# Only a scenario in its expected state is worth capturing.
"$TESTBED_DIR/scenarios.sh" wait "${names[@]}"

have_unloop=0
if [ -x "$UNLOOP_BIN" ]; then
  have_unloop=1
else
  log "no unloop binary at $UNLOOP_BIN (set UNLOOP_BIN or build it): writing observed.json only"
fi

# observed NAME: prints observed.json for namespace NAME.
observed() {
  local ns=$1 tmp
  tmp=$(mktemp -d)
  kubectl -n "$ns" get pods,events,deployments,replicasets,statefulsets,daemonsets,jobs,services,endpointslices,configmaps,serviceaccounts \
    -o json >"$tmp/objects.json"
  # Secret values never leave the cluster; their key names are kept (a missing key is a scenario).
  kubectl -n "$ns" get secrets -o json | jq '.items |= map(.dataKeys = ((.data // {}) | keys) | del(.data, .stringData))' >"$tmp/secrets.json"
  kubectl get node "$NODE_NAME" -o json >"$tmp/node.json"
  echo '[]' >"$tmp/logs.json"
  local pod c prev text
  for pod in $(kubectl -n "$ns" get pods -o jsonpath='{.items[*].metadata.name}'); do
    for c in $(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}'); do
      for prev in false true; do
        text=$(kubectl -n "$ns" logs "$pod" -c "$c" --previous="$prev" --tail=200 2>&1) || text="ERROR: $text"
        jq --arg p "$pod" --arg c "$c" --argjson prev "$prev" --arg t "$text" \
          '. + [{pod: $p, container: $c, previous: $prev, log: $t}]' "$tmp/logs.json" >"$tmp/logs.next"
        mv "$tmp/logs.next" "$tmp/logs.json"
      done
    done
  done
  jq -n --arg ns "$ns" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg version "$K8S_VERSION" \
    --slurpfile objects "$tmp/objects.json" --slurpfile secrets "$tmp/secrets.json" \
    --slurpfile node "$tmp/node.json" --slurpfile logs "$tmp/logs.json" '
    def strip: del(.metadata.managedFields);
    {
      capturedAt: $at, namespace: $ns, kubernetesVersion: $version,
      objects: ($objects[0].items | map(strip)),
      secrets: ($secrets[0].items | map(strip)),
      node: ($node[0] | strip),
      logs: $logs[0]
    }'
  rm -rf "$tmp"
}

failed=0
for n in "${names[@]}"; do
  dir=$SCENARIOS_DIR/$n
  observed "$n" >"$dir/observed.json.tmp" && mv "$dir/observed.json.tmp" "$dir/observed.json"
  if [ $have_unloop = 1 ]; then
    rm -f "$dir/.bundle.tmp.json.gz"
    # Whole pods: the fixtures are the full truth (tests slim them to check slimming is harmless).
    if ! "$UNLOOP_BIN" snapshot --whole-pods -n "$n" "$dir/.bundle.tmp.json.gz" >"$STATE/capture-$n.log" 2>&1; then
      failed=$((failed + 1))
      log "unloop snapshot failed for $n:"
      sed 's/^/    /' "$STATE/capture-$n.log" >&2
    elif [ ! -s "$dir/.bundle.tmp.json.gz" ]; then
      failed=$((failed + 1))
      log "unloop snapshot exited 0 for $n but wrote no bundle"
    else
      mv "$dir/.bundle.tmp.json.gz" "$dir/bundle.json.gz"
      log "captured $n: bundle.json.gz, observed.json"
    fi
    rm -f "$dir/.bundle.tmp.json.gz"
  else
    log "captured $n: observed.json"
  fi
done
[ $failed = 0 ] || die "$failed snapshot(s) failed"

# Usage as metrics-server measured it: whole-cluster reads, split by namespace. Containers that are
# between crashes have no sample in a read; that is what a real read shows too.
if kubectl get --raw /apis/metrics.k8s.io/v1beta1 >/dev/null 2>&1; then
  reads=${METRICS_READS:-3} interval=${METRICS_INTERVAL:-20}
  tmp=$(mktemp -d)
  for i in $(seq 1 "$reads"); do
    [ "$i" = 1 ] || sleep "$interval"
    kubectl get --raw /apis/metrics.k8s.io/v1beta1/pods >"$tmp/read-$i.json"
  done
  for n in "${names[@]}"; do
    jq -s --arg ns "$n" 'map(.items |= map(select(.metadata.namespace == $ns)))' "$tmp"/read-*.json \
      >"$SCENARIOS_DIR/$n/pod-metrics.json"
  done
  rm -rf "$tmp"
  log "captured pod-metrics.json: $reads reads of the metrics API ${interval}s apart"
else
  log "the metrics API is not served: pod-metrics.json not captured"
fi
