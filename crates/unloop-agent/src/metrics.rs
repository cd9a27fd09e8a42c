//! What the agent counts, in Prometheus' text format, and the small HTTP server of `/metrics`,
//! `/healthz` and `/readyz`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bounds (seconds) of the latency histogram, from the kubelet's report to the diagnosis.
pub const LATENCY_BUCKETS: [f64; 10] = [1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0];

#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Workloads in trouble by (namespace, cause) as last diagnosed.
    pub troubled: BTreeMap<(String, String), u64>,
    pub diagnoses: u64,
    pub latency_buckets: [u64; LATENCY_BUCKETS.len()],
    pub latency_count: u64,
    pub latency_sum: f64,
    /// Watch streams that failed and were started again, by kind (0 for each kind watched).
    pub watch_restarts: BTreeMap<&'static str, u64>,
    /// Full lists after the first, by kind: a watch the apiserver could not resume (410 Gone)
    /// lists every object of its kind again, the one costly request a watching agent makes.
    pub relists: BTreeMap<&'static str, u64>,
    /// Failed API requests, by what the agent was doing.
    pub api_errors: BTreeMap<&'static str, u64>,
    /// Notifications by target and outcome.
    pub notifications: BTreeMap<(&'static str, &'static str), u64>,
    pub leader: bool,
}

/// What the agent does with the API, for `unloop_api_errors_total{doing}`: every one is exported
/// from the start (at 0), so a rate or an alert on it sees the first error.
pub const API_DOINGS: [&str; 5] = ["event", "lease", "logs", "publish", "resolve"];

/// The agent's counters, shared by its tasks.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    inner: Arc<Mutex<Counts>>,
    ready: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn diagnosed(&self, latency_secs: Option<f64>) {
        self.with(|c| {
            c.diagnoses += 1;
            if let Some(l) = latency_secs {
                let l = l.max(0.0);
                c.latency_count += 1;
                c.latency_sum += l;
                for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                    if l <= *b {
                        c.latency_buckets[i] += 1;
                    }
                }
            }
        });
    }

    pub fn set_troubled(&self, t: BTreeMap<(String, String), u64>) {
        self.with(|c| c.troubled = t);
    }

    pub fn watch_restart(&self, kind: &'static str) {
        self.with(|c| *c.watch_restarts.entry(kind).or_default() += 1);
    }

    /// `doing` is one of [`API_DOINGS`].
    pub fn api_error(&self, doing: &'static str) {
        self.with(|c| *c.api_errors.entry(doing).or_default() += 1);
    }

    pub fn notification(&self, target: &'static str, outcome: &'static str) {
        self.with(|c| *c.notifications.entry((target, outcome)).or_default() += 1);
    }

    pub fn set_leader(&self, leader: bool) {
        self.with(|c| c.leader = leader);
    }

    /// A watch is expected; not ready until it has listed once. Its counters start at 0.
    pub fn expect(&self, kind: &'static str) {
        self.with(|c| {
            c.watch_restarts.entry(kind).or_default();
            c.relists.entry(kind).or_default();
        });
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_insert(false);
    }

    /// A watch's list is complete (kube's `InitDone`); any list after its first is a relist.
    pub fn listed(&self, kind: &'static str) {
        let again = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, true)
            == Some(true);
        if again {
            self.with(|c| *c.relists.entry(kind).or_default() += 1);
        }
    }

    /// Ready once every watch has listed once: only then does the agent see the whole cluster.
    pub fn ready(&self) -> bool {
        let r = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        !r.is_empty() && r.values().all(|v| *v)
    }

    pub fn snapshot(&self) -> Counts {
        self.with(|c| c.clone())
    }

    pub fn render(&self) -> String {
        render(&self.snapshot())
    }
}

/// A label value as the text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The counts in Prometheus' text exposition format (0.0.4).
pub fn render(c: &Counts) -> String {
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut o,
        "unloop_troubled_workloads",
        "gauge",
        "Workloads with a container in trouble, by namespace and most likely cause.",
    );
    for ((ns, cause), n) in &c.troubled {
        let _ = writeln!(
            o,
            "unloop_troubled_workloads{{namespace=\"{}\",cause=\"{}\"}} {n}",
            label(ns),
            label(cause)
        );
    }
    head(
        &mut o,
        "unloop_diagnoses_total",
        "counter",
        "Diagnoses made and published.",
    );
    let _ = writeln!(o, "unloop_diagnoses_total {}", c.diagnoses);
    head(
        &mut o,
        "unloop_diagnosis_latency_seconds",
        "histogram",
        "Time from the kubelet's report of trouble to the published diagnosis.",
    );
    for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
        let _ = writeln!(
            o,
            "unloop_diagnosis_latency_seconds_bucket{{le=\"{b}\"}} {}",
            c.latency_buckets[i]
        );
    }
    let _ = writeln!(
        o,
        "unloop_diagnosis_latency_seconds_bucket{{le=\"+Inf\"}} {}\nunloop_diagnosis_latency_seconds_sum {}\nunloop_diagnosis_latency_seconds_count {}",
        c.latency_count, c.latency_sum, c.latency_count
    );
    head(
        &mut o,
        "unloop_watch_restarts_total",
        "counter",
        "Watches that failed and were started again, by kind.",
    );
    for (k, n) in &c.watch_restarts {
        let _ = writeln!(o, "unloop_watch_restarts_total{{kind=\"{k}\"}} {n}");
    }
    head(
        &mut o,
        "unloop_watch_relists_total",
        "counter",
        "Full lists after the first, by kind (a watch that could not resume from where it was).",
    );
    for (k, n) in &c.relists {
        let _ = writeln!(o, "unloop_watch_relists_total{{kind=\"{k}\"}} {n}");
    }
    head(
        &mut o,
        "unloop_api_errors_total",
        "counter",
        "API requests that failed, by what the agent was doing.",
    );
    let mut errors: BTreeMap<&str, u64> = API_DOINGS.iter().map(|d| (*d, 0)).collect();
    errors.extend(c.api_errors.iter().map(|(k, n)| (*k, *n)));
    for (k, n) in &errors {
        let _ = writeln!(o, "unloop_api_errors_total{{doing=\"{k}\"}} {n}");
    }
    head(
        &mut o,
        "unloop_notifications_total",
        "counter",
        "Notifications by target and outcome.",
    );
    for ((t, r), n) in &c.notifications {
        let _ = writeln!(
            o,
            "unloop_notifications_total{{target=\"{t}\",outcome=\"{r}\"}} {n}"
        );
    }
    head(
        &mut o,
        "unloop_leader",
        "gauge",
        "1 when this replica holds the lease and publishes.",
    );
    let _ = writeln!(o, "unloop_leader {}", u8::from(c.leader));
    o
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends. One request
/// per connection (HTTP/1.0 style, `Connection: close`); anything else is a 404.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let (status, body, ctype) = answer(&buf[..n], &metrics);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// The answer to one request: status line, body, content type.
pub fn answer(request: &[u8], metrics: &Metrics) -> (&'static str, String, &'static str) {
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next(), parts.next().unwrap_or("/"));
    let path = path.split('?').next().unwrap_or_default();
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Some("GET") {
        return ("405 Method Not Allowed", "GET only\n".into(), TEXT);
    }
    match path {
        "/metrics" => (
            "200 OK",
            metrics.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" => ("200 OK", "ok\n".into(), TEXT),
        "/readyz" if metrics.ready() => ("200 OK", "ok\n".into(), TEXT),
        "/readyz" => (
            "503 Service Unavailable",
            "watches still listing\n".into(),
            TEXT,
        ),
        _ => ("404 Not Found", "not found\n".into(), TEXT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prometheus_text_with_the_issue_s_series() {
        let m = Metrics::default();
        m.diagnosed(Some(4.0));
        m.diagnosed(Some(40.0));
        m.watch_restart("pods");
        m.api_error("publish");
        let mut t = BTreeMap::new();
        t.insert(("shop".to_string(), "oom-killed".to_string()), 2);
        m.set_troubled(t);
        let out = m.render();
        assert!(
            out.contains("unloop_troubled_workloads{namespace=\"shop\",cause=\"oom-killed\"} 2")
        );
        assert!(out.contains("unloop_diagnoses_total 2"));
        assert!(out.contains("unloop_diagnosis_latency_seconds_bucket{le=\"5\"} 1"));
        assert!(out.contains("unloop_diagnosis_latency_seconds_bucket{le=\"60\"} 2"));
        assert!(out.contains("unloop_diagnosis_latency_seconds_count 2"));
        assert!(out.contains("unloop_watch_restarts_total{kind=\"pods\"} 1"));
        assert!(out.contains("unloop_api_errors_total{doing=\"publish\"} 1"));
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(l.split(' ').count(), 2, "one sample per line: {l}");
        }
    }

    #[test]
    fn every_watched_kind_and_api_use_is_exported_from_zero_and_a_second_list_is_a_relist() {
        let m = Metrics::default();
        m.expect("pods");
        m.expect("events");
        let out = m.render();
        // Before anything went wrong, the series exist at 0 (an alert on their increase sees
        // the first restart or error).
        for kind in ["pods", "events"] {
            assert!(out.contains(&format!("unloop_watch_restarts_total{{kind=\"{kind}\"}} 0")));
            assert!(out.contains(&format!("unloop_watch_relists_total{{kind=\"{kind}\"}} 0")));
        }
        for doing in API_DOINGS {
            assert!(out.contains(&format!("unloop_api_errors_total{{doing=\"{doing}\"}} 0")));
        }
        // The first list makes the agent ready; a second one (after a 410 Gone) is a relist.
        m.listed("pods");
        m.listed("events");
        assert!(
            m.render()
                .contains("unloop_watch_relists_total{kind=\"pods\"} 0")
        );
        m.watch_restart("pods");
        m.listed("pods");
        let out = m.render();
        assert!(out.contains("unloop_watch_restarts_total{kind=\"pods\"} 1"));
        assert!(out.contains("unloop_watch_relists_total{kind=\"pods\"} 1"));
        assert!(out.contains("unloop_watch_relists_total{kind=\"events\"} 0"));
        assert!(m.ready());
    }

    #[test]
    fn ready_only_once_every_watch_has_listed() {
        let m = Metrics::default();
        assert_eq!(
            answer(b"GET /readyz HTTP/1.1\r\n\r\n", &m).0,
            "503 Service Unavailable"
        );
        m.expect("pods");
        m.expect("nodes");
        m.listed("pods");
        assert_eq!(
            answer(b"GET /readyz HTTP/1.1\r\n\r\n", &m).0,
            "503 Service Unavailable"
        );
        m.listed("nodes");
        assert_eq!(answer(b"GET /readyz HTTP/1.1\r\n\r\n", &m).0, "200 OK");
        assert_eq!(answer(b"GET /healthz HTTP/1.1\r\n\r\n", &m).0, "200 OK");
        assert_eq!(answer(b"GET /nope HTTP/1.1\r\n\r\n", &m).0, "404 Not Found");
    }
}
