//! `--from FILE` on hostile bytes: kubectl `get -o json` output (a List or one object), or
//! anything else that must be refused cleanly; what loads is diagnosed and rendered.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = unloop_fuzz::scratch_file("kubectl.json", data);
    if let Ok(state) = unloop_source::files::load(&path) {
        unloop_fuzz::diagnose_and_render(&state);
    }
});
