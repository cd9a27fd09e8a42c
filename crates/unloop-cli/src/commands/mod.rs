//! One module per subcommand.

pub mod agent;
pub mod audit;
pub mod completions;
pub mod debug;
pub mod diagnose;
pub mod man;
pub mod mcp;
pub mod retry;
pub mod schema;
pub mod snapshot;

use crate::cli::{Global, Scope};
use crate::error::CliError;
use unloop_source::live::LiveOptions;

pub(crate) fn live_options(global: &Global, scope: &Scope, tail: i64) -> LiveOptions {
    LiveOptions {
        kubeconfig: global.kubeconfig.clone(),
        context: global.context.clone(),
        timeout: global.timeout(),
        namespace: scope.namespace.clone(),
        all_namespaces: scope.all_namespaces,
        log_tail_lines: tail.max(1),
        ..LiveOptions::default()
    }
}

/// Asks `question` on stderr and reads the answer from stdin (a terminal: the callers check that
/// first, each with its own hint); anything but y/yes cancels, and nothing is changed.
pub(crate) fn confirm(question: &str) -> Result<(), CliError> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr();
    // The question names what the cluster calls things: shown like any other human result.
    let _ = write!(err, "{} [y/N] ", crate::output::human(question));
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::usage("cancelled; nothing was changed", None))
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))
}

/// `-l SELECTOR`, validated before any work.
pub(crate) fn parse_selector(
    s: Option<&str>,
) -> Result<Option<unloop_core::selector::Selector>, CliError> {
    s.map(unloop_core::selector::Selector::parse)
        .transpose()
        .map_err(|e| CliError::usage(e.to_string(), Some("selectors look like app=api,tier!=db")))
}
