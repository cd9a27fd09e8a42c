#!/usr/bin/env python3
"""The scale benchmark: unloop live, unloop on a snapshot of the same state, and k8sgpt, in one run.

Run through bench/run.sh (which prepares the testbed, the fixture and the binaries). For each command:
wall time (median of BENCH_RUNS runs after one warm-up), peak RSS (the process's own ru_maxrss, from
wait4), and the API requests it made (the apiserver's audit log, every request at Metadata level:
the events of the admin user between the run's start and end offsets in the log). Prints a table, the
ratios and the targets; writes everything to $BENCH_OUT/results.json.
"""
import gzip
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
AUDIT = os.environ["AUDIT_LOG"]
OUT = os.environ["BENCH_OUT"]
UNLOOP = os.environ["UNLOOP_BIN"]
K8SGPT = os.environ["K8SGPT_BIN"]
K8SGPT_KIND = os.environ.get("K8SGPT_KIND", "k8sgpt")  # "k8sgpt" or "k8sgpt-pattern"
ADMIN = os.environ.get("ADMIN_USER", "unloop-testbed-admin")
SNAPSHOT = os.path.join(OUT, "scale-snapshot.json.gz")
PAGE = 1000  # unloop's list page size (crates/unloop-source/src/live.rs)
TARGETS = {"live_wall": 2.0, "live_rss_mb": 150.0, "vs_k8sgpt": 5.0, "bundle_wall": 0.5}


def audit_size():
    return os.path.getsize(AUDIT)


def audit_events(start, end, agent):
    """The admin user's requests logged between two offsets (ResponseComplete or Panic stage) whose
    user agent matches `agent` (a regex; unloop sends none: "")."""
    out = []
    with open(AUDIT, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    for line in data.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("user", {}).get("username") != ADMIN or e.get("stage") not in ("ResponseComplete", "Panic"):
            continue
        if not re.match(agent, e.get("userAgent", "")):
            continue
        out.append(e)
    return out


def shape(e):
    """GET pods (list), GET pods/log, ... : verb, resource, subresource."""
    ref = e.get("objectRef") or {}
    res = ref.get("resource") or e.get("requestURI", "").split("?")[0]
    if ref.get("subresource"):
        res += "/" + ref["subresource"]
    return f"{e.get('verb')} {res}"


def apiserver_cpu():
    """CPU seconds the kube-apiserver has used so far (user + system), from /proc."""
    try:
        with open(os.environ["APISERVER_PIDFILE"]) as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (KeyError, OSError, ValueError, IndexError):
        return float("nan")


def run_once(argv, agent, env=None):
    t0 = time.perf_counter()
    a0 = audit_size()
    s0 = apiserver_cpu()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    server_cpu = apiserver_cpu() - s0
    cpu = ru.ru_utime + ru.ru_stime
    code = os.waitstatus_to_exitcode(status)
    time.sleep(1.0)  # the audit backend writes a request's ResponseComplete as it finishes; let it land
    events = audit_events(a0, audit_size(), agent)
    return {"wall": wall, "cpu": cpu, "server_cpu": server_cpu, "rss_kb": ru.ru_maxrss, "exit": code,
            "requests": len(events),
            "shapes": Counter(shape(e) for e in events), "agents": Counter(e.get("userAgent", "") for e in events),
            "codes": Counter(str((e.get("responseStatus") or {}).get("code")) for e in events),
            "stderr": err.decode(errors="replace")[-2000:]}


def measure(name, argv, agent, ok_exits=(0, 1)):
    print(f"bench: {name}: {' '.join(argv)} (1 warm-up + {RUNS} runs)", file=sys.stderr)
    warm = run_once(argv, agent)
    if warm["exit"] not in ok_exits:
        sys.exit(f"bench: {name} exited {warm['exit']}:\n{warm['stderr']}")
    runs = []
    for i in range(RUNS):
        r = run_once(argv, agent)
        if r["exit"] not in ok_exits:
            sys.exit(f"bench: {name} exited {r['exit']}:\n{r['stderr']}")
        runs.append(r)
        print(f"bench:   run {i + 1}: {r['wall']:.3f} s (cpu {r['cpu']:.2f} s, apiserver cpu {r['server_cpu']:.2f} s), "
              f"{r['rss_kb'] / 1024:.1f} MB, {r['requests']} requests", file=sys.stderr)
    walls = [r["wall"] for r in runs]
    return {
        "name": name, "argv": argv, "runs": RUNS,
        "wall_median": statistics.median(walls), "wall_min": min(walls), "wall_max": max(walls),
        "rss_mb_max": max(r["rss_kb"] for r in runs) / 1024,
        "cpu_median": statistics.median(r["cpu"] for r in runs),
        "server_cpu_median": statistics.median(r["server_cpu"] for r in runs),
        "requests_median": statistics.median(r["requests"] for r in runs),
        "requests_max": max(r["requests"] for r in runs),
        "shapes": dict(runs[-1]["shapes"].most_common()), "agents": dict(runs[-1]["agents"]),
        "codes": dict(runs[-1]["codes"]),
    }


LIST_PATHS = {
    "pods": "/api/v1/pods", "events": "/api/v1/events", "nodes": "/api/v1/nodes",
    "replicaSets": "/apis/apps/v1/replicasets", "deployments": "/apis/apps/v1/deployments",
    "statefulSets": "/apis/apps/v1/statefulsets", "daemonSets": "/apis/apps/v1/daemonsets",
    "jobs": "/apis/batch/v1/jobs", "controllerRevisions": "/apis/apps/v1/controllerrevisions",
    "services": "/api/v1/services", "endpointSlices": "/apis/discovery.k8s.io/v1/endpointslices",
    "configMaps": "/api/v1/configmaps", "secrets": "/api/v1/secrets",
}


def cluster_count(path):
    """How many objects a list would return, from the apiserver (one item and remainingItemCount)."""
    out = subprocess.run([os.environ.get("KUBECTL", "kubectl"), "get", "--raw", f"{path}?limit=1"],
                         capture_output=True, text=True, check=True).stdout
    doc = json.loads(out)
    return len(doc.get("items") or []) + int(doc["metadata"].get("remainingItemCount") or 0)


def expected_requests(snapshot):
    """The issue's bound: kinds x pages (of what the cluster holds, not of what unloop kept) + the
    logs needed; and the configz reads unloop also makes (one per group of alike nodes)."""
    with gzip.open(snapshot, "rt") as f:
        state = json.load(f)["state"]
    kinds = {k: cluster_count(p) for k, p in LIST_PATHS.items()}
    pages = {k: max(1, math.ceil(n / PAGE)) for k, n in kinds.items()}
    log_gaps = [g for g in state.get("gaps") or [] if g.get("what", "").startswith("logs of")]
    logs = len(state.get("logs") or []) + len(log_gaps)
    configz = sum(1 for c in (state.get("kubeletConfigs") or {}).values() if not c.get("readFrom"))
    configz += sum(1 for g in state.get("gaps") or []
                   if g.get("what", "").startswith("kubelet config of node")
                   and not g.get("why", "").startswith("read from the alike node"))
    return {"objects": kinds, "pages": pages, "list_requests": sum(pages.values()), "logs": logs,
            "configz": configz, "bound": sum(pages.values()) + logs}


def main():
    os.makedirs(OUT, exist_ok=True)
    load = os.getloadavg()
    print(f"bench: load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)
    # The snapshot of the same state (its own requests are not measured).
    subprocess.run([UNLOOP, "snapshot", SNAPSHOT, "-A"], check=True, stdout=subprocess.DEVNULL)
    exp = expected_requests(SNAPSHOT)
    # Requests are told apart by user agent too, so that another client of the admin user meanwhile
    # (a test, a person) is not counted: unloop sends unloop/VERSION; k8sgpt's starts with its name.
    unloop_agent = os.environ.get("UNLOOP_AGENT", r"^$|^unloop|^kube")
    k8sgpt_agent = os.environ.get("K8SGPT_AGENT", r"^k8sgpt")
    rows = [
        measure("unloop diagnose -A (live)", [UNLOOP, "diagnose", "-A"], unloop_agent),
        measure("unloop diagnose --from (bundle)", [UNLOOP, "diagnose", "--from", SNAPSHOT], unloop_agent),
    ]
    label = "k8sgpt analyze" if K8SGPT_KIND == "k8sgpt" else "k8sgpt-pattern (k8sgpt analyze's requests)"
    rows.append(measure(label, [K8SGPT, "analyze"] if K8SGPT_KIND == "k8sgpt" else [K8SGPT], k8sgpt_agent, ok_exits=(0,)))
    if K8SGPT_KIND == "k8sgpt":
        rows.append(measure("k8sgpt analyze --filter Pod", [K8SGPT, "analyze", "--filter", "Pod"], k8sgpt_agent, ok_exits=(0,)))
    else:
        rows.append(measure("k8sgpt-pattern --filter Pod", [K8SGPT, "--filter", "Pod"], k8sgpt_agent, ok_exits=(0,)))
    live, bundle, k8sgpt = rows[0], rows[1], rows[2]
    ratios = {
        "k8sgpt_vs_unloop_live_wall": k8sgpt["wall_median"] / live["wall_median"],
        "k8sgpt_pod_vs_unloop_live_wall": rows[3]["wall_median"] / live["wall_median"],
        "unloop_live_vs_bundle_wall": live["wall_median"] / bundle["wall_median"],
        "k8sgpt_vs_unloop_live_requests": k8sgpt["requests_median"] / max(live["requests_median"], 1),
    }
    checks = [
        ("unloop diagnose -A wall < 2 s", live["wall_median"] < TARGETS["live_wall"], f"{live['wall_median']:.2f} s"),
        ("unloop diagnose -A peak RSS < 150 MB", live["rss_mb_max"] < TARGETS["live_rss_mb"], f"{live['rss_mb_max']:.0f} MB"),
        ("unloop >= 5x faster than k8sgpt", ratios["k8sgpt_vs_unloop_live_wall"] >= TARGETS["vs_k8sgpt"],
         f"{ratios['k8sgpt_vs_unloop_live_wall']:.1f}x"),
        ("unloop diagnose --from wall < 0.5 s", bundle["wall_median"] < TARGETS["bundle_wall"], f"{bundle['wall_median']:.2f} s"),
        ("requests <= kinds x pages + logs", live["requests_max"] <= exp["bound"],
         f"{live['requests_max']:.0f} vs {exp['bound']} (+{exp['configz']} configz reads outside the bound)"),
    ]
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_before": load,
              "load_after": os.getloadavg(), "rows": rows, "ratios": ratios, "expected": exp,
              "checks": [{"what": c[0], "ok": c[1], "value": c[2]} for c in checks], "k8sgpt_kind": K8SGPT_KIND}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(result, f, indent=2)

    o = exp["objects"]
    print()
    print(f"Scale fixture: {o['pods']} pods, {o['events']} events, {o['nodes']} nodes, {o['replicaSets']} ReplicaSets, "
          f"{o['deployments']} Deployments, {o['services']} Services, {o['endpointSlices']} EndpointSlices, "
          f"{o['configMaps']} ConfigMaps, {o['secrets']} Secrets; {RUNS} runs each after a warm-up; "
          f"load average {load[0]:.2f} before.")
    print()
    print("| command | wall median | min - max | own CPU | apiserver CPU | peak RSS | API requests |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['wall_median']:.3f} s | {r['wall_min']:.3f} - {r['wall_max']:.3f} s | "
              f"{r['cpu_median']:.2f} s | {r['server_cpu_median']:.2f} s | "
              f"{r['rss_mb_max']:.1f} MB | {r['requests_median']:.0f} |")
    print()
    print(f"- k8sgpt / unloop live, wall: {ratios['k8sgpt_vs_unloop_live_wall']:.1f}x "
          f"(--filter Pod: {ratios['k8sgpt_pod_vs_unloop_live_wall']:.1f}x); requests: {ratios['k8sgpt_vs_unloop_live_requests']:.1f}x")
    print(f"- unloop live / unloop bundle, wall: {ratios['unloop_live_vs_bundle_wall']:.1f}x")
    print(f"- request bound for unloop: {exp['list_requests']} list pages ({', '.join(f'{k} {v}' for k, v in exp['pages'].items() if v > 1)}"
          f"; 1 for each other kind) + {exp['logs']} logs = {exp['bound']}; configz reads: {exp['configz']}")
    print()
    print("Targets:")
    for what, ok, value in checks:
        print(f"  [{'ok' if ok else 'MISS'}] {what}: {value}")
    print()
    for r in rows:
        print(f"{r['name']}: requests by kind ({', '.join(f'{k}: {v}' for k, v in r['shapes'].items())}); "
              f"status codes {r['codes']}")
    if K8SGPT_KIND != "k8sgpt":
        print()
        print("k8sgpt itself could not be built here (the Go module proxy refuses github.com/k8sgpt-ai/k8sgpt);")
        print("bench/k8sgpt-pattern makes the requests k8sgpt analyze makes (see bench/README.md). Set K8SGPT_BIN to a")
        print("real k8sgpt to measure it instead.")
    print(f"\nresults: {os.path.join(OUT, 'results.json')}")


if __name__ == "__main__":
    main()
