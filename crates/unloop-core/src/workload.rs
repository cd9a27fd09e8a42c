//! Who owns a pod, and the owner's rollout history.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde::Serialize;

use crate::state::ClusterState;

/// The workload a pod belongs to, as kubectl names it: `deploy/api`, `sts/db`, `ds/agent`, `job/x`,
/// `cronjob/x`, `rs/x`, or `pod/x` for a bare pod. In JSON it is that one string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicaSet,
    Pod,
}

impl WorkloadKind {
    pub fn short(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deploy",
            WorkloadKind::StatefulSet => "sts",
            WorkloadKind::DaemonSet => "ds",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::ReplicaSet => "rs",
            WorkloadKind::Pod => "pod",
        }
    }

    /// The API's kind, as an owner reference or a manifest names it.
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// Parses the kubectl spellings: `deploy`, `deployment`, `deployments`, `deployment.apps`, ...
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        let s = s.split('.').next().unwrap_or_default();
        Some(match s {
            "deploy" | "deployment" | "deployments" => WorkloadKind::Deployment,
            "sts" | "statefulset" | "statefulsets" => WorkloadKind::StatefulSet,
            "ds" | "daemonset" | "daemonsets" => WorkloadKind::DaemonSet,
            "job" | "jobs" => WorkloadKind::Job,
            "cj" | "cronjob" | "cronjobs" => WorkloadKind::CronJob,
            "rs" | "replicaset" | "replicasets" => WorkloadKind::ReplicaSet,
            "po" | "pod" | "pods" => WorkloadKind::Pod,
            _ => return None,
        })
    }

    /// Long-running workloads restart their containers forever (restartPolicy Always).
    pub fn long_running(self) -> bool {
        matches!(
            self,
            WorkloadKind::Deployment
                | WorkloadKind::StatefulSet
                | WorkloadKind::DaemonSet
                | WorkloadKind::ReplicaSet
        )
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.short(), self.name)
    }
}

impl Serialize for Workload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Workload {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Workload".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The workload as kubectl names it: `deploy/api`, `sts/db`, `ds/agent`, `job/x`, `cronjob/x`, `rs/x`, or `pod/x` for a bare pod.",
            "type": "string",
            "pattern": "^(deploy|sts|ds|job|cronjob|rs|pod)/.+$"
        })
    }
}

/// A workload as one argument of a command: `deploy/api`, rendered by `Display`.
impl From<&Workload> for crate::shell::Arg {
    fn from(w: &Workload) -> Self {
        w.to_string().into()
    }
}

fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(&str, &str)> {
    let refs = meta.owner_references.as_deref()?;
    let r = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())?;
    Some((r.kind.as_str(), r.name.as_str()))
}

/// The top of a pod's owner chain.
pub fn of_pod(state: &ClusterState, pod: &Pod) -> Workload {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(("ReplicaSet", rs_name)) => {
            let rs = state.replica_sets.iter().find(|r| {
                r.metadata.namespace.as_deref() == Some(ns)
                    && r.metadata.name.as_deref() == Some(rs_name)
            });
            match rs.and_then(|r| controller_of(&r.metadata)) {
                Some(("Deployment", d)) => Workload {
                    kind: WorkloadKind::Deployment,
                    name: d.into(),
                },
                _ if rs.is_none() => {
                    // Without the ReplicaSet, strip its pod-template-hash suffix: the usual Deployment name.
                    let hash = pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("pod-template-hash"));
                    match hash.and_then(|h| rs_name.strip_suffix(&format!("-{h}"))) {
                        Some(d) => Workload {
                            kind: WorkloadKind::Deployment,
                            name: d.into(),
                        },
                        None => Workload {
                            kind: WorkloadKind::ReplicaSet,
                            name: rs_name.into(),
                        },
                    }
                }
                _ => Workload {
                    kind: WorkloadKind::ReplicaSet,
                    name: rs_name.into(),
                },
            }
        }
        Some(("StatefulSet", n)) => Workload {
            kind: WorkloadKind::StatefulSet,
            name: n.into(),
        },
        Some(("DaemonSet", n)) => Workload {
            kind: WorkloadKind::DaemonSet,
            name: n.into(),
        },
        Some(("Job", n)) => {
            let job = state.jobs.iter().find(|j| {
                j.metadata.namespace.as_deref() == Some(ns) && j.metadata.name.as_deref() == Some(n)
            });
            match job.and_then(|j| controller_of(&j.metadata)) {
                Some(("CronJob", c)) => Workload {
                    kind: WorkloadKind::CronJob,
                    name: c.into(),
                },
                _ => Workload {
                    kind: WorkloadKind::Job,
                    name: n.into(),
                },
            }
        }
        _ => Workload {
            kind: WorkloadKind::Pod,
            name: pod_name,
        },
    }
}

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// One revision of a Deployment: its ReplicaSet.
#[derive(Debug, Clone)]
pub struct Revision<'a> {
    pub number: u64,
    pub replica_set: &'a ReplicaSet,
}

impl Revision<'_> {
    pub fn name(&self) -> &str {
        self.replica_set
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
    }

    pub fn ready(&self) -> i32 {
        self.replica_set
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    }

    pub fn template(&self) -> Option<&PodTemplateSpec> {
        self.replica_set.spec.template.as_ref()
    }

    pub fn created(&self) -> Option<jiff::Timestamp> {
        self.replica_set
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
    }
}

/// A Deployment's revisions, oldest first.
pub fn revisions<'a>(
    state: &'a ClusterState,
    namespace: &str,
    deployment: &str,
) -> Vec<Revision<'a>> {
    let mut out: Vec<Revision<'a>> = state
        .replica_sets
        .iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(namespace))
        .filter(|rs| {
            controller_of(&rs.metadata).is_some_and(|(k, n)| k == "Deployment" && n == deployment)
        })
        .filter_map(|rs| {
            let n = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION_ANNOTATION)?
                .parse()
                .ok()?;
            Some(Revision {
                number: n,
                replica_set: rs,
            })
        })
        .collect();
    out.sort_by_key(|r| r.number);
    out
}

/// The revision a pod belongs to, by its ReplicaSet.
pub fn revision_of_pod(revisions: &[Revision<'_>], pod: &Pod) -> Option<u64> {
    let (_, rs) = controller_of(&pod.metadata).filter(|(k, _)| *k == "ReplicaSet")?;
    revisions.iter().find(|r| r.name() == rs).map(|r| r.number)
}

/// What changed between two pod templates, as `path: old → new` lines. Labels the controller adds
/// (pod-template-hash) are ignored.
pub fn template_diff(old: &PodTemplateSpec, new: &PodTemplateSpec) -> Vec<String> {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove("pod-template-hash");
        }
        serde_json::to_value(&t).unwrap_or_default()
    };
    let mut out = Vec::new();
    diff_values("", &strip(old), &strip(new), &mut out);
    out
}

fn diff_values(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (xa, ya)) in x.iter().zip(y).enumerate() {
                // Containers and env entries are named: say which one, not its index.
                let label = ya
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                diff_values(&format!("{path}[{label}]"), xa, ya, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {} → {}", short(a), short(b))),
    }
}

fn short(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::Null => "(none)".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.len() > 120 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(117).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}
