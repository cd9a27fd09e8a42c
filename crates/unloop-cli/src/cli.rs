//! The command line, as clap parses it. Validation that needs more than syntax happens in each
//! command before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "unloop",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("UNLOOP_BUILD_COMMIT"), ")"),
    about = "Tells you why a Kubernetes pod is crash-looping, with the evidence, and what to do about it",
    after_help = "Also runs as a kubectl plugin: kubectl unloop diagnose ...\n\nExit codes: 0 nothing in trouble (retry, --watch: fixed), 1 trouble found (retry, --watch: failed again), 2 usage error, 3 unreadable input, 4 cluster unreachable or refused (or the pods not read within --timeout), 5 internal error, 6 retry or --watch: neither fixed nor failed again within --timeout."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// When to colour output: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Overall deadline for the cluster's answers (e.g. 30s, 2m). Reads are retried inside it;
    /// what is still unread then is reported as a gap (the pods themselves: exit 4). Default 60s;
    /// for retry and diagnose --watch, how long to follow the pods (default 5m, then exit 6).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

impl Global {
    /// `--timeout`, or 60 s.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.unwrap_or(unloop_source::live::DEFAULT_TIMEOUT)
    }

    /// `--timeout` for a command that follows pods until they are fixed, or 5 min.
    pub fn follow_timeout(&self) -> std::time::Duration {
        self.timeout.unwrap_or(std::time::Duration::from_secs(300))
    }
}

/// `--timeout`: a positive duration such as `90s`, `2m` or `1m30s` (the one duration parser).
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = unloop_core::duration::parse_positive(s).map_err(|e| e.to_string())?;
    d.try_into().map_err(|e| format!("{e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find crash-looping and failing pods and explain each: cause, evidence, backoff, remedy.
    #[command(after_help = DIAGNOSE_EXAMPLES)]
    Diagnose(DiagnoseArgs),
    /// Capture what diagnosis needs into one compressed bundle (secrets redacted), for offline use.
    #[command(after_help = SNAPSHOT_EXAMPLES)]
    Snapshot(SnapshotArgs),
    /// Keep a crashing container alive to look inside: a safe debug copy, or an in-place override with a restore.
    #[command(after_help = DEBUG_EXAMPLES)]
    Debug(DebugArgs),
    /// Retry a crash-looping workload now instead of waiting out its backoff (a failed Job:
    /// re-create it), then follow its new pods until they are fixed or fail again.
    #[command(after_help = RETRY_EXAMPLES)]
    Retry(RetryArgs),
    /// Check manifests or a live cluster for what makes pods crash-loop, before it happens.
    Audit(crate::commands::audit::AuditArgs),
    /// Run always on, in the cluster: diagnose each crash loop as it happens and publish it
    /// (CrashDiagnosis resources, Events, metrics, webhooks). `unloop agent crd` prints the CRD.
    Agent(crate::commands::agent::AgentArgs),
    /// Serve diagnose, audit and bundle reading to an AI assistant: a Model Context Protocol
    /// server on stdio. Read-only unless --allow-debug.
    Mcp(crate::commands::mcp::McpArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  unloop completions bash > /etc/bash_completion.d/unloop\n  unloop completions zsh > \"${fpath[1]}/_unloop\"\n  unloop completions fish > ~/.config/fish/completions/unloop.fish"
    )]
    Completions(CompletionsArgs),
    /// Print the JSON Schema of `diagnose -o json` or `audit -o json` (docs/schemas/).
    #[command(
        after_help = "Examples:\n  unloop schema diagnose > docs/schemas/diagnose.schema.json\n  unloop schema audit > docs/schemas/audit.schema.json"
    )]
    Schema(SchemaArgs),
    /// Write man pages (roff) for unloop and each subcommand into a directory.
    #[command(
        after_help = "Examples:\n  unloop man /usr/local/share/man/man1\n  unloop man ./man && man -l ./man/unloop-diagnose.1"
    )]
    Man(ManArgs),
}

const DIAGNOSE_EXAMPLES: &str = "Examples:
  unloop diagnose                         every troubled pod in the current namespace
  unloop diagnose -A                      ... in all namespaces
  unloop diagnose deploy/api -n shop      one verdict for all replicas of a Deployment
  unloop diagnose api-7d9f8-x2x9z         one pod
  unloop diagnose -l app=api -o json      machine-readable, by label
  unloop diagnose -o html > report.html   one self-contained page: verdicts, timelines, copy buttons
  unloop diagnose --from incident.json.gz a snapshot, offline
  kubectl get pods,events -o json > s.json && unloop diagnose --from s.json";

const DEBUG_EXAMPLES: &str = "Examples:
  unloop debug api-7d9f8-x2x9z -n shop            a running copy of the pod, ready to exec into
  unloop debug api-7d9f8-x2x9z -n shop --exec     ... and open a shell in it at once
  unloop debug api-7d9f8-x2x9z --dry-run          print the copy, change nothing
  unloop debug deploy/api -n shop --in-place      override the Deployment's command (asks first)
  unloop debug --restore deploy/api -n shop       put back exactly what was there
  unloop debug --list -A                          every copy and override unloop made
  unloop debug --cleanup -n shop                  delete the copies (expired first)

The copy has the same image, env, volumes, service account and scheduling constraints; its command
is a keep-alive loop, its probes are removed, its labels and owner are dropped (no Service routes to
it, no controller adopts it). When the image has no shell or sleep, an init container copies a
static busybox from --helper-image into an emptyDir and the keep-alive runs from there.";

const RETRY_EXAMPLES: &str = "Examples:
  unloop retry deploy/api -n shop          show the pods to restart, ask, restart, follow
  unloop retry deploy/api -n shop --yes    without asking (needed when stdin is not a terminal)
  unloop retry api-7d9f8-x2x9z --settle 30s    the pod's workload, Ready for 30 s to count as fixed
  unloop retry job/export -n batch         re-create a failed Job from its spec, follow its new pod
  unloop diagnose deploy/api --watch       the same live view, restarting nothing

Deletes the troubled pods of the workload (each by its uid: a pod replaced meanwhile is left alone);
the controller re-creates them at once, without the backoff. A failed Job is deleted (by uid, its
pods with it) and created again from its spec, as the remedy's kubectl | jq pipeline does; a
CronJob's Job is refused (the hint runs the CronJob's current template). Then watches the new pods:
a live status line on a terminal (phase, restarts, the backoff countdown), plain lines otherwise.

Exit codes: 0 fixed (every pod Ready for --settle; a Job's new pod completed), 1 failed again (the new diagnosis is printed),
2 usage error or not confirmed, 4 cluster unreachable or refused, 6 neither within --timeout
(default 5m).";

const SNAPSHOT_EXAMPLES: &str = "Examples:
  unloop snapshot incident.json.gz -n shop
  unloop snapshot all.json.gz -A --context prod
  unloop diagnose --from incident.json.gz -o markdown > ticket.md";

#[derive(Debug, Args)]
pub struct Scope {
    /// The namespace to look in (default: the context's namespace; for --from, all in the bundle).
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Look in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A pod name, or a workload: deploy/NAME, sts/NAME, ds/NAME, job/NAME, cronjob/NAME, rs/NAME, pod/NAME.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
    /// Only pods whose labels match, as kubectl -l.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Diagnose a snapshot bundle, a kubectl JSON file or a cluster-info dump directory instead of a live cluster.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Log lines read per crashed container.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub tail: i64,
    /// A pod that has not started after this long, with warning events (FailedMount,
    /// FailedScheduling, FailedCreatePodSandBox), is reported as stuck.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_secs)]
    pub stuck_after: i64,
    /// A container that restarted but has run steadily this long since (and longer than its
    /// crashed run) is reported as recovered, not as trouble (default 10m). With --watch: how long
    /// every pod must stay Ready to count as fixed (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_secs)]
    pub settle: Option<i64>,
    /// Follow the target's pods live until they are fixed (Ready for --settle), fail again or
    /// --timeout passes (exit 0, 1, 6), restarting nothing. Needs a TARGET and a live cluster.
    #[arg(long, requires = "target", conflicts_with = "from")]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// A workload (deploy/NAME, sts/NAME, ds/NAME, rs/NAME, job/NAME), or a pod (NAME or pod/NAME) whose workload to retry.
    #[arg(value_name = "TARGET")]
    pub target: String,
    #[command(flatten)]
    pub scope: Scope,
    /// Do not ask before deleting the troubled pods.
    #[arg(short, long)]
    pub yes: bool,
    /// How long every new pod must stay Ready to count as fixed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_secs)]
    pub settle: i64,
    /// The format of the diagnosis printed when the pods fail again.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Log lines read per crashed container for that diagnosis.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub tail: i64,
}

fn parse_secs(s: &str) -> Result<i64, String> {
    let d = unloop_core::duration::parse_positive(s).map_err(|e| e.to_string())?;
    Ok(d.as_secs())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
    Yaml,
    Markdown,
    /// One self-contained page (inline CSS and script, nothing fetched).
    Html,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Where to write the bundle (gzip-compressed JSON).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub scope: Scope,
    /// Log lines kept per crashed container.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub tail: i64,
    /// Keep healthy pods whole. By default a healthy pod that a controller made keeps only what
    /// diagnosis reads (identity, owners, labels, node, status): its spec is
    /// in its owner's template, and the bundle is about a third of the size.
    #[arg(long)]
    pub whole_pods: bool,
}

#[derive(Debug, Args)]
pub struct DebugArgs {
    /// The pod to copy; with --in-place or --restore, a workload: deploy/NAME, sts/NAME, ds/NAME.
    #[arg(value_name = "TARGET", required_unless_present_any = ["list", "cleanup", "restore"])]
    pub target: Option<String>,
    /// The container to keep alive (default: the only one, or the only troubled one).
    #[arg(short, long, value_name = "NAME")]
    pub container: Option<String>,
    #[command(flatten)]
    pub scope: Scope,
    /// Schedule the copy on the original pod's node.
    #[arg(long)]
    pub same_node: bool,
    /// Open a shell in the copy once it runs (needs kubectl on PATH).
    #[arg(long)]
    pub exec: bool,
    /// Print the object or patch as YAML and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How to keep the container alive: the image's shell, a helper busybox, or the shell with the helper as fallback.
    #[arg(long, value_enum, default_value_t = KeepAliveChoice::Auto)]
    pub keep_alive: KeepAliveChoice,
    /// The image the helper copies a static busybox from (must hold /bin/busybox and cp).
    #[arg(long, value_name = "IMAGE", default_value = "busybox:1.37-musl")]
    pub helper_image: String,
    /// How long the copy is meant to live (recorded as its expiry for --cleanup).
    #[arg(long, value_name = "DURATION", default_value = "4h")]
    pub ttl: String,
    /// Override the owning workload's command in place instead of making a copy.
    #[arg(long, conflicts_with_all = ["same_node", "restore", "list", "cleanup"])]
    pub in_place: bool,
    /// Do not ask before changing a workload in place.
    #[arg(short, long)]
    pub yes: bool,
    /// Undo an in-place override of WORKLOAD exactly; refuses if the workload changed since.
    #[arg(long, value_name = "WORKLOAD", conflicts_with_all = ["list", "cleanup"])]
    pub restore: Option<String>,
    /// List the copies and in-place overrides unloop made.
    #[arg(long, conflicts_with = "cleanup")]
    pub list: bool,
    /// Delete the copies unloop made, expired ones first.
    #[arg(long)]
    pub cleanup: bool,
    /// With --cleanup: only the expired copies.
    #[arg(long, requires = "cleanup")]
    pub expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeepAliveChoice {
    Auto,
    Shell,
    Helper,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Whose `-o json` output the schema describes.
    #[arg(value_enum)]
    pub of: SchemaOf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaOf {
    Diagnose,
    Audit,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write unloop.1 and unloop-SUBCOMMAND.1 into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The command as clap_mangen and clap_complete see it (the same definition the parser uses).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
