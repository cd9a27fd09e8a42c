#!/usr/bin/env bash
# The agent's Helm chart (deploy/chart) and plain manifests (deploy/agent.yaml), checked with no cluster:
#   1. `helm lint --strict` on the chart;
#   2. deploy/agent.yaml is the chart rendered with its defaults (deploy/render.sh prints it);
#   3. the chart's CRD (deploy/chart/crds/) is deploy/crd.yaml, which `unloop agent crd` generates;
#   4. `unloop audit` finds nothing in the plain manifests nor in the chart rendered with every
#      option on (namespaces, webhooks, events off, extra flags).
# Helm is built once from the Go module proxy (testbed/helm.sh). About 5 s once Helm is built.
#   UNLOOP_BIN=target/debug/unloop testbed/chart-validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
unloop=${UNLOOP_BIN:-${CARGO_TARGET_DIR:-target}/debug/unloop}
[ -x "$unloop" ] || { echo "chart-validate: no unloop binary at $unloop (cargo build, or set UNLOOP_BIN)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

testbed/helm.sh lint --strict deploy/chart
testbed/helm.sh lint --strict deploy/chart --set 'namespaces={a,b}' --set notify.webhook=http://x.invalid/h

deploy/render.sh >"$out/agent.yaml"
if ! diff -u deploy/agent.yaml "$out/agent.yaml" >"$out/diff"; then
  cat "$out/diff" >&2
  echo "chart-validate: deploy/agent.yaml is not the chart rendered with its defaults: deploy/render.sh > deploy/agent.yaml" >&2
  exit 1
fi
echo "deploy/agent.yaml is the chart rendered with its defaults"

cmp deploy/crd.yaml deploy/chart/crds/crashdiagnoses.yaml ||
  { echo "chart-validate: deploy/chart/crds/crashdiagnoses.yaml differs from deploy/crd.yaml: cp deploy/crd.yaml deploy/chart/crds/crashdiagnoses.yaml" >&2; exit 1; }
"$unloop" agent crd | cmp - deploy/crd.yaml ||
  { echo "chart-validate: deploy/crd.yaml is stale: unloop agent crd > deploy/crd.yaml" >&2; exit 1; }
echo "the chart's CRD is the one the types generate"

mkdir -p "$out/full"
testbed/helm.sh template unloop-agent deploy/chart --namespace unloop-system --include-crds \
  --set 'namespaces={shop,payments}' --set 'excludeNamespaces={kube-system,unloop-system}' \
  --set notify.webhook=https://hooks.example.invalid/unloop --set notify.slackWebhook=https://hooks.slack.invalid/T/B/X \
  --set config.events=false --set 'extraArgs={--resolve-after,5m}' --set namespace.create=true >"$out/full/agent.yaml"
for what in deploy/agent.yaml "$out/full/agent.yaml"; do
  "$unloop" audit "$what" >"$out/audit" 2>&1 || { cat "$out/audit" >&2; echo "chart-validate: unloop audit found something in $what" >&2; exit 1; }
done
echo "unloop audit: nothing found in deploy/agent.yaml nor in the chart with every option on"
