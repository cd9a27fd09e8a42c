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

    /// Writes a result to stdout (colour was decided in `new`, so nothing here strips or adds
    /// escape codes). A closed pipe (`unloop ... | head`) is not an error.
    pub fn result(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
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
