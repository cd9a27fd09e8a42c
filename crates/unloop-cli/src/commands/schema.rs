//! `unloop schema diagnose|audit`: the JSON Schema of `-o json`, generated from the report types
//! (`unloop_report::schema`). docs/schemas/ holds the same text; a test keeps them equal.

use std::process::ExitCode;

use unloop_report::schema::Kind;

use crate::cli::{SchemaArgs, SchemaOf};
use crate::error::CliError;
use crate::output::Output;

pub fn run(args: SchemaArgs, out: &Output) -> Result<ExitCode, CliError> {
    let kind = match args.of {
        SchemaOf::Diagnose => Kind::Diagnose,
        SchemaOf::Audit => Kind::Audit,
    };
    out.result(&kind.text());
    Ok(ExitCode::SUCCESS)
}
