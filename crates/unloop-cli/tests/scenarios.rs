//! Every testbed scenario, diagnosed offline from the bundle captured on the real testbed cluster
//! (`testbed/capture.sh`). The same expectations are checked live by tests/e2e.rs.

mod support;

use support::{check, check_all, diagnose_json, pressure_scenario, scenarios, unloop};

#[test]
fn every_scenario_bundle_gives_the_expected_cause() {
    let results = scenarios()
        .iter()
        .map(|s| {
            if !s.bundle().is_file() {
                return Err(format!(
                    "{}: no captured bundle (run testbed/capture.sh)",
                    s.name
                ));
            }
            let bundle = s.bundle();
            let out = diagnose_json(s, &["--from", bundle.to_str().unwrap()]);
            check(s, &out)
        })
        .collect();
    check_all(results);
}

/// The pod the kubelet evicted under real memory pressure (testbed/pressure.sh), from its bundle.
#[test]
fn an_eviction_under_node_pressure() {
    let s = pressure_scenario();
    let bundle = s.bundle();
    let out = diagnose_json(&s, &["--from", bundle.to_str().unwrap()]);
    check(&s, &out).unwrap_or_else(|e| panic!("{e}"));
    let human = unloop(&[
        "diagnose",
        "--from",
        bundle.to_str().unwrap(),
        "--color",
        "never",
    ]);
    insta::assert_snapshot!(s.name.clone(), String::from_utf8_lossy(&human.stdout));
}

/// The human report for each scenario, as a person reads it at 3 a.m. Review changes with
/// `cargo insta review`.
#[test]
fn human_reports() {
    for s in scenarios().iter().filter(|s| s.bundle().is_file()) {
        let bundle = s.bundle();
        let out = unloop(&[
            "diagnose",
            "--from",
            bundle.to_str().unwrap(),
            "-n",
            &s.name,
            "--color",
            "never",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        insta::assert_snapshot!(s.name.clone(), text);
    }
}

#[test]
fn markdown_and_yaml_carry_the_same_verdict() {
    let s = scenarios()
        .into_iter()
        .find(|s| s.name == "oom-limit")
        .expect("oom-limit scenario");
    let bundle = s.bundle();
    let b = bundle.to_str().unwrap();
    let md = String::from_utf8_lossy(&unloop(&["diagnose", "--from", b, "-o", "markdown"]).stdout)
        .into_owned();
    assert!(
        md.contains("## deploy/worker in `oom-limit`: oom-limit-too-low"),
        "{md}"
    );
    assert!(
        md.contains("```sh\n  kubectl set resources deploy/worker"),
        "{md}"
    );
    let yaml: serde_json::Value =
        serde_saphyr::from_slice(&unloop(&["diagnose", "--from", b, "-o", "yaml"]).stdout).unwrap();
    assert_eq!(
        yaml["diagnoses"][0]["causes"][0]["id"].as_str(),
        Some("oom-limit-too-low")
    );
    assert_eq!(yaml["schemaVersion"].as_u64(), Some(1));
}
