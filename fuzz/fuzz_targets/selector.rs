//! Label selectors as `-l` takes them, matched against fuzzed labels. Input: the selector on the
//! first line, then one `key=value` label per line.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use unloop_core::selector::Selector;

fuzz_target!(|text: &str| {
    let mut lines = text.split('\n');
    let selector = lines.next().unwrap_or_default();
    if let Ok(sel) = Selector::parse(selector) {
        let labels: BTreeMap<String, String> = lines
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let _ = sel.matches(Some(&labels));
        let _ = sel.matches(None);
    }
});
