//! `unloop audit`: placeholder wiring, replaced by the audit implementation (issue 6).

use std::process::ExitCode;

use crate::cli::Global;
use crate::error::CliError;
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Manifest files or directories; `-` reads stdin.
    pub paths: Vec<std::path::PathBuf>,
}

pub fn run(_args: AuditArgs, _global: &Global, _out: &Output) -> Result<ExitCode, CliError> {
    Err(CliError::usage("unloop audit is not built yet", None))
}
