//! Shared by the integration tests of unloop-audit and unloop-report (which includes this file by
//! path): audit manifests the way `unloop audit FILE` does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use unloop_audit::load::{LoadOptions, load_paths, load_str};
use unloop_audit::{AuditConfig, AuditReport, Inventory};

pub fn manifests_dir() -> PathBuf {
    // Through the crates folder, so the path holds from either crate.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../unloop-audit/tests/manifests")
}

pub fn audit_inventory(inv: &Inventory, config: &AuditConfig) -> AuditReport {
    unloop_audit::audit_manifests(inv, config)
}

pub fn audit_path(path: &Path, config: &AuditConfig) -> AuditReport {
    let inv = load_paths(
        &[path.to_path_buf()],
        &LoadOptions::default(),
        &mut std::io::empty(),
    )
    .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    audit_inventory(&inv, config)
}

pub fn audit_text(text: &str, config: &AuditConfig) -> AuditReport {
    let mut inv = Inventory::default();
    load_str(text, "manifest.yaml", &LoadOptions::default(), &mut inv)
        .unwrap_or_else(|e| panic!("does not load: {e}"));
    audit_inventory(&inv, config)
}
