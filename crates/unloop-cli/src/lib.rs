//! The `unloop` binary: argument parsing, the choice of source, and output. The work itself is
//! in `unloop-core` (rules), `unloop-source` (reading state) and `unloop-report` (rendering).

mod cli;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

pub use error::{CliError, ErrorKind};

pub fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let out = output::Output::new(args.global.color);
    let result = match args.command {
        cli::Command::Diagnose(a) => commands::diagnose::run(a, &args.global, &out),
        cli::Command::Snapshot(a) => commands::snapshot::run(a, &args.global, &out),
        cli::Command::Debug(a) => commands::debug::run(a, &args.global, &out),
        cli::Command::Audit(a) => commands::audit::run(a, &args.global, &out),
        cli::Command::Completions(a) => commands::completions::run(a, &out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            out.error(&e);
            e.exit_code()
        }
    }
}
