//! A container log in a cluster-info dump is read from its tail: loading a dump whose log is 2 GiB
//! takes no more memory than one whose log is 1 MiB. Sparse files, so no disk is used. Alone in
//! its own test binary so no other test shares the process whose peak memory is measured.

#![allow(clippy::print_stderr)] // the figures are the point of this test

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn dump(dir: &Path, size: u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let state =
        unloop_source::bundle::read(&root.join("testbed/scenarios/oom-limit/bundle.json.gz"))
            .unwrap();
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
    let tail = "the last line of a very long log\n";
    let mut log = std::fs::File::create(dir.join(&ns).join(&name).join("logs.txt")).unwrap();
    log.set_len(size - tail.len() as u64).unwrap();
    log.seek(SeekFrom::End(0)).unwrap();
    log.write_all(tail.as_bytes()).unwrap();
}

/// Growth of the peak resident memory (KiB) while loading `dir`, where Linux can measure it.
fn peak_growth_kib(dir: &Path) -> Option<u64> {
    let hwm = || -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = hwm()?;
    let state = unloop_source::files::load(dir).unwrap();
    assert_eq!(state.logs.len(), 1, "the dump's log is read");
    let after = hwm()?;
    Some(after.saturating_sub(before))
}

#[test]
fn a_2_gib_log_takes_no_more_memory_than_a_1_mib_one() {
    let small = tempfile::tempdir().unwrap();
    let huge = tempfile::tempdir().unwrap();
    dump(small.path(), 1 << 20);
    dump(huge.path(), 2 << 30);
    let (Some(s), Some(h)) = (peak_growth_kib(small.path()), peak_growth_kib(huge.path())) else {
        eprintln!("no /proc peak-memory figures here; only the tail was checked");
        return;
    };
    eprintln!("peak RSS growth: 1 MiB log {s} KiB, 2 GiB log {h} KiB");
    // Reading the whole log would take 2 GiB; the tail is 256 KiB.
    assert!(
        h < 16 * 1024,
        "2 GiB log: peak grew by {h} KiB (1 MiB log: {s} KiB)"
    );
}
