//! `cargo bench -p unloop-audit`: auditing 10,000 manifests, from YAML text to findings, and the
//! checks alone on already parsed manifests; loading plus checking N documents (1k, 10k, 100k)
//! as YAML and as one JSON object per line, which must grow linearly in N (JSON lines were once
//! quadratic: 8 MB took over 20 s); and writing fix snippets. The manifests are the check
//! manifests (tests/manifests: each check's mistakes and their fixes), renamed to be unique.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unloop_audit::load::{LoadOptions, load_str};
use unloop_audit::{AuditConfig, Inventory, Snippet, Yaml};

/// `docs` as one YAML stream, one document each.
fn yaml_stream(docs: &[serde_json::Value]) -> String {
    docs.iter()
        .map(|v| format!("---\n{}", serde_saphyr::to_string(v).expect("yaml")))
        .collect()
}

fn audit(inv: &Inventory, config: &AuditConfig) -> usize {
    unloop_audit::audit_manifests(inv, config).findings.len()
}

fn bench(c: &mut Criterion) {
    let text = yaml_stream(&corpus(&check_manifests(), 10_000));
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
        for v in serde_saphyr::from_multiple::<serde_json::Value>(&text).expect("yaml") {
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
        let yaml = yaml_stream(&objects);
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

/// Writing fix snippets: every fix of the check manifests' failing files, with the crate's own
/// writer and with serde-saphyr's emitter; why the snippets have a writer of their own.
fn snippets(c: &mut Criterion) {
    let docs = check_manifests();
    let text: String = docs
        .iter()
        .map(|v| serde_json::to_string(v).expect("json") + "\n")
        .collect();
    let mut inv = Inventory::default();
    load_str(&text, "bench.yaml", &LoadOptions::default(), &mut inv).expect("loads");
    let fixes: Vec<Yaml> = unloop_audit::audit_manifests(&inv, &AuditConfig::default())
        .findings
        .into_iter()
        .filter_map(|f| match f.fix.yaml {
            Some(Snippet::Data(y)) => Some(y),
            _ => None,
        })
        .collect();
    assert!(fixes.len() > 10, "{} snippets", fixes.len());
    let mut group = c.benchmark_group("fix snippets");
    group.throughput(Throughput::Elements(fixes.len() as u64));
    group.bench_function("own writer", |b| {
        b.iter(|| fixes.iter().map(|y| y.text().len()).sum::<usize>())
    });
    group.bench_function("serde-saphyr", |b| {
        b.iter(|| {
            fixes
                .iter()
                .map(|y| serde_saphyr::to_string(y).expect("yaml").len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench, linear, snippets);
criterion_main!(benches);
