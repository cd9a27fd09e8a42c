//! The testbed's crash scenarios, audited before they run: every misconfiguration that is
//! visible in a scenario's manifest must be flagged on the workload that crashed. Scenarios whose
//! cause only shows at run time are listed with the reason.
//!
//! The same scenarios' captured bundles (real cluster state, `testbed/capture.sh`) exercise the
//! live path: the workloads read from the state, references resolved against it, and the
//! live-only checks on the pods' real restart and OOM history.

mod common;

use std::path::{Path, PathBuf};

use common::audit_path;
use unloop_audit::{AuditConfig, CheckId, Context, Inventory, Known, Observed, Resolver, Severity};

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The scenario's expect.yaml: its cause and its target (`deploy/api`).
fn expect(dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(dir.join("expect.yaml")).unwrap_or_default();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (s("cause"), s("target"))
}

/// Causes no manifest shows: the image's contents, the app's own needs, or run-time state.
const NOT_VISIBLE: [(&str, &str); 26] = [
    (
        "job-pods-gone",
        "the attempts fail on a host lookup at run time, and their pods are deleted afterwards",
    ),
    (
        "sandbox-failed",
        "which runtime handlers the node's container runtime has is not in a manifest",
    ),
    (
        "unschedulable",
        "what the nodes can allocate is not in a manifest",
    ),
    (
        "bad-rollout",
        "the manifest is the healthy revision 1; revision 2 comes from `kubectl set image` and needs CACHE_URL, which only the app knows",
    ),
    (
        "command-not-found",
        "migrate-db is missing from the image: only the image's contents show it",
    ),
    (
        "dependency-dns",
        "the database host is not a Service of the cluster: a name lookup at run time (no check resolves hosts in env values yet)",
    ),
    (
        "restart-rules",
        "its Job's pod restarts on exit 3 by its restartPolicyRules and fails on a host name lookup at run time, as dependency-dns",
    ),
    (
        "dependency-refused",
        "the Service exists; that no pod backs it is run-time state",
    ),
    (
        "exec-format",
        "the entrypoint binary's architecture is inside the image",
    ),
    (
        "image-pull-error",
        "whether the registry answers is known only when pulling",
    ),
    (
        "init-crash",
        "the schema migration fails on its own: an application error",
    ),
    (
        "job-fails",
        "the warehouse host is not a Service of the cluster: a name lookup at run time",
    ),
    (
        "missing-entrypoint",
        "/app/server is missing from the image: only the image's contents show it",
    ),
    (
        "missing-env-var",
        "the app alone knows it requires DATABASE_URL",
    ),
    ("segfault", "a native crash inside the program"),
    (
        "jvm-real-heap-space",
        "-Xmx64m is inside the limit: only the app's own use of its heap exhausts it",
    ),
    (
        "nginx-missing-include",
        "the include is named inside the ConfigMap's nginx configuration, which no check parses",
    ),
    (
        "nginx-port-80-nonroot",
        "runAsUser 33 with containerPort 80 would show it, but no check pairs them yet",
    ),
    (
        "node-dns",
        "orders-database is a host in an env value: a name lookup at run time",
    ),
    (
        "node-no-endpoints",
        "the Service exists; that no pod matches its selector is run-time state",
    ),
    (
        "postgres-wrong-password",
        "the password is a Secret value, which audit never reads",
    ),
    (
        "python-missing-env",
        "the app alone knows it requires DATABASE_URL",
    ),
    (
        "python-missing-module",
        "psycopg2 is missing from the image: only the image's contents show it",
    ),
    (
        "python-readonly-rootfs",
        "the app alone knows it writes /var/cache/orders",
    ),
    (
        "redis-wrong-password",
        "the passwords are Secret values, which audit never reads",
    ),
    (
        "sidecar-crash",
        "the sidecar alone knows it requires SHIPPER_TOKEN",
    ),
];

/// oom-limit is visible only live: the app needs 300 MiB, which running it shows (oom-history,
/// --rightsize), not the manifest.
const LIVE_ONLY: [(&str, &str); 1] = [(
    "oom-limit",
    "the app's real memory use shows only when it runs",
)];

/// Which checks catch a cause in a manifest.
fn checks_for(cause: &str) -> Option<&'static [CheckId]> {
    Some(match cause {
        // fixed-but-backing-off's reference is optional: flagged as such (severity info).
        "missing-configmap" => &[
            CheckId::UnresolvedConfigmap,
            CheckId::OptionalReferenceUnresolved,
        ],
        "missing-secret" => &[CheckId::UnresolvedSecret],
        "missing-config-key" => &[CheckId::UnresolvedKey],
        "missing-config-file" => &[CheckId::ConfigFileMissing],
        "oom-jvm-heap-over-limit" => &[CheckId::JvmHeapOverLimit],
        "liveness-probe-kill" => &[
            CheckId::StartupProbeMissing,
            CheckId::LivenessBudgetTooShort,
        ],
        "image-pull" => &[CheckId::PullNeverRegistryImage],
        "probe-wrong-port" => &[CheckId::ProbePortNotExposed],
        "entrypoint-exited" => &[CheckId::EntrypointExits, CheckId::EntrypointBackgrounds],
        _ => return None,
    })
}

fn target_matches(target: &str, object: &unloop_audit::ObjectRef) -> bool {
    object.to_string() == target
}

#[test]
fn visible_misconfigurations_are_caught_before_they_run() {
    let config = AuditConfig::default();
    let mut caught = Vec::new();
    for dir in scenarios() {
        let scenario = name(&dir);
        let (cause, target) = expect(&dir);
        let report = audit_path(&dir.join("manifest.yaml"), &config);
        if cause == "none" {
            assert!(
                report.findings.is_empty(),
                "{scenario}: the control scenario has findings: {:#?}",
                report.findings
            );
            continue;
        }
        if NOT_VISIBLE
            .iter()
            .chain(LIVE_ONLY.iter())
            .any(|(s, _)| *s == scenario)
        {
            continue;
        }
        let wanted = checks_for(&cause).unwrap_or_else(|| {
            panic!("{scenario}: cause {cause:?} is neither mapped to a check nor listed as not visible in a manifest")
        });
        let hit = report
            .findings
            .iter()
            .find(|f| wanted.contains(&f.check) && target_matches(&target, &f.object));
        let Some(hit) = hit else {
            panic!(
                "{scenario}: {target} has no {wanted:?} finding; findings: {:#?}",
                report.findings
            )
        };
        caught.push(format!(
            "{scenario}: {} ({})",
            hit.check,
            hit.severity.as_str()
        ));
    }
    assert_eq!(
        caught,
        [
            "entrypoint-exits-0: entrypoint-exits (error)",
            "fixed-but-backing-off: optional-reference-unresolved (info)",
            "image-never-pull: pull-never-registry-image (warning)",
            "jvm-heap: jvm-heap-over-limit (error)",
            "jvm-real-oomkilled: jvm-heap-over-limit (error)",
            "liveness-slow-start: startup-probe-missing (warning)",
            "liveness-wrong-port: probe-port-not-exposed (warning)",
            "missing-config-file: config-file-missing (error)",
            "missing-configmap: unresolved-configmap (error)",
            "missing-secret: unresolved-secret (error)",
            "missing-secret-key: unresolved-key (error)",
            "secret-volume-missing: unresolved-secret (error)",
            "shared-missing-secret: unresolved-secret (error)",
        ]
    );
}

/// Audits a captured bundle the way `unloop audit --live -n NAME` audits the cluster.
fn audit_bundle(dir: &Path) -> Option<unloop_audit::AuditReport> {
    let path = dir.join("bundle.json.gz");
    if !path.is_file() {
        return None;
    }
    let state =
        unloop_source::bundle::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let now = state.captured_at.unwrap_or_else(jiff::Timestamp::now);
    let inventory = Inventory::from_state(&state, Vec::new());
    let known = Known::live(
        state.scope.namespaces.clone(),
        state.config_maps.clone(),
        state.secrets.clone(),
        None,
        state.gaps.clone(),
    );
    let resolver = Resolver::new(vec![known]);
    let observed = Observed::new(state, now, true);
    let config = AuditConfig::default();
    let ctx = Context {
        config: &config,
        resolver: &resolver,
        observed: Some(&observed),
    };
    Some(unloop_audit::audit(&inventory, &ctx))
}

#[test]
fn captured_clusters_show_restarts_ooms_and_unresolved_references() {
    let mut seen = 0;
    for dir in scenarios() {
        let scenario = name(&dir);
        let Some(report) = audit_bundle(&dir) else {
            continue;
        };
        seen += 1;
        let (cause, target) = expect(&dir);
        let has = |c: CheckId| {
            report
                .findings
                .iter()
                .any(|f| f.check == c && target_matches(&target, &f.object))
        };
        match scenario.as_str() {
            "healthy" => assert!(
                !report
                    .findings
                    .iter()
                    .any(|f| f.severity >= Severity::Warning),
                "healthy: {:#?}",
                report.findings
            ),
            "oom-limit" | "jvm-heap" => assert!(
                has(CheckId::OomHistory),
                "{scenario}: no oom-history: {:#?}",
                report.findings
            ),
            "missing-configmap" => assert!(
                has(CheckId::UnresolvedConfigmap),
                "{scenario}: {:#?}",
                report.findings
            ),
            "missing-secret" => assert!(
                has(CheckId::UnresolvedSecret),
                "{scenario}: {:#?}",
                report.findings
            ),
            "missing-secret-key" => assert!(
                has(CheckId::UnresolvedKey),
                "{scenario}: {:#?}",
                report.findings
            ),
            // One missing Secret, two workloads that never started: each is named, no restarts.
            "shared-missing-secret" => {
                for name in ["orders", "invoices"] {
                    assert!(
                        report
                            .findings
                            .iter()
                            .any(|f| f.check == CheckId::UnresolvedSecret && f.object.name == name),
                        "{scenario}: {name}: {:#?}",
                        report.findings
                    );
                }
                assert!(
                    !has(CheckId::RecentRestarts),
                    "{scenario}: {:#?}",
                    report.findings
                );
            }
            // The cause is fixed (the ConfigMap now exists); the restarts remain.
            "fixed-but-backing-off" => {
                assert!(
                    !has(CheckId::OptionalReferenceUnresolved),
                    "{scenario}: {:#?}",
                    report.findings
                );
                assert!(
                    has(CheckId::RecentRestarts),
                    "{scenario}: {:#?}",
                    report.findings
                );
            }
            // Never started: no restart to report; what the manifest shows still shows.
            "image-never-pull" => {
                assert!(
                    !has(CheckId::RecentRestarts),
                    "{scenario}: {:#?}",
                    report.findings
                );
                assert!(
                    has(CheckId::PullNeverRegistryImage),
                    "{scenario}: {:#?}",
                    report.findings
                );
            }
            // Never started, stuck before any start, or a Job whose failed pods are not
            // restarted (restartPolicy Never) or are gone: failing, but no restart to report.
            "image-pull-error"
            | "job-fails"
            | "job-pods-gone"
            | "secret-volume-missing"
            | "unschedulable"
            | "sandbox-failed" => assert!(
                !has(CheckId::RecentRestarts),
                "{scenario}: {:#?}",
                report.findings
            ),
            _ => assert!(
                has(CheckId::RecentRestarts),
                "{scenario} ({cause}): crash-looped but no recent-restarts: {:#?}",
                report.findings
            ),
        }
    }
    assert!(seen > 0, "no captured bundles under testbed/scenarios");
}
