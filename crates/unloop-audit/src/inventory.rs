//! What an audit looks at: the workloads (each reduced to its pod template) and the ConfigMaps,
//! Secrets and ServiceAccounts their references may resolve to. Filled from manifests (see
//! [`crate::load`]) or from a live cluster's state.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::IgnoredAny;
use unloop_core::state::{ClusterState, KeySet};
use unloop_core::workload::WorkloadKind;

use crate::check::{Location, ObjectRef};

/// One workload: what its pods will run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub template: PodTemplateSpec,
    /// Where it was read from; None for objects read from a live cluster.
    pub source: Option<Source>,
}

/// A manifest position: file, line of the document, and of each container within it.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub file: String,
    pub line: usize,
    pub template: Option<String>,
    pub container_lines: Vec<(String, usize)>,
}

impl Workload {
    pub fn kind_name(&self) -> &'static str {
        self.kind.kind()
    }

    pub fn object(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind_name().into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    pub fn spec(&self) -> Option<&PodSpec> {
        self.template.spec.as_ref()
    }

    /// The location of the whole object, or of one container in it.
    pub fn location(&self, container: Option<&str>) -> Option<Location> {
        let src = self.source.as_ref()?;
        let line = container
            .and_then(|c| {
                src.container_lines
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, l)| *l)
            })
            .unwrap_or(src.line);
        Some(Location {
            file: src.file.clone(),
            line,
            template: src.template.clone(),
        })
    }

    /// Annotations of the workload and of its pod template, where `unloop.dev/ignore` may be.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str).or_else(|| {
            self.template
                .metadata
                .as_ref()?
                .annotations
                .as_ref()?
                .get(key)
                .map(String::as_str)
        })
    }
}

/// ConfigMaps, Secrets and ServiceAccounts known to exist, by key names only.
#[derive(Debug, Clone, Default)]
pub struct ConfigSet {
    pub config_maps: Vec<KeySet>,
    pub secrets: Vec<KeySet>,
    /// Secrets that an operator will create (SealedSecret, ExternalSecret): the name exists, the
    /// keys are not known here.
    pub opaque_secrets: BTreeSet<(String, String)>,
    pub service_accounts: BTreeSet<(String, String)>,
}

/// Everything read from the manifests.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub workloads: Vec<Workload>,
    pub config: ConfigSet,
    /// Objects read, of every kind.
    pub objects_read: usize,
    /// Objects of kinds unloop does not audit, counted by kind.
    pub skipped: BTreeMap<String, usize>,
    /// Things the user should know about the input (converted API versions, ...).
    pub notes: Vec<String>,
}

/// A ConfigMap or Secret read for its key names only: values are skipped by the parser and never
/// held in memory, let alone printed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysOnly {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub data: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(default)]
    pub binary_data: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(default)]
    pub string_data: Option<BTreeMap<String, IgnoredAny>>,
}

impl KeysOnly {
    pub fn into_key_set(self, default_namespace: &str) -> KeySet {
        let mut keys: Vec<String> = [self.data, self.binary_data, self.string_data]
            .into_iter()
            .flatten()
            .flat_map(|m| m.into_keys())
            .collect();
        keys.sort();
        keys.dedup();
        KeySet {
            namespace: self
                .metadata
                .namespace
                .unwrap_or_else(|| default_namespace.to_string()),
            name: self.metadata.name.unwrap_or_default(),
            keys,
            created_at: None,
        }
    }
}

/// The kinds audited, with the API version each is read at.
pub const WORKLOAD_KINDS: [(&str, &str); 7] = [
    ("Deployment", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("CronJob", "batch/v1"),
    ("Pod", "v1"),
];

impl Inventory {
    fn push(
        &mut self,
        kind: WorkloadKind,
        meta: ObjectMeta,
        template: Option<PodTemplateSpec>,
        source: Option<Source>,
        default_ns: &str,
    ) {
        let Some(mut template) = template else { return };
        // The same gate live state passes (unloop-source's ingest): secret-looking env values and
        // command-line secrets are redacted before any check quotes them.
        if let Some(spec) = template.spec.as_mut() {
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                unloop_core::redact::container(c);
            }
        }
        self.workloads.push(Workload {
            kind,
            namespace: meta.namespace.unwrap_or_else(|| default_ns.to_string()),
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
            template,
            source,
        });
    }

    pub fn add_deployment(&mut self, d: Deployment, source: Option<Source>, default_ns: &str) {
        let template = Some(d.spec.template);
        self.push(
            WorkloadKind::Deployment,
            d.metadata,
            template,
            source,
            default_ns,
        );
    }

    pub fn add_stateful_set(&mut self, s: StatefulSet, source: Option<Source>, default_ns: &str) {
        let template = Some(s.spec.template);
        self.push(
            WorkloadKind::StatefulSet,
            s.metadata,
            template,
            source,
            default_ns,
        );
    }

    pub fn add_daemon_set(&mut self, d: DaemonSet, source: Option<Source>, default_ns: &str) {
        let template = Some(d.spec.template);
        self.push(
            WorkloadKind::DaemonSet,
            d.metadata,
            template,
            source,
            default_ns,
        );
    }

    pub fn add_replica_set(&mut self, r: ReplicaSet, source: Option<Source>, default_ns: &str) {
        let template = r.spec.template;
        self.push(
            WorkloadKind::ReplicaSet,
            r.metadata,
            template,
            source,
            default_ns,
        );
    }

    pub fn add_job(&mut self, j: Job, source: Option<Source>, default_ns: &str) {
        let template = j.spec.map(|s| s.template);
        self.push(WorkloadKind::Job, j.metadata, template, source, default_ns);
    }

    pub fn add_cron_job(&mut self, c: CronJob, source: Option<Source>, default_ns: &str) {
        let template = c.spec.job_template.spec.map(|s| s.template);
        self.push(
            WorkloadKind::CronJob,
            c.metadata,
            template,
            source,
            default_ns,
        );
    }

    pub fn add_pod(&mut self, p: Pod, source: Option<Source>, default_ns: &str) {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: p.metadata.labels.clone(),
                annotations: p.metadata.annotations.clone(),
                ..Default::default()
            }),
            spec: p.spec,
        };
        self.push(
            WorkloadKind::Pod,
            p.metadata,
            Some(template),
            source,
            default_ns,
        );
    }

    /// The workloads of a live cluster's state (its configuration goes to a
    /// [`crate::resolve::Known`]). Objects owned by another
    /// workload (a Deployment's ReplicaSets, any controller's pods, a CronJob's Jobs) are left
    /// out: their owner is audited instead.
    pub fn from_state(state: &ClusterState, cron_jobs: Vec<CronJob>) -> Inventory {
        let mut inv = Inventory::default();
        let owned = |m: &ObjectMeta| m.owner_references.as_ref().is_some_and(|o| !o.is_empty());
        for d in &state.deployments {
            inv.add_deployment(d.clone(), None, "");
        }
        for s in &state.stateful_sets {
            inv.add_stateful_set(s.clone(), None, "");
        }
        for d in &state.daemon_sets {
            inv.add_daemon_set(d.clone(), None, "");
        }
        for r in state.replica_sets.iter().filter(|r| !owned(&r.metadata)) {
            inv.add_replica_set(r.clone(), None, "");
        }
        let have_cron_jobs = !cron_jobs.is_empty();
        for j in state
            .jobs
            .iter()
            .filter(|j| !(have_cron_jobs && owned(&j.metadata)))
        {
            inv.add_job(j.clone(), None, "");
        }
        for c in cron_jobs {
            inv.add_cron_job(c, None, "");
        }
        for p in state.pods.iter().filter(|p| !owned(&p.metadata)) {
            inv.add_pod(p.clone(), None, "");
        }
        inv.objects_read = inv.workloads.len();
        inv
    }
}
