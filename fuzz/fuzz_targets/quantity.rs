//! Quantity parsers and what is computed from them: memory (`256Mi`, `1.5Gi`), CPU (`250m`,
//! nanocores), JVM sizes and heap flags (`-Xmx768m`, `-XX:MaxRAMPercentage=75`), and the tidy
//! spellings and round-ups built from a parsed value, as the OOM and JVM remedies call them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unloop_core::quantity::{bytes, bytes_text, cores, cpu_round_up, cpu_text, round_up_tidy};
use unloop_core::resources::{HEAP_SHARE, jvm_heap, jvm_size};

fuzz_target!(|text: &str| {
    if let Ok(b) = bytes(text) {
        let _ = bytes_text(b);
        let _ = round_up_tidy(b);
    }
    if let Ok(c) = cores(text) {
        let _ = cpu_text(c);
        let _ = cpu_text(cpu_round_up(c));
    }
    if let Some(b) = jvm_size(text) {
        let _ = bytes_text(b);
        let _ = round_up_tidy((b as f64 / HEAP_SHARE) as u64);
    }
    let c: k8s_openapi::api::core::v1::Container = serde_json::from_value(serde_json::json!({
        "name": "app",
        "env": [{"name": "JAVA_OPTS", "value": text}],
        "args": [text],
    }))
    .expect("a container");
    if let Some(h) = jvm_heap(&c) {
        let _ = h.flag();
        for limit in [0, 1 << 30, u64::MAX] {
            let _ = h.bytes_under(limit);
        }
    }
});
