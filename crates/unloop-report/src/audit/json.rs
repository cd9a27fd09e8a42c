//! JSON for programs: the findings with their check's why, a summary, and what was skipped.

use schemars::JsonSchema;
use serde::Serialize;

use super::RenderOptions;
use unloop_audit::AuditReport;
use unloop_audit::check::{CheckId, Finding, Severity};

const API_VERSION: &str = "unloop.dev/v1alpha1";
const KIND: &str = "AuditReport";

/// What `unloop audit -o json` writes.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document<'a> {
    #[schemars(extend("const" = API_VERSION))]
    api_version: &'static str,
    #[schemars(extend("const" = KIND))]
    kind: &'static str,
    summary: Summary,
    findings: Vec<FindingView<'a>>,
    suppressed: Vec<SuppressedView<'a>>,
    /// The checks that ran.
    checks: &'a [CheckId],
    skipped_kinds: &'a std::collections::BTreeMap<String, usize>,
    notes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    rightsize: Option<&'a unloop_audit::rightsize::RightsizeReport>,
}

#[derive(Serialize, JsonSchema)]
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

#[derive(Serialize, JsonSchema)]
struct FindingView<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    why: &'static str,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SuppressedView<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    suppressed_by: &'a str,
}

pub(super) fn render(r: &AuditReport, opts: &RenderOptions) -> String {
    let doc = Document {
        api_version: API_VERSION,
        kind: KIND,
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
        checks: &r.checks,
        skipped_kinds: &r.skipped,
        notes: &r.notes,
        rightsize: r.rightsize.as_ref(),
    };
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    crate::schema::assert_valid(crate::schema::Kind::Audit, &s);
    s
}
