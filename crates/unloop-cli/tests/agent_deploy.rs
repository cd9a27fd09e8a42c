//! The agent's manifests: the committed CRD is what `unloop agent crd` prints (the schema comes
//! from the Rust types), and the plain manifests pass `unloop audit` with no finding.

mod support;

use support::{repo_root, unloop};

#[test]
fn the_committed_crd_is_the_one_the_types_generate() {
    let out = unloop(&["agent", "crd"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(repo_root().join("deploy/crd.yaml")).unwrap();
    assert_eq!(
        printed, committed,
        "deploy/crd.yaml is stale: unloop agent crd > deploy/crd.yaml"
    );
    assert!(printed.contains("kind: CustomResourceDefinition"));
    assert!(printed.contains("name: crashdiagnoses.unloop.dev"));
}

#[test]
fn the_agent_manifests_pass_unloop_audit() {
    let dir = repo_root().join("deploy");
    let out = unloop(&["audit", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "unloop audit deploy/ found something:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
