//! Entrypoints that cannot keep a long-running container alive: a command that backgrounds its
//! process and returns, or one that only prints and returns. Both end in exit 0 (Completed) and a
//! crash loop under restartPolicy Always; diagnosis sees the same thing after the fact.

use crate::yaml::Yaml;
use unloop_core::restart::Because;

use super::Subject;
use crate::check::{CheckId, Finding, Fix};

const SHELLS: [&str; 6] = ["sh", "bash", "ash", "dash", "zsh", "ksh"];

/// Commands that do their work and return at once.
const ONE_SHOT: [&str; 17] = [
    "echo", "printf", "true", "false", ":", "date", "env", "printenv", "hostname", "whoami", "id",
    "ls", "pwd", "uname", "exit", "cat", "touch",
];

/// Flags and commands that put a server in the background (daemon mode) and return.
const DAEMON_WORDS: [&str; 6] = [
    "--daemon",
    "--daemonize",
    "-daemon",
    "--detach",
    "--fork",
    "start-stop-daemon",
];

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The script of `sh -c SCRIPT` (flags such as `-ec` included), if the command is one.
fn shell_script(argv: &[&str]) -> Option<(usize, String)> {
    let first = argv.first()?;
    if !SHELLS.contains(&basename(first)) {
        return None;
    }
    let i = argv
        .iter()
        .position(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'))?;
    argv.get(i + 1).map(|s| (i + 1, s.to_string()))
}

/// The last simple command of a script, with a trailing `&` kept: `a && b & ` gives `b &`.
fn last_statement(script: &str) -> String {
    let trimmed = script.trim();
    let mut cut = 0;
    let bytes = trimmed.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Separators are ASCII: a byte inside a multi-byte character is never one, and slicing
        // there would split the character.
        if !trimmed.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &trimmed[i..];
        let sep = if rest.starts_with("&&") || rest.starts_with("||") {
            2
        } else if rest.starts_with(';') || rest.starts_with('\n') {
            1
        } else {
            0
        };
        if sep > 0 && !trimmed[i + sep..].trim().is_empty() {
            cut = i + sep;
            i += sep;
            continue;
        }
        // A `&` followed by more commands also separates them.
        // (`>&`, `<&` and `&>` are redirections, not separators.)
        let redirect =
            i > 0 && matches!(bytes[i - 1], b'>' | b'<' | b'&') || rest.starts_with("&>");
        if rest.starts_with('&')
            && !rest.starts_with("&&")
            && !redirect
            && !trimmed[i + 1..].trim().is_empty()
        {
            cut = i + 1;
        }
        i += 1;
    }
    trimmed[cut..].trim().to_string()
}

fn backgrounded(statement: &str) -> bool {
    statement.ends_with('&') && !statement.ends_with("&&") && !statement.ends_with(">&")
}

/// Why a statement (or an argv) runs its server in the background, if it does.
fn daemon_mode(words: &[&str], text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if let Some(w) = words.iter().find(|w| DAEMON_WORDS.contains(w)) {
        return Some(format!("{w} puts the server in the background"));
    }
    if lower.contains("daemon on;") {
        return Some("nginx's `daemon on;` forks into the background".into());
    }
    if lower.contains("daemonize yes") {
        return Some("`daemonize yes` forks into the background".into());
    }
    let starts_service = match words {
        ["service", _, "start", ..] | ["systemctl", "start", ..] => true,
        [init, "start", ..] => {
            init.starts_with("/etc/init.d/") || *init == "apachectl" || *init == "pg_ctl"
        }
        _ => false,
    };
    starts_service.then(|| format!("`{}` starts a daemon and returns", words.join(" ")))
}

pub(crate) fn check(s: &Subject, out: &mut Vec<Finding>) {
    // What the kubelet does after exit 0 decides, not the kind of workload: a Job's sidecar runs
    // for the pod's life, and a container's own restartPolicy overrides the pod's either way.
    if !s.long_running() {
        return;
    }
    let argv: Vec<&str> = s
        .container
        .command
        .iter()
        .flatten()
        .chain(s.container.args.iter().flatten())
        .map(String::as_str)
        .collect();
    if argv.is_empty() {
        return;
    }
    let (who, kind) = runs_forever_as(s);
    // Quoted only in findings: redaction runs a dozen patterns, too dear for every container.
    let shown = || s.command_line().unwrap_or_default();
    match shell_script(&argv) {
        Some((index, script)) => {
            let last = last_statement(&script);
            let words: Vec<&str> = last.trim_end_matches('&').split_whitespace().collect();
            let first = words
                .iter()
                .copied()
                .find(|w| *w != "exec" && !w.contains('='))
                .unwrap_or_default();
            let reason = if backgrounded(&last) {
                Some(format!(
                    "its last command `{last}` runs in the background (trailing &) and the shell then exits"
                ))
            } else if first == "nohup" {
                Some(format!("its last command `{last}` detaches with nohup"))
            } else {
                daemon_mode(&words, &last)
            };
            if let Some(reason) = reason {
                let fixed = foreground(&script);
                let mut new_argv: Vec<Yaml> = argv.iter().map(|a| Yaml::from(*a)).collect();
                new_argv[index] = fixed.clone().into();
                out.push(s.finding(
                    CheckId::EntrypointBackgrounds,
                    format!("`{}`: {reason}, so the {who} exits and is restarted forever", shown()),
                    Fix::with_yaml(
                        "keep the server in the foreground as the shell's last command, with exec (and daemon mode off)",
                        s.patch(replace_argv(s, Yaml::Seq(new_argv))),
                    ),
                ));
            } else if ONE_SHOT.contains(&basename(first)) {
                out.push(exits(
                    s,
                    &shown(),
                    &kind,
                    &format!("its last command `{last}` returns at once"),
                ));
            }
        }
        None => {
            if let Some(reason) = daemon_mode(&argv, &argv.join(" ")) {
                out.push(s.finding(
                    CheckId::EntrypointBackgrounds,
                    format!("`{}`: {reason}, so the {who} exits and is restarted forever", shown()),
                    Fix::text("run the server in the foreground: drop the daemon flag (nginx: -g 'daemon off;', redis: --daemonize no, mongod: no --fork)"),
                ));
            } else if ONE_SHOT.contains(&basename(argv[0])) {
                out.push(exits(
                    s,
                    &shown(),
                    &kind,
                    &format!("`{}` returns at once", basename(argv[0])),
                ));
            }
        }
    }
}

/// How messages name what must not finish: the container (`Deployment's container`, `sidecar`,
/// `container (its own restartPolicy Always)`) and what must keep running (`Deployment`, ...).
fn runs_forever_as(s: &Subject) -> (String, String) {
    match s.exit_zero_because() {
        Because::Sidecar => ("sidecar".into(), "sidecar".into()),
        Because::Rule { index, .. } => {
            let c = format!("container (its restartPolicyRules[{index}] restart exit 0)");
            (c.clone(), c)
        }
        Because::ContainerPolicy { policy, .. } => {
            let c = format!("container (its own restartPolicy {})", policy.as_str());
            (c.clone(), c)
        }
        Because::PodPolicy(_) | Because::InitContainer(_) => {
            let kind = s.workload.kind_name();
            (format!("{kind}'s container"), kind.into())
        }
    }
}

fn exits(s: &Subject, shown: &str, kind: &str, reason: &str) -> Finding {
    s.finding(
        CheckId::EntrypointExits,
        format!("`{shown}`: {reason}; a {kind} must keep running in the foreground, so it is restarted forever (exit 0, Completed, CrashLoopBackOff)"),
        Fix::with_yaml(
            "run the server itself as the command (the image's entrypoint, or its binary in the foreground); one-shot work belongs in a Job",
            s.patch(replace_argv(s, Yaml::Seq(vec!["/path/to/server".into()]))),
        ),
    )
}

/// Fields that replace the whole command line; `args: null` removes args in a merge patch.
fn replace_argv(s: &Subject, command: Yaml) -> Vec<(&'static str, Yaml)> {
    let mut fields = vec![("command", command)];
    if s.container.args.is_some() {
        fields.push(("args", Yaml::Null));
    }
    fields
}

/// The script with its last command in the foreground: no trailing `&`, no nohup, and `exec`
/// so the server is PID 1 and receives SIGTERM.
fn foreground(script: &str) -> String {
    let trimmed = script.trim_end();
    let last = last_statement(trimmed);
    let head = trimmed.strip_suffix(last.as_str()).unwrap_or_default();
    let mut cmd = last.trim_end_matches('&').trim().to_string();
    for prefix in ["exec ", "nohup "] {
        while let Some(rest) = cmd.strip_prefix(prefix) {
            cmd = rest.trim_start().to_string();
        }
    }
    // Output redirected to nohup.out or /dev/null would hide the logs: send it to stdout.
    for redirect in [
        " > /dev/null 2>&1",
        " >/dev/null 2>&1",
        " > nohup.out 2>&1",
        " 2>&1",
    ] {
        if let Some(rest) = cmd.strip_suffix(redirect) {
            cmd = rest.to_string();
        }
    }
    for flag in DAEMON_WORDS {
        cmd = cmd.replace(&format!(" {flag}"), "");
    }
    format!("{head}exec {cmd}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_statements() {
        assert_eq!(last_statement("a && b &"), "b &");
        assert_eq!(
            last_statement("migrate; server --port 80 &\n"),
            "server --port 80 &"
        );
        assert_eq!(last_statement("server & echo started"), "echo started");
        assert_eq!(last_statement("exec server"), "exec server");
    }

    /// Multi-byte text (2, 3 and 4 bytes a character) at every position of scripts that hit each
    /// branch: separators, redirections and a trailing `&`.
    #[test]
    fn multibyte_text_anywhere() {
        let scripts = [
            "migrate && nohup /app/server > /dev/null 2>&1 &",
            "a; b || c &>/dev/null & d",
            "server --daemon\necho ok",
        ];
        for script in scripts {
            for ch in ["é", "€", "😀", "\u{202e}"] {
                let positions: Vec<usize> = (0..=script.len()).collect();
                for at in positions {
                    let mut s = script.to_string();
                    s.insert_str(at, ch);
                    let last = last_statement(&s);
                    assert!(s.contains(last.as_str()), "{s:?} -> {last:?}");
                    let fg = foreground(&s);
                    assert!(fg.contains("exec "), "{s:?} -> {fg:?}");
                }
            }
        }
        assert_eq!(
            last_statement("echo é && ünïcödé-server &"),
            "ünïcödé-server &"
        );
        assert_eq!(foreground("echo ø; nohup srv-ø &"), "echo ø; exec srv-ø");
    }

    #[test]
    fn foreground_scripts() {
        assert_eq!(
            foreground("migrate && nohup /app/server > /dev/null 2>&1 &"),
            "migrate && exec /app/server"
        );
        assert_eq!(foreground("/app/server --daemon"), "exec /app/server");
    }
}
