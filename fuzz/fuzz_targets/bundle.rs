//! The snapshot bundle reader on hostile bytes, then everything a bundle reaches: diagnose and
//! every renderer. The first byte chooses whether the rest is written as is (plain JSON, or a
//! gzip stream the fuzzer damages) or gzip-compressed first (so mutations reach the JSON inside a
//! valid gzip stream).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        unloop_fuzz::gzip(rest)
    } else {
        rest.to_vec()
    };
    let path = unloop_fuzz::scratch_file("bundle.json.gz", &bytes);
    if let Ok(state) = unloop_source::bundle::read(&path) {
        unloop_fuzz::diagnose_and_render(&state);
    }
});
