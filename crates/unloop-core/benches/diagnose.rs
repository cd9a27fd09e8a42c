//! `cargo bench -p unloop-core --bench diagnose`: diagnosis of one pod with N containers must grow
//! linearly in N (per-container lookups by name were once quadratic: 20,000 containers took 24 s).
//!
//! The pod is the oom-limit scenario's captured pod, its container, container status and log
//! cloned N times under distinct names.

use std::hint::black_box;
use std::io::Read;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unloop_core::diagnose::{Query, diagnose};
use unloop_core::state::ClusterState;

fn captured(scenario: &str) -> ClusterState {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(scenario)
        .join("bundle.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("captured bundle"))
        .read_to_string(&mut text)
        .expect("gzip");
    let mut bundle: serde_json::Value = serde_json::from_str(&text).expect("bundle JSON");
    serde_json::from_value(bundle["state"].take()).expect("bundle state")
}

/// The captured state with its one pod's container repeated `n` times.
fn wide_pod(base: &ClusterState, n: usize) -> ClusterState {
    let mut state = base.clone();
    let pod = &mut state.pods[0];
    let spec = pod.spec.as_mut().expect("spec");
    let container = spec.containers[0].clone();
    let status = pod.status.as_mut().expect("status");
    let container_status = status.container_statuses.as_ref().expect("statuses")[0].clone();
    let log = base.logs[0].clone();
    spec.containers.clear();
    let statuses = status.container_statuses.get_or_insert_with(Vec::new);
    statuses.clear();
    state.logs.clear();
    for i in 0..n {
        let name = format!("{}-{i}", container.name);
        let mut c = container.clone();
        c.name = name.clone();
        spec.containers.push(c);
        let mut cs = container_status.clone();
        cs.name = name.clone();
        statuses.push(cs);
        let mut l = log.clone();
        l.container = name;
        state.logs.push(l);
    }
    state
}

fn bench(c: &mut Criterion) {
    let base = captured("oom-limit");
    let now = base.captured_at.expect("captured_at");
    let mut group = c.benchmark_group("diagnose one pod of N containers");
    group.sample_size(10);
    for n in [100, 1_000, 10_000] {
        let state = wide_pod(&base, n);
        let report = diagnose(&state, &Query::default(), now);
        assert_eq!(report.diagnoses.len(), n, "one diagnosis per container");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &state, |b, state| {
            b.iter(|| {
                diagnose(black_box(state), &Query::default(), now)
                    .diagnoses
                    .len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
