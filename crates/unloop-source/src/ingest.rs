//! The one gate every object passes on its way into a `ClusterState`: Secrets and ConfigMaps
//! become key lists, secret-looking values are redacted, logs are bounded and made valid UTF-8.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use unloop_core::redact;
use unloop_core::state::{ClusterState, ContainerLog, KeySet};

/// Largest log tail kept per container; older bytes are dropped and the log marked truncated.
pub const MAX_LOG_BYTES: usize = 256 * 1024;

pub fn config_map(cm: ConfigMap) -> KeySet {
    let mut keys: Vec<String> = cm.data.map(|d| d.into_keys().collect()).unwrap_or_default();
    keys.extend(
        cm.binary_data
            .map(|d| d.into_keys().collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    keys.sort();
    KeySet {
        namespace: cm.metadata.namespace.unwrap_or_default(),
        name: cm.metadata.name.unwrap_or_default(),
        keys,
        created_at: cm.metadata.creation_timestamp.map(|t| t.0),
    }
}

/// A Secret's values are dropped here and never seen again.
pub fn secret(s: Secret) -> KeySet {
    let mut keys: Vec<String> = s.data.map(|d| d.into_keys().collect()).unwrap_or_default();
    keys.extend(
        s.string_data
            .map(|d| d.into_keys().collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    keys.sort();
    keys.dedup();
    KeySet {
        namespace: s.metadata.namespace.unwrap_or_default(),
        name: s.metadata.name.unwrap_or_default(),
        keys,
        created_at: s.metadata.creation_timestamp.map(|t| t.0),
    }
}

/// Bytes of a log, possibly huge and not UTF-8, to a bounded, redacted tail.
pub fn log(
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
    bytes: &[u8],
    already_truncated: bool,
) -> ContainerLog {
    let (tail, cut) = if bytes.len() > MAX_LOG_BYTES {
        let mut start = bytes.len() - MAX_LOG_BYTES;
        // Start at a line boundary so the first line kept is whole.
        if let Some(nl) = bytes[start..].iter().position(|b| *b == b'\n') {
            start += nl + 1;
        }
        (&bytes[start..], true)
    } else {
        (bytes, false)
    };
    ContainerLog {
        namespace: namespace.into(),
        pod: pod.into(),
        container: container.into(),
        previous,
        text: redact::text(&String::from_utf8_lossy(tail)),
        truncated: cut || already_truncated,
    }
}

/// Redacts every string of every object in a state, whatever path it came by (live reads,
/// bundles, kubectl files): pods, events, nodes, workloads and their templates, Services, logs,
/// gaps. A walk over each object's JSON form, so a field no rule reads yet is covered too.
pub fn scrub(state: &mut ClusterState) {
    // ControllerRevisions carry full pod templates as raw data; keep only identity and revision.
    for r in &mut state.controller_revisions {
        r.data = Default::default();
    }
    redact::object(&mut state.scope);
    all(&mut state.pods);
    all(&mut state.events);
    all(&mut state.nodes);
    all(&mut state.config_maps);
    all(&mut state.secrets);
    all(&mut state.services);
    all(&mut state.endpoint_slices);
    all(&mut state.replica_sets);
    all(&mut state.deployments);
    all(&mut state.stateful_sets);
    all(&mut state.daemon_sets);
    all(&mut state.jobs);
    all(&mut state.controller_revisions);
    all(&mut state.logs);
    all(&mut state.gaps);
}

fn all<T: serde::Serialize + serde::de::DeserializeOwned>(items: &mut [T]) {
    for i in items {
        redact::object(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Secret the missing-secret-key scenario applied to the testbed (its manifest), as the
    /// API server answers it: values base64 in `data`.
    fn scenario_secret() -> Secret {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/missing-secret-key/manifest.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let doc = docs.into_iter().find(|d| d["kind"] == "Secret").unwrap();
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn secret_values_never_survive() {
        let mut s = scenario_secret();
        // As written (stringData), plus the form the API server answers with (data).
        let password = k8s_openapi::ByteString(b"hunter2-for-the-test".to_vec());
        s.data = Some([("password".to_string(), password)].into());
        let k = secret(s);
        assert_eq!(k.keys, vec!["host", "password", "username"]);
        let json = serde_json::to_string(&k).unwrap();
        for value in [
            "aHVudGVyMi1mb3ItdGhlLXRlc3Q",
            "hunter2",
            "orders",
            "postgres.",
        ] {
            assert!(!json.contains(value), "{value} in {json}");
        }
    }

    #[test]
    fn huge_non_utf8_logs_are_bounded_and_lossy() {
        let mut bytes = vec![0xffu8; 10];
        bytes.extend(std::iter::repeat_n(b'a', 2 * MAX_LOG_BYTES));
        bytes.extend(b"\nlast line\n");
        let l = log("ns", "p", "c", true, &bytes, false);
        assert!(l.truncated);
        assert!(l.text.len() <= MAX_LOG_BYTES);
        assert!(l.text.ends_with("last line\n"));
    }
}
