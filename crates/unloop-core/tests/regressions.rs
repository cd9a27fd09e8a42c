//! Crashes the fuzzers found in the core, replayed through the public API: each file under
//! `tests/regressions/` names a captured scenario and the fields of its troubled pod the fuzzer
//! changed; the state must diagnose without a panic (see fuzz/README.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use unloop_core::{ClusterState, Query, diagnose};

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

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}

#[test]
fn fuzzer_findings_diagnose_without_panicking() {
    let cases = cases();
    assert!(!cases.is_empty());
    for case in cases {
        let spec: Value = serde_json::from_slice(&std::fs::read(&case).unwrap()).unwrap();
        let mut state = captured(spec["scenario"].as_str().unwrap());
        let mut pod = serde_json::to_value(&state.pods[0]).unwrap();
        for change in spec["set"].as_array().unwrap() {
            let pointer = change[0].as_str().unwrap();
            *pod.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{}: no {pointer}", case.display())) = change[1].clone();
        }
        state.pods[0] = serde_json::from_value(pod).unwrap();
        let now = state.captured_at.unwrap();
        let report = diagnose(&state, &Query::default(), now);
        assert_eq!(report.diagnoses.len(), 1, "{}", case.display());
    }
}

#[test]
fn exit_codes_far_below_zero_are_not_signals() {
    assert_eq!(unloop_core::exit::signal_of(i32::MIN), None);
    assert_eq!(unloop_core::exit::signal_of(139), Some(11));
}
