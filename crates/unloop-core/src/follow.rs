//! Following a workload's pods after a retry (`unloop retry`) or as they are (`unloop diagnose
//! --watch`): from each view of its pods that a watch delivers, whether it is fixed (Ready, and so
//! for a settle period), failed again, or still on its way, with a one-line status (phase,
//! restarts, the backoff countdown). Pure: the caller feeds pods and the clock.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::state::ClusterState;
use crate::status;
use crate::workload::WorkloadKind;

/// What counts as fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Long-running pods: every pod Ready, without a break, for the settle period.
    Ready,
    /// A Job's pods: one has completed (phase Succeeded).
    Complete,
}

impl Goal {
    pub fn of(kind: WorkloadKind) -> Goal {
        if kind.long_running() {
            Goal::Ready
        } else {
            Goal::Complete
        }
    }
}

/// Where a follow stands after a view of the pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not there yet: what the pods look like now.
    Following(Progress),
    /// Ready (or complete) and stayed so for the settle period.
    Fixed,
    /// A pod failed again since the follow began: these pods (names).
    FailedAgain(Vec<String>),
}

/// The pods as the status line shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub pods: Vec<PodLine>,
    /// Pods still expected to replace the deleted ones.
    pub awaited: usize,
    /// Seconds every pod has been Ready, while the settle period runs.
    pub ready_for: Option<i64>,
    pub settle_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLine {
    pub name: String,
    /// kubectl's STATUS column.
    pub status: String,
    pub restarts: i32,
    pub ready: bool,
    /// Seconds until the kubelet's next restart, in a crash-loop backoff.
    pub retry_in: Option<i64>,
}

impl Progress {
    /// The status line. `countdown` adds the seconds that change every tick (the backoff
    /// countdown, the settle clock): for a terminal line that redraws itself; without them the
    /// line changes only when the pods do (plain lines, one per change).
    pub fn line(&self, countdown: bool) -> String {
        let mut parts: Vec<String> = self
            .pods
            .iter()
            .map(|p| {
                let mut s = format!(
                    "{} {} ({} restart{}{})",
                    p.name,
                    p.status,
                    p.restarts,
                    if p.restarts == 1 { "" } else { "s" },
                    if p.ready { ", ready" } else { "" }
                );
                match p.retry_in {
                    Some(n) if countdown && n >= 0 => s.push_str(&format!(", next retry in {n}s")),
                    Some(n) if countdown => s.push_str(&format!(", retry overdue by {}s", -n)),
                    Some(_) => s.push_str(", backing off"),
                    None => {}
                }
                s
            })
            .collect();
        if self.pods.is_empty() {
            parts.push("no pod yet".into());
        }
        if self.awaited > 0 {
            parts.push(format!(
                "waiting for {} new pod{}",
                self.awaited,
                if self.awaited == 1 { "" } else { "s" }
            ));
        }
        match self.ready_for {
            Some(n) if countdown => parts.push(format!("ready {n}s of {}s", self.settle_secs)),
            Some(_) => parts.push(format!("ready, settling for {}s", self.settle_secs)),
            None => {}
        }
        parts.join("; ")
    }
}

/// The state of one follow.
#[derive(Debug, Clone)]
pub struct Follow {
    goal: Goal,
    settle_secs: i64,
    /// The pods that were there when the follow began (uid → restarts, and whether the pod had
    /// failed as a whole already).
    baseline: BTreeMap<String, (i32, bool)>,
    /// Pods deleted by the retry: their replacements are what is followed.
    deleted: BTreeSet<String>,
    /// How many new pods replace them: one each, or one for a re-created Job.
    expected: usize,
    ready_since: Option<Timestamp>,
}

impl Follow {
    /// A follow of `pods` as they are (`diagnose --watch`), or after the pods with uids in
    /// `deleted` were deleted (`retry`): each deleted pod must be replaced by a new one.
    pub fn new(goal: Goal, settle_secs: i64, pods: &[Pod], deleted: &[String]) -> Follow {
        let deleted: BTreeSet<String> = deleted.iter().cloned().collect();
        let baseline = pods
            .iter()
            .filter_map(|p| {
                let was = (status::restarts(p), status::pod_failure(p).is_some());
                Some((p.metadata.uid.clone()?, was))
            })
            .filter(|(uid, _)| !deleted.contains(uid))
            .collect();
        Follow {
            goal,
            settle_secs: settle_secs.max(0),
            baseline,
            expected: deleted.len(),
            deleted,
            ready_since: None,
        }
    }

    /// A follow that awaits `n` new pods whatever was deleted: a re-created Job's (its old pods
    /// all go with the old Job; the new one starts one).
    pub fn expecting(mut self, n: usize) -> Follow {
        self.expected = n;
        self
    }

    /// The verdict on this view of the pods (every pod the watch selects) at `now`.
    pub fn step(&mut self, pods: &[Pod], now: Timestamp) -> Verdict {
        let live: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.metadata
                    .uid
                    .as_ref()
                    .is_none_or(|u| !self.deleted.contains(u))
            })
            .collect();
        let failed: Vec<String> = live
            .iter()
            .filter(|p| self.failed(p, now))
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        if !failed.is_empty() {
            self.ready_since = None;
            return Verdict::FailedAgain(failed);
        }
        let new = live.iter().filter(|p| !self.is_baseline(p)).count();
        let awaited = self.expected.saturating_sub(new);
        let done = awaited == 0
            && !live.is_empty()
            && match self.goal {
                Goal::Ready => live.iter().all(|p| ready(p)),
                Goal::Complete => live
                    .iter()
                    .any(|p| phase(p) == Some("Succeeded") && !self.is_baseline(p)),
            };
        if !done {
            self.ready_since = None;
        } else if self.ready_since.is_none() {
            self.ready_since = Some(now);
        }
        let ready_for = self
            .ready_since
            .map(|since| now.duration_since(since).as_secs());
        if self.goal == Goal::Complete && done || ready_for.is_some_and(|r| r >= self.settle_secs) {
            return Verdict::Fixed;
        }
        let mut lines: Vec<PodLine> = live.iter().map(|p| pod_line(p, now)).collect();
        lines.sort_by(|a, b| a.name.cmp(&b.name));
        Verdict::Following(Progress {
            pods: lines,
            awaited,
            ready_for,
            settle_secs: self.settle_secs,
        })
    }

    fn is_baseline(&self, p: &Pod) -> bool {
        p.metadata
            .uid
            .as_ref()
            .is_some_and(|u| self.baseline.contains_key(u))
    }

    /// A pod failed again: a new pod in trouble (a crash, a config or image error), or a pod that
    /// was there already restarting once more. Restart counts, never clocks: the kubelet's clock
    /// and ours may differ.
    fn failed(&self, p: &Pod, now: Timestamp) -> bool {
        let failure = status::pod_failure(p).is_some();
        match p.metadata.uid.as_ref().and_then(|u| self.baseline.get(u)) {
            // The kubelet counts a restart when it starts the container again: a pod that
            // restarted and runs is the backoff ending, not a failure; dead again, it is one.
            // A pod that had failed already (a Job's) is the failure being followed, not a new one.
            Some((before, failed_before)) => {
                (failure && !failed_before) || (status::restarts(p) > *before && !running(p))
            }
            None => failure || !status::troubled_containers(p, now).is_empty(),
        }
    }
}

/// Every container of `p` is running now.
fn running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_line(p: &Pod, now: Timestamp) -> PodLine {
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let retry_in = p
        .status
        .as_ref()
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter_map(|cs| {
            crate::backoff::timeline(p.spec.as_ref(), cs, node, None, None, now)?.next_retry_in_secs
        })
        .min();
    PodLine {
        name: p.metadata.name.clone().unwrap_or_default(),
        status: status::pod_status(p),
        restarts: status::restarts(p),
        ready: ready(p),
        retry_in,
    }
}

/// The label selector of a workload in `state`, as `kubectl -l` takes it: what a watch of its pods
/// asks for. A Job is selected by its name label (a re-created Job has a new uid).
pub fn pod_selector(
    state: &ClusterState,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
) -> Option<String> {
    fn named<'a, T: k8s_openapi::Metadata<Ty = ObjectMeta>>(
        items: &'a [T],
        ns: &str,
        name: &str,
    ) -> Option<&'a T> {
        items.iter().find(|o| {
            o.metadata().namespace.as_deref() == Some(ns)
                && o.metadata().name.as_deref() == Some(name)
        })
    }
    let sel: &LabelSelector = match kind {
        WorkloadKind::Deployment => &named(&state.deployments, ns, name)?.spec.selector,
        WorkloadKind::StatefulSet => &named(&state.stateful_sets, ns, name)?.spec.selector,
        WorkloadKind::DaemonSet => &named(&state.daemon_sets, ns, name)?.spec.selector,
        WorkloadKind::ReplicaSet => &named(&state.replica_sets, ns, name)?.spec.selector,
        WorkloadKind::Job => return Some(format!("batch.kubernetes.io/job-name={name}")),
        WorkloadKind::CronJob | WorkloadKind::Pod => return None,
    };
    selector_text(sel)
}

/// A `LabelSelector` written as `kubectl -l` reads it; None when it selects everything.
pub fn selector_text(sel: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, scenario};
    use jiff::SignedDuration;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, PodCondition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// The crash-looping pod of `missing-env-var`, as captured (waiting out a 2m40s backoff).
    fn crashing() -> (Pod, Timestamp) {
        let mut state = scenario("missing-env-var");
        let now = testing::now(&state);
        (testing::pod(&mut state).clone(), now)
    }

    /// The healthy scenario's running, Ready pod.
    fn healthy() -> Pod {
        let state = scenario("healthy");
        state
            .pods
            .iter()
            .find(|p| ready(p))
            .expect("a Ready pod in the healthy scenario")
            .clone()
    }

    fn uid(p: &Pod) -> String {
        p.metadata.uid.clone().unwrap()
    }

    fn later(t: Timestamp, secs: i64) -> Timestamp {
        t.checked_add(SignedDuration::from_secs(secs)).unwrap()
    }

    /// The crashing pod's replacement: the same pod with another uid and name, as a controller
    /// makes it.
    fn replacement(old: &Pod, name: &str) -> Pod {
        let mut p = old.clone();
        p.metadata.uid = Some(format!("{}-new", uid(old)));
        p.metadata.name = Some(name.into());
        p
    }

    /// `p` running and Ready (its container started, the Ready condition True), fields copied
    /// from the captured healthy pod.
    fn make_ready(p: &mut Pod) {
        let h = healthy();
        let st = p.status.as_mut().unwrap();
        st.conditions = h.status.as_ref().unwrap().conditions.clone();
        st.phase = Some("Running".into());
        let cs = &mut st.container_statuses.as_mut().unwrap()[0];
        cs.restart_count = 0;
        cs.ready = true;
        cs.last_state = None;
        cs.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(Timestamp::UNIX_EPOCH)),
            }),
            ..Default::default()
        });
    }

    #[test]
    fn a_replacement_ready_for_the_settle_period_is_fixed_and_not_before() {
        let (old, now) = crashing();
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[uid(&old)]);
        // Only the deleted pod, still terminating: waiting for its replacement.
        match f.step(std::slice::from_ref(&old), now) {
            Verdict::Following(p) => {
                assert_eq!(p.awaited, 1);
                assert!(
                    p.line(true).contains("waiting for 1 new pod"),
                    "{}",
                    p.line(true)
                );
            }
            other => panic!("{other:?}"),
        }
        let mut new = replacement(&old, "api-new");
        make_ready(&mut new);
        let pods = [old.clone(), new.clone()];
        assert!(matches!(f.step(&pods, now), Verdict::Following(p) if p.ready_for == Some(0)));
        match f.step(&pods, later(now, 9)) {
            Verdict::Following(p) => assert!(p.line(true).contains("ready 9s of 10s")),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.step(&pods, later(now, 10)), Verdict::Fixed);
    }

    #[test]
    fn losing_readiness_restarts_the_settle_clock() {
        let (old, now) = crashing();
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[uid(&old)]);
        let mut new = replacement(&old, "api-new");
        make_ready(&mut new);
        f.step(std::slice::from_ref(&new), now);
        let mut unready = new.clone();
        for c in unready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
        {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        assert!(
            matches!(f.step(std::slice::from_ref(&unready), later(now, 8)), Verdict::Following(p) if p.ready_for.is_none())
        );
        assert!(
            matches!(f.step(std::slice::from_ref(&new), later(now, 12)), Verdict::Following(p) if p.ready_for == Some(0))
        );
        assert_eq!(
            f.step(std::slice::from_ref(&new), later(now, 22)),
            Verdict::Fixed
        );
    }

    #[test]
    fn a_replacement_that_crashes_has_failed_again() {
        let (old, now) = crashing();
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[uid(&old)]);
        // The captured crash-looping state, on a new pod: it crashed since the retry.
        let new = replacement(&old, "api-new");
        assert_eq!(
            f.step(&[old.clone(), new], now),
            Verdict::FailedAgain(vec!["api-new".into()])
        );
    }

    #[test]
    fn a_watched_pod_fails_again_only_when_it_restarts_once_more() {
        let (old, now) = crashing();
        // diagnose --watch: nothing deleted, the crash loop as it is is not a new failure.
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[]);
        match f.step(std::slice::from_ref(&old), now) {
            Verdict::Following(p) => {
                let line = p.line(true);
                assert!(line.contains("CrashLoopBackOff"), "{line}");
                assert!(
                    line.contains("next retry in") || line.contains("overdue"),
                    "{line}"
                );
                assert!(p.line(false).contains("backing off"), "{}", p.line(false));
                assert!(!p.line(false).contains("retry in"));
            }
            other => panic!("{other:?}"),
        }
        // The backoff ends: the kubelet starts it again (one more restart) and it runs.
        let mut rerun = old.clone();
        let cs = &mut rerun
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0];
        cs.restart_count += 1;
        cs.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(now)),
            }),
            ..Default::default()
        });
        assert!(matches!(
            f.step(std::slice::from_ref(&rerun), later(now, 60)),
            Verdict::Following(_)
        ));
        // ... and dies again: failed again.
        let mut again = old.clone();
        let cs = &mut again
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0];
        cs.restart_count += 1;
        assert!(matches!(
            f.step(&[again], later(now, 60)),
            Verdict::FailedAgain(_)
        ));
    }

    #[test]
    fn the_countdown_is_the_kubelets_next_retry() {
        let (old, now) = crashing();
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[]);
        let cs = &old
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        let b = crate::backoff::timeline(old.spec.as_ref(), cs, "", None, None, now)
            .expect("in backoff");
        let at = b.next_retry_at.unwrap();
        let before = at.checked_sub(SignedDuration::from_secs(7)).unwrap();
        match f.step(std::slice::from_ref(&old), before) {
            Verdict::Following(p) => assert_eq!(p.pods[0].retry_in, Some(7)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_pod_with_a_config_error_has_failed_again() {
        let mut state = scenario("missing-configmap");
        let now = testing::now(&state);
        let old = testing::pod(&mut state).clone();
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[uid(&old)]);
        let new = replacement(&old, "api-new");
        assert!(matches!(f.step(&[new], now), Verdict::FailedAgain(_)));
    }

    #[test]
    fn a_starting_replacement_is_neither_fixed_nor_failed() {
        let (old, now) = crashing();
        let mut f = Follow::new(Goal::Ready, 10, std::slice::from_ref(&old), &[uid(&old)]);
        let mut new = replacement(&old, "api-new");
        make_ready(&mut new);
        let st = new.status.as_mut().unwrap();
        st.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            ..Default::default()
        }]);
        st.phase = Some("Pending".into());
        let cs = &mut st.container_statuses.as_mut().unwrap()[0];
        cs.ready = false;
        cs.state = Some(ContainerState {
            waiting: Some(k8s_openapi::api::core::v1::ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(
            matches!(f.step(&[new], now), Verdict::Following(p) if p.pods[0].status == "ContainerCreating")
        );
    }

    #[test]
    fn a_job_is_fixed_when_a_new_pod_completes() {
        let mut state = scenario("job-fails");
        let now = testing::now(&state);
        let old = testing::pod(&mut state).clone();
        let mut f = Follow::new(Goal::Complete, 10, std::slice::from_ref(&old), &[uid(&old)]);
        let mut new = replacement(&old, "job-new");
        let st = new.status.as_mut().unwrap();
        st.phase = Some("Succeeded".into());
        let cs = &mut st.container_statuses.as_mut().unwrap()[0];
        cs.restart_count = 0;
        cs.last_state = None;
        if let Some(t) = cs.state.as_mut().and_then(|s| s.terminated.as_mut()) {
            t.exit_code = 0;
            t.reason = Some("Completed".into());
        }
        assert_eq!(f.step(&[new], now), Verdict::Fixed);
    }

    /// A re-created Job: both failed pods of the old Job went with it, one new pod is awaited
    /// (not two); that pod failing is the Job failing again.
    #[test]
    fn a_rerun_job_awaits_one_new_pod_and_its_failure_is_a_new_one() {
        let state = scenario("job-fails");
        let now = testing::now(&state);
        let old: Vec<Pod> = state.pods.clone();
        assert_eq!(old.len(), 2, "job-fails keeps both failed attempts");
        let gone: Vec<String> = old.iter().map(uid).collect();
        let mut f = Follow::new(Goal::Complete, 10, &old, &gone).expecting(1);
        let Verdict::Following(p) = f.step(&old, now) else {
            panic!("the old pods are gone with the old Job")
        };
        assert_eq!(p.line(false), "no pod yet; waiting for 1 new pod");
        let new = replacement(&old[0], "report-new");
        assert_eq!(
            f.step(&[new], now),
            Verdict::FailedAgain(vec!["report-new".into()])
        );
    }

    /// `diagnose --watch job/NAME` on a Job whose pod failed already: that is where it stands,
    /// not a new failure.
    #[test]
    fn watching_a_failed_jobs_pod_is_not_a_new_failure() {
        let mut state = scenario("job-fails");
        let now = testing::now(&state);
        let old = testing::pod(&mut state).clone();
        let mut f = Follow::new(Goal::Complete, 10, std::slice::from_ref(&old), &[]);
        assert!(matches!(
            f.step(std::slice::from_ref(&old), now),
            Verdict::Following(_)
        ));
    }

    #[test]
    fn the_selector_is_the_workloads() {
        let state = scenario("fixed-but-backing-off");
        assert_eq!(
            pod_selector(
                &state,
                "fixed-but-backing-off",
                WorkloadKind::Deployment,
                "payments"
            )
            .as_deref(),
            Some("app=payments")
        );
        assert_eq!(
            pod_selector(
                &state,
                "fixed-but-backing-off",
                WorkloadKind::Deployment,
                "other"
            ),
            None
        );
    }
}
