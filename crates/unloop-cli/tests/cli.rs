//! The binary's contract with its user: bad input gives one clear line and the documented exit
//! code, output formats and colour behave, secrets stay out. Uses bundles captured on the testbed.

mod support;

use std::io::Write;

use support::{repo_root, unloop};

fn bundle(name: &str) -> String {
    repo_root()
        .join("testbed/scenarios")
        .join(name)
        .join("bundle.json.gz")
        .to_string_lossy()
        .into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_missing_file_is_exit_3_with_one_line() {
    let o = unloop(&["diagnose", "--from", "/nonexistent/bundle.json.gz"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stderr(&o).lines().next(),
        Some(
            "error: cannot read /nonexistent/bundle.json.gz: No such file or directory (os error 2)"
        )
    );
}

#[test]
fn a_truncated_bundle_is_named_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.json.gz");
    let bytes = std::fs::read(bundle("jvm-heap")).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let o = unloop(&["diagnose", "--from", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("is truncated or corrupt: the compressed stream ends early (truncated file)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("hint: capture the bundle again"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn garbage_and_newer_schemas_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, [0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x80]).unwrap();
    let o = unloop(&["diagnose", "--from", garbage.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains(
            "is not an unloop bundle, a kubectl JSON output, or a cluster-info dump directory"
        ),
        "{}",
        stderr(&o)
    );

    let newer = dir.path().join("newer.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&newer).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(
        br#"{"kind":"UnloopSnapshot","schemaVersion":7,"state":{"pods":{"future":true}}}"#,
    )
    .unwrap();
    gz.finish().unwrap();
    let o = unloop(&["diagnose", "--from", newer.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("was written by a newer unloop (bundle schema 7, this unloop reads up to 1); upgrade unloop"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn unknown_targets_are_usage_errors() {
    let o = unloop(&["diagnose", "--from", &bundle("oom-limit"), "deploy/nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: no deploy/nope found"),
        "{}",
        stderr(&o)
    );
    let o = unloop(&["diagnose", "--from", &bundle("oom-limit"), "widget/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown workload kind \"widget\""),
        "{}",
        stderr(&o)
    );
    let o = unloop(&["diagnose", "--from", &bundle("oom-limit"), "-l", "a b"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_healthy_control_exits_0_and_says_so() {
    let o = unloop(&["diagnose", "--from", &bundle("healthy")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "No crash-looping or failing pods in namespace healthy (2 pods checked).\n"
    );
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let piped = unloop(&["diagnose", "--from", &bundle("oom-limit")]);
    assert!(!piped.stdout.contains(&0x1b), "no escape codes in a pipe");
    let forced = unloop(&[
        "diagnose",
        "--from",
        &bundle("oom-limit"),
        "--color",
        "always",
    ]);
    assert!(forced.stdout.contains(&0x1b), "--color always colours");
}

#[test]
fn non_utf8_and_secret_bearing_logs_are_safe_in_every_format() {
    // Take a real bundle and plant a credential and invalid UTF-8 in its log, as a hostile app might.
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(bundle("missing-env-var")).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_reader(flate2::read::GzDecoder::new(&src[..])).unwrap();
    let log = &mut json["state"]["logs"][0]["text"];
    let planted = format!(
        "{}connecting with password=hunter2 to postgres://app:s3cr3t@db:5432\n\u{fffd}\u{0}binary\n",
        log.as_str().unwrap()
    );
    *log = serde_json::Value::String(planted);
    json["state"]["pods"][0]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "API_TOKEN", "value": "tok-123456"}));
    let p = dir.path().join("planted.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    serde_json::to_writer(&mut gz, &json).unwrap();
    gz.finish().unwrap();
    for fmt in ["human", "json", "yaml", "markdown"] {
        let o = unloop(&["diagnose", "--from", p.to_str().unwrap(), "-o", fmt]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{fmt}: {}", stderr(&o));
        for secret in ["hunter2", "s3cr3t", "tok-123456"] {
            assert!(!out.contains(secret), "{fmt} leaks {secret}");
        }
        assert!(
            out.contains("missing-env-var"),
            "{fmt}: verdict still given"
        );
    }
}

#[test]
fn kubectl_plugin_binary_is_the_same_program() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-unloop"))
        .args(["diagnose", "--from", &bundle("segfault"), "-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["diagnoses"][0]["causes"][0]["id"], "segfault");
}

#[test]
fn completions_and_help_have_examples() {
    let o = unloop(&["completions", "bash"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("_unloop()"));
    let o = unloop(&["diagnose", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Examples:") && help.contains("unloop diagnose deploy/api -n shop"),
        "{help}"
    );
}

#[test]
fn kubectl_json_lists_are_diagnosed_too() {
    // `kubectl get pods,events -o json` of the same state, made from the captured bundle.
    let src = std::fs::read(bundle("oom-limit")).unwrap();
    let json: serde_json::Value =
        serde_json::from_reader(flate2::read::GzDecoder::new(&src[..])).unwrap();
    let mut items = Vec::new();
    for (kind, field) in [("Pod", "pods"), ("Event", "events"), ("Node", "nodes")] {
        for mut o in json["state"][field].as_array().cloned().unwrap_or_default() {
            o["kind"] = serde_json::Value::String(kind.into());
            items.push(o);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.json");
    std::fs::write(
        &p,
        serde_json::to_vec(&serde_json::json!({"kind": "List", "items": items})).unwrap(),
    )
    .unwrap();
    let o = unloop(&["diagnose", "--from", p.to_str().unwrap(), "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["diagnoses"][0]["causes"][0]["id"],
        "oom-limit-too-low",
        "{}",
        stderr(&o)
    );
}
