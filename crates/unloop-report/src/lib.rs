//! Renders unloop's reports. A diagnosis report: for a terminal, for an incident ticket
//! (markdown), for programs (json, yaml). An audit report ([`audit`]): human, json, SARIF, JUnit.
//! Renderers return strings; the binary decides where they go. Both share one colour palette and
//! one set of time and count formatters (below).

pub mod audit;
mod html;
mod human;
mod markdown;
mod palette;
pub mod schema;

pub use human::human;
pub use markdown::markdown;
use unloop_core::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Yaml,
    Markdown,
    Html,
}

/// Renders `report` in `format`; `color` applies to the human format only. Every format writes
/// the report after the output-side redaction pass; human and markdown also spell out control
/// characters (`unloop_core::text`).
pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Human => human(report, color),
        Format::Markdown => markdown(report),
        Format::Html => html::html(report),
        Format::Json => {
            let report = &redacted(report);
            let mut s = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            schema::assert_valid(schema::Kind::Diagnose, &s);
            s
        }
        Format::Yaml => {
            serde_saphyr::to_string(&redacted(report)).unwrap_or_else(|e| format!("error: {e}\n"))
        }
    }
}

/// Defense in depth: whatever reached the report, no secret-looking value is written.
fn redacted(report: &Report) -> Report {
    let mut r = report.clone();
    unloop_core::redact::report(&mut r);
    r
}

/// What the terminal and markdown renderers lay out: redacted, every field made visible.
pub(crate) fn for_display(report: &Report) -> Report {
    unloop_core::text::visible_report(&redacted(report))
}

/// "in 52s", "3m ago": a moment relative to the report's time.
pub(crate) fn relative(t: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let secs = t.duration_since(now).as_secs();
    let abs = secs.unsigned_abs();
    if abs < 2 {
        return "just now".into();
    }
    let text = unloop_core::duration::human_whole(abs);
    if secs >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// When the kubelet retries, for the terminal and the HTML report alike.
pub(crate) fn next_retry(b: &unloop_core::backoff::Backoff, now: jiff::Timestamp) -> String {
    match (b.next_retry_at, b.next_retry_in_secs) {
        (Some(at), Some(secs)) if secs >= 0 => {
            format!("next retry at {} ({})", clock(at), relative(at, now))
        }
        (Some(at), Some(_)) => format!(
            "retry was due at {} ({}); the kubelet starts it on its next sync",
            clock(at),
            relative(at, now)
        ),
        _ => "next retry time unknown".into(),
    }
}

/// "137 (OOMKilled) after 4.2s, 3m ago": a run's exit as the terminal and the HTML report say it,
/// without the meaning.
pub(crate) fn exit_text(x: &unloop_core::diagnose::ExitInfo, now: jiff::Timestamp) -> String {
    let mut t = x.code.to_string();
    if let Some(r) = &x.reason {
        t.push_str(&format!(" ({r})"));
    }
    if let Some(s) = x.ran_for_secs {
        t.push_str(&format!(" after {}", unloop_core::duration::human(s)));
    }
    if let Some(f) = x.finished_at {
        t.push_str(&format!(", {}", relative(f, now)));
    }
    t
}

/// How to skip the rest of a backoff: deleting the pod, which its controller re-creates; a Job
/// counts a deleted pod as a failed attempt, so for a Job's pod that is said instead.
pub(crate) fn skip_backoff(d: &unloop_core::Diagnosis) -> &'static str {
    if d.workload.kind == unloop_core::workload::WorkloadKind::Job {
        "deleting a Job's pod counts as a failed attempt of the Job"
    } else {
        "deleting the pod retries at once"
    }
}

/// Wall-clock time of day in UTC, enough for a timeline read during an incident.
pub(crate) fn clock(t: jiff::Timestamp) -> String {
    t.strftime("%H:%M:%S UTC").to_string()
}

/// `3 errors`, `1 warning`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}
