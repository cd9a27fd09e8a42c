//! Captured cluster state for the unit tests of the rules: the testbed's bundles
//! (`testbed/scenarios/NAME/bundle.json.gz`), read as `unloop-source` reads them. A test copies a
//! captured object and changes the one field it is about; nothing here is typed by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use flate2::read::GzDecoder;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, ContainerStatus, Pod};
use serde::Deserialize;

use crate::diagnose;
use crate::state::{ClusterState, ContainerLog};
use crate::subject::{Finding, Subject};
use crate::verdict::{CauseId, Confidence};

/// The state captured for a testbed scenario (each bundle is read once per test run).
pub fn scenario(name: &str) -> ClusterState {
    static READ: Mutex<BTreeMap<String, ClusterState>> = Mutex::new(BTreeMap::new());
    let mut read = READ.lock().unwrap_or_else(|e| e.into_inner());
    read.entry(name.to_string())
        .or_insert_with(|| read_bundle(name))
        .clone()
}

fn read_bundle(name: &str) -> ClusterState {
    #[derive(Deserialize)]
    struct Bundle {
        state: ClusterState,
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(name)
        .join("bundle.json.gz");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bundle: Bundle =
        serde_json::from_reader(std::io::BufReader::new(GzDecoder::new(file))).unwrap();
    bundle.state
}

/// The moment the state was captured: "now" for its diagnosis.
pub fn now(state: &ClusterState) -> Timestamp {
    state
        .captured_at
        .expect("captured bundles carry their time")
}

/// The scenario's first pod (every scenario runs one workload).
pub fn pod(state: &mut ClusterState) -> &mut Pod {
    &mut state.pods[0]
}

/// The first container of the scenario's first pod.
pub fn container(state: &mut ClusterState) -> &mut Container {
    &mut pod(state).spec.as_mut().unwrap().containers[0]
}

/// The status of the first container of the scenario's first pod.
pub fn status(state: &mut ClusterState) -> &mut ContainerStatus {
    &mut pod(state)
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0]
}

/// The crashed run of the first container, as `Subject::last_run` reads it: the current state if
/// it is terminated, else the last one.
pub fn last_run(state: &mut ClusterState) -> &mut ContainerStateTerminated {
    let cs = status(state);
    if cs.state.as_ref().is_some_and(|s| s.terminated.is_some()) {
        return cs
            .state
            .as_mut()
            .and_then(|s| s.terminated.as_mut())
            .unwrap();
    }
    cs.last_state
        .as_mut()
        .and_then(|s| s.terminated.as_mut())
        .expect("the captured container has crashed")
}

/// The log of the first pod the rules read: the crashed instance's when captured, else the
/// current one.
pub fn log(state: &mut ClusterState) -> &mut ContainerLog {
    let pod = state.pods[0].metadata.name.clone().unwrap_or_default();
    let i = (state.logs.iter().position(|l| l.pod == pod && l.previous))
        .or_else(|| state.logs.iter().position(|l| l.pod == pod))
        .expect("the captured pod has a log");
    &mut state.logs[i]
}

/// What `rule` finds in every container of the first pod, troubled or not.
pub fn run(state: &ClusterState, rule: fn(&Subject) -> Vec<Finding>) -> Vec<Finding> {
    let pod = &state.pods[0];
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .filter_map(|c| diagnose::subject_of(state, pod, &c.name, now(state)))
        .flat_map(|s| rule(&s))
        .collect()
}

/// The causes `rule` finds in the first pod, as (id, confidence) pairs.
pub fn ids(state: &ClusterState, rule: fn(&Subject) -> Vec<Finding>) -> Vec<(CauseId, Confidence)> {
    run(state, rule)
        .iter()
        .map(|f| (f.cause.id, f.cause.confidence))
        .collect()
}

/// The one finding of `id` that `rule` makes in the first pod.
pub fn finding(state: &ClusterState, rule: fn(&Subject) -> Vec<Finding>, id: CauseId) -> Finding {
    let mut found: Vec<Finding> = run(state, rule)
        .into_iter()
        .filter(|f| f.cause.id == id)
        .collect();
    assert_eq!(found.len(), 1, "one {id} finding expected");
    found.remove(0)
}

/// True when some evidence of the finding says `text`.
pub fn cites(f: &Finding, text: &str) -> bool {
    f.cause.evidence.iter().any(|e| e.text.contains(text))
}

/// The captured healthy Deployment (running, never restarted): no rule has anything to say.
pub fn healthy() -> ClusterState {
    scenario("healthy")
}

/// True when some container of the pod has restarted.
pub fn troubled(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .any(|c| c.restart_count > 0)
}
