//! Renderers: for people (human), for programs (json), for code-scanning UIs (SARIF 2.1.0) and
//! for CI test reports (JUnit XML). Each is a pure function from a report to text.

mod human;
mod json;
mod junit;
mod sarif;

use unloop_core::text::Layout;

use crate::AuditReport;
use crate::check::Severity;

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
    each_string(&mut redacted, suppressed_fixes, &mut |s, _| {
        let r = unloop_core::redact::text(s);
        if r != *s {
            *s = r;
        }
    });
    redacted
}

/// Calls `f` on every string of an audit report that came from the input or was built from it:
/// the one list both output passes (redaction, terminal escaping) walk. Fix snippets are written
/// here, when a format prints them (those of suppressed findings only with `suppressed_fixes`).
pub(crate) fn each_string(
    r: &mut AuditReport,
    suppressed_fixes: bool,
    f: &mut dyn FnMut(&mut String, Layout),
) {
    fn object(o: &mut crate::ObjectRef, f: &mut dyn FnMut(&mut String, Layout)) {
        f(&mut o.kind, Layout::Line);
        f(&mut o.namespace, Layout::Line);
        f(&mut o.name, Layout::Line);
    }
    fn location(l: &mut crate::Location, f: &mut dyn FnMut(&mut String, Layout)) {
        f(&mut l.file, Layout::Line);
        if let Some(t) = l.template.as_mut() {
            f(t, Layout::Line);
        }
    }
    fn finding(x: &mut crate::Finding, fix: bool, f: &mut dyn FnMut(&mut String, Layout)) {
        object(&mut x.object, f);
        if let Some(c) = x.container.as_mut() {
            f(c, Layout::Line);
        }
        if let Some(l) = x.location.as_mut() {
            location(l, f);
        }
        f(&mut x.message, Layout::Line);
        f(&mut x.fix.text, Layout::Line);
        if let Some(y) = x.fix.yaml.as_mut().filter(|_| fix) {
            f(y.text_mut(), Layout::Lines);
        }
    }
    for x in &mut r.findings {
        finding(x, true, f);
    }
    for s in &mut r.suppressed {
        finding(&mut s.finding, suppressed_fixes, f);
        f(&mut s.by, Layout::Line);
    }
    for (o, l) in &mut r.workloads {
        object(o, f);
        if let Some(l) = l.as_mut() {
            location(l, f);
        }
    }
    for n in &mut r.notes {
        f(n, Layout::Line);
    }
    if !r.skipped.is_empty() {
        r.skipped = std::mem::take(&mut r.skipped)
            .into_iter()
            .map(|(mut k, v)| {
                f(&mut k, Layout::Line);
                (k, v)
            })
            .collect();
    }
    if let Some(rs) = r.rightsize.as_mut() {
        f(&mut rs.source, Layout::Line);
        f(&mut rs.method, Layout::Line);
        for g in &mut rs.gaps {
            f(g, Layout::Line);
        }
        for rec in &mut rs.recommendations {
            object(&mut rec.object, f);
            f(&mut rec.container, Layout::Line);
            for v in rec.current.values_mut() {
                f(v, Layout::Line);
            }
            if let Some(o) = rec.oom_killed_at_limit.as_mut() {
                f(o, Layout::Line);
            }
            f(&mut rec.snippet, Layout::Lines);
        }
    }
}

/// `3 errors`, `1 warning`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_str};
    use crate::{AuditConfig, Context, Inventory, Known, Resolver, Snippet};

    /// The image-tag-latest check manifest, its workload exempted by annotation.
    fn suppressed_report() -> AuditReport {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
        let text = std::fs::read_to_string(dir.join("image-tag-latest/fail.yaml")).unwrap();
        let text = text.replacen(
            "namespace: shop}",
            "namespace: shop, annotations: {unloop.dev/ignore: all}}",
            1,
        );
        let mut inv = Inventory::default();
        load_str(&text, "m.yaml", &LoadOptions::default(), &mut inv).unwrap();
        let resolver = Resolver::new(vec![Known::manifests(&inv.config)]);
        let config = AuditConfig::default();
        let ctx = Context {
            config: &config,
            resolver: &resolver,
            observed: None,
        };
        crate::audit(&inv, &ctx)
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
