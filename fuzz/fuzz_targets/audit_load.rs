//! `unloop audit FILE` on hostile bytes: multi-document YAML, JSON values and JSON lines, `kind:
//! List`; what loads is audited and rendered in every format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(inv) = unloop_fuzz::audit_load(data) {
        unloop_fuzz::audit_and_render(&inv);
    }
});
