//! Crashes the fuzzers found in rendering, replayed: each case under
//! `crates/unloop-core/tests/regressions/` (a captured scenario and the fields of its troubled pod
//! the fuzzer changed) is diagnosed and rendered in every format, without a panic.

#[path = "../../unloop-core/tests/support/regression.rs"]
mod regression;

use regression::{case, cases};
use unloop_core::{Query, diagnose};
use unloop_report::{Format, render};

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
