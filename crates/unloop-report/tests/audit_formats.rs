//! The output formats as their readers see them: the human report (snapshots), SARIF validated
//! against the official SARIF 2.1.0 JSON schema, JUnit XML, JSON.

#[path = "../../unloop-audit/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{audit_path, audit_text, manifests_dir};
use unloop_audit::{AuditConfig, Severity};
use unloop_report::audit::{Format, RenderOptions, render};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(name)
        .join("manifest.yaml")
}

/// Paths in outputs relative to the repository, as a user running from its root sees them.
fn relative(text: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../")
        .display()
        .to_string();
    text.replace(&format!("file://{root}"), "")
        .replace(&root, "")
}

#[test]
fn human_report_reads_as_a_user_expects() {
    let report = audit_path(&scenario("liveness-slow-start"), &AuditConfig::default());
    let text = relative(&render(&report, Format::Human, &RenderOptions::default()));
    insta::assert_snapshot!(text, @r"
    deploy/search -n liveness-slow-start  testbed/scenarios/liveness-slow-start/manifest.yaml:23
      warning startup-probe-missing (container search)
              livenessProbe (httpGet /healthz:8080, initialDelaySeconds 5, periodSeconds 5, failureThreshold 3, timeoutSeconds 1 (budget 20s)) runs from start-up and there is no startupProbe
              why: without a startupProbe the livenessProbe runs from the first second, so a slow start is killed and restarted over and over (CrashLoopBackOff)
              fix: add a startupProbe with the same check that allows 60s (6 x 10s); liveness checks begin once it passes
                containers:
                - name: search
                  startupProbe:
                    failureThreshold: 6
                    httpGet:
                      path: /healthz
                      port: 8080
                    periodSeconds: 10
      warning liveness-budget-too-short (container search)
              livenessProbe allows 20s to start (5 + 5 x 3): under the 30s floor
              why: the probe kills the container if it is not up within initialDelaySeconds + periodSeconds x failureThreshold; a budget shorter than the start-up time is a crash loop
              fix: add a startupProbe with the same check that allows 60s (6 x 10s); liveness checks begin once it passes
                containers:
                - name: search
                  startupProbe:
                    failureThreshold: 6
                    httpGet:
                      path: /healthz
                      port: 8080
                    periodSeconds: 10

    2 warnings in 1 of 1 workload (2 objects read; not audited: Namespace 1)
    ");
    let healthy = audit_path(&scenario("healthy"), &AuditConfig::default());
    insta::assert_snapshot!(render(&healthy, Format::Human, &RenderOptions::default()), @"no findings in 1 workload (4 objects read; not audited: Namespace 1, Service 1)");
}

/// The official SARIF 2.1.0 schema, from the npm package that ships it (@microsoft/jest-sarif,
/// lib/schemas/sarif-2.1.0-rtm.5.json); never committed. Plain `cargo test` uses no network:
/// the schema is UNLOOP_SARIF_SCHEMA=FILE, or the copy cached in the temp dir by an earlier run
/// with UNLOOP_FETCH_SARIF_SCHEMA=1, which fetches it with `npm pack` (testbed/test-all.sh sets
/// it). None when there is none.
fn sarif_schema() -> Option<serde_json::Value> {
    let path = match std::env::var_os("UNLOOP_SARIF_SCHEMA") {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = std::env::temp_dir().join("unloop-test-sarif-schema");
            let file = dir.join("package/lib/schemas/sarif-2.1.0-rtm.5.json");
            if !file.is_file() && std::env::var_os("UNLOOP_FETCH_SARIF_SCHEMA").is_some() {
                fetch_sarif_schema(&dir)?;
            }
            file
        }
    };
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str(&text).ok()
}

/// `npm pack` the package into `dir` and unpack it there (network: opt-in only).
fn fetch_sarif_schema(dir: &Path) -> Option<()> {
    std::fs::create_dir_all(dir).ok()?;
    let packed = Command::new("npm")
        .args([
            "pack",
            "@microsoft/jest-sarif@1.0.0-beta.0",
            "--silent",
            "--pack-destination",
        ])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let tarball = String::from_utf8_lossy(&packed.stdout)
        .trim()
        .lines()
        .last()?
        .to_string();
    Command::new("tar")
        .arg("-xzf")
        .arg(dir.join(tarball))
        .arg("-C")
        .arg(dir)
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| ())
}

fn fix_language_patterns(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s == "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$" => {
            *s = "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$".into()
        }
        serde_json::Value::Object(m) => m.values_mut().for_each(fix_language_patterns),
        serde_json::Value::Array(a) => a.iter_mut().for_each(fix_language_patterns),
        _ => {}
    }
}

#[test]
// The skip notice goes to stderr so an offline run says what it did not check.
#[allow(clippy::print_stderr)]
fn sarif_validates_against_the_official_schema() {
    let Some(mut schema) = sarif_schema() else {
        assert!(
            std::env::var_os("UNLOOP_FETCH_SARIF_SCHEMA").is_none()
                && std::env::var_os("UNLOOP_SARIF_SCHEMA").is_none(),
            "could not read or fetch the SARIF 2.1.0 schema (`npm pack @microsoft/jest-sarif`)"
        );
        eprintln!(
            "skipped: no SARIF 2.1.0 schema; set UNLOOP_SARIF_SCHEMA=FILE, or UNLOOP_FETCH_SARIF_SCHEMA=1 to fetch it with npm (network)"
        );
        return;
    };
    // rtm.5 is the schema of the final 2.1.0 text (schemastore publishes it as sarif-2.1.0).
    let title = schema
        .get("title")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    assert!(title.contains("SARIF) Version 2.1.0"), "{title}");
    // rtm.5 has a stray `]` in the `language` patterns (run, toolComponent), which a strict
    // regex engine refuses to compile; the published 2.1.0 schema reads
    // ^[a-zA-Z]{2}(-[a-zA-Z]{2})?$. unloop never writes `language`, so nothing checked changes.
    fix_language_patterns(&mut schema);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&schema)
        .expect("the schema compiles");
    // Every manifest check's failing file, a report with suppressions, and one with nothing.
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(manifests_dir())
        .expect("manifests")
        .flatten()
    {
        if entry.path().join("fail.yaml").is_file() {
            reports.push(audit_path(
                &entry.path().join("fail.yaml"),
                &AuditConfig::default(),
            ));
        }
    }
    reports.push(audit_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {unloop.dev/ignore: all}}\nspec: {containers: [{name: c, image: nginx}]}\n",
        &AuditConfig::default(),
    ));
    reports.push(audit_path(&scenario("healthy"), &AuditConfig::default()));
    for report in &reports {
        let sarif: serde_json::Value =
            serde_json::from_str(&render(report, Format::Sarif, &RenderOptions::default()))
                .expect("SARIF is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&sarif)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "SARIF does not validate: {errors:#?}");
    }
    // The validator does reject what the format forbids.
    let mut broken: serde_json::Value = serde_json::from_str(&render(
        &reports[0],
        Format::Sarif,
        &RenderOptions::default(),
    ))
    .expect("json");
    broken["runs"][0]["results"][0]["level"] = "critical".into();
    assert!(
        validator.iter_errors(&broken).next().is_some(),
        "an invalid level passed validation"
    );
    let suppressed: serde_json::Value = serde_json::from_str(&render(
        &reports[reports.len() - 2],
        Format::Sarif,
        &RenderOptions::default(),
    ))
    .expect("json");
    assert_eq!(
        suppressed["runs"][0]["results"][0]["suppressions"][0]["kind"],
        "inSource"
    );
}

#[test]
fn sarif_results_point_at_file_line_and_object() {
    let report = audit_path(&scenario("missing-secret"), &AuditConfig::default());
    let sarif: serde_json::Value = serde_json::from_str(&relative(&render(
        &report,
        Format::Sarif,
        &RenderOptions::default(),
    )))
    .expect("json");
    let result = &sarif["runs"][0]["results"][0];
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .map(Vec::len);
    assert_eq!(rules, Some(unloop_audit::CheckId::ALL.len()));
    let index = result["ruleIndex"].as_u64().unwrap_or(u64::MAX) as usize;
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"][index]["id"],
        result["ruleId"]
    );
    insta::assert_json_snapshot!(result["locations"], @r#"
    [
      {
        "logicalLocations": [
          {
            "fullyQualifiedName": "missing-secret/Deployment/payments/payments",
            "kind": "object",
            "name": "payments"
          }
        ],
        "physicalLocation": {
          "artifactLocation": {
            "uri": "testbed/scenarios/missing-secret/manifest.yaml"
          },
          "region": {
            "startLine": 22
          }
        }
      }
    ]
    "#);
    assert_eq!(result["ruleId"], "unresolved-secret");
    assert_eq!(result["level"], "error");
}

#[test]
fn junit_fails_what_fails_the_run() {
    let report = audit_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers:\n  - name: c\n    image: \"a:1\"\n    resources: {requests: {cpu: 10m, memory: 64Mi}, limits: {cpu: 1, memory: 64Mi}}\n    env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: X}}}]\n",
        &AuditConfig::default(),
    );
    let opts = RenderOptions {
        fail_on: Severity::Error,
        ..Default::default()
    };
    let xml = render(&report, Format::Junit, &opts);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"unloop audit\" tests=\"20\" failures=\"1\" errors=\"0\">"), "{xml}");
    assert!(xml.contains("<testcase classname=\"shop/pod/p\" name=\"unresolved-configmap\" file=\"manifest.yaml\" line=\"1\">\n      <failure type=\"error\" message=\"env X names ConfigMap cfg, which is not in the given manifests\">"), "{xml}");
    // cpu-limit is info: below --fail-on, reported but passing.
    assert!(xml.contains("name=\"cpu-limit\" file=\"manifest.yaml\" line=\"1\">\n      <system-out>info: limits.cpu 1 throttles"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 20);
    assert_eq!(xml.matches("</testsuite>").count(), 1);
}

#[test]
fn json_summarises_for_programs() {
    let report = audit_path(&scenario("jvm-heap"), &AuditConfig::default());
    let json: serde_json::Value =
        serde_json::from_str(&render(&report, Format::Json, &RenderOptions::default()))
            .expect("json");
    assert_eq!(json["kind"], "AuditReport");
    assert_eq!(json["summary"]["errors"], 1);
    assert_eq!(json["summary"]["failed"], true);
    assert_eq!(json["findings"][0]["check"], "jvm-heap-over-limit");
    assert_eq!(json["findings"][0]["object"]["namespace"], "jvm-heap");
    assert_eq!(json["findings"][0]["location"]["line"], 23);
    assert!(
        json["findings"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("OutOfMemoryError"))
    );
    assert!(
        json["findings"][0]["fix"]["yaml"]
            .as_str()
            .is_some_and(|y| y.contains("memory: 1Gi"))
    );
}

#[test]
fn secret_values_never_reach_the_output() {
    let dir = manifests_dir();
    for file in [
        "unresolved-secret/pass.yaml",
        "unresolved-key/pass.yaml",
        "config-file-missing/fail.yaml",
    ] {
        let r = audit_path(&dir.join(file), &AuditConfig::default());
        for format in [Format::Human, Format::Json, Format::Sarif, Format::Junit] {
            let text = render(&r, format, &Default::default());
            for value in ["not-a-real-one", "aHVudGVyMg", "Y2VydA", "a2V5"] {
                assert!(!text.contains(value), "{file} {format:?} leaks {value}");
            }
        }
    }
}
