//! The cluster state every rule reads: what a live API server or a snapshot bundle provides.
//!
//! `ClusterState` is also the body of a snapshot bundle, so its serialized form is a stable format
//! (see `BUNDLE_SCHEMA_VERSION`). ConfigMaps and Secrets are held as key lists only: unloop needs to
//! know which keys exist, never what they hold.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::{Deserialize, Serialize};

pub use crate::gap::{Gap, GapAbout, GapReason, ListOf};

/// The schema version this build writes and the newest it reads.
pub const BUNDLE_SCHEMA_VERSION: u32 = 1;

/// Everything unloop knows about a cluster at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterState {
    /// When the state was read; diagnosis of a snapshot uses it as "now".
    pub captured_at: Option<jiff::Timestamp>,
    /// What was asked for: the namespaces read (empty means all).
    pub scope: Scope,
    pub pods: Vec<Pod>,
    pub events: Vec<Event>,
    pub nodes: Vec<Node>,
    pub config_maps: Vec<KeySet>,
    pub secrets: Vec<KeySet>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub replica_sets: Vec<ReplicaSet>,
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub controller_revisions: Vec<ControllerRevision>,
    /// Container logs, bounded tails only.
    pub logs: Vec<ContainerLog>,
    /// Kubelet configuration per node name, as read from the node's configz.
    pub kubelet_configs: BTreeMap<String, KubeletConfig>,
    /// Evidence that could not be read, and why.
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Scope {
    pub context: Option<String>,
    pub server: Option<String>,
    /// Namespaces read; empty means every namespace.
    pub namespaces: Vec<String>,
}

/// A ConfigMap or Secret reduced to its identity and key names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeySet {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<jiff::Timestamp>,
}

/// A bounded tail of one container's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerLog {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// True for the previous (crashed) instance, `kubectl logs --previous`.
    pub previous: bool,
    /// Lossy UTF-8 text, already redacted.
    pub text: String,
    /// True when older lines were cut to keep the tail bounded.
    pub truncated: bool,
}

/// The part of a kubelet's configuration that shapes restart backoff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfig {
    /// `crashLoopBackOff.maxContainerRestartPeriod`, in seconds.
    pub max_container_restart_period_secs: Option<u64>,
    /// Feature gates set explicitly in the kubelet configuration.
    pub feature_gates: BTreeMap<String, bool>,
    /// The node whose configz this was read from, when it stands for a group of alike nodes (same
    /// kubelet version, runtime, OS image and pool); absent when read from the node itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_from: Option<String>,
}

impl ClusterState {
    pub fn log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Option<&ContainerLog> {
        self.logs.iter().find(|l| {
            l.namespace == namespace
                && l.pod == pod
                && l.container == container
                && l.previous == previous
        })
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&KeySet> {
        self.config_maps
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&KeySet> {
        self.secrets
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }

    /// True when the state holds ConfigMaps for `namespace`, i.e. "absent" means "does not exist"
    /// rather than "was not read".
    pub fn read_config_maps(&self) -> bool {
        !self.gaps.iter().any(|g| g.is_list_of(ListOf::ConfigMaps))
    }

    pub fn read_secrets(&self) -> bool {
        !self.gaps.iter().any(|g| g.is_list_of(ListOf::Secrets))
    }

    pub fn read_services(&self) -> bool {
        !self.gaps.iter().any(|g| g.is_list_of(ListOf::Services))
    }

    /// Does the state cover this namespace at all?
    pub fn covers(&self, namespace: &str) -> bool {
        self.scope.namespaces.is_empty() || self.scope.namespaces.iter().any(|n| n == namespace)
    }
}
