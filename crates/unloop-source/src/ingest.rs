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

/// Redacts what may hold secrets in objects that arrived by a path other than `config_map`,
/// `secret` and `log` (pods, workload templates, log text of bundles written elsewhere).
pub fn scrub(state: &mut ClusterState) {
    for p in &mut state.pods {
        redact::pod(p);
    }
    let templates = state
        .replica_sets
        .iter_mut()
        .filter_map(|r| r.spec.template.as_mut())
        .chain(state.deployments.iter_mut().map(|d| &mut d.spec.template))
        .chain(state.stateful_sets.iter_mut().map(|s| &mut s.spec.template))
        .chain(state.daemon_sets.iter_mut().map(|d| &mut d.spec.template))
        .chain(
            state
                .jobs
                .iter_mut()
                .filter_map(|j| j.spec.as_mut())
                .map(|s| &mut s.template),
        );
    for t in templates {
        if let Some(spec) = t.spec.as_mut() {
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                redact::container(c);
            }
        }
    }
    for r in &mut state.replica_sets {
        redact::strip_last_applied(&mut r.metadata);
    }
    for d in &mut state.deployments {
        redact::strip_last_applied(&mut d.metadata);
    }
    for s in &mut state.stateful_sets {
        redact::strip_last_applied(&mut s.metadata);
    }
    for d in &mut state.daemon_sets {
        redact::strip_last_applied(&mut d.metadata);
    }
    // ControllerRevisions carry full pod templates as raw data; keep only identity and revision.
    for r in &mut state.controller_revisions {
        r.data = Default::default();
        redact::strip_last_applied(&mut r.metadata);
    }
    for l in &mut state.logs {
        l.text = redact::text(&l.text);
    }
    for e in &mut state.events {
        if let Some(m) = e.message.as_mut() {
            *m = redact::text(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_never_survive() {
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"user": "admin"}
        }))
        .unwrap();
        let k = secret(s);
        assert_eq!(k.keys, vec!["password", "user"]);
        let json = serde_json::to_string(&k).unwrap();
        assert!(
            !json.contains("aHVudGVyMg") && !json.contains("admin"),
            "{json}"
        );
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
