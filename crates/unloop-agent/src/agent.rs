//! The agent's loop: the watches fill the stores, a scan of the stores feeds the tracker, and the
//! tracker's actions are carried out (diagnose and publish, or resolve). The decisions are in
//! `track`, `notify` and `lease`; this module does the I/O.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, ObjectReference, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use unloop_core::diagnose::{Diagnosis, diagnose};
use unloop_core::state::ContainerLog;
use unloop_core::workload::WorkloadKind;
use unloop_source::live::client::{self, Deadline, Reader};
use unloop_source::live::logs;

use crate::crd::{self, CrashDiagnosis, CrashDiagnosisSpec, Notified};
use crate::metrics::{self, Metrics};
use crate::notify::{self, Payload, Sender, Targets};
use crate::track::{self, Action, EvidenceBuilder, Key, Timing, Tracker};
use crate::{lease, view};

/// How the agent runs: from flags, environment variables or a ConfigMap mounted as env.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: client::Target,
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// Namespaces never diagnosed (kube-system, ...).
    pub exclude: Vec<String>,
    pub timing: Timing,
    /// At most one notification per workload, container and cause within this window.
    pub notify_window: SignedDuration,
    pub targets: Targets,
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub listen: SocketAddr,
    /// Publish an Event on the pod with each new verdict.
    pub events: bool,
    pub lease: Option<LeaseOptions>,
    /// The deadline of the reads one diagnosis makes (logs).
    pub read_timeout: Duration,
    pub log_tail_lines: i64,
    /// This replica's name (its pod name in a cluster).
    pub identity: String,
}

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub namespace: String,
    pub name: String,
    pub duration: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: client::Target::default(),
            namespaces: Vec::new(),
            exclude: Vec::new(),
            timing: Timing::default(),
            notify_window: SignedDuration::from_hours(1),
            targets: Targets::default(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            events: true,
            lease: None,
            read_timeout: Duration::from_secs(30),
            log_tail_lines: 200,
            identity: "unloop-agent".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Source(#[from] unloop_source::SourceError),
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: SocketAddr, why: String },
    #[error("{0}")]
    Setup(String),
}

/// Where the agent writes its structured log lines (the binary writes them as JSON to stderr).
pub type LogSink = Arc<dyn Fn(&str, &str, serde_json::Value) + Send + Sync>;

/// The stores the watches keep current.
#[derive(Clone)]
struct Stores {
    pods: Store<view::KeptPod>,
    events: Store<Event>,
    nodes: Store<Node>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    daemon_sets: Store<DaemonSet>,
    jobs: Store<Job>,
    diagnoses: Store<CrashDiagnosis>,
}

/// Starts one watch of kind `K` feeding a store; each change wakes the loop.
fn watch<K>(
    api: Api<K>,
    kind: &'static str,
    metrics: &Metrics,
    wake: &Arc<Notify>,
    log: &LogSink,
    mut keep: impl FnMut(&mut K) + Send + 'static,
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    metrics.expect(kind);
    let (metrics, wake, log) = (metrics.clone(), wake.clone(), log.clone());
    tokio::spawn(async move {
        let mut said_missing = false;
        let stream = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(move |o| keep(o))
            .reflect(writer);
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    metrics.listed(kind);
                    wake.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    metrics.watch_restart(kind);
                    if let Some(why) = missing_resource(&e, kind, &mut said_missing) {
                        log("error", &why, serde_json::json!({"kind": kind}));
                    }
                    log(
                        "warn",
                        "watch failed; restarting with backoff",
                        serde_json::json!({"kind": kind, "error": e.to_string()}),
                    );
                }
            }
        }
    });
    reader
}

/// The first time a watch's list is a 404, what to do about it: the API server does not serve the
/// kind, which for the agent's own resource means its CRD is not installed.
fn missing_resource(e: &watcher::Error, kind: &str, said: &mut bool) -> Option<String> {
    let watcher::Error::InitialListFailed(kube::Error::Api(s)) = e else {
        return None;
    };
    if s.code != 404 || std::mem::replace(said, true) {
        return None;
    }
    Some(if kind == "crashdiagnoses" {
        "the CrashDiagnosis CRD is not installed: nothing can be published until it is (unloop agent crd | kubectl apply --server-side -f -, or the chart)".to_string()
    } else {
        format!("the API server does not serve {kind} (404)")
    })
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

impl Stores {
    fn start(
        client: &Client,
        opts: &Options,
        metrics: &Metrics,
        wake: &Arc<Notify>,
        log: &LogSink,
    ) -> Stores {
        // One namespace: namespaced watches (and RBAC); otherwise cluster-wide, filtered here.
        let ns = match opts.namespaces.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let c = client;
        Stores {
            // Kept as they are deserialized (view::KeptPod).
            pods: watch(
                api(c, ns),
                "pods",
                metrics,
                wake,
                log,
                |_: &mut view::KeptPod| {},
            ),
            events: watch(api(c, ns), "events", metrics, wake, log, |e: &mut Event| {
                view::slim_meta(&mut e.metadata);
                if !view::keep_event(e) {
                    // Not evidence: kept as an empty shell so the store's bookkeeping holds.
                    e.message = None;
                }
            }),
            nodes: watch(
                Api::all(c.clone()),
                "nodes",
                metrics,
                wake,
                log,
                view::keep_node,
            ),
            replica_sets: watch(
                api(c, ns),
                "replicasets",
                metrics,
                wake,
                log,
                |o: &mut ReplicaSet| view::slim_meta(&mut o.metadata),
            ),
            deployments: watch(
                api(c, ns),
                "deployments",
                metrics,
                wake,
                log,
                |o: &mut Deployment| view::slim_meta(&mut o.metadata),
            ),
            stateful_sets: watch(
                api(c, ns),
                "statefulsets",
                metrics,
                wake,
                log,
                |o: &mut StatefulSet| view::slim_meta(&mut o.metadata),
            ),
            daemon_sets: watch(
                api(c, ns),
                "daemonsets",
                metrics,
                wake,
                log,
                |o: &mut DaemonSet| view::slim_meta(&mut o.metadata),
            ),
            jobs: watch(api(c, ns), "jobs", metrics, wake, log, |o: &mut Job| {
                view::slim_meta(&mut o.metadata)
            }),
            diagnoses: watch(
                api(c, ns),
                "crashdiagnoses",
                metrics,
                wake,
                log,
                |o: &mut CrashDiagnosis| view::slim_meta(&mut o.metadata),
            ),
        }
    }
}

fn in_scope(opts: &Options, ns: &str) -> bool {
    (opts.namespaces.is_empty() || opts.namespaces.iter().any(|n| n == ns))
        && !opts.exclude.iter().any(|n| n == ns)
}

/// The workloads in trouble now, each with its evidence.
fn scan(stores: &Stores, opts: &Options, now: Timestamp) -> BTreeMap<Key, track::Evidence> {
    let mut events: HashMap<String, Vec<Arc<Event>>> = HashMap::new();
    for e in stores.events.state() {
        if let Some(uid) = e.involved_object.uid.clone() {
            events.entry(uid).or_default().push(e);
        }
    }
    let mut builders: BTreeMap<Key, EvidenceBuilder> = BTreeMap::new();
    for kept in stores.pods.state() {
        // A packed pod was healthy when it arrived, and still is (view::KeptPod::whole).
        let Some(pod) = kept.whole() else { continue };
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        if !in_scope(opts, ns) || !unloop_core::slim::needs_diagnosis(pod, now) {
            continue;
        }
        let key = key_of(stores, pod);
        let evs: Vec<&Event> = pod
            .metadata
            .uid
            .as_ref()
            .and_then(|u| events.get(u))
            .map(|v| v.iter().map(|e| e.as_ref()).collect())
            .unwrap_or_default();
        builders.entry(key).or_default().pod(pod, &evs, now);
    }
    builders.into_iter().map(|(k, b)| (k, b.finish())).collect()
}

fn key_of(stores: &Stores, pod: &Pod) -> Key {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let (rs, job) = match view::pod_controller(pod) {
        Some(("ReplicaSet", n)) => (stores.replica_sets.get(&ObjectRef::new(n).within(ns)), None),
        Some((_, n)) => (None, stores.jobs.get(&ObjectRef::new(n).within(ns))),
        None => (None, None),
    };
    view::key_of(pod, rs.as_deref(), job.as_deref())
}

/// The workload a resource is owned by, as the stores see it.
enum Owner {
    Live {
        reference: serde_json::Value,
        uid: String,
    },
    /// Watched, but not there or being deleted.
    Gone,
    /// A kind the agent does not watch (a CronJob): published without an owner.
    NotWatched,
}

/// A log already read, by pod, container, which instance and the restart count it belonged to.
type LogKey = (String, String, String, bool, i32);

struct Agent {
    client: Client,
    opts: Options,
    stores: Stores,
    metrics: Metrics,
    log: LogSink,
    sender: Option<Sender>,
    recorder: Recorder,
    logs: HashMap<LogKey, ContainerLog>,
}

/// Runs the agent until the process ends.
pub async fn run(opts: Options, log: LogSink) -> Result<(), AgentError> {
    let conn = client::connect_watching(&opts.target, opts.read_timeout).await?;
    let client = conn.client;
    let metrics = Metrics::default();
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| AgentError::Listen {
            addr: opts.listen,
            why: e.to_string(),
        })?;
    tokio::spawn(metrics::serve(listener, metrics.clone()));
    let wake = Arc::new(Notify::new());
    let stores = Stores::start(&client, &opts, &metrics, &wake, &log);
    let leading = Arc::new(AtomicBool::new(opts.lease.is_none()));
    metrics.set_leader(opts.lease.is_none());
    let holding = opts.lease.clone().map(|l| {
        tokio::spawn(hold_lease(
            client.clone(),
            l,
            opts.identity.clone(),
            leading.clone(),
            metrics.clone(),
            log.clone(),
            wake.clone(),
        ))
    });
    let stopping = Arc::new(AtomicBool::new(false));
    tokio::spawn(stop_on_signal(stopping.clone(), wake.clone(), log.clone()));
    let sender = if opts.targets.any() {
        Some(Sender::new().map_err(AgentError::Setup)?)
    } else {
        None
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: crd::MANAGER.into(),
            instance: Some(opts.identity.clone()),
        },
    );
    log(
        "info",
        "agent started",
        serde_json::json!({"server": conn.server, "listen": opts.listen.to_string(), "identity": opts.identity}),
    );
    let mut agent = Agent {
        client,
        opts,
        stores,
        metrics,
        log,
        sender,
        recorder,
        logs: HashMap::new(),
    };
    agent.main_loop(wake, leading.clone(), stopping).await;
    // Stopping (a rollout, a drained node, the leader's pod deleted): give the lease up so the
    // other replica publishes within a renewal period instead of after the lease expires.
    if let (Some(task), Some(l)) = (holding, agent.opts.lease.as_ref()) {
        task.abort();
        let _ = task.await;
        if leading.load(Ordering::SeqCst) {
            let api: Api<Lease> = Api::namespaced(agent.client.clone(), &l.namespace);
            let released = lease::release(&api, &l.name, &agent.opts.identity).await;
            (agent.log)(
                "info",
                "stopped",
                serde_json::json!({"lease": l.name, "released": released.as_ref().is_ok_and(|r| *r),
                    "error": released.err().map(|e| e.to_string())}),
            );
            return Ok(());
        }
    }
    (agent.log)("info", "stopped", serde_json::json!({}));
    Ok(())
}

/// Waits for SIGTERM (what the kubelet sends first) or SIGINT, then asks the main loop to stop
/// after the action it is doing, so no publication is cut in half.
async fn stop_on_signal(stopping: Arc<AtomicBool>, wake: Arc<Notify>, log: LogSink) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log(
            "warn",
            "no signal handler: a stop waits for the lease to expire",
            serde_json::json!({}),
        );
        return;
    };
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log("info", "stopping", serde_json::json!({"signal": which}));
    stopping.store(true, Ordering::SeqCst);
    wake.notify_one();
}

async fn hold_lease(
    client: Client,
    l: LeaseOptions,
    me: String,
    leading: Arc<AtomicBool>,
    metrics: Metrics,
    log: LogSink,
    wake: Arc<Notify>,
) {
    let api: Api<Lease> = Api::namespaced(client, &l.namespace);
    let mut last_held = tokio::time::Instant::now();
    let mut written = None;
    loop {
        let ready = metrics.ready();
        let held = match lease::try_hold(&api, &l.name, &me, l.duration, ready, &mut written).await
        {
            Ok(h) => {
                if h {
                    last_held = tokio::time::Instant::now();
                }
                h
            }
            Err(e) => {
                metrics.api_error("lease");
                log(
                    "warn",
                    "lease not renewed",
                    serde_json::json!({"error": e.to_string()}),
                );
                // Step down before the lease can expire, so two never publish at once.
                leading.load(Ordering::SeqCst) && last_held.elapsed() < l.duration * 2 / 3
            }
        };
        if held != leading.swap(held, Ordering::SeqCst) {
            metrics.set_leader(held);
            log(
                "info",
                if held {
                    "leading: this replica publishes"
                } else {
                    "following: another replica publishes"
                },
                serde_json::json!({"lease": l.name}),
            );
            wake.notify_one();
        }
        tokio::time::sleep(l.duration / 3).await;
    }
}

impl Agent {
    async fn main_loop(
        &mut self,
        wake: Arc<Notify>,
        leading: Arc<AtomicBool>,
        stopping: Arc<AtomicBool>,
    ) {
        let mut tracker = Tracker::new(self.opts.timing);
        let mut was_leading = false;
        loop {
            let now = Timestamp::now();
            // Restarts age out of "recent" with time alone: look again at least once a minute.
            let until = tracker
                .next_due()
                .map(|d| d.duration_since(now).unsigned_abs())
                .unwrap_or(Duration::from_secs(60))
                .min(Duration::from_secs(60));
            tokio::select! {
                _ = wake.notified() => {
                    // Let a burst of changes arrive before scanning.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                _ = tokio::time::sleep(until) => {}
            }
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            if !self.metrics.ready() {
                continue;
            }
            let now = Timestamp::now();
            let troubled = scan(&self.stores, &self.opts, now);
            self.count_troubled();
            let lead = leading.load(Ordering::SeqCst);
            if lead && !was_leading {
                // A new leader looks at everything again; the resources' status keeps it from
                // notifying twice.
                tracker = Tracker::new(self.opts.timing);
            }
            was_leading = lead;
            tracker.observe(now, &troubled);
            if !lead {
                continue;
            }
            self.resolve_orphans(&tracker, now).await;
            for action in tracker.due(now) {
                match action {
                    Action::Diagnose(key) => {
                        let fp = tracker.evidence(&key);
                        let first = tracker.first_seen(&key).unwrap_or(now);
                        match self.diagnose(&key, fp, first).await {
                            Ok(()) => {
                                tracker.published(&key, fp.map(|e| e.fingerprint).unwrap_or(0))
                            }
                            Err(why) => {
                                self.metrics.api_error("publish");
                                (self.log)(
                                    "warn",
                                    "diagnosis not published; will retry",
                                    serde_json::json!({"workload": key.to_string(), "error": why}),
                                );
                                tracker.failed(&key, Timestamp::now());
                            }
                        }
                    }
                    Action::Resolve(key) => self.resolve(&key).await,
                }
            }
        }
    }

    fn count_troubled(&self) {
        let mut seen = std::collections::BTreeSet::new();
        let mut t: BTreeMap<(String, String), u64> = BTreeMap::new();
        for d in self.stores.diagnoses.state() {
            if d.status.as_ref().is_some_and(|s| s.resolved) {
                continue;
            }
            // Only the agent's own resources, and only causes unloop knows, become label values.
            let (Some(workload), Some(cause)) = (crd::ours(&d), crd::known_cause(&d.spec.cause))
            else {
                continue;
            };
            let ns = d.namespace().unwrap_or_default();
            if seen.insert((ns.clone(), workload, cause.as_str())) {
                *t.entry((ns, cause.as_str().to_string())).or_default() += 1;
            }
        }
        self.metrics.set_troubled(t);
    }

    /// Reads the logs a diagnosis of `pods` needs, each dead instance once.
    async fn logs_for(&mut self, pods: &[Pod], now: Timestamp) -> Vec<ContainerLog> {
        let wanted = logs::logs_needed(pods, now);
        let restarts = |w: &logs::LogWant| {
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(&w.pod))
                .and_then(|p| p.status.as_ref())
                .into_iter()
                .flat_map(|s| {
                    s.container_statuses
                        .iter()
                        .flatten()
                        .chain(s.init_container_statuses.iter().flatten())
                })
                .find(|c| c.name == w.container)
                .map(|c| c.restart_count)
                .unwrap_or(0)
        };
        let key = |w: &logs::LogWant| {
            (
                w.namespace.clone(),
                w.pod.clone(),
                w.container.clone(),
                w.previous,
                restarts(w),
            )
        };
        let missing: Vec<logs::LogWant> = wanted
            .iter()
            .filter(|w| !self.logs.contains_key(&key(w)))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let reader = Reader::new(self.client.clone(), Deadline::after(self.opts.read_timeout));
            let mut gaps = Vec::new();
            let read = logs::read_logs(
                &reader,
                missing.clone(),
                self.opts.log_tail_lines,
                4,
                &mut gaps,
            )
            .await;
            if !gaps.is_empty() {
                self.metrics.api_error("logs");
            }
            for l in read {
                if let Some(w) = missing
                    .iter()
                    .find(|w| w.pod == l.pod && w.container == l.container)
                {
                    self.logs.insert(key(w), l);
                }
            }
        }
        // Forget logs of pods that are gone.
        let present: std::collections::HashSet<(String, String)> = self
            .stores
            .pods
            .state()
            .iter()
            .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
            .collect();
        self.logs
            .retain(|k, _| present.contains(&(k.0.clone(), k.1.clone())));
        wanted
            .iter()
            .filter_map(|w| self.logs.get(&key(w)).cloned())
            .collect()
    }

    async fn diagnose(
        &mut self,
        key: &Key,
        ev: Option<track::Evidence>,
        first: Timestamp,
    ) -> Result<(), String> {
        let now = Timestamp::now();
        let ns = key.namespace.as_str();
        // The namespace's pods, packed ones decoded.
        let pods: Vec<Pod> = self
            .stores
            .pods
            .state()
            .iter()
            .filter(|p| p.meta().namespace.as_deref() == Some(ns))
            .map(|p| p.pod().into_owned())
            .collect();
        let workload_pods: Vec<Pod> = pods
            .iter()
            .filter(|p| &key_of(&self.stores, p) == key)
            .cloned()
            .collect();
        let logs = self.logs_for(&workload_pods, now).await;
        let (events, nodes, rs, dep, sts, ds, jobs) = (
            self.stores.events.state(),
            self.stores.nodes.state(),
            self.stores.replica_sets.state(),
            self.stores.deployments.state(),
            self.stores.stateful_sets.state(),
            self.stores.daemon_sets.state(),
            self.stores.jobs.state(),
        );
        let objects = view::Objects {
            pods: pods.iter().collect(),
            events: events.iter().map(|p| p.as_ref()).collect(),
            nodes: nodes.iter().map(|p| p.as_ref()).collect(),
            replica_sets: rs.iter().map(|p| p.as_ref()).collect(),
            deployments: dep.iter().map(|p| p.as_ref()).collect(),
            stateful_sets: sts.iter().map(|p| p.as_ref()).collect(),
            daemon_sets: ds.iter().map(|p| p.as_ref()).collect(),
            jobs: jobs.iter().map(|p| p.as_ref()).collect(),
        };
        let state = view::namespace_state(ns, &objects, logs);
        let query = view::query_of(key);
        // Identities are taken before the report is redacted (crd::identified).
        let verdicts = crd::identified(key, diagnose(&state, &query, now));
        let latency = ev
            .and_then(|e| e.reported_at)
            .map(|r| now.duration_since(r).as_secs_f64());
        for (id, d) in &verdicts {
            self.publish(key, id, d, first, now, latency).await?;
        }
        Ok(())
    }

    /// The workload object that owns the resource, so it is garbage-collected with it.
    fn owner(&self, key: &Key) -> Owner {
        let ns = key.namespace.as_str();
        let name = key.workload.name.as_str();
        fn r<K: Resource<DynamicType = ()>>(o: &K) -> Option<Owner> {
            if o.meta().deletion_timestamp.is_some() {
                return Some(Owner::Gone);
            }
            let uid = o.meta().uid.clone()?;
            Some(Owner::Live {
                reference: serde_json::json!({
                    "apiVersion": K::api_version(&()),
                    "kind": K::kind(&()),
                    "name": o.meta().name.clone()?,
                    "uid": uid,
                }),
                uid,
            })
        }
        let found = match key.workload.kind {
            WorkloadKind::Deployment => self
                .stores
                .deployments
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|o| r(o.as_ref())),
            WorkloadKind::StatefulSet => self
                .stores
                .stateful_sets
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|o| r(o.as_ref())),
            WorkloadKind::DaemonSet => self
                .stores
                .daemon_sets
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|o| r(o.as_ref())),
            WorkloadKind::Job => self
                .stores
                .jobs
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|o| r(o.as_ref())),
            WorkloadKind::ReplicaSet => self
                .stores
                .replica_sets
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|o| r(o.as_ref())),
            WorkloadKind::Pod => self
                .stores
                .pods
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|o| r(o.as_ref())),
            WorkloadKind::CronJob => return Owner::NotWatched,
        };
        found.unwrap_or(Owner::Gone)
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish(
        &mut self,
        key: &Key,
        id: &crd::Identity,
        d: &Diagnosis,
        first: Timestamp,
        now: Timestamp,
        latency: Option<f64>,
    ) -> Result<(), String> {
        let ns = key.namespace.as_str();
        let name = id.resource_name();
        let owner = self.owner(key);
        let (reference, owner_uid) = match owner {
            // Its pods are going with it: nothing to publish about a workload being deleted.
            Owner::Gone => return Ok(()),
            Owner::Live { reference, uid } => (Some(reference), Some(uid)),
            Owner::NotWatched => (None, None),
        };
        let existing = self.stores.diagnoses.get(&ObjectRef::new(&name).within(ns));
        let carried = crd::carried(
            existing.as_deref(),
            owner_uid.as_deref(),
            d.top().id.as_str(),
        );
        let first_seen = carried.first_seen.unwrap_or_else(|| first.to_string());
        let spec = crd::spec_of(id, d, &first_seen, now);
        let news = carried.news;
        let api: Api<CrashDiagnosis> = Api::namespaced(self.client.clone(), ns);
        let mut obj = serde_json::json!({
            "apiVersion": CrashDiagnosis::api_version(&()),
            "kind": CrashDiagnosis::kind(&()),
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {
                    crd::LABEL_MANAGED_BY: crd::MANAGER,
                    crd::LABEL_CAUSE: spec.cause,
                },
            },
            "spec": spec,
        });
        if let Some(o) = reference {
            obj["metadata"]["ownerReferences"] = serde_json::json!([o]);
        }
        let pp = PatchParams::apply(crd::MANAGER).force();
        api.patch(&name, &pp, &Patch::Apply(&obj))
            .await
            .map_err(|e| format!("apply {ns}/{name}: {e}"))?;
        let last = carried.notified;
        let notify = self.sender.is_some()
            && notify::should_notify(last.as_ref(), &spec.cause, now, self.opts.notify_window);
        let notified = if notify {
            Some(Notified {
                cause: spec.cause.clone(),
                at: now.to_string(),
            })
        } else {
            last
        };
        // Recorded before sending: a new leader reads it and does not send it again. Written only
        // when it changes: a crash loop diagnosed again at each dead instance keeps its status.
        let wanted = crd::CrashDiagnosisStatus {
            resolved: false,
            resolved_at: None,
            notified,
        };
        let unchanged = existing.as_ref().and_then(|c| c.status.as_ref()) == Some(&wanted);
        if !unchanged {
            // A merge patch: the fields left out of the typed status (None) must be nulled.
            let status = serde_json::json!({
                "status": { "resolved": false, "resolvedAt": null, "notified": wanted.notified }
            });
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map_err(|e| format!("status of {ns}/{name}: {e}"))?;
        }
        self.metrics.diagnosed(if news { latency } else { None });
        (self.log)(
            "info",
            "diagnosed",
            serde_json::json!({"namespace": ns, "workload": spec.workload, "container": spec.container, "cause": spec.cause, "confidence": spec.confidence, "resource": name, "new": news}),
        );
        if news && self.opts.events {
            self.event_on_pod(ns, &id.pod, &spec).await;
        }
        if notify {
            self.send(Payload::diagnosed(ns, &name, &spec)).await;
        }
        Ok(())
    }

    async fn event_on_pod(&self, ns: &str, pod: &str, spec: &CrashDiagnosisSpec) {
        let Some(p) = self.stores.pods.get(&ObjectRef::new(pod).within(ns)) else {
            return;
        };
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: p.meta().name.clone(),
            namespace: p.meta().namespace.clone(),
            uid: p.meta().uid.clone(),
            ..Default::default()
        };
        let ev = KubeEvent {
            type_: EventType::Warning,
            reason: "CrashDiagnosed".into(),
            note: Some(crd::one_line(spec)),
            action: "Diagnose".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            self.metrics.api_error("event");
            (self.log)(
                "warn",
                "event not published",
                serde_json::json!({"pod": pod, "error": e.to_string()}),
            );
        }
    }

    async fn send(&self, payload: Payload) {
        let Some(sender) = &self.sender else { return };
        let (ns, name) = (&payload.namespace, &payload.resource);
        let mut sends = Vec::new();
        if let Some(url) = &self.opts.targets.slack {
            sends.push(("slack", url.clone(), payload.slack()));
        }
        if let Some(url) = &self.opts.targets.json {
            sends.push((
                "json",
                url.clone(),
                serde_json::to_value(&payload).unwrap_or_default(),
            ));
        }
        for (target, url, body) in sends {
            let (metrics, log, sender) = (self.metrics.clone(), self.log.clone(), sender.clone());
            let what = format!("{ns}/{name}");
            // Retries with backoff must not hold up the next diagnosis.
            tokio::spawn(async move {
                match sender.post(&url, &body).await {
                    Ok(()) => metrics.notification(target, "sent"),
                    Err(e) => {
                        metrics.notification(target, "failed");
                        log(
                            "warn",
                            "notification not delivered",
                            serde_json::json!({"target": target, "resource": what, "error": e}),
                        );
                    }
                }
            });
        }
    }

    async fn resolve(&self, key: &Key) {
        for c in self.stores.diagnoses.state() {
            if c.namespace().as_deref() != Some(key.namespace.as_str())
                || crd::ours(&c).as_ref() != Some(&key.workload)
                || c.status.as_ref().is_some_and(|s| s.resolved)
            {
                continue;
            }
            self.mark_resolved(&c).await;
        }
    }

    async fn mark_resolved(&self, c: &CrashDiagnosis) {
        let ns = c.namespace().unwrap_or_default();
        let name = c.name_any();
        let api: Api<CrashDiagnosis> = Api::namespaced(self.client.clone(), &ns);
        let status = serde_json::json!({
            "status": { "resolved": true, "resolvedAt": Timestamp::now().to_string() }
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => {
                (self.log)(
                    "info",
                    "resolved",
                    serde_json::json!({"namespace": ns, "resource": name, "workload": c.spec.workload}),
                );
                // Only what was notified is notified resolved; marking happens once (the
                // resource is resolved from then on), so this is sent at most once.
                if c.status.as_ref().is_some_and(|s| s.notified.is_some()) {
                    self.send(Payload::resolved(&ns, &name, &c.spec)).await;
                }
            }
            Err(e) => {
                self.metrics.api_error("resolve");
                (self.log)(
                    "warn",
                    "not marked resolved",
                    serde_json::json!({"resource": name, "error": e.to_string()}),
                );
            }
        }
    }

    /// Unresolved resources of workloads the tracker does not know (they recovered while no
    /// replica was leading): resolved now.
    async fn resolve_orphans(&self, tracker: &Tracker, now: Timestamp) {
        let troubled: std::collections::BTreeSet<&Key> = tracker.troubled().collect();
        for c in self.stores.diagnoses.state() {
            let ns = c.namespace().unwrap_or_default();
            // Resources anyone else made are neither resolved nor notified about.
            let Some(workload) = crd::ours(&c) else {
                continue;
            };
            if c.status.as_ref().is_some_and(|s| s.resolved) || !in_scope(&self.opts, &ns) {
                continue;
            }
            let recent = c
                .spec
                .last_seen
                .parse::<Timestamp>()
                .is_ok_and(|t| now.duration_since(t) < self.opts.timing.resolve_after);
            let key = Key {
                namespace: ns,
                workload,
            };
            if !recent && !troubled.contains(&key) {
                self.mark_resolved(&c).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error the agent's watch got on a fresh testbed without the CRD (its body as the API
    /// server sent it, in the agent's log of the first soak).
    fn not_served() -> watcher::Error {
        let status: kube::core::Status = serde_json::from_str(
            r#"{"status":"Failure","code":404,"message":"404 page not found"}"#,
        )
        .unwrap();
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn a_missing_crd_is_said_once_with_what_to_do() {
        let mut said = false;
        let why = missing_resource(&not_served(), "crashdiagnoses", &mut said).unwrap();
        assert!(why.contains("CRD is not installed"), "{why}");
        assert!(why.contains("unloop agent crd | kubectl apply"), "{why}");
        assert_eq!(
            missing_resource(&not_served(), "crashdiagnoses", &mut said),
            None
        );
        let mut fresh = false;
        let other = missing_resource(&not_served(), "jobs", &mut fresh).unwrap();
        assert_eq!(other, "the API server does not serve jobs (404)");
    }
}
