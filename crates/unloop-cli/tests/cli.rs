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

/// The captured jvm-heap bundle, changed by `edit`, written to a temp dir.
fn jvm_heap_variant(dir: &tempfile::TempDir, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let src = std::fs::read(bundle("jvm-heap")).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_reader(flate2::read::GzDecoder::new(&src[..])).unwrap();
    edit(&mut json["state"]);
    let p = dir.path().join("variant.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    serde_json::to_writer(&mut gz, &json).unwrap();
    gz.finish().unwrap();
    p.to_string_lossy().into_owned()
}

/// Appends to a string field of a captured object.
fn append(v: &mut serde_json::Value, tail: &str) {
    let s = v.as_str().unwrap_or_default().to_string();
    *v = serde_json::Value::String(format!("{s}{tail}"));
}

/// Planted in the jvm-heap bundle where a careless app or operator puts them, each in a field a
/// renderer prints: (the secret, what the output shows in its place). A keystore password in
/// JAVA_OPTS (the remedy copies it), a bearer token in an event, a mysql password in a log line,
/// a password and a URL's password in the termination message. Without redaction each shows.
const PLANTED: [(&str, &str); 5] = [
    ("KsPw-9f3e1c", "keyStorePassword=<redacted>"),
    ("EvTok-8c1f2e9a7b", "Bearer <redacted>"),
    ("LogPw-6e6e12", "-p<redacted>"),
    ("TermPw-77a1b2", "password=<redacted> for postgres"),
    ("UrlPw-5c2d9e", "postgres://orders:<redacted>@db/orders"),
];

fn plant_secrets(state: &mut serde_json::Value) {
    let opts = " -Djavax.net.ssl.keyStorePassword=KsPw-9f3e1c";
    let pod = &mut state["pods"][0];
    append(&mut pod["spec"]["containers"][0]["env"][0]["value"], opts);
    let message =
        "startup failed: password=TermPw-77a1b2 for postgres://orders:UrlPw-5c2d9e@db/orders";
    for state in ["lastState", "state"] {
        pod["status"]["containerStatuses"][0][state]["terminated"]["message"] = message.into();
    }
    for w in ["deployments", "replicaSets"] {
        append(
            &mut state[w][0]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            opts,
        );
    }
    for e in state["events"].as_array_mut().unwrap() {
        if e["reason"] == "BackOff" {
            append(
                &mut e["message"],
                " (Authorization: Bearer EvTok-8c1f2e9a7b)",
            );
        }
    }
    append(
        &mut state["logs"][0]["text"],
        "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\nmysql -uroot -pLogPw-6e6e12 -h db\n\u{fffd}\u{0}binary\n",
    );
}

#[test]
fn secrets_in_captured_objects_never_reach_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = jvm_heap_variant(&dir, plant_secrets);
    let mut outputs = Vec::new();
    for fmt in ["human", "json", "yaml", "markdown"] {
        let o = unloop(&["diagnose", "--from", &p, "-o", fmt]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(1), "{fmt}: {}", stderr(&o));
        for (secret, _) in PLANTED {
            assert!(!out.contains(secret), "{fmt} leaks {secret}:\n{out}");
        }
        assert!(out.contains("oom-jvm-heap-over-limit"), "{fmt}: {out}");
        // The remedy still copies JAVA_OPTS, with the key name kept and the value masked.
        assert!(
            out.contains("keyStorePassword=<redacted>"),
            "{fmt}: remedy lost JAVA_OPTS:\n{out}"
        );
        outputs.push(out);
    }
    // Each secret's field is printed: masked, not left out.
    for (secret, shown) in PLANTED {
        assert!(
            outputs.iter().any(|out| out.contains(shown)),
            "no output shows {shown:?} where {secret} was:\n{}",
            outputs.join("\n")
        );
    }
    let json = unloop(&["diagnose", "--from", &p, "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let message = report["diagnoses"][0]["exit"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "startup failed: password=<redacted> for postgres://orders:<redacted>@db/orders"
    );
}

#[test]
fn secrets_never_reach_the_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = jvm_heap_variant(&dir, plant_secrets);
    let o = unloop(&["diagnose", "--from", &p, "-o", "html"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for (secret, _) in PLANTED {
        assert!(!out.contains(secret), "html leaks {secret}:\n{out}");
    }
    // Masked, not left out: the remedy still copies JAVA_OPTS (escaped for HTML).
    assert!(out.contains("keyStorePassword=&lt;redacted&gt;"), "{out}");
}

/// Control sequences a hostile app or manifest can plant: a title change, clear screen, colours,
/// carriage return, NUL, backspace, bidi overrides and isolates, a C1 CSI.
const HOSTILE: &str = "\x1b]0;pwned\x07 \x1b[2J\x1b[31mred\x1b[0m\rover\0nul\x08 \u{202e}cod.exe \u{2066}x\u{2069} \u{9b}31m";

fn plant_controls(state: &mut serde_json::Value) {
    let name = format!("orders-{HOSTILE}");
    let pod = &mut state["pods"][0];
    pod["metadata"]["name"] = name.clone().into();
    pod["metadata"]["annotations"]["example.com/note"] = HOSTILE.into();
    for s in ["lastState", "state"] {
        pod["status"]["containerStatuses"][0][s]["terminated"]["message"] = HOSTILE.into();
    }
    state["logs"][0]["pod"] = name.into();
    append(
        &mut state["logs"][0]["text"],
        &format!(
            "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space {HOSTILE} ```` `\n"
        ),
    );
    for e in state["events"].as_array_mut().unwrap() {
        if e["reason"] == "BackOff" {
            append(&mut e["message"], &format!(" {HOSTILE}"));
        }
    }
}

/// Every ESC in `out` starts a colour (SGR) sequence unloop wrote itself; no other control byte
/// and no bidi or C1 character is there.
fn assert_terminal_safe(what: &str, out: &str) {
    let bytes = out.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\n' => {}
            0x1b => {
                let rest = &out[i + 1..];
                let sgr = rest.strip_prefix('[').is_some_and(|r| {
                    let end = r.find(|c: char| !c.is_ascii_digit() && c != ';');
                    end.is_some_and(|e| r[e..].starts_with('m'))
                });
                assert!(
                    sgr,
                    "{what}: raw escape sequence at {i}: {:?}",
                    &out[i..(i + 12).min(out.len())]
                );
            }
            b if *b < 0x20 || *b == 0x7f => panic!("{what}: raw control byte {b:#04x} at {i}"),
            _ => {}
        }
    }
    for c in ['\u{202e}', '\u{2066}', '\u{2069}', '\u{9b}'] {
        assert!(!out.contains(c), "{what}: raw U+{:04X}", c as u32);
    }
    assert!(
        out.contains(r"\x1b]0;pwned\x07") && out.contains(r"\u{202e}cod.exe"),
        "{what}: the planted text is shown, spelled out:\n{out}"
    );
}

#[test]
fn control_characters_from_the_cluster_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let p = jvm_heap_variant(&dir, plant_controls);
    for (what, extra) in [
        ("human --color never", &["--color", "never"][..]),
        ("human --color always", &["--color", "always"][..]),
        ("markdown", &["-o", "markdown"][..]),
    ] {
        let mut args = vec!["diagnose", "--from", &p];
        args.extend_from_slice(extra);
        let o = unloop(&args);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert_terminal_safe(what, &out);
        if what == "markdown" {
            // The log's backtick run cannot close the fence around it.
            assert!(
                out.lines().any(|l| l == "`````"),
                "{what}: fence too short:\n{out}"
            );
        }
    }
    // JSON carries the exact text, validly escaped.
    let o = unloop(&["diagnose", "--from", &p, "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &report["diagnoses"][0];
    assert_eq!(
        d["pod"].as_str(),
        Some(format!("orders-{HOSTILE}").as_str())
    );
    assert_eq!(d["exit"]["message"].as_str(), Some(HOSTILE));
    assert!(
        d["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.ends_with(HOSTILE))),
        "{d}"
    );
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

/// The scale fixture's ending, as an older unloop wrote it into a bundle: 126 nodes whose kubelet
/// config read failed (kwok serves no /configz), and one forbidden list. Old behaviour: one line
/// per node. Now one line per kind of gap in human and markdown, and typed gaps in JSON and YAML.
#[test]
fn many_gaps_of_one_kind_are_one_line_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let variant = jvm_heap_variant(&dir, |state| {
        let mut gaps: Vec<serde_json::Value> = (0..126)
            .map(|i| {
                serde_json::json!({
                    "what": format!("kubelet config of node scale-node-{i:03}"),
                    "why": "the server could not find the requested resource (404)",
                })
            })
            .collect();
        gaps.push(serde_json::json!({
            "what": "secrets in namespace jvm-heap",
            "why": "secrets is forbidden: User \"dev\" cannot list resource \"secrets\" (403)",
        }));
        state["gaps"] = serde_json::Value::Array(gaps);
    });
    let text = |args: &[&str]| {
        let mut all = vec!["diagnose", "--from", variant.as_str()];
        all.extend(args);
        String::from_utf8(unloop(&all).stdout).unwrap()
    };
    for out in [text(&[]), text(&["-o", "markdown"])] {
        let kubelet: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("kubelet config of"))
            .collect();
        assert_eq!(kubelet.len(), 1, "{out}");
        assert!(
            kubelet[0].contains("kubelet config of 126 nodes (scale-node-000"),
            "{out}"
        );
        assert!(kubelet[0].contains("126 not found"), "{out}");
        assert!(
            kubelet[0].contains("backoff timing assumes the kubelet's defaults"),
            "{out}"
        );
        assert!(
            out.contains("secrets in namespace jvm-heap: secrets is forbidden"),
            "{out}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&text(&["-o", "json"])).unwrap();
    assert_eq!(json["gaps"].as_array().unwrap().len(), 127);
    assert_eq!(json["gaps"][0]["kind"], "kubelet-config");
    assert_eq!(json["gaps"][0]["node"], "scale-node-000");
    assert_eq!(json["gaps"][0]["reason"], "not-found");
    assert_eq!(
        json["gaps"][0]["what"],
        "kubelet config of node scale-node-000"
    );
    assert_eq!(json["gaps"][126]["kind"], "list");
    assert_eq!(json["gaps"][126]["resource"], "secrets");
    assert_eq!(json["gapSummary"].as_array().unwrap().len(), 2);
    assert_eq!(json["gapSummary"][0]["count"], 126);
    let yaml = text(&["-o", "yaml"]);
    assert!(yaml.contains("kind: kubelet-config"), "{yaml}");
    assert!(yaml.contains("gapSummary:"), "{yaml}");
}
