#![allow(dead_code)]
//! The fuzzers' findings as cluster states: each file under `crates/unloop-core/tests/regressions/`
//! names a captured scenario and the fields of its troubled pod the fuzzer changed (JSON pointers
//! and values). Shared by the core's replay and the renderers' (`crates/unloop-report/tests`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use unloop_core::ClusterState;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../unloop-core/tests/regressions")
}

/// The captured state of a testbed scenario, as its bundle holds it.
pub fn captured(scenario: &str) -> ClusterState {
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

/// The names of every case, sorted.
pub fn cases() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    out.sort();
    out
}

/// Case `name`: its scenario's state with the fuzzer's changes made to the first pod, and the
/// moment the state was captured.
pub fn case(name: &str) -> (ClusterState, jiff::Timestamp) {
    let spec: Value = serde_json::from_slice(&std::fs::read(dir().join(name)).unwrap()).unwrap();
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
