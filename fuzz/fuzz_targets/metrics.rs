//! Usage metrics from outside: the metrics API's PodMetrics answers and Prometheus `query_range`
//! matrices that `unloop audit --rightsize` reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unloop_audit::rightsize::{parse_pod_metrics, parse_prometheus_matrix, samples_from_series};

fuzz_target!(|text: &str| {
    let _ = parse_pod_metrics(text);
    if let Ok(series) = parse_prometheus_matrix(text) {
        let _ = samples_from_series("default", &series, &series);
    }
});
