//! The kubelet configuration of the nodes involved (`/configz` through the apiserver's node
//! proxy): it only refines the backoff estimate, so it is read once per group of alike nodes, in
//! one bounded attempt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use unloop_core::state::{Gap, KubeletConfig};

use super::client::{ReadError, Reader};

/// How long the kubelet config of a node may take: a node that does not answer is common on a
/// big cluster, and retrying it only waits longer.
const CONFIGZ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the kubelet config of `involved` nodes, one read per group of alike nodes.
pub(crate) async fn read_configs(
    reader: &Reader,
    nodes: &[Node],
    involved: &BTreeSet<String>,
    concurrency: usize,
    gaps: &mut Vec<Gap>,
) -> BTreeMap<String, KubeletConfig> {
    // One configz read per group of alike nodes: on a big pool, hundreds of reads through the
    // apiserver's node proxy would cost more than everything else together.
    let groups = kubelet_groups(nodes, involved);
    let configs: Vec<(Vec<String>, Result<KubeletConfig, String>)> = futures::stream::iter(groups)
        .map(|group| async move {
            let r = kubelet_config(reader, &group[0]).await;
            (group, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for (group, r) in configs {
        match r {
            Ok(cfg) => {
                for node in &group {
                    let mut cfg = cfg.clone();
                    if node != &group[0] {
                        cfg.read_from = Some(group[0].clone());
                    }
                    out.insert(node.clone(), cfg);
                }
            }
            Err(why) => {
                for node in &group {
                    let why = if node == &group[0] {
                        why.clone()
                    } else {
                        format!("read from the alike node {} instead: {why}", group[0])
                    };
                    gaps.push(Gap {
                        what: format!("kubelet config of node {node}"),
                        why,
                    });
                }
            }
        }
    }
    out
}

async fn kubelet_config(reader: &Reader, node: &str) -> Result<KubeletConfig, String> {
    let req = http::Request::get(format!("/api/v1/nodes/{node}/proxy/configz"))
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let body = reader
        .get_once(req, CONFIGZ_TIMEOUT)
        .await
        .map_err(|e| match e {
            ReadError::TimedOut(_) => format!("no answer in {} s", CONFIGZ_TIMEOUT.as_secs()),
            other => other.why(),
        })?;
    parse_configz(&String::from_utf8_lossy(&body))
}

/// The nodes of `involved`, grouped so that each group shares a kubelet configuration as far as
/// the API shows: same kubelet version, container runtime, OS image, instance type and node pool.
/// The first node of each group is the one to read. Nodes missing from `nodes` are groups alone.
fn kubelet_groups(nodes: &[Node], involved: &BTreeSet<String>) -> Vec<Vec<String>> {
    const POOL_LABELS: &[&str] = &[
        "cloud.google.com/gke-nodepool",
        "eks.amazonaws.com/nodegroup",
        "kubernetes.azure.com/agentpool",
        "karpenter.sh/nodepool",
        "node.kubernetes.io/instance-type",
        "node-role.kubernetes.io/control-plane",
    ];
    let by_name: HashMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .collect();
    let mut groups: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for name in involved {
        let key = match by_name.get(name.as_str()) {
            Some(n) => {
                let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
                let labels = n.metadata.labels.as_ref();
                let mut key = vec![
                    info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
                    info.map(|i| i.container_runtime_version.clone())
                        .unwrap_or_default(),
                    info.map(|i| i.os_image.clone()).unwrap_or_default(),
                ];
                key.extend(POOL_LABELS.iter().map(|l| {
                    labels
                        .and_then(|m| m.get(*l))
                        .map(|v| format!("{l}={v}"))
                        .unwrap_or_default()
                }));
                key
            }
            None => vec![format!("unknown node {name}")],
        };
        groups.entry(key).or_default().push(name.clone());
    }
    groups.into_values().collect()
}

/// The backoff settings out of a kubelet's `/configz` answer.
pub fn parse_configz(text: &str) -> Result<KubeletConfig, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("unreadable configz: {e}"))?;
    let cfg = v
        .get("kubeletconfig")
        .ok_or("configz has no kubeletconfig")?;
    let max = cfg
        .pointer("/crashLoopBackOff/maxContainerRestartPeriod")
        .and_then(|d| d.as_str())
        .and_then(unloop_core::backoff::parse_go_duration);
    let feature_gates = cfg
        .get("featureGates")
        .and_then(|g| g.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_bool()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(KubeletConfig {
        max_container_restart_period_secs: max,
        feature_gates,
        read_from: None,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configz_backoff_settings() {
        let cfg = parse_configz(r#"{"kubeletconfig":{"crashLoopBackOff":{"maxContainerRestartPeriod":"1m0s"},"featureGates":{"KubeletCrashLoopBackOffMax":true}}}"#).unwrap();
        assert_eq!(cfg.max_container_restart_period_secs, Some(60));
        assert_eq!(
            cfg.feature_gates.get("KubeletCrashLoopBackOffMax"),
            Some(&true)
        );
        assert!(parse_configz("<html>").is_err());
    }

    /// The testbed's captured node, copied under other names: alike copies share one read; a copy
    /// with another kubelet version or pool label is read on its own.
    #[test]
    fn alike_nodes_share_one_configz_read() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/healthy/bundle.json.gz");
        let captured = crate::bundle::read(&path).unwrap().nodes[0].clone();
        let node = |name: &str, version: &str, pool: &str| -> Node {
            let mut n = captured.clone();
            n.metadata.name = Some(name.into());
            n.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("karpenter.sh/nodepool".into(), pool.into());
            n.status
                .as_mut()
                .and_then(|s| s.node_info.as_mut())
                .unwrap()
                .kubelet_version = version.into();
            n
        };
        let nodes = vec![
            node("a1", "v1.35.4", "a"),
            node("a2", "v1.35.4", "a"),
            node("a3", "v1.34.2", "a"),
            node("b1", "v1.35.4", "b"),
        ];
        let involved: BTreeSet<String> = ["a1", "a2", "a3", "b1", "gone"]
            .into_iter()
            .map(String::from)
            .collect();
        let mut groups = kubelet_groups(&nodes, &involved);
        groups.sort();
        assert_eq!(
            groups,
            vec![
                vec!["a1".to_string(), "a2".to_string()],
                vec!["a3".to_string()],
                vec!["b1".to_string()],
                vec!["gone".to_string()],
            ]
        );
    }
}
