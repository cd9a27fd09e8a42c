//! `unloop man DIR`: man pages in roff, generated from the same clap definition the parser uses
//! (clap_mangen): unloop.1 and one unloop-SUBCOMMAND.1 per subcommand.

use std::process::ExitCode;

use crate::cli::ManArgs;
use crate::error::{CliError, ErrorKind, shown};
use crate::output::Output;

pub fn run(args: ManArgs, out: &Output) -> Result<ExitCode, CliError> {
    let fail = |e: std::io::Error| CliError {
        kind: ErrorKind::Input,
        message: format!(
            "cannot write man pages to {}: {e}",
            shown(&args.dir.display().to_string())
        ),
        hint: None,
    };
    std::fs::create_dir_all(&args.dir).map_err(fail)?;
    let mut cmd = crate::cli::command();
    cmd.build();
    clap_mangen::generate_to(cmd, &args.dir).map_err(fail)?;
    let mut pages: Vec<String> = std::fs::read_dir(&args.dir)
        .map_err(fail)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("unloop") && n.ends_with(".1"))
        .collect();
    pages.sort();
    out.note(&format!(
        "wrote {} man pages to {}: {}",
        pages.len(),
        shown(&args.dir.display().to_string()),
        pages.join(" ")
    ));
    Ok(ExitCode::SUCCESS)
}
