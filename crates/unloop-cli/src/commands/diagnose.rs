use std::process::ExitCode;

use unloop_core::diagnose::{Query, Target};
use unloop_core::workload::WorkloadKind;
use unloop_report::Format;

use crate::cli::{DiagnoseArgs, Global, OutputFormat};
use crate::error::CliError;
use crate::output::Output;

pub fn run(args: DiagnoseArgs, global: &Global, out: &Output) -> Result<ExitCode, CliError> {
    // Validate everything before any work.
    let target = args.target.as_deref().map(parse_target).transpose()?;
    let selector = super::parse_selector(args.selector.as_deref())?;
    if args.watch {
        let target = target.ok_or_else(|| {
            CliError::usage(
                "--watch follows one target",
                Some("name it, e.g. deploy/api"),
            )
        })?;
        let opts = super::live_options(global, &args.scope, args.tail);
        let settle = args.settle.unwrap_or(DEFAULT_WATCH_SETTLE_SECS);
        return super::retry::watch(&target, global, opts, settle, args.output, out);
    }
    let (state, now, namespaces) = match &args.from {
        Some(path) => {
            out.progress("reading the snapshot");
            let state = unloop_source::files::load(path)?;
            let now = state.captured_at.unwrap_or_else(jiff::Timestamp::now);
            let namespaces = args.scope.namespace.clone().into_iter().collect();
            (state, now, namespaces)
        }
        None => {
            let opts = super::live_options(global, &args.scope, args.tail);
            let now = jiff::Timestamp::now();
            let state = super::runtime()?.block_on(async {
                let live = unloop_source::live::connect(&opts).await?;
                live.read(&opts, now, &|what| out.progress(what)).await
            })?;
            (state, now, Vec::new())
        }
    };
    out.progress_done();
    let query = Query {
        namespaces,
        selector,
        target: target.clone(),
        stuck_after_secs: args.stuck_after,
        settle_secs: args
            .settle
            .unwrap_or(unloop_core::status::DEFAULT_SETTLE_SECS),
    };
    let report = unloop_core::diagnose(&state, &query, now);
    // A Job whose pods are gone is still found (and diagnosed when it failed).
    let job_exists = |name: &str| {
        state
            .jobs
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some(name))
    };
    if let Some(t) = &target
        && report.pods_scanned == 0
        && report.diagnoses.is_empty()
        && !matches!(t, Target::Workload(WorkloadKind::Job, n) if job_exists(n))
    {
        let what = match t {
            Target::Pod(n) => format!("pod {n}"),
            Target::Workload(k, n) => format!("{}/{n}", k.short()),
        };
        let ns = state
            .scope
            .namespaces
            .first()
            .cloned()
            .or(args.scope.namespace.clone());
        return Err(CliError::usage(
            format!(
                "no {what} found{}",
                ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
            ),
            Some("check the name and the namespace (-n NS, or -A for all)"),
        ));
    }
    out.result(&unloop_report::render(
        &report,
        format(args.output),
        out.color,
    ));
    Ok(if report.diagnoses.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How long every pod must stay Ready for `--watch` to call it fixed, without `--settle`.
const DEFAULT_WATCH_SETTLE_SECS: i64 = 30;

pub(crate) fn format(f: OutputFormat) -> Format {
    match f {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
        OutputFormat::Yaml => Format::Yaml,
        OutputFormat::Markdown => Format::Markdown,
        OutputFormat::Html => Format::Html,
    }
}

pub(crate) fn parse_target(s: &str) -> Result<Target, CliError> {
    match s.split_once('/') {
        None => Ok(Target::Pod(s.to_string())),
        Some((kind, name)) if !name.is_empty() => match WorkloadKind::parse(kind) {
            Some(WorkloadKind::Pod) => Ok(Target::Pod(name.to_string())),
            Some(k) => Ok(Target::Workload(k, name.to_string())),
            None => Err(CliError::usage(
                format!("unknown workload kind {kind:?} in {s:?}"),
                Some(
                    "use deploy/NAME, sts/NAME, ds/NAME, job/NAME, cronjob/NAME, rs/NAME or a pod name",
                ),
            )),
        },
        Some(_) => Err(CliError::usage(
            format!("{s:?} names no object"),
            Some("write KIND/NAME, e.g. deploy/api"),
        )),
    }
}
