//! The live paths on state captured from the testbed (`testbed/capture.sh`): the pods and node of a
//! scenario as the real kubelet left them, and the metrics API's real answers for them. The
//! manifests are the scenarios' own, varied where a test needs a different spec; no cluster object
//! here is typed by hand. Prometheus is the one stand-in: the testbed runs none, so its answers are
//! the captured metrics-server samples laid out as `query_range` matrices.

use std::path::{Path, PathBuf};

use unloop_audit::load::{LoadOptions, load_str};
use unloop_audit::rightsize::{
    Sample, parse_pod_metrics, parse_prometheus_matrix, prometheus_queries, recommend,
    samples_from_pod_metrics_reads, samples_from_series,
};
use unloop_audit::{AuditConfig, CheckId, Context, Inventory, Known, Observed, Resolver};
use unloop_core::resources::{quantity, round_up_tidy};

fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(name)
}

fn manifest(name: &str) -> String {
    let path = scenario_dir(name).join("manifest.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn inventory(text: &str) -> Inventory {
    let mut inv = Inventory::default();
    load_str(text, "manifest.yaml", &LoadOptions::default(), &mut inv).expect("loads");
    inv
}

/// The scenario's captured cluster state, observed at its capture time.
fn observed(name: &str) -> Observed {
    observed_in(&scenario_dir(name))
}

fn observed_in(dir: &Path) -> Observed {
    let path = dir.join("bundle.json.gz");
    let state =
        unloop_source::bundle::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let now = state.captured_at.expect("a snapshot records its time");
    Observed::new(state, now, true)
}

/// The metrics API's answers captured with the scenario, as samples.
fn metrics(name: &str) -> Vec<Sample> {
    let path = scenario_dir(name).join("pod-metrics.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run testbed/capture.sh {name})", path.display()));
    let reads: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a list of reads");
    assert!(reads.len() >= 2, "{}: fewer than two reads", path.display());
    reads
        .iter()
        .flat_map(|r| parse_pod_metrics(&r.to_string()).expect("a PodMetricsList"))
        .collect()
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

fn seconds(t: &serde_json::Value) -> i64 {
    t.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .expect("a timestamp")
}

/// The slowest start to Ready of the captured healthy pods, read straight from the bundle's JSON.
fn slowest_start_to_ready(obs: &Observed) -> i64 {
    obs.state
        .pods
        .iter()
        .map(|p| {
            let v = serde_json::to_value(p).unwrap();
            let started =
                seconds(&v["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]);
            let ready = v["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .map(|c| seconds(&c["lastTransitionTime"]))
                .unwrap();
            ready - started
        })
        .max()
        .expect("the healthy scenario has pods")
}

#[test]
fn a_startup_budget_below_the_observed_start_is_flagged() {
    let obs = observed("healthy");
    let slowest = slowest_start_to_ready(&obs);
    assert!(
        slowest >= 1,
        "the captured pods became Ready within a second"
    );
    // As deployed, the startupProbe allows 60 s (2 s x 30): no finding.
    let as_deployed = audit(&inventory(&manifest("healthy")), &obs);
    assert!(
        !as_deployed
            .findings
            .iter()
            .any(|f| f.check == CheckId::LivenessBudgetTooShort),
        "{:#?}",
        as_deployed.findings
    );
    // The same Deployment with a startupProbe that allows less than the pods really took.
    let tight = manifest("healthy").replace(
        "          periodSeconds: 2\n          failureThreshold: 30",
        &format!(
            "          periodSeconds: 1\n          failureThreshold: {}",
            slowest.max(2) - 1
        ),
    );
    assert_ne!(
        tight,
        manifest("healthy"),
        "the healthy manifest changed shape"
    );
    let report = audit(&inventory(&tight), &obs);
    let f = report
        .findings
        .iter()
        .find(|f| f.check == CheckId::LivenessBudgetTooShort)
        .unwrap_or_else(|| panic!("not flagged: {:#?}", report.findings));
    assert_eq!(f.object.to_string(), "deploy/web");
    assert!(
        f.message.ends_with(&format!(
            "its pods took up to {slowest}s from container start to Ready"
        )),
        "{}",
        f.message
    );
}

#[test]
fn restarts_and_oom_kills_come_from_the_captured_pods() {
    let obs = observed("oom-limit");
    let report = audit(&inventory(&manifest("oom-limit")), &obs);
    let find = |c: CheckId| {
        report
            .findings
            .iter()
            .find(|f| f.check == c)
            .unwrap_or_else(|| panic!("no {c:?}: {:#?}", report.findings))
    };
    let pod = obs.state.pods[0].metadata.name.clone().unwrap();
    let oom = find(CheckId::OomHistory);
    assert!(
        oom.message.starts_with(&format!("OOMKilled in pod {pod} ")),
        "{}",
        oom.message
    );
    assert!(
        oom.message.ends_with(", at limits.memory 128Mi"),
        "{}",
        oom.message
    );
    assert!(oom.fix.text.contains("256Mi"), "{}", oom.fix.text);
    let restarts = find(CheckId::RecentRestarts);
    assert!(
        restarts.message.ends_with("exit code 137 (OOMKilled)"),
        "{}",
        restarts.message
    );
    // The captured node reports no pressure: nothing about it.
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.check == CheckId::NodePressure)
    );
}

/// The node as the kubelet reported it under real memory pressure (testbed/pressure.sh), with the
/// pod it evicted.
#[test]
fn node_pressure_comes_from_the_captured_node() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/node-pressure");
    let obs = observed_in(&dir);
    let text = std::fs::read_to_string(dir.join("manifest.yaml")).expect("manifest");
    let report = audit(&inventory(&text), &obs);
    let f = report
        .findings
        .iter()
        .find(|f| f.check == CheckId::NodePressure)
        .unwrap_or_else(|| panic!("no node-pressure finding: {:#?}", report.findings));
    assert_eq!(f.object.kind, "Node");
    assert!(
        f.message
            .starts_with("node unloop-node reports MemoryPressure ("),
        "{}",
        f.message
    );
    assert!(
        f.message.ends_with("; it runs node-pressure/deploy/cache"),
        "{}",
        f.message
    );
}

#[test]
fn pull_never_is_judged_by_the_images_on_the_captured_node() {
    let obs = observed("healthy");
    let never = manifest("healthy").replace(
        "        image: unloop.test/app:1.0\n",
        "        image: unloop.test/app:1.0\n        imagePullPolicy: Never\n",
    );
    let on_node = audit(&inventory(&never), &obs);
    assert!(
        !on_node
            .findings
            .iter()
            .any(|f| f.check == CheckId::PullNeverRegistryImage),
        "the node has unloop.test/app:1.0: {:#?}",
        on_node.findings
    );
    let missing = audit(&inventory(&never.replace("app:1.0", "app:9.9")), &obs);
    let f = missing
        .findings
        .iter()
        .find(|f| f.check == CheckId::PullNeverRegistryImage)
        .expect("flagged");
    assert_eq!(
        f.message,
        "imagePullPolicy is Never and image unloop.test/app:9.9 is not on 1 of 1 nodes (unloop-node): pods placed there fail with ErrImageNeverPull"
    );
}

#[test]
fn rightsize_from_the_captured_metrics_api_reads() {
    let inv = inventory(&manifest("healthy"));
    let obs = observed("healthy");
    let samples = metrics("healthy");
    let mine: Vec<&Sample> = samples.iter().filter(|s| s.container == "web").collect();
    assert!(!mine.is_empty(), "no sample of the healthy web containers");
    let max = mine
        .iter()
        .filter_map(|s| s.memory_bytes)
        .fold(0.0, f64::max) as u64;
    let r = recommend(
        &inv,
        &obs,
        &samples,
        "the metrics API".into(),
        unloop_audit::config::CpuLimitPolicy::Forbid,
    );
    let rec = r
        .recommendations
        .iter()
        .find(|r| r.container == "web")
        .unwrap_or_else(|| panic!("no recommendation: {r:#?}"));
    // The method: the largest working set seen, plus 15 %, rounded up to a tidy size.
    assert_eq!(rec.memory_max_seen, Some(max));
    let expected = round_up_tidy((max as f64 * 1.15).ceil() as u64);
    assert_eq!(rec.memory.as_deref(), Some(quantity(expected).as_str()));
    assert_eq!(rec.oom_killed_at_limit, None);
    assert!(rec.cpu_request.is_some() && rec.cpu_limit.is_none());
    let reads: std::collections::BTreeSet<u64> = mine.iter().map(|s| s.at as u64).collect();
    assert_eq!(rec.samples, reads.len());
    assert_eq!(rec.pods, 2, "both replicas were measured");
    assert!(rec.low_confidence, "minutes of data are not a verdict");
    let human = unloop_report::audit::rightsize_human(&r);
    assert!(human.contains("too little data"), "{human}");
}

#[test]
fn rightsize_after_an_oom_kill_starts_at_twice_the_limit() {
    let inv = inventory(&manifest("oom-limit"));
    let obs = observed("oom-limit");
    let r = recommend(
        &inv,
        &obs,
        &metrics("oom-limit"),
        "the metrics API".into(),
        unloop_audit::config::CpuLimitPolicy::Forbid,
    );
    let rec = r
        .recommendations
        .iter()
        .find(|r| r.container == "worker")
        .unwrap_or_else(|| panic!("no recommendation for the OOM-killed worker: {r:#?}"));
    assert_eq!(rec.oom_killed_at_limit.as_deref(), Some("128Mi"));
    let memory = rec.memory_bytes.expect("a memory figure");
    assert!(memory >= 256 * 1024 * 1024, "{:?}", rec.memory);
}

/// The captured samples as Prometheus would answer the memory or CPU `query_range` of a workload:
/// one series per container, in the matrix format.
fn matrix_from_capture(samples: &[Sample], memory: bool) -> String {
    let mut series: std::collections::BTreeMap<(String, String, String), Vec<serde_json::Value>> =
        Default::default();
    for s in samples {
        let v = if memory { s.memory_bytes } else { s.cpu_cores };
        if let Some(v) = v {
            series
                .entry((s.namespace.clone(), s.pod.clone(), s.container.clone()))
                .or_default()
                .push(serde_json::json!([s.at, v.to_string()]));
        }
    }
    let result: Vec<serde_json::Value> = series
        .into_iter()
        .map(|((ns, pod, c), values)| {
            serde_json::json!({"metric": {"namespace": ns, "pod": pod, "container": c}, "values": values})
        })
        .collect();
    serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
        .to_string()
}

/// Through Prometheus or straight from the metrics API, the same data gives the same answer.
/// (The request itself is `unloop_source::live::prometheus`'s, tested there.)
#[test]
fn rightsize_from_prometheus_history() {
    let inv = inventory(&manifest("healthy"));
    let obs = observed("healthy");
    let captured = metrics("healthy");
    let memory = parse_prometheus_matrix(&matrix_from_capture(&captured, true)).expect("matrix");
    let cpu = parse_prometheus_matrix(&matrix_from_capture(&captured, false)).expect("matrix");
    let samples = samples_from_series("healthy", &memory, &cpu);
    let (memory_q, _) = prometheus_queries(&inv.workloads[0]);
    assert!(memory_q.contains("namespace=\"healthy\""), "{memory_q}");
    let policy = unloop_audit::config::CpuLimitPolicy::Require;
    let via_prometheus = recommend(&inv, &obs, &samples, "Prometheus".into(), policy);
    let direct = recommend(&inv, &obs, &captured, "the metrics API".into(), policy);
    let (a, b) = (
        &via_prometheus.recommendations[0],
        &direct.recommendations[0],
    );
    assert_eq!((&a.memory, &a.cpu_request), (&b.memory, &b.cpu_request));
    let limit = a
        .cpu_limit
        .as_deref()
        .expect("policy require sets a CPU limit");
    assert!(!limit.is_empty());
}

/// Reads of the metrics API sooner than its refresh repeat a scrape; it is counted once.
#[test]
fn repeated_metrics_reads_count_once() {
    let path = scenario_dir("healthy").join("pod-metrics.json");
    let reads: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("captured")).expect("reads");
    let first = reads[0].to_string();
    let once = samples_from_pod_metrics_reads(std::slice::from_ref(&first)).expect("parses");
    let twice = samples_from_pod_metrics_reads(&[first.clone(), first]).expect("parses");
    assert!(!once.is_empty());
    assert_eq!(once, twice);
}
