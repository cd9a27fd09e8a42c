//! Node pressure: evictions, node-wide OOM kills, and pressure conditions.

use crate::causes::oom::node_oom_near;
use crate::shell::{Cmd, Script};
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};

pub fn detect(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    let node_name = s
        .node
        .and_then(|n| n.metadata.name.clone())
        .or_else(|| s.pod.spec.as_ref().and_then(|p| p.node_name.clone()));
    let pressure: Vec<String> = s
        .node
        .and_then(|n| n.status.as_ref())
        .and_then(|st| st.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter(|c| c.type_.ends_with("Pressure") && c.status == "True")
                .map(|c| {
                    format!(
                        "{}=True: {}",
                        c.type_,
                        c.message.as_deref().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // The node is what these findings are about: pods it fails together share one root.
    let about = node_name
        .clone()
        .map_or(About::Container, About::Node);
    let node_evidence = |text: String| {
        Evidence::new(
            EvidenceKind::Node,
            format!("node/{}", node_name.as_deref().unwrap_or("?")),
            text,
        )
    };
    if let Some(f) = crate::status::pod_failure(s.pod).filter(|f| f.reason == "Evicted") {
        let mut cause = Cause::new(
            CauseId::NodePressure,
            Confidence::High,
            format!("the kubelet evicted the pod: {}", first_sentence(f.message)),
        )
        .with(Evidence::new(
            EvidenceKind::Field,
            format!("pod/{} {}", s.pod_name, f.field),
            format!("{}: {}", f.reason, f.message),
        ));
        for p in &pressure {
            cause.evidence.push(node_evidence(p.clone()));
        }
        out.push(Finding {
            about: about.clone(),
            cause,
            remedies: vec![
                Remedy::inspect(
                    CauseId::NodePressure,
                    "see what the node is short of",
                    node_name.as_deref().map(describe_node),
                ),
                Remedy::fix(
                    CauseId::NodePressure,
                    "delete the evicted pod (its controller already replaced it)",
                    Some(s.kubectl(&["delete", "pod"], s.pod_name).into()),
                ),
            ],
        });
        return out;
    }
    let code = s.exit_code();
    let ooms = node_oom_near(s);
    if !ooms.is_empty() && code == Some(137) {
        let mut cause = Cause::new(
            CauseId::NodePressure,
            Confidence::High,
            "killed by a node-wide OOM (the node ran out of memory), not by its own limit",
        );
        cause.evidence.extend(s.termination_evidence());
        cause.evidence.extend(ooms);
        for p in &pressure {
            cause.evidence.push(node_evidence(p.clone()));
        }
        out.push(Finding {
            about: about.clone(),
            cause,
            remedies: vec![Remedy::inspect(
                CauseId::NodePressure,
                "find what fills the node's memory",
                node_name.as_deref().map(describe_node),
            )],
        });
    } else if !pressure.is_empty() && matches!(code, Some(137) | Some(143)) {
        let mut cause = Cause::new(
            CauseId::NodePressure,
            Confidence::Medium,
            format!("the node is under pressure ({})", pressure.join("; ")),
        );
        cause.evidence.extend(s.termination_evidence());
        for p in &pressure {
            cause.evidence.push(node_evidence(p.clone()));
        }
        out.push(Finding {
            about: about.clone(),
            cause,
            remedies: vec![],
        });
    }
    out
}

fn describe_node(name: &str) -> Script {
    Cmd::kubectl(&["describe", "node"]).operand(name).into()
}

fn first_sentence(s: &str) -> &str {
    s.split(". ").next().unwrap_or(s).trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn a_kill_on_a_node_under_memory_pressure() {
        let mut state = scenario("oom-limit");
        assert!(ids(&state, detect).is_empty());
        let conditions = state.nodes[0]
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap();
        let c = conditions
            .iter_mut()
            .find(|c| c.type_ == "MemoryPressure")
            .unwrap();
        c.status = "True".into();
        let f = finding(&state, detect, CauseId::NodePressure);
        assert_eq!(f.cause.confidence, Confidence::Medium);
        assert!(cites(&f, "MemoryPressure=True"));
    }

    #[test]
    fn an_evicted_pod() {
        let mut state = scenario("oom-limit");
        let status = testing::pod(&mut state).status.as_mut().unwrap();
        status.phase = Some("Failed".into());
        status.reason = Some("Evicted".into());
        status.message = Some("The node was low on resource: memory. Container worker was using 67880Ki, request is 64Mi.".into());
        let f = finding(&state, detect, CauseId::NodePressure);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert_eq!(
            f.cause.summary,
            "the kubelet evicted the pod: The node was low on resource: memory"
        );
    }

    #[test]
    fn a_healthy_node_puts_no_pressure() {
        assert!(testing::run(&testing::healthy(), detect).is_empty());
    }
}
