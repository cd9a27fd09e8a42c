//! Shared by the scenario tests (from captured bundles) and the e2e tests (live testbed): the
//! scenarios' `expect.yaml` and the check of unloop's JSON against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;

/// What a testbed scenario says unloop must conclude (testbed/scenarios/NAME/expect.yaml).
#[derive(Debug, Deserialize)]
pub struct Expect {
    pub target: String,
    pub cause: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    pub fixed: bool,
    /// A container the report lists as recovered (restarted, running steadily since).
    #[serde(default)]
    pub recovered: Option<String>,
    /// `--settle` for this scenario, in seconds (a recovered container: a short settle period
    /// keeps the testbed's wait short).
    #[serde(default)]
    pub settle: Option<u64>,
    /// A root several workloads of the scenario fail on: the scenario is diagnosed as a whole
    /// namespace (no target) and the report must name the root once, with these victims.
    #[serde(default)]
    pub shared_root: Option<SharedRootExpect>,
}

#[derive(Debug, Deserialize)]
pub struct SharedRootExpect {
    /// `Secret`, `ConfigMap`, `Service`, `Node`, `Image`, `Registry`.
    pub kind: String,
    pub name: String,
    /// `deploy/x`, sorted.
    pub victims: Vec<String>,
}

pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    pub expect: Expect,
}

impl Scenario {
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle.json.gz")
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The scenario in `dir` (a directory with expect.yaml; its name is the namespace).
pub fn load_scenario(dir: &Path) -> Scenario {
    let text = std::fs::read_to_string(dir.join("expect.yaml"))
        .unwrap_or_else(|e| panic!("{}/expect.yaml: {e}", dir.display()));
    let expect: Expect =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    Scenario {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        dir: dir.to_path_buf(),
        expect,
    }
}

/// Every scenario of the testbed, sorted by name.
pub fn scenarios() -> Vec<Scenario> {
    let dir = repo_root().join("testbed/scenarios");
    let mut out: Vec<Scenario> = std::fs::read_dir(&dir)
        .expect("testbed/scenarios exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("expect.yaml").is_file())
        .map(|p| load_scenario(&p))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 17,
        "expected the whole scenario catalog, found {}",
        out.len()
    );
    out
}

/// The node-pressure scenario (testbed/node-pressure, made by testbed/pressure.sh): kept apart from
/// the catalog because it disturbs the whole node.
pub fn pressure_scenario() -> Scenario {
    load_scenario(&repo_root().join("testbed/node-pressure"))
}

pub fn unloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unloop"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("unloop runs")
}

/// `unloop diagnose -n NAME TARGET -o json` for a scenario, with `source` saying where the state
/// comes from: `["--from", BUNDLE]` or `["--kubeconfig", FILE]`.
pub fn diagnose_json(s: &Scenario, source: &[&str]) -> Output {
    let mut args = vec!["diagnose"];
    args.extend_from_slice(source);
    args.extend(["-n", &s.name]);
    if s.expect.shared_root.is_none() {
        args.push(&s.expect.target);
    }
    args.extend(["-o", "json"]);
    let settle = s.expect.settle.map(|n| format!("{n}s"));
    if let Some(settle) = &settle {
        args.extend(["--settle", settle]);
    }
    unloop(&args)
}

/// Checks unloop's JSON report for one scenario; returns a description of what is wrong.
pub fn check(s: &Scenario, out: &Output) -> Result<(), String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("{}: output is not JSON ({e}); stderr: {stderr}", s.name))?;
    let diags = report["diagnoses"].as_array().cloned().unwrap_or_default();
    if s.expect.cause == "none" {
        if !diags.is_empty() || code != Some(0) {
            return Err(format!(
                "{}: expected no finding (exit 0), got exit {code:?} and {} diagnoses",
                s.name,
                diags.len()
            ));
        }
        if let Some(c) = &s.expect.recovered {
            let listed = report["recovered"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| {
                    r["container"].as_str() == Some(c.as_str())
                        && r["lastExit"]["finishedAt"].is_string()
                });
            if !listed {
                return Err(format!(
                    "{}: container {c} is not listed as recovered (with its last exit): {}",
                    s.name, report["recovered"]
                ));
            }
        }
        if report["podsScanned"].as_u64().unwrap_or(0) == 0 {
            return Err(format!(
                "{}: no pod of {} was looked at",
                s.name, s.expect.target
            ));
        }
        return Ok(());
    }
    if code != Some(1) {
        return Err(format!(
            "{}: expected exit 1 (trouble found), got {code:?}; stderr: {stderr}",
            s.name
        ));
    }
    let d = diags
        .first()
        .ok_or_else(|| format!("{}: no diagnosis", s.name))?;
    let top = &d["causes"][0];
    let id = top["id"].as_str().unwrap_or_default();
    if id != s.expect.cause {
        let all: Vec<&str> = d["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str())
            .collect();
        return Err(format!(
            "{}: expected top cause {}, got {id} (all: {all:?})",
            s.name, s.expect.cause
        ));
    }
    let mut said = top["summary"].as_str().unwrap_or_default().to_string();
    for e in top["evidence"].as_array().into_iter().flatten() {
        said.push('\n');
        said.push_str(e["source"].as_str().unwrap_or_default());
        said.push(' ');
        said.push_str(e["text"].as_str().unwrap_or_default());
    }
    for want in &s.expect.evidence {
        if !said.contains(want.as_str()) {
            return Err(format!(
                "{}: evidence does not mention {want:?}:\n{said}",
                s.name
            ));
        }
    }
    if d["remedies"].as_array().is_none_or(|r| r.is_empty()) {
        return Err(format!("{}: no remedy", s.name));
    }
    if let Some(want) = &s.expect.shared_root {
        check_shared_root(s, want, &report, &diags)?;
    }
    if s.expect.fixed && !said.contains("exists now") {
        return Err(format!(
            "{}: the cause is fixed but unloop does not say so:\n{said}",
            s.name
        ));
    }
    Ok(())
}

/// Runs `check` over many scenarios and fails once, listing every mismatch.
pub fn check_all(results: Vec<Result<(), String>>) {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The report names the scenario's shared root once, with every victim, and each victim's own
/// diagnosis gives the scenario's cause.
fn check_shared_root(
    s: &Scenario,
    want: &SharedRootExpect,
    report: &serde_json::Value,
    diags: &[serde_json::Value],
) -> Result<(), String> {
    let roots = report["sharedRoots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let [root] = roots.as_slice() else {
        return Err(format!(
            "{}: expected one shared root, got {}",
            s.name, report["sharedRoots"]
        ));
    };
    let (kind, name) = (root["root"]["kind"].as_str(), root["root"]["name"].as_str());
    if kind != Some(want.kind.as_str())
        || (name.is_some() && name != Some(want.name.as_str()))
        || root["cause"].as_str() != Some(s.expect.cause.as_str())
    {
        return Err(format!("{}: shared root is {root}", s.name));
    }
    let mut victims: Vec<&str> = root["victims"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["workload"].as_str())
        .collect();
    victims.sort_unstable();
    if victims != want.victims {
        return Err(format!(
            "{}: shared root victims {victims:?}, expected {:?}",
            s.name, want.victims
        ));
    }
    for d in diags {
        if d["causes"][0]["id"].as_str() != Some(s.expect.cause.as_str()) {
            return Err(format!(
                "{}: {} gives {} instead of {}",
                s.name, d["workload"], d["causes"][0]["id"], s.expect.cause
            ));
        }
    }
    Ok(())
}

/// The end of a guard that puts the node back as it was (a kubelet configuration a live test
/// changed): a failure fails the test, or, when the test is failing already, is printed (a second
/// panic would abort and hide the first).
pub fn restored(undo: Result<(), String>, left: &str) {
    let Err(e) = undo else { return };
    let why = format!("{e}: {left}");
    if std::thread::panicking() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{why}");
        }
    } else {
        panic!("{why}");
    }
}
