//! Malformed input, named for a person. When an object read from outside (a bundle, a kubectl
//! list, a dump, a manifest) has a field of the wrong type (`restartCount: "x"`, `containers: {}`),
//! the error names the object (kind, namespace and name, where readable) and the field's path in
//! it, never only a byte offset in a file. Every reader of objects goes through [`parse`] (one
//! object) or [`explain`] (a whole document that failed to parse).

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A field of the wrong type (or a missing required one), located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// `Pod shop/api-7f9c`: the innermost Kubernetes object on the way to the field; None when
    /// the field is outside any object (a bundle's header) or the object has no readable name.
    pub object: Option<String>,
    /// The field's path inside that object (inside the document without one), as kubectl's
    /// JSONPath writes it: `status.containerStatuses[0].restartCount`.
    pub field: String,
    /// What was wrong, in serde's words: `invalid type: string "x", expected i32`.
    pub why: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.object, self.field.is_empty()) {
            (Some(o), false) => write!(f, "{o}: field {}: {}", self.field, self.why),
            (Some(o), true) => write!(f, "{o}: {}", self.why),
            (None, false) => write!(f, "field {}: {}", self.field, self.why),
            (None, true) => f.write_str(&self.why),
        }
    }
}

impl std::error::Error for Malformed {}

impl Malformed {
    /// The field and what was wrong, for a message that names the object itself:
    /// `field spec.replicas: invalid type: ...`.
    pub fn in_object(&self) -> String {
        Malformed {
            object: None,
            ..self.clone()
        }
        .to_string()
    }
}

/// Parses one object as a `T`. On failure the parse runs again, tracking the path, to name the
/// object and the field (failures are rare; the path costs nothing on the way that succeeds).
pub fn parse<T: DeserializeOwned>(v: &Value) -> Result<T, Malformed> {
    T::deserialize(v).map_err(|e| {
        explain::<T>(v).unwrap_or_else(|| Malformed {
            object: object_name(v, None),
            field: String::new(),
            why: without_position(&e.to_string()),
        })
    })
}

/// Why `root` does not parse as a `T`, with the object and the field named; None if it parses.
pub fn explain<T: DeserializeOwned>(root: &Value) -> Option<Malformed> {
    let e = serde_path_to_error::deserialize::<_, T>(root).err()?;
    let why = without_position(&e.inner().to_string());
    Some(locate(root, e.path(), why))
}

/// Walks `path` from `root`, remembering the innermost Kubernetes object passed through.
fn locate(root: &Value, path: &serde_path_to_error::Path, why: String) -> Malformed {
    use serde_path_to_error::Segment;
    let mut cur = Some(root);
    // The innermost object so far: its name and where in the path its fields start.
    let mut found: Option<(String, usize)> = None;
    // The key of the list the current value sits in (`pods` in a bundle's `state.pods[3]`).
    let mut list_key: Option<&str> = None;
    let mut last_key: Option<&str> = None;
    let segments: Vec<&Segment> = path.iter().collect();
    for (i, seg) in segments.iter().enumerate() {
        if let Some(v) = cur
            && let Some(name) = object_name(v, list_key)
        {
            found = Some((name, i));
        }
        cur = match seg {
            Segment::Seq { index } => {
                list_key = last_key;
                cur.and_then(|v| v.get(index))
            }
            Segment::Map { key } => {
                last_key = Some(key.as_str());
                list_key = None;
                cur.and_then(|v| v.get(key.as_str()))
            }
            Segment::Enum { .. } | Segment::Unknown => None,
        };
    }
    let (object, from) = match found {
        Some((name, i)) => (Some(name), i),
        None => (None, 0),
    };
    Malformed {
        object,
        field: field_path(&segments[from..]),
        why,
    }
}

/// `Kind namespace/name` of a value that is a Kubernetes object: a map with a `metadata.name` (or
/// `generateName`), its kind from `kind` or from the list it sits in (a bundle's `pods`).
fn object_name(v: &Value, list_key: Option<&str>) -> Option<String> {
    let meta = v.get("metadata")?.as_object()?;
    let name = meta
        .get("name")
        .or_else(|| meta.get("generateName"))?
        .as_str()?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| list_key.and_then(kind_of_list))
        .unwrap_or_else(|| "object".into());
    Some(match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    })
}

/// The kind of the objects in a bundle's list (`replicaSets` → ReplicaSet).
fn kind_of_list(key: &str) -> Option<String> {
    let singular = key
        .strip_suffix("es")
        .filter(|s| s.ends_with("ss"))
        .or_else(|| key.strip_suffix('s'))?;
    let mut c = singular.chars();
    let first = c.next()?;
    Some(first.to_uppercase().chain(c).collect())
}

/// `status.containerStatuses[0].restartCount`.
fn field_path(segments: &[&serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// serde_json's message without its ` at line 1 column 3400`: a parsed value has no position
/// worth citing, the object and the field say where.
fn without_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains(" column ") => s[..i].to_string(),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use k8s_openapi::api::core::v1::Pod;

    /// The captured segfault pod, as JSON.
    fn captured_pod() -> Value {
        let mut state = testing::scenario("segfault");
        serde_json::to_value(testing::pod(&mut state)).unwrap()
    }

    #[test]
    fn a_wrong_type_names_the_pod_and_the_field() {
        let mut v = captured_pod();
        v["status"]["containerStatuses"][0]["restartCount"] = "x".into();
        let e = parse::<Pod>(&v).unwrap_err();
        let name = v["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            e.object.as_deref(),
            Some(format!("Pod segfault/{name}").as_str())
        );
        assert_eq!(e.field, "status.containerStatuses[0].restartCount");
        assert!(e.why.contains("invalid type: string \"x\""), "{e}");
        assert!(!e.to_string().contains("line 1 column"), "{e}");
    }

    #[test]
    fn a_map_for_a_list_names_the_list() {
        let mut v = captured_pod();
        v["spec"]["containers"] = serde_json::json!({});
        let e = parse::<Pod>(&v).unwrap_err();
        assert_eq!(e.field, "spec.containers");
        assert!(e.to_string().starts_with("Pod segfault/"), "{e}");
    }

    /// In a bundle's state the object has a kind of its own; inside a list without one it is
    /// named by its list (`replicaSets` → ReplicaSet).
    #[test]
    fn a_bundle_path_names_the_innermost_object() {
        let state = testing::scenario("segfault");
        let mut v = serde_json::json!({ "state": serde_json::to_value(&state).unwrap() });
        v["state"]["replicaSets"][0]["spec"]["replicas"] = "three".into();
        v["state"]["replicaSets"][0]
            .as_object_mut()
            .unwrap()
            .remove("kind");
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[allow(dead_code)]
            state: crate::ClusterState,
        }
        let e = explain::<Envelope>(&v).unwrap();
        assert!(
            e.object
                .as_deref()
                .is_some_and(|o| o.starts_with("ReplicaSet segfault/")),
            "{e}"
        );
        assert_eq!(e.field, "spec.replicas");
        assert!(
            explain::<Envelope>(
                &serde_json::json!({ "state": serde_json::to_value(&state).unwrap() })
            )
            .is_none()
        );
    }

    #[test]
    fn list_keys_become_kinds() {
        assert_eq!(kind_of_list("pods").as_deref(), Some("Pod"));
        assert_eq!(
            kind_of_list("endpointSlices").as_deref(),
            Some("EndpointSlice")
        );
        assert_eq!(kind_of_list("statefulSets").as_deref(), Some("StatefulSet"));
        assert_eq!(kind_of_list("configMaps").as_deref(), Some("ConfigMap"));
    }
}
