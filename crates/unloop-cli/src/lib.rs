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
    // A bug must still end in one line and exit code 5, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let e = CliError {
            kind: ErrorKind::Internal,
            message: format!("unloop panicked{at}: {what}"),
            hint: Some("this is a bug in unloop; please report it with the command you ran".into()),
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr(), e.render().as_bytes());
    }));
    match std::panic::catch_unwind(run) {
        Ok(code) => code,
        Err(_) => CliError::internal("").exit_code(),
    }
}

fn run() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => match CliError::from_clap(escaped_values(e)) {
            Ok(usage) => {
                let _ =
                    std::io::Write::write_all(&mut std::io::stderr(), usage.render().as_bytes());
                return usage.exit_code();
            }
            // --help and --version: printed by clap as usual.
            Err(e) => e.exit(),
        },
    };
    let out = output::Output::new(args.global.color);
    let result = match args.command {
        cli::Command::Diagnose(a) => commands::diagnose::run(a, &args.global, &out),
        cli::Command::Snapshot(a) => commands::snapshot::run(a, &args.global, &out),
        cli::Command::Debug(a) => commands::debug::run(a, &args.global, &out),
        cli::Command::Retry(a) => commands::retry::run(a, &args.global, &out),
        cli::Command::Audit(a) => commands::audit::run(a, &args.global, &out),
        cli::Command::Agent(a) => commands::agent::run(a, &args.global, &out),
        cli::Command::Mcp(a) => commands::mcp::run(a, &args.global),
        cli::Command::Completions(a) => commands::completions::run(a, &out),
        cli::Command::Man(a) => commands::man::run(a, &out),
        cli::Command::Schema(a) => commands::schema::run(a, &out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            out.error(&e);
            e.exit_code()
        }
    }
}

/// The same parse error, worded from a command line whose control characters are escaped, so
/// the value clap quotes cannot break the one error line or reach the terminal raw (clap itself
/// drops escape sequences and keeps line breaks).
fn escaped_values(e: clap::Error) -> clap::Error {
    let args: Vec<String> = std::env::args_os()
        .map(|a| unloop_core::text::visible(&a.to_string_lossy()).into_owned())
        .collect();
    match cli::Cli::try_parse_from(&args) {
        Err(shown) if shown.kind() == e.kind() => shown,
        _ => e,
    }
}
