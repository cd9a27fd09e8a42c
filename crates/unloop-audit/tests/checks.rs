//! Every manifest check against its passing and failing manifests (tests/manifests/CHECK-ID/),
//! and the behaviours around them: configuration, exemptions, messages a user reads.

mod common;

use common::{audit_path, audit_text, manifests_dir};
use unloop_audit::{AuditConfig, CheckId, Severity};

#[test]
fn every_manifest_check_has_failing_and_passing_manifests() {
    let config = AuditConfig::default();
    for check in CheckId::ALL.into_iter().filter(|c| !c.live_only()) {
        let dir = manifests_dir().join(check.as_str());
        let fail = audit_path(&dir.join("fail.yaml"), &config);
        assert!(
            !fail.workloads.is_empty(),
            "{check}: fail.yaml has no workloads"
        );
        for (object, _) in &fail.workloads {
            assert!(
                fail.findings
                    .iter()
                    .any(|f| f.check == check && &f.object == object),
                "{check}: {object} in fail.yaml is not flagged; findings: {:#?}",
                fail.findings
                    .iter()
                    .map(|f| (f.check, &f.object, &f.message))
                    .collect::<Vec<_>>()
            );
        }
        let pass = audit_path(&dir.join("pass.yaml"), &config);
        assert!(
            !pass.workloads.is_empty(),
            "{check}: pass.yaml has no workloads"
        );
        let wrong: Vec<_> = pass
            .findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| (&f.object, &f.message))
            .collect();
        assert!(wrong.is_empty(), "{check}: pass.yaml flagged: {wrong:#?}");
    }
}

fn messages(text: &str, check: CheckId) -> Vec<String> {
    audit_text(text, &AuditConfig::default())
        .findings
        .into_iter()
        .filter(|f| f.check == check)
        .map(|f| f.message)
        .collect()
}

#[test]
fn messages_name_the_numbers() {
    let dir = manifests_dir();
    let r = audit_path(
        &dir.join("liveness-budget-too-short/fail.yaml"),
        &AuditConfig::default(),
    );
    let m: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.check == CheckId::LivenessBudgetTooShort)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        m,
        [
            "livenessProbe allows 20s to start (5 + 5 x 3): under the 30s floor",
            "startupProbe allows 10s to start (0 + 2 x 5): under the 30s floor",
            "livenessProbe allows 30s to start (0 + 10 x 3): under the 60s floor for JVM containers",
        ]
    );
    let r = audit_path(
        &dir.join("jvm-heap-over-limit/fail.yaml"),
        &AuditConfig::default(),
    );
    let m: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.check == CheckId::JvmHeapOverLimit)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        m[0],
        "-Xmx768m (env JAVA_OPTS) lets the heap grow to 768Mi, above limits.memory 256Mi: the container is OOM-killed before the heap is full"
    );
    assert_eq!(
        m[1],
        "-XX:MaxRAMPercentage=90 (command line (word 1)) lets the heap take 922Mi of limits.memory 1Gi, leaving 103Mi for metaspace, threads and native memory (keep the heap within 75%)"
    );
    let r = audit_path(
        &dir.join("unresolved-key/fail.yaml"),
        &AuditConfig::default(),
    );
    let m: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.check == CheckId::UnresolvedKey)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        m,
        [
            "env DATABASE_PASSWORD needs key password of Secret db-credentials in the given manifests; it has host, username",
            "volume conf needs key nginx.conf of ConfigMap settings in the given manifests; it has LOG_LEVEL",
        ]
    );
    let r = audit_path(
        &dir.join("entrypoint-backgrounds/fail.yaml"),
        &AuditConfig::default(),
    );
    let fixes: Vec<Option<String>> = r
        .findings
        .iter()
        .filter(|f| f.check == CheckId::EntrypointBackgrounds)
        .map(|f| f.fix.yaml.as_ref().map(|y| y.text().into_owned()))
        .collect();
    assert_eq!(
        fixes[0].as_deref(),
        Some(
            "containers:\n- name: api\n  command:\n  - sh\n  - -c\n  - /app/migrate && exec /app/server --port 8080\n"
        )
    );
    assert_eq!(
        fixes[1].as_deref(),
        Some(
            "containers:\n- name: worker\n  command:\n  - /bin/bash\n  - -ec\n  - |-\n    cd /app\n    exec ./worker\n  args: null\n"
        )
    );
}

#[test]
fn secret_values_on_command_lines_are_redacted_in_messages() {
    // A password on a command line is redacted wherever the command is quoted.
    let m = messages(
        "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: a}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers:\n      - {name: a, image: 'a:1', command: [sh, -c, 'server --password=hunter2 &']}\n",
        CheckId::EntrypointBackgrounds,
    );
    assert!(
        m[0].contains("--password=<redacted>") && !m[0].contains("hunter2"),
        "{m:?}"
    );
}

#[test]
fn config_changes_severities_thresholds_and_policies() {
    let dir = manifests_dir();
    let config = AuditConfig::parse(
        "severities:\n  startup-probe-missing: error\n  image-tag-latest: off\nthresholds:\n  start-budget-floor-seconds: 10\n  cpu-limit-policy: require\n",
    )
    .expect("config");
    let r = audit_path(&dir.join("startup-probe-missing/fail.yaml"), &config);
    assert!(
        r.findings
            .iter()
            .filter(|f| f.check == CheckId::StartupProbeMissing)
            .all(|f| f.severity == Severity::Error)
    );
    let r = audit_path(&dir.join("image-tag-latest/fail.yaml"), &config);
    assert!(
        !r.findings
            .iter()
            .any(|f| f.check == CheckId::ImageTagLatest)
    );
    assert!(!r.checks.contains(&CheckId::ImageTagLatest));
    // 20 s is above a 10 s floor.
    let r = audit_path(&dir.join("liveness-budget-too-short/fail.yaml"), &config);
    assert!(
        !r.findings
            .iter()
            .any(|f| f.check == CheckId::LivenessBudgetTooShort && f.object.name == "search")
    );
    // require: containers without a CPU limit are flagged, those with one pass.
    let r = audit_path(&dir.join("cpu-limit/pass.yaml"), &config);
    let m: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.check == CheckId::CpuLimit)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(m, ["no CPU limit (policy: require)"]);
    let r = audit_path(&dir.join("cpu-limit/fail.yaml"), &config);
    assert!(!r.findings.iter().any(|f| f.check == CheckId::CpuLimit));
}

#[test]
fn exemptions_by_annotation_and_config() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\n  annotations: {unloop.dev/ignore: 'image-tag-latest, requests-missing, no-such-check'}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: [{name: api, image: nginx}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: tool\n  namespace: shop\nspec:\n  containers: [{name: tool, image: nginx}]\n";
    let config = AuditConfig::parse("exemptions:\n  - checks: [image-tag-latest]\n    kind: pod\n    name: to*\n    reason: pinned by digest at deploy time\n").expect("config");
    let r = audit_text(text, &config);
    assert!(
        !r.findings.iter().any(|f| f.check == CheckId::ImageTagLatest
            || (f.check == CheckId::RequestsMissing && f.object.name == "api"))
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.check == CheckId::RequestsMissing && f.object.name == "tool")
    );
    let by: Vec<(&str, &str, &str)> = r
        .suppressed
        .iter()
        .map(|s| {
            (
                s.finding.object.name.as_str(),
                s.finding.check.as_str(),
                s.by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            ("api", "requests-missing", "annotation unloop.dev/ignore"),
            ("api", "image-tag-latest", "annotation unloop.dev/ignore"),
            (
                "tool",
                "image-tag-latest",
                "config exemption #1 (pinned by digest at deploy time)"
            ),
        ]
    );
    assert_eq!(
        r.notes,
        [
            "shop/deploy/api: unloop.dev/ignore names unknown check ids no-such-check (see docs/audit-checks.md)"
        ]
    );
}

/// The passing manifest of `probe-port-not-exposed`, changed in one field: the probed port is
/// declared `protocol: UDP`.
#[test]
fn a_probe_on_a_udp_only_port_is_flagged() {
    let pass = std::fs::read_to_string(manifests_dir().join("probe-port-not-exposed/pass.yaml"))
        .expect("manifest");
    let udp = pass.replace(
        "{name: metrics, containerPort: 9090}",
        "{name: metrics, containerPort: 9090, protocol: UDP}",
    );
    assert_ne!(udp, pass);
    assert!(messages(&pass, CheckId::ProbePortNotExposed).is_empty());
    let found = messages(&udp, CheckId::ProbePortNotExposed);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("HTTP probe on port 9090 (metrics)") && found[0].contains("UDP"),
        "{}",
        found[0]
    );
    // Declared for both protocols (as DNS servers do): TCP is there to probe.
    let both = pass.replace(
        "{name: metrics, containerPort: 9090}",
        "{name: metrics, containerPort: 9090, protocol: UDP}, {name: metrics-tcp, containerPort: 9090}",
    );
    assert!(messages(&both, CheckId::ProbePortNotExposed).is_empty());
}

/// Non-ASCII text anywhere in a `sh -c` script (it used to panic on a byte index inside a
/// character): the failing entrypoint manifest with its script changed.
#[test]
fn scripts_with_multibyte_text_are_read() {
    let fail = std::fs::read_to_string(manifests_dir().join("entrypoint-backgrounds/fail.yaml"))
        .expect("manifest");
    let script = "/app/migrate && /app/server --port 8080 &";
    assert!(fail.contains(script));
    for at in 0..=script.len() {
        for ch in ["é", "€", "😀"] {
            let mut changed = script.to_string();
            changed.insert_str(at, ch);
            let text = fail.replace(script, &changed);
            // Audited without a panic; the finding stays whenever the `&` is still last.
            let found = messages(&text, CheckId::EntrypointBackgrounds);
            if changed.ends_with('&') {
                assert!(!found.is_empty(), "{changed:?}");
            }
        }
    }
}

/// An -Xmx too large for a u64 of bytes is above any limit: flagged, not wrapped to 0Mi.
#[test]
fn an_absurd_heap_is_above_the_limit() {
    let fail = std::fs::read_to_string(manifests_dir().join("jvm-heap-over-limit/fail.yaml"))
        .expect("manifest");
    let text = fail.replace("-Xms256m -Xmx768m", "-Xms256m -Xmx99999999999999999999g");
    assert_ne!(text, fail);
    let found = messages(&text, CheckId::JvmHeapOverLimit);
    let orders: Vec<_> = found
        .iter()
        .filter(|m| m.contains("-Xmx99999999999999999999g"))
        .collect();
    assert_eq!(orders.len(), 1, "{found:?}");
    assert!(orders[0].contains("above limits.memory"), "{}", orders[0]);
    assert!(!orders[0].contains(" 0Mi"), "{}", orders[0]);
    let huge = fail.replace("-Xms256m -Xmx768m", "-Xmx16777216t");
    let found = messages(&huge, CheckId::JvmHeapOverLimit);
    assert!(
        found.iter().any(|m| m.contains("more than 16Ei")),
        "{found:?}"
    );
}

/// The largest quantities Kubernetes accepts (`8Ei`, `1Pi`) are read and reasoned about without
/// an overflow: the resource checks double and halve them.
#[test]
fn the_largest_quantities_are_read() {
    let fail = std::fs::read_to_string(manifests_dir().join("limits-missing/fail.yaml"))
        .expect("manifest");
    for q in ["8Ei", "1Pi", "7.99Ei", "1e18"] {
        let text = fail.replace("memory: 128Mi", &format!("memory: {q}"));
        assert_ne!(text, fail);
        let found = messages(&text, CheckId::LimitsMissing);
        assert!(!found.is_empty(), "{q}");
    }
    let far =
        std::fs::read_to_string(manifests_dir().join("memory-limit-far-above-request/fail.yaml"))
            .expect("manifest");
    for q in ["8Ei", "1Pi"] {
        let text = far.replace("limits: {memory: 1Gi}", &format!("limits: {{memory: {q}}}"));
        assert_ne!(text, far);
        let found = messages(&text, CheckId::MemoryLimitFarAboveRequest);
        assert!(found.iter().any(|m| m.contains(q)), "{q}: {found:?}");
    }
}
