//! Duration parsing: the one parser behind `--ttl`, `--history`, `--timeout` and kubelet settings
//! (`90s`, `1h30m`, `1d`, Go's `1m30s`), the Go-duration wrapper the backoff rule uses, and the
//! time displays built from a parsed value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unloop_core::backoff::{go_duration, parse_go_duration};
use unloop_core::duration;

fuzz_target!(|text: &str| {
    if let Some(secs) = parse_go_duration(text) {
        let _ = go_duration(secs);
    }
    if let Ok(d) = duration::parse(text) {
        let secs = d.as_secs();
        let _ = duration::human(d.as_secs_f64());
        if secs >= 0 {
            let _ = duration::human_whole(secs as u64);
            let _ = duration::go(secs as u64);
        }
    }
    let _ = duration::parse_positive(text);
});
