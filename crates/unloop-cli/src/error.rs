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

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::Input => 3,
            ErrorKind::Cluster => 4,
            ErrorKind::Internal => 5,
        })
    }
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
