//! The one gate of what the agent publishes: the `CrashDiagnosis` spec (and so its Summary
//! column), the Event's note and the notification bodies are all made from a spec that went
//! through [`spec`].
//!
//! Anyone who can create an Event or run a pod writes text that reaches a diagnosis (event
//! messages, log lines, termination messages). The gate makes every field of it:
//! - redacted again (`redact::text`) where it is free text; names (workload, container, pods) are
//!   identities taken from the watched objects and are never rewritten, since a name that looks
//!   like a token would no longer name anything;
//! - visible (`text::visible`): control characters, bidi overrides and newlines spelled out, so a
//!   field is one line wherever it is shown (a newline in Slack would end a quote and forge lines);
//! - bounded: each string clipped on a character boundary with a visible ellipsis, at most so many
//!   items per list (the rest counted in `omitted`), and the whole spec under [`BUDGET`] bytes of
//!   JSON, well under etcd's 1.5 MiB request limit (an oversized spec is refused at every retry).
//!
//! A remedy's command is the exception: it is `shell::render`'s output and is never rewritten (an
//! altered quote changes what a pasted line runs). A command that redaction or `visible` would
//! change, or that is longer than [`COMMAND_MAX`], is left out; its title stays.

use std::borrow::Cow;

use unloop_core::{redact, text};

use crate::crd::CrashDiagnosisSpec;

/// Bytes of a free-text field read as a paragraph: the summary, an evidence's text.
pub const TEXT_MAX: usize = 2000;
/// Bytes of a short field: an evidence's source, a remedy's title, names, ids, timestamps.
pub const SHORT_MAX: usize = 512;
/// Bytes of a remedy's command; a longer one is left out, never cut.
pub const COMMAND_MAX: usize = 4096;
/// Items kept per list; the rest are counted in the spec's `omitted`.
pub const EVIDENCE_MAX: usize = 20;
pub const REMEDIES_MAX: usize = 10;
pub const PODS_MAX: usize = 50;
pub const CAUSES_MAX: usize = 20;
/// Bytes of the spec as JSON. The limits above keep a spec under it; items are dropped from the
/// end if one is not (JSON escaping can double a string).
pub const BUDGET: usize = 256 * 1024;
/// What ends a clipped string.
pub const ELLIPSIS: &str = "…";

/// `s` cut to at most `max` bytes on a character boundary, ending with [`ELLIPSIS`] when cut.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut cut = max.saturating_sub(ELLIPSIS.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &s[..cut]))
}

/// Free text: redacted, made visible, clipped.
fn prose(s: &mut String, max: usize) {
    let r = redact::text(s.as_str());
    let v = text::visible(&r);
    let c = clip(&v, max);
    if c != s.as_str() {
        *s = c.into_owned();
    }
}

/// A name or an id the agent wrote: made visible and clipped, never redacted.
fn name(s: &mut String) {
    let v = text::visible(s);
    let c = clip(&v, SHORT_MAX);
    if c != s.as_str() {
        *s = c.into_owned();
    }
}

/// A rendered command as it is, or nothing when it cannot be carried unchanged.
pub fn command(c: &str) -> Option<&str> {
    let unchanged = c.len() <= COMMAND_MAX
        && redact::text(c) == c
        && matches!(text::visible(c), Cow::Borrowed(_));
    unchanged.then_some(c)
}

fn cap<T>(items: &mut Vec<T>, max: usize, omitted: &mut u32) {
    if items.len() > max {
        *omitted = omitted.saturating_add((items.len() - max) as u32);
        items.truncate(max);
    }
}

/// The spec as the agent may publish it. Idempotent: a spec read back from the cluster (the
/// resolved notification's) goes through it again unchanged.
pub fn spec(mut s: CrashDiagnosisSpec) -> CrashDiagnosisSpec {
    let o = &mut s.omitted;
    cap(&mut s.evidence, EVIDENCE_MAX, &mut o.evidence);
    cap(&mut s.remedies, REMEDIES_MAX, &mut o.remedies);
    cap(&mut s.pods, PODS_MAX, &mut o.pods);
    cap(&mut s.other_causes, CAUSES_MAX, &mut o.other_causes);
    for n in [
        &mut s.workload,
        &mut s.container,
        &mut s.cause,
        &mut s.confidence,
        &mut s.first_seen,
        &mut s.last_seen,
    ] {
        name(n);
    }
    s.pods.iter_mut().for_each(name);
    s.other_causes.iter_mut().for_each(name);
    prose(&mut s.summary, TEXT_MAX);
    for e in &mut s.evidence {
        name(&mut e.kind);
        prose(&mut e.source, SHORT_MAX);
        prose(&mut e.text, TEXT_MAX);
    }
    for r in &mut s.remedies {
        name(&mut r.kind);
        prose(&mut r.title, SHORT_MAX);
        if r.command.as_deref().is_some_and(|c| command(c).is_none()) {
            r.command = None;
        }
    }
    // Hostile input only: the limits above keep a spec of real text far under the budget.
    while json_len(&s) > BUDGET {
        let o = &mut s.omitted;
        if s.evidence.pop().is_some() {
            o.evidence += 1;
        } else if s.pods.pop().is_some() {
            o.pods += 1;
        } else if s.remedies.pop().is_some() {
            o.remedies += 1;
        } else if s.other_causes.pop().is_some() {
            o.other_causes += 1;
        } else {
            // Nothing left to drop: every string is clipped, so this is under the budget.
            break;
        }
    }
    s
}

fn json_len(s: &CrashDiagnosisSpec) -> usize {
    serde_json::to_vec(s).map(|v| v.len()).unwrap_or(usize::MAX)
}

/// A line people read (the Event's note): made visible and clipped to `max` bytes. Its parts
/// have been through [`spec`]; this keeps the joined line within the Event API's limit.
pub fn line(s: &str, max: usize) -> String {
    clip(&text::visible(s), max).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_a_char_boundary_and_shows_the_cut() {
        assert_eq!(clip("short", 10), "short");
        let c = clip("ééééé", 8);
        assert!(c.len() <= 8 && c.ends_with(ELLIPSIS), "{c}");
        assert_eq!(c, "éé…");
        assert_eq!(clip(&c, 8), c, "idempotent");
    }

    #[test]
    fn a_command_is_carried_unchanged_or_not_at_all() {
        let ok = "kubectl -n oom-limit set resources deploy/worker --limits=memory=512Mi";
        assert_eq!(command(ok), Some(ok));
        assert_eq!(command(&format!("echo {}", "x".repeat(COMMAND_MAX))), None);
        assert_eq!(command("echo 'a\nb'"), None);
        assert_eq!(
            command(
                "kubectl create secret generic x --from-literal=token=sk-abcdefghijklmnopqrstuvwxyz"
            ),
            None
        );
    }
}
