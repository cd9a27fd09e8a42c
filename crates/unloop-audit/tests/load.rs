//! Reading manifests as users hand them over: directories, stdin, helm and kustomize output,
//! kubectl JSON lists, and bad input that must fail with the file and line.

mod common;

use std::path::PathBuf;

use unloop_audit::load::{LoadOptions, load_paths};
use unloop_audit::{AuditConfig, CheckId};

fn load(
    paths: &[PathBuf],
    stdin: &str,
) -> Result<unloop_audit::Inventory, unloop_audit::load::LoadError> {
    load_paths(paths, &LoadOptions::default(), &mut stdin.as_bytes())
}

#[test]
fn directories_recursively_and_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("base/apps");
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
    std::fs::write(sub.join("api.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: api}\nspec: {containers: [{name: api, image: 'a:1'}]}\n").expect("write");
    std::fs::write(
        dir.path().join("base/cm.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("README.md"), "# not a manifest: [").expect("write");
    std::fs::write(dir.path().join(".git/x.yaml"), "{{ not yaml").expect("write");
    let stdin = "apiVersion: v1\nkind: Pod\nmetadata: {name: from-stdin, namespace: x}\nspec: {containers: [{name: c, image: 'a:1'}]}\n";
    let inv = load(&[dir.path().to_path_buf(), PathBuf::from("-")], stdin).expect("loads");
    let names: Vec<(&str, &str)> = inv
        .workloads
        .iter()
        .map(|w| {
            (
                w.name.as_str(),
                w.source
                    .as_ref()
                    .map(|s| s.file.as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(names[1], ("from-stdin", "<stdin>"));
    assert!(names[0].1.ends_with("base/apps/api.yaml"), "{names:?}");
    assert_eq!(inv.config.config_maps.len(), 1);
}

#[test]
fn helm_template_output_keeps_its_template_names() {
    // What `helm template` prints: a `# Source:` comment, then each document.
    let helm = "---\n# Source: shop/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: release-shop\n  labels:\n    helm.sh/chart: shop-0.1.0\nspec:\n  selector:\n    matchLabels: {app: shop}\n  template:\n    metadata:\n      labels: {app: shop}\n    spec:\n      containers:\n        - name: shop\n          image: \"shop:latest\"\n---\n# Source: shop/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata: {name: release-shop}\nspec: {ports: [{port: 80}]}\n";
    let inv = load(&[PathBuf::from("-")], helm).expect("loads");
    let report = common::audit_inventory(&inv, &AuditConfig::default());
    let f = report
        .findings
        .iter()
        .find(|f| f.check == CheckId::ImageTagLatest)
        .expect("latest flagged");
    let loc = f.location.as_ref().expect("location");
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.template.as_deref()),
        ("<stdin>", 17, Some("shop/templates/deployment.yaml"))
    );
    assert_eq!(report.skipped.get("Service"), Some(&1));
}

#[test]
fn kubectl_json_lists_with_items_before_kind() {
    // `kubectl get deploy,cm -o json`: items come before kind, each item carries its kind.
    let json = r#"{
    "apiVersion": "v1",
    "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
         "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "api", "image": "api:2", "envFrom": [{"configMapRef": {"name": "api-env"}}]}]}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-env", "namespace": "shop"}, "data": {"A": "1"}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "api"}}
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.json");
    std::fs::write(&path, json).expect("write");
    let report = common::audit_path(&path, &AuditConfig::default());
    assert_eq!(report.workloads.len(), 1);
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.check == CheckId::UnresolvedConfigmap),
        "{:?}",
        report.findings
    );
    assert_eq!(report.skipped.get("ServiceMonitor"), Some(&1));
    assert_eq!(
        report.findings[0].location.as_ref().map(|l| l.line),
        Some(1)
    );
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n   namespace: shop\n").expect("write");
    let err = load(std::slice::from_ref(&path), "").expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:9: invalid YAML: ", path.display())),
        "{text}"
    );
    let json = dir.path().join("broken.json");
    std::fs::write(
        &json,
        "{\"kind\": \"Pod\",\n \"metadata\": {\"name\": \"x\"\n",
    )
    .expect("write");
    let err = load(std::slice::from_ref(&json), "").expect_err("invalid");
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3: invalid JSON", json.display())),
        "{err}"
    );
    let binary = dir.path().join("blob.yaml");
    std::fs::write(&binary, [b'a', b':', b' ', 0xff, 0xfe, b'\n']).expect("write");
    let err = load(&[binary], "").expect_err("not text");
    assert!(err.to_string().ends_with(":1: not UTF-8 text"), "{err}");
    let err = load(&[dir.path().join("missing.yaml")], "").expect_err("missing");
    assert!(err.to_string().starts_with("cannot read "), "{err}");
}

fn manifest(rel: &str) -> String {
    std::fs::read_to_string(common::manifests_dir().join(rel)).expect("manifest")
}

/// Every document of a YAML stream as one compact JSON line.
fn json_lines(yaml: &str) -> String {
    let mut out = String::new();
    for v in serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("yaml") {
        out.push_str(&serde_json::to_string(&v).expect("json"));
        out.push('\n');
    }
    out
}

#[test]
fn a_byte_order_mark_is_not_content() {
    let yaml = manifest("probe-port-not-exposed/pass.yaml");
    let inv = load(&[PathBuf::from("-")], &format!("\u{feff}{yaml}")).expect("BOM + YAML loads");
    assert_eq!(inv.workloads.len(), 1);
    let json = json_lines(&yaml);
    let inv = load(&[PathBuf::from("-")], &format!("\u{feff}{json}")).expect("BOM + JSON loads");
    assert_eq!(inv.workloads.len(), 1);
}

#[test]
fn json_lines_stream_with_their_line_numbers() {
    let json = json_lines(&manifest("probe-port-not-exposed/fail.yaml"));
    let n = json.lines().count();
    assert!(n >= 3);
    let inv = load(&[PathBuf::from("-")], &format!("\n{json}")).expect("loads");
    let lines: Vec<usize> = inv
        .workloads
        .iter()
        .map(|w| w.source.as_ref().map(|s| s.line).unwrap_or_default())
        .collect();
    assert_eq!(lines, (2..n + 2).collect::<Vec<_>>());
}

#[test]
fn an_unrendered_helm_template_in_a_directory_is_skipped_with_a_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = manifest("probe-port-not-exposed/pass.yaml");
    std::fs::write(dir.path().join("a.yaml"), &yaml).expect("write");
    let template = yaml.replace("name: api,", "name: {{ .Values.name }},");
    assert_ne!(template, yaml);
    std::fs::write(dir.path().join("b.yaml"), &template).expect("write");
    std::fs::write(dir.path().join("c.yaml"), &yaml).expect("write");
    let inv = load(&[dir.path().to_path_buf()], "").expect("the rest is audited");
    assert_eq!(inv.workloads.len(), 2);
    let notes: Vec<_> = inv.notes.iter().filter(|n| n.contains("b.yaml")).collect();
    assert_eq!(notes.len(), 1, "{:?}", inv.notes);
    assert!(notes[0].contains("Helm template"), "{}", notes[0]);
    // Named on its own, a template is still an error with the hint.
    let err = load(&[dir.path().join("b.yaml")], "").expect_err("template");
    assert!(err.is_template(), "{err}");
}

#[cfg(unix)]
#[test]
fn fifos_are_skipped_without_being_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.yaml"),
        manifest("probe-port-not-exposed/pass.yaml"),
    )
    .expect("write");
    let fifo = dir.path().join("dump.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let paths = vec![dir.path().to_path_buf(), fifo.clone()];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load(&paths, "").map(|inv| (inv.workloads.len(), inv.notes)));
    });
    let (workloads, notes) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a FIFO must not block the audit")
        .expect("loads");
    assert_eq!(workloads, 1);
    let skipped: Vec<_> = notes
        .iter()
        .filter(|n| n.contains("dump.yaml") && n.contains("not a regular file"))
        .collect();
    assert_eq!(skipped.len(), 2, "{notes:?}");
}

#[test]
fn inputs_over_the_cap_fail_naming_it() {
    let yaml = manifest("probe-port-not-exposed/pass.yaml");
    let opts = LoadOptions {
        max_input_bytes: 4096,
        ..LoadOptions::default()
    };
    let big = format!("{yaml}\n---\n").repeat(4096 / yaml.len() + 2);
    let err = load_paths(&[PathBuf::from("-")], &opts, &mut big.as_bytes()).expect_err("over");
    assert!(err.to_string().contains("cap"), "{err}");
    let json = json_lines(&yaml).repeat(4096 / yaml.len() + 2);
    let err = load_paths(&[PathBuf::from("-")], &opts, &mut json.as_bytes()).expect_err("over");
    assert!(err.to_string().contains("cap"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("big.yaml");
    std::fs::write(&file, &big).expect("write");
    let err = load_paths(&[file], &opts, &mut std::io::empty()).expect_err("over");
    assert!(
        err.to_string().contains("4096") || err.to_string().contains("cap"),
        "{err}"
    );
    // Under the cap, the same input loads.
    let fits = load_paths(&[PathBuf::from("-")], &opts, &mut yaml.as_bytes());
    assert!(fits.is_ok());
}

#[test]
fn anchors_and_aliases_are_read() {
    // The check manifest, its sidecar's image an alias of the first container's.
    let yaml = manifest("probe-port-not-exposed/pass.yaml")
        .replace(
            "image: registry.example/api:3.3",
            "image: &image registry.example/api:3.3",
        )
        .replace("image: registry.example/proxy:1.0", "image: *image");
    let inv = load(&[PathBuf::from("-")], &yaml).expect("loads");
    let spec = inv.workloads[0].spec().expect("pod template");
    let images: Vec<Option<&str>> = spec.containers.iter().map(|c| c.image.as_deref()).collect();
    assert_eq!(
        images,
        vec![
            Some("registry.example/api:3.3"),
            Some("registry.example/api:3.3")
        ]
    );
}

#[test]
fn an_alias_bomb_fails_at_once_naming_its_line() {
    // A "billion laughs": nine levels of nine aliases each would expand the container's args to
    // 387,420,489 strings. The check manifest, with the bomb under a key Kubernetes ignores.
    let mut bomb =
        String::from("x-laughs:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, next) = (w[0], w[1]);
        bomb.push_str(&format!(
            "  {next}: &{next} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
    }
    let yaml = manifest("probe-port-not-exposed/pass.yaml")
        .replace("spec:\n", &format!("{bomb}spec:\n"))
        .replacen(
            "image: registry.example/api:3.3",
            "image: registry.example/api:3.3\n        args: *i",
            1,
        );
    let started = std::time::Instant::now();
    let err = load(&[PathBuf::from("-")], &yaml).expect_err("an alias bomb");
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.starts_with("<stdin>:"), "{text}");
    assert!(text.contains("invalid YAML"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "took {elapsed:?}"
    );
}

#[test]
fn of_a_key_given_twice_the_last_value_counts() {
    // As serde_yaml read it before, and as the API server decodes JSON.
    let yaml = manifest("probe-port-not-exposed/pass.yaml").replace(
        "        image: registry.example/proxy:1.0\n",
        "        image: registry.example/proxy:1.0\n        image: registry.example/proxy:2.0\n",
    );
    let inv = load(&[PathBuf::from("-")], &yaml).expect("loads");
    let spec = inv.workloads[0].spec().expect("pod template");
    assert_eq!(
        spec.containers[1].image.as_deref(),
        Some("registry.example/proxy:2.0")
    );
    // In a document read untyped (a List) too.
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}",
        yaml.trim_end().replace('\n', "\n  ")
    );
    let inv = load(&[PathBuf::from("-")], &list).expect("loads");
    let spec = inv.workloads[0].spec().expect("pod template");
    assert_eq!(
        spec.containers[1].image.as_deref(),
        Some("registry.example/proxy:2.0")
    );
}

#[test]
fn a_yaml_1_1_octal_mode_reads_as_kubectl_reads_it() {
    // `defaultMode: 0755` is 0o755 to kubectl; a YAML 1.2 reader took it for 755.0 and the whole
    // file was rejected.
    let yaml = manifest("unresolved-configmap/pass.yaml").replace(
        "{name: conf, configMap: {name: settings}}",
        "{name: conf, configMap: {name: settings, defaultMode: 0755}}",
    );
    let inv = load(&[PathBuf::from("-")], &yaml).expect("loads");
    let spec = inv.workloads[0].spec().expect("pod template");
    let mode = spec.volumes.as_ref().unwrap()[0]
        .config_map
        .as_ref()
        .unwrap()
        .default_mode;
    assert_eq!(mode, Some(0o755));
}

/// A testbed scenario's manifest with one field of the wrong type: the error names the file, the
/// object and the field's path, not a position in serde's view of the document.
#[test]
fn a_malformed_field_names_the_object_and_the_field() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/segfault/manifest.yaml"),
    )
    .expect("manifest");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("segfault.yaml");
    for (from, to, field) in [
        (
            "replicas: 1",
            "replicas: one",
            "field spec.replicas: invalid type: string \"one\"",
        ),
        (
            "      containers:\n",
            "      containers: {}\n      was:\n",
            "field spec.template.spec.containers: invalid type: map",
        ),
    ] {
        assert!(text.contains(from));
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
        let err = load(std::slice::from_ref(&path), "")
            .expect_err("malformed")
            .to_string();
        assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
        assert!(
            err.contains(&format!("Deployment thumbnailer: {field}")),
            "{err}"
        );
    }
}
