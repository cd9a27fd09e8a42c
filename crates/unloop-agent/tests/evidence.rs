//! When a crash loop's evidence changes, the agent diagnoses it again (two writes and a log read).
//! From a pod captured just after a crash: its cycle (back-off, running again, dead again) changes
//! the evidence once per instance that dies, not at each step.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use unloop_agent::track::EvidenceBuilder;
use unloop_source::bundle;

fn fingerprint(pod: &Pod, now: jiff::Timestamp) -> u64 {
    let mut b = EvidenceBuilder::default();
    b.pod(pod, &[], now);
    b.finish().fingerprint
}

fn status(p: &mut Pod) -> &mut ContainerStatus {
    &mut p
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0]
}

#[test]
fn a_crash_loop_s_evidence_changes_once_per_dead_instance() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios/oom-limit/bundle.json.gz");
    let state = bundle::read(&path).unwrap();
    let now = state.captured_at.unwrap();
    let mut died = state.pods[0].clone();
    let dead = status(&mut died)
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("captured just after a crash");
    let before = fingerprint(&died, now);

    // The kubelet backs off, the dead instance now the last state: nothing new.
    let mut backoff = died.clone();
    let cs = status(&mut backoff);
    cs.last_state = Some(ContainerState {
        terminated: Some(dead.clone()),
        ..Default::default()
    });
    cs.state = Some(ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("CrashLoopBackOff".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(fingerprint(&backoff, now), before, "the back-off");

    // It runs again: still nothing new.
    let mut running = backoff.clone();
    status(&mut running).state = Some(ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(now)),
        }),
        ..Default::default()
    });
    assert_eq!(fingerprint(&running, now), before, "running again");

    // It dies again: a new instance, new evidence.
    let mut again = running.clone();
    let mut next = dead.clone();
    next.container_id = Some("containerd://the-next-instance".into());
    status(&mut again).state = Some(ContainerState {
        terminated: Some(next),
        ..Default::default()
    });
    assert_ne!(fingerprint(&again, now), before, "a new dead instance");
}

/// An image that cannot be pulled: the kubelet's waiting reason alternates between ErrImagePull
/// (a pull failed) and ImagePullBackOff (waiting for the next); the evidence is the same, so the
/// agent does not diagnose it again at each pull (`bench/agent.sh rest` saw it twice in 5 min).
#[test]
fn a_failing_pull_s_evidence_does_not_change_between_pull_and_back_off() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios/image-pull-error/bundle.json.gz");
    let state = bundle::read(&path).unwrap();
    let now = state.captured_at.unwrap();
    let backoff = state.pods[0].clone();
    // The pod with its waiting reason set to `reason`, and what it was.
    let waiting = |pod: &mut Pod, reason: &str| {
        let w = status(pod)
            .state
            .as_mut()
            .and_then(|s| s.waiting.as_mut())
            .unwrap();
        w.reason.replace(reason.into())
    };
    let mut pulled = backoff.clone();
    assert_eq!(
        waiting(&mut pulled, "ErrImagePull").as_deref(),
        Some("ImagePullBackOff")
    );
    assert_eq!(fingerprint(&pulled, now), fingerprint(&backoff, now));
    // Another reason is news: the image is now there, the config is not.
    let mut config = backoff.clone();
    waiting(&mut config, "CreateContainerConfigError");
    assert_ne!(fingerprint(&config, now), fingerprint(&backoff, now));
}
