//! `cargo bench -p unloop-source --bench dump_log_tail`: diagnosing input from a cluster-info dump
//! whose container log is 1 MiB, 100 MiB or 2 GiB (sparse files: no disk used). Only the log's tail
//! is read, so time and peak memory stay flat across log sizes; the peak resident memory of each
//! load is printed (Linux: `VmHWM`, reset through `/proc/self/clear_refs` before each load).

#![allow(clippy::print_stderr)] // peak-memory figures go to stderr beside criterion's

use std::hint::black_box;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

/// A dump of the captured oom-limit scenario with a log of `size` bytes for its pod.
fn dump(dir: &Path, size: u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let state =
        unloop_source::bundle::read(&root.join("testbed/scenarios/oom-limit/bundle.json.gz"))
            .expect("captured bundle");
    let pod = &state.pods[0];
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    std::fs::create_dir_all(dir.join(&ns).join(&name)).unwrap();
    let list = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "items": state.pods});
    std::fs::write(
        dir.join(&ns).join("pods.json"),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
    let tail = "level=error msg=\"out of memory\"\n".repeat(64);
    let mut log = std::fs::File::create(dir.join(&ns).join(&name).join("logs.txt")).unwrap();
    log.set_len(size - tail.len() as u64).unwrap();
    log.seek(SeekFrom::End(0)).unwrap();
    log.write_all(tail.as_bytes()).unwrap();
}

/// Peak resident memory (KiB) since the last reset, where Linux reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dump_log_tail");
    group.sample_size(20);
    for (label, size) in [
        ("1MiB", 1u64 << 20),
        ("100MiB", 100 << 20),
        ("2GiB", 2 << 30),
    ] {
        let dir = tempfile::tempdir().unwrap();
        dump(dir.path(), size);
        reset_peak_rss();
        let before = peak_rss_kib();
        let state = unloop_source::files::load(dir.path()).expect("dump loads");
        assert!(state.logs[0].truncated == (size > 256 << 10));
        drop(state);
        if let (Some(b), Some(a)) = (before, peak_rss_kib()) {
            eprintln!(
                "dump_log_tail/{label}: peak RSS {} KiB during the load (+{} KiB)",
                a,
                a.saturating_sub(b)
            );
        }
        group.bench_function(label, |b| {
            b.iter(|| black_box(unloop_source::files::load(dir.path()).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
