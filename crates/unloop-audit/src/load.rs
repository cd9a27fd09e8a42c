//! Reads manifests into an [`Inventory`]: files, directories (recursively: `*.yaml`, `*.yml`,
//! `*.json`) and `-` for stdin; multi-document YAML, JSON (one value or several concatenated),
//! `kind: List`, and the output of `helm template` and `kustomize build`.
//!
//! YAML is streamed one document at a time: a line `---` (or `...`) ends a document, and each is
//! parsed and reduced to what the checks need before the next is read, so memory follows the
//! largest document, not the input. (A `---` at the start of a line inside a multi-line quoted
//! scalar would also split; YAML writers do not produce that.) JSON input is read whole.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::inventory::{Inventory, KeysOnly, Source, WORKLOAD_KINDS};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {why}")]
    Syntax {
        path: String,
        line: usize,
        why: String,
        hint: Option<&'static str>,
    },
    #[error("{path}:{line}: {kind} {name}: {why}")]
    Object {
        path: String,
        line: usize,
        kind: String,
        name: String,
        why: String,
    },
}

impl LoadError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LoadError::Syntax { hint, .. } => *hint,
            LoadError::Object { .. } => Some(
                "the object does not match its Kubernetes schema; kubectl apply would refuse it too",
            ),
            LoadError::Io { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The namespace of objects that name none, as `kubectl apply -n` would place them.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".into(),
        }
    }
}

/// Loads every path; `-` reads `stdin`.
pub fn load_paths(
    paths: &[PathBuf],
    opts: &LoadOptions,
    stdin: &mut dyn BufRead,
) -> Result<Inventory, LoadError> {
    let mut inv = Inventory::default();
    for p in paths {
        if p.as_os_str() == "-" {
            load_reader(&mut *stdin, "<stdin>", opts, &mut inv)?;
            continue;
        }
        let display = p.display().to_string();
        let meta = std::fs::metadata(p).map_err(|source| LoadError::Io {
            path: display.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files).map_err(|source| LoadError::Io {
                path: display.clone(),
                source,
            })?;
            if files.is_empty() {
                inv.notes
                    .push(format!("{display}: no *.yaml, *.yml or *.json files"));
            }
            for f in files {
                load_file(&f, opts, &mut inv)?;
            }
        } else {
            load_file(p, opts, &mut inv)?;
        }
    }
    Ok(inv)
}

fn load_file(path: &Path, opts: &LoadOptions, inv: &mut Inventory) -> Result<(), LoadError> {
    let display = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: display.clone(),
        source,
    })?;
    load_reader(
        std::io::BufReader::with_capacity(64 * 1024, file),
        &display,
        opts,
        inv,
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if e.file_type()?.is_dir() {
            if !hidden {
                walk(&p, out)?;
            }
        } else if !hidden
            && p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads text already in memory (tests, benchmarks).
pub fn load_str(
    text: &str,
    display: &str,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    load_reader(text.as_bytes(), display, opts, inv)
}

/// Reads one stream of manifests, document by document.
pub fn load_reader<R: BufRead>(
    mut reader: R,
    display: &str,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: display.to_string(),
        source,
    };
    let mut line_no = 0usize;
    let mut doc = String::new();
    let mut doc_start = 1usize;
    let mut line = String::new();
    let mut seen_content = false;
    loop {
        line.clear();
        let n = match reader.read_line(&mut line) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(LoadError::Syntax {
                    path: display.into(),
                    line: line_no + 1,
                    why: "not UTF-8 text".into(),
                    hint: None,
                });
            }
            Err(e) => return Err(io(e)),
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        let content = line.trim_end_matches(['\n', '\r']);
        if !seen_content {
            let t = content.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                // JSON: read the rest and parse it as a stream of values.
                let mut text = std::mem::take(&mut doc);
                text.push_str(&line);
                reader.read_to_string(&mut text).map_err(io)?;
                return load_json(&text, display, doc_start, opts, inv);
            }
            if !t.is_empty() && !t.starts_with('#') && content != "---" {
                seen_content = true;
            }
        }
        if content == "---" || content.starts_with("--- ") || content == "..." {
            flush(&doc, doc_start, display, opts, inv)?;
            doc.clear();
            doc_start = line_no + 1;
            if let Some(rest) = content.strip_prefix("--- ") {
                doc.push_str(rest);
                doc.push('\n');
                doc_start = line_no;
            }
            continue;
        }
        doc.push_str(&line);
    }
    flush(&doc, doc_start, display, opts, inv)
}

fn load_json(
    text: &str,
    display: &str,
    first_line: usize,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut offset = 0;
    loop {
        let start_line = first_line + text[..offset.min(text.len())].matches('\n').count();
        match stream.next() {
            None => return Ok(()),
            Some(Ok(v)) => {
                let line = start_line + leading_newlines(&text[offset.min(text.len())..]);
                offset = stream.byte_offset();
                let source = Source {
                    file: display.into(),
                    line,
                    ..Default::default()
                };
                add_value(v, &source, opts, inv)?;
            }
            Some(Err(e)) => {
                // Not JSON after all (YAML flow style such as `{a: 1}` starts the same way).
                if !display.ends_with(".json") && offset == 0 {
                    let mut tail = String::new();
                    for _ in 1..first_line {
                        tail.push('\n');
                    }
                    tail.push_str(text);
                    return load_yaml_text(&tail, display, opts, inv);
                }
                return Err(LoadError::Syntax {
                    path: display.into(),
                    line: first_line + e.line().saturating_sub(1),
                    why: format!("invalid JSON at column {}: {e}", e.column()),
                    hint: None,
                });
            }
        }
    }
}

/// YAML given whole; only used when text that looked like JSON was not.
fn load_yaml_text(
    text: &str,
    display: &str,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    let mut doc = String::new();
    let mut doc_start = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        if content == "---" || content == "..." {
            flush(&doc, doc_start, display, opts, inv)?;
            doc.clear();
            doc_start = i + 2;
        } else {
            doc.push_str(line);
        }
    }
    flush(&doc, doc_start, display, opts, inv)
}

fn leading_newlines(s: &str) -> usize {
    s.chars()
        .take_while(|c| c.is_whitespace())
        .filter(|c| *c == '\n')
        .count()
}

/// Parses one YAML document and adds what it holds.
fn flush(
    doc: &str,
    doc_start: usize,
    display: &str,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    let mut template = None;
    let mut first_line = None;
    for (i, l) in doc.lines().enumerate() {
        let t = l.trim();
        if let Some(src) = t.strip_prefix("# Source: ") {
            template.get_or_insert_with(|| src.trim().to_string());
        }
        if !t.is_empty() && !t.starts_with('#') {
            first_line = Some(doc_start + i);
            break;
        }
    }
    let Some(line) = first_line else {
        return Ok(());
    };
    let source = Source {
        file: display.into(),
        line,
        template,
        container_lines: Vec::new(),
    };
    // The common case, one typed parse: the kind is on a top-level line of its own.
    let typed = match top_level_kind(doc) {
        Some(kind) => match kind {
            "Deployment" => {
                typed::<Deployment>(doc, source.clone(), opts, inv, Inventory::add_deployment)
            }
            "StatefulSet" => {
                typed::<StatefulSet>(doc, source.clone(), opts, inv, Inventory::add_stateful_set)
            }
            "DaemonSet" => {
                typed::<DaemonSet>(doc, source.clone(), opts, inv, Inventory::add_daemon_set)
            }
            "ReplicaSet" => {
                typed::<ReplicaSet>(doc, source.clone(), opts, inv, Inventory::add_replica_set)
            }
            "Job" => typed::<Job>(doc, source.clone(), opts, inv, Inventory::add_job),
            "CronJob" => typed::<CronJob>(doc, source.clone(), opts, inv, Inventory::add_cron_job),
            "Pod" => typed::<Pod>(doc, source.clone(), opts, inv, Inventory::add_pod),
            "ConfigMap" | "Secret" => match serde_yaml::from_str::<KeysOnly>(doc) {
                Ok(k) => {
                    let set = k.into_key_set(&opts.default_namespace);
                    if kind == "ConfigMap" {
                        inv.config.config_maps.push(set)
                    } else {
                        inv.config.secrets.push(set)
                    }
                    inv.objects_read += 1;
                    true
                }
                Err(_) => false,
            },
            _ => false,
        },
        None => false,
    };
    if typed {
        return Ok(());
    }
    let value: Value = serde_yaml::from_str(doc).map_err(|e| {
        let at = e.location().map(|l| doc_start + l.line() - 1).unwrap_or(line);
        let why = e.to_string();
        let why = why.split(" at line ").next().unwrap_or(&why).to_string();
        LoadError::Syntax {
            path: display.into(),
            line: at,
            why: format!("invalid YAML: {why}"),
            hint: doc.contains("{{").then_some("this looks like an unrendered Helm template: audit its output, `helm template RELEASE CHART | unloop audit -`"),
        }
    })?;
    add_value(value, &source, opts, inv)
}

fn typed<T: DeserializeOwned>(
    doc: &str,
    mut source: Source,
    opts: &LoadOptions,
    inv: &mut Inventory,
    add: fn(&mut Inventory, T, Option<Source>, &str),
) -> bool {
    match serde_yaml::from_str::<T>(doc) {
        Ok(obj) => {
            source.container_lines = container_lines(doc, source.line - first_line_offset(doc));
            inv.objects_read += 1;
            add(inv, obj, Some(source), &opts.default_namespace);
            true
        }
        // The slower path reports the error precisely, or converts an older apiVersion.
        Err(_) => false,
    }
}

/// Lines before the first content line: `source.line` minus this is the document's first line.
fn first_line_offset(doc: &str) -> usize {
    doc.lines()
        .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        .count()
}

/// The value of a top-level `kind:` line, if the document has one.
fn top_level_kind(doc: &str) -> Option<&str> {
    doc.lines().find_map(|l| l.strip_prefix("kind:")).map(|v| {
        v.split('#')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
    })
}

/// The line of each container's `name:` within a document, found after the first
/// `containers:` (or `initContainers:`) line. Flow style (`- {name: api, ...}`) is found too.
fn container_lines(doc: &str, doc_start: usize) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut in_containers = false;
    for (i, l) in doc.lines().enumerate() {
        let t = l.trim_start();
        if t.starts_with("containers:")
            || t.starts_with("initContainers:")
            || t.starts_with("\"containers\"")
            || t.starts_with("\"initContainers\"")
        {
            in_containers = true;
            continue;
        }
        if !in_containers {
            continue;
        }
        let t = t
            .trim_start_matches('-')
            .trim_start()
            .trim_start_matches('{')
            .trim_start();
        let Some(rest) = t
            .strip_prefix("name:")
            .or_else(|| t.strip_prefix("\"name\":"))
        else {
            continue;
        };
        let name = rest
            .trim()
            .split([',', '}', '#'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if !name.is_empty() && !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), doc_start + i));
        }
    }
    out
}

fn meta_name(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string()
}

/// Adds one parsed object (or the items of a list) to the inventory.
fn add_value(
    mut v: Value,
    source: &Source,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    if v.is_null() {
        return Ok(());
    }
    let Some(kind) = v.get("kind").and_then(Value::as_str).map(str::to_string) else {
        inv.objects_read += 1;
        *inv.skipped
            .entry("(not a Kubernetes object)".into())
            .or_default() += 1;
        return Ok(());
    };
    if kind == "List" || (kind.ends_with("List") && v.get("items").is_some_and(Value::is_array)) {
        if let Some(Value::Array(items)) = v.get_mut("items").map(Value::take) {
            for item in items {
                add_value(item, source, opts, inv)?;
            }
        }
        return Ok(());
    }
    inv.objects_read += 1;
    let object_error = |why: String, v: &Value| LoadError::Object {
        path: source.file.clone(),
        line: source.line,
        kind: kind.clone(),
        name: meta_name(v),
        why,
    };
    if let Some((_, version)) = WORKLOAD_KINDS.iter().find(|(k, _)| *k == kind) {
        let given = v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if given != *version {
            // apps/v1beta2 Deployments, batch/v1beta1 CronJobs: same pod template, read as current.
            inv.notes.push(format!(
                "{}:{}: {kind} {} is {given:?}; read as {version}",
                source.file,
                source.line,
                meta_name(&v)
            ));
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), Value::String((*version).into()));
            }
        }
        let src = Some(source.clone());
        let ns = opts.default_namespace.as_str();
        let parsed = match kind.as_str() {
            "Deployment" => {
                serde_json::from_value(v.clone()).map(|o| inv.add_deployment(o, src, ns))
            }
            "StatefulSet" => {
                serde_json::from_value(v.clone()).map(|o| inv.add_stateful_set(o, src, ns))
            }
            "DaemonSet" => {
                serde_json::from_value(v.clone()).map(|o| inv.add_daemon_set(o, src, ns))
            }
            "ReplicaSet" => {
                serde_json::from_value(v.clone()).map(|o| inv.add_replica_set(o, src, ns))
            }
            "Job" => serde_json::from_value(v.clone()).map(|o| inv.add_job(o, src, ns)),
            "CronJob" => serde_json::from_value(v.clone()).map(|o| inv.add_cron_job(o, src, ns)),
            _ => serde_json::from_value(v.clone()).map(|o| inv.add_pod(o, src, ns)),
        };
        return parsed.map_err(|e| object_error(e.to_string(), &v));
    }
    let ns_of = |v: &Value| {
        v.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(&opts.default_namespace)
            .to_string()
    };
    match kind.as_str() {
        "ConfigMap" | "Secret" => {
            let keys: KeysOnly =
                serde_json::from_value(v.clone()).map_err(|e| object_error(e.to_string(), &v))?;
            let set = keys.into_key_set(&opts.default_namespace);
            if kind == "ConfigMap" {
                inv.config.config_maps.push(set)
            } else {
                inv.config.secrets.push(set)
            }
        }
        "ServiceAccount" => {
            inv.config
                .service_accounts
                .insert((ns_of(&v), meta_name(&v)));
        }
        // Operators that create a Secret of the same name (or the target name) from another store.
        "SealedSecret" => {
            let name = v
                .pointer("/spec/template/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| meta_name(&v));
            inv.config.opaque_secrets.insert((ns_of(&v), name));
        }
        "ExternalSecret" => {
            let name = v
                .pointer("/spec/target/name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| meta_name(&v));
            inv.config.opaque_secrets.insert((ns_of(&v), name));
        }
        other => *inv.skipped.entry(other.to_string()).or_default() += 1,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Inventory, LoadError> {
        let mut inv = Inventory::default();
        load_str(text, "m.yaml", &LoadOptions::default(), &mut inv).map(|_| inv)
    }

    #[test]
    fn container_lines_block_and_flow() {
        let doc = "kind: Pod\nmetadata:\n  name: api\nspec:\n  containers:\n  - name: api\n    image: x\n  - {name: side, image: y}\n";
        assert_eq!(
            container_lines(doc, 10),
            vec![("api".to_string(), 15), ("side".to_string(), 17)]
        );
    }

    #[test]
    fn documents_lists_and_lines() {
        let inv = load(
            "# Source: chart/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n---\n\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, namespace: x}\n  spec:\n    containers: [{name: c, image: i}]\n",
        )
        .expect("valid");
        assert_eq!(inv.config.config_maps[0].keys, vec!["a"]);
        assert_eq!(inv.config.config_maps[0].namespace, "default");
        assert_eq!(inv.workloads.len(), 1);
        assert_eq!(inv.workloads[0].namespace, "x");
        assert_eq!(inv.workloads[0].source.as_ref().map(|s| s.line), Some(8));
    }

    #[test]
    fn json_streams_and_old_api_versions() {
        let inv = load(
            r#"{"apiVersion":"apps/v1beta2","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{},"template":{"spec":{"containers":[{"name":"c"}]}}}}
{"kind":"Widget","metadata":{"name":"w"}}"#,
        )
        .expect("valid");
        assert_eq!(inv.workloads.len(), 1);
        assert_eq!(inv.skipped.get("Widget"), Some(&1));
        assert!(inv.notes[0].contains("read as apps/v1"), "{:?}", inv.notes);
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let err = load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p: q\n").expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("m.yaml:8: invalid YAML"), "{text}");
        let err = load(
            "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\nspec:\n  replicas: two\n",
        )
        .expect_err("wrong type");
        assert!(
            err.to_string()
                .starts_with("m.yaml:1: Deployment d: invalid type"),
            "{err}"
        );
        let err = load("kind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n")
            .expect_err("template");
        assert!(
            err.hint().is_some_and(|h| h.contains("helm template")),
            "{err}"
        );
    }
}
