//! Remedies are argv quoted by one function: every remedy of every captured scenario, and remedies
//! built from captured pods whose names, log lines and env hold hostile text, run in a real bash
//! exactly the argv unloop built, and nothing else (see `unloop_core::shell`).

#[path = "../../unloop-core/tests/support/bash.rs"]
mod bash;

use std::path::PathBuf;

use proptest::prelude::*;
use unloop_core::shell::file_name;
use unloop_core::state::ClusterState;
use unloop_core::{Query, Remedy, diagnose};
use unloop_source::bundle;

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/scenarios")
}

fn captured(name: &str) -> ClusterState {
    bundle::read(&scenarios().join(name).join("bundle.json.gz")).unwrap()
}

fn remedies(state: &ClusterState) -> Vec<Remedy> {
    let now = state.captured_at.unwrap();
    diagnose(state, &Query::default(), now)
        .diagnoses
        .into_iter()
        .flat_map(|d| d.remedies)
        .collect()
}

/// Every remedy with a command runs exactly its argv in bash; returns how many ran.
fn check_all(rs: &[Remedy]) -> usize {
    let mut n = 0;
    for r in rs {
        if let Some(s) = &r.script {
            if let Err(e) = bash::check(s) {
                panic!("remedy {:?}: {e}", r.title);
            }
            n += 1;
        }
    }
    n
}

/// The state with every string equal to `from` (a name, wherever it is used) replaced by `to`.
fn rename(state: &ClusterState, from: &str, to: &str) -> ClusterState {
    fn walk(v: &mut serde_json::Value, from: &str, to: &str) {
        match v {
            serde_json::Value::String(s) if s == from => *s = to.to_string(),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, from, to)),
            serde_json::Value::Object(m) => m.values_mut().for_each(|x| walk(x, from, to)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(state).unwrap();
    walk(&mut v, from, to);
    serde_json::from_value(v).unwrap()
}

/// The argv of every command of every remedy.
fn argvs(rs: &[Remedy]) -> Vec<Vec<String>> {
    rs.iter()
        .filter_map(|r| r.script.as_ref())
        .flat_map(|s| {
            s.steps
                .iter()
                .flat_map(|p| p.commands.iter().map(|a| a.texts()))
        })
        .collect()
}

#[test]
fn every_remedy_of_every_captured_scenario_runs_only_its_argv() {
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(scenarios())
        .unwrap()
        .map(|e| e.unwrap().path().join("bundle.json.gz"))
        .filter(|p| p.is_file())
        .collect();
    bundles.sort();
    assert!(
        bundles.len() >= 20,
        "expected the testbed's captured bundles"
    );
    let mut ran = 0;
    for path in bundles {
        ran += check_all(&remedies(&bundle::read(&path).unwrap()));
    }
    assert!(ran >= 40, "only {ran} remedies had a command");
}

#[test]
fn a_file_name_from_a_log_line_is_one_argument() {
    let mut state = captured("missing-config-file");
    let file = "x;id;`id`;$(touch${IFS}pwned);'\";.yaml";
    for l in &mut state.logs {
        l.text = l.text.replace("config.yaml", file);
    }
    let rs = remedies(&state);
    assert!(check_all(&rs) >= 2);
    let from_file = format!("--from-file={file}=./{}", file_name(file));
    assert!(
        argvs(&rs).iter().any(|a| a.contains(&from_file)),
        "{:?}",
        argvs(&rs)
    );
}

#[test]
fn a_java_opts_value_with_quotes_is_one_argument() {
    let mut state = captured("jvm-heap");
    let opts = r#"-Xms256m -Xmx768m -XX:+UseG1GC -Dmsg='it''s' "$(id)" `id`; id | tee x > y"#;
    for p in &mut state.pods {
        for c in p.spec.iter_mut().flat_map(|s| s.containers.iter_mut()) {
            for e in c.env.iter_mut().flatten() {
                if e.name == "JAVA_OPTS" {
                    e.value = Some(opts.into());
                }
            }
        }
    }
    let rs = remedies(&state);
    assert!(check_all(&rs) >= 2);
    let fixed = format!("JAVA_OPTS={}", opts.replace("-Xmx768m", "-Xmx192m"));
    assert!(
        argvs(&rs).iter().any(|a| a.contains(&fixed)),
        "{:?}",
        argvs(&rs)
    );
}

#[test]
fn a_pod_named_like_a_flag_is_still_a_name() {
    let state = captured("oom-limit");
    let pod = state.pods.iter().find(|p| {
        p.status.as_ref().is_some_and(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .any(|c| c.restart_count > 0)
        })
    });
    let name = pod.and_then(|p| p.metadata.name.clone()).unwrap();
    let state = rename(&state, &name, "--all");
    let rs = remedies(&state);
    assert!(check_all(&rs) >= 1);
    let delete = argvs(&rs)
        .into_iter()
        .find(|a| a.get(1).map(String::as_str) == Some("delete"))
        .expect("a retry that deletes the pod");
    let dd = delete
        .iter()
        .position(|a| a == "--")
        .expect("a -- before the name");
    assert_eq!(delete[dd + 1..], ["--all".to_string()], "{delete:?}");
}

fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "'", "\"", "\\", "$(id)", "`id`", "${HOME}", ";", "|", "&", ">", "<", "\n", "\r",
        "\x1b[2J", "\0", "\u{202e}", "é", "-", "--all", "~", "*", "#", "=", "!", " ", "x", "../",
    ]);
    prop::collection::vec(pieces, 1..5).prop_map(|v| format!("{}z", v.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Names of the namespace, the workload, the pod and the container, and the missing file,
    /// replaced by hostile text in captured scenarios: the real remedy builders, through bash.
    #[test]
    fn hostile_names_in_captured_pods_never_escape_their_argument(
        text in hostile(),
        which in 0usize..6,
    ) {
        let (scenario, from) = [
            ("missing-config-file", "missing-config-file"),
            ("jvm-heap", "orders"),
            ("missing-configmap", "missing-configmap"),
            ("job-fails", "job-fails"),
            ("dependency-dns", "billing"),
            ("bad-rollout", "bad-rollout"),
        ][which];
        let state = rename(&captured(scenario), from, &text);
        let rs = remedies(&state);
        for r in &rs {
            if let Some(Err(e)) = r.script.as_ref().map(bash::check) {
                prop_assert!(false, "{}: {}", r.title, e);
            }
        }
    }

    #[test]
    fn a_hostile_file_name_in_a_log_line_never_escapes(file in hostile()) {
        // The log scanner reads a path up to whitespace or a colon.
        let file: String = file.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
        let mut state = captured("missing-config-file");
        for l in &mut state.logs {
            l.text = l.text.replace("config.yaml", &file);
        }
        let rs = remedies(&state);
        for r in &rs {
            if let Some(Err(e)) = r.script.as_ref().map(bash::check) {
                prop_assert!(false, "{}: {}", r.title, e);
            }
        }
    }
}

/// `unloop debug` prints the original command to run by hand through the same renderer.
#[test]
fn the_original_command_of_a_debug_copy_is_its_argv() {
    let state = captured("command-not-found");
    let mut c = state.pods[0].spec.as_ref().unwrap().containers[0].clone();
    let hostile = ["--port", "80; id", "$(id)", "a\nb", "'", ""];
    c.command = Some(vec!["kubectl".into()]);
    c.args = Some(hostile.iter().map(|s| s.to_string()).collect());
    let line = unloop_core::debug::original_command_line(&c);
    let ran = bash::run(&line);
    let mut want = vec!["kubectl".to_string()];
    want.extend(hostile.iter().map(|s| s.to_string()));
    assert_eq!(ran.calls, vec![want], "{line}");
    assert!(ran.unexpected.is_empty() && ran.files.is_empty(), "{ran:?}");

    // Without a command the image's entrypoint runs: a placeholder, which is only text.
    c.command = None;
    c.args = Some(vec!["serve".into()]);
    let line = unloop_core::debug::original_command_line(&c);
    assert_eq!(line, "'<image entrypoint>' serve");
    let ran = bash::run(&line);
    assert_eq!(ran.unexpected, vec![vec!["<image entrypoint>", "serve"]]);
    assert!(ran.calls.is_empty() && ran.files.is_empty(), "{ran:?}");
}
