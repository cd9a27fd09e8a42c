#!/usr/bin/env python3
"""The agent's benchmark (not a test: nothing fails when a target is missed). Run through bench/agent.sh.

latency  Copies of the catalog's steady crash scenarios are created, each in a namespace of its own
         (`ba-NAME`), while one `unloop agent` (out of the cluster, the same watches as in it) runs with
         a webhook receiver on 127.0.0.1. For each: the time from the kubelet's first back-off status
         (waiting reason CrashLoopBackOff, or the scenario's own trouble reason when it never
         crash-loops: ImagePullBackOff, CreateContainerConfigError, ...) as a `kubectl get -w` sees it,
         to the CrashDiagnosis appearing (another watch) and to the notification arriving. Median and
         worst. The agent runs with its defaults (debounce 3s).
scale    On the scale fixture (testbed/scale.sh up): the agent's resident memory while it watches every
         pod (VmRSS sampled each second after it is ready and has published, and VmHWM), against
         `unloop diagnose -A` on the same state (ru_maxrss); and the agent's API requests per minute
         while nothing changes (the apiserver's audit log: requests started in the window, by verb).
rest     On the testbed as it is (the scenarios applied, nobody changing anything): the agent's API
         requests over REST_S (300) seconds once it has published what it found, by verb and
         resource (watch renewals, the Lease, the rest), against `unloop diagnose -A` run once a
         minute (its requests per run, the median of BASELINE_RUNS runs, each counted alone).

Requests are counted from the apiserver's own audit log ($STATE/audit.log, every request at Metadata
level), not from the agent's metrics: the process under test does not count for itself. Both
programs run as a service account of their own (ba-bench/unloop-bench, bound to cluster-admin for
the run, deleted afterwards), so the admin user's traffic (other tests, kubectl) is not counted.
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer

UNLOOP = os.environ["UNLOOP_BIN"]
KUBECTL = os.environ.get("KUBECTL", "kubectl")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("BENCH_OUT", "/tmp/unloop-bench-agent")
AUDIT = os.environ.get("AUDIT_LOG", "")
os.makedirs(OUT, exist_ok=True)
# Back-off or trouble reasons the kubelet reports, CrashLoopBackOff first.
TROUBLE = ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
           "CreateContainerError", "RunContainerError", "InvalidImageName", "ErrImageNeverPull"]


def kubectl(*args, check=True):
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, check=check).stdout


class Receiver:
    def __init__(self):
        self.got = []  # (time, body)
        me = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                me.got.append((time.time(), json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = HTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# Namespaces the benchmark's agents never diagnose besides kube-system (BENCH_AGENT_EXCLUDE, comma-
# separated): on a shared testbed, namespaces another agent is responsible for.
EXCLUDE = ",".join(["kube-system", *[n for n in os.environ.get("BENCH_AGENT_EXCLUDE", "").split(",") if n]])


def start_agent(extra, log, env=None, binary=None):
    listen = "127.0.0.1:%d" % free_port()
    p = subprocess.Popen([binary or UNLOOP, "agent", "--listen", listen, "--exclude-namespace", EXCLUDE, *extra],
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
    return p, listen


# BENCH_NS: the benchmark's namespace (its service account, the rest run's Lease); another name keeps
# two benchmarks on one testbed apart.
BENCH_NS, BENCH_SA = os.environ.get("BENCH_NS", "ba-bench"), "unloop-bench"
BENCH_USER = "system:serviceaccount:%s:%s" % (BENCH_NS, BENCH_SA)


class Identity:
    """A service account of the benchmark's own, and a kubeconfig with its token: its requests are
    told apart from everyone else's in the audit log by user name."""

    def __enter__(self):
        kubectl("create", "namespace", BENCH_NS, check=False)
        kubectl("create", "serviceaccount", "-n", BENCH_NS, BENCH_SA, check=False)
        kubectl("create", "clusterrolebinding", BENCH_NS, "--clusterrole=cluster-admin",
                "--serviceaccount=%s:%s" % (BENCH_NS, BENCH_SA), check=False)
        token = kubectl("create", "token", "-n", BENCH_NS, BENCH_SA, "--duration=2h").strip()
        cfg = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json"))
        cfg["users"] = [{"name": BENCH_SA, "user": {"token": token}}]
        cfg["contexts"][0]["context"]["user"] = BENCH_SA
        self.kubeconfig = os.path.join(OUT, "bench.kubeconfig")
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        self.env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        return self

    def __exit__(self, *exc):
        kubectl("delete", "clusterrolebinding", BENCH_NS, "--ignore-not-found", check=False)
        kubectl("delete", "namespace", BENCH_NS, "--wait=false", "--ignore-not-found", check=False)
        os.unlink(self.kubeconfig)


def get(listen, path):
    try:
        with urllib.request.urlopen("http://%s%s" % (listen, path), timeout=5) as r:
            return r.status, r.read().decode()
    except Exception:
        return None, ""


def metric(listen, name):
    _, text = get(listen, "/metrics")
    for l in text.splitlines():
        if l.startswith(name + " "):
            return float(l.split()[1])
    return None


def wait(pred, limit):
    end = time.time() + limit
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.5)
    return pred()


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(field + ":"):
                return int(l.split()[1])
    return 0


def watch_lines(args, sink):
    """Runs `kubectl get -w ARGS -o jsonpath=...`, calling sink(time, line) per line."""
    p = subprocess.Popen([KUBECTL, "get", "-w", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run():
        for line in p.stdout:
            sink(time.time(), line.strip())

    threading.Thread(target=run, daemon=True).start()
    return p


def steady_scenarios():
    out = []
    d = os.path.join(REPO, "testbed/scenarios")
    for name in sorted(os.listdir(d)):
        exp = os.path.join(d, name, "expect.yaml")
        if not os.path.exists(exp) or os.path.exists(os.path.join(d, name, "steps.sh")):
            continue
        text = open(exp).read()
        cause = re.search(r"^cause:\s*(\S+)", text, re.M)
        fixed = re.search(r"^fixed:\s*true", text, re.M)
        if cause and cause.group(1) != "none" and not fixed:
            out.append((name, cause.group(1)))
    return out


def pct(xs):
    xs = sorted(xs)
    return {"n": len(xs), "median": round(statistics.median(xs), 2), "worst": round(xs[-1], 2)} if xs else {}


def latency():
    rec = Receiver()
    agent, listen = start_agent(["--webhook", rec.url], os.path.join(OUT, "agent-latency.log"))
    try:
        assert wait(lambda: get(listen, "/readyz")[0] == 200, 120), "the agent never got ready"
        time.sleep(20)  # the scenarios already running are published first
        scen = steady_scenarios()
        first_trouble, first_res = {}, {}

        def on_pod(t, line):
            ns, _, reasons = line.partition(" ")
            if not ns.startswith("ba-"):
                return
            for r in TROUBLE:
                if r in reasons.split():
                    first_trouble.setdefault(ns, (t, r))
                    return

        def on_res(t, line):
            ns = line.split(" ")[0]
            if ns.startswith("ba-"):
                first_res.setdefault(ns, t)

        w1 = watch_lines(["pods", "-A", "-o", "jsonpath={.metadata.namespace} {.status.initContainerStatuses[*].state.waiting.reason} {.status.containerStatuses[*].state.waiting.reason}{\"\\n\"}"], on_pod)
        w2 = watch_lines(["crashdiagnoses", "-A", "-o", "jsonpath={.metadata.namespace} {.spec.cause}{\"\\n\"}"], on_res)
        time.sleep(2)
        for name, _ in scen:
            text = open(os.path.join(REPO, "testbed/scenarios", name, "manifest.yaml")).read()
            m = os.path.join(OUT, "ba-%s.yaml" % name)
            open(m, "w").write(text.replace(name, "ba-" + name))
            subprocess.run([KUBECTL, "apply", "-f", m], capture_output=True)
        names = ["ba-" + n for n, _ in scen]
        notified = lambda: {b.get("namespace") for _, b in rec.got}
        wait(lambda: all(n in first_res and n in notified() for n in names), 300)
        time.sleep(5)
        rows = []
        for n in names:
            note = min((t for t, b in rec.got if b.get("namespace") == n), default=None)
            tr = first_trouble.get(n)
            rows.append({"namespace": n, "trouble": tr[1] if tr else None,
                         "to_resource_s": round(first_res[n] - tr[0], 2) if tr and n in first_res else None,
                         "to_notification_s": round(note - tr[0], 2) if tr and note else None})
        w1.kill()
        w2.kill()
        clbo = [r for r in rows if r["trouble"] == "CrashLoopBackOff"]
        res = {
            "scenarios": len(rows),
            "rows": rows,
            "crashloopbackoff": {"to_resource": pct([r["to_resource_s"] for r in clbo if r["to_resource_s"] is not None]),
                                 "to_notification": pct([r["to_notification_s"] for r in clbo if r["to_notification_s"] is not None])},
            "all": {"to_resource": pct([r["to_resource_s"] for r in rows if r["to_resource_s"] is not None]),
                    "to_notification": pct([r["to_notification_s"] for r in rows if r["to_notification_s"] is not None])},
            "missing": [r["namespace"] for r in rows if r["to_resource_s"] is None or r["to_notification_s"] is None],
            "duplicates": [k for k, c in Counter((b.get("namespace"), b.get("workload"), b.get("container"), b.get("cause")) for _, b in rec.got).items() if c > 1],
        }
        return res
    finally:
        agent.terminate()
        agent.wait()
        for n, _ in steady_scenarios():
            subprocess.run([KUBECTL, "delete", "namespace", "ba-" + n, "--wait=false"], capture_output=True)


def audit_mark():
    """Where the audit log ends now: its inode and size."""
    st = os.stat(AUDIT)
    return st.st_ino, st.st_size


def audit_since(mark):
    """The audit log written since MARK. The apiserver rotates the log (--audit-log-maxsize): the
    file that was written is renamed audit-TIME.log, so its rest is read there by inode."""
    ino, off = mark
    data = b""
    if os.stat(AUDIT).st_ino != ino:
        d = os.path.dirname(AUDIT)
        for f in os.listdir(d):
            path = os.path.join(d, f)
            if f.startswith("audit") and f.endswith(".log") and os.stat(path).st_ino == ino:
                with open(path, "rb") as fh:
                    fh.seek(off)
                    data = fh.read()
        off = 0
    with open(AUDIT, "rb") as fh:
        fh.seek(off)
        return data + fh.read()


def audit_requests(mark, user, detail=None):
    """Requests of USER with unloop's user agent in the audit log since MARK, by verb and resource.
    DETAIL, a Counter, also gets every request but watches and the Lease by verb, resource and
    namespace/name, to say what they were."""
    c = Counter()
    data = audit_since(mark)
    for line in data.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("user", {}).get("username") != user or not e.get("userAgent", "").startswith("unloop"):
            continue
        watch = e.get("verb") == "watch"
        # A watch is logged when it starts (ResponseStarted) and ends; anything else once, complete.
        if (watch and e.get("stage") == "ResponseStarted") or (not watch and e.get("stage") == "ResponseComplete"):
            ref = e.get("objectRef") or {}
            what = "%s %s" % (e.get("verb"), ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else ""))
            c[what] += 1
            if detail is not None and not watch and ref.get("resource") != "leases":
                detail["%s %s/%s" % (what, ref.get("namespace", ""), ref.get("name", ""))] += 1
    return c


def scale(quiet_s):
    """diagnose -A, then each agent binary in turn (BENCH_BEFORE_BIN, when set, first: the binary
    before a change, measured in the same run as UNLOOP_BIN)."""
    res = {}
    bins = [("agent", UNLOOP)]
    if os.environ.get("BENCH_BEFORE_BIN"):
        bins.insert(0, ("agent_before", os.environ["BENCH_BEFORE_BIN"]))
    with Identity() as me:
        # unloop diagnose -A on the fixture: peak RSS (ru_maxrss of the child).
        t = time.time()
        r0 = os.wait4(subprocess.Popen([UNLOOP, "diagnose", "-A", "-o", "json"], env=me.env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL).pid, 0)
        base = {"wall_s": round(time.time() - t, 1), "max_rss_mb": round(r0[2].ru_maxrss / 1024, 1)}
        res["diagnose_A"] = base
        for label, binary in bins:
            a = scale_agent(binary, label, me.env, quiet_s)
            a["ratio_steady_to_diagnose"] = round(a["rss_mb"]["median"] / base["max_rss_mb"], 2)
            a["ratio_peak_to_diagnose"] = round(a["hwm_mb"] / base["max_rss_mb"], 2)
            res[label] = a
    return res


def scale_agent(binary, label, env, quiet_s):
    """One agent on the fixture: ready, settled, then QUIET_S seconds of nothing changing: its RSS
    each second (steady: the median), its high-water mark (peak, VmHWM, since it started) and the
    requests it started in the window."""
    agent, listen = start_agent(["--no-events"], os.path.join(OUT, label + "-scale.log"), env, binary)
    try:
        t = time.time()
        assert wait(lambda: get(listen, "/readyz")[0] == 200, 600), "the agent never got ready on the fixture"
        ready = time.time() - t
        hwm_ready = rss_kb(agent.pid, "VmHWM")
        last = settle(listen)
        settled = time.time() - t
        mark = audit_mark()
        samples = []
        q_end = time.time() + quiet_s
        while time.time() < q_end:
            samples.append(rss_kb(agent.pid))
            time.sleep(1)
        time.sleep(1)
        detail = Counter()
        reqs = audit_requests(mark, BENCH_USER, detail)
        return {
            "binary": binary,
            "ready_s": round(ready, 1), "settled_s": round(settled, 1), "diagnoses": last,
            "rss_mb": {"median": round(statistics.median(samples) / 1024, 1), "max": round(max(samples) / 1024, 1)},
            "hwm_mb": round(rss_kb(agent.pid, "VmHWM") / 1024, 1),
            "hwm_at_ready_mb": round(hwm_ready / 1024, 1),
            "quiet_window_s": quiet_s,
            "requests_in_window": dict(reqs),
            "other_requests": dict(detail),
            "per_minute": per_minute(reqs, quiet_s),
        }
    finally:
        agent.terminate()
        agent.wait()


def settle(listen, limit=600, still_s=20):
    """Waits until the agent is ready and its diagnoses count has not moved for STILL_S seconds."""
    assert wait(lambda: get(listen, "/readyz")[0] == 200, limit), "the agent never got ready"
    last, still = -1, 0
    end = time.time() + limit
    while time.time() < end and still < still_s:
        n = metric(listen, "unloop_diagnoses_total")
        still = still + 1 if n == last else 0
        last = n
        time.sleep(1)
    return last


def per_minute(reqs, seconds):
    """Requests per minute, in total and by kind of request."""
    kinds = Counter()
    for k, v in reqs.items():
        verb, res = k.split(" ", 1)
        kinds["watch" if verb == "watch" else "lease" if res == "leases" else "other"] += v
    m = lambda n: round(n * 60 / seconds, 2)
    return {"total": m(sum(reqs.values())), **{k: m(kinds[k]) for k in ("watch", "lease", "other")}}


def rest(window_s, baseline_runs):
    res = {}
    with Identity() as me:
        log = os.path.join(OUT, "agent-rest.log")
        # As the chart runs it (a Lease, events on), one replica, with no webhook.
        agent, listen = start_agent(["--lease", "%s/unloop-bench" % BENCH_NS, "--identity", "bench"], log, me.env)
        try:
            t = time.time()
            diagnoses = settle(listen)
            settled = time.time() - t
            mark = audit_mark()
            rss0 = rss_kb(agent.pid)
            time.sleep(window_s)
            time.sleep(1)  # the audit log is written as requests start
            detail = Counter()
            reqs = audit_requests(mark, BENCH_USER, detail)
            res["agent"] = {
                "settled_s": round(settled, 1), "diagnoses_at_start": diagnoses,
                "diagnoses_in_window": metric(listen, "unloop_diagnoses_total") - diagnoses,
                "window_s": window_s, "requests_in_window": dict(reqs), "other_requests": dict(detail),
                "per_minute": per_minute(reqs, window_s),
                "rss_mb": {"start": round(rss0 / 1024, 1), "end": round(rss_kb(agent.pid) / 1024, 1)},
                "watch_restarts": metric_sum(listen, "unloop_watch_restarts_total"),
                "relists": metric_sum(listen, "unloop_watch_relists_total"),
            }
        finally:
            agent.terminate()
            agent.wait()
        # The baseline: `unloop diagnose -A` once a minute is as many requests a minute as one run makes.
        runs = []
        for _ in range(baseline_runs):
            mark = audit_mark()
            t = time.time()
            subprocess.run([UNLOOP, "diagnose", "-A", "-o", "json"], env=me.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            wall = time.time() - t
            time.sleep(1)
            r = audit_requests(mark, BENCH_USER)
            runs.append({"wall_s": round(wall, 1), "requests": sum(r.values()), "by_request": dict(r)})
        per_run = statistics.median(x["requests"] for x in runs)
        res["diagnose_A_once_a_minute"] = {"runs": runs, "requests_per_minute": per_run}
        a = res["agent"]["per_minute"]
        res["ratio_agent_to_diagnose_per_minute"] = {
            "total": round(a["total"] / per_run, 3),
            "without_lease": round((a["total"] - a["lease"]) / per_run, 3),
        }
    return res


def metric_sum(listen, name):
    _, text = get(listen, "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "latency":
        res = latency()
    elif what == "rest":
        res = rest(int(os.environ.get("REST_S", "300")), int(os.environ.get("BASELINE_RUNS", "3")))
    else:
        res = scale(int(os.environ.get("QUIET_S", "120")))
    json.dump(res, open(os.path.join(OUT, what + ".json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    if what == "latency":
        for r in res["rows"]:
            print("  %-32s %-28s resource %6s s  notification %6s s" % (r["namespace"], r["trouble"], r["to_resource_s"], r["to_notification_s"]))
