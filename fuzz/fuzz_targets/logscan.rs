//! The log scanner on hostile log text (what a crashing container printed).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let scan = unloop_core::logscan::scan(text);
    let _ = scan.highlights(5);
    let _ = scan.highlights(0);
});
