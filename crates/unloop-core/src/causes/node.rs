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
            about: About::Container,
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
            about: About::Container,
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
            about: About::Container,
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
