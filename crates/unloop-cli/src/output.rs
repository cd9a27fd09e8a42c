//! Where output goes: results on stdout, progress and errors on stderr. Colour only on a
//! terminal, never with NO_COLOR, always with --color=always; progress only on a terminal.

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;
use crate::error::CliError;

pub struct Output {
    pub color: bool,
    progress: bool,
}

impl Output {
    pub fn new(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
        };
        Output {
            color,
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// Writes a document to stdout as given: a report from `unloop-report` (whose renderers
    /// redact and escape each field themselves), JSON, YAML or a schema. A closed pipe
    /// (`unloop ... | head`) is not an error. Text unloop composes for a person goes through
    /// [`Output::human`] instead.
    pub fn result(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Writes a result composed for a person (unloop's sentences around names, annotations and
    /// commands) through [`human`]: the one place such text meets the terminal.
    pub fn human(&self, text: &str) {
        self.result(&human(text));
    }

    /// A progress line that overwrites itself; nothing when stderr is not a terminal.
    pub fn progress(&self, what: &str) {
        if self.progress {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2Kunloop: {}…", shown(what));
            let _ = err.flush();
        }
    }

    pub fn progress_done(&self) {
        if self.progress {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }

    /// A live status line (`retry`, `diagnose --watch`): on a terminal, one line on stderr that
    /// redraws itself (`tty`, with its countdowns); otherwise `plain` as a line of its own, once
    /// per change.
    pub fn live(&self, tty: &str, plain: &str, last: &mut String) {
        let mut err = std::io::stderr();
        if self.progress {
            let _ = write!(err, "\r\x1b[2K{}", shown(tty));
        } else if plain != last {
            let _ = writeln!(err, "{}", shown(plain));
        }
        *last = plain.to_string();
        let _ = err.flush();
    }

    /// Ends a live status line (a terminal's line is cleared; plain lines stay).
    pub fn live_done(&self) {
        self.progress_done();
    }

    pub fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{}", shown_lines(text));
    }

    pub fn error(&self, e: &CliError) {
        self.progress_done();
        let _ = std::io::stderr().lock().write_all(e.render().as_bytes());
    }
}

/// Messages embed names, paths and server answers: redacted, and control characters spelled out
/// before they reach the terminal.
fn shown(s: &str) -> String {
    unloop_core::text::visible(&unloop_core::redact::text(s)).into_owned()
}

fn shown_lines(s: &str) -> String {
    unloop_core::text::visible_lines(&unloop_core::redact::text(s)).into_owned()
}

/// A human-readable result as it reaches the terminal: redacted, and every control, bidi and
/// invisible character spelled out; the composed text keeps its own newlines. Every field of
/// cluster origin in it was inserted through [`field`], so none of them can add a line.
pub fn human(text: &str) -> String {
    shown_lines(text)
}

/// One field of cluster origin (a name, an annotation, a rendered command) in a human-readable
/// result: redacted, and one visible line (a newline in it is spelled `\n`), so it can neither
/// drive the terminal nor forge a line of the result.
pub fn field(s: impl std::fmt::Display) -> String {
    shown(&s.to_string())
}

/// An object shown to a person (a `--dry-run`'s pod or patch) as YAML: every string walked by
/// `redact::json` (env values and headers by name, argument lists as argv, annotations holding
/// JSON), then each key and string with its control, bidi and invisible characters spelled out
/// (newlines kept: YAML lays them out inside the string). What is sent to the API is the object
/// itself, never this.
pub fn document(mut v: serde_json::Value) -> Result<String, CliError> {
    unloop_core::redact::json(&mut v);
    spell_out(&mut v);
    serde_saphyr::to_string(&v).map_err(|e| CliError::internal(e.to_string()))
}

fn spell_out(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(o) = unloop_core::text::visible_lines(s) {
                *s = o;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(spell_out),
        Value::Object(map) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, mut item)| {
                    spell_out(&mut item);
                    (unloop_core::text::visible(&k).into_owned(), item)
                })
                .collect();
        }
        _ => {}
    }
}
