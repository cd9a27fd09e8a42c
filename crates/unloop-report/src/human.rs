//! The terminal report: one block per workload, the verdict first, the evidence under it.

use std::fmt::Write;

use owo_colors::OwoColorize;
use unloop_core::Report;
use unloop_core::backoff::{Backoff, go_duration};
use unloop_core::diagnose::Diagnosis;
use unloop_core::subject::human_secs;

use crate::palette::Palette;
use crate::{clock, relative};

/// Label column width: labels are padded so the text lines up.
const LABEL: usize = 8;

pub fn human(report: &Report, color: bool) -> String {
    let report = &crate::for_display(report);
    let p = Palette::new(color);
    let mut out = String::new();
    for r in &report.shared_roots {
        shared_root(&mut out, r, &p);
        out.push('\n');
    }
    for d in &report.diagnoses {
        block(&mut out, d, report, &p);
        out.push('\n');
    }
    for r in &report.recovered {
        recovered(&mut out, r, report, &p);
        out.push('\n');
    }
    let n = report.diagnoses.len();
    let scope = match report.scope.namespaces.as_slice() {
        [] => "all namespaces".to_string(),
        [one] => format!("namespace {one}"),
        many => format!("namespaces {}", many.join(", ")),
    };
    if n == 0 {
        let _ = writeln!(
            out,
            "No crash-looping or failing pods in {scope} ({} checked).",
            pods(report.pods_scanned)
        );
    } else {
        let _ = writeln!(
            out,
            "{}",
            format!(
                "{n} {} in trouble in {scope} ({} checked, as of {}).",
                if n == 1 { "workload" } else { "workloads" },
                pods(report.pods_scanned),
                report.as_of.strftime("%Y-%m-%d %H:%M:%S UTC")
            )
            .style(p.title)
        );
    }
    if !report.gap_summary.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            "Not readable, so not used as evidence:".style(p.dim)
        );
        for g in &report.gap_summary {
            let _ = writeln!(out, "{}", format!("  {}", g.line).style(p.dim));
        }
    }
    out
}

/// One root that several workloads fail on, said once before their blocks.
fn shared_root(out: &mut String, r: &unloop_core::roots::SharedRoot, p: &Palette) {
    let _ = writeln!(
        out,
        "{} {} {}",
        "✖".style(p.bad),
        "One root:".style(p.title),
        r.summary.style(p.title),
    );
    line(out, p, "cause", r.cause.as_str());
    for (i, v) in r.victims.iter().enumerate() {
        line(
            out,
            p,
            if i == 0 { "victims" } else { "" },
            &format!(
                "{}  {}  container {}  {}",
                v.workload,
                format!("ns {}", v.namespace).style(p.dim),
                v.container,
                v.cause
            ),
        );
    }
}

/// A container that restarted and has run steadily since: one line, and why it restarted.
fn recovered(out: &mut String, r: &unloop_core::diagnose::Recovered, report: &Report, p: &Palette) {
    let since = r
        .running_since
        .map(|t| {
            format!(
                ", running steadily since {} ({})",
                clock(t),
                relative(t, report.as_of)
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {}  {}  container {}  recovered: {} {}{since}",
        "✔".style(p.title),
        r.workload.style(p.title),
        format!("ns {}", r.namespace).style(p.dim),
        r.container,
        r.restarts,
        if r.restarts == 1 {
            "restart"
        } else {
            "restarts"
        },
    );
    if let Some(x) = &r.last_exit {
        let t = crate::exit_text(x, report.as_of);
        line(out, p, "restart", &format!("exit {t}: {}", x.meaning));
    }
    for (i, l) in r.log.iter().enumerate() {
        line(out, p, if i == 0 { "logs" } else { "" }, l);
    }
}

fn pods(n: usize) -> String {
    if n == 1 {
        "1 pod".into()
    } else {
        format!("{n} pods")
    }
}

fn line(out: &mut String, p: &Palette, label: &str, text: &str) {
    let _ = writeln!(
        out,
        "  {} {text}",
        format!("{label:<LABEL$}").style(p.label)
    );
}

fn cont(out: &mut String, text: &str) {
    let _ = writeln!(out, "  {:<LABEL$} {text}", "");
}

fn block(out: &mut String, d: &Diagnosis, report: &Report, p: &Palette) {
    let replicas = if d.pods.len() > 1 {
        format!("{} pods", d.pods.len())
    } else if d.pods.is_empty() {
        "no pod left".to_string()
    } else {
        format!("pod {}", d.pod)
    };
    let role = match d.role {
        unloop_core::status::Role::Main => "container",
        unloop_core::status::Role::Init => "init container",
        unloop_core::status::Role::Sidecar => "sidecar",
    };
    let _ = writeln!(
        out,
        "{} {}  {}  {} {}  {}  {}, {} restarts",
        "✖".style(p.bad),
        d.workload.style(p.title),
        format!("ns {}", d.namespace).style(p.dim),
        role,
        d.container.style(p.title),
        d.status.style(p.bad),
        replicas,
        d.restarts
    );
    for (i, c) in d.causes.iter().enumerate() {
        let label = if i == 0 { "cause" } else { "also" };
        let head = format!("{} ({})", c.id, c.confidence);
        line(
            out,
            p,
            label,
            &format!("{}: {}", head.style(p.confidence(c.confidence)), c.summary),
        );
        if i == 0 {
            for e in &c.evidence {
                let kind = format!("{:?}", e.kind).to_lowercase();
                cont(
                    out,
                    &format!(
                        "{} {}",
                        format!("{kind:<6} {}:", e.source).style(p.dim),
                        e.text
                    ),
                );
            }
        }
    }
    if let Some(x) = &d.exit {
        let t = crate::exit_text(x, report.as_of);
        line(out, p, "exit", &format!("{t}: {}", x.meaning));
    }
    if let Some(b) = &d.backoff {
        let next = crate::next_retry(b, report.as_of);
        line(
            out,
            p,
            "backoff",
            &format!(
                "restart {} is held back {} ({}); {next}",
                b.next_restart(),
                go_duration(b.delay_secs),
                b.delay_from
            ),
        );
        cont(
            out,
            &format!(
                "{}",
                format!(
                    "{} ({}); a run longer than {} resets them; {}",
                    b.schedule(),
                    b.settings_from,
                    go_duration(b.reset_after_secs),
                    crate::skip_backoff(d)
                )
                .style(p.dim)
            ),
        );
        line(out, p, "timeline", &timeline(d, b, report.as_of));
    }
    if let Some(l) = &d.logs {
        let which = if l.previous {
            "previous instance"
        } else {
            "current instance"
        };
        let cut = if l.truncated { ", older lines cut" } else { "" };
        if !l.highlights.is_empty() {
            line(
                out,
                p,
                "logs",
                &format!(
                    "{}",
                    format!("{which}{cut}, the lines that matter:").style(p.dim)
                ),
            );
            for h in &l.highlights {
                cont(
                    out,
                    &format!("{} {}", format!("{:>4} │", h.line).style(p.dim), h.text),
                );
            }
        } else if !l.tail.is_empty() {
            line(
                out,
                p,
                "logs",
                &format!("{}", format!("{which}{cut}, last lines:").style(p.dim)),
            );
            for t in &l.tail {
                cont(out, &format!("{} {t}", "     │".style(p.dim)));
            }
        } else {
            line(
                out,
                p,
                "logs",
                &format!("{}", format!("{which}: empty").style(p.dim)),
            );
        }
    }
    let warnings: Vec<_> = d.events.iter().filter(|e| e.type_ == "Warning").collect();
    for (i, e) in warnings.iter().rev().take(3).rev().enumerate() {
        let count = if e.count > 1 {
            format!(" x{}", e.count)
        } else {
            String::new()
        };
        let when = e
            .last_seen
            .map(|t| format!(" ({})", relative(t, report.as_of)))
            .unwrap_or_default();
        line(
            out,
            p,
            if i == 0 { "events" } else { "" },
            &format!("{}{count}{when}: {}", e.reason, e.message),
        );
    }
    if let Some(n) = &d.node {
        let mut t = format!("{} {}", n.name, if n.ready { "Ready" } else { "NotReady" });
        if !n.pressure.is_empty() {
            t.push_str(&format!(", {}", n.pressure.join(", ")));
        }
        if let (Some(a), Some(v)) = (&n.architecture, &n.kubelet_version) {
            t.push_str(&format!(" ({a}, kubelet {v})"));
        }
        line(out, p, "node", &t);
    }
    if d.pods.len() > 1 {
        let names: Vec<String> = d
            .pods
            .iter()
            .map(|x| format!("{} ({}, {})", x.name, x.status, x.restarts))
            .collect();
        line(out, p, "pods", &names.join(", "));
    }
    for (i, r) in d.remedies.iter().enumerate() {
        line(out, p, if i == 0 { "fix" } else { "" }, &r.title);
        if let Some(c) = r.command() {
            // shell::render already spells control characters out; one line.
            cont(out, &format!("  {}", c.style(p.cmd)));
        }
    }
}

/// The restart timeline on one line: each run a `▮`, the backoff delay before the next between
/// them (from the kubelet's schedule; repeats of the cap folded as `[5m0s ▮]×4`), how the last
/// run ended and when the next comes.
/// `10 runs: ▮ 0s ▮ 10s ▮ 20s ▮ 40s ▮ 1m20s ▮ 2m40s ▮ [5m0s ▮]×3 ran 2.1s, exit 1; waits 5m0s (the cap), next retry in 52s`
pub(crate) fn timeline(d: &Diagnosis, b: &Backoff, now: jiff::Timestamp) -> String {
    let runs = b.runs();
    let mut t = format!("{runs} {}: ▮", if runs == 1 { "run" } else { "runs" });
    let mut k = 1;
    while k < runs {
        let delay = b.delay_before(k);
        let same = b.same_delay_from(k, runs);
        if same >= 3 {
            t.push_str(&format!(" [{} ▮]×{same}", go_duration(delay)));
        } else {
            for _ in 0..same {
                t.push_str(&format!(" {} ▮", go_duration(delay)));
            }
        }
        k += same;
    }
    if let Some(x) = &d.exit {
        match x.ran_for_secs {
            Some(s) => t.push_str(&format!(" ran {}, exit {}", human_secs(s), x.code)),
            None => t.push_str(&format!(" exit {}", x.code)),
        }
        if let Some(r) = &x.reason {
            t.push_str(&format!(" ({r})"));
        }
        t.push(';');
    }
    let cap = if b.delay_secs >= b.cap_secs {
        " (the cap)"
    } else {
        ""
    };
    t.push_str(&format!(" waits {}{cap}", go_duration(b.delay_secs)));
    match (b.next_retry_at, b.next_retry_in_secs) {
        (Some(at), Some(secs)) if secs >= 0 => {
            t.push_str(&format!(", next retry {}", relative(at, now)))
        }
        (Some(at), Some(_)) => t.push_str(&format!(", retry due {}", relative(at, now))),
        _ => {}
    }
    t
}
