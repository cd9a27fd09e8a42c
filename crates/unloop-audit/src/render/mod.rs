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
    let mut redacted = report.clone();
    each_string(&mut redacted, &mut |s, _| {
        let r = unloop_core::redact::text(s);
        if r != *s {
            *s = r;
        }
    });
    let report = &redacted;
    match format {
        Format::Human => human::render(report, opts),
        Format::Json => json::render(report, opts),
        Format::Sarif => sarif::render(report, opts),
        Format::Junit => junit::render(report, opts),
    }
}

/// Calls `f` on every string of an audit report that came from the input or was built from it:
/// the one list both output passes (redaction, terminal escaping) walk.
pub(crate) fn each_string(r: &mut AuditReport, f: &mut dyn FnMut(&mut String, Layout)) {
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
    fn finding(x: &mut crate::Finding, f: &mut dyn FnMut(&mut String, Layout)) {
        object(&mut x.object, f);
        if let Some(c) = x.container.as_mut() {
            f(c, Layout::Line);
        }
        if let Some(l) = x.location.as_mut() {
            location(l, f);
        }
        f(&mut x.message, Layout::Line);
        f(&mut x.fix.text, Layout::Line);
        if let Some(y) = x.fix.yaml.as_mut() {
            f(y, Layout::Lines);
        }
    }
    for x in &mut r.findings {
        finding(x, f);
    }
    for s in &mut r.suppressed {
        finding(&mut s.finding, f);
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
