//! `cargo bench -p unloop-audit`: auditing 10,000 manifests, from YAML text to findings, and the
//! checks alone on already parsed manifests.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, bench);
criterion_main!(benches);
