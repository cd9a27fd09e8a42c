//! `unloop audit`: checks manifests (or a live cluster) for what makes pods crash-loop, before it
//! happens. The checks are in the `unloop-audit` crate, the renderers in `unloop-report`; this file
//! validates flags, picks the source, and maps the outcome to an exit code.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use unloop_audit::load::{LoadError, LoadOptions};
use unloop_audit::{AuditConfig, Context, Inventory, Known, Observed, Resolver, Severity};
use unloop_core::state::ClusterState;
use unloop_report::audit::{Format, RenderOptions};
use unloop_source::SourceError;
use unloop_source::live::prometheus::Prometheus;
use unloop_source::live::{Live, LiveOptions};

use crate::cli::{Global, Scope};
use crate::error::{CliError, ErrorKind};
use crate::output::Output;

const AUDIT_HELP: &str = "Examples:
  unloop audit k8s/                           every manifest under k8s/ (recursive)
  helm template api ./chart | unloop audit -  a chart's rendered output
  kustomize build overlays/prod | unloop audit - --resolve-live
                                              ... with references also resolved in the cluster
  unloop audit deploy.yaml -o sarif > audit.sarif
  unloop audit --live -n shop                 the workloads running in namespace shop
  unloop audit --live -n shop --rightsize     ... and requests/limits from measured usage

Exemptions: annotate a workload with unloop.dev/ignore: check-id,check-id (or all), or list them
in --config FILE. Check ids: docs/audit-checks.md.

Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it, 2 usage error,
3 unreadable input or config, 4 cluster or Prometheus unreachable or refused, 5 internal error.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    Human,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, clap::Args)]
#[command(after_help = AUDIT_HELP)]
pub struct AuditArgs {
    /// Manifest files or directories (recursive: *.yaml, *.yml, *.json); `-` reads stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Audit the workloads of the live cluster instead of manifests (adds the live-only checks).
    #[arg(long, conflicts_with_all = ["paths", "resolve_live"])]
    pub live: bool,
    /// With manifests: -n is the namespace of objects that name none, as for kubectl apply.
    #[command(flatten)]
    pub scope: Scope,
    /// Only workloads whose labels match, as kubectl -l.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Resolve ConfigMap, Secret and ServiceAccount references against the live cluster as well
    /// as within the manifests, and check imagePullPolicy Never images against its nodes.
    #[arg(long)]
    pub resolve_live: bool,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    pub fail_on: FailOn,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = AuditFormat::Human)]
    pub output: AuditFormat,
    /// A YAML file of severities, thresholds and exemptions (see docs/audit-checks.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Recommend requests and limits from measured usage (needs --live).
    #[arg(long, requires = "live")]
    pub rightsize: bool,
    /// Read usage history from this Prometheus instead of sampling the metrics API.
    #[arg(long, value_name = "URL", requires = "rightsize")]
    pub prometheus: Option<String>,
    /// With --prometheus: how far back to look (e.g. 7d, 24h).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    pub history: String,
    /// Without --prometheus: how many times to read the metrics API.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub samples: u32,
    /// Without --prometheus: time between metrics API reads (metrics-server refreshes every 15s).
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub interval: String,
}

/// `7d`, `24h`, `1h30m`, `15s`: the one duration parser, above zero.
fn parse_duration(s: &str) -> Option<Duration> {
    unloop_core::duration::parse_positive(s)
        .ok()
        .map(|d| d.unsigned_abs())
}

fn input_error(message: String, hint: Option<&str>) -> CliError {
    CliError {
        kind: ErrorKind::Input,
        message,
        hint: hint.map(str::to_string),
    }
}

fn load_error(e: LoadError) -> CliError {
    let hint = e.hint();
    input_error(e.to_string(), hint)
}

/// A cluster or Prometheus error, with the hint audit can add.
fn live_error(e: SourceError) -> CliError {
    let hint = match &e {
        SourceError::MetricsUnavailable(_) => {
            Some("install metrics-server, or pass --prometheus URL")
        }
        _ => None,
    };
    let mut err = CliError::from(e);
    if let Some(h) = hint {
        err.hint = Some(h.to_string());
    }
    err
}

pub fn run(args: AuditArgs, global: &Global, out: &Output) -> Result<ExitCode, CliError> {
    // Validate everything before any work.
    if !args.live && args.paths.is_empty() {
        return Err(CliError::usage(
            "nothing to audit",
            Some(
                "give manifest files or directories, `-` for stdin, or --live for the cluster's workloads",
            ),
        ));
    }
    let selector = super::parse_selector(args.selector.as_deref())?;
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| input_error(format!("cannot read {}: {e}", path.display()), None))?;
            AuditConfig::parse(&text).map_err(|e| {
                input_error(
                    format!("{}: {e}", path.display()),
                    Some("see docs/audit-checks.md for the config file format"),
                )
            })?
        }
        None => AuditConfig::default(),
    };
    let history = parse_duration(&args.history).ok_or_else(|| {
        CliError::usage(
            format!("--history {:?} is not a duration", args.history),
            Some("write it like 7d, 24h or 1h30m"),
        )
    })?;
    let interval = parse_duration(&args.interval).ok_or_else(|| {
        CliError::usage(
            format!("--interval {:?} is not a duration", args.interval),
            Some("write 15s or 1m"),
        )
    })?;
    let prometheus = args
        .prometheus
        .as_deref()
        .map(Prometheus::new)
        .transpose()
        .map_err(|e| CliError::usage(e.to_string(), None))?;
    let fail_on = match args.fail_on {
        FailOn::Warning => Severity::Warning,
        FailOn::Error => Severity::Error,
    };

    // One connection for every cluster read of this run, made once.
    let runtime = super::runtime()?;
    let opts = live_opts(&args, global);
    let live = if args.live || args.resolve_live {
        Some(runtime.block_on(unloop_source::live::connect(&opts))?)
    } else {
        None
    };

    let (mut inventory, resolver, observed) = match &live {
        Some(live) if args.live => read_live(&runtime, live, &opts, out)?,
        _ => {
            let opts = LoadOptions {
                default_namespace: args
                    .scope
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                ..LoadOptions::default()
            };
            out.progress("reading manifests");
            let inventory =
                unloop_audit::load::load_paths(&args.paths, &opts, &mut std::io::stdin().lock())
                    .map_err(load_error)?;
            let mut sources = vec![Known::manifests(&inventory.config)];
            let mut observed = None;
            if let Some(live) = &live {
                let namespaces: BTreeSet<String> = inventory
                    .workloads
                    .iter()
                    .map(|w| w.namespace.clone())
                    .collect();
                let (keys, nodes) = runtime
                    .block_on(async {
                        out.progress("reading ConfigMaps, Secrets and ServiceAccounts");
                        let keys = live.config_keys(&namespaces).await?;
                        // Without the nodes (forbidden), imagePullPolicy Never is judged from the
                        // manifest alone.
                        let nodes = live.nodes().await.unwrap_or_default();
                        Ok::<_, SourceError>((keys, nodes))
                    })
                    .map_err(live_error)?;
                sources.push(Known::live(
                    namespaces.into_iter().collect(),
                    keys.config_maps,
                    keys.secrets,
                    keys.service_accounts,
                    keys.gaps,
                ));
                observed = Some(Observed::new(
                    ClusterState {
                        nodes,
                        ..Default::default()
                    },
                    jiff::Timestamp::now(),
                    false,
                ));
            }
            (inventory, Resolver::new(sources), observed)
        }
    };
    out.progress_done();
    if let Some(sel) = &selector {
        inventory.workloads.retain(|w| sel.matches(Some(&w.labels)));
    }

    let ctx = Context {
        config: &config,
        resolver: &resolver,
        observed: observed.as_ref(),
    };
    let mut report = unloop_audit::audit(&inventory, &ctx);

    if args.rightsize {
        let (Some(obs), Some(live)) = (observed.as_ref(), live.as_ref()) else {
            return Err(CliError::internal("--rightsize without live state"));
        };
        let policy = config.thresholds.cpu_limit_policy;
        let ns = obs.state.scope.namespaces.first().cloned();
        let (samples, source) = runtime
            .block_on(async {
                match &prometheus {
                    Some(p) => {
                        let end = obs.now.as_second();
                        let history = history.as_secs() as i64;
                        let step = unloop_audit::rightsize::prometheus_step(history);
                        let mut samples = Vec::new();
                        let n = inventory.workloads.len();
                        for (i, w) in inventory.workloads.iter().enumerate() {
                            out.progress(&format!("querying Prometheus ({} of {n})", i + 1));
                            let (memory_q, cpu_q) = unloop_audit::rightsize::prometheus_queries(w);
                            let mut series = Vec::new();
                            for q in [memory_q, cpu_q] {
                                let text = p
                                    .query_range(live.deadline(), &q, end - history, end, step)
                                    .await?;
                                series.push(
                                    unloop_audit::rightsize::parse_prometheus_matrix(&text)
                                        .map_err(|why| SourceError::Prometheus {
                                            url: args.prometheus.clone().unwrap_or_default(),
                                            why,
                                        })?,
                                );
                            }
                            samples.extend(unloop_audit::rightsize::samples_from_series(
                                &w.namespace,
                                &series[0],
                                &series[1],
                            ));
                        }
                        Ok::<_, SourceError>((
                            samples,
                            format!(
                                "Prometheus at {} (last {})",
                                args.prometheus.clone().unwrap_or_default(),
                                args.history
                            ),
                        ))
                    }
                    None => {
                        out.progress("reading the metrics API");
                        let reads = live
                            .sample_pod_metrics(ns.as_deref(), args.samples, interval, &|w| {
                                out.progress(w)
                            })
                            .await?;
                        let samples =
                            unloop_audit::rightsize::samples_from_pod_metrics_reads(&reads)
                                .map_err(SourceError::MetricsUnavailable)?;
                        Ok((
                            samples,
                            format!(
                                "the metrics API (metrics-server), {} reads {}s apart",
                                args.samples.max(1),
                                interval.as_secs()
                            ),
                        ))
                    }
                }
            })
            .map_err(live_error)?;
        out.progress_done();
        report.rightsize = Some(unloop_audit::rightsize::recommend(
            &inventory, obs, &samples, source, policy,
        ));
    }

    let format = match args.output {
        AuditFormat::Human => Format::Human,
        AuditFormat::Json => Format::Json,
        AuditFormat::Sarif => Format::Sarif,
        AuditFormat::Junit => Format::Junit,
    };
    let opts = RenderOptions {
        color: out.color,
        fail_on,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    out.result(&unloop_report::audit::render(&report, format, &opts));
    Ok(if report.worst().is_some_and(|w| w >= fail_on) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The reader options of an audit: whole pods (bare pods and the start-up figures need them),
/// and no more logs than the shared reader insists on (one line each).
fn live_opts(args: &AuditArgs, global: &Global) -> LiveOptions {
    let mut opts = super::live_options(global, &args.scope, 1);
    opts.log_concurrency = 4;
    opts.whole_pods = true;
    opts
}

/// The cluster's workloads, what their references resolve to, and their pods and nodes.
fn read_live(
    runtime: &tokio::runtime::Runtime,
    live: &Live,
    opts: &LiveOptions,
    out: &Output,
) -> Result<(Inventory, Resolver, Option<Observed>), CliError> {
    let now = jiff::Timestamp::now();
    let (state, cron_jobs, accounts) = runtime.block_on(async {
        let state = live.read(opts, now, &|what| out.progress(what)).await?;
        let namespace = state.scope.namespaces.first().cloned();
        out.progress("listing cronjobs and serviceaccounts");
        // Both are optional evidence: refused lists leave those checks to what is known.
        let (cron_jobs, accounts) = tokio::join!(
            live.cron_jobs(namespace.as_deref()),
            live.service_accounts(namespace.as_deref()),
        );
        Ok::<_, SourceError>((state, cron_jobs.unwrap_or_default(), accounts.ok()))
    })?;
    let inventory = Inventory::from_state(&state, cron_jobs);
    let known = Known::live(
        state.scope.namespaces.clone(),
        state.config_maps.clone(),
        state.secrets.clone(),
        accounts,
        state.gaps.clone(),
    );
    Ok((
        inventory,
        Resolver::new(vec![known]),
        Some(Observed::new(state, now, true)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d12h"), Some(Duration::from_secs(216_000)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("x"), None);
    }
}
