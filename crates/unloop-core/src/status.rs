//! A pod's STATUS as `kubectl get pods` prints it, and which of its containers are in trouble.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec};

/// Names of the pod's sidecars (init containers with restartPolicy Always), gathered once so
/// each status is matched in constant time, not by a scan of every init container.
fn sidecar_names(pod: &Pod) -> HashSet<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect()
}

/// The STATUS column of `kubectl get pods`, computed the way kubectl's printer does.
pub fn pod_status(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let mut reason = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into());
    if let Some(r) = status
        .and_then(|s| s.reason.as_ref())
        .filter(|r| !r.is_empty())
    {
        reason = r.clone();
    }
    let spec = pod.spec.as_ref();
    let init_specs = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let sidecars = sidecar_names(pod);
    let mut initializing = false;
    for (i, cs) in status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let terminated = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        let sidecar = sidecars.contains(cs.name.as_str());
        if terminated.is_some_and(|t| t.exit_code == 0) || (sidecar && cs.started == Some(true)) {
            continue;
        }
        initializing = true;
        reason = if let Some(t) = terminated {
            match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None if t.signal.unwrap_or(0) != 0 => {
                    format!("Init:Signal:{}", t.signal.unwrap_or(0))
                }
                None => format!("Init:ExitCode:{}", t.exit_code),
            }
        } else if let Some(r) = waiting
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        break;
    }
    let initialized = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Initialized" && c.status == "True")
        });
    if !initializing || initialized {
        let mut has_running = false;
        for cs in status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default()
            .iter()
            .rev()
        {
            let state = cs.state.as_ref();
            if let Some(r) = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                reason = match t.reason.clone().filter(|r| !r.is_empty()) {
                    Some(r) => r,
                    None if t.signal.unwrap_or(0) != 0 => {
                        format!("Signal:{}", t.signal.unwrap_or(0))
                    }
                    None => format!("ExitCode:{}", t.exit_code),
                };
            } else if cs.ready && state.and_then(|s| s.running.as_ref()).is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            reason = if ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.and_then(|s| s.reason.as_deref()) == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

/// Total restarts as the RESTARTS column counts them (regular containers and sidecars).
pub fn restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    let sidecars = sidecar_names(pod);
    // Saturating: counts come from outside, and a sum of them must not overflow.
    let main = status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count.max(0))
        .fold(0i32, i32::saturating_add);
    let side = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| sidecars.contains(c.name.as_str()))
        .map(|c| c.restart_count.max(0))
        .fold(0i32, i32::saturating_add);
    main.saturating_add(side)
}

/// The role a container plays in its pod.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Init,
    Sidecar,
    Main,
}

/// Waiting reasons that are a normal step of starting, not trouble.
const BENIGN_WAITING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// Restarts older than this no longer make a running container "troubled".
pub const RECENT_RESTART_SECS: i64 = 3600;

/// The containers of `pod` that need a diagnosis, in pod order (init containers first).
pub fn troubled_containers(pod: &Pod, now: jiff::Timestamp) -> Vec<(Role, &ContainerStatus)> {
    let mut out = Vec::new();
    let Some(status) = pod.status.as_ref() else {
        return out;
    };
    let spec = pod.spec.as_ref();
    let sidecars = sidecar_names(pod);
    // Containers with restart settings of their own (rare): looked up by name in constant time.
    let own: HashMap<&str, &Container> = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .filter(|c| c.restart_policy.is_some())
        .map(|c| (c.name.as_str(), c))
        .collect();
    for cs in status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default()
    {
        let sidecar = sidecars.contains(cs.name.as_str());
        let role = if sidecar { Role::Sidecar } else { Role::Init };
        let c = own.get(cs.name.as_str()).copied();
        if container_in_trouble(cs, spec, c, true, now) {
            out.push((role, cs));
        }
    }
    for cs in status.container_statuses.as_deref().unwrap_or_default() {
        let c = own.get(cs.name.as_str()).copied();
        if container_in_trouble(cs, spec, c, false, now) {
            out.push((Role::Main, cs));
        }
    }
    out
}

/// `c` is the container's spec when it has restart settings of its own; `init` whether it is an
/// init container (a sidecar is one).
fn container_in_trouble(
    cs: &ContainerStatus,
    spec: Option<&PodSpec>,
    c: Option<&Container>,
    init: bool,
    now: jiff::Timestamp,
) -> bool {
    let state = cs.state.as_ref();
    if let Some(w) = state.and_then(|s| s.waiting.as_ref())
        && let Some(r) = w.reason.as_deref()
        && !BENIGN_WAITING.contains(&r)
    {
        return true;
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        // A finished container is trouble when it failed, or when it was meant to keep running.
        if t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled") {
            return true;
        }
        // A clean exit that the kubelet restarts, again and again: a long-running container
        // whose process ends (restartPolicy Always, the pod's or its own, or a rule on exit 0).
        if cs.restart_count > 0 && crate::restart::on_exit(spec, c, init, 0).restarts {
            return true;
        }
    }
    if cs.restart_count > 0
        && let Some(finished) = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
    {
        return now.duration_since(finished.0).as_secs() < RECENT_RESTART_SECS;
    }
    false
}

/// How long a pod may wait to start before it counts as stuck (`--stuck-after`): long enough for
/// a slow image pull or a Secret created just after the pod, short enough to catch a pod that
/// will never start well before anyone wonders why the rollout hangs.
pub const DEFAULT_STUCK_AFTER_SECS: i64 = 120;

/// How long a restarted container must have run since, at least, to count as recovered
/// (`--settle`): the kubelet's own measure of a healthy run (a run this long resets its backoff).
pub const DEFAULT_SETTLE_SECS: i64 = 600;

/// Whether `pod` has not started yet: Pending (not being deleted), and none of its containers has
/// ever run (all waiting, or no status at all). An init container that is running or has run means
/// the pod is starting, not stuck.
pub fn not_started(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if status.phase.as_deref() != Some("Pending") || pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .all(|cs| {
            let st = cs.state.as_ref();
            cs.restart_count == 0
                && cs
                    .last_state
                    .as_ref()
                    .is_none_or(|l| l.terminated.is_none())
                && st.is_none_or(|s| s.running.is_none() && s.terminated.is_none())
        })
}

/// Since when `pod` has waited to start, when it has not started and has waited at least
/// `grace_secs` at `now`: from its creation (the scheduler and the kubelet both start then).
pub fn stuck_since(pod: &Pod, now: jiff::Timestamp, grace_secs: i64) -> Option<jiff::Timestamp> {
    if !not_started(pod) {
        return None;
    }
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    (now.duration_since(created).as_secs() >= grace_secs).then_some(created)
}

/// Whether a container that restarted has run steadily since: running and ready now, for at least
/// `settle_secs` and at least as long as its crashed run lasted (a container killed every 15
/// minutes is not recovered 11 minutes into its run).
pub fn recovered(cs: &ContainerStatus, now: jiff::Timestamp, settle_secs: i64) -> bool {
    if cs.restart_count == 0 || !cs.ready {
        return false;
    }
    let Some(started) = cs
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.as_ref())
    else {
        return false;
    };
    let running = now.duration_since(started.0).as_secs();
    let last_run = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| {
            Some(
                t.finished_at
                    .as_ref()?
                    .0
                    .duration_since(t.started_at.as_ref()?.0),
            )
        })
        .map(|d| d.as_secs())
        .unwrap_or(0);
    running >= settle_secs && running >= last_run
}

/// A pod-level failure that no container status explains (Evicted, DeadlineExceeded, admission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodFailure<'a> {
    pub reason: &'a str,
    pub message: &'a str,
    /// Where the pod records it, to cite as evidence.
    pub field: &'static str,
}

pub fn pod_failure(pod: &Pod) -> Option<PodFailure<'_>> {
    let status = pod.status.as_ref()?;
    let phase = status.phase.as_deref();
    if phase == Some("Failed")
        && let Some(reason) = status.reason.as_deref().filter(|r| !r.is_empty())
    {
        return Some(PodFailure {
            reason,
            message: status.message.as_deref().unwrap_or(""),
            field: "status.reason",
        });
    }
    // The kubelet marks a pod it evicts with a DisruptionTarget condition. When the containers exit
    // 0 on SIGTERM, the pod ends Succeeded with no status reason at all (seen on the testbed's
    // 1.35 kubelet): the condition is then the only record of the eviction.
    if matches!(phase, Some("Failed" | "Succeeded")) {
        let c = status.conditions.iter().flatten().find(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("TerminationByKubelet")
        })?;
        return Some(PodFailure {
            reason: "Evicted",
            message: c.message.as_deref().unwrap_or(""),
            field: "condition DisruptionTarget (TerminationByKubelet)",
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use k8s_openapi::api::core::v1::ContainerState;

    /// The captured Job pod whose container restarts itself on exit 3 in a `restartPolicy: Never`
    /// pod (restartPolicyRules), crash-looping on the testbed's kubelet: in trouble.
    #[test]
    fn a_container_its_rules_restart_is_in_trouble() {
        let state = testing::scenario("restart-rules");
        let troubled = troubled_containers(&state.pods[0], testing::now(&state));
        assert_eq!(troubled.len(), 1);
        assert_eq!(troubled[0].1.restart_count, 7);
    }

    /// The same container, its last run ended clean (exit 0, Completed) two hours ago: trouble
    /// only where the kubelet restarts a clean exit. A container-level `Always` restarts it in a
    /// `Never` pod (it cannot stay done: trouble, like a Deployment's); a container-level `Never`
    /// ends it in an `Always` pod (done). The pod's policy alone says the opposite of both.
    #[test]
    fn a_clean_exit_is_trouble_only_where_the_kubelet_restarts_it() {
        let mut state = testing::scenario("restart-rules");
        let later = testing::now(&state) + jiff::SignedDuration::from_hours(2);
        let mut run = testing::last_run(&mut state).clone();
        run.exit_code = 0;
        run.reason = Some("Completed".into());
        testing::status(&mut state).state = Some(ContainerState {
            terminated: Some(run),
            ..Default::default()
        });
        testing::container(&mut state).restart_policy = Some("Always".into());
        assert_eq!(troubled_containers(&state.pods[0], later).len(), 1);

        testing::container(&mut state).restart_policy = Some("Never".into());
        testing::pod(&mut state)
            .spec
            .as_mut()
            .unwrap()
            .restart_policy = Some("Always".into());
        assert!(troubled_containers(&state.pods[0], later).is_empty());

        // A slimmed pod keeps the container's own restart settings: the same answer.
        let slim = crate::slim::slim_pod(state.pods[0].clone());
        assert!(troubled_containers(&slim, later).is_empty());
    }
}
