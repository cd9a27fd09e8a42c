//! `unloop mcp`: a Model Context Protocol server on stdin/stdout (rmcp), so an AI assistant asks
//! unloop for its deterministic evidence instead of guessing from raw kubectl output.
//!
//! Tools: `diagnose` (live cluster or a bundle), `audit` (manifests or live) and `read_bundle`
//! (what a bundle holds). They return the JSON that `-o json` prints, as structured content and
//! as text. Read-only: `debug` exists only with `--allow-debug`; called without it, the call is
//! refused. (`retry`, the other writer, is not exposed yet.)
//!
//! stdout is the protocol stream, so nothing else may be written to it: `diagnose`, `audit` and
//! `debug` run as child processes of this same binary with their output captured, which also
//! makes their JSON exactly what the command line prints.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Value, json};

use crate::cli::Global;
use crate::error::CliError;

#[derive(Debug, clap::Args)]
#[command(after_help = MCP_HELP)]
pub struct McpArgs {
    /// Offer the `debug` tool, which creates a debug copy of a pod in the cluster. Without it the
    /// server only reads.
    #[arg(long)]
    pub allow_debug: bool,
}

const MCP_HELP: &str = "Examples:
  unloop mcp                       read-only: diagnose, audit, read_bundle
  unloop mcp --allow-debug         ... and debug, which creates debug copies of pods
  unloop mcp --context prod --timeout 30s

An MCP client starts it as a command over stdio, e.g. in its config:
  {\"mcpServers\": {\"unloop\": {\"command\": \"unloop\", \"args\": [\"mcp\"]}}}";

pub fn run(args: McpArgs, global: &Global) -> Result<ExitCode, CliError> {
    let server = Server {
        allow_debug: args.allow_debug,
        global: global_args(global),
    };
    super::runtime()?.block_on(async {
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| CliError::internal(format!("MCP: the session did not start: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| CliError::internal(format!("MCP: the session failed: {e}")))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The server's own cluster flags, passed on to each child.
fn global_args(g: &Global) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["--color".into(), "never".into()];
    if let Some(k) = &g.kubeconfig {
        a.extend(["--kubeconfig".into(), k.clone().into_os_string()]);
    }
    if let Some(c) = &g.context {
        a.extend(["--context".into(), c.into()]);
    }
    if let Some(t) = g.timeout {
        a.extend([
            "--timeout".into(),
            format!("{}s", t.as_secs().max(1)).into(),
        ]);
    }
    a
}

#[derive(Clone)]
struct Server {
    allow_debug: bool,
    global: Vec<OsString>,
}

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

fn read_only(title: &str) -> ToolAnnotations {
    ToolAnnotations::from_raw(
        Some(title.into()),
        Some(true),
        Some(false),
        Some(true),
        None,
    )
}

fn tools(allow_debug: bool) -> Vec<Tool> {
    let scope = json!({
        "namespace": {"type": "string", "description": "The namespace to look in (default: the kubeconfig context's)."},
        "allNamespaces": {"type": "boolean", "description": "Look in every namespace."},
        "selector": {"type": "string", "description": "Only pods whose labels match, as kubectl -l (e.g. app=api)."}
    });
    let mut diagnose_props = scope.as_object().cloned().unwrap_or_default();
    diagnose_props.insert("target".into(), json!({"type": "string", "description": "A pod name or a workload: deploy/NAME, sts/NAME, ds/NAME, job/NAME, cronjob/NAME."}));
    diagnose_props.insert("bundle".into(), json!({"type": "string", "description": "Path of a snapshot bundle (unloop snapshot), kubectl JSON file or cluster-info dump to diagnose instead of the live cluster."}));
    let mut audit_props = scope.as_object().cloned().unwrap_or_default();
    audit_props.insert("paths".into(), json!({"type": "array", "items": {"type": "string"}, "description": "Manifest files or directories (recursive: *.yaml, *.yml, *.json)."}));
    audit_props.insert("live".into(), json!({"type": "boolean", "description": "Audit the workloads running in the cluster instead of manifests."}));

    // Each tool's output schema is the one `-o json` is generated against and validated by in
    // the tests (`unloop_report::schema`, shipped in docs/schemas/): a client can check what it
    // gets (the Python SDK does).
    let mut t = vec![
        Tool::new(
            "diagnose",
            "Find crash-looping and failing pods and explain each: the ranked causes with their evidence (fields, events, log lines), the backoff timeline and remedies as shell commands. Reads the live cluster, or a bundle when `bundle` is given. Returns unloop's JSON report (schemaVersion, diagnoses[], gaps[]).",
            schema(json!({"type": "object", "properties": diagnose_props, "additionalProperties": false})),
        )
        .with_raw_output_schema(schema(unloop_report::schema::diagnose()))
        .annotate(read_only("Diagnose crash loops")),
        Tool::new(
            "audit",
            "Check manifests (`paths`) or the live cluster (`live`) for what makes pods crash-loop before it happens: missing ConfigMaps/Secrets, probes, JVM heap vs memory limit, entrypoints, images. Returns unloop's JSON audit report.",
            schema(json!({"type": "object", "properties": audit_props, "additionalProperties": false})),
        )
        .with_raw_output_schema(schema(unloop_report::schema::audit()))
        .annotate(read_only("Audit manifests or workloads")),
        Tool::new(
            "read_bundle",
            "Summarise a snapshot bundle: when and where it was captured, how many objects of each kind, which logs it holds and what could not be read.",
            schema(json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": "Path of the bundle (.json.gz), kubectl JSON file or cluster-info dump."}},
                "required": ["path"],
                "additionalProperties": false
            })),
        )
        .annotate(read_only("Read a snapshot bundle")),
    ];
    if allow_debug {
        t.push(
            Tool::new(
                "debug",
                "Create a debug copy of a crashing pod: same image, env and volumes, its command replaced by a keep-alive, no labels or owner (no traffic, no controller). Changes the cluster: creates one pod. Returns what unloop debug prints, with the command to exec into the copy.",
                schema(json!({
                    "type": "object",
                    "properties": {
                        "pod": {"type": "string", "description": "The pod to copy."},
                        "namespace": {"type": "string"},
                        "container": {"type": "string", "description": "The container to keep alive (default: the only troubled one)."},
                        "dryRun": {"type": "boolean", "description": "Print the copy, create nothing."}
                    },
                    "required": ["pod"],
                    "additionalProperties": false
                })),
            )
            .annotate(ToolAnnotations::from_raw(
                Some("Make a debug copy of a pod".into()),
                Some(false),
                Some(false),
                Some(false),
                None,
            )),
        );
    }
    t
}

fn string(args: &JsonObject, key: &str) -> Result<Option<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn flag(args: &JsonObject, key: &str) -> Result<bool, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`{key}` must be true or false")),
    }
}

/// `-n`, `-A` and `-l` from the tool's arguments.
fn scope_args(args: &JsonObject) -> Result<Vec<OsString>, String> {
    let mut a: Vec<OsString> = Vec::new();
    if let Some(ns) = string(args, "namespace")? {
        a.extend(["-n".into(), ns.into()]);
    }
    if flag(args, "allNamespaces")? {
        a.push("-A".into());
    }
    if let Some(sel) = string(args, "selector")? {
        a.extend(["-l".into(), sel.into()]);
    }
    Ok(a)
}

impl Server {
    /// Runs this binary with `args`; `ok` lists the exit codes that carry a report.
    async fn child(&self, args: Vec<OsString>, ok: &[i32], json: bool) -> CallToolResult {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return failure(format!("cannot find the unloop binary: {e}")),
        };
        let out = tokio::process::Command::new(exe)
            .args(&self.global)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => return failure(format!("cannot run unloop: {e}")),
        };
        let code = out.status.code().unwrap_or(5);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !ok.contains(&code) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return failure(format!("exit {code}: {}", stderr.trim()));
        }
        if !json {
            return CallToolResult::success(vec![ContentBlock::text(stdout.into_owned())]);
        }
        match serde_json::from_str::<Value>(&stdout) {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => failure(format!("unloop printed no JSON report: {e}")),
        }
    }

    async fn diagnose(&self, args: &JsonObject) -> Result<CallToolResult, String> {
        let mut a: Vec<OsString> = vec!["diagnose".into(), "-o".into(), "json".into()];
        if let Some(t) = string(args, "target")? {
            a.push(t.into());
        }
        a.extend(scope_args(args)?);
        if let Some(b) = string(args, "bundle")? {
            a.extend(["--from".into(), b.into()]);
        }
        // Exit 1 is trouble found: a report like exit 0's.
        Ok(self.child(a, &[0, 1], true).await)
    }

    async fn audit(&self, args: &JsonObject) -> Result<CallToolResult, String> {
        let mut a: Vec<OsString> = vec!["audit".into(), "-o".into(), "json".into()];
        let live = flag(args, "live")?;
        let paths = match args.get("paths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or("`paths` must be a list of strings")?,
            Some(_) => return Err("`paths` must be a list of strings".into()),
        };
        // Exactly one of the two: live with no paths, or paths without live.
        if live != paths.is_empty() {
            return Err("give either `paths` (manifests) or `live: true`".into());
        }
        if paths.iter().any(|p| p == "-") {
            return Err("`-` (stdin) is not available here: give file or directory paths".into());
        }
        if live {
            a.push("--live".into());
        }
        a.extend(scope_args(args)?);
        a.push("--".into());
        a.extend(paths.into_iter().map(OsString::from));
        Ok(self.child(a, &[0, 1], true).await)
    }

    async fn debug(&self, args: &JsonObject) -> Result<CallToolResult, String> {
        if !self.allow_debug {
            return Ok(failure(
                "refused: `debug` changes the cluster, and this server is read-only; start it as `unloop mcp --allow-debug` to allow it".into(),
            ));
        }
        let pod = string(args, "pod")?.ok_or("`pod` is required")?;
        let mut a: Vec<OsString> = vec!["debug".into(), "--yes".into()];
        if let Some(ns) = string(args, "namespace")? {
            a.extend(["-n".into(), ns.into()]);
        }
        if let Some(c) = string(args, "container")? {
            a.extend(["-c".into(), c.into()]);
        }
        if flag(args, "dryRun")? {
            a.push("--dry-run".into());
        }
        a.extend(["--".into(), pod.into()]);
        Ok(self.child(a, &[0], false).await)
    }
}

fn failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// What a bundle holds, without diagnosing it.
fn read_bundle(args: &JsonObject) -> Result<CallToolResult, String> {
    let path = string(args, "path")?.ok_or("`path` is required")?;
    let state = match unloop_source::files::load(std::path::Path::new(&path)) {
        Ok(s) => s,
        Err(e) => return Ok(failure(e.to_string())),
    };
    let logs: Vec<Value> = state
        .logs
        .iter()
        .map(|l| json!({"namespace": l.namespace, "pod": l.pod, "container": l.container, "previous": l.previous}))
        .collect();
    let summary = json!({
        "capturedAt": state.captured_at,
        "scope": state.scope,
        "counts": {
            "pods": state.pods.len(),
            "events": state.events.len(),
            "nodes": state.nodes.len(),
            "configMaps": state.config_maps.len(),
            "secrets": state.secrets.len(),
            "services": state.services.len(),
            "endpointSlices": state.endpoint_slices.len(),
            "replicaSets": state.replica_sets.len(),
            "deployments": state.deployments.len(),
            "statefulSets": state.stateful_sets.len(),
            "daemonSets": state.daemon_sets.len(),
            "jobs": state.jobs.len(),
            "controllerRevisions": state.controller_revisions.len(),
            "logs": state.logs.len(),
            "kubeletConfigs": state.kubelet_configs.len(),
        },
        "logs": logs,
        "gaps": state.gaps,
    });
    Ok(CallToolResult::structured(summary))
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("unloop", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "unloop explains why Kubernetes pods crash-loop. Call `diagnose` (live, or with `bundle`) \
                 for the cause, its evidence and a remedy; `audit` to check manifests before they \
                 crash; `read_bundle` to see what a snapshot holds. Reports are JSON; remedies are \
                 shell commands for the user to run.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools(self.allow_debug)))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "diagnose" => self.diagnose(&args).await,
            "audit" => self.audit(&args).await,
            "read_bundle" => read_bundle(&args),
            "debug" => self.debug(&args).await,
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no tool named {other:?}"),
                    None,
                ));
            }
        };
        Ok(result.unwrap_or_else(failure).into())
    }
}
