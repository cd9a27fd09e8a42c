//! Crashes the fuzzers found in rendering, replayed: each case under
//! `crates/unloop-core/tests/regressions/` (a captured scenario and the fields of its troubled pod
//! the fuzzer changed) is diagnosed and rendered in every format, without a panic.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use unloop_core::{ClusterState, Query, diagnose};
use unloop_report::{Format, render};

fn captured(scenario: &str) -> ClusterState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(scenario)
        .join("bundle.json.gz");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut json)
        .unwrap();
    let mut bundle: Value = serde_json::from_slice(&json).unwrap();
    serde_json::from_value(bundle["state"].take()).unwrap()
}

fn case(name: &str) -> (ClusterState, jiff::Timestamp) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../unloop-core/tests/regressions")
        .join(name);
    let spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut state = captured(spec["scenario"].as_str().unwrap());
    let mut pod = serde_json::to_value(&state.pods[0]).unwrap();
    for change in spec["set"].as_array().unwrap() {
        let pointer = change[0].as_str().unwrap();
        *pod.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{name}: no {pointer}")) = change[1].clone();
    }
    state.pods[0] = serde_json::from_value(pod).unwrap();
    let now = state.captured_at.unwrap();
    (state, now)
}

fn cases() -> Vec<String> {
    let dir: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../unloop-core/tests/regressions");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    out.sort();
    out
}

#[test]
fn fuzzer_findings_render_in_every_format() {
    let cases = cases();
    assert!(!cases.is_empty());
    for name in cases {
        let (state, now) = case(&name);
        let report = diagnose(&state, &Query::default(), now);
        for format in [
            Format::Human,
            Format::Markdown,
            Format::Json,
            Format::Yaml,
            Format::Html,
        ] {
            let out = render(&report, format, true);
            assert!(!out.is_empty(), "{name}: {format:?}");
        }
    }
}

/// The kubelet's restart count is an int32 the report counts on from: the restart held back
/// after 2147483647 is the 2147483648th, and the timeline folds the restarts at the cap into
/// one segment instead of walking two billion of them.
#[test]
fn the_largest_restart_count_is_counted_not_walked() {
    let (state, now) = case("restart-count-i32-max.json");
    let report = diagnose(&state, &Query::default(), now);
    let human = render(&report, Format::Human, false);
    assert!(human.contains("restart 2147483648 is held back"), "{human}");
    assert!(human.contains("2147483648 runs:"), "{human}");
    assert!(human.contains("]×"), "the runs at the cap fold: {human}");
    let html = render(&report, Format::Html, false);
    assert!(
        html.contains("earlier runs"),
        "the HTML folds the early runs"
    );
}
