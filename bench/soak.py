#!/usr/bin/env python3
"""The agent's soak (not a test: it reports, nothing fails). Run through `bench/agent.sh soak`.

One `unloop agent` (out of the cluster, as bench/agent.py runs it, with a webhook receiver on
127.0.0.1) watches the whole cluster for SOAK_S seconds (3600) but publishes only for the namespaces
soak-1 ... soak-N (SOAK_PREFIX: another prefix, for a second soak beside the first). Each of those holds a copy of one of the catalog's crash scenarios (SOAK_SCENARIOS).
In a loop, every cycle:

  1. the scenarios' workloads are created (new uids, so new CrashDiagnosis resources);
  2. the cycle waits until each has been notified (at most CYCLE_WAIT_S, 240), then a few seconds
     more to catch a late duplicate;
  3. the workloads are deleted (their resources go with them by garbage collection) and the cycle
     waits until their pods are gone.

What is counted, from the notifications the receiver got (each tagged with the cycle it arrived in):
  missed      a scenario of a cycle with no `diagnosed` notification for its cause;
  duplicated  two or more `diagnosed` notifications for one workload, container and cause in a cycle;
  wrong cause a `diagnosed` notification whose cause is not the scenario's.
Memory: the agent's VmRSS every 10 s. "Flat" compares the median of the last 10 minutes with the
median of the 10 minutes after the first cycle (the warm-up), and gives the highest sample too.
"""
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent as bench  # noqa: E402  (the receiver, the agent's start, kubectl)

KUBECTL, REPO, OUT = bench.KUBECTL, bench.REPO, bench.OUT
DEFAULT = "oom-limit,missing-env-var,command-not-found,missing-configmap,python-missing-module,segfault"


def docs(text):
    return [d for d in text.split("\n---\n") if d.strip()]


def kube(args, stdin=None):
    return subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True)


def expected_cause(name):
    for line in open(os.path.join(REPO, "testbed/scenarios", name, "expect.yaml")):
        if line.startswith("cause:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit("soak: %s has no cause in its expect.yaml" % name)


def main():
    soak_s = int(os.environ.get("SOAK_S", "3600"))
    cycle_wait = int(os.environ.get("CYCLE_WAIT_S", "240"))
    names = os.environ.get("SOAK_SCENARIOS", DEFAULT).split(",")
    slots = []  # (namespace, scenario, cause, namespace manifest, workload manifest)
    for i, name in enumerate(names, 1):
        ns = "%s-%d" % (os.environ.get("SOAK_PREFIX", "soak"), i)
        text = open(os.path.join(REPO, "testbed/scenarios", name, "manifest.yaml")).read().replace(name, ns)
        parts = docs(text)
        nsdoc = [d for d in parts if "\nkind: Namespace" in "\n" + d]
        rest = [d for d in parts if d not in nsdoc]
        slots.append((ns, name, expected_cause(name), "\n---\n".join(nsdoc), "\n---\n".join(rest)))
    for ns, _, _, nsdoc, _ in slots:
        kube(["apply", "-f", "-"], nsdoc)

    rec = bench.Receiver()
    log = os.path.join(OUT, "agent-soak.log")
    agent, listen = bench.start_agent(
        ["--webhook", rec.url, "--namespace", ",".join(s[0] for s in slots)], log)
    rss, cycles = [], []
    cycle_of = []  # the cycle number in effect when each notification arrived: index into rec.got
    try:
        assert bench.wait(lambda: bench.get(listen, "/readyz")[0] == 200, 300), "the agent never got ready"
        t0 = time.time()
        next_sample = 0.0
        n = 0

        def sample():
            nonlocal next_sample
            now = time.time()
            if now >= next_sample:
                rss.append((round(now - t0, 1), bench.rss_kb(agent.pid)))
                next_sample = now + 10

        def tag():
            while len(cycle_of) < len(rec.got):
                cycle_of.append(n)

        while time.time() - t0 < soak_s:
            n += 1
            start = time.time()
            for ns, _, _, _, work in slots:
                r = kube(["apply", "-f", "-"], work)
                if r.returncode != 0:
                    raise SystemExit("soak: apply in %s failed: %s" % (ns, r.stderr.strip()))

            def notified():
                tag()
                got = {b.get("namespace") for (t, b), c in zip(rec.got, cycle_of) if c == n and b.get("event") == "diagnosed"}
                return all(s[0] in got for s in slots)

            end = time.time() + cycle_wait
            while time.time() < end and not notified():
                sample()
                time.sleep(1)
            all_in = notified()
            waited = time.time() - start
            for _ in range(10):  # a late duplicate arrives within the debounce and a retry
                sample()
                time.sleep(1)
            tag()
            for ns, _, _, _, work in slots:
                kube(["delete", "-f", "-", "--ignore-not-found", "--grace-period=1", "--wait=false"], work)
            gone_by = time.time() + 180
            while time.time() < gone_by:
                sample()
                left = "".join(kube(["get", "pods", "--no-headers", "-o", "name", "-n", s[0]]).stdout for s in slots)
                if not left.strip():
                    break
                time.sleep(2)
            tag()
            # The cluster's events: the API server keeps them for its --event-ttl (1 h by default)
            # after their workload is gone, and the agent's events watch holds what it keeps.
            events = len(kube(["get", "events", "-A", "-o", "name"]).stdout.split())
            cycles.append({"cycle": n, "all_notified": all_in, "to_all_notified_s": round(waited, 1),
                           "length_s": round(time.time() - start, 1), "t": round(time.time() - t0, 1),
                           "cluster_events": events, "rss_kb": rss[-1][1] if rss else None})
            print("cycle %d: all notified %s in %.0f s, rss %.1f MB" % (n, all_in, waited, rss[-1][1] / 1024), flush=True)
        tag()
        time.sleep(5)
    finally:
        agent.terminate()
        agent.wait()
        for ns, _, _, _, _ in slots:
            kube(["delete", "namespace", ns, "--ignore-not-found", "--wait=false"])

    # What the receiver got, by cycle.
    by_cycle = defaultdict(list)
    for (t, b), c in zip(rec.got, cycle_of):
        by_cycle[c].append(b)
    missed, duplicated, wrong = [], [], []
    for c in range(1, n + 1):
        got = [b for b in by_cycle[c] if b.get("event") == "diagnosed"]
        keys = Counter((b.get("namespace"), b.get("workload"), b.get("container"), b.get("cause")) for b in got)
        duplicated += [{"cycle": c, "key": list(k), "count": v} for k, v in keys.items() if v > 1]
        for ns, name, cause, _, _ in slots:
            mine = [b for b in got if b.get("namespace") == ns]
            if not any(b.get("cause") == cause for b in mine):
                missed.append({"cycle": c, "namespace": ns, "scenario": name, "got": sorted({b.get("cause") for b in mine})})
            wrong += [{"cycle": c, "namespace": ns, "cause": b.get("cause")} for b in mine if b.get("cause") != cause]
    first_end = cycles[0]["length_s"] if cycles else 0
    warm = [kb for t, kb in rss if first_end <= t < first_end + 600]
    last = [kb for t, kb in rss if t >= rss[-1][0] - 600] if rss else []
    mb = lambda kb: round(kb / 1024, 1)
    res = {
        "soak_s": soak_s, "scenarios": {s[0]: {"scenario": s[1], "cause": s[2]} for s in slots},
        "cycles": len(cycles), "cycles_all_notified": sum(1 for c in cycles if c["all_notified"]),
        "notifications": dict(Counter(b.get("event") for _, b in rec.got)),
        "expected_diagnosed": len(cycles) * len(slots),
        "missed": missed, "duplicated": duplicated, "wrong_cause": wrong,
        "to_all_notified_s": bench.pct([c["to_all_notified_s"] for c in cycles]),
        "rss_mb": {"warm_median": mb(statistics.median(warm)) if warm else None,
                   "last_10min_median": mb(statistics.median(last)) if last else None,
                   "max": mb(max(kb for _, kb in rss)) if rss else None,
                   "min_after_warmup": mb(min(kb for t, kb in rss if t >= first_end)) if rss else None},
        "rss_samples": [(t, mb(kb)) for t, kb in rss],
        "cycle_rows": cycles,
    }
    if warm and last:
        res["rss_last_over_warm"] = round(statistics.median(last) / statistics.median(warm), 3)
    # Memory against the events the cluster holds: the slope of RSS over the cluster's event count
    # (least squares over the cycles after the first), and the count's own growth.
    pts = [(c["cluster_events"], c["rss_kb"]) for c in cycles[1:] if c.get("rss_kb")]
    if len(pts) > 2 and len({e for e, _ in pts}) > 1:
        me = statistics.mean(e for e, _ in pts)
        mr = statistics.mean(r for _, r in pts)
        slope = sum((e - me) * (r - mr) for e, r in pts) / sum((e - me) ** 2 for e, _ in pts)
        res["rss_kb_per_cluster_event"] = round(slope, 2)
    ev_warm = [c["cluster_events"] for c in cycles if first_end <= c["t"] < first_end + 600]
    ev_last = [c["cluster_events"] for c in cycles if cycles and c["t"] >= cycles[-1]["t"] - 600]
    if ev_warm and ev_last:
        res["cluster_events"] = {"warm_median": statistics.median(ev_warm),
                                 "last_10min_median": statistics.median(ev_last)}
    json.dump(res, open(os.path.join(OUT, "soak.json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k not in ("rss_samples", "cycle_rows")}, indent=1))


if __name__ == "__main__":
    main()
