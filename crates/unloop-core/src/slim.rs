//! Healthy pods, cut down to what the rules read of them.
//!
//! On a big cluster almost every pod is healthy, and diagnosis reads only a little of each: which
//! workload and revision it belongs to, its node, its labels (for `-l`), and its container statuses
//! (to tell whether an earlier revision was healthy). Its spec is already in its owner's template. A live read and a snapshot keep troubled pods
//! whole and slim the rest, which cuts memory and bundle size by about two thirds on a large cluster
//! without changing any report (the scenario tests check that).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerRestartRule, ContainerStatus, Pod, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

use crate::status;

/// Whether diagnosis looks at this pod at `now`: a container in trouble, the pod failed, or it has
/// not started yet (it may be stuck: its events decide, whatever grace period the query sets).
pub fn needs_diagnosis(pod: &Pod, now: jiff::Timestamp) -> bool {
    status::pod_failure(pod).is_some()
        || status::not_started(pod)
        || !status::troubled_containers(pod, now).is_empty()
}

/// Whether `pod` may be slimmed: healthy at `now`, and made by a controller whose template holds its
/// spec. Bare pods stay whole: nothing else records what they run.
pub fn may_slim(pod: &Pod, now: jiff::Timestamp) -> bool {
    has_controller(pod) && !needs_diagnosis(pod, now)
}

/// Whether a controller (ReplicaSet, StatefulSet, Job, ...) made `pod`, so its template holds the spec.
pub fn has_controller(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true))
}

/// The pod with only what the rules read of a healthy pod: identity, labels, owners, unloop's own
/// annotations, node, restart policy, init container names and restart policies, the containers
/// with restart settings of their own (restartPolicy and restartPolicyRules: whether a clean exit
/// restarts them), and its status (without the per-container mount and user lists).
pub fn slim_pod(pod: Pod) -> Pod {
    let m = pod.metadata;
    let container = |c: Container| ContainerView {
        name: c.name,
        restart_policy: c.restart_policy,
        restart_policy_rules: c.restart_policy_rules,
    };
    PodView {
        metadata: MetaView {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            generate_name: m.generate_name,
            labels: m.labels,
            owner_references: m.owner_references,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            annotations: m.annotations,
        },
        spec: pod.spec.map(|s| SpecView {
            node_name: s.node_name,
            restart_policy: s.restart_policy,
            init_containers: s
                .init_containers
                .map(|v| v.into_iter().map(container).collect()),
            containers: s.containers.into_iter().map(container).collect(),
        }),
        status: pod.status,
    }
    .into_slim()
}

/// The part of a pod's JSON that a slim pod keeps. Parsing a pod straight into this skips the rest
/// (managed fields, env, volumes, probes) without building it: a live read parses every pod of a
/// big cluster this way first, and parses it whole only if it is troubled or bare.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodView {
    metadata: MetaView,
    spec: Option<SpecView>,
    status: Option<PodStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MetaView {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    generate_name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SpecView {
    node_name: Option<String>,
    restart_policy: Option<String>,
    init_containers: Option<Vec<ContainerView>>,
    containers: Vec<ContainerView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ContainerView {
    name: String,
    restart_policy: Option<String>,
    restart_policy_rules: Option<Vec<ContainerRestartRule>>,
}

impl PodView {
    /// The slim pod: what [`slim_pod`] makes of the whole pod.
    pub fn into_slim(self) -> Pod {
        let m = self.metadata;
        let metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            generate_name: m.generate_name,
            labels: m.labels,
            owner_references: m.owner_references,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            annotations: m
                .annotations
                .map(|a| {
                    a.into_iter()
                        .filter(|(k, _)| k.starts_with(crate::debug::ANNOTATION_PREFIX))
                        .collect::<BTreeMap<_, _>>()
                })
                .filter(|a| !a.is_empty()),
            ..Default::default()
        };
        let container = |c: ContainerView| Container {
            name: c.name,
            restart_policy: c.restart_policy,
            restart_policy_rules: c.restart_policy_rules,
            ..Default::default()
        };
        // The containers' specs are in the owner's template; only init containers stay, for their
        // restartPolicy (a native sidecar is an init container with restartPolicy Always), and the
        // rare containers with restart settings of their own (`restart::on_exit` reads them).
        let spec = self.spec.map(|s| PodSpec {
            node_name: s.node_name,
            restart_policy: s.restart_policy,
            init_containers: s
                .init_containers
                .map(|v| v.into_iter().map(container).collect()),
            containers: s
                .containers
                .into_iter()
                .filter(|c| c.restart_policy.is_some())
                .map(container)
                .collect(),
            ..Default::default()
        });
        // Parsed lists keep spare capacity (a one-container pod's status list holds room for four,
        // ~3 KB): on ten thousand pods that is tens of megabytes, so the lists are made exact.
        let trim = |v: Option<Vec<ContainerStatus>>| {
            v.map(|v| {
                v.into_iter()
                    .map(|mut cs| {
                        cs.volume_mounts = None;
                        cs.user = None;
                        cs.allocated_resources_status = None;
                        cs
                    })
                    .collect::<Vec<_>>()
                    .into_boxed_slice()
                    .into_vec()
            })
        };
        let status = self.status.map(|s| PodStatus {
            container_statuses: trim(s.container_statuses),
            init_container_statuses: trim(s.init_container_statuses),
            conditions: s.conditions.map(|c| c.into_boxed_slice().into_vec()),
            ephemeral_container_statuses: None,
            pod_ips: None,
            host_ips: None,
            ..s
        });
        Pod {
            metadata,
            spec,
            status,
        }
    }
}

/// Slims every pod of `pods` that [`may_slim`] at `now`.
pub fn slim_healthy(pods: Vec<Pod>, now: jiff::Timestamp) -> Vec<Pod> {
    pods.into_iter()
        .map(|p| if may_slim(&p, now) { slim_pod(p) } else { p })
        .collect()
}

// Tested on pods captured from the testbed: crates/unloop-source/tests/slim.rs.
