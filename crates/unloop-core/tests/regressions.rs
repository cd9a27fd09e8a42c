//! Crashes the fuzzers found in the core, replayed through the public API: each file under
//! `tests/regressions/` names a captured scenario and the fields of its troubled pod the fuzzer
//! changed; the state must diagnose without a panic (see fuzz/README.md).

#[path = "support/regression.rs"]
mod regression;

use unloop_core::{Query, diagnose};

#[test]
fn fuzzer_findings_diagnose_without_panicking() {
    let cases = regression::cases();
    assert!(!cases.is_empty());
    for name in cases {
        let (state, now) = regression::case(&name);
        let report = diagnose(&state, &Query::default(), now);
        assert_eq!(report.diagnoses.len(), 1, "{name}");
    }
}

#[test]
fn exit_codes_far_below_zero_are_not_signals() {
    assert_eq!(unloop_core::exit::signal_of(i32::MIN), None);
    assert_eq!(unloop_core::exit::signal_of(139), Some(11));
}
