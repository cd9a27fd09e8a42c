//! Slimming healthy pods (what a live read and a snapshot do by default) must not change any report:
//! every bundle captured on the testbed is diagnosed whole and slimmed, through a bundle round trip,
//! and the two reports must be the same.

use std::path::PathBuf;

use unloop_core::{Query, diagnose, slim};
use unloop_source::bundle;

fn bundles() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/scenarios");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("bundle.json.gz"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn slimmed_bundles_give_the_same_reports() {
    let paths = bundles();
    assert!(paths.len() >= 20, "expected the testbed's captured bundles");
    let dir = tempfile::tempdir().unwrap();
    let mut slimmed = 0;
    for path in paths {
        let whole = bundle::read(&path).unwrap();
        let now = whole.captured_at.unwrap();
        let mut cut = whole.clone();
        cut.pods = slim::slim_healthy(cut.pods, now);
        slimmed += cut
            .pods
            .iter()
            .zip(&whole.pods)
            .filter(|(a, b)| a.spec != b.spec)
            .count();
        let copy = dir.path().join("slim.json.gz");
        bundle::write(&copy, &cut).unwrap();
        let cut = bundle::read(&copy).unwrap();

        let q = Query::default();
        let a = serde_json::to_value(diagnose(&whole, &q, now)).unwrap();
        let b = serde_json::to_value(diagnose(&cut, &q, now)).unwrap();
        assert_eq!(a, b, "{}: slimming changed the report", path.display());
    }
    // The healthy control, the fixed scenarios and the healthy revisions around a bad rollout have
    // healthy pods: the comparison above must have covered some.
    assert!(slimmed >= 3, "only {slimmed} pods were slimmed");
}

/// A live read parses each pod straight into the slim view; that must give exactly what slimming
/// the whole pod gives.
#[test]
fn the_slim_view_of_a_pods_json_is_the_slimmed_pod() {
    let mut compared = 0;
    for path in bundles() {
        let state = bundle::read(&path).unwrap();
        for pod in state.pods {
            let json = serde_json::to_string(&pod).unwrap();
            let view: slim::PodView = serde_json::from_str(&json).unwrap();
            assert_eq!(
                view.into_slim(),
                slim::slim_pod(pod),
                "{}: a pod differs",
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "only {compared} pods compared");
}

/// What slimming keeps and drops, on the healthy scenario's captured pods (env, probes, mounts and
/// addresses as the real cluster set them), and what it leaves whole: the OOM-killed worker, and a
/// pod without a controller (the captured pod with its owner reference taken away).
#[test]
fn healthy_pods_lose_their_spec_and_keep_what_diagnosis_reads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/scenarios");
    let healthy = bundle::read(&dir.join("healthy/bundle.json.gz")).unwrap();
    let now = healthy.captured_at.unwrap();
    let whole = healthy.pods[0].clone();
    let c = &whole.spec.as_ref().unwrap().containers[0];
    assert!(
        c.env.is_some() && c.liveness_probe.is_some(),
        "the fixture is a whole pod"
    );
    assert!(slim::may_slim(&whole, now));

    let s = slim::slim_pod(whole.clone());
    let spec = s.spec.as_ref().unwrap();
    assert!(
        spec.containers.is_empty(),
        "the spec is in the ReplicaSet's template"
    );
    assert_eq!(spec.node_name, whole.spec.as_ref().unwrap().node_name);
    assert_eq!(s.metadata.labels, whole.metadata.labels);
    assert_eq!(s.metadata.owner_references, whole.metadata.owner_references);
    assert!(
        s.metadata
            .annotations
            .iter()
            .flatten()
            .all(|(k, _)| k.starts_with("unloop.dev/"))
    );
    let (st, wst) = (s.status.as_ref().unwrap(), whole.status.as_ref().unwrap());
    assert!(wst.pod_ips.is_some() && st.pod_ips.is_none());
    assert_eq!(st.conditions, wst.conditions);
    let (cs, wcs) = (
        &st.container_statuses.as_ref().unwrap()[0],
        &wst.container_statuses.as_ref().unwrap()[0],
    );
    assert_eq!(
        (&cs.state, cs.ready, cs.restart_count),
        (&wcs.state, wcs.ready, wcs.restart_count)
    );
    assert!(cs.volume_mounts.is_none());

    let mut bare = whole;
    bare.metadata.owner_references = None;
    assert!(
        !slim::may_slim(&bare, now),
        "nothing else records a bare pod's spec"
    );

    let oom = bundle::read(&dir.join("oom-limit/bundle.json.gz")).unwrap();
    let worker = &oom.pods[0];
    assert!(slim::needs_diagnosis(worker, oom.captured_at.unwrap()));
    assert!(!slim::may_slim(worker, oom.captured_at.unwrap()));
}
