//! One error type for the binary; its kind decides the exit code (see README, "Exit codes").

use std::process::ExitCode;

use unloop_source::SourceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Arguments that make no sense together (clap handles plain syntax errors with code 2).
    Usage,
    /// An input file or bundle that cannot be read.
    Input,
    /// The cluster could not be reached or refused us.
    Cluster,
    /// A bug in unloop.
    Internal,
    /// `retry` or `diagnose --watch`: neither fixed nor failed again within `--timeout`.
    NotSettled,
}

#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn usage(message: impl Into<String>, hint: Option<&str>) -> Self {
        CliError {
            kind: ErrorKind::Usage,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        CliError {
            kind: ErrorKind::Internal,
            message: message.into(),
            hint: None,
        }
    }

    /// What the user sees on stderr: `error: ...` and at most one `hint: ...` line. Text from
    /// outside (paths, names, argument values) has its control characters made visible, so a
    /// hostile file name can neither add lines nor drive the terminal.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", shown(&self.message));
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {}\n", shown(h)));
        }
        out
    }

    /// A usage error from clap, in one line and a hint. `Err` gives back what is not an error
    /// (`--help`, `--version`) for clap to print as usual.
    pub fn from_clap(e: clap::Error) -> Result<Self, clap::Error> {
        use clap::error::{ContextKind, ContextValue, ErrorKind as Clap};
        if matches!(
            e.kind(),
            Clap::DisplayHelp
                | Clap::DisplayVersion
                | Clap::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            return Err(e);
        }
        // The caller escapes command-line values before clap words the error (see `lib.rs`), so
        // the only line breaks left are clap's own.
        let text = e.render().to_string();
        let mut lines = text.lines();
        let mut message = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        // Lists clap puts on the next lines (the missing arguments) belong to the message.
        for more in text
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  ") && !l.trim_start().starts_with("tip: "))
        {
            message.push(' ');
            message.push_str(more.trim());
        }
        let tips: Vec<&str> = lines
            .filter_map(|l| l.trim_start().strip_prefix("tip: "))
            .collect();
        // The subcommand the error is about, from clap's usage line: `Usage: unloop diagnose [OPTIONS]`.
        let usage = text
            .lines()
            .find_map(|l| l.strip_prefix("Usage:"))
            .map(str::to_string)
            .or_else(|| match e.get(ContextKind::Usage) {
                Some(ContextValue::StyledStr(u)) => Some(u.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| {
                // No usage line (invalid values): the subcommand named on the command line.
                use clap::CommandFactory;
                let cmd = crate::cli::Cli::command();
                let sub = std::env::args()
                    .skip(1)
                    .find(|a| cmd.get_subcommands().any(|s| s.get_name() == a));
                format!("unloop {}", sub.unwrap_or_default())
            });
        let command: Vec<&str> = usage
            .trim_start()
            .trim_start_matches("Usage:")
            .split_whitespace()
            .take_while(|w| {
                !w.starts_with('-')
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .collect();
        Ok(CliError::usage(
            message,
            Some(&hint(&tips, &command.join(" "))),
        ))
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::Input => 3,
            ErrorKind::Cluster => 4,
            ErrorKind::Internal => 5,
            ErrorKind::NotSettled => 6,
        })
    }
}

fn hint(tips: &[&str], command: &str) -> String {
    let command = if command.is_empty() {
        "unloop"
    } else {
        command
    };
    let mut h = tips.join("; ");
    if !h.is_empty() {
        h.push_str("; ");
    }
    h.push_str(&format!("see '{command} --help'"));
    h
}

/// Text from outside in an error line: redacted, and control characters spelled out (the core's
/// one terminal escaper), so it stays on one line and cannot drive a terminal.
pub fn shown(s: &str) -> String {
    unloop_core::text::visible(&unloop_core::redact::text(s)).into_owned()
}

impl From<SourceError> for CliError {
    fn from(e: SourceError) -> Self {
        let hint = match &e {
            SourceError::Unreachable { .. } => Some(
                "check that the cluster is up and that the kubeconfig context is the right one (--context)",
            ),
            SourceError::Unauthorized { .. } => {
                Some("refresh your credentials (for example: log in to your cloud provider again)")
            }
            SourceError::Kubeconfig(_) => Some(
                "pass --kubeconfig FILE or set KUBECONFIG; or diagnose a snapshot with --from FILE",
            ),
            SourceError::Unrecognised { .. } => Some(
                "unloop reads bundles written by `unloop snapshot`, `kubectl get ... -o json` output, and `kubectl cluster-info dump --output-directory` trees",
            ),
            SourceError::Corrupt { .. } => {
                Some("capture the bundle again with `unloop snapshot FILE`")
            }
            SourceError::Malformed { .. } => Some(
                "the object does not match its Kubernetes schema: fix that field, or capture the input again",
            ),
            _ => None,
        };
        let kind = if e.is_input() {
            ErrorKind::Input
        } else {
            ErrorKind::Cluster
        };
        CliError {
            kind,
            message: e.to_string(),
            hint: hint.map(str::to_string),
        }
    }
}
