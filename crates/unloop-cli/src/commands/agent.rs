//! `unloop agent`: runs the always-on agent (`unloop-agent`), or prints its CRD.
//!
//! Every flag has an environment variable (`UNLOOP_AGENT_*`), so a Deployment can take its
//! configuration from a ConfigMap through `envFrom`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use unloop_agent::track::Timing;
use unloop_agent::{LeaseOptions, Options};

use crate::cli::Global;
use crate::error::CliError;
use crate::output::Output;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub what: Option<AgentCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Print the CrashDiagnosis CustomResourceDefinition (YAML), to apply before the agent runs.
    Crd,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = unloop_core::duration::parse_positive(s).map_err(|e| e.to_string())?;
    d.try_into().map_err(|e| format!("{e}"))
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespaces to watch (repeat or comma-separate); default: all.
    #[arg(
        long = "namespace",
        short = 'n',
        value_delimiter = ',',
        env = "UNLOOP_AGENT_NAMESPACES"
    )]
    pub namespaces: Vec<String>,
    /// Namespaces never diagnosed.
    #[arg(long, value_delimiter = ',', env = "UNLOOP_AGENT_EXCLUDE_NAMESPACES")]
    pub exclude_namespace: Vec<String>,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, default_value = "0.0.0.0:8080", env = "UNLOOP_AGENT_LISTEN")]
    pub listen: SocketAddr,
    /// Quiet time after a change before a workload is diagnosed.
    #[arg(long, default_value = "3s", value_parser = duration, env = "UNLOOP_AGENT_DEBOUNCE")]
    pub debounce: Duration,
    /// Time without trouble before a diagnosis is marked resolved.
    #[arg(long, default_value = "60s", value_parser = duration, env = "UNLOOP_AGENT_RESOLVE_AFTER")]
    pub resolve_after: Duration,
    /// A Slack-compatible incoming webhook URL.
    #[arg(long, env = "UNLOOP_AGENT_SLACK_WEBHOOK", hide_env_values = true)]
    pub slack_webhook: Option<String>,
    /// A webhook that receives each notification as JSON (schema in docs/agent.md).
    #[arg(long, env = "UNLOOP_AGENT_WEBHOOK", hide_env_values = true)]
    pub webhook: Option<String>,
    /// At most one notification per workload, container and cause within this window.
    #[arg(long, default_value = "1h", value_parser = duration, env = "UNLOOP_AGENT_NOTIFY_WINDOW")]
    pub notify_window: Duration,
    /// Do not publish an Event on the pod.
    #[arg(long, env = "UNLOOP_AGENT_NO_EVENTS")]
    pub no_events: bool,
    /// Elect a leader on this Lease (NAMESPACE/NAME); without it this replica always publishes.
    #[arg(long, value_name = "NAMESPACE/NAME", env = "UNLOOP_AGENT_LEASE")]
    pub lease: Option<String>,
    /// How long a lease holds without renewal.
    #[arg(long, default_value = "15s", value_parser = duration, env = "UNLOOP_AGENT_LEASE_DURATION")]
    pub lease_duration: Duration,
    /// This replica's name (default: $POD_NAME, then the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

pub fn run(args: AgentArgs, global: &Global, out: &Output) -> Result<ExitCode, CliError> {
    if let Some(AgentCommand::Crd) = args.what {
        out.result(&unloop_agent::crd::crd_yaml());
        return Ok(ExitCode::SUCCESS);
    }
    let a = args.run;
    let lease = a
        .lease
        .as_deref()
        .map(|l| match l.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(LeaseOptions {
                namespace: ns.into(),
                name: name.into(),
                duration: a.lease_duration,
            }),
            _ => Err(CliError::usage(
                format!("--lease {l:?} is not NAMESPACE/NAME"),
                Some("for example --lease unloop-system/unloop-agent"),
            )),
        })
        .transpose()?;
    let identity = a
        .identity
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unloop-agent-{}", std::process::id()));
    let opts = Options {
        target: unloop_source::live::client::Target {
            kubeconfig: global.kubeconfig.clone(),
            context: global.context.clone(),
        },
        namespaces: a.namespaces,
        exclude: a.exclude_namespace,
        timing: Timing {
            debounce: a.debounce.try_into().unwrap_or_default(),
            resolve_after: a.resolve_after.try_into().unwrap_or_default(),
            ..Timing::default()
        },
        notify_window: a.notify_window.try_into().unwrap_or_default(),
        targets: unloop_agent::notify::Targets {
            slack: a.slack_webhook,
            json: a.webhook,
        },
        listen: a.listen,
        events: !a.no_events,
        lease,
        read_timeout: global.timeout(),
        identity,
        ..Options::default()
    };
    let log: unloop_agent::LogSink =
        Arc::new(|level: &str, msg: &str, fields: serde_json::Value| {
            let mut line = serde_json::json!({
                "ts": jiff::Timestamp::now().to_string(),
                "level": level,
                "msg": msg,
            });
            if let (Some(l), serde_json::Value::Object(f)) = (line.as_object_mut(), fields) {
                l.extend(f);
            }
            let _ =
                std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(unloop_agent::run(opts, log))
        .map_err(|e| match e {
            unloop_agent::AgentError::Source(s) => CliError::from(s),
            other => CliError::usage(other.to_string(), None),
        })?;
    Ok(ExitCode::SUCCESS)
}
