//! The audit report (`unloop_audit::AuditReport`): for people (human), for programs (json), for
//! code-scanning UIs (SARIF 2.1.0) and for CI test reports (JUnit XML). Each is a pure function
//! from a report to text.

mod human;
pub(crate) mod json;
mod junit;
mod rightsize;
mod sarif;

pub use rightsize::human as rightsize_human;
use unloop_audit::{AuditReport, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub color: bool,
    /// Findings at or above this severity fail the run (exit 1); JUnit marks them as failures.
    pub fail_on: Severity,
    /// The unloop version, for SARIF's tool driver.
    pub tool_version: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            fail_on: Severity::Warning,
            tool_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Renders `report` in `format`. Every format writes the report after the output-side redaction
/// pass (`unloop_core::redact::text` on every string), whatever the checks put in it; the human
/// format also spells out control characters (`unloop_core::text::visible`).
pub fn render(report: &AuditReport, format: Format, opts: &RenderOptions) -> String {
    let report = &redacted(report, format);
    match format {
        Format::Human => human::render(report, opts),
        Format::Json => json::render(report, opts),
        Format::Sarif => sarif::render(report, opts),
        Format::Junit => junit::render(report, opts),
    }
}

/// The report as `format` writes it: every string it prints redacted, fix snippets written only
/// where it prints them (only JSON and SARIF print the fixes of suppressed findings).
fn redacted(report: &AuditReport, format: Format) -> AuditReport {
    let mut redacted = report.clone();
    let suppressed_fixes = matches!(format, Format::Json | Format::Sarif);
    unloop_audit::each_string(&mut redacted, suppressed_fixes, &mut |s, _| {
        let r = unloop_core::redact::text(s);
        if r != *s {
            *s = r;
        }
    });
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;
    use unloop_audit::load::{LoadOptions, load_str};
    use unloop_audit::{AuditConfig, Inventory, Snippet};

    /// The image-tag-latest check manifest, its workload exempted by annotation.
    fn suppressed_report() -> AuditReport {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../unloop-audit/tests/manifests");
        let text = std::fs::read_to_string(dir.join("image-tag-latest/fail.yaml")).unwrap();
        let text = text.replacen(
            "namespace: shop}",
            "namespace: shop, annotations: {unloop.dev/ignore: all}}",
            1,
        );
        let mut inv = Inventory::default();
        load_str(&text, "m.yaml", &LoadOptions::default(), &mut inv).unwrap();
        unloop_audit::audit_manifests(&inv, &AuditConfig::default())
    }

    fn written(r: &AuditReport) -> Vec<bool> {
        r.suppressed
            .iter()
            .filter_map(|s| s.finding.fix.yaml.as_ref())
            .map(|y| matches!(y, Snippet::Text(_)))
            .collect()
    }

    #[test]
    fn fix_snippets_are_written_only_where_printed() {
        let report = suppressed_report();
        assert!(report.findings.is_empty());
        // The checks leave snippets as data.
        let data = written(&report);
        assert!(!data.is_empty() && data.iter().all(|w| !w), "{data:?}");
        for format in [Format::Human, Format::Junit] {
            assert!(written(&redacted(&report, format)).iter().all(|w| !w));
        }
        for format in [Format::Json, Format::Sarif] {
            assert!(written(&redacted(&report, format)).iter().all(|w| *w));
        }
    }
}
