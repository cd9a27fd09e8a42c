//! What the fuzz targets share: the paths a hostile input takes after it is parsed (diagnose and
//! render every format; audit and render every format), the captured cluster states that
//! structured targets mutate, and a scratch directory for the readers that take a path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use unloop_audit::load::LoadOptions;
use unloop_audit::{AuditConfig, Context, Inventory, Known, Resolver};
use unloop_core::diagnose::Query;
use unloop_core::state::ClusterState;
use unloop_report::Format;
use unloop_report::audit::{Format as AuditFormat, RenderOptions};

/// A fixed clock for states that carry no capture time, so runs are reproducible.
pub fn fixed_now() -> jiff::Timestamp {
    "2026-11-24T21:00:00Z".parse().expect("valid timestamp")
}

/// Diagnoses `state` and renders the report in every format, as `unloop diagnose --from` would.
pub fn diagnose_and_render(state: &ClusterState) {
    let now = state.captured_at.unwrap_or_else(fixed_now);
    let report = unloop_core::diagnose(state, &Query::default(), now);
    for format in [
        Format::Human,
        Format::Markdown,
        Format::Json,
        Format::Yaml,
        Format::Html,
    ] {
        for color in [false, true] {
            let _ = unloop_report::render(&report, format, color);
            if format != Format::Human {
                break;
            }
        }
    }
}

/// Audits `inv` the way `unloop audit FILE` does and renders every format.
pub fn audit_and_render(inv: &Inventory) {
    let config = AuditConfig::default();
    let resolver = Resolver::new(vec![Known::manifests(&inv.config)]);
    let ctx = Context {
        config: &config,
        resolver: &resolver,
        observed: None,
    };
    let report = unloop_audit::audit(inv, &ctx);
    let mut opts = RenderOptions::default();
    for format in [
        AuditFormat::Human,
        AuditFormat::Json,
        AuditFormat::Sarif,
        AuditFormat::Junit,
    ] {
        opts.color = format == AuditFormat::Human;
        let _ = unloop_report::audit::render(&report, format, &opts);
    }
}

/// Loads manifest bytes through the audit loader's streaming entry point.
pub fn audit_load(bytes: &[u8]) -> Option<Inventory> {
    let mut inv = Inventory::default();
    unloop_audit::load::load_reader(bytes, "fuzz.yaml", &LoadOptions::default(), &mut inv).ok()?;
    Some(inv)
}

/// A directory private to this process (in memory when /dev/shm exists), for the readers that
/// take a path. Removed when the process exits normally.
static SCRATCH: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("unloop-fuzz-")
        .tempdir_in(shm);
    builder
        .or_else(|_| tempfile::Builder::new().prefix("unloop-fuzz-").tempdir())
        .expect("a scratch directory")
});

/// Writes `bytes` to a scratch file named `name` and returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = SCRATCH.path().join(name);
    std::fs::write(&p, bytes).expect("scratch file written");
    p
}

/// An empty scratch directory named `name` (emptied first if it exists).
pub fn scratch_dir(name: &str) -> PathBuf {
    let p = SCRATCH.path().join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("scratch dir created");
    p
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("in-memory gzip");
    gz.finish().expect("in-memory gzip")
}

macro_rules! captured {
    ($($name:literal),* $(,)?) => {
        &[$((
            $name,
            include_bytes!(concat!("../../testbed/scenarios/", $name, "/bundle.json.gz")).as_slice(),
        )),*]
    };
}

/// The bundles captured from the testbed's real cluster, one per crash scenario.
pub const CAPTURED: &[(&str, &[u8])] = captured!(
    "bad-rollout",
    "command-not-found",
    "dependency-dns",
    "dependency-refused",
    "entrypoint-exits-0",
    "exec-format",
    "fixed-but-backing-off",
    "image-never-pull",
    "image-pull-error",
    "init-crash",
    "job-fails",
    "jvm-heap",
    "liveness-slow-start",
    "missing-config-file",
    "missing-configmap",
    "missing-entrypoint",
    "missing-env-var",
    "missing-secret-key",
    "missing-secret",
    "oom-limit",
    "segfault",
    "sidecar-crash",
);

/// The captured states, decoded once.
pub static CAPTURED_STATES: LazyLock<Vec<ClusterState>> = LazyLock::new(|| {
    CAPTURED
        .iter()
        .map(|(name, gz)| {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(*gz)
                .read_to_end(&mut json)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut v: serde_json::Value =
                serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
            serde_json::from_value(v["state"].take()).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect()
});
