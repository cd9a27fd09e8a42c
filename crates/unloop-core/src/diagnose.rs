//! From cluster state to diagnoses: find the troubled containers, run the cause rules, rank the
//! causes and roll replicas of one workload up into one verdict.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Event, Pod};
use schemars::JsonSchema;
use serde::Serialize;

use crate::backoff::{self, Backoff};
use crate::causes;
use crate::exit;
use crate::gap::GapSummary;
use crate::jobs;
use crate::logscan;
use crate::roots::{self, Root, SharedRoot};
use crate::selector::Selector;
use crate::state::{ClusterState, ContainerLog, Gap, Scope};
use crate::status::{self, Role};
use crate::subject::{About, Finding, Subject, event_time};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy, RemedyKind};
use crate::workload::{self, Workload, WorkloadKind};

pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// What to diagnose.
#[derive(Debug, Clone)]
pub struct Query {
    /// Namespaces to look at; empty means all in the state.
    pub namespaces: Vec<String>,
    pub selector: Option<Selector>,
    pub target: Option<Target>,
    /// A pod that has not started after this long, with warning events, is stuck (`--stuck-after`).
    pub stuck_after_secs: i64,
    /// A restarted container that has run steadily this long is recovered (`--settle`).
    pub settle_secs: i64,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            namespaces: Vec::new(),
            selector: None,
            target: None,
            stuck_after_secs: status::DEFAULT_STUCK_AFTER_SECS,
            settle_secs: status::DEFAULT_SETTLE_SECS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pod(String),
    Workload(WorkloadKind, String),
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema_version: u32,
    /// The moment the diagnosis describes: now for a live cluster, the capture time for a snapshot.
    pub as_of: Timestamp,
    pub scope: Scope,
    /// Pods looked at (after namespace, selector and target filters).
    pub pods_scanned: usize,
    pub diagnoses: Vec<Diagnosis>,
    /// Containers that restarted recently but have run steadily since: not trouble, not counted in
    /// the exit code, listed so that a restart count does not go unexplained.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<Recovered>,
    /// Evidence that could not be read, and why.
    pub gaps: Vec<Gap>,
    /// The gaps, one entry per kind: what the human and markdown reports print.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gap_summary: Vec<GapSummary>,
    /// Roots that several workloads fail on (one missing Secret, one dependency Service, one node,
    /// one image or registry), each said once with its victims; reports print them first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_roots: Vec<SharedRoot>,
}

/// A container that restarted and has run steadily since (see [`status::recovered`]).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    pub namespace: String,
    pub workload: Workload,
    pub pod: String,
    pub container: String,
    pub restarts: i32,
    /// When the current, steady run began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Timestamp>,
    /// How the last crashed run ended (when, exit code, reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitInfo>,
    /// The lines of the crashed run's log that explain it, when its log was read.
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub namespace: String,
    /// `deploy/api`, `sts/db`, `job/x`, or `pod/x` for a bare pod (one string in JSON).
    pub workload: Workload,
    /// The replica the details below come from: the one that restarted most.
    pub pod: String,
    /// Every troubled replica of the workload with this container in trouble.
    pub pods: Vec<PodBrief>,
    pub container: String,
    pub role: Role,
    /// STATUS as `kubectl get pods` shows it for `pod`.
    pub status: String,
    pub restarts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Ranked, most likely first.
    pub causes: Vec<Cause>,
    pub remedies: Vec<Remedy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogExcerpt>,
    pub events: Vec<EventBrief>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeBrief>,
    /// What the top cause is about when other workloads can fail on it too (see
    /// [`Report::shared_roots`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
}

impl Diagnosis {
    pub fn top(&self) -> &Cause {
        &self.causes[0]
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodBrief {
    pub name: String,
    pub status: String,
    pub restarts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    pub code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub meaning: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran_for_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogExcerpt {
    pub previous: bool,
    pub truncated: bool,
    /// The lines that explain the crash, with their line numbers in the tail read.
    pub highlights: Vec<LogLine>,
    /// The last lines before the container stopped.
    pub tail: Vec<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogLine {
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBrief {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeBrief {
    pub name: String,
    pub ready: bool,
    /// Pressure conditions that are True.
    pub pressure: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
}

/// Events listed per diagnosis, newest last.
const MAX_EVENTS: usize = 8;
const MAX_HIGHLIGHTS: usize = 6;

/// Diagnoses every troubled pod the query selects. Pure: same state, query and `now`, same report.
pub fn diagnose(state: &ClusterState, query: &Query, now: Timestamp) -> Report {
    let pods: Vec<&Pod> = state
        .pods
        .iter()
        .filter(|p| selected(state, query, p))
        .collect();
    let events_by_uid = index_events(&state.events);
    let node_events = index_node_events(&state.events);
    let logs = index_logs(&state.logs);
    let mut groups: BTreeMap<(String, Workload, String), Vec<Diagnosis>> = BTreeMap::new();
    let mut recovered = Vec::new();
    for pod in &pods {
        let (diagnoses, calm) =
            diagnose_pod(state, query, pod, now, &events_by_uid, &node_events, &logs);
        recovered.extend(calm);
        if diagnoses.is_empty() {
            continue;
        }
        let w = workload::of_pod(state, pod);
        for d in diagnoses {
            groups
                .entry((d.namespace.clone(), w.clone(), d.container.clone()))
                .or_default()
                .push(d);
        }
    }
    let mut diagnoses: Vec<Diagnosis> = groups.into_values().map(roll_up).collect();
    diagnoses.extend(
        state
            .jobs
            .iter()
            .filter(|j| job_selected(query, j))
            .filter_map(|j| jobs::failed_without_pods(state, j)),
    );
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        as_of: now,
        scope: state.scope.clone(),
        pods_scanned: pods.len(),
        shared_roots: roots::shared(&diagnoses),
        diagnoses,
        recovered,
        gaps: state.gaps.clone(),
        gap_summary: crate::gap::summarise(&state.gaps),
    }
}

/// Whether the query selects a Job (for a Job whose pods are gone): its namespace, its name or
/// its CronJob as the target, its pod template's labels for a selector.
fn job_selected(q: &Query, job: &k8s_openapi::api::batch::v1::Job) -> bool {
    let ns = job.metadata.namespace.as_deref().unwrap_or_default();
    if !q.namespaces.is_empty() && !q.namespaces.iter().any(|n| n == ns) {
        return false;
    }
    if let Some(sel) = &q.selector {
        let labels = job
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref());
        if !sel.matches(labels) {
            return false;
        }
    }
    match &q.target {
        None => true,
        Some(Target::Pod(_)) => false,
        Some(Target::Workload(kind, name)) => {
            let w = jobs::workload_of(job);
            (w.kind == *kind && &w.name == name)
                || (*kind == WorkloadKind::Job && job.metadata.name.as_deref() == Some(name))
        }
    }
}

fn selected(state: &ClusterState, q: &Query, pod: &Pod) -> bool {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    if !q.namespaces.is_empty() && !q.namespaces.iter().any(|n| n == ns) {
        return false;
    }
    if let Some(sel) = &q.selector
        && !sel.matches(pod.metadata.labels.as_ref())
    {
        return false;
    }
    match &q.target {
        None => true,
        Some(Target::Pod(name)) => pod.metadata.name.as_deref() == Some(name.as_str()),
        Some(Target::Workload(kind, name)) => {
            let w = workload::of_pod(state, pod);
            (w.kind == *kind && &w.name == name)
                // `rs/x` also selects pods of a Deployment's ReplicaSet x.
                || (*kind == WorkloadKind::ReplicaSet
                    && pod.metadata.owner_references.iter().flatten().any(|r| r.kind == "ReplicaSet" && &r.name == name))
                || (*kind == WorkloadKind::Job
                    && pod.metadata.owner_references.iter().flatten().any(|r| r.kind == "Job" && &r.name == name))
        }
    }
}

fn index_events(events: &[Event]) -> HashMap<&str, Vec<&Event>> {
    let mut map: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events {
        if e.involved_object.kind.as_deref() == Some("Pod")
            && let Some(uid) = e.involved_object.uid.as_deref()
        {
            map.entry(uid).or_default().push(e);
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|e| event_time(e));
    }
    map
}

/// A container's log, looked up by (namespace, pod, container, previous).
type LogIndex<'a> = HashMap<(&'a str, &'a str, &'a str, bool), &'a ContainerLog>;

/// Logs by container, built once: a lookup per container must not scan every log (a pod of
/// 20,000 containers made that quadratic). The first of duplicates wins, as a scan would find it.
fn index_logs(logs: &[ContainerLog]) -> LogIndex<'_> {
    let mut map = LogIndex::with_capacity(logs.len());
    for l in logs {
        map.entry((
            l.namespace.as_str(),
            l.pod.as_str(),
            l.container.as_str(),
            l.previous,
        ))
        .or_insert(l);
    }
    map
}

fn index_node_events(events: &[Event]) -> HashMap<&str, Vec<&Event>> {
    let mut map: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("Node"))
    {
        if let Some(name) = e.involved_object.name.as_deref() {
            map.entry(name).or_default().push(e);
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|e| event_time(e));
    }
    map
}

/// The diagnoses of one pod's troubled containers, and its containers that have recovered.
fn diagnose_pod(
    state: &ClusterState,
    query: &Query,
    pod: &Pod,
    now: Timestamp,
    events_by_uid: &HashMap<&str, Vec<&Event>>,
    node_events: &HashMap<&str, Vec<&Event>>,
    logs: &LogIndex<'_>,
) -> (Vec<Diagnosis>, Vec<Recovered>) {
    let Some(spec) = pod.spec.as_ref() else {
        return (Vec::new(), Vec::new());
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let (calm, troubled): (Vec<_>, Vec<_>) = status::troubled_containers(pod, now)
        .into_iter()
        .partition(|(_, cs)| status::recovered(cs, now, query.settle_secs));
    let recovered = calm
        .into_iter()
        .map(|(_, cs)| recovered_brief(state, pod, cs, logs))
        .collect();
    let mut troubled: Vec<(Role, Option<&k8s_openapi::api::core::v1::ContainerStatus>)> =
        troubled.into_iter().map(|(r, c)| (r, Some(c))).collect();
    let failure = status::pod_failure(pod);
    // A pod that never started: stuck once past the grace period, and only with the warnings
    // that say why (a slow image pull has none).
    let stuck = status::stuck_since(pod, now, query.stuck_after_secs).filter(|_| {
        events_by_uid
            .get(uid)
            .is_some_and(|es| es.iter().any(|e| e.type_.as_deref() == Some("Warning")))
    });
    if troubled.is_empty() {
        if failure.is_none() && stuck.is_none() {
            return (Vec::new(), recovered);
        }
        // An evicted pod: attribute it to the container its message names, or the first one.
        // A stuck pod: to its first container, with its waiting status when it has one.
        let first = spec.containers.first().map(|c| c.name.as_str());
        let cs = stuck.and(
            pod.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|l| l.iter().find(|c| Some(c.name.as_str()) == first)),
        );
        troubled.push((Role::Main, cs));
    }
    let node_name = spec.node_name.as_deref();
    let mut ctx = PodContext::new(
        state,
        pod,
        now,
        events_by_uid.get(uid).cloned().unwrap_or_default(),
        node_name
            .and_then(|n| node_events.get(n))
            .cloned()
            .unwrap_or_default(),
        logs,
    );
    ctx.stuck_since = stuck;
    let mut out = Vec::new();
    for (role, cs) in troubled {
        let name = match cs {
            Some(c) => c.name.clone(),
            None => failure
                .and_then(|f| evicted_container(f.message))
                .unwrap_or_else(|| {
                    spec.containers
                        .first()
                        .map(|c| c.name.clone())
                        .unwrap_or_default()
                }),
        };
        if let Some(subject) = ctx.subject(role, cs, &name) {
            out.push(assemble(&subject, node_name, &ctx.pod_status));
        }
    }
    (out, recovered)
}

/// What a recovered container's last crash was: when, how, and what its log said.
fn recovered_brief(
    state: &ClusterState,
    pod: &Pod,
    cs: &k8s_openapi::api::core::v1::ContainerStatus,
    logs: &LogIndex<'_>,
) -> Recovered {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let log = logs
        .get(&(ns, name, cs.name.as_str(), true))
        .map(|l| {
            let scan = logscan::scan(&l.text);
            let lines: Vec<String> = scan
                .highlights(MAX_HIGHLIGHTS)
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            if lines.is_empty() {
                scan.tail.iter().rev().take(3).rev().cloned().collect()
            } else {
                lines
            }
        })
        .unwrap_or_default();
    Recovered {
        namespace: ns.to_string(),
        workload: workload::of_pod(state, pod),
        pod: name.to_string(),
        container: cs.name.clone(),
        restarts: cs.restart_count,
        running_since: cs
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0),
        last_exit: last.map(|t| ExitInfo {
            code: t.exit_code,
            reason: t.reason.clone(),
            signal: exit::signal_of(t.exit_code),
            meaning: exit::meaning(t.exit_code, t.reason.as_deref(), true),
            ran_for_secs: match (&t.started_at, &t.finished_at) {
                (Some(s), Some(f)) if s.0.as_second() > 0 && s.0 <= f.0 => {
                    Some(f.0.duration_since(s.0).as_secs_f64())
                }
                _ => None,
            },
            finished_at: t.finished_at.as_ref().map(|f| f.0),
            message: t.message.clone().filter(|m| !m.is_empty()),
        }),
        log,
    }
}

/// What the containers of one pod share: its events, node, owner and revisions.
struct PodContext<'a, 'l> {
    state: &'a ClusterState,
    now: Timestamp,
    pod: &'a Pod,
    events: Vec<&'a Event>,
    node: Option<&'a k8s_openapi::api::core::v1::Node>,
    node_events: Vec<&'a Event>,
    workload: Workload,
    revisions: Vec<workload::Revision<'a>>,
    revision: Option<u64>,
    // Specs by name and the logs by container, once per pod: looking each troubled container up
    // in the lists is quadratic in the containers of a pod.
    main_specs: HashMap<&'a str, &'a Container>,
    init_specs: HashMap<&'a str, &'a Container>,
    logs: &'l LogIndex<'a>,
    /// The pod's STATUS reads every container: once per pod, not once per troubled container.
    pod_status: String,
    /// Since when the pod has waited to start, when it is stuck.
    stuck_since: Option<Timestamp>,
}

impl<'a, 'l> PodContext<'a, 'l> {
    fn new(
        state: &'a ClusterState,
        pod: &'a Pod,
        now: Timestamp,
        events: Vec<&'a Event>,
        node_events: Vec<&'a Event>,
        logs: &'l LogIndex<'a>,
    ) -> Self {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| state.node(n));
        let w = workload::of_pod(state, pod);
        let revisions = if w.kind == WorkloadKind::Deployment {
            workload::revisions(state, ns, &w.name)
        } else {
            Vec::new()
        };
        let revision = workload::revision_of_pod(&revisions, pod);
        let spec = pod.spec.as_ref();
        let main_specs = spec
            .into_iter()
            .flat_map(|s| s.containers.iter().rev())
            .map(|c| (c.name.as_str(), c))
            .collect();
        let init_specs = spec
            .into_iter()
            .flat_map(|s| s.init_containers.iter().flatten().rev())
            .map(|c| (c.name.as_str(), c))
            .collect();
        PodContext {
            state,
            now,
            pod,
            events,
            node,
            node_events,
            workload: w,
            revisions,
            revision,
            main_specs,
            init_specs,
            logs,
            pod_status: status::pod_status(pod),
            stuck_since: None,
        }
    }

    /// The subject of the rules for container `name` in `role`, None when the spec lacks it.
    fn subject(
        &self,
        role: Role,
        status: Option<&'a k8s_openapi::api::core::v1::ContainerStatus>,
        name: &str,
    ) -> Option<Subject<'a>> {
        let container_spec = match role {
            Role::Main => self.main_specs.get(name).copied(),
            Role::Init | Role::Sidecar => self.init_specs.get(name).copied(),
        }?;
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or_default();
        let pod_name = self.pod.metadata.name.as_deref().unwrap_or_default();
        let log = self
            .logs
            .get(&(ns, pod_name, name, true))
            .or_else(|| self.logs.get(&(ns, pod_name, name, false)))
            .copied();
        Some(Subject {
            state: self.state,
            now: self.now,
            pod: self.pod,
            namespace: ns,
            pod_name,
            spec: container_spec,
            status,
            role,
            workload: self.workload.clone(),
            events: self.events.clone(),
            node: self.node,
            node_events: self.node_events.clone(),
            log,
            scan: log.map(|l| logscan::scan(&l.text)).unwrap_or_default(),
            revisions: self.revisions.clone(),
            revision: self.revision,
            stuck_since: self.stuck_since,
        })
    }
}

/// The subject of the rules for any container of `pod`, troubled or not: unit tests run one rule
/// on a captured pod through it.
#[cfg(test)]
pub(crate) fn subject_of<'a>(
    state: &'a ClusterState,
    pod: &'a Pod,
    container: &str,
    now: Timestamp,
) -> Option<Subject<'a>> {
    let spec = pod.spec.as_ref()?;
    let status = pod.status.as_ref();
    let (role, statuses) = if spec.containers.iter().any(|c| c.name == container) {
        (
            Role::Main,
            status.and_then(|s| s.container_statuses.as_ref()),
        )
    } else {
        let c = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == container)?;
        let role = if c.restart_policy.as_deref() == Some("Always") {
            Role::Sidecar
        } else {
            Role::Init
        };
        (
            role,
            status.and_then(|s| s.init_container_statuses.as_ref()),
        )
    };
    let cs = statuses.into_iter().flatten().find(|c| c.name == container);
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let node_name = spec.node_name.as_deref().unwrap_or_default();
    let events = index_events(&state.events).remove(uid).unwrap_or_default();
    let node_events = index_node_events(&state.events)
        .remove(node_name)
        .unwrap_or_default();
    let logs = index_logs(&state.logs);
    let mut ctx = PodContext::new(state, pod, now, events, node_events, &logs);
    ctx.stuck_since = status::stuck_since(pod, now, status::DEFAULT_STUCK_AFTER_SECS);
    ctx.subject(role, cs, container)
}

/// The container an eviction message names ("... Container cache was using 67880Ki, ...").
fn evicted_container(msg: &str) -> Option<String> {
    let rest = msg.split("Container ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

fn assemble(s: &Subject, node_name: Option<&str>, pod_status: &str) -> Diagnosis {
    let (causes, remedies, root) = rank(s, causes::detect(s));
    let run = s.last_run();
    let exit = run.map(|t| ExitInfo {
        code: t.exit_code,
        reason: t.reason.clone(),
        signal: exit::signal_of(t.exit_code),
        meaning: {
            let meaning = exit::meaning(t.exit_code, t.reason.as_deref(), s.long_running());
            // Where the container's own restart settings decide, the pod's restartPolicy tells
            // nothing: say whether this exit restarts it (a rule) or ends it for good.
            let on = s.restart_on(t.exit_code);
            if on.container_decides() {
                format!("{meaning}; {}", on.sentence())
            } else {
                meaning
            }
        },
        ran_for_secs: s.ran_for_secs(),
        finished_at: t.finished_at.as_ref().map(|f| f.0),
        message: t.message.clone().filter(|m| !m.is_empty()),
    });
    let kubelet_minor = s
        .node
        .and_then(|n| n.status.as_ref())
        .and_then(|st| st.node_info.as_ref())
        .and_then(|i| {
            i.kubelet_version
                .split('.')
                .nth(1)
                .and_then(|m| m.parse().ok())
        });
    let backoff = s.status.and_then(|cs| {
        backoff::timeline(
            s.pod.spec.as_ref(),
            cs,
            node_name.unwrap_or_default(),
            node_name.and_then(|n| s.state.kubelet_configs.get(n)),
            kubelet_minor,
            s.now,
        )
    });
    let logs = s.log.map(|l| LogExcerpt {
        previous: l.previous,
        truncated: l.truncated,
        highlights: s
            .scan
            .highlights(MAX_HIGHLIGHTS)
            .into_iter()
            .map(|(line, text)| LogLine { line, text })
            .collect(),
        tail: s.scan.tail.clone(),
    });
    let events = s
        .events
        .iter()
        .rev()
        .take(MAX_EVENTS)
        .rev()
        .map(|e| EventBrief {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default().trim().to_string(),
            count: e.count.unwrap_or(1),
            last_seen: event_time(e),
        })
        .collect();
    let node = s.node.map(|n| {
        let conditions = n.status.as_ref().and_then(|st| st.conditions.as_ref());
        NodeBrief {
            name: n.metadata.name.clone().unwrap_or_default(),
            ready: conditions
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            pressure: conditions
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c.type_.ends_with("Pressure") && c.status == "True")
                        .map(|c| c.type_.clone())
                        .collect()
                })
                .unwrap_or_default(),
            architecture: n
                .status
                .as_ref()
                .and_then(|st| st.node_info.as_ref())
                .map(|i| i.architecture.clone()),
            kubelet_version: n
                .status
                .as_ref()
                .and_then(|st| st.node_info.as_ref())
                .map(|i| i.kubelet_version.clone()),
        }
    });
    let restarts = s.status.map(|c| c.restart_count).unwrap_or(0);
    Diagnosis {
        namespace: s.namespace.to_string(),
        workload: s.workload.clone(),
        pod: s.pod_name.to_string(),
        pods: vec![PodBrief {
            name: s.pod_name.to_string(),
            status: pod_status.to_string(),
            restarts,
            node: node_name.map(str::to_string),
        }],
        container: s.container().to_string(),
        role: s.role,
        status: pod_status.to_string(),
        restarts,
        exit,
        backoff,
        causes,
        remedies,
        logs,
        events,
        node,
        root,
    }
}

/// The order of causes in a diagnosis: higher confidence first, then the declared priority of the
/// cause ([`CauseId::priority`], the order of docs/causes.md).
fn ranking(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    b.cause
        .confidence
        .cmp(&a.cause.confidence)
        .then(a.cause.id.priority().cmp(&b.cause.id.priority()))
}

/// Orders causes (see [`ranking`]), drops the generic app-error
/// when something specific was found, and gathers remedies in cause order without repeats, with
/// "retry now" last.
fn rank(s: &Subject, mut findings: Vec<Finding>) -> (Vec<Cause>, Vec<Remedy>, Option<Root>) {
    findings.sort_by(ranking);
    // One finding per cause and thing it is about (the best ranked); the same cause about two
    // things (two variables, a ConfigMap and a Secret) is reported twice.
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert((f.cause.id, f.about.clone())));
    if findings
        .iter()
        .any(|f| f.cause.id != CauseId::AppError && f.cause.confidence >= Confidence::Medium)
    {
        findings.retain(|f| f.cause.id != CauseId::AppError);
    }
    if findings.is_empty() {
        findings.push(unknown(s));
    }
    // A bad rollout says when; the next cause says what the new revision dies of.
    if findings.len() > 1 && findings[0].cause.id == CauseId::BadRollout {
        let why = format!("{}: {}", findings[1].cause.id, findings[1].cause.summary);
        let source = format!("pod/{} in the new revision", s.pod_name);
        findings[0]
            .cause
            .evidence
            .push(Evidence::new(EvidenceKind::Field, source, why));
        let first = findings[1].cause.evidence.first().cloned();
        findings[0].cause.evidence.extend(first);
    }
    let mut remedies: Vec<Remedy> = Vec::new();
    let mut retry: Option<Remedy> = None;
    for f in &findings {
        for r in &f.remedies {
            if r.kind == RemedyKind::Retry {
                retry.get_or_insert_with(|| Remedy {
                    for_cause: None,
                    ..r.clone()
                });
            } else if !remedies
                .iter()
                .any(|x| x.kind == r.kind && x.script == r.script && x.title == r.title)
            {
                remedies.push(r.clone());
            }
        }
    }
    remedies.extend(retry);
    // The root is the top cause's: a bad rollout says when, not what.
    let root = findings
        .iter()
        .find(|f| f.cause.id != CauseId::BadRollout)
        .and_then(|f| roots::of_finding(s, f));
    (
        findings.into_iter().map(|f| f.cause).collect(),
        remedies,
        root,
    )
}

/// An honest "don't know", with everything gathered.
fn unknown(s: &Subject) -> Finding {
    let mut cause = Cause::new(
        CauseId::Unknown,
        Confidence::Low,
        "no rule matched; here is everything unloop gathered",
    );
    if let Some(r) = s.waiting_reason() {
        cause.evidence.push(s.field(
            "state.waiting",
            format!("{r}: {}", s.waiting_message().unwrap_or_default()),
        ));
    }
    cause.evidence.extend(s.termination_evidence());
    for l in s.scan.tail.iter().rev().take(3).rev() {
        cause.evidence.push(s.log_evidence(l));
    }
    for e in s
        .events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .rev()
        .take(3)
    {
        cause.evidence.push(s.event_evidence(e));
    }
    if s.log.is_none() {
        cause.evidence.push(Evidence::new(
            EvidenceKind::Log,
            s.log_source(),
            "no log was available",
        ));
    }
    Finding {
        about: About::Container,
        cause,
        remedies: vec![Remedy::inspect(
            CauseId::Unknown,
            "look at the pod in full",
            Some(s.kubectl(&["describe", "pod"], s.pod_name).into()),
        )],
    }
}

/// One verdict per workload and container: the details of the replica that restarted most, the
/// list of all troubled replicas, and a note when they disagree.
fn roll_up(mut group: Vec<Diagnosis>) -> Diagnosis {
    group.sort_by(|a, b| b.restarts.cmp(&a.restarts).then_with(|| a.pod.cmp(&b.pod)));
    let pods: Vec<PodBrief> = group.iter().flat_map(|d| d.pods.clone()).collect();
    let others: Vec<(String, CauseId)> = group
        .iter()
        .skip(1)
        .map(|d| (d.pod.clone(), d.top().id))
        .collect();
    let mut top = group.swap_remove(0);
    let n = pods.len();
    if n > 1 {
        let agree = others.iter().filter(|(_, id)| *id == top.top().id).count();
        let id = top.top().id;
        top.causes[0].evidence.push(Evidence::new(
            EvidenceKind::Field,
            format!("{} replicas", top.workload),
            format!("{} of {n} troubled pods point to {id}", agree + 1),
        ));
        for (pod, other) in others.iter().filter(|(_, x)| *x != id) {
            top.causes[0].evidence.push(Evidence::new(
                EvidenceKind::Field,
                format!("pod/{pod}"),
                format!("points to {other} instead"),
            ));
        }
    }
    top.pods = pods;
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn finding(id: CauseId, confidence: Confidence) -> Finding {
        Finding {
            about: About::Container,
            cause: Cause::new(id, confidence, id.as_str()),
            remedies: Vec::new(),
        }
    }

    fn ranked(findings: Vec<Finding>) -> Vec<(CauseId, Confidence)> {
        let state = testing::scenario("missing-env-var");
        let pod = &state.pods[0];
        let s = subject_of(&state, pod, "api", testing::now(&state)).unwrap();
        rank(&s, findings)
            .0
            .iter()
            .map(|c| (c.id, c.confidence))
            .collect()
    }

    #[test]
    fn equal_confidence_ranks_by_declared_priority() {
        use CauseId::*;
        use Confidence::*;
        assert_eq!(
            ranked(vec![
                finding(DependencyDns, High),
                finding(MissingEnvVar, High)
            ]),
            [(MissingEnvVar, High), (DependencyDns, High)]
        );
        assert_eq!(
            ranked(vec![
                finding(MissingEnvVar, Medium),
                finding(DependencyDns, High)
            ]),
            [(DependencyDns, High), (MissingEnvVar, Medium)]
        );
    }

    #[test]
    fn app_error_gives_way_to_a_specific_cause_and_nothing_is_unknown() {
        use CauseId::*;
        use Confidence::*;
        assert_eq!(
            ranked(vec![finding(AppError, Medium), finding(Segfault, Medium)]),
            [(Segfault, Medium)]
        );
        assert_eq!(
            ranked(vec![finding(AppError, Medium), finding(Segfault, Low)]),
            [(AppError, Medium), (Segfault, Low)]
        );
        assert_eq!(ranked(vec![]), [(Unknown, Low)]);
    }

    /// The captured Job whose container restarts on exit 3 in a `restartPolicy: Never` pod
    /// (restartPolicyRules): the exit says the rule restarts it, and no remedy re-runs the Job
    /// (the kubelet retries by itself; deleting the pod would fail the Job). Exit 4, outside the
    /// rule: the container has stopped for good, and re-running the Job is the retry.
    #[test]
    fn restart_rules_decide_what_an_exit_means_and_how_to_retry() {
        let mut state = testing::scenario("restart-rules");
        let now = testing::now(&state);
        let report = diagnose(&state, &Query::default(), now);
        let d = &report.diagnoses[0];
        assert_eq!(d.workload.to_string(), "job/import");
        assert_eq!(d.top().id, CauseId::DependencyDns);
        let meaning = &d.exit.as_ref().unwrap().meaning;
        assert!(
            meaning.contains("restartPolicyRules[0] (Restart on exit codes In [3]) match"),
            "{meaning}"
        );
        assert!(!meaning.contains("stopped for good"), "{meaning}");
        let titles: Vec<&str> = d.remedies.iter().map(|r| r.title.as_str()).collect();
        assert!(
            titles.iter().all(|t| !t.contains("run the Job again")),
            "{titles:?}"
        );
        assert!(
            titles.iter().any(|t| t.contains("nothing to re-run")),
            "{titles:?}"
        );

        testing::last_run(&mut state).exit_code = 4;
        let report = diagnose(&state, &Query::default(), now);
        let d = &report.diagnoses[0];
        let meaning = &d.exit.as_ref().unwrap().meaning;
        assert!(
            meaning.contains(
                "exit 4 is outside its restartPolicyRules (Restart on exit codes In [3])"
            ),
            "{meaning}"
        );
        assert!(meaning.contains("stopped for good"), "{meaning}");
        let titles: Vec<&str> = d.remedies.iter().map(|r| r.title.as_str()).collect();
        assert!(
            titles.iter().any(|t| t.contains("run the Job again")),
            "{titles:?}"
        );
    }

    #[test]
    fn a_captured_crash_is_diagnosed_and_a_healthy_pod_is_not() {
        let state = testing::scenario("missing-env-var");
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.diagnoses.len(), 1);
        let d = &report.diagnoses[0];
        assert_eq!(d.workload.to_string(), "deploy/api");
        assert_eq!(d.top().id, CauseId::MissingEnvVar);
        assert_eq!(d.top().confidence, Confidence::High);
        let healthy = testing::healthy();
        let report = diagnose(&healthy, &Query::default(), testing::now(&healthy));
        assert!(report.diagnoses.is_empty());
        assert_eq!(report.pods_scanned, 2);
    }

    #[test]
    fn a_container_that_restarted_once_and_runs_steadily_is_recovered_not_trouble() {
        let state = testing::scenario("recovered-after-crash");
        let now = testing::now(&state);
        let report = diagnose(&state, &Query::default(), now);
        assert!(report.diagnoses.is_empty());
        assert_eq!(report.recovered.len(), 1);
        let r = &report.recovered[0];
        assert_eq!(
            (r.workload.to_string().as_str(), r.container.as_str()),
            ("deploy/search", "search")
        );
        assert_eq!(r.restarts, 1);
        let exit = r.last_exit.as_ref().unwrap();
        assert_eq!(exit.code, 1);
        assert!(exit.finished_at.is_some());
        assert!(
            r.log.iter().any(|l| l.contains("cache /cache is cold")),
            "{:?}",
            r.log
        );
        // Not settled yet: in trouble, as before.
        let impatient = Query {
            settle_secs: 24 * 3600,
            ..Query::default()
        };
        let report = diagnose(&state, &impatient, now);
        assert_eq!(report.diagnoses.len(), 1);
        assert!(report.recovered.is_empty());
    }

    #[test]
    fn a_run_shorter_than_the_crashed_one_is_not_recovered() {
        let mut state = testing::scenario("recovered-after-crash");
        let now = testing::now(&state);
        // The crashed run lasted a day: the current run has not outlasted it.
        let t = testing::last_run(&mut state);
        let finished = t.finished_at.as_ref().unwrap().0;
        t.started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            finished - jiff::SignedDuration::from_hours(24),
        ));
        let report = diagnose(&state, &Query::default(), now);
        assert_eq!(report.diagnoses.len(), 1);
        assert!(report.recovered.is_empty());
    }

    #[test]
    fn a_target_selects_its_workload_only() {
        let state = testing::scenario("missing-env-var");
        let now = testing::now(&state);
        let query = |target| Query {
            target: Some(target),
            ..Query::default()
        };
        let api = Target::Workload(WorkloadKind::Deployment, "api".into());
        assert_eq!(diagnose(&state, &query(api), now).diagnoses.len(), 1);
        let other = Target::Workload(WorkloadKind::Deployment, "web".into());
        assert_eq!(diagnose(&state, &query(other), now).pods_scanned, 0);
    }
}
