//! The live paths without a cluster: live-only checks and probe timing on captured-shaped pods and
//! nodes, and right-sizing from metrics API answers and from a fake Prometheus on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::json;
use unloop_audit::load::{LoadOptions, load_str};
use unloop_audit::rightsize::{parse_pod_metrics, recommend};
use unloop_audit::{AuditConfig, CheckId, Context, Inventory, Known, Observed, Resolver};
use unloop_core::state::ClusterState;

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: search, namespace: shop}\nspec:\n  selector: {matchLabels: {app: search}}\n  template:\n    metadata: {labels: {app: search}}\n    spec:\n      containers:\n      - name: search\n        image: registry.example/search:2.0\n        startupProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 5, failureThreshold: 12}\n        resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 128Mi}}\n";

fn inventory() -> Inventory {
    let mut inv = Inventory::default();
    load_str(DEPLOYMENT, "search.yaml", &LoadOptions::default(), &mut inv).expect("loads");
    inv
}

/// A pod of deploy/search as the API server returns it: owned by a ReplicaSet with the
/// pod-template-hash label, started at `started`, Ready at `ready`.
fn pod(name: &str, started: &str, ready: &str, last: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "search", "pod-template-hash": "7d9f8"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "search-7d9f8", "uid": "u1", "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "search", "image": "registry.example/search:2.0",
                 "resources": {"limits": {"memory": "128Mi"}}}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready}],
            "containerStatuses": [{"name": "search", "ready": true, "restartCount": 3, "image": "registry.example/search:2.0", "imageID": "",
                                   "state": {"running": {"startedAt": started}}, "lastState": last}]
        }
    })
}

fn node(pressure: bool) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
           "status": {"conditions": [
               {"type": "MemoryPressure", "status": if pressure { "True" } else { "False" }, "message": "kubelet has insufficient memory available"},
               {"type": "Ready", "status": "True"}],
             "images": [{"names": ["registry.example/search@sha256:aa", "registry.example/search:2.0"], "sizeBytes": 1}]}})
}

fn observed(pressure: bool) -> Observed {
    let oom = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-01-10T09:50:00Z", "finishedAt": "2026-01-10T09:58:00Z"}});
    let state = ClusterState {
        pods: vec![
            serde_json::from_value(pod(
                "search-7d9f8-aaaaa",
                "2026-01-10T09:58:10Z",
                "2026-01-10T09:59:45Z",
                oom,
            ))
            .expect("pod"),
            serde_json::from_value(pod(
                "search-7d9f8-bbbbb",
                "2026-01-10T09:00:00Z",
                "2026-01-10T09:00:40Z",
                json!({}),
            ))
            .expect("pod"),
        ],
        nodes: vec![serde_json::from_value(node(pressure)).expect("node")],
        ..Default::default()
    };
    let now: jiff::Timestamp = "2026-01-10T10:00:00Z".parse().expect("time");
    Observed::new(state, now, true)
}

fn audit(inv: &Inventory, obs: &Observed) -> unloop_audit::AuditReport {
    let config = AuditConfig::default();
    let resolver = Resolver::new(vec![Known::manifests(&inv.config)]);
    let ctx = Context {
        config: &config,
        resolver: &resolver,
        observed: Some(obs),
    };
    unloop_audit::audit(inv, &ctx)
}

#[test]
fn live_history_and_observed_start_times() {
    let inv = inventory();
    let report = audit(&inv, &observed(true));
    let got: Vec<(CheckId, &str)> = report
        .findings
        .iter()
        .map(|f| (f.check, f.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            // The startupProbe allows 60 s; one pod took 95 s from start to Ready.
            (
                CheckId::LivenessBudgetTooShort,
                "startupProbe allows 60s to start (0 + 5 x 12): its pods took up to 95s from container start to Ready"
            ),
            (
                CheckId::RecentRestarts,
                "3 restarts in 1 of 2 pods, the last 2m00s ago (within 24h): exit code 137 (OOMKilled)"
            ),
            (
                CheckId::OomHistory,
                "OOMKilled in pod search-7d9f8-aaaaa 2m00s ago, at limits.memory 128Mi"
            ),
            (
                CheckId::NodePressure,
                "node node-1 reports MemoryPressure (kubelet has insufficient memory available); it runs shop/deploy/search"
            ),
        ]
    );
    // The recommended startup budget covers twice the slowest start: 190 s in 5 s periods.
    assert!(
        report.findings[0]
            .fix
            .yaml
            .as_deref()
            .is_some_and(|y| y.contains("failureThreshold: 38")),
        "{:?}",
        report.findings[0].fix
    );
    assert_eq!(report.findings[3].object.kind, "Node");
    assert!(
        !audit(&inv, &observed(false))
            .findings
            .iter()
            .any(|f| f.check == CheckId::NodePressure)
    );
}

#[test]
fn pull_never_is_judged_by_the_nodes_images() {
    let text = DEPLOYMENT.replace(
        "image: registry.example/search:2.0",
        "image: registry.example/search:2.0\n        imagePullPolicy: Never",
    );
    let mut inv = Inventory::default();
    load_str(&text, "search.yaml", &LoadOptions::default(), &mut inv).expect("loads");
    let on_node = audit(&inv, &observed(false));
    assert!(
        !on_node
            .findings
            .iter()
            .any(|f| f.check == CheckId::PullNeverRegistryImage),
        "the node has the image"
    );
    let text = text.replace("search:2.0", "search:2.1");
    let mut inv = Inventory::default();
    load_str(&text, "search.yaml", &LoadOptions::default(), &mut inv).expect("loads");
    let missing = audit(&inv, &observed(false));
    let f = missing
        .findings
        .iter()
        .find(|f| f.check == CheckId::PullNeverRegistryImage)
        .expect("flagged");
    assert_eq!(
        f.message,
        "imagePullPolicy is Never and image registry.example/search:2.1 is not on 1 of 1 nodes (node-1): pods placed there fail with ErrImageNeverPull"
    );
}

#[test]
fn rightsize_from_metrics_api_samples() {
    let inv = inventory();
    let obs = observed(false);
    // Two reads of metrics-server, 15 s apart, for both pods.
    let read = |t: &str, a_mem: &str, b_mem: &str, cpu: &str| {
        json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": [
            {"metadata": {"name": "search-7d9f8-aaaaa", "namespace": "shop"}, "timestamp": t, "window": "15s",
             "containers": [{"name": "search", "usage": {"cpu": cpu, "memory": a_mem}}]},
            {"metadata": {"name": "search-7d9f8-bbbbb", "namespace": "shop"}, "timestamp": t, "window": "15s",
             "containers": [{"name": "search", "usage": {"cpu": "20m", "memory": b_mem}}]}]})
        .to_string()
    };
    let mut samples =
        parse_pod_metrics(&read("2026-01-10T10:00:00Z", "90Mi", "100Mi", "150m")).expect("parses");
    samples.extend(
        parse_pod_metrics(&read("2026-01-10T10:00:15Z", "95Mi", "120Mi", "250m")).expect("parses"),
    );
    let r = recommend(
        &inv,
        &obs,
        &samples,
        "the metrics API".into(),
        unloop_audit::config::CpuLimitPolicy::Forbid,
    );
    let rec = &r.recommendations[0];
    // Max 120Mi x 1.15 = 138Mi, but the container was OOMKilled at 128Mi: at least 256Mi.
    assert_eq!(rec.memory.as_deref(), Some("256Mi"));
    assert_eq!(rec.oom_killed_at_limit.as_deref(), Some("128Mi"));
    assert_eq!(rec.memory_max_seen, Some(120 * 1024 * 1024));
    // p95 of 150m, 20m, 250m, 20m is 250m.
    assert_eq!(rec.cpu_request.as_deref(), Some("250m"));
    assert_eq!(rec.cpu_limit, None);
    assert_eq!((rec.samples, rec.pods, rec.span_secs), (2, 2, 15.0));
    assert!(rec.low_confidence);
    let human = unloop_audit::rightsize::render_human(&r);
    assert!(
        human.contains("rests on 2 samples from 2 pods over 15s: too little data"),
        "{human}"
    );
}

/// Serves canned Prometheus answers on 127.0.0.1 for at most `n` requests, recording each
/// request line. Stops by itself.
fn fake_prometheus(n: usize) -> (String, Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let memory = request_line.contains("container_memory_working_set_bytes");
            let values = if memory {
                r#"[[1767988800,"83886080"],[1768010400,"104857600"],[1768032000,"94371840"]]"#
            } else {
                r#"[[1767988800,"0.05"],[1768010400,"0.4"],[1768032000,"0.1"]]"#
            };
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"namespace":"shop","pod":"search-5c9d7-zzzzz","container":"search"}},"values":{values}}}]}}}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            record.lock().expect("lock").push(request_line);
        }
    });
    (format!("http://{addr}/prom"), seen, handle)
}

#[test]
fn rightsize_from_prometheus_history() {
    let (url, seen, server) = fake_prometheus(2);
    let inv = inventory();
    let obs = observed(false);
    let prometheus = unloop_audit::live::Prometheus::new(&url).expect("url");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let samples = runtime
        .block_on(prometheus.usage(&inv.workloads, obs.now, 86_400, &|_| {}))
        .expect("queries answered");
    server.join().expect("server");
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[0]
            .starts_with("GET /prom/api/v1/query_range?query=max%20by%20%28pod%2C%20container%29"),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains("step=60 "), "{}", requests[0]);
    // A pod of an earlier ReplicaSet, known only to Prometheus, still counts for the Deployment.
    let r = recommend(
        &inv,
        &obs,
        &samples,
        format!("Prometheus at {url}"),
        unloop_audit::config::CpuLimitPolicy::Require,
    );
    let rec = &r.recommendations[0];
    assert_eq!(rec.memory_max_seen, Some(100 * 1024 * 1024));
    // 100Mi x 1.15 = 115Mi, raised to twice the OOM limit (128Mi) = 256Mi.
    assert_eq!(rec.memory.as_deref(), Some("256Mi"));
    assert_eq!(rec.cpu_request.as_deref(), Some("400m"));
    assert_eq!(rec.cpu_limit.as_deref(), Some("800m"));
    assert_eq!((rec.samples, rec.span_secs), (3, 43_200.0));
}
