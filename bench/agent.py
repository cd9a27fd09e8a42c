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
ADMIN = os.environ.get("ADMIN_USER", "unloop-testbed-admin")
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


def start_agent(extra, log):
    listen = "127.0.0.1:%d" % free_port()
    p = subprocess.Popen([UNLOOP, "agent", "--listen", listen, "--exclude-namespace", "kube-system", *extra],
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    return p, listen


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


def audit_requests(start, end):
    """Requests of the admin user with unloop's user agent started between two audit log offsets."""
    c = Counter()
    with open(AUDIT, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    for line in data.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("user", {}).get("username") != ADMIN or not e.get("userAgent", "").startswith("unloop"):
            continue
        watch = e.get("verb") == "watch"
        # A watch is logged when it starts (ResponseStarted) and ends; anything else once, complete.
        if (watch and e.get("stage") == "ResponseStarted") or (not watch and e.get("stage") == "ResponseComplete"):
            ref = e.get("objectRef") or {}
            c["%s %s" % (e.get("verb"), ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else ""))] += 1
    return c


def scale(quiet_s):
    res = {}
    # unloop diagnose -A on the fixture: peak RSS (ru_maxrss of the child).
    t = time.time()
    r0 = os.wait4(subprocess.Popen([UNLOOP, "diagnose", "-A", "-o", "json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid, 0)
    res["diagnose_A"] = {"wall_s": round(time.time() - t, 1), "max_rss_mb": round(r0[2].ru_maxrss / 1024, 1)}
    agent, listen = start_agent(["--no-events"], os.path.join(OUT, "agent-scale.log"))
    try:
        t = time.time()
        assert wait(lambda: get(listen, "/readyz")[0] == 200, 600), "the agent never got ready on the fixture"
        ready = time.time() - t
        # Settled: the diagnoses count stops moving for 20 s.
        last, still = -1, 0
        end = time.time() + 600
        while time.time() < end and still < 20:
            n = metric(listen, "unloop_diagnoses_total")
            still = still + 1 if n == last else 0
            last = n
            time.sleep(1)
        settled = time.time() - t
        a0 = os.path.getsize(AUDIT) if AUDIT else 0
        samples = []
        q_end = time.time() + quiet_s
        while time.time() < q_end:
            samples.append(rss_kb(agent.pid))
            time.sleep(1)
        time.sleep(1)
        reqs = audit_requests(a0, os.path.getsize(AUDIT)) if AUDIT else {}
        res["agent"] = {
            "ready_s": round(ready, 1), "settled_s": round(settled, 1), "diagnoses": last,
            "rss_mb": {"median": round(statistics.median(samples) / 1024, 1), "max": round(max(samples) / 1024, 1)},
            "hwm_mb": round(rss_kb(agent.pid, "VmHWM") / 1024, 1),
            "quiet_window_s": quiet_s,
            "requests_in_window": dict(reqs),
            "requests_per_minute": round(sum(reqs.values()) * 60 / quiet_s, 1),
            "non_watch_requests_per_minute": round(sum(v for k, v in reqs.items() if not k.startswith("watch")) * 60 / quiet_s, 1),
        }
        res["ratio_agent_rss_to_diagnose"] = round(res["agent"]["rss_mb"]["max"] / res["diagnose_A"]["max_rss_mb"], 2)
    finally:
        agent.terminate()
        agent.wait()
    return res


if __name__ == "__main__":
    what = sys.argv[1]
    res = latency() if what == "latency" else scale(int(os.environ.get("QUIET_S", "120")))
    json.dump(res, open(os.path.join(OUT, what + ".json"), "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    if what == "latency":
        for r in res["rows"]:
            print("  %-32s %-28s resource %6s s  notification %6s s" % (r["namespace"], r["trouble"], r["to_resource_s"], r["to_notification_s"]))
