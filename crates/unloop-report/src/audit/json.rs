//! JSON for programs: the findings with their check's why, a summary, and what was skipped.

use serde::Serialize;

use super::RenderOptions;
use unloop_audit::AuditReport;
use unloop_audit::check::{Finding, Severity};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    summary: Summary,
    findings: Vec<FindingView<'a>>,
    suppressed: Vec<SuppressedView<'a>>,
    checks: Vec<&'static str>,
    skipped_kinds: &'a std::collections::BTreeMap<String, usize>,
    notes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    rightsize: Option<&'a unloop_audit::rightsize::RightsizeReport>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    errors: usize,
    warnings: usize,
    infos: usize,
    suppressed: usize,
    workloads: usize,
    objects_read: usize,
    fail_on: Severity,
    /// True when a finding is at or above `failOn`: the run exits 1.
    failed: bool,
}

#[derive(Serialize)]
struct FindingView<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    why: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SuppressedView<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    suppressed_by: &'a str,
}

pub(super) fn render(r: &AuditReport, opts: &RenderOptions) -> String {
    let doc = Document {
        api_version: "unloop.dev/v1alpha1",
        kind: "AuditReport",
        summary: Summary {
            errors: r.count(Severity::Error),
            warnings: r.count(Severity::Warning),
            infos: r.count(Severity::Info),
            suppressed: r.suppressed.len(),
            workloads: r.workloads.len(),
            objects_read: r.objects_read,
            fail_on: opts.fail_on,
            failed: r.worst().is_some_and(|w| w >= opts.fail_on),
        },
        findings: r
            .findings
            .iter()
            .map(|f| FindingView {
                finding: f,
                why: f.check.why(),
            })
            .collect(),
        suppressed: r
            .suppressed
            .iter()
            .map(|s| SuppressedView {
                finding: &s.finding,
                suppressed_by: &s.by,
            })
            .collect(),
        checks: r.checks.iter().map(|c| c.as_str()).collect(),
        skipped_kinds: &r.skipped,
        notes: &r.notes,
        rightsize: r.rightsize.as_ref(),
    };
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
