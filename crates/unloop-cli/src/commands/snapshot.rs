use std::process::ExitCode;

use crate::cli::{Global, SnapshotArgs};
use crate::error::CliError;
use crate::output::Output;

pub fn run(args: SnapshotArgs, global: &Global, out: &Output) -> Result<ExitCode, CliError> {
    let mut opts = super::live_options(global, &args.scope, args.tail);
    opts.whole_pods = args.whole_pods;
    let state = super::runtime()?.block_on(async {
        let live = unloop_source::live::connect(&opts).await?;
        live.read(&opts, jiff::Timestamp::now(), &|what| out.progress(what))
            .await
    })?;
    out.progress("writing the bundle");
    unloop_source::bundle::write(&args.file, &state)?;
    out.progress_done();
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    out.note(&format!(
        "wrote {} ({} KiB): {} pods, {} events, {} logs, {} nodes{}",
        args.file.display(),
        size.div_ceil(1024),
        state.pods.len(),
        state.events.len(),
        state.logs.len(),
        state.nodes.len(),
        if state.gaps.is_empty() {
            String::new()
        } else {
            format!(
                "; {} things not readable (listed in the bundle)",
                state.gaps.len()
            )
        }
    ));
    Ok(ExitCode::SUCCESS)
}
