//! Test support for unloop's live reader: a proxy on 127.0.0.1 that forwards to an API server and
//! injects faults by rule (429 with Retry-After, 5xx, connection resets, stalled and truncated
//! bodies, 410 Gone on a continue token, slow answers), and a fake API server that serves paged
//! lists, logs and nothing else from a captured [`ClusterState`] (the scenarios' bundles).
//!
//! The proxy speaks plain HTTP/1.1 to unloop, one request per connection (`Connection: close`), so
//! each fault hits exactly one request. Upstream is the fake, or a real API server reached with a
//! kube client (the testbed's admin certificate).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use unloop_core::state::ClusterState;

/// What the proxy does to a request a rule matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 Too Many Requests with `Retry-After: N` (seconds).
    Throttle { retry_after_secs: u64 },
    /// An error status with an API `Status` body: 500, 502, 503, 504, ...
    Status(u16),
    /// The connection is reset (RST) once the request is read, nothing answered.
    Reset,
    /// The headers and half the body, then silence (the connection stays open).
    Stall,
    /// Headers that promise the whole body, half of it, then the connection closes.
    Truncate,
    /// A complete HTTP answer whose JSON body is cut in half.
    CutJson,
    /// 410 Gone, as for an expired continue token.
    Gone,
    /// The real answer, after a delay.
    Slow(Duration),
}

/// When a fault applies: requests whose path and query contain `path` (any when None), that carry
/// a `continue` token when `continue_only`, the first `times` of them.
#[derive(Debug, Clone)]
pub struct Rule {
    pub fault: Fault,
    pub path: Option<String>,
    pub continue_only: bool,
    pub times: usize,
}

impl Rule {
    /// A fault on every request, for ever (narrow it with the other methods).
    pub fn new(fault: Fault) -> Rule {
        Rule {
            fault,
            path: None,
            continue_only: false,
            times: usize::MAX,
        }
    }

    /// Only requests whose path and query contain `s`.
    pub fn on(mut self, s: &str) -> Rule {
        self.path = Some(s.to_string());
        self
    }

    /// Only requests that carry a continue token.
    pub fn on_continue(mut self) -> Rule {
        self.continue_only = true;
        self
    }

    /// Only the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }

    fn matches(&self, path: &str) -> bool {
        self.times > 0
            && self.path.as_deref().is_none_or(|p| path.contains(p))
            && (!self.continue_only || path.contains("continue="))
    }
}

/// One request the proxy saw, and the fault it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub path: String,
    pub fault: Option<Fault>,
}

/// Where the proxy sends what it does not fault.
#[derive(Clone)]
pub enum Upstream {
    Fake(Arc<FakeApi>),
    Kube(kube::Client),
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Upstream {
    async fn answer(&self, path: &str) -> Answer {
        match self {
            Upstream::Fake(f) => f.answer(path),
            Upstream::Kube(client) => {
                let req = match http::Request::get(path).body(kube::client::Body::from(Vec::new()))
                {
                    Ok(r) => r,
                    Err(e) => return status_answer(400, &e.to_string()),
                };
                match client.send(req).await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let content_type = res
                            .headers()
                            .get(http::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("application/json")
                            .to_string();
                        match res.into_body().collect_bytes().await {
                            Ok(body) => Answer {
                                status,
                                content_type,
                                body,
                            },
                            Err(e) => status_answer(502, &format!("upstream body: {e}")),
                        }
                    }
                    Err(e) => status_answer(502, &format!("upstream: {e}")),
                }
            }
        }
    }
}

fn status_answer(code: u16, message: &str) -> Answer {
    let reason = match code {
        404 => "NotFound",
        410 => "Expired",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    };
    Answer {
        status: code,
        content_type: "application/json".into(),
        body: Bytes::from(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code})
            .to_string(),
        ),
    }
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and serves until dropped. Needs a Tokio runtime.
    pub async fn start(upstream: Upstream, rules: Vec<Rule>) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(rules));
        let record = seen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, rules, record) = (upstream.clone(), rules.clone(), record.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, upstream, rules, record).await;
                });
            }
        });
        Ok(Proxy { addr, seen, accept })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A kubeconfig that reaches the proxy (plain HTTP, no credentials: the proxy holds them).
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: proxy, cluster: {{server: '{}'}}}}]\nusers: [{{name: proxy, user: {{}}}}]\ncontexts: [{{name: proxy, context: {{cluster: proxy, user: proxy, namespace: '{namespace}'}}}}]\ncurrent-context: proxy\n",
            self.url()
        )
    }
}

/// Reads one request head; the path and query of its request line.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    Ok(head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string))
}

async fn serve(
    mut stream: TcpStream,
    upstream: Upstream,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let Some(path) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let fault = {
        let mut rules = rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.iter_mut().find(|r| r.matches(&path)).map(|r| {
            r.times = r.times.saturating_sub(1);
            r.fault.clone()
        })
    };
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
        path: path.clone(),
        fault: fault.clone(),
    });
    let answer = match &fault {
        Some(Fault::Reset) => {
            stream.set_zero_linger()?;
            drop(stream);
            return Ok(());
        }
        Some(Fault::Throttle { retry_after_secs }) => {
            let a = status_answer(429, "injected: too many requests");
            return write(
                &mut stream,
                &a,
                &[("Retry-After", retry_after_secs.to_string())],
                None,
            )
            .await;
        }
        Some(Fault::Status(code)) => status_answer(*code, "injected: server error"),
        Some(Fault::Gone) => status_answer(
            410,
            "injected: the provided continue parameter is too old to display a consistent list result",
        ),
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(*d).await;
            upstream.answer(&path).await
        }
        _ => upstream.answer(&path).await,
    };
    match fault {
        Some(Fault::Stall) => {
            let half = answer.body.len() / 2;
            write(&mut stream, &answer, &[], Some(half)).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Some(Fault::Truncate) => {
            let half = answer.body.len() / 2;
            write(&mut stream, &answer, &[], Some(half)).await
        }
        Some(Fault::CutJson) => {
            let half = answer.body.len() / 2;
            let cut = Answer {
                body: answer.body.slice(..half),
                ..answer
            };
            write(&mut stream, &cut, &[], None).await
        }
        _ => write(&mut stream, &answer, &[], None).await,
    }
}

/// Writes an answer with `Content-Length` of the whole body, sending only `send` bytes of it.
async fn write(
    stream: &mut TcpStream,
    a: &Answer,
    extra: &[(&str, String)],
    send: Option<usize>,
) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(a.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        a.content_type,
        a.body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let n = send.unwrap_or(a.body.len()).min(a.body.len());
    stream.write_all(&a.body[..n]).await?;
    stream.flush().await?;
    if send.is_none() {
        let _ = stream.shutdown().await;
    }
    Ok(())
}

/// A fake API server over captured state: paged lists of every kind unloop reads (at most `page`
/// objects a page, whatever the `limit`), logs, and 404 for everything else.
pub struct FakeApi {
    /// By resource plural: the objects as JSON.
    objects: BTreeMap<&'static str, Vec<Value>>,
    logs: Vec<(String, String, String, String)>,
    page: usize,
}

impl FakeApi {
    pub fn from_state(state: &ClusterState, page: usize) -> FakeApi {
        fn all<T: serde::Serialize>(v: &[T]) -> Vec<Value> {
            v.iter()
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                .collect()
        }
        // The bundle keeps key names only; served back as objects with empty values.
        let keys = |kind: &str, sets: &[unloop_core::state::KeySet]| -> Vec<Value> {
            sets.iter()
                .map(|k| {
                    let data: serde_json::Map<String, Value> =
                        k.keys.iter().map(|n| (n.clone(), json!(""))).collect();
                    json!({"apiVersion": "v1", "kind": kind,
                           "metadata": {"name": k.name, "namespace": k.namespace}, "data": data})
                })
                .collect()
        };
        let mut objects = BTreeMap::new();
        objects.insert("pods", all(&state.pods));
        objects.insert("events", all(&state.events));
        objects.insert("nodes", all(&state.nodes));
        objects.insert("replicasets", all(&state.replica_sets));
        objects.insert("deployments", all(&state.deployments));
        objects.insert("statefulsets", all(&state.stateful_sets));
        objects.insert("daemonsets", all(&state.daemon_sets));
        objects.insert("jobs", all(&state.jobs));
        objects.insert("controllerrevisions", all(&state.controller_revisions));
        objects.insert("services", all(&state.services));
        objects.insert("endpointslices", all(&state.endpoint_slices));
        objects.insert("configmaps", keys("ConfigMap", &state.config_maps));
        objects.insert("secrets", keys("Secret", &state.secrets));
        objects.insert("cronjobs", Vec::new());
        objects.insert("serviceaccounts", Vec::new());
        FakeApi {
            objects,
            logs: state
                .logs
                .iter()
                .map(|l| {
                    (
                        l.namespace.clone(),
                        l.pod.clone(),
                        l.container.clone(),
                        l.text.clone(),
                    )
                })
                .collect(),
            page: page.max(1),
        }
    }

    fn answer(&self, path_and_query: &str) -> Answer {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let params: BTreeMap<&str, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, decode(v)))
            .collect();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        // /api/v1/... or /apis/GROUP/VERSION/...
        let rest = match parts.as_slice() {
            ["api", "v1", rest @ ..] => rest,
            ["apis", _, _, rest @ ..] => rest,
            _ => return status_answer(404, "not served by the fake"),
        };
        let (ns, plural, name, sub) = match rest {
            ["namespaces", ns, plural] => (Some(*ns), *plural, None, None),
            ["namespaces", ns, plural, name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
            [plural] => (None, *plural, None, None),
            _ => return status_answer(404, "not served by the fake"),
        };
        if let (Some(pod), Some("log")) = (name, sub) {
            let container = params.get("container").cloned().unwrap_or_default();
            return match self
                .logs
                .iter()
                .find(|(n, p, c, _)| Some(n.as_str()) == ns && p == pod && *c == container)
            {
                Some((.., text)) => Answer {
                    status: 200,
                    content_type: "text/plain".into(),
                    body: Bytes::from(text.clone()),
                },
                None => status_answer(400, "previous terminated container not found"),
            };
        }
        let Some(objects) = self.objects.get(plural) else {
            return status_answer(404, &format!("the server could not find {plural}"));
        };
        let node_events = params
            .get("fieldSelector")
            .is_some_and(|f| f == "involvedObject.kind=Node");
        let selected: Vec<&Value> = objects
            .iter()
            .filter(|o| ns.is_none_or(|n| o["metadata"]["namespace"] == n))
            .filter(|o| !node_events || o["involvedObject"]["kind"] == "Node")
            .collect();
        let from: usize = params
            .get("continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit = params
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX)
            .min(self.page);
        let to = (from + limit).min(selected.len());
        let items: Vec<&Value> = selected[from.min(to)..to].to_vec();
        let mut metadata = json!({"resourceVersion": "1"});
        if to < selected.len() {
            metadata["continue"] = json!(to.to_string());
            metadata["remainingItemCount"] = json!(selected.len() - to);
        }
        Answer {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from(
                json!({"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": items})
                    .to_string(),
            ),
        }
    }
}

/// Percent-decoding of a query value.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
