//! Diagnosis on captured pods changed in one field: quantities Kubernetes accepts at the top of
//! their range, and pods with many containers.

use std::io::Read;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use unloop_core::diagnose::{Query, diagnose};
use unloop_core::state::ClusterState;
use unloop_core::verdict::CauseId;

fn captured(scenario: &str) -> ClusterState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(scenario)
        .join("bundle.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("captured bundle"))
        .read_to_string(&mut text)
        .expect("gzip");
    let mut bundle: serde_json::Value = serde_json::from_str(&text).expect("bundle JSON");
    serde_json::from_value(bundle["state"].take()).expect("bundle state")
}

fn with_memory_limit(state: &mut ClusterState, q: &str) {
    let c = &mut state.pods[0].spec.as_mut().expect("spec").containers[0];
    let limits = c
        .resources
        .as_mut()
        .and_then(|r| r.limits.as_mut())
        .expect("limits");
    limits.insert("memory".into(), Quantity(q.into()));
}

/// An OOM kill under a limit of 1Pi or 8Ei is the container's limit at work, not node pressure
/// (an unparsed limit used to read as "no limit").
#[test]
fn an_oom_under_a_huge_limit_is_not_node_pressure() {
    let base = captured("oom-limit");
    let now = base.captured_at.expect("captured_at");
    let top = |state: &ClusterState| {
        let report = diagnose(state, &Query::default(), now);
        assert_eq!(report.diagnoses.len(), 1);
        report.diagnoses[0].top().id
    };
    assert_eq!(top(&base), CauseId::OomLimitTooLow);
    for q in ["1Pi", "8Ei", "1.5Pi", "1e18"] {
        let mut state = base.clone();
        with_memory_limit(&mut state, q);
        assert_eq!(top(&state), CauseId::OomLimitTooLow, "limit {q}");
    }
}

/// Every one of many containers is diagnosed with its own log (they were looked up by name in
/// lists, which made a wide pod quadratic; the benchmark shows the time).
#[test]
fn a_pod_of_many_containers_is_diagnosed_per_container() {
    let mut state = captured("oom-limit");
    let now = state.captured_at.expect("captured_at");
    let n = 2_000;
    let pod = &mut state.pods[0];
    let spec = pod.spec.as_mut().expect("spec");
    let container = spec.containers[0].clone();
    let statuses = pod
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
        .expect("statuses");
    let status = statuses[0].clone();
    let log = state.logs[0].clone();
    spec.containers.clear();
    statuses.clear();
    state.logs.clear();
    for i in 0..n {
        let name = format!("worker-{i}");
        let mut c = container.clone();
        c.name = name.clone();
        spec.containers.push(c);
        let mut s = status.clone();
        s.name = name.clone();
        statuses.push(s);
        let mut l = log.clone();
        l.container = name;
        l.text = format!("{}\ncontainer {i} was here\n", l.text);
        state.logs.push(l);
    }
    let report = diagnose(&state, &Query::default(), now);
    assert_eq!(report.diagnoses.len(), n);
    for d in &report.diagnoses {
        let i = d.container.strip_prefix("worker-").expect("name");
        let logs = d.logs.as_ref().expect("a log excerpt");
        let text = serde_json::to_string(logs).expect("json");
        assert!(
            text.contains(&format!("container {i} was here")),
            "{}: {text}",
            d.container
        );
    }
}
