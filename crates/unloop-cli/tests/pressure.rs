//! Real node pressure on the live testbed (testbed/pressure.sh): the kubelet, restarted with an
//! eviction threshold the node cannot meet, reports MemoryPressure and evicts the scenario's pod.
//! `unloop diagnose` must name node pressure with the eviction as evidence, and `unloop audit --live`
//! must flag the node. Disturbs the whole node, so test-all.sh runs it after the other e2e tests;
//! the kubelet's own configuration is restored whatever happens.

mod support;

use std::process::Command;

use support::{check, diagnose_json, pressure_scenario, repo_root, unloop};

fn pressure(verb: &str) -> Result<(), String> {
    let st = Command::new("bash")
        .arg(repo_root().join("testbed/pressure.sh"))
        .arg(verb)
        .status()
        .map_err(|e| e.to_string())?;
    st.success()
        .then_some(())
        .ok_or_else(|| format!("testbed/pressure.sh {verb} failed"))
}

/// Turns the pressure off when dropped, even when an assertion failed.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        support::restored(
            pressure("off"),
            "the kubelet may still run with the pressure configuration",
        );
    }
}

#[test]
fn an_eviction_under_memory_pressure_is_diagnosed_and_the_node_flagged() {
    let kc = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must point at the testbed (testbed/test-all.sh sets it)");
    let s = pressure_scenario();
    let _restore = Restore;
    pressure("on").expect("node pressure and an eviction");

    let out = diagnose_json(&s, &["--kubeconfig", &kc]);
    check(&s, &out).unwrap_or_else(|e| panic!("live: {e}"));

    let human = unloop(&[
        "diagnose",
        "--kubeconfig",
        &kc,
        "-n",
        &s.name,
        "--color",
        "never",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("evicted") && text.contains("MemoryPressure"),
        "{text}"
    );

    let audit = unloop(&[
        "audit",
        "--live",
        "--kubeconfig",
        &kc,
        "-n",
        &s.name,
        "-o",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap_or_else(|e| {
        panic!(
            "audit output is not JSON ({e}): {}",
            String::from_utf8_lossy(&audit.stderr)
        )
    });
    let flagged = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| {
            f["check"] == "node-pressure"
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("MemoryPressure"))
        });
    assert!(flagged, "no node-pressure finding: {report:#}");
}
