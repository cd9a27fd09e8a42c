#!/usr/bin/env python3
"""The scale fixture's objects, written to the testbed's real apiserver (standard library only).

Called by testbed/scale.sh; not meant to be run by hand. Subcommands:

  plan   DIR    kwok's config (its stages, plus one ClusterLogs per crash namespace) and the log files
                kwok serves for the crash-looping containers, from the captured bundles
  apply  DIR    fake nodes, namespaces, the catalog's ConfigMaps/Secrets/Services, Deployments (the
                controllers make the ReplicaSets and pods, the scheduler places them, kwok runs them)
  rollout DIR   second revisions (bad-rollout: the image its steps.sh ships), once the first is available
  freeze DIR    the crash-looping pods: their status and events, copied from what the real kubelet
                produced for the same scenario (bundle.json.gz), renamed and shifted to now
  count         progress: pods, scheduled, running, frozen
  delete        everything the fixture made (pods force-deleted: no kubelet confirms their end)

Layout: NAMESPACES namespaces scale-000..., each with one crash-looping Deployment (a catalog scenario,
cycling through the catalog) and healthy Deployments (the `healthy` scenario's template) filling it to
PODS/NAMESPACES pods; NODES fake nodes scale-node-000... managed by kwok. CRASHING pods crash-loop.
"""
import base64
import copy
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import http.client
import urllib.parse

TESTBED = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(TESTBED, "scenarios")
ENV = os.environ
NAMESPACES = int(ENV.get("SCALE_NAMESPACES", "100"))
NODES = int(ENV.get("SCALE_NODES", "200"))
PODS = int(ENV.get("SCALE_PODS", "10000"))
CRASHING = int(ENV.get("SCALE_CRASHING", "200"))
NODE_IP = ENV["NODE_IP"]
PKI = ENV["PKI"]
SERVER = f"{NODE_IP}:6443"
KUBECTL = ENV["KUBECTL"]
KUBECONFIG = ENV["KUBECONFIG_ADMIN"]
K8S_VERSION = ENV["K8S_VERSION"]
# The crash-looping pods' addresses (kwok gives the others addresses from SCALE_KWOK_CIDR).
FROZEN_NET = ENV.get("SCALE_FROZEN_NET", "10.232.192")

LABEL = "unloop.test/scale"  # on every object the fixture makes: "true"
FAKE = "unloop.test/fake-node"  # on fake nodes (kwok manages them; metrics-server skips them)
FROZEN = "unloop.test/frozen"  # on crash-looping pods: kwok leaves their status alone
MANAGER = "unloop-scale"
HEALTHY_NAMES = ["frontend", "catalog", "cart", "checkout", "ledger", "search-ui"]
HEALTHY_PER_NS = 4


def ns_name(i):
    return f"scale-{i:03d}"


def node_name(i):
    return f"scale-node-{i:03d}"


# --- the API ------------------------------------------------------------------------------------------

class Api:
    def __init__(self):
        ctx = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
        ctx.load_cert_chain(os.path.join(PKI, "admin.crt"), os.path.join(PKI, "admin.key"))
        self.ctx = ctx
        self.conn = None
        self.requests = 0

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(SERVER, context=self.ctx, timeout=60)
        return self.conn

    def call(self, method, path, body=None, ctype="application/json", ok=(200, 201), query=None):
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = {"Accept": "application/json", "User-Agent": "unloop-testbed-scale"}
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(5):
            try:
                c = self._conn()
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                text = r.read()
                self.requests += 1
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 4:
                    raise
                continue
            if r.status in (429, 500, 503) and attempt < 4:
                continue
            if r.status not in ok:
                raise RuntimeError(f"{method} {path}: {r.status} {text[:400].decode(errors='replace')}")
            return r.status, (json.loads(text) if text else None)

    def apply(self, obj):
        """Server-side apply: creates or updates, idempotent. An object whose immutable fields changed
        (a Service made headless) is deleted and created again."""
        path = obj_path(obj, named=True)
        q = {"fieldManager": MANAGER, "force": "true"}
        st, out = self.call("PATCH", path, obj, ctype="application/apply-patch+yaml", query=q, ok=(200, 201, 422))
        if st == 422:
            if "may not change once set" not in json.dumps(out) and "immutable" not in json.dumps(out):
                raise RuntimeError(f"PATCH {path}: 422 {json.dumps(out)[:400]}")
            self.call("DELETE", path, ok=(200, 202, 404))
            st, out = self.call("PATCH", path, obj, ctype="application/apply-patch+yaml", query=q)
        return out

    def list(self, path, **query):
        items, cont = [], None
        while True:
            q = dict(query, limit=500)
            if cont:
                q["continue"] = cont
            _, out = self.call("GET", path, query=q)
            items.extend(out.get("items") or [])
            cont = (out.get("metadata") or {}).get("continue")
            if not cont:
                return items


RESOURCES = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "Node"): ("/api/v1", "nodes", False),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "Event"): ("/api/v1", "events", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
}


def obj_path(obj, named):
    base, plural, namespaced = RESOURCES[(obj["apiVersion"], obj["kind"])]
    p = base
    if namespaced:
        p += f"/namespaces/{obj['metadata']['namespace']}"
    p += f"/{plural}"
    if named:
        p += f"/{obj['metadata']['name']}"
    return p


# --- the catalog --------------------------------------------------------------------------------------

def load_bundle(name):
    with gzip.open(os.path.join(SCENARIOS, name, "bundle.json.gz"), "rt") as f:
        return json.load(f)["state"]


def manifest_objects(name):
    """The scenario's manifest (and any extra manifest its steps apply) as JSON, through kubectl."""
    out = []
    for f in sorted(os.listdir(os.path.join(SCENARIOS, name))):
        if not f.endswith(".yaml") or f == "expect.yaml":
            continue
        text = subprocess.run([KUBECTL, "--kubeconfig", KUBECONFIG, "create", "--dry-run=client", "-o", "json",
                               "-f", os.path.join(SCENARIOS, name, f)], check=True, capture_output=True, text=True).stdout
        dec, pos = json.JSONDecoder(), 0
        while pos < len(text):  # one JSON document per object, one after the other
            if text[pos].isspace():
                pos += 1
                continue
            doc, pos = dec.raw_decode(text, pos)
            out.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return out


def troubled(pod):
    """A pod the real kubelet left crash-looping, failing to start, or waiting on an image or reference."""
    st = pod.get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        w = (cs.get("state") or {}).get("waiting")
        if cs.get("restartCount", 0) > 0 or (cs.get("state") or {}).get("terminated"):
            return True
        if w and w.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return True
    return False


def catalog():
    """The crash scenarios whose captured bundle holds a troubled pod owned by a Deployment."""
    out = []
    for name in sorted(os.listdir(SCENARIOS)):
        if name == "healthy" or not os.path.exists(os.path.join(SCENARIOS, name, "bundle.json.gz")):
            continue
        state = load_bundle(name)
        pods = [p for p in state["pods"] if troubled(p)]
        rs_owner = {rs["metadata"]["name"]: (rs["metadata"].get("ownerReferences") or [{}])[0].get("name")
                    for rs in state.get("replicaSets") or []}
        pods = [p for p in pods if (p["metadata"].get("ownerReferences") or [{}])[0].get("kind") == "ReplicaSet"
                and rs_owner.get(p["metadata"]["ownerReferences"][0]["name"])]
        if not pods:
            continue
        out.append(name)
    return out


def layout():
    """[(namespace, scenario, crash replicas)] with CRASHING crash-looping pods in all."""
    cat = catalog()
    if not cat:
        sys.exit("scale: no scenario bundles with a crash-looping Deployment pod (run testbed/capture.sh)")
    rows = [[ns_name(i), cat[i % len(cat)], 0] for i in range(NAMESPACES)]
    left, i = CRASHING, 0
    while left > 0:
        rows[i % NAMESPACES][2] += 1
        left -= 1
        i += 1
    return [tuple(r) for r in rows]


# --- renaming and time shifting --------------------------------------------------------------------------

TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


def parse_ts(s):
    m = TS.match(s)
    return dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc), m.group(2) or ""


def shifted(value, shift, subs):
    """A copy of a JSON value with every timestamp moved by `shift` and every string renamed."""
    if isinstance(value, dict):
        return {k: shifted(v, shift, subs) for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, shift, subs) for v in value]
    if isinstance(value, str):
        if TS.match(value):
            t, frac = parse_ts(value)
            return (t + shift).strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
        for pat, new in subs:
            value = pat.sub(new, value)
        return value
    return value


def word(s):
    return re.compile(r"(?<![A-Za-z0-9.-])" + re.escape(s) + r"(?![A-Za-z0-9-])")


def now():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


# --- plan: kwok's config and the logs it serves ----------------------------------------------------------

def plan(work):
    stages_dir = ENV["KWOK_STAGES"]
    docs = []
    for f in sorted(os.listdir(stages_dir)):
        with open(os.path.join(stages_dir, f)) as fh:
            docs.append(fh.read().strip())
    # Should a fake node ever miss its lease (a starved machine), the node controller marks its pods
    # not ready, and kwok's pod-ready stage only handles Pending pods: this one makes them ready again.
    docs.append(json.dumps({
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": "unloop-pod-reready"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": '.status.conditions.[] | select( .type == "Ready" ) | .status', "operator": "In", "values": ["False"]},
            ]},
            "delay": {"durationMilliseconds": 5000},
            "next": {"statusTemplate": "\n".join([
                "{{ $now := Now }}",
                "conditions:",
            ] + [f"- {{type: {t}, status: \"True\", lastTransitionTime: {{{{ $now | Quote }}}}}}" for t in
                 ("Initialized", "Ready", "ContainersReady", "PodScheduled")] + [
                "containerStatuses:",
                "{{ range .status.containerStatuses }}",
                "- name: {{ .name | Quote }}",
                "  image: {{ .image | Quote }}",
                "  ready: true",
                "  started: true",
                "  restartCount: {{ .restartCount }}",
                "  state:",
                "    running:",
                "      startedAt: {{ with .state.running }}{{ .startedAt | Quote }}{{ else }}{{ $now | Quote }}{{ end }}",
                "{{ end }}",
            ])},
        },
    }))
    logdir = os.path.join(work, "logs")
    os.makedirs(logdir, exist_ok=True)
    for ns, scenario, _ in layout():
        state = load_bundle(scenario)
        captured, _ = parse_ts(state["capturedAt"].split(".")[0] + "Z")
        logs = []
        for lg in state.get("logs") or []:
            # The CRI log format kwok reads: TIMESTAMP STREAM P|F TEXT. The time is the capture's:
            # `freeze` shifts the statuses by the same amount, so the lines land before the crash.
            path = os.path.join(logdir, f"{ns}-{lg['container']}.log")
            stamp = captured.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
            with open(path, "w") as fh:
                for line in lg["text"].splitlines():
                    fh.write(f"{stamp} stderr F {line}\n")
            logs.append({"containers": [lg["container"]], "logsFile": path, "previousLogsFile": path})
        if logs:
            docs.append(json.dumps({
                "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
                "metadata": {"name": f"{ns}-logs"},
                "spec": {"selector": {"matchNamespaces": [ns]}, "logs": logs},
            }))
    with open(os.path.join(work, "kwok.yaml"), "w") as fh:
        fh.write("\n---\n".join(docs) + "\n")


# --- apply: nodes, namespaces, workloads -------------------------------------------------------------------

def fake_node(i):
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": node_name(i),
            "labels": {LABEL: "true", FAKE: "true", "type": "kwok", "kubernetes.io/hostname": node_name(i),
                       "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "topology.kubernetes.io/zone": f"zone-{'abc'[i % 3]}"},
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": [{"key": FAKE, "value": "true", "effect": "NoSchedule"}]},
        # Kept on create (kwok's node-initialize stage fills in only what is missing): the versions of the
        # testbed's real node, so that the kubelet version unloop infers defaults from is a real one.
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": os.uname().release, "kubeletVersion": K8S_VERSION, "kubeProxyVersion": K8S_VERSION,
                         "containerRuntimeVersion": "containerd://1.6.20", "machineID": "", "bootID": "", "systemUUID": ""},
        },
    }


def place(template, frozen):
    """A pod template, pinned to the fake nodes (and only them)."""
    t = copy.deepcopy(template)
    spec = t["spec"]
    spec["nodeSelector"] = dict(spec.get("nodeSelector") or {}, **{FAKE: "true"})
    spec["tolerations"] = (spec.get("tolerations") or []) + [
        {"key": FAKE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    labels = t.setdefault("metadata", {}).setdefault("labels", {})
    if frozen:
        labels[FROZEN] = "true"
    else:
        labels.pop(FROZEN, None)
    return t


def strip(obj, ns):
    o = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": obj["metadata"]["name"], "namespace": ns}}
    for k in ("labels", "annotations"):
        if obj["metadata"].get(k):
            o["metadata"][k] = dict(obj["metadata"][k])
    o["metadata"].setdefault("labels", {})[LABEL] = "true"
    for k in ("spec", "data", "stringData", "type", "binaryData"):
        if k in obj:
            o[k] = copy.deepcopy(obj[k])
    if o["kind"] == "Service":
        for k in ("clusterIP", "clusterIPs"):
            o["spec"].pop(k, None)
    return o


def crash_revisions(scenario):
    """The crash Deployment: (first revision, second revision or None), each a Deployment object from the
    manifest; the second is the captured Deployment's template when the scenario rolled out a new one."""
    objs = manifest_objects(scenario)
    state = load_bundle(scenario)
    crashing = [p for p in state["pods"] if troubled(p)][0]
    rs_name = crashing["metadata"]["ownerReferences"][0]["name"]
    rs = next(r for r in state["replicaSets"] if r["metadata"]["name"] == rs_name)
    deploy_name = rs["metadata"]["ownerReferences"][0]["name"]
    first = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == deploy_name)
    images = lambda t: [c["image"] for c in t["spec"].get("initContainers", []) + t["spec"]["containers"]]
    second = None
    if images(first["spec"]["template"]) != images(rs["spec"]["template"]):
        second = copy.deepcopy(first)
        for c, rc in zip(second["spec"]["template"]["spec"].get("initContainers", []) + second["spec"]["template"]["spec"]["containers"],
                         rs["spec"]["template"]["spec"].get("initContainers", []) + rs["spec"]["template"]["spec"]["containers"]):
            c["image"] = rc["image"]
        dep = next((d for d in state.get("deployments") or [] if d["metadata"]["name"] == deploy_name), None)
        cause = ((dep or {}).get("metadata", {}).get("annotations") or {}).get("kubernetes.io/change-cause")
        if cause:
            second["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = cause
    others = [o for o in objs if not (o["kind"] == "Deployment" and o["metadata"]["name"] == deploy_name)
              and o["kind"] in ("ConfigMap", "Secret", "Service", "ServiceAccount")]
    return first, second, others


def healthy_template():
    objs = manifest_objects("healthy")
    return next(o for o in objs if o["kind"] == "Deployment")


def apply_all(work):
    api = Api()
    for i in range(NODES):
        api.apply(fake_node(i))
    print(f"scale: {NODES} fake nodes", file=sys.stderr)
    healthy = healthy_template()
    rows = layout()
    per_ns = PODS // NAMESPACES
    cache = {}
    second_revisions = []
    for ns, scenario, crash_replicas in rows:
        if scenario not in cache:
            cache[scenario] = crash_revisions(scenario)
        first, second, others = cache[scenario]
        api.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {LABEL: "true"}, "annotations": {"unloop.test/scenario": scenario}}})
        for o in others:
            api.apply(strip(o, ns))
        d = strip(first, ns)
        # With a second revision (a rollout that crashes), the first runs healthy until the rollout;
        # once rolled out (a second `up`), applying the first again would roll back: left as it is.
        d["spec"]["replicas"] = crash_replicas
        d["spec"]["template"] = place(d["spec"]["template"], frozen=second is None)
        exists = second is not None and api.call("GET", obj_path(d, named=True), ok=(200, 404))[0] == 200
        if not exists:
            api.apply(d)
        pods_here = crash_replicas
        if second is not None:
            d2 = strip(second, ns)
            d2["spec"]["replicas"] = crash_replicas
            # maxSurge = replicas: every replica of the new revision is created (and crashes) while the
            # old ones keep serving (maxUnavailable 0), as the catalog's rollout does with one replica.
            d2["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": crash_replicas, "maxUnavailable": 0}}
            d2["spec"]["template"] = place(d2["spec"]["template"], frozen=True)
            second_revisions.append(d2)
            pods_here += crash_replicas
        left = max(per_ns - pods_here, 0)
        for k in range(HEALTHY_PER_NS):
            name = HEALTHY_NAMES[k]
            replicas = left // HEALTHY_PER_NS + (1 if k < left % HEALTHY_PER_NS else 0)
            h = strip(healthy, ns)
            h["metadata"]["name"] = name
            h["metadata"]["labels"]["app"] = name
            h["spec"]["replicas"] = replicas
            h["spec"]["selector"] = {"matchLabels": {"app": name}}
            h["spec"]["template"] = place(h["spec"]["template"], frozen=False)
            h["spec"]["template"]["metadata"]["labels"]["app"] = name
            api.apply(h)
            api.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": {LABEL: "true", "app": name}},
                       # Headless: the testbed's service range is a /24, and kube-proxy has nothing to program.
                       "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    with open(os.path.join(work, "rollouts.json"), "w") as fh:
        json.dump(second_revisions, fh)
    print(f"scale: {len(rows)} namespaces applied ({api.requests} requests)", file=sys.stderr)


def rollout(work):
    api = Api()
    with open(os.path.join(work, "rollouts.json")) as fh:
        revs = json.load(fh)
    for d in revs:
        api.apply(d)
    print(f"scale: {len(revs)} rollouts to a crashing revision", file=sys.stderr)


# --- freeze: the crash-looping pods' status and events ----------------------------------------------------

def freeze(work):
    api = Api()
    rows = {ns: scenario for ns, scenario, _ in layout()}
    pods = api.list("/api/v1/pods", labelSelector=f"{FROZEN}=true")
    # A frozen pod being deleted (a scale-down, a rollout) waits for a kubelet that never confirms.
    for p in pods:
        if p["metadata"].get("deletionTimestamp"):
            api.call("DELETE", f"/api/v1/namespaces/{p['metadata']['namespace']}/pods/{p['metadata']['name']}",
                     {"gracePeriodSeconds": 0}, ok=(200, 404))
    pods = [p for p in pods if p["metadata"]["namespace"] in rows and p["spec"].get("nodeName")
            and not p["metadata"].get("deletionTimestamp")]
    bundles = {}
    t_now = now()
    events = 0
    for n, pod in enumerate(sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))):
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        node = pod["spec"]["nodeName"]
        scenario = rows[ns]
        if scenario not in bundles:
            bundles[scenario] = load_bundle(scenario)
        state = bundles[scenario]
        src = [p for p in state["pods"] if troubled(p)][0]
        old_ns, old_name, old_uid = src["metadata"]["namespace"], src["metadata"]["name"], src["metadata"]["uid"]
        old_rs = src["metadata"]["ownerReferences"][0]["name"]
        new_rs = pod["metadata"]["ownerReferences"][0]["name"]
        captured, _ = parse_ts(state["capturedAt"].split(".")[0] + "Z")
        shift = t_now - captured
        subs = [(re.compile(re.escape(old_uid)), uid), (word(old_name), name), (word(old_rs), new_rs),
                (word(old_ns), ns), (word(src["spec"].get("nodeName") or "unloop-node"), node)]
        status = shifted(src["status"], shift, subs)
        status["hostIP"] = NODE_IP
        status["hostIPs"] = [{"ip": NODE_IP}]
        if status.get("podIP"):
            ip = f"{FROZEN_NET}.{n % 250 + 1}" if n < 250 else f"{FROZEN_NET[:-1]}{int(FROZEN_NET[-1]) + n // 250}.{n % 250 + 1}"
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        for c in status.get("conditions") or []:
            c.pop("observedGeneration", None)
        status.pop("observedGeneration", None)
        api.call("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status},
                 ctype="application/merge-patch+json")
        for ev in state.get("events") or []:
            inv = ev.get("involvedObject") or {}
            if inv.get("kind") != "Pod" or inv.get("name") != old_name or ev.get("reason") == "Scheduled":
                continue
            e = shifted({k: ev.get(k) for k in ("reason", "message", "type", "count", "firstTimestamp", "lastTimestamp",
                                              "source", "reportingComponent", "reportingInstance")}, shift, subs)
            e = {k: v for k, v in e.items() if v is not None}
            e.update({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{hashlib.sha1((ev['metadata']['name'] + uid).encode()).hexdigest()[:16]}", "namespace": ns,
                             "labels": {LABEL: "true"}},
                "involvedObject": {k: v for k, v in {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns, "uid": uid,
                                                     "fieldPath": inv.get("fieldPath")}.items() if v},
            })
            e["source"] = {"component": (ev.get("source") or {}).get("component") or "kubelet", "host": node}
            if e.get("reportingInstance"):
                e["reportingInstance"] = node
            st, _ = api.call("POST", f"/api/v1/namespaces/{ns}/events", e, ok=(201, 409))
            if st == 409:  # a second `up`: the same event, refreshed
                api.call("DELETE", f"/api/v1/namespaces/{ns}/events/{e['metadata']['name']}", ok=(200, 404))
                api.call("POST", f"/api/v1/namespaces/{ns}/events", e, ok=(201,))
            events += 1
    print(f"scale: {len(pods)} crash-looping pods frozen with {events} kubelet events ({api.requests} requests)", file=sys.stderr)
    return len(pods)


# --- count and delete ---------------------------------------------------------------------------------------

def count():
    """pods, scheduled, running (kwok's), frozen: from metadata-only lists with field selectors."""
    api = Api()
    meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

    def n(**sel):
        total, cont = 0, None
        while True:
            q = dict(sel, limit=5000)
            if cont:
                q["continue"] = cont
            c = api._conn()
            c.request("GET", "/api/v1/pods?" + urllib.parse.urlencode(q), headers={"Accept": meta})
            r = c.getresponse()
            out = json.loads(r.read())
            total += sum(1 for i in out.get("items") or [] if i["metadata"]["namespace"].startswith("scale-"))
            cont = (out.get("metadata") or {}).get("continue")
            if not cont:
                return total
    print(n(), n(fieldSelector="spec.nodeName!="), n(fieldSelector="status.phase=Running", labelSelector=f"{FROZEN}!=true"),
          n(labelSelector=f"{FROZEN}=true"))


def delete():
    api = Api()
    nss = [n["metadata"]["name"] for n in api.list("/api/v1/namespaces", labelSelector=f"{LABEL}=true")]
    for ns in nss:
        # Workloads first (their controllers would recreate pods), then every pod at once: nothing on a
        # fake node confirms a graceful end (kwok ignores the frozen ones).
        for base, plural in (("/apis/apps/v1", "deployments"), ("/apis/apps/v1", "replicasets")):
            api.call("DELETE", f"{base}/namespaces/{ns}/{plural}", {"propagationPolicy": "Orphan"}, ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{ns}/pods", {"gracePeriodSeconds": 0}, ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))
    for n in api.list("/api/v1/nodes", labelSelector=f"{FAKE}=true"):
        api.call("DELETE", f"/api/v1/nodes/{n['metadata']['name']}", ok=(200, 404))
    print(f"scale: deleted {len(nss)} namespaces and the fake nodes", file=sys.stderr)


def remaining():
    api = Api()
    nss = api.list("/api/v1/namespaces", labelSelector=f"{LABEL}=true")
    nodes = api.list("/api/v1/nodes", labelSelector=f"{FAKE}=true")
    leases = [l for l in api.list("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
              if l["metadata"]["name"].startswith("scale-node-")]
    for l in leases:
        api.call("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{l['metadata']['name']}", ok=(200, 404))
    print(f"{len(nss)} {len(nodes)}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "plan":
        plan(sys.argv[2])
    elif cmd == "apply":
        apply_all(sys.argv[2])
    elif cmd == "rollout":
        rollout(sys.argv[2])
    elif cmd == "freeze":
        freeze(sys.argv[2])
    elif cmd == "count":
        count()
    elif cmd == "delete":
        delete()
    elif cmd == "remaining":
        remaining()
    elif cmd == "layout":
        for r in layout():
            print(*r)
    else:
        sys.exit(f"unknown: {cmd}")
