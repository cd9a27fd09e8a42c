//! `cargo bench -p unloop-audit`: auditing 10,000 manifests, from YAML text to findings, and the
//! checks alone on already parsed manifests; and loading plus checking N documents (1k, 10k,
//! 100k) as YAML and as one JSON object per line, which must grow linearly in N (JSON lines were
//! once quadratic: 8 MB took over 20 s).

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unloop_audit::load::{LoadOptions, load_str};
use unloop_audit::{AuditConfig, Context, Inventory, Known, Resolver};

/// 10,000 documents in the mix a real repository has: Deployments (some with the scenarios'
/// mistakes), StatefulSets, CronJobs, ConfigMaps and Secrets, across 50 namespaces.
fn manifests() -> String {
    let mut out = String::with_capacity(16 << 20);
    for i in 0..10_000 {
        let ns = format!("team-{}", i % 50);
        let _ = match i % 10 {
            0..=5 => write!(
                out,
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api-{i}\n  namespace: {ns}\n  labels: {{app: api-{i}}}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: api-{i}}}\n  template:\n    metadata:\n      labels: {{app: api-{i}}}\n    spec:\n      containers:\n      - name: api\n        image: registry.example/api:{tag}\n        args: [serve, --config, /etc/app/config.yaml]\n        env:\n        - {{name: JAVA_OPTS, value: \"-Xmx{heap}m\"}}\n        - name: DATABASE_PASSWORD\n          valueFrom: {{secretKeyRef: {{name: db-{s}, key: password}}}}\n        envFrom: [{{configMapRef: {{name: env-{c}}}}}]\n        ports: [{{name: http, containerPort: 8080}}]\n        livenessProbe: {{httpGet: {{path: /healthz, port: http}}, initialDelaySeconds: 5, periodSeconds: 5}}\n        readinessProbe: {{httpGet: {{path: /readyz, port: http}}}}\n        volumeMounts: [{{name: config, mountPath: /etc/app}}]\n        resources: {{requests: {{cpu: 100m, memory: 256Mi}}, limits: {{memory: 512Mi}}}}\n      volumes: [{{name: config, configMap: {{name: env-{c}}}}}]\n",
                tag = if i % 7 == 0 {
                    "latest".to_string()
                } else {
                    format!("1.{}", i % 13)
                },
                heap = 256 + (i % 5) * 128,
                s = i % 40,
                c = i % 60,
            ),
            6 => write!(
                out,
                "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db-{i}, namespace: {ns}}}\nspec:\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec:\n      containers:\n      - name: db\n        image: postgres:16.2\n        command: [sh, -c, 'docker-entrypoint.sh postgres &']\n        startupProbe: {{tcpSocket: {{port: 5432}}, failureThreshold: 30}}\n        livenessProbe: {{tcpSocket: {{port: 5432}}}}\n"
            ),
            7 => write!(
                out,
                "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: report-{i}, namespace: {ns}}}\nspec:\n  schedule: '0 3 * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          serviceAccountName: reporter\n          containers:\n          - {{name: report, image: 'registry.example/report:5', command: [echo, done]}}\n"
            ),
            8 => write!(
                out,
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: env-{}, namespace: {ns}}}\ndata:\n  LOG_LEVEL: info\n  settings.yaml: |\n    port: 8080\n",
                i % 60
            ),
            _ => write!(
                out,
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: db-{}, namespace: {ns}}}\ntype: Opaque\ndata: {{password: aHVudGVyMg==, user: YXBw}}\n",
                i % 40
            ),
        };
    }
    out
}

fn audit(inv: &Inventory, config: &AuditConfig) -> usize {
    let resolver = Resolver::new(vec![Known::manifests(&inv.config)]);
    let ctx = Context {
        config,
        resolver: &resolver,
        observed: None,
    };
    unloop_audit::audit(inv, &ctx).findings.len()
}

fn bench(c: &mut Criterion) {
    let text = manifests();
    let config = AuditConfig::default();
    let mut inv = Inventory::default();
    load_str(&text, "bench.yaml", &LoadOptions::default(), &mut inv).expect("bench manifests load");
    assert_eq!(inv.objects_read, 10_000);
    let mut group = c.benchmark_group("audit 10,000 manifests");
    group.sample_size(10);
    group.bench_function("load and check (YAML text to findings)", |b| {
        b.iter(|| {
            let mut inv = Inventory::default();
            load_str(
                black_box(&text),
                "bench.yaml",
                &LoadOptions::default(),
                &mut inv,
            )
            .expect("loads");
            audit(&inv, &config)
        })
    });
    group.bench_function("check only (parsed manifests)", |b| {
        b.iter(|| audit(black_box(&inv), &config))
    });
    group.finish();
}

/// Every document of the check manifests (tests/manifests/*/{fail,pass}.yaml), as JSON values.
fn check_manifests() -> Vec<serde_json::Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("manifests")
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|e| [e.path().join("fail.yaml"), e.path().join("pass.yaml")])
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
            if v.get("kind").is_some() {
                docs.push(v);
            }
        }
    }
    docs
}

/// `n` documents cycling through the check manifests, each renamed to be unique.
fn corpus(docs: &[serde_json::Value], n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let mut v = docs[i % docs.len()].clone();
            if let Some(name) = v.pointer_mut("/metadata/name") {
                *name = format!("{}-{i}", name.as_str().unwrap_or("x")).into();
            }
            v
        })
        .collect()
}

fn linear(c: &mut Criterion) {
    let docs = check_manifests();
    let config = AuditConfig::default();
    let opts = LoadOptions {
        max_input_bytes: u64::MAX,
        ..LoadOptions::default()
    };
    let mut group = c.benchmark_group("audit N documents");
    group.sample_size(10);
    for n in [1_000, 10_000, 100_000] {
        let objects = corpus(&docs, n);
        let json: String = objects
            .iter()
            .map(|v| serde_json::to_string(v).expect("json") + "\n")
            .collect();
        let yaml: String = objects
            .iter()
            .map(|v| format!("---\n{}", serde_yaml::to_string(v).expect("yaml")))
            .collect();
        drop(objects);
        group.throughput(Throughput::Elements(n as u64));
        for (format, text, file) in [
            ("json-lines", &json, "bench.json"),
            ("yaml", &yaml, "bench.yaml"),
        ] {
            group.bench_with_input(BenchmarkId::new(format, n), text, |b, text| {
                b.iter(|| {
                    let mut inv = Inventory::default();
                    load_str(black_box(text), file, &opts, &mut inv).expect("loads");
                    assert_eq!(inv.objects_read, n);
                    audit(&inv, &config)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, linear);
criterion_main!(benches);
