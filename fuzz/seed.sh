#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/TARGET/ from what the repo already holds: the bundles
# captured from the testbed's real cluster, the audit test manifests, the scenarios' manifests and
# metrics API answers, and the real log lines inside the bundles. Nothing here is committed: run it
# before fuzzing (fuzz-smoke.sh does). Idempotent; existing corpus entries (what the fuzzer found)
# are kept.
set -euo pipefail
cd "$(dirname "$0")"
repo=..
corpus=${FUZZ_CORPUS:-corpus}  # FUZZ_CORPUS: another folder (the smoke run seeds a fresh one)
mkdir -p "$corpus"/{bundle,kubectl_json,dump_dir,audit_load,audit_shell,logscan,quantity,duration,selector,redact,diagnose,metrics}

bundles=("$repo"/testbed/scenarios/*/bundle.json.gz "$repo"/testbed/node-pressure/bundle.json.gz)
manifests=$(find "$repo"/crates/unloop-audit/tests/manifests "$repo"/testbed/scenarios "$repo"/testbed/node-pressure \
  \( -name '*.yaml' -o -name '*.yml' \) | grep -v '/expect.yaml$' | sort)

# bundle: the first byte 0 = the rest as is, 1 = gzip the rest first (see fuzz_targets/bundle.rs).
for b in "${bundles[@]}"; do
  name=$(basename "$(dirname "$b")")
  { printf '\0'; cat "$b"; } > "$corpus/bundle/$name.gz"
  { printf '\0'; gzip -dc "$b"; } > "$corpus/bundle/$name.json"
  { printf '\1'; gzip -dc "$b"; } > "$corpus/bundle/$name.json-in-gz"
done

# kubectl_json, dump_dir, logscan: the captured state written the way kubectl and the cluster-info
# dump write it, and the captured logs.
python3 - "$corpus" "${bundles[@]}" <<'PY'
import gzip, json, os, sys
corpus, bundles = sys.argv[1], sys.argv[2:]
kinds = [("pods", "Pod", "v1"), ("events", "Event", "v1"), ("nodes", "Node", "v1"),
         ("replicaSets", "ReplicaSet", "apps/v1"), ("deployments", "Deployment", "apps/v1"),
         ("statefulSets", "StatefulSet", "apps/v1"), ("daemonSets", "DaemonSet", "apps/v1"),
         ("jobs", "Job", "batch/v1"), ("services", "Service", "v1")]
dump_names = {"pods": "pods.json", "events": "events.json", "replicaSets": "replicasets.json",
              "deployments": "deployments.json", "statefulSets": "statefulsets.json",
              "daemonSets": "daemonsets.json", "jobs": "jobs.json", "services": "services.json"}
for b in bundles:
    name = os.path.basename(os.path.dirname(b))
    state = json.load(gzip.open(b))["state"]
    items = []
    for field, kind, api in kinds:
        for o in state.get(field, []):
            items.append(dict(o, kind=kind, apiVersion=api))
    with open(f"{corpus}/kubectl_json/{name}.json", "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    for i, pod in enumerate(state.get("pods", [])[:1]):
        with open(f"{corpus}/kubectl_json/{name}-pod.json", "w") as f:
            json.dump(dict(pod, kind="Pod", apiVersion="v1"), f, indent=2)
    # A cluster-info dump: nodes.json at the top, NS/KIND.json lists, NS/POD/logs.txt.
    out = bytearray()
    def section(path, body):
        out.extend(b"\0FILE " + path.encode() + b"\n" + body)
    nodes = [dict(n, kind="Node", apiVersion="v1") for n in state.get("nodes", [])]
    section("nodes.json", json.dumps({"kind": "NodeList", "apiVersion": "v1", "items": nodes}).encode())
    namespaces = sorted({o.get("metadata", {}).get("namespace", "default")
                         for field, _, _ in kinds if field != "nodes" for o in state.get(field, [])})
    for ns in namespaces:
        for field, kind, api in kinds:
            if field not in dump_names:
                continue
            objs = [dict(o, kind=kind, apiVersion=api) for o in state.get(field, [])
                    if o.get("metadata", {}).get("namespace", "default") == ns]
            section(f"{ns}/{dump_names[field]}",
                    json.dumps({"kind": kind + "List", "apiVersion": api, "items": objs}, indent=1).encode())
    for log in state.get("logs", []):
        section(f"{log['namespace']}/{log['pod']}/logs.txt", log["text"].encode())
        with open(f"{corpus}/logscan/{name}-{log['container']}.log", "w") as f:
            f.write(log["text"])
        for j, line in enumerate(log["text"].splitlines()[:20]):
            with open(f"{corpus}/logscan/{name}-{log['container']}-{j}.line", "w") as f:
                f.write(line)
            with open(f"{corpus}/redact/{name}-{j}.line", "w") as f:
                f.write(line)
    with open(f"{corpus}/dump_dir/{name}.dump", "wb") as f:
        f.write(out)
PY

# audit_load: every manifest as is, and as JSON lines (one object per line, as `kubectl get -o json`
# piped through jq -c writes them).
for m in $manifests; do
  rel=${m#"$repo"/}
  cp "$m" "$corpus/audit_load/${rel//\//_}"
done
python3 - "$corpus" $manifests <<'PY'
import json, os, sys
try:
    import yaml
except ImportError:
    sys.exit(0)
corpus, paths = sys.argv[1], sys.argv[2:]
for p in paths:
    try:
        docs = [d for d in yaml.safe_load_all(open(p)) if d]
    except Exception:
        continue
    name = p.replace("/", "_").lstrip("._")
    with open(f"{corpus}/audit_load/{name}.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d, default=str) + "\n")
PY

# metrics: the metrics API's answers captured from the testbed.
for m in "$repo"/testbed/scenarios/*/pod-metrics.json; do
  cp "$m" "$corpus/metrics/$(basename "$(dirname "$m")")-pod-metrics.json"
done

# Small parsers: the spellings the docs and the captured manifests use.
i=0
for q in 256Mi 1Gi 1.5Gi 500M 512k 1e3 100m 250m 2 1.5 12345678n 1500u 1k -Xmx768m -Xms256m \
         -XX:MaxRAMPercentage=75 -XX:MaxRAMPercentage=90.5 512m 2g 1024k 1T 0 0.001 64Ei; do
  printf '%s' "$q" > "$corpus/quantity/q$i"; i=$((i + 1))
done
for m in $manifests; do
  { grep -ohE '(memory|cpu): *"?[0-9][0-9.]*[A-Za-z]*"?|-Xm[sx][0-9]+[kKmMgG]?' "$m" || true; } \
    | sed -E 's/^(memory|cpu): *//; s/"//g' | sort -u | while read -r q; do
      printf '%s' "$q" > "$corpus/quantity/m-$(printf '%s' "$q" | md5sum | cut -c1-8)"
    done
done
i=0
for d in 1m30s 500ms 15s 7d 24h 1h30m 2m0.5s 10s 0s 1.5h 300ms; do
  printf '%s' "$d" > "$corpus/duration/d$i"; i=$((i + 1))
done
i=0
for s in 'app=api' 'app==api,tier!=db' 'app in (api,web),!canary' 'env notin (prod)' 'app' \
         'app.kubernetes.io/name=orders' ''; do
  printf '%s\napp=api\ntier=web\napp.kubernetes.io/name=orders\n' "$s" > "$corpus/selector/s$i"; i=$((i + 1))
done

for d in "$corpus"/*/; do printf '%s %s\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"; done
