//! Offline inputs as the real kubectl writes them: a `kubectl cluster-info dump` directory and
//! `kubectl get pods -o json`, both written by the testbed's own kubectl (v1.35) against the
//! testbed (`testbed/capture-dumps.sh` into `tests/data/`).

use std::path::{Path, PathBuf};

use unloop_core::state::{GapAbout, GapReason, ListOf};
use unloop_core::{CauseId, Query, diagnose};
use unloop_source::files::load;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Copies a directory tree, so a test can rename what it holds.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn a_dump_gives_each_container_its_own_log_section() {
    let state = load(&data("cluster-info-dump")).unwrap();
    let log = state
        .logs
        .iter()
        .find(|l| l.namespace == "missing-env-var")
        .expect("the crashed container's log");
    // The section is the container's, named by kubectl's START line, and holds only its lines.
    assert_eq!(log.container, "api");
    assert!(log.text.contains("DATABASE_URL is not set"), "{}", log.text);
    assert!(!log.text.contains("===="), "{}", log.text);
    let now = state.captured_at.unwrap();
    let report = diagnose(&state, &Query::default(), now);
    let d = report
        .diagnoses
        .iter()
        .find(|d| d.namespace == "missing-env-var")
        .unwrap();
    assert_eq!(d.top().id, CauseId::MissingEnvVar);
}

#[test]
fn a_log_kubectl_could_not_read_is_a_gap_not_a_log_line() {
    let state = load(&data("cluster-info-dump")).unwrap();
    assert!(
        !state
            .logs
            .iter()
            .any(|l| l.text.contains("Request log error")),
        "kubectl's error became log text"
    );
    let gaps: Vec<&str> = state
        .gaps
        .iter()
        .filter_map(|g| match &g.about {
            GapAbout::Log { container, .. } => Some(container.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 2, "{:?}", state.gaps);
    assert!(gaps.contains(&"orders") && gaps.contains(&"invoices"));
}

#[test]
fn the_order_of_files_and_folders_does_not_matter() {
    // A pod folder that sorts after pods.json, the other way round from kubectl's names here.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dump");
    copy_tree(&data("cluster-info-dump"), &dir);
    let ns = dir.join("missing-env-var");
    let pod_dir = std::fs::read_dir(&ns)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_type().unwrap().is_dir())
        .unwrap()
        .path();
    std::fs::rename(&pod_dir, ns.join("zz-pod")).unwrap();
    let a = load(&data("cluster-info-dump")).unwrap();
    let b = load(&dir).unwrap();
    let api = |s: &unloop_core::ClusterState| {
        s.logs
            .iter()
            .find(|l| l.namespace == "missing-env-var")
            .map(|l| (l.container.clone(), l.text.clone()))
    };
    assert_eq!(api(&a).unwrap().0, "api");
    assert_eq!(api(&a).map(|x| x.1), api(&b).map(|x| x.1));
}

#[test]
fn inputs_without_configmaps_or_secrets_are_gaps_never_missing_objects() {
    for input in ["cluster-info-dump", "get-pods.json"] {
        let state = load(&data(input)).unwrap();
        for list in [ListOf::ConfigMaps, ListOf::Secrets] {
            assert!(
                state
                    .gaps
                    .iter()
                    .any(|g| g.about == GapAbout::list(list, None)
                        && g.reason == GapReason::NotInInput),
                "{input}: no gap for {list:?}: {:?}",
                state.gaps
            );
        }
        let report = diagnose(&state, &Query::default(), state.captured_at.unwrap());
        for d in &report.diagnoses {
            for c in &d.causes {
                assert!(
                    !matches!(c.id, CauseId::MissingConfigmap | CauseId::MissingSecret)
                        || d.namespace == "shared-missing-secret",
                    "{input}: {} says {}: {}",
                    d.workload,
                    c.id,
                    c.summary
                );
                assert!(
                    !c.summary.contains("kube-root-ca.crt"),
                    "{input}: {}",
                    c.summary
                );
            }
        }
        // The crash itself is still there (named from its log where the input has one).
        let d = report
            .diagnoses
            .iter()
            .find(|d| d.namespace == "missing-env-var")
            .unwrap_or_else(|| panic!("{input}: the crash is not reported"));
        if input == "cluster-info-dump" {
            assert_eq!(d.top().id, CauseId::MissingEnvVar);
        }
    }
}
