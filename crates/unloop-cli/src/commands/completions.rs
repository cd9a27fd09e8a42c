use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::CliError;
use crate::output::Output;

pub fn run(args: CompletionsArgs, out: &Output) -> Result<ExitCode, CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "unloop", &mut buf);
    out.result(&String::from_utf8_lossy(&buf));
    Ok(ExitCode::SUCCESS)
}
