//! Duration parsing: Go durations (`1m30s`, as probes, kubelet settings and `--ttl` are written)
//! and back to text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unloop_core::backoff::{go_duration, parse_go_duration};

fuzz_target!(|text: &str| {
    if let Some(secs) = parse_go_duration(text) {
        let _ = go_duration(secs);
    }
});
