#![allow(dead_code)]
//! Runs a rendered command line in a real `bash` where `kubectl`, `jq`, `diff`, `unloop` and
//! `docker` are shell functions that record their arguments (NUL-terminated), PATH leads nowhere,
//! and `command_not_found_handle` records any other command. The line runs in an empty temporary
//! directory; what it leaves there is reported.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use unloop_core::shell::Script;

/// The programs remedies run; each is a recording function in the harness.
pub const PROGRAMS: [&str; 5] = ["kubectl", "jq", "diff", "unloop", "docker"];

#[derive(Debug, PartialEq, Eq)]
pub struct Ran {
    /// Every recorded invocation, program first, sorted (the commands of a pipeline run at once).
    pub calls: Vec<Vec<String>>,
    /// Invocations of anything else: what must never happen.
    pub unexpected: Vec<Vec<String>>,
    /// Files left in the working directory.
    pub files: BTreeSet<String>,
    pub stdout: String,
    pub stderr: String,
    pub status: Option<i32>,
}

const PRELUDE: &str = r#"
__rec() { builtin printf '%s\0' "$#" "$@" >> "$__CALLS.$BASHPID"; }
command_not_found_handle() { builtin printf '%s\0' "$#" "$@" >> "$__OTHER.$BASHPID"; return 127; }
kubectl() { __rec kubectl "$@"; }
jq() { __rec jq "$@"; }
diff() { __rec diff "$@"; }
unloop() { __rec unloop "$@"; }
docker() { __rec docker "$@"; }
enable -n echo eval exec source . cd read set unset export alias kill trap type ulimit umask wait test [ true false pwd hash let local declare typeset readonly shift getopts command mapfile readarray compgen complete shopt bind times jobs fg bg disown suspend history help caller dirs pushd popd logout
"#;

pub fn run(line: &str) -> Ran {
    let work = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let calls = logs.path().join("calls");
    let other = logs.path().join("other");
    let script = format!(
        "{PRELUDE}\n__CALLS='{}'\n__OTHER='{}'\n{line}\n",
        calls.display(),
        other.display()
    );
    let out = Command::new(bash())
        .args(["--norc", "--noprofile", "-c", &script])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", "/nonexistent-unloop-test-path")
        .env("HOME", work.path())
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("bash runs");
    let mut calls = records(&calls);
    calls.sort();
    let files = std::fs::read_dir(work.path())
        .expect("read temp dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    Ran {
        calls,
        unexpected: records(&other),
        files,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code(),
    }
}

/// bash from the test's own PATH (the child gets a PATH that leads nowhere).
fn bash() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("bash"))
        .find(|p| p.is_file())
        .expect("bash on PATH")
}

/// The records of every process: each writes its own file (`PATH.PID`), since the commands of a
/// pipeline run at once and one process's long record may be written in several pieces.
fn records(path: &Path) -> Vec<Vec<String>> {
    let dir = path.parent().expect("records live in a directory");
    let prefix = format!(
        "{}.",
        path.file_name().expect("a file name").to_string_lossy()
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read records dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().flat_map(|f| records_of(f)).collect()
}

fn records_of(path: &Path) -> Vec<Vec<String>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let mut fields = bytes
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut out = Vec::new();
    while let Some(n) = fields.next() {
        let Ok(n) = n.parse::<usize>() else { break };
        out.push(fields.by_ref().take(n).collect());
    }
    out
}

/// What running `script` must record: every command's argv, sorted, and the redirect targets.
pub fn expected(script: &Script) -> (Vec<Vec<String>>, BTreeSet<String>) {
    let mut calls: Vec<Vec<String>> = script
        .steps
        .iter()
        .flat_map(|p| p.commands.iter().map(|a| a.texts()))
        .collect();
    calls.sort();
    let files = script
        .steps
        .iter()
        .filter_map(|p| p.stdout.clone())
        .collect();
    (calls, files)
}

/// Runs the rendered `script` and checks that exactly its argv ran, nothing else, and no file
/// but its redirect targets appeared. Returns a description of what went wrong.
pub fn check(script: &Script) -> Result<(), String> {
    let line = unloop_core::shell::render(script);
    if line.contains(['\n', '\r']) || line.chars().any(|c| c.is_control()) {
        return Err(format!("not one visible line: {line:?}"));
    }
    let ran = run(&line);
    let (calls, files) = expected(script);
    if ran.calls != calls
        || !ran.unexpected.is_empty()
        || ran.files != files
        || !ran.stdout.is_empty()
        || !ran.stderr.is_empty()
        || ran.status != Some(0)
    {
        return Err(format!(
            "line: {line}\nwanted calls {calls:?}\nwanted files {files:?}\nran {ran:#?}"
        ));
    }
    Ok(())
}
