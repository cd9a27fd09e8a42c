//! Reads manifests into an [`Inventory`]: files, directories (recursively: `*.yaml`, `*.yml`,
//! `*.json`) and `-` for stdin; multi-document YAML, JSON (one value or several concatenated, such
//! as one object per line), `kind: List`, and the output of `helm template` and `kustomize build`.
//!
//! Every input is streamed, in time linear in its size:
//! - YAML one document at a time: a line `---` (or `...`) ends a document, and each is parsed and
//!   reduced to what the checks need before the next is read, so memory follows the largest
//!   document, not the input. (A `---` at the start of a line inside a multi-line quoted scalar
//!   would also split; YAML writers do not produce that.)
//! - JSON one value at a time, from the reader.
//!
//! Bounds and skips: an input larger than [`LoadOptions::max_input_bytes`] (default
//! [`MAX_INPUT_BYTES`], 256 MiB) is an error that names the cap; a UTF-8 byte order mark is
//! ignored; FIFOs, sockets and devices (in a directory or named) are skipped with a note before
//! they are opened, so none can block the audit; in a directory, a file that is an unrendered Helm
//! template is skipped with a note and the rest is audited.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use unloop_core::malformed;

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
    #[error("{path}: larger than the {} cap on one input", cap_text(*cap))]
    TooLarge { path: String, cap: u64 },
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
            LoadError::TooLarge { .. } => {
                Some("split the input into several files, or audit the directory it came from")
            }
            LoadError::Io { .. } => None,
        }
    }

    /// True when the input is an unrendered Helm template (`{{ .Values.x }}`), not YAML.
    pub fn is_template(&self) -> bool {
        matches!(self, LoadError::Syntax { hint: Some(h), .. } if *h == HELM_HINT)
    }
}

const HELM_HINT: &str = "this looks like an unrendered Helm template: audit its output, `helm template RELEASE CHART | unloop audit -`";

fn cap_text(cap: u64) -> String {
    if cap >= 1024 * 1024 {
        format!("{} MiB", cap / (1024 * 1024))
    } else {
        format!("{cap}-byte")
    }
}

/// The default cap on one input (a file, or stdin).
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The namespace of objects that name none, as `kubectl apply -n` would place them.
    pub default_namespace: String,
    /// The most bytes one input may hold.
    pub max_input_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".into(),
            max_input_bytes: MAX_INPUT_BYTES,
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
        // The type is read before anything is opened: opening a FIFO blocks until a writer comes.
        let meta = std::fs::metadata(p).map_err(|source| LoadError::Io {
            path: display.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files, &mut inv.notes).map_err(|source| LoadError::Io {
                path: display.clone(),
                source,
            })?;
            if files.is_empty() {
                inv.notes
                    .push(format!("{display}: no *.yaml, *.yml or *.json files"));
            }
            for f in files {
                // One file of a directory that is a Helm template, not YAML, costs that file only.
                let mut one = Inventory::default();
                match load_file(&f, meta_len(&f), opts, &mut one) {
                    Ok(()) => absorb(&mut inv, one),
                    Err(e) if e.is_template() => inv.notes.push(format!(
                        "{}: skipped, an unrendered Helm template (audit `helm template` output instead)",
                        f.display()
                    )),
                    Err(e) => return Err(e),
                }
            }
        } else if meta.is_file() {
            load_file(p, Some(meta.len()), opts, &mut inv)?;
        } else {
            inv.notes.push(not_regular(&display));
        }
    }
    Ok(inv)
}

fn not_regular(display: &str) -> String {
    format!(
        "{display}: skipped, not a regular file (a FIFO, socket or device); pipe a stream to `unloop audit -`"
    )
}

fn meta_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Adds what one file held to the whole.
fn absorb(inv: &mut Inventory, one: Inventory) {
    inv.workloads.extend(one.workloads);
    inv.config.config_maps.extend(one.config.config_maps);
    inv.config.secrets.extend(one.config.secrets);
    inv.config.opaque_secrets.extend(one.config.opaque_secrets);
    inv.config
        .service_accounts
        .extend(one.config.service_accounts);
    inv.objects_read += one.objects_read;
    for (kind, n) in one.skipped {
        *inv.skipped.entry(kind).or_default() += n;
    }
    inv.notes.extend(one.notes);
}

fn load_file(
    path: &Path,
    len: Option<u64>,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    let display = path.display().to_string();
    if len.is_some_and(|l| l > opts.max_input_bytes) {
        return Err(LoadError::TooLarge {
            path: display,
            cap: opts.max_input_bytes,
        });
    }
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

/// Manifest files under `dir`, sorted; hidden entries are skipped, and so are manifests that are
/// not regular files (with a note), checked without opening them.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, notes: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = e.file_type()?;
        if kind.is_dir() {
            walk(&p, out, notes)?;
        } else if p
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            // A symlink is judged by what it points to.
            let regular = kind.is_file() || std::fs::metadata(&p).is_ok_and(|m| m.is_file());
            if regular {
                out.push(p);
            } else {
                notes.push(not_regular(&p.display().to_string()));
            }
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
    reader: R,
    display: &str,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), LoadError> {
    let mut reader = Capped {
        inner: reader,
        used: 0,
        cap: opts.max_input_bytes,
    };
    let io = |source: std::io::Error| {
        if source.get_ref().is_some_and(|e| e.is::<CapExceeded>()) {
            LoadError::TooLarge {
                path: display.to_string(),
                cap: opts.max_input_bytes,
            }
        } else {
            LoadError::Io {
                path: display.to_string(),
                source,
            }
        }
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
        if line_no == 1 && line.starts_with('\u{feff}') {
            // A byte order mark, as some Windows editors write: not content.
            line.drain(..'\u{feff}'.len_utf8());
        }
        let content = line.trim_end_matches(['\n', '\r']);
        if !seen_content {
            let t = content.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                // JSON: parse the rest as a stream of values, from the reader.
                let mut head = std::mem::take(&mut doc);
                head.push_str(&line);
                return load_json(head, &mut reader, display, doc_start, opts, inv).map_err(|e| {
                    match e {
                        JsonFail::Load(e) => e,
                        JsonFail::Io(e) => io(e),
                    }
                });
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

/// The marker inside the I/O error an input over its cap ends with.
#[derive(Debug)]
struct CapExceeded;

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("input larger than its cap")
    }
}

impl std::error::Error for CapExceeded {}

/// A reader that fails once more than `cap` bytes have been consumed from it.
struct Capped<R> {
    inner: R,
    used: u64,
    cap: u64,
}

impl<R: BufRead> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Capped<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.used > self.cap {
            return Err(std::io::Error::other(CapExceeded));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.used = self.used.saturating_add(n as u64);
        self.inner.consume(n);
    }
}

/// Where the JSON reader is: newlines passed, the line the current value starts on, and the
/// bytes read before the first value parsed (for the YAML fallback; dropped after it).
struct JsonLines {
    newlines: Cell<usize>,
    value_line: Cell<usize>,
    awaiting_value: Cell<bool>,
    replay: RefCell<Option<Vec<u8>>>,
}

/// Feeds serde_json from the input, noting lines as bytes pass (serde_json reads one byte at a
/// time from an `io::Read`), and keeping what it fed until the first value parses, for the YAML
/// fallback.
struct JsonFeed<'a, R> {
    inner: &'a mut R,
    lines: &'a JsonLines,
}

impl<R: Read> Read for JsonFeed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if self.lines.awaiting_value.get() && !b.is_ascii_whitespace() {
                self.lines.value_line.set(self.lines.newlines.get() + 1);
                self.lines.awaiting_value.set(false);
            }
            if b == b'\n' {
                self.lines.newlines.set(self.lines.newlines.get() + 1);
            }
        }
        if let Some(r) = self.lines.replay.borrow_mut().as_mut() {
            r.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

enum JsonFail {
    Load(LoadError),
    Io(std::io::Error),
}

impl From<LoadError> for JsonFail {
    fn from(e: LoadError) -> Self {
        JsonFail::Load(e)
    }
}

fn load_json<R: BufRead>(
    head: String,
    reader: &mut R,
    display: &str,
    first_line: usize,
    opts: &LoadOptions,
    inv: &mut Inventory,
) -> Result<(), JsonFail> {
    let lines = JsonLines {
        newlines: Cell::new(first_line - 1),
        value_line: Cell::new(first_line),
        awaiting_value: Cell::new(true),
        replay: RefCell::new(Some(Vec::new())),
    };
    let mut input = head.as_bytes().chain(&mut *reader);
    let feed = JsonFeed {
        inner: &mut input,
        lines: &lines,
    };
    let mut stream = serde_json::Deserializer::from_reader(feed).into_iter::<Value>();
    let mut first = true;
    loop {
        match stream.next() {
            None => return Ok(()),
            Some(Ok(v)) => {
                let source = Source {
                    file: display.into(),
                    line: lines.value_line.get(),
                    ..Default::default()
                };
                lines.awaiting_value.set(true);
                if first {
                    lines.replay.take();
                    first = false;
                }
                add_value(v, &source, opts, inv)?;
            }
            Some(Err(e)) if e.is_io() => return Err(JsonFail::Io(e.into())),
            Some(Err(e)) => {
                // Not JSON after all (YAML flow style such as `{a: 1}` starts the same way):
                // read it again, whole, as YAML.
                if !display.ends_with(".json") && first {
                    drop(stream);
                    let mut text = String::new();
                    for _ in 1..first_line {
                        text.push('\n');
                    }
                    // What serde_json consumed was kept; the rest is still in the reader.
                    let consumed = lines.replay.take().unwrap_or_default();
                    text.push_str(&String::from_utf8_lossy(&consumed));
                    let mut rest = String::new();
                    input.read_to_string(&mut rest).map_err(JsonFail::Io)?;
                    text.push_str(&rest);
                    return Ok(load_yaml_text(&text, display, opts, inv)?);
                }
                return Err(JsonFail::Load(LoadError::Syntax {
                    path: display.into(),
                    line: first_line + e.line().saturating_sub(1),
                    why: format!("invalid JSON at column {}: {e}", e.column()),
                    hint: None,
                }));
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
            "ConfigMap" | "Secret" => match yaml::<KeysOnly>(doc) {
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
    let value: Value = yaml(doc).map_err(|e| {
        let at = e.location().map(|l| doc_start + l.line() as usize - 1);
        LoadError::Syntax {
            path: display.into(),
            line: at.unwrap_or(line),
            why: format!("invalid YAML: {}", yaml_message(&e)),
            hint: doc.contains("{{").then_some(HELM_HINT),
        }
    })?;
    add_value(value, &source, opts, inv)
}

/// Parses one YAML document. Aliases may replay at most 16 events a byte of the document, so an
/// alias bomb (a "billion laughs": each anchor nine aliases of the one before) fails in
/// microseconds instead of growing without end, while anchors shared by a few containers parse;
/// events and nodes are bounded by the document's size, which the input cap bounds. Of a key
/// given twice in one mapping the last value counts, as it did with serde_yaml and as it does in
/// the API server's JSON decoding.
pub(crate) fn yaml<T: DeserializeOwned>(doc: &str) -> Result<T, serde_saphyr::Error> {
    // Outside aliases a document holds at most about one event a byte.
    let events = doc.len().saturating_mul(2).saturating_add(1024);
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = events;
    budget.max_nodes = events;
    budget.max_reader_input_bytes = None;
    budget.max_depth = 128;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events =
        doc.len().saturating_mul(16).saturating_add(10_000);
    // Entries go to the visitor as they come, as serde_yaml gave them: k8s-openapi's and
    // serde_json's keep the last (and LastWins, which buffers every struct, is slower).
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    // `defaultMode: 0755` is octal to kubectl (its YAML reader follows YAML 1.1): 493, not 755,
    // and not an error.
    options.legacy_octal_numbers = true;
    serde_saphyr::from_str_with_options(doc, options)
}

/// A YAML error's message in one line, without its position (the caller names the line).
pub(crate) fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default();
    first
        .split(" at line ")
        .next()
        .unwrap_or(first)
        .trim()
        .to_string()
}

fn typed<T: DeserializeOwned>(
    doc: &str,
    mut source: Source,
    opts: &LoadOptions,
    inv: &mut Inventory,
    add: fn(&mut Inventory, T, Option<Source>, &str),
) -> bool {
    match yaml::<T>(doc) {
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
            "Deployment" => malformed::parse(&v).map(|o| inv.add_deployment(o, src, ns)),
            "StatefulSet" => malformed::parse(&v).map(|o| inv.add_stateful_set(o, src, ns)),
            "DaemonSet" => malformed::parse(&v).map(|o| inv.add_daemon_set(o, src, ns)),
            "ReplicaSet" => malformed::parse(&v).map(|o| inv.add_replica_set(o, src, ns)),
            "Job" => malformed::parse(&v).map(|o| inv.add_job(o, src, ns)),
            "CronJob" => malformed::parse(&v).map(|o| inv.add_cron_job(o, src, ns)),
            _ => malformed::parse(&v).map(|o| inv.add_pod(o, src, ns)),
        };
        return parsed.map_err(|e| object_error(e.in_object(), &v));
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
                malformed::parse(&v).map_err(|e| object_error(e.in_object(), &v))?;
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
                .starts_with("m.yaml:1: Deployment d: field spec.replicas: invalid type"),
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
