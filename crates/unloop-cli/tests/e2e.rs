//! End to end against the live testbed cluster: every scenario diagnosed live, then captured
//! with `unloop snapshot` and diagnosed again from that fresh bundle. Built only with
//! `--features e2e`; `testbed/test-all.sh` starts the cluster, applies the scenarios and runs it.

mod support;

use std::process::Command;

use support::{Scenario, check, check_all, repo_root, scenarios, unloop};

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must point at the testbed (testbed/test-all.sh sets it)")
}

/// Re-arms a transient scenario (its state decays: a fixed cause stops crashing once the backoff
/// ends) and waits for it, so it is diagnosed inside its window.
fn rearm(s: &Scenario) -> Result<(), String> {
    let script = repo_root().join("testbed/scenarios.sh");
    for verb in ["apply", "wait"] {
        let st = Command::new("bash")
            .arg(&script)
            .arg(verb)
            .arg(&s.name)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("{}: scenarios.sh {verb} failed", s.name));
        }
    }
    Ok(())
}

fn diagnose_live(s: &Scenario) -> Result<(), String> {
    let kc = kubeconfig();
    let out = unloop(&[
        "diagnose",
        "--kubeconfig",
        &kc,
        "-n",
        &s.name,
        &s.expect.target,
        "-o",
        "json",
    ]);
    check(s, &out).map_err(|e| format!("live: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bundle = dir.path().join("b.json.gz");
    let snap = unloop(&[
        "snapshot",
        "--kubeconfig",
        &kc,
        "-n",
        &s.name,
        bundle.to_str().unwrap(),
    ]);
    if !snap.status.success() {
        return Err(format!(
            "{}: snapshot failed: {}",
            s.name,
            String::from_utf8_lossy(&snap.stderr)
        ));
    }
    let out = unloop(&[
        "diagnose",
        "--from",
        bundle.to_str().unwrap(),
        "-n",
        &s.name,
        &s.expect.target,
        "-o",
        "json",
    ]);
    check(s, &out).map_err(|e| format!("re-captured: {e}"))
}

#[test]
fn every_scenario_live_and_recaptured() {
    let all = scenarios();
    let (transient, steady): (Vec<&Scenario>, Vec<&Scenario>) =
        all.iter().partition(|s| s.expect.fixed);
    let mut results: Vec<Result<(), String>> = steady.iter().map(|s| diagnose_live(s)).collect();
    for s in transient {
        results.push(rearm(s).and_then(|()| diagnose_live(s)));
    }
    check_all(results);
}

#[test]
fn all_namespaces_finds_every_troubled_scenario_and_not_the_healthy_one() {
    let kc = kubeconfig();
    let out = unloop(&["diagnose", "--kubeconfig", &kc, "-A", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let namespaces: Vec<&str> = report["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["namespace"].as_str())
        .collect();
    for s in scenarios() {
        let found = namespaces.contains(&s.name.as_str());
        if s.expect.cause == "none" {
            assert!(!found, "{} is healthy but was diagnosed", s.name);
        } else if !s.expect.fixed {
            assert!(found, "{} was not found by -A", s.name);
        }
    }
}

#[test]
fn an_unreachable_cluster_is_one_clear_error_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    // A port on this machine where nothing listens: refused at once, no packet leaves the host.
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let out = unloop(&["diagnose", "--kubeconfig", kc.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with("error: cannot reach the Kubernetes API server at https://127.0.0.1:1/"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
