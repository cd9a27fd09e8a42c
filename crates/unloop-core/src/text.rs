//! Text from the cluster made safe to show on a terminal or in a ticket.
//!
//! Log lines, event and termination messages, names and annotations are written by whoever runs
//! the workload. Printed raw they can drive the terminal (ESC sequences change the title, clear the
//! screen, fake colours; `\r` and backspace overwrite what was printed) or spoof what a reader sees
//! (bidi overrides reorder a line, zero-width characters hide text). `visible` spells every such
//! character out (`\x1b`, `\r`, `\u{202e}`) so the reader sees it and the terminal does not act on
//! it. It is applied where text meets a terminal or a markdown document, whatever the colour
//! setting; JSON and YAML carry the exact text (their own escaping keeps them valid).

use std::borrow::Cow;
use std::fmt::Write;

use crate::diagnose::Report;

/// True for a character that must not reach a terminal raw: C0 controls (TAB aside: it moves the
/// cursor forward only, and Java stack traces are full of it), DEL, C1 controls, and the invisible
/// format characters that reorder or hide text.
pub fn is_unsafe(c: char) -> bool {
    match c {
        '\t' => false,
        '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}' => true,
        // Soft hyphen, Arabic letter mark, Mongolian vowel separator.
        '\u{ad}' | '\u{61c}' | '\u{180e}' => true,
        // Zero-width space and non-joiner, LRM and RLM (the zero-width joiner stays: emoji use it).
        '\u{200b}' | '\u{200c}' | '\u{200e}' | '\u{200f}' => true,
        // Line and paragraph separators, bidi embeddings and overrides (LRE..RLO).
        '\u{2028}'..='\u{202e}' => true,
        // Word joiner, invisible operators, bidi isolates (LRI..PDI), deprecated format characters.
        '\u{2060}'..='\u{206f}' => true,
        // Zero-width no-break space (BOM), interlinear annotations.
        '\u{feff}' | '\u{fff9}'..='\u{fffb}' => true,
        // Tag characters, invisible in most fonts ("ASCII smuggling").
        '\u{e0000}'..='\u{e007f}' => true,
        _ => false,
    }
}

/// `s` with every unsafe character spelled out; borrowed when there is none. Newlines are
/// spelled out too: a field is one line, and a raw newline could forge a line of the report.
pub fn visible(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Like [`visible`] but keeps `\n`, for text that is several lines by nature (a script, a YAML
/// snippet); the caller lays out each line.
pub fn visible_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    let Some(first) = s.find(unsafe_char) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// The longest run of backticks in `s`: a markdown code span or fence around `s` needs a longer
/// one, or `s` could close it and go on as markdown.
pub fn longest_backtick_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        if c == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// `s` as a markdown inline code span that `s` cannot close, made visible.
pub fn code_span(s: &str) -> String {
    let s = visible(s);
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    // A space on each side keeps a leading or trailing backtick from joining the delimiter.
    if s.starts_with('`') || s.ends_with('`') {
        format!("{ticks} {s} {ticks}")
    } else {
        format!("{ticks}{s}{ticks}")
    }
}

/// A markdown code fence that none of `lines` can close.
pub fn fence_for<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let run = lines
        .into_iter()
        .map(longest_backtick_run)
        .max()
        .unwrap_or(0);
    "`".repeat(run.max(2) + 1)
}

/// How a report field is laid out: on one line, or as several lines (a script to paste).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Line,
    Lines,
    /// One word of a remedy's command: redacted like any text, but never rewritten for the
    /// terminal here, since `shell::render` spells control characters out when it quotes it.
    ShellWord,
    /// The name of an object (namespace, workload, pod, container, node): made visible like a
    /// line, never redacted. A name is an identifier other fields and commands are matched
    /// against (a Deployment named `payments-sk-settlement-batch-runner` looks like a token):
    /// masked, it would name nothing, or two objects at once.
    Name,
}

/// Calls `f` on every string of a report that came from the cluster or was built from it. The one
/// list of a report's text fields: the output-side redaction pass and the terminal renderers both
/// use it, so a new field is covered by both once it is added here.
pub fn each_report_string(r: &mut Report, f: &mut dyn FnMut(&mut String, Layout)) {
    use Layout::{Line, Name, ShellWord};
    let opt = |o: &mut Option<String>, f: &mut dyn FnMut(&mut String, Layout)| {
        if let Some(s) = o.as_mut() {
            f(s, Line);
        }
    };
    opt(&mut r.scope.context, f);
    opt(&mut r.scope.server, f);
    r.scope.namespaces.iter_mut().for_each(|s| f(s, Name));
    for g in &mut r.gaps {
        g.about.strings_mut().into_iter().for_each(|s| f(s, Line));
        f(&mut g.why, Line);
    }
    for g in &mut r.gap_summary {
        g.examples.iter_mut().for_each(|s| f(s, Line));
        f(&mut g.why, Line);
        f(&mut g.line, Line);
    }
    for d in &mut r.diagnoses {
        for s in [
            &mut d.namespace,
            &mut d.workload.name,
            &mut d.pod,
            &mut d.container,
        ] {
            f(s, Name);
        }
        f(&mut d.status, Line);
        for p in &mut d.pods {
            f(&mut p.name, Name);
            f(&mut p.status, Line);
            opt(&mut p.node, f);
        }
        if let Some(x) = d.exit.as_mut() {
            opt(&mut x.reason, f);
            f(&mut x.meaning, Line);
            opt(&mut x.message, f);
        }
        if let Some(b) = d.backoff.as_mut() {
            f(&mut b.settings_from, Line);
        }
        for c in &mut d.causes {
            f(&mut c.summary, Line);
            for e in &mut c.evidence {
                f(&mut e.source, Line);
                f(&mut e.text, Line);
            }
        }
        for r in &mut d.remedies {
            f(&mut r.title, Line);
            if let Some(script) = r.script.as_mut() {
                for step in &mut script.steps {
                    for argv in &mut step.commands {
                        for arg in &mut argv.0 {
                            for word in &mut arg.0 {
                                match word {
                                    crate::shell::Word::Lit(s)
                                    | crate::shell::Word::Placeholder(s) => f(s, ShellWord),
                                }
                            }
                        }
                    }
                    if let Some(file) = step.stdout.as_mut() {
                        f(file, ShellWord);
                    }
                }
            }
        }
        if let Some(l) = d.logs.as_mut() {
            l.highlights.iter_mut().for_each(|h| f(&mut h.text, Line));
            l.tail.iter_mut().for_each(|t| f(t, Line));
        }
        for e in &mut d.events {
            f(&mut e.type_, Line);
            f(&mut e.reason, Line);
            f(&mut e.message, Line);
        }
        if let Some(n) = d.node.as_mut() {
            f(&mut n.name, Name);
            n.pressure.iter_mut().for_each(|p| f(p, Line));
            opt(&mut n.architecture, f);
            opt(&mut n.kubelet_version, f);
        }
        if let Some(root) = d.root.as_mut() {
            root.strings_mut().into_iter().for_each(|s| f(s, Line));
        }
    }
    for x in &mut r.shared_roots {
        x.root.strings_mut().into_iter().for_each(|s| f(s, Line));
        f(&mut x.summary, Line);
        for v in &mut x.victims {
            for s in [&mut v.namespace, &mut v.workload.name, &mut v.container] {
                f(s, Name);
            }
        }
    }
    for x in &mut r.recovered {
        for s in [
            &mut x.namespace,
            &mut x.workload.name,
            &mut x.pod,
            &mut x.container,
        ] {
            f(s, Name);
        }
        if let Some(e) = x.last_exit.as_mut() {
            opt(&mut e.reason, f);
            f(&mut e.meaning, Line);
            opt(&mut e.message, f);
        }
        x.log.iter_mut().for_each(|l| f(l, Line));
    }
}

/// A copy of `report` with every field made [`visible`] (scripts per line), for the terminal and
/// markdown renderers.
pub fn visible_report(report: &Report) -> Report {
    let mut r = report.clone();
    each_report_string(&mut r, &mut |s, layout| {
        let v = match layout {
            Layout::Line | Layout::Name => visible(s),
            Layout::Lines => visible_lines(s),
            Layout::ShellWord => return,
        };
        if let Cow::Owned(o) = v {
            *s = o;
        }
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            visible("dial tcp 10.0.0.1:5432: connection refused\tat x"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(visible("naïve 日本語 👩‍💻"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_and_bidi_are_spelled_out() {
        assert_eq!(
            visible("a\x1b]0;pwned\x07b\x1b[2Jc\rd\0e\x08f\x7fg"),
            "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\rd\\x00e\\x08f\\x7fg"
        );
        assert_eq!(visible("x\u{202e}y\u{2066}z"), "x\\u{202e}y\\u{2066}z");
        assert_eq!(visible("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(visible("two\nlines"), "two\\nlines");
        assert_eq!(visible_lines("two\nlines\r"), "two\nlines\\r");
    }

    #[test]
    fn nothing_unsafe_survives_any_input() {
        for cp in (0u32..0x3000)
            .chain(0xe0000..0xe0100)
            .chain(0xfe00..0x10000)
        {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let out = visible(&format!("a{c}b")).into_owned();
            assert!(!out.chars().any(is_unsafe), "U+{cp:04X} -> {out:?}");
        }
    }

    #[test]
    fn code_spans_and_fences_cannot_be_closed_from_inside() {
        assert_eq!(code_span("api"), "`api`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(fence_for(["plain"]), "```");
        assert_eq!(fence_for(["a ````` b", "```"]), "``````");
    }
}
