//! Right-sizing recommendations for a terminal: what each container has, what it should have,
//! what that rests on, and the YAML to paste.

use std::fmt::Write;

use unloop_audit::rightsize::{CPU_PERCENTILE, OOM_FACTOR, RightsizeReport};
use unloop_core::quantity::{bytes_text as quantity, cpu_text};
use unloop_core::subject::human_secs;

/// The human form, appended to the audit report.
pub fn human(r: &RightsizeReport) -> String {
    let mut out = format!("right-sizing from {}\n  method: {}\n", r.source, r.method);
    for rec in &r.recommendations {
        let _ = writeln!(
            out,
            "\n  {} -n {} (container {})",
            rec.object, rec.object.namespace, rec.container
        );
        let now = |k: &str| {
            rec.current
                .get(k)
                .cloned()
                .unwrap_or_else(|| "unset".into())
        };
        if let Some(m) = &rec.memory {
            let seen = rec
                .memory_max_seen
                .map(|m| format!("max seen {}", quantity(m)))
                .unwrap_or_else(|| "no sample while it ran".into());
            let oom = rec
                .oom_killed_at_limit
                .as_ref()
                .map(|l| format!("; OOMKilled at limit {l}, so at least {OOM_FACTOR}x that"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    memory: request {} -> {m}, limit {} -> {m} ({seen}{oom})",
                now("requests.memory"),
                now("limits.memory")
            );
        }
        if let Some(cpu) = &rec.cpu_request {
            let seen = rec
                .cpu_percentile_seen
                .map(cpu_text)
                .unwrap_or_else(|| "?".into());
            let _ = writeln!(
                out,
                "    cpu: request {} -> {cpu} (p{CPU_PERCENTILE:.0} seen {seen}); limit {} -> {}",
                now("requests.cpu"),
                now("limits.cpu"),
                rec.cpu_limit.clone().unwrap_or_else(|| "none".into())
            );
        }
        let span = human_secs(rec.span_secs);
        let confidence = if rec.low_confidence {
            ": too little data, treat it as a floor and measure again under real load"
        } else {
            ""
        };
        if rec.samples == 0 {
            let _ = writeln!(
                out,
                "    rests on the OOM kill alone: the container was not running at any read"
            );
        } else {
            let _ = writeln!(
                out,
                "    rests on {} samples from {} pods over {span}{confidence}",
                rec.samples, rec.pods
            );
        }
        for l in rec.snippet.lines() {
            let _ = writeln!(out, "      {l}");
        }
    }
    for g in &r.gaps {
        let _ = writeln!(out, "  no recommendation for {g}");
    }
    out
}
