//! The JSON Schemas of `-o json`: the shipped files are what the types generate, and they are
//! strict enough to catch a renamed or missing field. (Every JSON report the test binary writes is
//! also checked against its schema by the renderer itself: `unloop_report::schema`.)

mod support;

use support::{repo_root, unloop};
use unloop_report::schema::{Kind, check};

#[test]
fn the_shipped_schemas_are_the_ones_the_types_generate() {
    for (kind, arg) in [(Kind::Diagnose, "diagnose"), (Kind::Audit, "audit")] {
        let out = unloop(&["schema", arg]);
        assert!(out.status.success());
        let printed = String::from_utf8(out.stdout).unwrap();
        let shipped = std::fs::read_to_string(repo_root().join(kind.path())).unwrap();
        assert_eq!(
            printed,
            shipped,
            "{} is stale: unloop schema {arg} > {}",
            kind.path(),
            kind.path()
        );
        let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}

fn json(args: &[&str]) -> String {
    let out = unloop(args);
    String::from_utf8(out.stdout).unwrap()
}

/// `f` applied to a copy of `json`, written back as text.
fn edited(json: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    f(&mut v);
    v.to_string()
}

fn rename(o: &mut serde_json::Value, from: &str, to: &str) {
    let m = o.as_object_mut().unwrap();
    let v = m.remove(from).unwrap_or_else(|| panic!("no {from}"));
    m.insert(to.into(), v);
}

#[test]
fn a_diagnose_report_with_a_field_removed_or_renamed_fails_its_schema() {
    let bundle = repo_root().join("testbed/scenarios/missing-env-var/bundle.json.gz");
    let text = json(&["diagnose", "--from", bundle.to_str().unwrap(), "-o", "json"]);
    assert_eq!(check(Kind::Diagnose, &text), Ok(()));
    let no_workload = edited(&text, |v| {
        v["diagnoses"][0]
            .as_object_mut()
            .unwrap()
            .remove("workload");
    });
    let err = check(Kind::Diagnose, &no_workload).unwrap_err();
    assert!(err.contains("\"workload\" is a required property"), "{err}");
    let renamed = edited(&text, |v| {
        rename(&mut v["diagnoses"][0]["causes"][0], "summary", "summry")
    });
    assert!(check(Kind::Diagnose, &renamed).is_err());
    let not_a_workload = edited(&text, |v| v["diagnoses"][0]["workload"] = "api".into());
    assert!(check(Kind::Diagnose, &not_a_workload).is_err());
    let unknown_cause = edited(&text, |v| {
        v["diagnoses"][0]["causes"][0]["id"] = "gremlins".into()
    });
    assert!(check(Kind::Diagnose, &unknown_cause).is_err());
}

#[test]
fn an_audit_report_with_a_field_removed_or_renamed_fails_its_schema() {
    let manifest = repo_root().join("testbed/scenarios/jvm-heap/manifest.yaml");
    let text = json(&["audit", manifest.to_str().unwrap(), "-o", "json"]);
    assert_eq!(check(Kind::Audit, &text), Ok(()));
    let no_failed = edited(&text, |v| {
        v["summary"].as_object_mut().unwrap().remove("failed");
    });
    let err = check(Kind::Audit, &no_failed).unwrap_err();
    assert!(err.contains("\"failed\" is a required property"), "{err}");
    let renamed = edited(&text, |v| rename(&mut v["findings"][0], "message", "msg"));
    assert!(check(Kind::Audit, &renamed).is_err());
    let other_kind = edited(&text, |v| v["kind"] = "Report".into());
    assert!(check(Kind::Audit, &other_kind).is_err());
}
