//! The terminal report: one block per object, each finding with its why and its fix.

use std::fmt::Write;

use std::borrow::Cow;

use owo_colors::OwoColorize;
use unloop_core::text::{Layout, visible, visible_lines};

use unloop_audit::{AuditReport, Finding, ObjectRef, Severity};

use super::RenderOptions;
use crate::palette::Palette;
use crate::plural;

pub(super) fn render(report: &AuditReport, opts: &RenderOptions) -> String {
    // Names, messages and snippets come from manifests and clusters: control characters in them
    // are spelled out before any of it reaches a terminal.
    let mut shown = report.clone();
    unloop_audit::each_string(&mut shown, false, &mut |s, layout| {
        let v = match layout {
            Layout::Line | Layout::Name => visible(s),
            Layout::Lines => visible_lines(s),
            Layout::ShellWord => return,
        };
        if let Cow::Owned(o) = v {
            *s = o;
        }
    });
    let report = &shown;
    let p = Palette::new(opts.color);
    let mut out = String::new();
    let mut current = None;
    for f in &report.findings {
        if current != Some(&f.object) {
            if current.is_some() {
                out.push('\n');
            }
            current = Some(&f.object);
            header(&mut out, f, &p);
        }
        finding(&mut out, f, &p);
    }
    if !report.findings.is_empty() {
        out.push('\n');
    }
    summary(&mut out, report, &p);
    if let Some(r) = &report.rightsize {
        out.push('\n');
        out.push_str(&super::rightsize_human(r));
    }
    out
}

fn header(out: &mut String, f: &Finding, p: &Palette) {
    let ns = if f.object.namespace.is_empty() {
        String::new()
    } else {
        format!(" -n {}", f.object.namespace)
    };
    let _ = write!(out, "{}{ns}", f.object.to_string().style(p.title));
    if let Some(loc) = &f.location {
        let file_line = format!("{}:{}", loc.file, loc.line);
        let _ = write!(out, "  {}", file_line.style(p.dim));
        if let Some(t) = &loc.template {
            let _ = write!(out, " {}", format!("({t})").style(p.dim));
        }
    }
    out.push('\n');
}

fn finding(out: &mut String, f: &Finding, p: &Palette) {
    let sev = format!("{:<7}", f.severity.as_str());
    let _ = write!(
        out,
        "  {} {}",
        sev.style(p.severity(f.severity)),
        f.check.as_str()
    );
    if let Some(c) = &f.container {
        let _ = write!(out, "{}", format!(" (container {c})").style(p.dim));
    }
    out.push('\n');
    let _ = writeln!(out, "          {}", f.message);
    let _ = writeln!(
        out,
        "          {} {}",
        "why:".style(p.dim),
        f.check.why().style(p.dim)
    );
    let _ = writeln!(out, "          fix: {}", f.fix.text);
    if let Some(y) = &f.fix.yaml {
        for l in y.text().lines() {
            let _ = writeln!(out, "            {}", l.style(p.cmd));
        }
    }
}

fn summary(out: &mut String, r: &AuditReport, p: &Palette) {
    let workloads = plural(r.workloads.len(), "workload");
    if r.findings.is_empty() {
        let _ = write!(out, "{} in {workloads}", "no findings".style(p.title));
    } else {
        let counts: Vec<String> = [
            (Severity::Error, "error"),
            (Severity::Warning, "warning"),
            (Severity::Info, "info"),
        ]
        .into_iter()
        .filter(|(s, _)| r.count(*s) > 0)
        .map(|(s, w)| {
            if s == Severity::Info {
                format!("{} {w}", r.count(s))
            } else {
                plural(r.count(s), w)
            }
        })
        .collect();
        let mut objects: Vec<&ObjectRef> = r.findings.iter().map(|f| &f.object).collect();
        objects.sort();
        objects.dedup();
        let _ = write!(
            out,
            "{} in {} of {workloads}",
            counts.join(", ").style(p.title),
            objects.len()
        );
    }
    if !r.suppressed.is_empty() {
        let _ = write!(out, "; {} suppressed", r.suppressed.len());
    }
    let _ = write!(out, " ({} read", plural(r.objects_read, "object"));
    if !r.skipped.is_empty() {
        let kinds: Vec<String> = r.skipped.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = write!(out, "; not audited: {}", kinds.join(", "));
    }
    out.push_str(")\n");
    for n in &r.notes {
        let _ = writeln!(out, "{} {n}", "note:".style(p.dim));
    }
}
