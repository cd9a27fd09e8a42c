//! When to diagnose and when to call a workload recovered: pure decisions over what the watches
//! show, with the clock passed in. No I/O here; `agent.rs` feeds it and carries out its actions.
//!
//! - A workload is diagnosed once its troubled containers' evidence has been quiet for the
//!   debounce (a crash loop changes its status several times within a second), and at the latest
//!   `max_delay` after the first change, so steady churn cannot starve it.
//! - It is diagnosed again only when that evidence changes: a new dead instance, another waiting
//!   reason, a new kind of event. Restart counts alone do not count (they follow the instances).
//! - It is resolved once none of its pods has needed diagnosis for `resolve_after`; a workload
//!   that recovered before its first diagnosis is forgotten without a word.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Event, Pod};
use unloop_core::status;
use unloop_core::workload::Workload;

/// A workload, the unit the agent diagnoses and publishes about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub workload: Workload,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.workload)
    }
}

/// What the watches show of a workload's trouble, reduced to what decides a new diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub fingerprint: u64,
    /// The kubelet's latest report of trouble: the last crash's finish, or the time a pod
    /// condition turned false. The latency metric runs from here to the diagnosis.
    pub reported_at: Option<Timestamp>,
}

/// Adds one troubled pod's evidence to a workload's: per troubled container its name, its
/// latest dead instance (container id of the latest termination, current or last) with its exit
/// code and reason, and its waiting reason unless that is the back-off between two deaths (or
/// between two failed pulls: ImagePullBackOff counts as ErrImagePull); the
/// pod-level failure; the set of event reasons about the pod (not their counts).
///
/// A crash loop's cycle (back-off, running, dead, back-off) thus changes the evidence once, when
/// an instance dies: the restart in between says nothing new, and diagnosing it cost the API two
/// writes and a log read per cycle (`bench/agent.sh rest`).
pub fn add_pod(acc: &mut EvidenceBuilder, pod: &Pod, events: &[&Event], now: Timestamp) {
    let mut reported = Vec::new();
    let h = &mut acc.hasher;
    pod.metadata.uid.hash(h);
    if let Some(f) = status::pod_failure(pod) {
        f.reason.hash(h);
    }
    for (role, cs) in status::troubled_containers(pod, now) {
        format!("{role:?}").hash(h);
        cs.name.hash(h);
        let state = cs.state.as_ref();
        state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            .filter(|r| *r != "CrashLoopBackOff")
            // The kubelet alternates between a failed pull and the back-off before the next:
            // one state, as a crash loop's back-off is one with its deaths.
            .map(|r| {
                if r == "ImagePullBackOff" {
                    "ErrImagePull"
                } else {
                    r
                }
            })
            .hash(h);
        let current = state.and_then(|s| s.terminated.as_ref());
        let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        if let Some(t) = current.or(last) {
            (t.container_id.as_deref(), t.exit_code, t.reason.as_deref()).hash(h);
        }
        for t in [current, last].into_iter().flatten() {
            reported.push(t.finished_at.as_ref().map(|t| t.0));
        }
    }
    for c in pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
    {
        if c.type_ == "Ready" && c.status == "False" {
            reported.push(c.last_transition_time.as_ref().map(|t| t.0));
        }
    }
    let reasons: BTreeSet<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    reasons.hash(h);
    for t in reported {
        acc.reported(t);
    }
}

/// Builds one workload's [`Evidence`] from its troubled pods, in any order.
#[derive(Default)]
pub struct EvidenceBuilder {
    hasher: std::collections::hash_map::DefaultHasher,
    reported_at: Option<Timestamp>,
    /// Per-pod fingerprints, combined without regard to order.
    pods: u64,
}

impl EvidenceBuilder {
    fn reported(&mut self, t: Option<Timestamp>) {
        if let Some(t) = t {
            self.reported_at = Some(self.reported_at.map_or(t, |r| r.max(t)));
        }
    }

    /// Adds one pod, order-independently.
    pub fn pod(&mut self, pod: &Pod, events: &[&Event], now: Timestamp) {
        let mut one = EvidenceBuilder::default();
        add_pod(&mut one, pod, events, now);
        self.pods = self.pods.wrapping_add(one.hasher.finish());
        self.reported(one.reported_at);
    }

    pub fn finish(self) -> Evidence {
        Evidence {
            fingerprint: self.pods,
            reported_at: self.reported_at,
        }
    }
}

/// What the agent should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Diagnose the workload (again): its evidence is new and has settled.
    Diagnose(Key),
    /// The workload recovered after a published diagnosis: mark it resolved.
    Resolve(Key),
}

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time before a diagnosis.
    pub debounce: SignedDuration,
    /// The longest a changed workload waits for quiet.
    pub max_delay: SignedDuration,
    /// Time without trouble before a published diagnosis is resolved.
    pub resolve_after: SignedDuration,
    /// Wait before trying again after a diagnosis that could not be made or published.
    pub retry: SignedDuration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            debounce: SignedDuration::from_secs(3),
            max_delay: SignedDuration::from_secs(30),
            resolve_after: SignedDuration::from_secs(60),
            retry: SignedDuration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// The evidence now; None while the workload shows no trouble.
    current: Option<Evidence>,
    /// The evidence the last published diagnosis was made from.
    published: Option<u64>,
    first_seen: Timestamp,
    /// The first change not yet diagnosed (for `max_delay`).
    pending_since: Option<Timestamp>,
    due: Option<Timestamp>,
}

/// Every workload in trouble or recently recovered, and when to act on each.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    timing: Timing,
    entries: BTreeMap<Key, Entry>,
}

impl Tracker {
    pub fn new(timing: Timing) -> Tracker {
        Tracker {
            timing,
            entries: BTreeMap::new(),
        }
    }

    /// Takes the full set of troubled workloads as the watches show it at `now`.
    pub fn observe(&mut self, now: Timestamp, troubled: &BTreeMap<Key, Evidence>) {
        let t = self.timing;
        for (key, ev) in troubled {
            let e = self.entries.entry(key.clone()).or_insert(Entry {
                current: None,
                published: None,
                first_seen: now,
                pending_since: None,
                due: None,
            });
            let changed = e.current.map(|c| c.fingerprint) != Some(ev.fingerprint);
            e.current = Some(*ev);
            if !changed {
                continue;
            }
            if e.published == Some(ev.fingerprint) {
                // Back to what was published (a flap): nothing new to say.
                e.pending_since = None;
                e.due = None;
                continue;
            }
            let since = *e.pending_since.get_or_insert(now);
            e.due = Some((now + t.debounce).min(since + t.max_delay));
        }
        let mut forget = Vec::new();
        for (key, e) in self.entries.iter_mut() {
            if troubled.contains_key(key) || e.current.is_none() {
                continue;
            }
            e.current = None;
            e.pending_since = None;
            if e.published.is_some() {
                e.due = Some(now + t.resolve_after);
            } else {
                forget.push(key.clone());
            }
        }
        for k in forget {
            self.entries.remove(&k);
        }
    }

    /// The actions due at `now`, each returned once.
    pub fn due(&mut self, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        let mut resolved = Vec::new();
        for (key, e) in self.entries.iter_mut() {
            if e.due.is_none_or(|d| d > now) {
                continue;
            }
            e.due = None;
            if e.current.is_some() {
                out.push(Action::Diagnose(key.clone()));
            } else {
                out.push(Action::Resolve(key.clone()));
                resolved.push(key.clone());
            }
        }
        for k in resolved {
            self.entries.remove(&k);
        }
        out
    }

    /// The diagnosis of `key` was published from the evidence it had when it was taken.
    pub fn published(&mut self, key: &Key, fingerprint: u64) {
        if let Some(e) = self.entries.get_mut(key) {
            e.published = Some(fingerprint);
            if e.current.map(|c| c.fingerprint) == Some(fingerprint) {
                e.pending_since = None;
            }
        }
    }

    /// The diagnosis of `key` could not be made or published: try again later.
    pub fn failed(&mut self, key: &Key, now: Timestamp) {
        let retry = self.timing.retry;
        if let Some(e) = self.entries.get_mut(key)
            && e.current.is_some()
        {
            e.due = Some(e.due.map_or(now + retry, |d| d.min(now + retry)));
        }
    }

    /// The evidence of `key` now, if it is in trouble.
    pub fn evidence(&self, key: &Key) -> Option<Evidence> {
        self.entries.get(key).and_then(|e| e.current)
    }

    /// When the agent first saw `key` in trouble.
    pub fn first_seen(&self, key: &Key) -> Option<Timestamp> {
        self.entries.get(key).map(|e| e.first_seen)
    }

    /// The next moment an action falls due, to sleep until.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.entries.values().filter_map(|e| e.due).min()
    }

    /// Workloads in trouble now.
    pub fn troubled(&self) -> impl Iterator<Item = &Key> {
        self.entries
            .iter()
            .filter(|(_, e)| e.current.is_some())
            .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unloop_core::workload::WorkloadKind;

    fn key(name: &str) -> Key {
        Key {
            namespace: "shop".into(),
            workload: Workload {
                kind: WorkloadKind::Deployment,
                name: name.into(),
            },
        }
    }

    fn ev(fp: u64) -> Evidence {
        Evidence {
            fingerprint: fp,
            reported_at: None,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn seen(pairs: &[(&str, u64)]) -> BTreeMap<Key, Evidence> {
        pairs.iter().map(|(n, fp)| (key(n), ev(*fp))).collect()
    }

    #[test]
    fn a_burst_of_changes_is_diagnosed_once_after_it_settles() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 1)]));
        t.observe(at(1), &seen(&[("api", 2)]));
        t.observe(at(2), &seen(&[("api", 3)]));
        assert!(t.due(at(4)).is_empty(), "still changing 2 s ago");
        assert_eq!(t.due(at(5)), vec![Action::Diagnose(key("api"))]);
        assert!(t.due(at(6)).is_empty(), "each action is returned once");
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn steady_churn_cannot_postpone_a_diagnosis_past_the_max_delay() {
        let mut t = Tracker::new(Timing::default());
        let mut diagnosed_at = None;
        for s in 0..60 {
            t.observe(at(s), &seen(&[("api", s as u64)]));
            if !t.due(at(s)).is_empty() {
                diagnosed_at = Some(s);
                break;
            }
        }
        assert_eq!(diagnosed_at, Some(30));
    }

    #[test]
    fn unchanged_evidence_is_not_diagnosed_again_and_new_evidence_is() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 7)]));
        assert_eq!(t.due(at(3)).len(), 1);
        t.published(&key("api"), 7);
        for s in 4..100 {
            t.observe(at(s), &seen(&[("api", 7)]));
            assert!(t.due(at(s)).is_empty());
        }
        t.observe(at(100), &seen(&[("api", 8)]));
        assert_eq!(t.due(at(103)), vec![Action::Diagnose(key("api"))]);
    }

    #[test]
    fn a_flap_back_to_the_published_evidence_says_nothing_new() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 7)]));
        t.due(at(3));
        t.published(&key("api"), 7);
        t.observe(at(10), &seen(&[("api", 8)]));
        t.observe(at(11), &seen(&[("api", 7)]));
        assert!(t.due(at(20)).is_empty());
    }

    #[test]
    fn a_published_workload_is_resolved_once_it_stays_healthy() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 1), ("db", 2)]));
        t.due(at(3));
        t.published(&key("api"), 1);
        t.published(&key("db"), 2);
        t.observe(at(10), &seen(&[("db", 2)]));
        assert!(t.due(at(69)).is_empty(), "not yet a minute without trouble");
        assert_eq!(t.due(at(70)), vec![Action::Resolve(key("api"))]);
        assert_eq!(t.troubled().collect::<Vec<_>>(), vec![&key("db")]);
    }

    #[test]
    fn trouble_that_returns_before_the_resolve_delay_is_not_resolved() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 1)]));
        t.due(at(3));
        t.published(&key("api"), 1);
        t.observe(at(10), &seen(&[]));
        t.observe(at(20), &seen(&[("api", 1)]));
        assert!(t.due(at(200)).is_empty());
    }

    #[test]
    fn a_workload_that_recovers_before_its_first_diagnosis_is_forgotten() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 1)]));
        t.observe(at(1), &seen(&[]));
        assert!(t.due(at(500)).is_empty());
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn a_failed_diagnosis_is_tried_again() {
        let mut t = Tracker::new(Timing::default());
        t.observe(at(0), &seen(&[("api", 1)]));
        assert_eq!(t.due(at(3)).len(), 1);
        t.failed(&key("api"), at(3));
        assert!(t.due(at(32)).is_empty());
        assert_eq!(t.due(at(33)), vec![Action::Diagnose(key("api"))]);
    }
}
