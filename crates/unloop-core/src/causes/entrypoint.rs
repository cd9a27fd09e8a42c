//! Wrong entrypoint: exits 0 under restartPolicy Always, command not found, not executable,
//! wrong architecture, and segmentation faults.

use crate::causes::config::retry_now;
use crate::shell::{Arg, Cmd, Script};
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy, RemedyKind};

pub fn detect(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    let run = s.last_run();
    let code = run.map(|t| t.exit_code);
    let reason = run.and_then(|t| t.reason.as_deref());
    // The runtime's message when it could not start the process: on the terminated state
    // (StartError) or the waiting state (RunContainerError, CreateContainerError).
    let start_msg = s
        .waiting_message()
        .filter(|_| {
            matches!(
                s.waiting_reason(),
                Some("RunContainerError" | "CreateContainerError")
            )
        })
        .map(|m| (m, "state.waiting.message"))
        .or_else(|| {
            run.filter(|t| t.reason.as_deref() == Some("StartError") || t.exit_code == 128)
                .and_then(|t| t.message.as_deref())
                .map(|m| (m, "lastState.terminated.message"))
        });
    let cmdline = command_line(s);
    if let Some((msg, path)) = start_msg {
        let ev = s.field(path, msg);
        let lower = msg.to_ascii_lowercase();
        if lower.contains("exec format error") {
            out.push(exec_format(s, ev));
        } else if lower.contains("permission denied") {
            out.push(finding(
                s,
                CauseId::NotExecutable,
                format!("the entrypoint {cmdline} is not executable (permission denied)"),
                ev,
                Some(fix_command(s)),
            ));
        } else if lower.contains("no such file or directory")
            || lower.contains("executable file not found")
            || lower.contains("not found")
        {
            out.push(finding(
                s,
                CauseId::CommandNotFound,
                format!("the entrypoint {cmdline} does not exist in the image"),
                ev,
                Some(fix_command(s)),
            ));
        }
        if !out.is_empty() {
            return out;
        }
    }
    if !s.scan.exec_format.is_empty() {
        let ev = s.log_evidence(&s.scan.exec_format[0].line);
        out.push(exec_format(s, ev));
        return out;
    }
    match code {
        Some(0) if s.long_running() && reason != Some("OOMKilled") => {
            let mut f = finding(
                s,
                CauseId::EntrypointExited,
                format!(
                    "the entrypoint {cmdline} finished with exit code 0, but a {} must keep running in the foreground",
                    s.workload.kind.short()
                ),
                s.termination_evidence()
                    .unwrap_or_else(|| s.field("lastState.terminated", "exit code 0")),
                None,
            );
            f.cause
                .evidence
                .push(s.spec_evidence(".command", cmdline.clone()));
            f.remedies.insert(0, Remedy::fix(
                CauseId::EntrypointExited,
                "run the server in the foreground (no trailing &, no daemon mode such as nginx -g 'daemon off;'); a one-shot task belongs in a Job",
                None,
            ));
            out.push(f);
        }
        Some(127) => {
            let mut f = finding(
                s,
                CauseId::CommandNotFound,
                format!("a command run by {cmdline} was not found (exit 127)"),
                s.termination_evidence()
                    .unwrap_or_else(|| s.field("lastState.terminated", "exit code 127")),
                Some(fix_command(s)),
            );
            if let Some(h) = s.scan.not_found_command.first() {
                f.cause.summary = format!(
                    "the command {} was not found in the image (exit 127)",
                    h.value
                );
                f.cause.evidence.push(s.log_evidence(&h.line));
            }
            f.cause
                .evidence
                .push(s.spec_evidence(".command", cmdline.clone()));
            out.push(f);
        }
        Some(126) => {
            let mut f = finding(
                s,
                CauseId::NotExecutable,
                format!("a command run by {cmdline} is not executable (exit 126)"),
                s.termination_evidence()
                    .unwrap_or_else(|| s.field("lastState.terminated", "exit code 126")),
                Some(fix_command(s)),
            );
            if let Some(h) = s.scan.permission_denied.first() {
                f.cause.evidence.push(s.log_evidence(&h.line));
            }
            out.push(f);
        }
        Some(139) => {
            let mut f = finding(
                s,
                CauseId::Segfault,
                "the program crashed with a segmentation fault (SIGSEGV, exit 139)".to_string(),
                s.termination_evidence()
                    .unwrap_or_else(|| s.field("lastState.terminated", "exit code 139")),
                None,
            );
            if let Some(h) = s.scan.segfault.first() {
                f.cause.evidence.push(s.log_evidence(&h.line));
            }
            if let Some(arch) = node_arch(s) {
                f.cause.evidence.push(Evidence::new(
                    EvidenceKind::Node,
                    format!("node/{}", node_name(s)),
                    format!("architecture {arch}"),
                ));
            }
            f.remedies.insert(0, Remedy::new(
                Some(CauseId::Segfault),
                RemedyKind::Debug,
                "a native crash: check native libraries and their versions against the image's libc, the image's architecture against the node's, and run the entrypoint by hand in a debug copy",
                Some(debug_copy(s)),
            ));
            out.push(f);
        }
        _ => {}
    }
    out
}

fn command_line(s: &Subject) -> String {
    let parts: Vec<&str> = s
        .spec
        .command
        .iter()
        .flatten()
        .chain(s.spec.args.iter().flatten())
        .map(String::as_str)
        .collect();
    if parts.is_empty() {
        "(the image's default entrypoint)".into()
    } else {
        format!("`{}`", parts.join(" "))
    }
}

fn node_arch(s: &Subject) -> Option<String> {
    s.node?
        .status
        .as_ref()?
        .node_info
        .as_ref()
        .map(|i| i.architecture.clone())
}

fn node_name(s: &Subject) -> String {
    s.node
        .and_then(|n| n.metadata.name.clone())
        .unwrap_or_default()
}

fn exec_format(s: &Subject, ev: Evidence) -> Finding {
    let arch = node_arch(s);
    let mut f = finding(
        s,
        CauseId::ExecFormat,
        format!(
            "the image's entrypoint is built for another CPU architecture than the node's{}",
            arch.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
        ),
        ev,
        None,
    );
    if let Some(image) = &s.spec.image {
        f.about = About::Image(image.clone());
    }
    if let Some(a) = &arch {
        f.cause.evidence.push(Evidence::new(
            EvidenceKind::Node,
            format!("node/{}", node_name(s)),
            format!("architecture {a}"),
        ));
    }
    f.remedies.insert(
        0,
        Remedy::fix(
            CauseId::ExecFormat,
            format!(
                "build and push the image for linux/{} (or a multi-arch image)",
                arch.unwrap_or_else(|| "<node-arch>".into())
            ),
            Some(
                Cmd::new("docker", &["buildx", "build"])
                    .flag_value("--platform", "linux/amd64,linux/arm64")
                    .flag_value(
                        "-t",
                        match s.spec.image.as_deref() {
                            Some(i) => Arg::lit(i),
                            None => Arg::placeholder("image"),
                        },
                    )
                    .flag("--push")
                    .operand(".")
                    .into(),
            ),
        ),
    );
    f
}

fn fix_command(s: &Subject) -> Remedy {
    Remedy::new(
        None,
        RemedyKind::Debug,
        "look inside the image for the right path, in a debug copy that keeps the container alive",
        Some(debug_copy(s)),
    )
}

/// `unloop debug POD -n NS -c CONTAINER`.
fn debug_copy(s: &Subject) -> Script {
    Cmd::new("unloop", &["debug"])
        .operand(s.pod_name)
        .flag_value("-n", s.namespace)
        .flag_value("-c", s.container())
        .into()
}

fn finding(
    s: &Subject,
    id: CauseId,
    summary: String,
    ev: Evidence,
    extra: Option<Remedy>,
) -> Finding {
    let mut remedies: Vec<Remedy> = extra
        .into_iter()
        .map(|mut r| {
            r.for_cause = Some(id);
            r
        })
        .collect();
    remedies.push(retry_now(s, id));
    Finding {
        about: About::Container,
        cause: Cause::new(id, Confidence::High, summary).with(ev),
        remedies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn an_entrypoint_that_exits_0_under_restart_always() {
        let state = scenario("entrypoint-exits-0");
        let f = finding(&state, detect, CauseId::EntrypointExited);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "exit code 0"));
    }

    #[test]
    fn exit_127_is_a_command_not_found_and_126_not_executable() {
        let mut state = scenario("command-not-found");
        let f = finding(&state, detect, CauseId::CommandNotFound);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "migrate-db"));
        testing::last_run(&mut state).exit_code = 126;
        assert!(
            ids(&state, detect)
                .iter()
                .any(|(id, _)| *id == CauseId::NotExecutable)
        );
    }

    #[test]
    fn exit_139_is_a_segfault() {
        let mut state = scenario("segfault");
        let f = finding(&state, detect, CauseId::Segfault);
        assert!(cites(&f, "exit code 139"));
        testing::last_run(&mut state).exit_code = 1;
        assert!(ids(&state, detect).is_empty());
    }

    #[test]
    fn a_running_entrypoint_is_fine() {
        assert!(ids(&testing::healthy(), detect).is_empty());
    }
}
