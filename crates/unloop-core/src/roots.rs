//! One root, many victims: when several workloads fail for the same reason (the same missing
//! Secret or ConfigMap, the same dependency Service, the same node, the same image or registry),
//! the report names that reason once, with the list of workloads it takes down.
//!
//! A diagnosis's root is typed, from what its top finding is about ([`About`]), never from its
//! summary text; grouping compares roots.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::diagnose::Diagnosis;
use crate::refs::RefKind;
use crate::subject::{About, Finding, Subject};
use crate::verdict::CauseId;
use crate::workload::Workload;

/// The one thing a diagnosis's top cause is about, when other workloads can fail on it too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum Root {
    Secret { namespace: String, name: String },
    ConfigMap { namespace: String, name: String },
    Service { namespace: String, name: String },
    Node { name: String },
    Image { image: String },
    Registry { host: String },
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Root::Secret { namespace, name } => write!(f, "Secret {namespace}/{name}"),
            Root::ConfigMap { namespace, name } => write!(f, "ConfigMap {namespace}/{name}"),
            Root::Service { namespace, name } => write!(f, "Service {namespace}/{name}"),
            Root::Node { name } => write!(f, "node {name}"),
            Root::Image { image } => write!(f, "image {image}"),
            Root::Registry { host } => write!(f, "registry {host}"),
        }
    }
}

impl Root {
    /// Every string of the root (for the report's text passes, `text::each_report_string`).
    pub fn strings_mut(&mut self) -> Vec<&mut String> {
        match self {
            Root::Secret { namespace, name }
            | Root::ConfigMap { namespace, name }
            | Root::Service { namespace, name } => vec![namespace, name],
            Root::Node { name } => vec![name],
            Root::Image { image } => vec![image],
            Root::Registry { host } => vec![host],
        }
    }
}

/// A root several workloads fail on, said once on top of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedRoot {
    pub root: Root,
    /// The top cause of the first victim (victims of one root share it but for rare mixes, such
    /// as a missing Secret read as a variable by one workload and mounted by another).
    pub cause: CauseId,
    /// One sentence: what is wrong with the root and how many workloads it takes down.
    pub summary: String,
    /// Every workload (and container) whose top cause is about this root, in report order.
    pub victims: Vec<Victim>,
}

/// A workload a shared root takes down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Victim {
    pub namespace: String,
    /// `deploy/api`, as in its diagnosis.
    pub workload: Workload,
    pub container: String,
    pub cause: CauseId,
    /// Its troubled pods.
    pub pods: usize,
}

/// The root of a finding, when its cause can take down other workloads too. A ConfigMap or
/// Secret that exists now (the cause is fixed, the pod still backs off) is no longer a root.
pub fn of_finding(s: &Subject, f: &Finding) -> Option<Root> {
    use CauseId::*;
    let namespace = s.namespace.to_string();
    match (&f.about, f.cause.id) {
        (About::Object(kind, name), MissingSecret | MissingConfigmap) => {
            let exists = match kind {
                RefKind::Secret => s.state.secret(s.namespace, name).is_some(),
                RefKind::ConfigMap => s.state.config_map(s.namespace, name).is_some(),
            };
            (!exists).then(|| object(*kind, namespace, name))
        }
        (About::Object(kind, name), MissingConfigKey) => Some(object(*kind, namespace, name)),
        (About::Service { namespace, name }, DependencyUnreachable | DependencyDns) => {
            Some(Root::Service {
                namespace: namespace.clone(),
                name: name.clone(),
            })
        }
        (About::Node(name), NodePressure | SandboxFailed) => {
            Some(Root::Node { name: name.clone() })
        }
        (About::Image(image), ImagePull | ExecFormat) => Some(Root::Image {
            image: image.clone(),
        }),
        (About::Registry(host), ImagePull) => Some(Root::Registry { host: host.clone() }),
        _ => None,
    }
}

fn object(kind: RefKind, namespace: String, name: &str) -> Root {
    let name = name.to_string();
    match kind {
        RefKind::Secret => Root::Secret { namespace, name },
        RefKind::ConfigMap => Root::ConfigMap { namespace, name },
    }
}

/// The roots that two or more workloads fail on, the one with most victims first (then by root).
/// A root of one workload (however many of its containers or replicas) is not shared.
pub fn shared(diagnoses: &[Diagnosis]) -> Vec<SharedRoot> {
    let mut by_root: BTreeMap<&Root, Vec<&Diagnosis>> = BTreeMap::new();
    for d in diagnoses {
        if let Some(r) = &d.root {
            by_root.entry(r).or_default().push(d);
        }
    }
    let mut out: Vec<SharedRoot> = by_root
        .into_iter()
        .filter_map(|(root, victims)| {
            let mut workloads: Vec<(&str, &Workload)> = victims
                .iter()
                .map(|d| (d.namespace.as_str(), &d.workload))
                .collect();
            workloads.dedup();
            workloads.sort_unstable();
            workloads.dedup();
            if workloads.len() < 2 {
                return None;
            }
            let cause = victims[0].top().id;
            Some(SharedRoot {
                root: root.clone(),
                cause,
                summary: format!(
                    "{}: {} workloads fail because of it",
                    what_is_wrong(root, cause),
                    workloads.len()
                ),
                victims: victims
                    .iter()
                    .map(|d| Victim {
                        namespace: d.namespace.clone(),
                        workload: d.workload.clone(),
                        container: d.container.clone(),
                        cause: d.top().id,
                        pods: d.pods.len(),
                    })
                    .collect(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.victims
            .len()
            .cmp(&a.victims.len())
            .then_with(|| a.root.cmp(&b.root))
    });
    out
}

/// What is wrong with a root, in the words its cause justifies.
fn what_is_wrong(root: &Root, cause: CauseId) -> String {
    use CauseId::*;
    match cause {
        MissingSecret | MissingConfigmap => format!("{root} does not exist"),
        MissingConfigKey => format!("{root} lacks keys they read"),
        DependencyUnreachable => format!("{root} refuses their connections"),
        DependencyDns => format!("the name of {root} does not resolve"),
        NodePressure => format!("{root} is short of resources"),
        SandboxFailed => format!("{root} cannot create pod sandboxes"),
        ImagePull => match root {
            Root::Registry { .. } => format!("{root} cannot be reached"),
            _ => format!("{root} cannot be pulled"),
        },
        ExecFormat => format!("{root} is built for another CPU architecture"),
        _ => format!("{root} fails them ({cause})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{Query, diagnose};
    use crate::testing::{self, scenario};
    use k8s_openapi::api::core::v1::Pod;

    /// A copy of the scenario's first pod as the pod of another Deployment, `name`: the owner
    /// reference is the one field changed (the ReplicaSet is not in the state, so its name,
    /// `NAME-HASH`, says the Deployment), and the pod's name so both are listed.
    fn in_another_deployment(pod: &Pod, name: &str) -> Pod {
        let mut copy = pod.clone();
        let hash = copy.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
        let owner = &mut copy.metadata.owner_references.as_mut().unwrap()[0];
        owner.name = format!("{name}-{hash}");
        copy.metadata.name = Some(format!("{name}-{hash}-x1"));
        copy
    }

    /// The scenario with copies of its first pod in other Deployments, each with the captured
    /// logs of that pod (the same program crashing the same way).
    fn with_copies(name: &str, copies: &[&str]) -> crate::ClusterState {
        let mut state = scenario(name);
        let pod = state.pods[0].clone();
        let logs: Vec<_> = state
            .logs
            .iter()
            .filter(|l| Some(&l.pod) == pod.metadata.name.as_ref())
            .cloned()
            .collect();
        for c in copies {
            let copy = in_another_deployment(&pod, c);
            for l in &logs {
                let mut l = l.clone();
                l.pod = copy.metadata.name.clone().unwrap();
                state.logs.push(l);
            }
            state.pods.push(copy);
        }
        state
    }

    #[test]
    fn two_deployments_needing_one_missing_secret_share_it_once() {
        let state = with_copies("missing-secret", &["billing"]);
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.diagnoses.len(), 2);
        assert_eq!(report.shared_roots.len(), 1, "{:?}", report.shared_roots);
        let r = &report.shared_roots[0];
        assert_eq!(
            r.root,
            Root::Secret {
                namespace: "missing-secret".into(),
                name: "db-credentials".into()
            }
        );
        assert_eq!(r.cause, CauseId::MissingSecret);
        let victims: Vec<String> = r.victims.iter().map(|v| v.workload.to_string()).collect();
        assert_eq!(victims, ["deploy/billing", "deploy/payments"]);
        assert!(
            r.summary
                .starts_with("Secret missing-secret/db-credentials does not exist: 2 workloads"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn one_workload_alone_or_with_replicas_shares_nothing() {
        let state = scenario("missing-secret");
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert!(report.diagnoses[0].root.is_some());
        assert!(report.shared_roots.is_empty());
        // A second replica of the same Deployment: one workload, one diagnosis.
        let mut state = scenario("missing-secret");
        let mut replica = state.pods[0].clone();
        replica.metadata.name = Some("payments-replica".into());
        state.pods.push(replica);
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.diagnoses.len(), 1);
        assert!(report.shared_roots.is_empty());
    }

    #[test]
    fn a_secret_that_exists_now_is_no_root() {
        let mut state = with_copies("missing-secret", &["billing"]);
        // The captured db-credentials of missing-secret-key, moved to this namespace.
        let mut existing = scenario("missing-secret-key").secrets[0].clone();
        assert_eq!(existing.name, "db-credentials");
        existing.namespace = "missing-secret".into();
        state.secrets.push(existing);
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert!(report.shared_roots.is_empty(), "{:?}", report.shared_roots);
    }

    #[test]
    fn different_secrets_are_different_roots() {
        let mut state = with_copies("missing-secret", &["billing"]);
        let env = state.pods[1].spec.as_mut().unwrap().containers[0]
            .env
            .as_mut()
            .unwrap();
        let r = env
            .iter_mut()
            .find_map(|e| e.value_from.as_mut()?.secret_key_ref.as_mut())
            .unwrap();
        r.name = "billing-credentials".into();
        // The kubelet's words follow the spec.
        let waiting = state.pods[1]
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .state
            .as_mut()
            .unwrap()
            .waiting
            .as_mut()
            .unwrap();
        let msg = waiting.message.as_mut().unwrap();
        *msg = msg.replace("db-credentials", "billing-credentials");
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.diagnoses.len(), 2);
        assert!(report.shared_roots.is_empty(), "{:?}", report.shared_roots);
    }

    #[test]
    fn a_dependency_service_with_no_endpoints_is_one_root() {
        let state = with_copies("node-no-endpoints", &["reports"]);
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        let r = &report.shared_roots[0];
        assert!(
            matches!(&r.root, Root::Service { namespace, .. } if namespace == "node-no-endpoints"),
            "{:?}",
            r.root
        );
        assert_eq!(r.cause, CauseId::DependencyUnreachable);
        assert_eq!(r.victims.len(), 2);
    }

    #[test]
    fn an_unreachable_registry_is_one_root_for_every_image_on_it() {
        let mut state = with_copies("image-pull-error", &["ledger"]);
        // Another image on the same registry.
        state.pods[1].spec.as_mut().unwrap().containers[0].image =
            Some("10.231.0.1:5999/ledger/api:2.0".into());
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.shared_roots.len(), 1, "{:?}", report.shared_roots);
        let r = &report.shared_roots[0];
        assert_eq!(
            r.root,
            Root::Registry {
                host: "10.231.0.1:5999".into()
            }
        );
        assert!(r.summary.contains("cannot be reached"), "{}", r.summary);
    }

    #[test]
    fn json_carries_the_root_kind_and_victims() {
        let state = with_copies("missing-secret", &["billing"]);
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        let json = serde_json::to_value(&report).unwrap();
        let r = &json["sharedRoots"][0];
        assert_eq!(r["root"]["kind"], "Secret");
        assert_eq!(r["root"]["name"], "db-credentials");
        assert_eq!(r["cause"], "missing-secret");
        assert_eq!(r["victims"][0]["workload"], "deploy/billing");
        assert_eq!(json["diagnoses"][0]["root"]["kind"], "Secret");
    }
}
