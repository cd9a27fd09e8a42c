//! Bad image rollout: crashes began with revision N while revision N-1 was healthy.

use crate::shell::{Argv, Pipeline, Script};
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};
use crate::workload::{self, WorkloadKind};

/// Most diff lines shown as evidence; the rest are counted.
const MAX_DIFF_LINES: usize = 8;

pub fn detect(s: &Subject) -> Vec<Finding> {
    if s.workload.kind != WorkloadKind::Deployment || s.revisions.len() < 2 {
        return Vec::new();
    }
    let (Some(rev), Some(latest)) = (s.revision, s.revisions.last()) else {
        return Vec::new();
    };
    if rev != latest.number {
        return Vec::new();
    }
    // The release before this one; revisions made by `unloop debug --in-place` are not releases.
    let Some(prev) = s.revisions[..s.revisions.len() - 1].iter().rev().find(|r| {
        r.template()
            .is_none_or(|t| !crate::debug::is_keepalive_template(t))
    }) else {
        return Vec::new();
    };
    // Revision N-1 must not be crashing itself.
    let prev_troubled = s
        .state
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(s.namespace))
        .any(|p| {
            workload::revision_of_pod(&s.revisions, p) == Some(prev.number)
                && !crate::status::troubled_containers(p, s.now).is_empty()
        });
    if prev_troubled {
        return Vec::new();
    }
    let (Some(old_t), Some(new_t)) = (prev.template(), latest.template()) else {
        return Vec::new();
    };
    let diff = workload::template_diff(old_t, new_t);
    if diff.is_empty() {
        return Vec::new();
    }
    let ready_prev = prev.ready();
    let confidence = if ready_prev > 0 {
        Confidence::High
    } else {
        Confidence::Medium
    };
    let w = &s.workload;
    let mut cause = Cause::new(
        CauseId::BadRollout,
        confidence,
        format!(
            "crashes began with revision {} of {w}; revision {} was healthy",
            latest.number, prev.number
        ),
    );
    let when = |t: Option<jiff::Timestamp>| t.map(|t| format!(", created {t}")).unwrap_or_default();
    cause.evidence.push(Evidence::new(
        EvidenceKind::Rollout,
        format!("replicaset/{}", latest.name()),
        format!(
            "revision {}{}: {} ready",
            latest.number,
            when(latest.created()),
            latest.ready()
        ),
    ));
    cause.evidence.push(Evidence::new(
        EvidenceKind::Rollout,
        format!("replicaset/{}", prev.name()),
        if ready_prev > 0 {
            format!(
                "revision {}{}: {ready_prev} ready pods still serving, none crashing",
                prev.number,
                when(prev.created())
            )
        } else {
            format!(
                "revision {}{}: no pods left, none seen crashing",
                prev.number,
                when(prev.created())
            )
        },
    ));
    for line in diff.iter().take(MAX_DIFF_LINES) {
        cause.evidence.push(Evidence::new(
            EvidenceKind::Rollout,
            format!("diff revision {} → {}", prev.number, latest.number),
            line.clone(),
        ));
    }
    if diff.len() > MAX_DIFF_LINES {
        cause.evidence.push(Evidence::new(
            EvidenceKind::Rollout,
            "diff",
            format!("… and {} more changes", diff.len() - MAX_DIFF_LINES),
        ));
    }
    let shown = w.to_string();
    // Each revision to a file, then diff: the same comparison as `diff <(...) <(...)`, without
    // process substitution, which only bash and zsh have.
    let history = |n: u64| {
        Pipeline::from(
            s.kubectl(&["rollout", "history"], &shown)
                .flag(format!("--revision={n}")),
        )
        .to_file(&format!("{}-revision-{n}.txt", w.name))
    };
    let (old_h, new_h) = (history(prev.number), history(latest.number));
    let diff = Argv::new("diff")
        .arg(old_h.stdout.clone().unwrap_or_default())
        .arg(new_h.stdout.clone().unwrap_or_default());
    let remedies = vec![
        Remedy::fix(
            CauseId::BadRollout,
            format!("roll back to revision {}", prev.number),
            Some(
                s.kubectl(&["rollout", "undo"], &shown)
                    .flag(format!("--to-revision={}", prev.number))
                    .into(),
            ),
        ),
        Remedy::inspect(
            CauseId::BadRollout,
            "compare the two revisions in full",
            Some(Script::new(old_h).and_then(new_h).and_then(diff)),
        ),
    ];
    vec![Finding { cause, remedies, about: About::Container }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, finding, ids, scenario};

    #[test]
    fn crashes_that_began_with_a_revision() {
        let state = scenario("bad-rollout");
        let f = finding(&state, detect, CauseId::BadRollout);
        assert!(
            f.cause
                .evidence
                .iter()
                .any(|e| e.kind == EvidenceKind::Rollout),
            "{:#?}",
            f.cause.evidence
        );
        assert!(
            f.remedies
                .iter()
                .filter_map(|r| r.command())
                .any(|c| c.contains("rollout undo"))
        );
    }

    #[test]
    fn a_single_revision_is_no_bad_rollout() {
        let mut state = scenario("bad-rollout");
        let newest = state
            .pods
            .iter()
            .find(|p| testing::troubled(p))
            .and_then(|p| p.metadata.owner_references.clone())
            .unwrap()[0]
            .name
            .clone();
        state
            .replica_sets
            .retain(|rs| rs.metadata.name.as_deref() == Some(newest.as_str()));
        assert!(ids(&state, detect).is_empty());
        assert!(ids(&testing::healthy(), detect).is_empty());
    }
}
