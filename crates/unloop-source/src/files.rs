//! State from files: an unloop bundle, `kubectl get ... -o json` output, or a
//! `kubectl cluster-info dump --output-directory` tree.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;
use unloop_core::malformed::{self, Malformed};
use unloop_core::state::{ClusterState, Gap, GapAbout, GapReason};

use crate::input::{self, Capped, LimitExceeded};
use crate::{SourceError, bundle, ingest};

/// The most a `kubectl get -o json` file may hold.
pub const MAX_JSON_BYTES: u64 = 1 << 30;
/// The most one JSON file of a cluster-info dump may hold.
pub const MAX_DUMP_FILE_BYTES: u64 = 1 << 30;
/// The most JSON a whole cluster-info dump may hold.
pub const MAX_DUMP_BYTES: u64 = 2 << 30;
/// How deep a dump directory is walked (a dump is `NS/POD/CONTAINER/logs.txt`: four levels).
pub const MAX_DUMP_DEPTH: usize = 8;
/// How many directory entries a dump may hold.
pub const MAX_DUMP_ENTRIES: usize = 200_000;

const READ_BUFFER: usize = 256 * 1024;

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads any supported input. Bundles are recognised by content, not by name. Only a regular
/// file or a directory is read: a FIFO or a device is refused before it is opened.
pub fn load(path: &Path) -> Result<ClusterState, SourceError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if meta.is_dir() {
        return load_dir(path);
    }
    if !meta.is_file() {
        return Err(SourceError::NotRegular {
            path: path.to_path_buf(),
            kind: input::kind_of(&meta),
        });
    }
    if bundle::looks_gzipped(path)? {
        return bundle::read(path);
    }
    let (mut file, meta) = input::open_regular(path)?;
    let limit = LimitExceeded {
        what: "JSON",
        limit: MAX_JSON_BYTES,
    };
    if meta.len() > MAX_JSON_BYTES {
        return Err(input::too_large(path, &limit));
    }
    // The first bytes decide between "not a format unloop reads" and "damaged JSON".
    let mut head = Vec::with_capacity(64);
    (&mut file)
        .take(64)
        .read_to_end(&mut head)
        .map_err(io_error(path))?;
    let looks_json = head.iter().all(u8::is_ascii) && head.trim_ascii_start().starts_with(b"{");
    let rest = MAX_JSON_BYTES.saturating_sub(head.len() as u64);
    let reader = BufReader::with_capacity(
        READ_BUFFER,
        (&head[..]).chain(Capped::new(file, rest, "JSON")),
    );
    let value: Value = serde_json::from_reader(reader).map_err(|e| {
        if e.is_io() {
            let io = std::io::Error::from(e);
            match input::limit_of(&io) {
                Some(_) => input::too_large(path, &limit),
                None => SourceError::Io {
                    path: path.to_path_buf(),
                    source: io,
                },
            }
        } else if !looks_json {
            SourceError::Unrecognised {
                path: path.to_path_buf(),
            }
        } else {
            SourceError::Corrupt {
                path: path.to_path_buf(),
                why: json_why(&e),
            }
        }
    })?;
    if value.get("kind").and_then(Value::as_str) == Some(bundle::KIND) {
        return bundle::read(path);
    }
    let mut state = ClusterState {
        captured_at: modified(&meta),
        ..Default::default()
    };
    let n = add_objects(&mut state, value, None).map_err(malformed_in(path))?;
    if n == 0 {
        return Err(SourceError::Unrecognised {
            path: path.to_path_buf(),
        });
    }
    absent_kinds(&mut state, "this kubectl output");
    ingest::scrub(&mut state);
    Ok(state)
}

/// A malformed object of the file (or dump file) at `path`.
fn malformed_in(path: &Path) -> impl Fn(Malformed) -> SourceError + '_ {
    move |what| SourceError::Malformed {
        path: path.to_path_buf(),
        what,
    }
}

fn json_why(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "the JSON ends early (truncated file)".to_string()
    } else {
        format!("invalid JSON: {e}")
    }
}

fn modified(meta: &std::fs::Metadata) -> Option<jiff::Timestamp> {
    meta.modified()
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
}

/// What a walk of a dump directory found: the files to read, and entries it skipped.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    skipped: Vec<Gap>,
    entries: usize,
}

/// A cluster-info dump: `nodes.json` at the top, `NS/{pods,events,...}.json` below, and
/// `NS/POD/logs.txt` (or `NS/POD/CONTAINER/logs.txt`) for current container logs.
fn load_dir(root: &Path) -> Result<ClusterState, SourceError> {
    let mut state = ClusterState::default();
    let mut walk = Walk::default();
    walk_dir(root, root, 0, &mut walk)?;
    let mut objects = 0;
    let mut newest = None;
    let mut json_left = MAX_DUMP_BYTES;
    // Objects first, then logs: a log names its pod's containers only once the pods are read,
    // whatever the order of files and folders (`NS/api-1/logs.txt` sorts before `NS/pods.json`).
    let is_json = |f: &PathBuf| f.extension().is_some_and(|e| e == "json");
    let is_log = |f: &PathBuf| f.file_name().is_some_and(|n| n == "logs.txt");
    let files: Vec<&PathBuf> = (walk.files.iter().filter(|f| is_json(f)))
        .chain(walk.files.iter().filter(|f| is_log(f)))
        .collect();
    for f in files {
        let wanted_json = is_json(f);
        let (file, meta) = match input::open_regular(f) {
            Ok(opened) => opened,
            // Swapped for something else since the walk looked at it.
            Err(SourceError::NotRegular { kind, .. }) => {
                walk.skipped.push(skipped(root, f, kind));
                continue;
            }
            Err(e) => return Err(e),
        };
        newest = newest.max(modified(&meta));
        if wanted_json {
            let cap = MAX_DUMP_FILE_BYTES.min(json_left);
            let (what, limit) = if cap < MAX_DUMP_FILE_BYTES {
                ("JSON in a whole dump directory", MAX_DUMP_BYTES)
            } else {
                ("JSON per file of a dump directory", MAX_DUMP_FILE_BYTES)
            };
            if meta.len() > cap {
                return Err(input::too_large(f, &LimitExceeded { what, limit }));
            }
            json_left -= meta.len();
            let reader = BufReader::with_capacity(READ_BUFFER, Capped::new(file, cap, what));
            // The dump concatenates several JSON documents in some files.
            for v in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
                let v = v.map_err(|e| {
                    if e.is_io() {
                        let io = std::io::Error::from(e);
                        match input::limit_of(&io) {
                            Some(_) => input::too_large(f, &LimitExceeded { what, limit }),
                            None => SourceError::Io {
                                path: f.clone(),
                                source: io,
                            },
                        }
                    } else {
                        SourceError::Corrupt {
                            path: f.clone(),
                            why: json_why(&e),
                        }
                    }
                })?;
                objects += add_objects(&mut state, v, None).map_err(malformed_in(f))?;
            }
        } else {
            add_dump_log(&mut state, root, f, file, meta.len())?;
        }
    }
    if objects == 0 {
        return Err(SourceError::Unrecognised {
            path: root.to_path_buf(),
        });
    }
    state.captured_at = newest;
    state.gaps.extend(walk.skipped);
    absent_kinds(&mut state, "a cluster-info dump");
    ingest::scrub(&mut state);
    Ok(state)
}

/// ConfigMaps and Secrets the input does not hold are unknown, not absent from the cluster: a gap,
/// so that no rule says "does not exist" of the ConfigMap every pod mounts (`kube-root-ca.crt`).
fn absent_kinds(state: &mut ClusterState, input: &str) {
    use unloop_core::state::ListOf;
    for (list, none) in [
        (ListOf::ConfigMaps, state.config_maps.is_empty()),
        (ListOf::Secrets, state.secrets.is_empty()),
    ] {
        if none {
            state.gaps.push(Gap::new(
                GapAbout::list(list, None),
                GapReason::NotInInput,
                format!("{input} holds no {}", list.as_str()),
            ));
        }
    }
}

fn skipped(root: &Path, p: &Path, why: &str) -> Gap {
    Gap::new(
        GapAbout::File {
            path: input::shown(root, p).display().to_string(),
        },
        GapReason::Skipped,
        format!("{why}; skipped"),
    )
}

/// Walks a dump directory in name order without following links to directories (no loops), at
/// most `MAX_DUMP_DEPTH` deep and `MAX_DUMP_ENTRIES` entries in all. Entries that are not regular
/// files (FIFOs, sockets, devices, dangling links) are never opened: they become notes.
fn walk_dir(root: &Path, dir: &Path, depth: usize, w: &mut Walk) -> Result<(), SourceError> {
    if depth >= MAX_DUMP_DEPTH {
        w.skipped.push(Gap::new(
            GapAbout::Directory {
                path: input::shown(root, dir).display().to_string(),
            },
            GapReason::Skipped,
            format!("deeper than {MAX_DUMP_DEPTH} levels; not read"),
        ));
        return Ok(());
    }
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let e = e.map_err(io_error(dir))?;
        w.entries += 1;
        if w.entries > MAX_DUMP_ENTRIES {
            return Err(SourceError::TooLarge {
                path: root.to_path_buf(),
                limit: format!("{MAX_DUMP_ENTRIES} entries in a dump directory"),
            });
        }
        let t = e.file_type().map_err(io_error(&e.path()))?;
        entries.push((e.path(), t));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, t) in entries {
        if t.is_dir() {
            walk_dir(root, &p, depth + 1, w)?;
        } else if t.is_file() {
            w.files.push(p);
        } else if t.is_symlink() {
            // A link to a regular file is read like one; a link to a directory is not followed.
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => w.files.push(p),
                Ok(m) if m.is_dir() => w.skipped.push(skipped(
                    root,
                    &p,
                    "a symbolic link to a directory, not followed",
                )),
                Ok(m) => w.skipped.push(skipped(
                    root,
                    &p,
                    &format!(
                        "a symbolic link to {}, not a regular file",
                        input::kind_of(&m)
                    ),
                )),
                Err(e) => w.skipped.push(skipped(
                    root,
                    &p,
                    &format!("a symbolic link that leads nowhere ({e})"),
                )),
            }
        } else {
            let kind = std::fs::symlink_metadata(&p)
                .map(|m| input::kind_of(&m))
                .unwrap_or("not a regular file");
            w.skipped
                .push(skipped(root, &p, &format!("{kind}, not a regular file")));
        }
    }
    Ok(())
}

/// A container log of a dump: only its tail is read (by seeking), so memory stays flat however
/// large the file is.
fn add_dump_log(
    state: &mut ClusterState,
    root: &Path,
    f: &Path,
    mut file: std::fs::File,
    len: u64,
) -> Result<(), SourceError> {
    let rel: Vec<String> = f
        .strip_prefix(root)
        .unwrap_or(f)
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let (ns, pod, container) = match rel.as_slice() {
        [ns, pod, _] => (ns.clone(), pod.clone(), None),
        [ns, pod, c, _] => (ns.clone(), pod.clone(), Some(c.clone())),
        _ => return Ok(()),
    };
    let bytes = input::read_tail(f, &mut file, len, ingest::MAX_LOG_BYTES as u64)?;
    // kubectl writes every container of the pod into one file, each between
    // `==== START logs for container C of pod NS/POD ====` and `==== END ... ====`.
    let sections = dump_log_sections(&bytes);
    let cut = len > bytes.len() as u64;
    if !sections.is_empty() {
        for (i, s) in sections.into_iter().enumerate() {
            let c = s.container.to_string();
            match s.error {
                Some(why) => state.gaps.push(Gap::new(
                    GapAbout::Log {
                        namespace: ns.clone(),
                        pod: pod.clone(),
                        container: c,
                    },
                    GapReason::NotInInput,
                    format!("kubectl could not read it when it made the dump: {why}"),
                )),
                None => state
                    .logs
                    .push(ingest::log(&ns, &pod, &c, false, s.text, cut && i == 0)),
            }
        }
        return Ok(());
    }
    let container = container.or_else(|| {
        state
            .pods
            .iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(&ns)
                    && p.metadata.name.as_deref() == Some(&pod)
            })
            .and_then(|p| p.spec.as_ref()?.containers.first().map(|c| c.name.clone()))
    });
    state.logs.push(ingest::log(
        &ns,
        &pod,
        &container.unwrap_or_default(),
        false,
        &bytes,
        false,
    ));
    Ok(())
}

/// One container's part of a dump's `logs.txt`.
#[derive(Debug, PartialEq)]
struct LogSection<'a> {
    container: &'a str,
    text: &'a [u8],
    /// kubectl's `Request log error: ...` in place of the log.
    error: Option<String>,
}

/// The container sections of a dump's `logs.txt`. A tail read may start inside a section: its
/// END line names the container. Empty when the file has no section markers (an older layout,
/// one file per container).
fn dump_log_sections(bytes: &[u8]) -> Vec<LogSection<'_>> {
    const START: &[u8] = b"==== START logs for container ";
    const END: &[u8] = b"==== END logs for container ";
    let mut out = Vec::new();
    let mut open: Option<(&str, usize)> = None;
    let mut at = 0;
    let mut seen_marker = false;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let start = at;
        at += line.len();
        let trimmed = line.trim_ascii_end();
        if let Some(c) = container_of(trimmed, START) {
            seen_marker = true;
            open = Some((c, at));
        } else if let Some(c) = container_of(trimmed, END) {
            seen_marker = true;
            // Without a START (cut off by the tail read), the section began at the file's start.
            let begin = match open.take() {
                Some((_, b)) => b,
                None => 0,
            };
            let text = &bytes[begin..start];
            let body = String::from_utf8_lossy(text);
            let error = body
                .trim()
                .strip_prefix("Request log error: ")
                .filter(|_| body.trim().lines().count() == 1)
                .map(str::to_string);
            out.push(LogSection {
                container: c,
                text,
                error,
            });
        }
    }
    // A section still open at the end of the file: cut short, its text runs to the end.
    if let Some((c, begin)) = open {
        out.push(LogSection {
            container: c,
            text: &bytes[begin..],
            error: None,
        });
    }
    if !seen_marker {
        out.clear();
    }
    out
}

/// The container a section marker line names (`PREFIX C of pod NS/POD ====`).
fn container_of<'a>(line: &'a [u8], prefix: &[u8]) -> Option<&'a str> {
    let rest = std::str::from_utf8(line.strip_prefix(prefix)?).ok()?;
    rest.split_once(" of pod ").map(|(c, _)| c)
}

/// Adds one object or list to the state; returns how many objects it recognised.
pub fn add_objects(
    state: &mut ClusterState,
    v: Value,
    kind_hint: Option<&str>,
) -> Result<usize, Malformed> {
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| kind_hint.map(str::to_string));
    let Some(kind) = kind else { return Ok(0) };
    if kind == "List" || kind.ends_with("List") {
        let item_kind = kind
            .strip_suffix("List")
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let items = match v {
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut n = 0;
        for i in items {
            n += add_objects(state, i, item_kind.as_deref())?;
        }
        return Ok(n);
    }
    // An object of a kind unloop reads that does not parse is an error naming the object and
    // the field, never skipped in silence (a pod dropped is a crash not diagnosed).
    macro_rules! push {
        ($field:ident) => {{
            state.$field.push(malformed::parse(&v)?);
            Ok(1)
        }};
    }
    match kind.as_str() {
        "Pod" => push!(pods),
        "Event" => push!(events),
        "Node" => push!(nodes),
        "Service" => push!(services),
        "EndpointSlice" => push!(endpoint_slices),
        "ReplicaSet" => push!(replica_sets),
        "Deployment" => push!(deployments),
        "StatefulSet" => push!(stateful_sets),
        "DaemonSet" => push!(daemon_sets),
        "Job" => push!(jobs),
        "ControllerRevision" => push!(controller_revisions),
        "ConfigMap" => {
            state
                .config_maps
                .push(ingest::config_map(malformed::parse(&v)?));
            Ok(1)
        }
        "Secret" => {
            state.secrets.push(ingest::secret(malformed::parse(&v)?));
            Ok(1)
        }
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios")
            .join(name)
    }

    #[test]
    fn kubectl_lists_route_by_kind_and_drop_secret_values() {
        // A `kubectl get -o json` List of captured objects: the missing-secret-key scenario's
        // pod (its bundle), and its Namespace and Secret (its manifest), the Secret as the API
        // server answers it (values base64 in `data`).
        let dir = scenario("missing-secret-key");
        let state = crate::bundle::read(&dir.join("bundle.json.gz")).unwrap();
        let pod = serde_json::to_value(&state.pods[0]).unwrap();
        let text = std::fs::read_to_string(dir.join("manifest.yaml")).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let of_kind = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap().clone();
        let mut secret = of_kind("Secret");
        secret["data"] = serde_json::json!({"username": "c2VjcmV0LXZhbHVl"});
        let list =
            serde_json::json!({"kind": "List", "items": [pod, secret, of_kind("Namespace")]});
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.json");
        std::fs::write(&p, list.to_string()).unwrap();
        let s = load(&p).unwrap();
        assert_eq!(s.pods.len(), 1);
        assert_eq!(s.secrets[0].keys, vec!["host", "username"]);
        let out = serde_json::to_string(&s).unwrap();
        assert!(!out.contains("c2VjcmV0LXZhbHVl"), "a Secret value survived");
    }

    /// A captured pod with one field broken, in a kubectl List and in a dump's `pods.json`: the
    /// error names the pod and the field, and the object is never dropped in silence.
    #[test]
    fn a_malformed_field_names_the_object_and_the_field() {
        let state = crate::bundle::read(&scenario("segfault").join("bundle.json.gz")).unwrap();
        let mut pod = serde_json::to_value(&state.pods[0]).unwrap();
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        pod["status"]["containerStatuses"][0]["restartCount"] = "x".into();
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("pods.json");
        let list = serde_json::json!({"kind": "List", "items": [pod.clone()]});
        std::fs::write(&p, list.to_string()).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "Pod segfault/{name}: field status.containerStatuses[0].restartCount: invalid type: string \"x\", expected i32"
            )),
            "{e}"
        );
        assert!(!e.contains("line 1 column"), "{e}");

        pod["status"]["containerStatuses"][0]["restartCount"] = 7.into();
        pod["spec"]["containers"] = serde_json::json!({});
        let dump = tmp.path().join("dump");
        std::fs::create_dir_all(dump.join("segfault")).unwrap();
        let list = serde_json::json!({"kind": "PodList", "items": [pod]});
        std::fs::write(dump.join("segfault/pods.json"), list.to_string()).unwrap();
        let e = load(&dump).unwrap_err().to_string();
        assert!(e.contains("segfault/pods.json"), "{e}");
        assert!(
            e.contains(&format!(
                "Pod segfault/{name}: field spec.containers: invalid type: map"
            )),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_unrecognised_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        std::fs::write(&p, [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
        assert!(matches!(load(&p), Err(SourceError::Unrecognised { .. })));
        std::fs::write(&p, "{\"kind\": \"Pod\", ").unwrap();
        assert!(matches!(load(&p), Err(SourceError::Corrupt { .. })));
    }
}
