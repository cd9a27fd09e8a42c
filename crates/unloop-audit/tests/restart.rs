//! The checks that depend on whether the kubelet restarts a container ask `unloop_core::restart`,
//! as diagnosis does: a container's own `restartPolicy` overrides the pod's either way, its
//! `restartPolicyRules` decide per exit code, and a native sidecar (an init container with
//! `restartPolicy: Always`) runs for the pod's life. On workloads captured from the testbed
//! (`testbed/scenarios/*/bundle.json.gz`), each test changing the field it is about.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, ContainerRestartRule, Probe};
use unloop_audit::{AuditConfig, AuditReport, CheckId, Inventory};

/// The workloads of a scenario's captured bundle, as `unloop audit --live` reads them.
fn captured(scenario: &str) -> Inventory {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testbed/scenarios")
        .join(scenario)
        .join("bundle.json.gz");
    let state =
        unloop_source::bundle::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Inventory::from_state(&state, Vec::new())
}

/// The first container of the scenario's only workload named `name`.
fn container<'a>(inv: &'a mut Inventory, name: &str) -> &'a mut Container {
    let w = inv
        .workloads
        .iter_mut()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no workload {name}"));
    &mut w.template.spec.as_mut().expect("a pod template").containers[0]
}

fn spec<'a>(inv: &'a mut Inventory, name: &str) -> &'a mut k8s_openapi::api::core::v1::PodSpec {
    inv.workloads
        .iter_mut()
        .find(|w| w.name == name)
        .and_then(|w| w.template.spec.as_mut())
        .unwrap_or_else(|| panic!("no workload {name}"))
}

fn audit(inv: &Inventory) -> AuditReport {
    unloop_audit::audit_manifests(inv, &AuditConfig::default())
}

/// The messages of `check` on container `container`.
fn flagged(r: &AuditReport, check: CheckId, container: &str) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.check == check && f.container.as_deref() == Some(container))
        .map(|f| f.message.clone())
        .collect()
}

/// The captured liveness-slow-start container's livenessProbe (5 + 5 x 3 = 20 s, no startupProbe).
fn slow_start_liveness() -> Probe {
    let mut inv = captured("liveness-slow-start");
    container(&mut inv, "search")
        .liveness_probe
        .clone()
        .expect("the captured container has a livenessProbe")
}

const PROBE_CHECKS: [CheckId; 2] = [
    CheckId::StartupProbeMissing,
    CheckId::LivenessBudgetTooShort,
];

/// The captured restart-rules Job: pod Never, its container Never with `Restart on exit codes
/// In [3]`. A failed liveness probe kills it (137 or 143), which no rule restarts: the container
/// ends, failed, and the Job fails. Not a crash loop, so the probe checks (whose advice is about
/// a slow start killed and restarted over and over) say nothing; once a rule restarts the kill
/// too, they do.
#[test]
fn a_probe_kill_the_restart_rules_do_not_restart_is_no_crash_loop() {
    let mut inv = captured("restart-rules");
    container(&mut inv, "import").liveness_probe = Some(slow_start_liveness());
    let r = audit(&inv);
    for check in PROBE_CHECKS {
        assert_eq!(
            flagged(&r, check, "import"),
            Vec::<String>::new(),
            "{check}"
        );
    }

    let rule: &mut ContainerRestartRule = &mut container(&mut inv, "import")
        .restart_policy_rules
        .as_mut()
        .unwrap()[0];
    rule.exit_codes.as_mut().unwrap().values = Some(vec![3, 137]);
    let r = audit(&inv);
    for check in PROBE_CHECKS {
        assert_eq!(flagged(&r, check, "import").len(), 1, "{check}: {r:#?}");
    }
}

/// A container's own restartPolicy overrides the pod's, both ways: a Deployment's container with
/// `restartPolicy: Never` is not restarted after a probe kill; a `restartPolicy: Never` Job's
/// container with its own `OnFailure` is, and crash-loops.
#[test]
fn the_containers_own_restart_policy_decides_the_probe_checks() {
    let mut inv = captured("liveness-slow-start");
    for check in PROBE_CHECKS {
        assert_eq!(flagged(&audit(&inv), check, "search").len(), 1, "{check}");
    }
    container(&mut inv, "search").restart_policy = Some("Never".into());
    let r = audit(&inv);
    for check in PROBE_CHECKS {
        assert_eq!(
            flagged(&r, check, "search"),
            Vec::<String>::new(),
            "{check}"
        );
    }

    let mut inv = captured("job-fails");
    assert_eq!(
        spec(&mut inv, "report").restart_policy.as_deref(),
        Some("Never")
    );
    container(&mut inv, "report").liveness_probe = Some(slow_start_liveness());
    for check in PROBE_CHECKS {
        assert_eq!(
            flagged(&audit(&inv), check, "report"),
            Vec::<String>::new(),
            "{check}"
        );
    }
    container(&mut inv, "report").restart_policy = Some("OnFailure".into());
    let r = audit(&inv);
    for check in PROBE_CHECKS {
        assert_eq!(flagged(&r, check, "report").len(), 1, "{check}: {r:#?}");
    }
}

/// `echo started` as a Deployment's command is restarted forever; with the container's own
/// `restartPolicy: OnFailure` its exit 0 ends it, and there is nothing to flag.
#[test]
fn an_entrypoint_that_returns_is_flagged_only_where_exit_0_restarts() {
    let mut inv = captured("entrypoint-exits-0");
    assert_eq!(
        flagged(&audit(&inv), CheckId::EntrypointExits, "api").len(),
        1
    );
    container(&mut inv, "api").restart_policy = Some("OnFailure".into());
    assert_eq!(
        flagged(&audit(&inv), CheckId::EntrypointExits, "api"),
        Vec::<String>::new()
    );
}

/// A native sidecar runs for the pod's life even in a `restartPolicy: Never` Job: its command
/// returning is a crash loop, and its probes kill and restart it. The captured entrypoint-exits-0
/// container (`echo started`, no probe) and the liveness-slow-start probe, put as a sidecar of the
/// captured restart-rules Job. As a plain init container (no restartPolicy) it is meant to finish.
#[test]
fn a_jobs_sidecar_is_checked_like_a_long_running_container() {
    let mut sidecar = container(&mut captured("entrypoint-exits-0"), "api").clone();
    sidecar.liveness_probe = Some(slow_start_liveness());
    sidecar.restart_policy = Some("Always".into());
    let mut inv = captured("restart-rules");
    spec(&mut inv, "import").init_containers = Some(vec![sidecar]);
    let r = audit(&inv);
    let exits = flagged(&r, CheckId::EntrypointExits, "api");
    assert_eq!(
        exits,
        [
            "`echo started`: `echo` returns at once; a sidecar must keep running in the foreground, so it is restarted forever (exit 0, Completed, CrashLoopBackOff)"
        ]
    );
    for check in PROBE_CHECKS {
        assert_eq!(flagged(&r, check, "api").len(), 1, "{check}: {r:#?}");
    }

    // A plain init container: it finishes, and may have no probe (the API refuses one).
    let init = &mut spec(&mut inv, "import").init_containers.as_mut().unwrap()[0];
    init.restart_policy = None;
    init.liveness_probe = None;
    assert_eq!(
        flagged(&audit(&inv), CheckId::EntrypointExits, "api"),
        Vec::<String>::new()
    );
}
