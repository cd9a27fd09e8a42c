//! A report to paste into an incident ticket.

use std::fmt::Write;

use unloop_core::Report;
use unloop_core::backoff::go_duration;
use unloop_core::subject::human_secs;
use unloop_core::text::{code_span, fence_for};

use crate::{clock, relative};

pub fn markdown(report: &Report) -> String {
    let report = &crate::for_display(report);
    let mut out = String::new();
    let _ = writeln!(out, "# unloop diagnosis\n");
    let _ = writeln!(
        out,
        "As of {}: {} troubled {} among {} pods checked.\n",
        report.as_of.strftime("%Y-%m-%d %H:%M:%S UTC"),
        report.diagnoses.len(),
        if report.diagnoses.len() == 1 {
            "workload"
        } else {
            "workloads"
        },
        report.pods_scanned
    );
    for r in &report.shared_roots {
        let _ = writeln!(
            out,
            "## One cause, {} workloads: {}\n",
            r.victims.len(),
            r.cause
        );
        let _ = writeln!(out, "**{}**\n", r.summary);
        for v in &r.victims {
            let _ = writeln!(
                out,
                "- {} in {}, container {}: `{}`",
                v.workload,
                code_span(&v.namespace),
                code_span(&v.container),
                v.cause
            );
        }
        out.push('\n');
    }
    for d in &report.diagnoses {
        let top = d.top();
        let _ = writeln!(
            out,
            "## {} in {}: {}\n",
            d.workload,
            code_span(&d.namespace),
            top.id
        );
        let _ = writeln!(
            out,
            "**{}** ({} confidence, container {}, status {}, {} restarts)\n",
            top.summary,
            top.confidence,
            code_span(&d.container),
            code_span(&d.status),
            d.restarts
        );
        let _ = writeln!(out, "| evidence | source | says |\n|---|---|---|");
        for e in &top.evidence {
            let _ = writeln!(
                out,
                "| {:?} | {} | {} |",
                e.kind,
                cell(&e.source),
                cell(&e.text)
            );
        }
        out.push('\n');
        if d.causes.len() > 1 {
            let _ = writeln!(out, "Other candidates:\n");
            for c in &d.causes[1..] {
                let _ = writeln!(out, "- `{}` ({}): {}", c.id, c.confidence, c.summary);
            }
            out.push('\n');
        }
        if let Some(x) = &d.exit {
            let ran = x
                .ran_for_secs
                .map(|s| format!(" after {}", human_secs(s)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- **Exit**: {} ({}){ran}: {}",
                x.code,
                x.reason.as_deref().unwrap_or("-"),
                x.meaning
            );
        }
        if let Some(b) = &d.backoff {
            let next = b
                .next_retry_at
                .map(|t| format!(", next retry {} ({})", clock(t), relative(t, report.as_of)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- **Backoff**: held back {}{next}; cap {} ({})",
                go_duration(b.delay_secs),
                go_duration(b.cap_secs),
                b.settings_from
            );
        }
        if let Some(n) = &d.node {
            let _ = writeln!(
                out,
                "- **Node**: {} ({}{})",
                n.name,
                if n.ready { "Ready" } else { "NotReady" },
                if n.pressure.is_empty() {
                    String::new()
                } else {
                    format!(", {}", n.pressure.join(", "))
                }
            );
        }
        if d.pods.len() > 1 {
            let _ = writeln!(
                out,
                "- **Pods**: {}",
                d.pods
                    .iter()
                    .map(|p| code_span(&p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(l) = &d.logs {
            let lines: Vec<String> = if l.highlights.is_empty() {
                l.tail.clone()
            } else {
                l.highlights.iter().map(|h| h.text.clone()).collect()
            };
            if !lines.is_empty() {
                let fence = fence_for(lines.iter().map(String::as_str));
                let _ = writeln!(
                    out,
                    "\nLog ({} instance):\n\n{fence}\n{}\n{fence}",
                    if l.previous { "previous" } else { "current" },
                    lines.join("\n")
                );
            }
        }
        if !d.remedies.is_empty() {
            let _ = writeln!(out, "\n### Remedy\n");
            for r in &d.remedies {
                let _ = writeln!(out, "- {}", r.title);
                if let Some(c) = r.command() {
                    let fence = fence_for([c.as_str()]);
                    let _ = writeln!(out, "\n  {fence}sh\n  {c}\n  {fence}\n");
                }
            }
        }
        out.push('\n');
    }
    if !report.recovered.is_empty() {
        let _ = writeln!(out, "## Recovered (not counted as trouble)\n");
        for r in &report.recovered {
            let how = r
                .last_exit
                .as_ref()
                .map(|x| {
                    let when = x
                        .finished_at
                        .map(|f| format!(" {}", relative(f, report.as_of)))
                        .unwrap_or_default();
                    format!(": last exit {}{when} ({})", x.code, x.meaning)
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {} in {}, container {}: {} restarts, running steadily since {}{how}",
                r.workload,
                code_span(&r.namespace),
                code_span(&r.container),
                r.restarts,
                r.running_since.map(clock).unwrap_or_else(|| "?".into()),
            );
            if !r.log.is_empty() {
                let fence = fence_for(r.log.iter().map(String::as_str));
                let _ = writeln!(out, "\n  {fence}\n  {}\n  {fence}\n", r.log.join("\n  "));
            }
        }
        out.push('\n');
    }
    if !report.gap_summary.is_empty() {
        let _ = writeln!(out, "## Not readable\n");
        for g in &report.gap_summary {
            let _ = writeln!(out, "- {}", g.line);
        }
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
