//! The report as one self-contained HTML page: each verdict with its evidence and remedies (a copy
//! button per command), and a restart timeline per container. Nothing is fetched: the CSS and the
//! one script are inline, and the page's Content-Security-Policy forbids loading anything else.
//!
//! Every string from the cluster (names, messages, log lines) is hostile input: it goes through
//! [`esc`] and only ever lands in element text or a quoted attribute, never inside `<style>` or
//! `<script>`.

use std::fmt::Write;

use unloop_core::Report;
use unloop_core::backoff::{Backoff, go_duration};
use unloop_core::diagnose::Diagnosis;
use unloop_core::subject::human_secs;
use unloop_core::verdict::Confidence;

use crate::{clock, relative};

/// Runs drawn one by one; earlier ones are folded into one segment.
const MAX_RUNS: i64 = 12;

/// `&`, `<`, `>`, `"` and `'` as character references: safe in element text and in attribute
/// values quoted with either quote.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --bad: #c62828; --warn: #b26a00; --dim: #666; --run: #37474f; --wait: #e0e0e0; --ok: #2e7d32; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; }
.meta, .dim { color: var(--dim); }
section.diagnosis { border: 1px solid #ccc; border-left: 6px solid var(--bad); border-radius: 6px; padding: .6em 1.2em 1em; margin: 1.5em 0; }
section.diagnosis h2 { font-size: 1.15em; margin: .4em 0; }
.status { color: var(--bad); font-weight: 600; }
.verdict { background: #fff4f4; border-radius: 4px; padding: .5em .8em; }
.cause-id { font-family: ui-monospace, monospace; font-weight: 700; }
.confidence-high { color: var(--bad); } .confidence-medium { color: var(--warn); } .confidence-low { color: var(--dim); }
ul.evidence { margin: .3em 0 .2em; padding-left: 1.2em; }
ul.evidence .source { color: var(--dim); font-family: ui-monospace, monospace; font-size: .9em; }
pre { background: #f6f6f6; padding: .5em .8em; border-radius: 4px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; margin: .3em 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.remedy { margin: .6em 0; }
.remedy .command { display: flex; gap: .5em; align-items: flex-start; }
.remedy pre { flex: 1; }
button.copy { cursor: pointer; border: 1px solid #999; background: #fff; border-radius: 4px; padding: .3em .7em; margin-top: .3em; }
button.copy.done { border-color: var(--ok); color: var(--ok); }
.timeline { display: flex; align-items: flex-start; margin: .8em 0 .3em; overflow-x: auto; padding-bottom: .3em; }
.seg { min-width: 3.6em; display: flex; flex-direction: column; }
.seg .bar { height: 1.4em; }
.seg .label { font-size: .75em; white-space: nowrap; padding: .2em .1em 0; color: var(--dim); }
.run .bar { background: var(--run); border-radius: 3px; }
.run.unknown .bar { background: repeating-linear-gradient(90deg, var(--run) 0 4px, #90a4ae 4px 8px); }
.run.last .bar { background: var(--bad); }
.run.last { min-width: 11em; }
.run.last .label { color: var(--bad); font-weight: 600; }
.wait.elapsed { min-width: 7em; } .wait.remaining { min-width: 4.5em; }
.wait .bar { background: var(--wait); margin: .35em 0; height: .7em; }
.wait.cap .bar { background: #ffcc80; }
.wait.elapsed .bar { background: #ffb74d; }
.wait.remaining .bar { background: repeating-linear-gradient(45deg, #ffe0b2 0 6px, #fff 6px 12px); }
.seg.earlier .bar { background: repeating-linear-gradient(90deg, #bbb 0 3px, #fff 3px 9px); }
.now { border-left: 2px solid #000; min-width: 2.4em; height: 2.6em; padding-left: .2em; font-size: .75em; font-weight: 600; align-self: stretch; }
.retry { font-size: .75em; font-weight: 600; color: var(--ok); padding-left: .3em; min-width: 10em; }
table { border-collapse: collapse; font-size: .9em; }
td, th { text-align: left; padding: .15em .6em .15em 0; vertical-align: top; }
.recovered { border-left-color: var(--ok); }
"#;

/// Copy buttons copy the text of their command exactly (the clipboard API where the page may use
/// it, a selected textarea otherwise). `data-script` on the root says the script ran.
const SCRIPT: &str = r#"
document.documentElement.setAttribute("data-script", "ran");
for (const b of document.querySelectorAll("button.copy")) {
  b.addEventListener("click", async () => {
    const text = b.closest(".command").querySelector("code").textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const t = document.createElement("textarea");
      t.value = text;
      document.body.appendChild(t);
      t.select();
      document.execCommand("copy");
      t.remove();
    }
    b.textContent = "Copied";
    b.classList.add("done");
    setTimeout(() => { b.textContent = "Copy"; b.classList.remove("done"); }, 1500);
  });
}
"#;

pub fn html(report: &Report) -> String {
    let report = &crate::for_display(report);
    let mut out = String::new();
    let n = report.diagnoses.len();
    let scope = match report.scope.namespaces.as_slice() {
        [] => "all namespaces".to_string(),
        [one] => format!("namespace {one}"),
        many => format!("namespaces {}", many.join(", ")),
    };
    let title = if n == 0 {
        format!("unloop: nothing in trouble in {scope}")
    } else {
        format!(
            "unloop: {n} {} in trouble in {scope}",
            if n == 1 { "workload" } else { "workloads" }
        )
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let context = report
        .scope
        .context
        .as_deref()
        .map(|c| format!(", context {c}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<p class=\"meta\">As of {}{}; {} {} checked.</p>",
        esc(&report.as_of.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()),
        esc(&context),
        report.pods_scanned,
        if report.pods_scanned == 1 {
            "pod"
        } else {
            "pods"
        }
    );
    for d in &report.diagnoses {
        diagnosis(&mut out, d, report);
    }
    for r in &report.recovered {
        let _ = writeln!(
            out,
            "<section class=\"diagnosis recovered\"><h2>✔ {} <span class=\"dim\">ns {}</span> container {}: recovered after {} {}</h2>",
            esc(&r.workload.to_string()),
            esc(&r.namespace),
            esc(&r.container),
            r.restarts,
            if r.restarts == 1 {
                "restart"
            } else {
                "restarts"
            }
        );
        if let Some(t) = r.running_since {
            let _ = writeln!(
                out,
                "<p>Running steadily since {} ({}).</p>",
                esc(&clock(t)),
                esc(&relative(t, report.as_of))
            );
        }
        if !r.log.is_empty() {
            let _ = writeln!(out, "<pre class=\"log\">{}</pre>", esc(&r.log.join("\n")));
        }
        out.push_str("</section>\n");
    }
    if !report.gap_summary.is_empty() {
        out.push_str("<h2>Not readable, so not used as evidence</h2>\n<ul class=\"gaps\">\n");
        for g in &report.gap_summary {
            let _ = writeln!(out, "<li>{}</li>", esc(&g.line));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

fn diagnosis(out: &mut String, d: &Diagnosis, report: &Report) {
    let role = match d.role {
        unloop_core::status::Role::Main => "container",
        unloop_core::status::Role::Init => "init container",
        unloop_core::status::Role::Sidecar => "sidecar",
    };
    let replicas = if d.pods.len() > 1 {
        format!("{} pods", d.pods.len())
    } else if d.pods.is_empty() {
        "no pod left".to_string()
    } else {
        format!("pod {}", d.pod)
    };
    let _ = writeln!(
        out,
        "<section class=\"diagnosis\">\n<h2>✖ {} <span class=\"dim\">ns {}</span> {role} {} <span class=\"status\">{}</span> <span class=\"dim\">{}, {} restarts</span></h2>",
        esc(&d.workload.to_string()),
        esc(&d.namespace),
        esc(&d.container),
        esc(&d.status),
        esc(&replicas),
        d.restarts
    );
    for (i, c) in d.causes.iter().enumerate() {
        let class = match c.confidence {
            Confidence::High => "confidence-high",
            Confidence::Medium => "confidence-medium",
            Confidence::Low => "confidence-low",
        };
        let _ = writeln!(
            out,
            "<div class=\"{}\"><p><b>{}</b> <span class=\"cause-id {class}\">{}</span> <span class=\"{class}\">({})</span>: {}</p>",
            if i == 0 { "verdict" } else { "also" },
            if i == 0 { "Cause" } else { "Also possible" },
            esc(c.id.as_str()),
            esc(&c.confidence.to_string()),
            esc(&c.summary)
        );
        if !c.evidence.is_empty() {
            out.push_str("<ul class=\"evidence\">\n");
            for e in &c.evidence {
                let kind = format!("{:?}", e.kind).to_lowercase();
                let _ = writeln!(
                    out,
                    "<li><span class=\"source\">{} {}:</span> {}</li>",
                    esc(&kind),
                    esc(&e.source),
                    esc(&e.text)
                );
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</div>\n");
    }
    if let Some(b) = &d.backoff {
        timeline(out, d, b, report);
    }
    if let Some(x) = &d.exit {
        let t = format!("exit {}", crate::exit_text(x, report.as_of));
        let _ = writeln!(
            out,
            "<p class=\"exit\"><b>Last exit</b> {}: {}</p>",
            esc(&t),
            esc(&x.meaning)
        );
        if let Some(m) = &x.message {
            let _ = writeln!(out, "<pre class=\"message\">{}</pre>", esc(m));
        }
    }
    if let Some(l) = &d.logs {
        let which = if l.previous {
            "previous instance"
        } else {
            "current instance"
        };
        let cut = if l.truncated { ", older lines cut" } else { "" };
        if !l.highlights.is_empty() {
            let _ = writeln!(
                out,
                "<p><b>Logs</b> <span class=\"dim\">{which}{cut}, the lines that matter:</span></p>"
            );
            let lines: Vec<String> = l
                .highlights
                .iter()
                .map(|h| format!("{:>4} │ {}", h.line, h.text))
                .collect();
            let _ = writeln!(out, "<pre class=\"log\">{}</pre>", esc(&lines.join("\n")));
        } else if !l.tail.is_empty() {
            let _ = writeln!(
                out,
                "<p><b>Logs</b> <span class=\"dim\">{which}{cut}, last lines:</span></p>"
            );
            let _ = writeln!(out, "<pre class=\"log\">{}</pre>", esc(&l.tail.join("\n")));
        } else {
            let _ = writeln!(
                out,
                "<p><b>Logs</b> <span class=\"dim\">{which}: empty</span></p>"
            );
        }
    }
    let warnings: Vec<_> = d.events.iter().filter(|e| e.type_ == "Warning").collect();
    if !warnings.is_empty() {
        out.push_str("<p><b>Warning events</b></p>\n<table class=\"events\">\n");
        for e in warnings {
            let count = if e.count > 1 {
                format!("×{}", e.count)
            } else {
                String::new()
            };
            let when = e
                .last_seen
                .map(|t| relative(t, report.as_of))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"dim\">{}</td><td>{}</td></tr>",
                esc(&e.reason),
                esc(&count),
                esc(&when),
                esc(&e.message)
            );
        }
        out.push_str("</table>\n");
    }
    if let Some(n) = &d.node {
        let mut t = format!("{} {}", n.name, if n.ready { "Ready" } else { "NotReady" });
        if !n.pressure.is_empty() {
            t.push_str(&format!(", {}", n.pressure.join(", ")));
        }
        if let (Some(a), Some(v)) = (&n.architecture, &n.kubelet_version) {
            t.push_str(&format!(" ({a}, kubelet {v})"));
        }
        let _ = writeln!(out, "<p class=\"node\"><b>Node</b> {}</p>", esc(&t));
    }
    if d.pods.len() > 1 {
        let names: Vec<String> = d
            .pods
            .iter()
            .map(|x| format!("{} ({}, {})", x.name, x.status, x.restarts))
            .collect();
        let _ = writeln!(
            out,
            "<p class=\"pods\"><b>Pods</b> {}</p>",
            esc(&names.join(", "))
        );
    }
    if !d.remedies.is_empty() {
        out.push_str("<h3>What to do</h3>\n");
    }
    for r in &d.remedies {
        let _ = writeln!(out, "<div class=\"remedy\"><p>{}</p>", esc(&r.title));
        if let Some(c) = r.command() {
            // The button copies the code element's text: exactly `c`, the shell-quoted line.
            let _ = writeln!(
                out,
                "<div class=\"command\"><pre><code>{}</code></pre><button class=\"copy\" type=\"button\">Copy</button></div>",
                esc(&c)
            );
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

/// Bar widths grow with the square root of the time: a 5-minute wait stays on screen next to a
/// one-second run.
fn grow(secs: f64) -> f64 {
    (secs.max(0.0).sqrt() * 10.0).round().max(10.0) / 10.0
}

/// One container's restarts: each run a bar, the backoff delay before the next between them (the
/// kubelet's schedule, growing to the cap), the wait in progress split at now, and the next
/// retry. The kubelet keeps only the last run's exit and duration; earlier runs are drawn hatched.
fn timeline(out: &mut String, d: &Diagnosis, b: &Backoff, report: &Report) {
    let runs = b.runs();
    let first_drawn = (runs - MAX_RUNS + 1).max(1);
    let last_ran = d.exit.as_ref().and_then(|x| x.ran_for_secs);
    let _ = writeln!(
        out,
        "<h3>Restart timeline</h3>\n<div class=\"timeline\" role=\"img\" aria-label=\"{}\">",
        esc(&crate::human::timeline(d, b, report.as_of))
    );
    if first_drawn > 1 {
        let folded = first_drawn - 1;
        let waited = b.delay_between(1, folded);
        let _ = writeln!(
            out,
            "<div class=\"seg earlier\" style=\"flex-grow:{}\" title=\"{}\"><div class=\"bar\"></div><div class=\"label\">… {folded} earlier runs</div></div>",
            grow(waited as f64),
            esc(&format!(
                "runs 1 to {folded}, with {} of backoff between them",
                go_duration(waited)
            ))
        );
        wait(out, b, first_drawn - 1);
    }
    for k in first_drawn..=runs {
        if k == runs {
            let mut label = match last_ran {
                Some(s) => format!("run {k}: {}", human_secs(s)),
                None => format!("run {k}"),
            };
            let mut title = format!("run {k}, the last");
            if let Some(x) = &d.exit {
                label.push_str(&format!(", exit {}", x.code));
                title.push_str(&format!(": exit {}", x.code));
                if let Some(r) = &x.reason {
                    label.push_str(&format!(" ({r})"));
                    title.push_str(&format!(" ({r})"));
                }
                if let Some(f) = x.finished_at {
                    title.push_str(&format!(", ended {}", clock(f)));
                }
            }
            let _ = writeln!(
                out,
                "<div class=\"seg run last\" style=\"flex-grow:{}\" title=\"{}\"><div class=\"bar\"></div><div class=\"label\">{}</div></div>",
                grow(last_ran.unwrap_or(1.0)),
                esc(&title),
                esc(&label)
            );
        } else {
            let _ = writeln!(
                out,
                "<div class=\"seg run unknown\" style=\"flex-grow:1\" title=\"run {k}: the kubelet keeps no record of its duration or exit\"><div class=\"bar\"></div><div class=\"label\">run {k}</div></div>",
            );
            wait(out, b, k);
        }
    }
    // The wait in progress: its elapsed part, now, what remains, and the retry.
    let cap = if b.delay_secs >= b.cap_secs {
        " (the cap)"
    } else {
        ""
    };
    match b.next_retry_in_secs {
        Some(left) if left > 0 && (left as u64) < b.delay_secs => {
            let elapsed = b.delay_secs - left as u64;
            let _ = writeln!(
                out,
                "<div class=\"seg wait elapsed\" style=\"flex-grow:{}\" title=\"{}\"><div class=\"bar\"></div><div class=\"label\">waits {}{cap}</div></div>",
                grow(elapsed as f64),
                esc(&format!(
                    "restart {} is held back {}{cap}",
                    b.next_restart(),
                    go_duration(b.delay_secs)
                )),
                esc(&go_duration(b.delay_secs))
            );
            out.push_str("<div class=\"now\">now</div>\n");
            let _ = writeln!(
                out,
                "<div class=\"seg wait remaining\" style=\"flex-grow:{}\"><div class=\"bar\"></div><div class=\"label\">{} left</div></div>",
                grow(left as f64),
                esc(&go_duration(left as u64))
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "<div class=\"seg wait elapsed\" style=\"flex-grow:{}\"><div class=\"bar\"></div><div class=\"label\">waits {}{cap}</div></div>",
                grow(b.delay_secs as f64),
                esc(&go_duration(b.delay_secs))
            );
        }
    }
    let next = crate::next_retry(b, report.as_of);
    let _ = writeln!(out, "<div class=\"retry\">▶ {}</div>\n</div>", esc(&next));
    let capped = match b.capped_from() {
        Some(k) => format!("; the cap was reached at restart {k}"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "<p class=\"dim\">{} ({}){}; a run longer than {} resets them; {}. The delays are the kubelet's schedule; it keeps only the last run's exit and duration.</p>",
        esc(&upper_first(&b.schedule())),
        esc(&b.settings_from),
        esc(&capped),
        esc(&go_duration(b.reset_after_secs)),
        esc(crate::skip_backoff(d))
    );
}

/// `Delays double ...`: the schedule's words at the start of a sentence.
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The backoff delay before restart `k`, between run `k` and run `k + 1`.
fn wait(out: &mut String, b: &Backoff, k: i64) {
    let delay = b.delay_before(k);
    let class = if delay >= b.cap_secs {
        "wait cap"
    } else {
        "wait"
    };
    let _ = writeln!(
        out,
        "<div class=\"seg {class}\" style=\"flex-grow:{}\" title=\"backoff before restart {k}: {}\"><div class=\"bar\"></div><div class=\"label\">{}</div></div>",
        grow(delay as f64),
        esc(&go_duration(delay)),
        esc(&go_duration(delay))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_open_a_tag_or_close_an_attribute() {
        assert_eq!(
            esc(r#"</style><script>alert('x')</script> " & "#),
            "&lt;/style&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &quot; &amp; "
        );
    }
}
