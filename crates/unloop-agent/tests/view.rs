//! The agent diagnoses from what its watches keep (slim healthy pods, no ConfigMaps, Secrets or
//! Services, one workload at a time). On every bundle captured on the testbed, that view must
//! find the same workloads in trouble as `unloop diagnose`, with the same most likely cause
//! wherever the cause does not rest on an object the agent does not watch (one scenario of 34).

// The figures measured are printed for the run's log.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use unloop_agent::track::{EvidenceBuilder, Key};
use unloop_agent::view::{self, KeptPod, Objects};
use unloop_core::diagnose::{Query, Target, diagnose};
use unloop_core::state::ClusterState;
use unloop_core::workload::WorkloadKind;
use unloop_source::bundle;

fn scenarios() -> Vec<(String, ClusterState)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/scenarios");
    let mut out: Vec<(String, ClusterState)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.json.gz").is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, bundle::read(&p.join("bundle.json.gz")).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What the agent's watches would hold of `state`, and its diagnoses per workload and container.
fn agent_view(state: &ClusterState) -> BTreeMap<(String, String, String), String> {
    let now = state.captured_at.unwrap();
    // As the pod store keeps them, and as a diagnosis reads them back.
    let kept: Vec<KeptPod> = state
        .pods
        .iter()
        .map(|p| KeptPod::new(p.clone(), now))
        .collect();
    let pods: Vec<Pod> = kept.iter().map(|k| k.pod().into_owned()).collect();
    let events: Vec<_> = state
        .events
        .iter()
        .filter(|e| view::keep_event(e))
        .collect();
    let objects = Objects {
        pods: pods.iter().collect(),
        events,
        nodes: state.nodes.iter().collect(),
        replica_sets: state.replica_sets.iter().collect(),
        deployments: state.deployments.iter().collect(),
        stateful_sets: state.stateful_sets.iter().collect(),
        daemon_sets: state.daemon_sets.iter().collect(),
        jobs: state.jobs.iter().collect(),
    };
    // The workloads in trouble, as the agent's scan groups them: packed pods are skipped.
    let mut keys: BTreeMap<Key, EvidenceBuilder> = BTreeMap::new();
    for p in kept.iter().filter_map(KeptPod::whole) {
        if unloop_core::slim::needs_diagnosis(p, now) {
            let (rs, job) = match view::pod_controller(p) {
                Some(("ReplicaSet", n)) => (
                    state
                        .replica_sets
                        .iter()
                        .find(|r| r.metadata.name.as_deref() == Some(n)),
                    None,
                ),
                Some((_, n)) => (
                    None,
                    state
                        .jobs
                        .iter()
                        .find(|j| j.metadata.name.as_deref() == Some(n)),
                ),
                None => (None, None),
            };
            keys.entry(view::key_of(p, rs, job))
                .or_default()
                .pod(p, &[], now);
        }
    }
    let mut out = BTreeMap::new();
    for key in keys.keys() {
        let s = view::namespace_state(&key.namespace, &objects, state.logs.clone());
        let target = match key.workload.kind {
            WorkloadKind::Pod => Target::Pod(key.workload.name.clone()),
            k => Target::Workload(k, key.workload.name.clone()),
        };
        let q = Query {
            namespaces: vec![key.namespace.clone()],
            selector: None,
            target: Some(target),
            ..Query::default()
        };
        for d in diagnose(&s, &q, now).diagnoses {
            out.insert(
                (
                    d.namespace.clone(),
                    d.workload.to_string(),
                    d.container.clone(),
                ),
                d.top().id.as_str().to_string(),
            );
        }
    }
    out
}

fn full_view(state: &ClusterState) -> BTreeMap<(String, String, String), String> {
    diagnose(state, &Query::default(), state.captured_at.unwrap())
        .diagnoses
        .iter()
        .map(|d| {
            (
                (
                    d.namespace.clone(),
                    d.workload.to_string(),
                    d.container.clone(),
                ),
                d.top().id.as_str().to_string(),
            )
        })
        .collect()
}

/// Scenarios whose cause rests on a ConfigMap, Secret or Service existing, which the agent does
/// not watch: there it names a less specific cause, and must still find the workload.
/// `fixed-but-backing-off`: the missing ConfigMap was created since; without ConfigMaps the agent
/// reads the kubelet's last message and says missing-env-var instead of missing-configmap (fixed).
const NEEDS_UNWATCHED: [&str; 1] = ["fixed-but-backing-off"];

/// Scenarios the agent does not see yet, because its scan starts from pods: a failed Job whose
/// pods are gone (diagnose reads it from the Job's conditions). A known gap of the agent (issue
/// 13); the test checks the agent still finds nothing there, so it fails once that changes.
const NOT_TRIGGERED: [&str; 1] = ["job-pods-gone"];

#[test]
fn the_agent_finds_what_diagnose_finds_on_every_captured_scenario() {
    let all = scenarios();
    assert!(all.len() >= 20, "expected the testbed's captured bundles");
    let mut same = 0;
    let mut differs = Vec::new();
    for (name, state) in &all {
        let full = full_view(state);
        let agent = agent_view(state);
        if NOT_TRIGGERED.contains(&name.as_str()) {
            assert!(!full.is_empty() && agent.is_empty(), "{name}: {agent:?}");
            continue;
        }
        assert_eq!(
            full.keys().collect::<Vec<_>>(),
            agent.keys().collect::<Vec<_>>(),
            "{name}: the agent must find the same troubled workloads and containers"
        );
        for (k, cause) in &full {
            if &agent[k] == cause {
                same += 1;
            } else {
                differs.push((name.clone(), cause.clone(), agent[k].clone()));
            }
        }
    }
    eprintln!("same cause: {same}; differing: {differs:#?}");
    let unexplained: Vec<_> = differs
        .iter()
        .filter(|(name, _, _)| !NEEDS_UNWATCHED.contains(&name.as_str()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "the agent's verdict differs: {unexplained:#?}"
    );
    assert!(same >= 25, "only {same} verdicts matched");
}

#[test]
fn the_healthy_control_has_nothing_for_the_agent() {
    let (_, state) = scenarios()
        .into_iter()
        .find(|(n, _)| n == "healthy")
        .unwrap();
    assert!(agent_view(&state).is_empty());
}

/// A packed pod reads back as exactly the slim pod `diagnose` makes of it, and only pods that
/// need no diagnosis are packed (the scan skips them); on a big cluster that is almost every pod.
#[test]
fn a_packed_pod_reads_back_as_the_slim_pod_and_no_troubled_pod_is_packed() {
    let (mut packed, mut whole) = (0, 0);
    for (name, state) in scenarios() {
        let now = state.captured_at.unwrap();
        for pod in &state.pods {
            let kept = KeptPod::new(pod.clone(), now);
            let mut slim = pod.clone();
            view::slim_meta(&mut slim.metadata);
            match kept.whole() {
                None => {
                    packed += 1;
                    assert!(!unloop_core::slim::needs_diagnosis(pod, now), "{name}");
                    assert_eq!(
                        kept.pod().into_owned(),
                        unloop_core::slim::slim_pod(slim),
                        "{name}: {:?}",
                        pod.metadata.name
                    );
                }
                Some(p) => {
                    whole += 1;
                    assert!(!unloop_core::slim::may_slim(pod, now), "{name}");
                    assert_eq!(p, &slim, "{name}");
                }
            }
        }
    }
    eprintln!("packed {packed}, whole {whole}");
    // The captured bundles are mostly troubled pods: 6 healthy controller-made pods, 42 others.
    assert!(packed >= 5 && whole >= 20, "packed {packed}, whole {whole}");
}
