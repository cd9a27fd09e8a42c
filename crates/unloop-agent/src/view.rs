//! What the agent keeps of each watched object, and the `ClusterState` one diagnosis reads,
//! assembled from the watches' stores. Pure: the stores' contents come in as references.
//!
//! Memory: every object loses its managedFields and last-applied annotation; healthy pods that a
//! controller made are cut down by `unloop_core::slim` as `diagnose` cuts them, and kept packed
//! ([`KeptPod`]; troubled pods stay whole: the watch delivers the whole pod again when it enters
//! trouble); nodes lose their image lists; events about anything but pods and nodes are not kept.

use std::borrow::Cow;
use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};
use unloop_core::diagnose::{Query, Target};
use unloop_core::gap::{GapAbout, GapReason, ListOf};
use unloop_core::state::{ClusterState, ContainerLog, Gap, Scope};
use unloop_core::workload::{self, Workload, WorkloadKind};

use crate::track::Key;

/// Drops what no rule reads from any object's metadata.
pub fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    unloop_core::redact::strip_last_applied(meta);
}

/// A pod as the pod store keeps it.
///
/// A pod that `diagnose` would slim (healthy, made by a controller: almost every pod of a big
/// cluster) is kept packed: the slim pod as JSON, decoded only when a diagnosis of its namespace
/// reads it. k8s-openapi's structs hold every field inline, set or not (a `Pod` with one
/// `Container` and its status is several KB before any string), so a slim pod takes several
/// times the memory of its JSON (`bench/agent.sh scale`, docs/agent.md).
///
/// The watch deserializes each pod straight into this ([`Deserialize`]): the whole pod is
/// dropped as soon as it is packed, so a page of the initial list never holds whole pods.
// The packed variant is the common one (almost every pod): its metadata inline saves an
// allocation per pod; the rare whole pod is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum KeptPod {
    /// In trouble, bare (nothing else records what it runs) or not slimmed: as the watch
    /// delivered it, managedFields and last-applied dropped.
    Whole(Box<Pod>),
    /// Healthy and made by a controller: `unloop_core::slim::slim_pod` of it, as JSON, and the
    /// identity the store and its lookups read (name, namespace, uid, resourceVersion).
    Packed {
        metadata: ObjectMeta,
        json: Box<[u8]>,
    },
}

impl KeptPod {
    /// The pod as the store keeps it when it arrives at `now`.
    pub fn new(mut pod: Pod, now: Timestamp) -> KeptPod {
        slim_meta(&mut pod.metadata);
        if !unloop_core::slim::may_slim(&pod, now) {
            return KeptPod::Whole(Box::new(pod));
        }
        let m = &pod.metadata;
        let metadata = ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            ..ObjectMeta::default()
        };
        let slim = unloop_core::slim::slim_pod(pod);
        match serde_json::to_vec(&slim) {
            Ok(json) => KeptPod::Packed {
                metadata,
                json: json.into_boxed_slice(),
            },
            Err(_) => KeptPod::Whole(Box::new(slim)),
        }
    }

    /// The pod when it may need diagnosis. A packed pod was healthy when it arrived, and a
    /// healthy pod does not fall into trouble with time alone (a restart only ages out of
    /// "recent"): only a change, which the watch delivers as a new pod.
    pub fn whole(&self) -> Option<&Pod> {
        match self {
            KeptPod::Whole(p) => Some(p),
            KeptPod::Packed { .. } => None,
        }
    }

    /// The pod as a diagnosis reads it: a packed pod decoded (the slim pod).
    pub fn pod(&self) -> Cow<'_, Pod> {
        match self {
            KeptPod::Whole(p) => Cow::Borrowed(p),
            KeptPod::Packed { metadata, json } => {
                Cow::Owned(serde_json::from_slice(json).unwrap_or_else(|_| Pod {
                    metadata: metadata.clone(),
                    ..Pod::default()
                }))
            }
        }
    }
}

impl k8s_openapi::Resource for KeptPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for KeptPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        match self {
            KeptPod::Whole(p) => &p.metadata,
            KeptPod::Packed { metadata, .. } => metadata,
        }
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            KeptPod::Whole(p) => &mut p.metadata,
            KeptPod::Packed { metadata, .. } => metadata,
        }
    }
}

/// A pod from the API, kept as it arrives (now).
impl<'de> Deserialize<'de> for KeptPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(KeptPod::new(Pod::deserialize(d)?, Timestamp::now()))
    }
}

pub fn keep_node(node: &mut Node) {
    slim_meta(&mut node.metadata);
    if let Some(s) = node.status.as_mut() {
        s.images = None;
    }
}

/// Whether an event is kept: only events about pods and nodes are evidence.
pub fn keep_event(e: &Event) -> bool {
    matches!(e.involved_object.kind.as_deref(), Some("Pod" | "Node"))
}

/// The controller owner reference's name, if its kind is `kind`.
fn owner<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == kind)
        .map(|r| r.name.as_str())
}

/// The name of the ReplicaSet or Job that controls `pod`, to look up in a store.
pub fn pod_controller(pod: &Pod) -> Option<(&'static str, &str)> {
    owner(&pod.metadata, "ReplicaSet")
        .map(|n| ("ReplicaSet", n))
        .or_else(|| owner(&pod.metadata, "Job").map(|n| ("Job", n)))
}

/// The workload of `pod` as `diagnose` names it, given its ReplicaSet or Job if the store has it.
pub fn workload_of(pod: &Pod, rs: Option<&ReplicaSet>, job: Option<&Job>) -> Workload {
    let state = ClusterState {
        replica_sets: rs.into_iter().cloned().collect(),
        jobs: job.into_iter().cloned().collect(),
        ..ClusterState::default()
    };
    workload::of_pod(&state, pod)
}

/// The query one diagnosis of `key` runs: its namespace, its workload (or bare pod).
pub fn query_of(key: &Key) -> Query {
    let target = match key.workload.kind {
        WorkloadKind::Pod => Target::Pod(key.workload.name.clone()),
        k => Target::Workload(k, key.workload.name.clone()),
    };
    Query {
        namespaces: vec![key.namespace.clone()],
        selector: None,
        target: Some(target),
        ..Query::default()
    }
}

pub fn key_of(pod: &Pod, rs: Option<&ReplicaSet>, job: Option<&Job>) -> Key {
    Key {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        workload: workload_of(pod, rs, job),
    }
}

/// Everything in the stores, by reference.
#[derive(Default)]
pub struct Objects<'a> {
    pub pods: Vec<&'a Pod>,
    pub events: Vec<&'a Event>,
    pub nodes: Vec<&'a Node>,
    pub replica_sets: Vec<&'a ReplicaSet>,
    pub deployments: Vec<&'a Deployment>,
    pub stateful_sets: Vec<&'a StatefulSet>,
    pub daemon_sets: Vec<&'a DaemonSet>,
    pub jobs: Vec<&'a Job>,
}

/// Kinds the agent does not watch, stated as gaps so the rules do not read "absent" as "does
/// not exist" (a missing ConfigMap is still found from the kubelet's own message).
pub const NOT_WATCHED: [ListOf; 3] = [ListOf::ConfigMaps, ListOf::Secrets, ListOf::Services];

/// The state one diagnosis of namespace `ns` reads: its pods, events about them and about
/// nodes, every node, its workloads, and the logs read for it.
pub fn namespace_state(ns: &str, o: &Objects<'_>, logs: Vec<ContainerLog>) -> ClusterState {
    fn of<'a, T: kube::Resource + Clone + 'a>(
        ns: &str,
        items: impl IntoIterator<Item = &'a &'a T>,
    ) -> Vec<T> {
        items
            .into_iter()
            .filter(|i| i.meta().namespace.as_deref() == Some(ns))
            .map(|i| (*i).clone())
            .collect()
    }
    let pods: Vec<Pod> = of(ns, &o.pods);
    let uids: HashMap<&str, ()> = pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .map(|u| (u, ()))
        .collect();
    let events = o
        .events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Node")
                || e.involved_object
                    .uid
                    .as_deref()
                    .is_some_and(|u| uids.contains_key(u))
        })
        .map(|e| (*e).clone())
        .collect();
    ClusterState {
        captured_at: None,
        scope: Scope {
            namespaces: vec![ns.to_string()],
            ..Scope::default()
        },
        pods,
        events,
        nodes: o.nodes.iter().map(|n| (*n).clone()).collect(),
        replica_sets: of(ns, &o.replica_sets),
        deployments: of(ns, &o.deployments),
        stateful_sets: of(ns, &o.stateful_sets),
        daemon_sets: of(ns, &o.daemon_sets),
        jobs: of(ns, &o.jobs),
        logs,
        gaps: NOT_WATCHED
            .into_iter()
            .map(|resource| Gap {
                about: GapAbout::List {
                    resource,
                    namespace: Some(ns.to_string()),
                },
                reason: GapReason::NotRequested,
                status: None,
                why: "not watched by the agent".into(),
            })
            .collect(),
        ..ClusterState::default()
    }
}
