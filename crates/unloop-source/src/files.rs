//! State from files: an unloop bundle, `kubectl get ... -o json` output, or a
//! `kubectl cluster-info dump --output-directory` tree.

use std::path::{Path, PathBuf};

use serde_json::Value;
use unloop_core::state::ClusterState;

use crate::{SourceError, bundle, ingest};

/// Loads any supported input. Bundles are recognised by content, not by name.
pub fn load(path: &Path) -> Result<ClusterState, SourceError> {
    let meta = std::fs::metadata(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return load_dir(path);
    }
    if bundle::looks_gzipped(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })? {
        return bundle::read(path);
    }
    let text = std::fs::read(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| {
        if text.iter().take(64).any(|b| !b.is_ascii()) || !text.trim_ascii_start().starts_with(b"{")
        {
            SourceError::Unrecognised {
                path: path.to_path_buf(),
            }
        } else {
            SourceError::Corrupt {
                path: path.to_path_buf(),
                why: format!(
                    "invalid JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
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
    let n = add_objects(&mut state, value, None);
    if n == 0 {
        return Err(SourceError::Unrecognised {
            path: path.to_path_buf(),
        });
    }
    ingest::scrub(&mut state);
    Ok(state)
}

fn modified(meta: &std::fs::Metadata) -> Option<jiff::Timestamp> {
    meta.modified()
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
}

/// A cluster-info dump: `nodes.json` at the top, `NS/{pods,events,...}.json` below, and
/// `NS/POD/logs.txt` (or `NS/POD/CONTAINER/logs.txt`) for current container logs.
fn load_dir(root: &Path) -> Result<ClusterState, SourceError> {
    let mut state = ClusterState::default();
    let mut files = Vec::new();
    walk(root, &mut files).map_err(|source| SourceError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut objects = 0;
    let mut newest = None;
    for f in &files {
        let meta = std::fs::metadata(f).ok();
        newest = newest.max(meta.as_ref().and_then(modified));
        if f.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read(f).map_err(|source| SourceError::Io {
                path: f.clone(),
                source,
            })?;
            // The dump concatenates several JSON documents in some files.
            for v in serde_json::Deserializer::from_slice(&text).into_iter::<Value>() {
                let v = v.map_err(|e| SourceError::Corrupt {
                    path: f.clone(),
                    why: format!("invalid JSON at line {}: {e}", e.line()),
                })?;
                objects += add_objects(&mut state, v, None);
            }
        } else if f.file_name().is_some_and(|n| n == "logs.txt") {
            add_dump_log(&mut state, root, f)?;
        }
    }
    if objects == 0 {
        return Err(SourceError::Unrecognised {
            path: root.to_path_buf(),
        });
    }
    state.captured_at = newest;
    ingest::scrub(&mut state);
    Ok(state)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn add_dump_log(state: &mut ClusterState, root: &Path, f: &Path) -> Result<(), SourceError> {
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
    let bytes = std::fs::read(f).map_err(|source| SourceError::Io {
        path: f.to_path_buf(),
        source,
    })?;
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

/// Adds one object or list to the state; returns how many objects it recognised.
pub fn add_objects(state: &mut ClusterState, v: Value, kind_hint: Option<&str>) -> usize {
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| kind_hint.map(str::to_string));
    let Some(kind) = kind else { return 0 };
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
        return items
            .into_iter()
            .map(|i| add_objects(state, i, item_kind.as_deref()))
            .sum();
    }
    macro_rules! push {
        ($field:ident) => {
            match serde_json::from_value(v) {
                Ok(o) => {
                    state.$field.push(o);
                    1
                }
                Err(_) => 0,
            }
        };
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
        "ConfigMap" => match serde_json::from_value(v) {
            Ok(cm) => {
                state.config_maps.push(ingest::config_map(cm));
                1
            }
            Err(_) => 0,
        },
        "Secret" => match serde_json::from_value(v) {
            Ok(s) => {
                state.secrets.push(ingest::secret(s));
                1
            }
            Err(_) => 0,
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_lists_route_by_kind_and_drop_secret_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(
            &p,
            r#"{"kind":"List","items":[
                {"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"n"}},
                {"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"n"},"data":{"k":"c2VjcmV0"}},
                {"kind":"Widget","metadata":{"name":"w"}}]}"#,
        )
        .unwrap();
        let s = load(&p).unwrap();
        assert_eq!(s.pods.len(), 1);
        assert_eq!(s.secrets[0].keys, vec!["k"]);
        assert!(!serde_json::to_string(&s).unwrap().contains("c2VjcmV0"));
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
