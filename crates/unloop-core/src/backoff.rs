//! The kubelet's crash-loop backoff: why a pod looks stuck and when it retries next.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodSpec};
use serde::Serialize;

use crate::state::KubeletConfig;

pub const DEFAULT_INITIAL_SECS: u64 = 10;
pub const DEFAULT_CAP_SECS: u64 = 300;
/// A container that ran this long before failing starts the backoff over.
pub const RESET_AFTER_SECS: u64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    pub restart_count: i32,
    /// The delay the kubelet is waiting out now, in seconds.
    pub delay_secs: u64,
    /// Where the delay came from: the kubelet's own waiting message, or a computation.
    pub delay_from: &'static str,
    pub initial_secs: u64,
    pub cap_secs: u64,
    /// Where initial and cap came from: the node's kubelet config, or the kubelet defaults.
    pub settings_from: String,
    pub last_finished_at: Option<Timestamp>,
    pub next_retry_at: Option<Timestamp>,
    /// Seconds from now until the next retry; negative when it is overdue.
    pub next_retry_in_secs: Option<i64>,
    pub reset_after_secs: u64,
}

/// The backoff timeline of a container in CrashLoopBackOff. `kubelet` is the node's configz when it
/// was readable; `kubelet_minor` the node's kubelet minor version (to infer default feature gates).
///
/// The kubelet shows a crash loop two ways: waiting `CrashLoopBackOff` with the crashed run in
/// lastState, or (most of each delay, on the 1.35 kubelet) the crashed run still in
/// `state.terminated`. The second counts when the container has restarted before and the kubelet
/// restarts it after this exit (`restart::on_exit`, from `pod`, the pod's spec, when known).
pub fn timeline(
    pod: Option<&PodSpec>,
    cs: &ContainerStatus,
    node: &str,
    kubelet: Option<&KubeletConfig>,
    kubelet_minor: Option<u32>,
    now: Timestamp,
) -> Option<Backoff> {
    let state = cs.state.as_ref()?;
    let (message, crashed) = if let Some(waiting) = state.waiting.as_ref() {
        if waiting.reason.as_deref() != Some("CrashLoopBackOff") {
            return None;
        }
        let crashed = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        (waiting.message.as_deref(), crashed)
    } else {
        let t = state.terminated.as_ref()?;
        if cs.restart_count < 1 || !restarts_after(pod, cs, t.exit_code) {
            return None;
        }
        (None, Some(t))
    };
    let (initial, cap, settings_from) = settings(node, kubelet, kubelet_minor);
    let from_message = message.and_then(delay_from_message);
    let (delay, delay_from) = match from_message {
        Some(d) => (d, "the kubelet's waiting message"),
        None => (
            estimate(cs.restart_count, initial, cap),
            "computed from the restart count",
        ),
    };
    let finished = crashed.and_then(|t| t.finished_at.as_ref()).map(|t| t.0);
    let next = finished.and_then(|f| f.checked_add(SignedDuration::from_secs(delay as i64)).ok());
    Some(Backoff {
        restart_count: cs.restart_count,
        delay_secs: delay,
        delay_from,
        initial_secs: initial,
        cap_secs: cap,
        settings_from,
        last_finished_at: finished,
        next_retry_at: next,
        next_retry_in_secs: next.map(|n| n.duration_since(now).as_secs()),
        reset_after_secs: RESET_AFTER_SECS,
    })
}

/// Whether the kubelet restarts the container of `cs` after it exited with `code`.
fn restarts_after(pod: Option<&PodSpec>, cs: &ContainerStatus, code: i32) -> bool {
    fn find<'a>(list: &'a [Container], name: &str) -> Option<&'a Container> {
        list.iter().find(|c| c.name == name)
    }
    let main = pod.and_then(|p| find(&p.containers, &cs.name));
    let init = pod.and_then(|p| find(p.init_containers.as_deref()?, &cs.name));
    crate::restart::on_exit(pod, main.or(init), main.is_none() && init.is_some(), code).restarts
}

impl Backoff {
    /// The runs of this container so far: its restarts and the first start. The restart count
    /// is the cluster's (or a bundle's) word, anything up to `i32::MAX`: every count derived from
    /// it is an `i64`, and nothing walks the restarts one by one ([`Backoff::same_delay_from`]).
    pub fn runs(&self) -> i64 {
        i64::from(self.restart_count.max(0)) + 1
    }

    /// The restart the kubelet is holding back now (1-based).
    pub fn next_restart(&self) -> i64 {
        self.runs()
    }

    /// The delay the kubelet waited before restart `k` (1-based) of this container, as its
    /// schedule gives it: none before the first restart, then `initial_secs` doubling to
    /// `cap_secs`. A run longer than `reset_after_secs` would have started the doubling over;
    /// the kubelet keeps no record of earlier runs, so the timeline assumes none did.
    pub fn delay_before(&self, k: i64) -> u64 {
        if k <= 1 {
            0
        } else {
            let doublings = (k - 2).clamp(0, 32) as u32;
            self.initial_secs
                .saturating_mul(1u64 << doublings)
                .min(self.cap_secs)
        }
    }

    /// How many restarts from `k` up to (not including) `end` share the delay before `k`. The
    /// schedule doubles until the cap, so once two delays in a row are equal (the cap, or zero)
    /// every later one is too: constant time, whatever the restart count.
    pub fn same_delay_from(&self, k: i64, end: i64) -> i64 {
        if k >= end {
            0
        } else if self.delay_before(k + 1) == self.delay_before(k) {
            end - k
        } else {
            1
        }
    }

    /// The backoff waited between restarts `from` and `to` (not included): the sum of their
    /// delays, saturating, in at most a few dozen steps.
    pub fn delay_between(&self, from: i64, to: i64) -> u64 {
        let mut total = 0u64;
        let mut k = from.max(1);
        while k < to {
            let n = self.same_delay_from(k, to);
            total = total.saturating_add(self.delay_before(k).saturating_mul(n as u64));
            k += n;
        }
        total
    }

    /// How the delays grow, in words: `delays double from 10s to a cap of 5m0s`, or, when the
    /// cap is the initial delay too (a `maxContainerRestartPeriod` under 10 s), `every delay is
    /// 5s`.
    pub fn schedule(&self) -> String {
        if self.initial_secs >= self.cap_secs {
            format!(
                "every delay is {}, the first one too (the cap is below the kubelet's usual first delay)",
                go_duration(self.cap_secs)
            )
        } else {
            format!(
                "delays double from {} to a cap of {}",
                go_duration(self.initial_secs),
                go_duration(self.cap_secs)
            )
        }
    }

    /// The first restart whose delay was the cap, if the schedule has reached it by now.
    pub fn capped_from(&self) -> Option<i64> {
        // The delay doubles each restart: past 2 + 64 of them it is the cap or never will be.
        let last = self.next_restart().min(2 + 64);
        (2..=last).find(|&k| self.delay_before(k) >= self.cap_secs)
    }
}

fn settings(
    node: &str,
    kubelet: Option<&KubeletConfig>,
    kubelet_minor: Option<u32>,
) -> (u64, u64, String) {
    let Some(cfg) = kubelet else {
        return (
            DEFAULT_INITIAL_SECS,
            DEFAULT_CAP_SECS,
            "kubelet defaults (the node's configz was not readable)".into(),
        );
    };
    let reduced = cfg
        .feature_gates
        .get("ReduceDefaultCrashLoopBackOffDecay")
        .copied()
        .unwrap_or(false);
    let (initial, mut cap) = if reduced {
        (1, 60)
    } else {
        (DEFAULT_INITIAL_SECS, DEFAULT_CAP_SECS)
    };
    // KubeletCrashLoopBackOffMax is on by default from 1.35.
    let max_gate = cfg
        .feature_gates
        .get("KubeletCrashLoopBackOffMax")
        .copied()
        .unwrap_or(kubelet_minor.is_some_and(|m| m >= 35));
    let mut initial = initial;
    if let (true, Some(max)) = (max_gate, cfg.max_container_restart_period_secs) {
        // With the gate on, the configured period is the cap, whatever the other gate says
        // (kubelet.go, newCrashLoopBackOff): the kubelet defaults it to 5m0s, so under
        // ReduceDefaultCrashLoopBackOffDecay the cap stays 5m0s unless the config lowers it.
        cap = max.max(1);
        // The kubelet starts at the cap when the cap is below the initial delay: with
        // maxContainerRestartPeriod 5s every delay, the first one too, is 5s (not 10s).
        initial = initial.min(cap);
    }
    let from = match cfg.read_from.as_deref() {
        Some(other) if other != node => format!(
            "the kubelet config of node {other} (same kubelet version, runtime and pool as {node})"
        ),
        _ => format!("node {node}'s kubelet config"),
    };
    (initial, cap, from)
}

/// The delay the kubelet applies before restart number `restarts + 1`.
pub fn estimate(restarts: i32, initial: u64, cap: u64) -> u64 {
    let doublings = restarts.saturating_sub(1).clamp(0, 32) as u32;
    initial.saturating_mul(1u64 << doublings).min(cap)
}

/// Reads the delay out of `back-off 1m20s restarting failed container=...`.
pub fn delay_from_message(message: &str) -> Option<u64> {
    let rest = message.strip_prefix("back-off ")?;
    parse_go_duration(rest.split_whitespace().next()?)
}

/// Whole seconds in Go's time.Duration formatting (`40s`, `1m20s`, `5m0s`, `1h0m0s`, `500ms`),
/// read by the one duration parser. None when unparseable or negative.
pub fn parse_go_duration(s: &str) -> Option<u64> {
    crate::duration::parse(s)
        .ok()
        .and_then(|d| u64::try_from(d.as_secs()).ok())
}

pub use crate::duration::go as go_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kubelet_waiting_message() {
        assert_eq!(
            delay_from_message("back-off 40s restarting failed container=app pod=api_shop(1)"),
            Some(40)
        );
        assert_eq!(
            delay_from_message("back-off 1m20s restarting failed container=app pod=x"),
            Some(80)
        );
        assert_eq!(
            delay_from_message("back-off 5m0s restarting failed container=app pod=x"),
            Some(300)
        );
        assert_eq!(delay_from_message("something else"), None);
    }

    #[test]
    fn doubling_is_capped() {
        let seq: Vec<u64> = (1..=8).map(|r| estimate(r, 10, 300)).collect();
        assert_eq!(seq, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(estimate(1000, 10, 300), 300);
    }

    #[test]
    fn kubelet_config_lowers_the_cap_only_with_the_gate() {
        let cfg = KubeletConfig {
            max_container_restart_period_secs: Some(30),
            ..Default::default()
        };
        assert_eq!(settings("n", Some(&cfg), Some(35)).1, 30);
        assert_eq!(settings("n", Some(&cfg), Some(33)).1, 300);
        assert_eq!(settings("n", None, Some(35)).1, 300);
    }

    /// The captured kubelet config of the testbed's node with one field changed: a cap under the
    /// 10 s initial delay is the first delay too, and the schedule says so.
    #[test]
    fn a_cap_under_ten_seconds_is_the_first_delay_too() {
        let state = crate::testing::scenario("segfault");
        let mut cfg = state.kubelet_configs["unloop-node"].clone();
        cfg.max_container_restart_period_secs = Some(5);
        let (initial, cap, _) = settings("unloop-node", Some(&cfg), Some(35));
        assert_eq!((initial, cap), (5, 5));
        // The gate off (before 1.35, not set): the defaults.
        assert_eq!(settings("unloop-node", Some(&cfg), Some(34)).0, 10);
        // Above 10 s the initial delay stays.
        cfg.max_container_restart_period_secs = Some(30);
        assert_eq!(settings("unloop-node", Some(&cfg), Some(35)).0, 10);
        // ReduceDefaultCrashLoopBackOffDecay: 1 s initial, below any cap.
        cfg.feature_gates
            .insert("ReduceDefaultCrashLoopBackOffDecay".into(), true);
        cfg.max_container_restart_period_secs = Some(5);
        assert_eq!(
            settings("unloop-node", Some(&cfg), Some(35)),
            (1, 5, "node unloop-node's kubelet config".into())
        );
        // Its 60 s cap holds only without KubeletCrashLoopBackOffMax: from 1.35 the configured
        // period replaces it, and configz shows the kubelet's default 5m0s when none is set.
        cfg.max_container_restart_period_secs = Some(300);
        assert_eq!(settings("unloop-node", Some(&cfg), Some(35)).1, 300);
        cfg.max_container_restart_period_secs = Some(120);
        assert_eq!(settings("unloop-node", Some(&cfg), Some(35)).1, 120);
        assert_eq!(
            settings("unloop-node", Some(&cfg), Some(34)),
            (1, 60, "node unloop-node's kubelet config".into())
        );
    }

    /// The 1.35 kubelet leaves a crashed run in state.terminated for most of the delay that
    /// follows it: the captured dependency-dns container (5 restarts, its 6th run just ended) is in
    /// backoff all the same, its next retry that run's end plus the delay before restart 6. Under
    /// restartPolicy Never nothing restarts it, and there is no backoff.
    #[test]
    fn a_crashed_run_still_in_state_terminated_is_in_backoff() {
        let mut state = crate::testing::scenario("dependency-dns");
        let now = crate::testing::now(&state);
        let mut spec = state.pods[0].spec.clone().unwrap();
        let cs = crate::testing::status(&mut state).clone();
        let ended = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
        let ended = ended.finished_at.as_ref().unwrap().0;
        let b = timeline(Some(&spec), &cs, "unloop-node", None, Some(35), now)
            .expect("a crash loop between two runs");
        assert_eq!(b.delay_secs, 160);
        assert_eq!(b.last_finished_at, Some(ended));
        assert_eq!(
            b.next_retry_at,
            Some(ended + SignedDuration::from_secs(160))
        );
        spec.restart_policy = Some("Never".into());
        assert_eq!(
            timeline(Some(&spec), &cs, "unloop-node", None, Some(35), now),
            None
        );
    }

    /// The captured crash-looping container, its waiting message gone (the delay is then
    /// computed), on a node whose cap is 5 s: the delay and the next retry are 5 s, the
    /// schedule reads as every delay the cap.
    #[test]
    fn the_next_retry_under_a_five_second_cap() {
        let mut state = crate::testing::scenario("segfault");
        let now = crate::testing::now(&state);
        let mut cfg = state.kubelet_configs["unloop-node"].clone();
        cfg.max_container_restart_period_secs = Some(5);
        let cs = crate::testing::status(&mut state);
        let w = cs.state.as_mut().unwrap();
        *w = k8s_openapi::api::core::v1::ContainerState {
            waiting: Some(k8s_openapi::api::core::v1::ContainerStateWaiting {
                reason: Some("CrashLoopBackOff".into()),
                message: None,
            }),
            ..Default::default()
        };
        let b = timeline(None, cs, "unloop-node", Some(&cfg), Some(35), now).unwrap();
        assert_eq!((b.initial_secs, b.cap_secs, b.delay_secs), (5, 5, 5));
        assert_eq!(b.delay_before(2), 5);
        assert_eq!(
            b.next_retry_at,
            b.last_finished_at.map(|f| f + SignedDuration::from_secs(5))
        );
        assert!(
            b.schedule().starts_with("every delay is 5s"),
            "{}",
            b.schedule()
        );
    }

    #[test]
    fn the_schedule_before_each_restart_grows_to_the_cap() {
        let b = Backoff {
            restart_count: 8,
            delay_secs: 300,
            delay_from: "",
            initial_secs: 10,
            cap_secs: 300,
            settings_from: String::new(),
            last_finished_at: None,
            next_retry_at: None,
            next_retry_in_secs: None,
            reset_after_secs: RESET_AFTER_SECS,
        };
        let seq: Vec<u64> = (1..=9).map(|k| b.delay_before(k)).collect();
        assert_eq!(seq, vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.capped_from(), Some(7));
        assert_eq!(
            Backoff {
                restart_count: 2,
                ..b
            }
            .capped_from(),
            None
        );
    }

    #[test]
    fn go_durations_round_trip() {
        for s in [5, 40, 80, 300, 3725] {
            assert_eq!(parse_go_duration(&go_duration(s)), Some(s));
        }
    }
}
