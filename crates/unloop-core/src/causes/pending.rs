//! Pods stuck before their first start: the scheduler cannot place them (FailedScheduling), the
//! kubelet cannot create their sandbox (FailedCreatePodSandBox) or mount a volume (FailedMount).
//! Nothing crash-loops, so these rules read the pod's warning events, and only once the pod has
//! waited past the grace period (`Subject::stuck_since`). A volume that fails because its ConfigMap
//! or Secret does not exist is `config`'s (missing-configmap, missing-secret).

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Event;
use regex::Regex;

use crate::shell::{Arg, Cmd};
use crate::subject::{About, Finding, Subject, human_secs};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};

static QUOTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"no runtime for "([^"]+)""#).expect("pattern compiles"));
static VOLUME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"for volume "([^"]+)""#).expect("pattern compiles"));
static MISSING_OBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(configmap|secret) "[^"]+" not found"#).expect("pattern compiles")
});

pub fn detect(s: &Subject) -> Vec<Finding> {
    let Some(since) = s.stuck_since else {
        return Vec::new();
    };
    let waited = human_secs(s.now.duration_since(since).as_secs_f64());
    let mut out = Vec::new();
    if let Some(e) = last(s, "FailedScheduling") {
        out.push(unschedulable(s, e, &waited));
    }
    if let Some(e) = last(s, "FailedCreatePodSandBox") {
        out.push(sandbox(s, e, &waited));
    }
    if let Some(e) = s
        .events
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.reason.as_deref(),
                Some("FailedMount" | "FailedAttachVolume")
            ) && !MISSING_OBJECT.is_match(e.message.as_deref().unwrap_or_default())
        })
    {
        out.push(volume(s, e, &waited));
    }
    out
}

/// The newest warning event of `reason` about the pod.
fn last<'a>(s: &Subject<'a>, reason: &str) -> Option<&'a Event> {
    s.events
        .iter()
        .rev()
        .copied()
        .find(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
}

fn waiting(s: &Subject, waited: &str) -> Evidence {
    Evidence::new(
        EvidenceKind::Field,
        format!("pod/{} status.phase", s.pod_name),
        format!("Pending for {waited}, no container started"),
    )
}

fn unschedulable(s: &Subject, e: &Event, waited: &str) -> Finding {
    let id = CauseId::Unschedulable;
    let msg = e.message.as_deref().unwrap_or_default();
    // "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint ...": the part
    // before the preemption note says why.
    let why = msg
        .split(" preemption:")
        .next()
        .unwrap_or(msg)
        .trim()
        .trim_end_matches('.')
        .trim_end_matches(" no new claims to deallocate,")
        .trim_end_matches(" no new claims to deallocate")
        .trim_end_matches(['.', ','])
        .to_string();
    let mut cause = Cause::new(
        id,
        Confidence::High,
        format!("the scheduler cannot place the pod ({why}); it has waited {waited}"),
    )
    .with(s.event_evidence(e))
    .with(waiting(s, waited));
    let mut remedies = Vec::new();
    let resources: Vec<&str> = ["cpu", "memory", "ephemeral-storage"]
        .into_iter()
        .filter(|r| msg.contains(&format!("Insufficient {r}")))
        .collect();
    for r in &resources {
        let requested = s
            .spec
            .resources
            .as_ref()
            .and_then(|x| x.requests.as_ref())
            .and_then(|x| x.get(*r))
            .map(|q| q.0.clone());
        if let Some(q) = &requested {
            cause
                .evidence
                .push(s.spec_evidence(".resources.requests", format!("{r}: {q}")));
        }
        let allocatable: Vec<String> = s
            .state
            .nodes
            .iter()
            .filter_map(|n| {
                let a = n.status.as_ref()?.allocatable.as_ref()?.get(*r)?;
                Some(format!(
                    "{} {}",
                    n.metadata.name.as_deref().unwrap_or_default(),
                    a.0
                ))
            })
            .collect();
        if !allocatable.is_empty() {
            cause.evidence.push(Evidence::new(
                EvidenceKind::Node,
                format!("nodes status.allocatable.{r}"),
                allocatable.join(", "),
            ));
        }
        remedies.push(Remedy::fix(
            id,
            format!(
                "lower the {r} request of container {} to what a node can offer (or add a node that has it)",
                s.container()
            ),
            s.settable().map(|w| {
                s.kubectl(&["set", "resources"], w)
                    .flag_value("-c", s.container())
                    .flag(Arg::lit(format!("--requests={r}=")).then_placeholder(*r))
                    .into()
            }),
        ));
    }
    if resources.is_empty() {
        remedies.push(Remedy::inspect(
            id,
            "compare the pod's node selector, affinity and tolerations with the nodes' labels and taints",
            Some(
                Cmd::kubectl(&["get", "nodes"])
                    .flag_value(
                        "-o",
                        "custom-columns=NAME:.metadata.name,TAINTS:.spec.taints[*].key,LABELS:.metadata.labels",
                    )
                    .into(),
            ),
        ));
    }
    remedies.push(Remedy::inspect(
        id,
        "what each node has left to allocate",
        Some(Cmd::kubectl(&["describe", "nodes"]).into()),
    ));
    Finding {
        cause,
        remedies,
        about: About::Container,
    }
}

fn sandbox(s: &Subject, e: &Event, waited: &str) -> Finding {
    let id = CauseId::SandboxFailed;
    let msg = e.message.as_deref().unwrap_or_default();
    let runtime_class = s
        .pod
        .spec
        .as_ref()
        .and_then(|p| p.runtime_class_name.as_deref());
    let handler = QUOTED.captures(msg).map(|c| c[1].to_string());
    let summary = match (runtime_class, &handler) {
        (Some(rc), Some(h)) => format!(
            "the kubelet cannot create the pod's sandbox: RuntimeClass {rc} names the handler \"{h}\", which the node's container runtime does not have; the pod has waited {waited}"
        ),
        _ => format!(
            "the kubelet cannot create the pod's sandbox (network or container runtime); the pod has waited {waited}"
        ),
    };
    let mut cause = Cause::new(id, Confidence::High, summary)
        .with(s.event_evidence(e))
        .with(waiting(s, waited));
    let mut remedies = Vec::new();
    if let Some(rc) = runtime_class {
        cause.evidence.push(Evidence::new(
            EvidenceKind::Spec,
            format!("pod/{} spec.runtimeClassName", s.pod_name),
            rc,
        ));
        if handler.is_some() {
            let patch = serde_json::json!([
                {"op": "remove", "path": "/spec/template/spec/runtimeClassName"}
            ])
            .to_string();
            remedies.push(Remedy::fix(
                id,
                format!(
                    "run the pods with the node's default runtime (drop runtimeClassName {rc}), or install the handler on the node"
                ),
                s.settable().map(|w| {
                    s.kubectl(&["patch"], w)
                        .flag_value("--type", "json")
                        .flag_value("-p", patch)
                        .into()
                }),
            ));
            remedies.push(Remedy::inspect(
                id,
                format!("the RuntimeClass {rc} and its handler"),
                Some(Cmd::kubectl(&["get", "runtimeclass"]).operand(rc).flag_value("-o", "yaml").into()),
            ));
        }
    }
    // Without a RuntimeClass of its own, the pod fails on what its node's runtime or network does.
    let about = match s.pod.spec.as_ref().and_then(|p| p.node_name.clone()) {
        Some(node) if handler.is_none() => About::Node(node),
        _ => About::Container,
    };
    if remedies.is_empty() {
        remedies.push(Remedy::inspect(
            id,
            "the node's container runtime and CNI plugin logs say more (journalctl -u containerd, the CNI configuration in /etc/cni/net.d)",
            Some(s.kubectl(&["describe", "pod"], s.pod_name).into()),
        ));
    }
    Finding {
        cause,
        remedies,
        about,
    }
}

fn volume(s: &Subject, e: &Event, waited: &str) -> Finding {
    let id = CauseId::VolumeMountFailed;
    let msg = e.message.as_deref().unwrap_or_default();
    let name = VOLUME.captures(msg).map(|c| c[1].to_string());
    let claim = name.as_deref().and_then(|v| {
        s.pod
            .spec
            .as_ref()?
            .volumes
            .iter()
            .flatten()
            .find(|x| x.name == v)?
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.clone())
    });
    let what = name
        .as_deref()
        .map(|v| format!("volume {v}"))
        .unwrap_or_else(|| "a volume".into());
    let mut cause = Cause::new(
        id,
        Confidence::High,
        format!("the kubelet cannot mount {what} of the pod; it has waited {waited}"),
    )
    .with(s.event_evidence(e))
    .with(waiting(s, waited));
    let remedy = match &claim {
        Some(c) => {
            cause.evidence.push(Evidence::new(
                EvidenceKind::Spec,
                format!("pod/{} spec.volumes[{}]", s.pod_name, name.clone().unwrap_or_default()),
                format!("persistentVolumeClaim {c}"),
            ));
            Remedy::inspect(
                id,
                format!("the claim {c}: is it bound, and to a volume this node can attach?"),
                Some(s.kubectl(&["describe", "pvc"], c).into()),
            )
        }
        None => Remedy::inspect(
            id,
            "every mount error of the pod",
            Some(s.kubectl(&["describe", "pod"], s.pod_name).into()),
        ),
    };
    Finding {
        cause,
        remedies: vec![remedy],
        about: About::Container,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{Query, diagnose};
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn a_pod_the_scheduler_cannot_place() {
        let state = scenario("unschedulable");
        let f = finding(&state, detect, CauseId::Unschedulable);
        assert!(f.cause.summary.contains("1 Insufficient cpu"), "{}", f.cause.summary);
        assert!(!f.cause.summary.contains("preemption"), "{}", f.cause.summary);
        assert!(cites(&f, "cpu: 64"));
        assert!(cites(&f, "unloop-node 2"));
        let fix = f.remedies[0].command().unwrap();
        assert!(
            fix.contains("set resources deploy/indexer -n unschedulable -c indexer --requests=cpu='<cpu>'"),
            "{fix}"
        );
    }

    #[test]
    fn a_runtime_class_whose_handler_the_node_lacks() {
        let state = scenario("sandbox-failed");
        let f = finding(&state, detect, CauseId::SandboxFailed);
        assert!(f.cause.summary.contains(r#"names the handler "gvisor""#));
        assert!(cites(&f, "unloop-sandboxed"));
        let fix = f.remedies[0].command().unwrap();
        assert!(fix.contains(r#""path":"/spec/template/spec/runtimeClassName""#), "{fix}");
    }

    #[test]
    fn a_missing_secret_volume_is_the_config_rule_s_and_other_mount_errors_are_here() {
        let state = scenario("secret-volume-missing");
        assert!(ids(&state, detect).is_empty());
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.diagnoses[0].top().id, CauseId::MissingSecret);
        assert_eq!(report.diagnoses[0].status, "ContainerCreating");
        let mut state = scenario("secret-volume-missing");
        for e in state.events.iter_mut().filter(|e| e.reason.as_deref() == Some("FailedMount")) {
            e.message = Some(r#"MountVolume.SetUp failed for volume "tls" : mount failed: exit status 32"#.into());
        }
        state.secrets.push(crate::state::KeySet {
            namespace: "secret-volume-missing".into(),
            name: "api-tls".into(),
            keys: vec!["tls.crt".into()],
            created_at: None,
        });
        let f = finding(&state, detect, CauseId::VolumeMountFailed);
        assert!(f.cause.summary.contains("cannot mount volume tls"), "{}", f.cause.summary);
    }

    #[test]
    fn a_pod_is_stuck_only_past_the_grace_period() {
        for name in ["unschedulable", "sandbox-failed", "secret-volume-missing"] {
            let state = scenario(name);
            let now = testing::now(&state);
            let report = diagnose(&state, &Query::default(), now);
            assert_eq!(report.diagnoses.len(), 1, "{name}");
            let patient = Query {
                stuck_after_secs: 24 * 3600,
                ..Query::default()
            };
            assert!(diagnose(&state, &patient, now).diagnoses.is_empty(), "{name}");
            // Without warning events a slow start is not trouble.
            let mut quiet = state.clone();
            quiet.events.retain(|e| e.type_.as_deref() != Some("Warning"));
            assert!(diagnose(&quiet, &Query::default(), now).diagnoses.is_empty(), "{name}");
        }
    }
}
