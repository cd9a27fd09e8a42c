//! The kubelet configuration of the nodes involved (`/configz` through the apiserver's node
//! proxy): it only refines the backoff estimate, so it is read once per group of alike nodes, in
//! one bounded attempt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use unloop_core::state::{Gap, GapAbout, GapReason, KubeletConfig};

use super::client::{ReadError, Reader};

/// How long the kubelet config of a node may take: a node that does not answer is common on a
/// big cluster, and retrying it only waits longer.
const CONFIGZ_TIMEOUT: Duration = Duration::from_secs(5);

/// Members of a group tried, in turn, before the rest of it is left unread.
const TRIES_PER_GROUP: usize = 3;

/// Reads the kubelet config of `involved` nodes, one read per group of alike nodes. Nodes that
/// have no kubelet to ask are not asked; a member that fails does not stand for the others: the
/// next member is tried.
pub(crate) async fn read_configs(
    reader: &Reader,
    nodes: &[Node],
    involved: &BTreeSet<String>,
    concurrency: usize,
    gaps: &mut Vec<Gap>,
) -> BTreeMap<String, KubeletConfig> {
    let by_name: HashMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .collect();
    let (askable, simulated): (BTreeSet<String>, BTreeSet<String>) = involved
        .iter()
        .cloned()
        .partition(|name| by_name.get(name.as_str()).is_none_or(|n| has_kubelet(n)));
    for node in simulated {
        gaps.push(Gap::new(
            GapAbout::KubeletConfig { node },
            GapReason::NoKubelet,
            "not asked: the Node is simulated (kwok or virtual-kubelet) and has no kubelet",
        ));
    }
    // One configz read per group of alike nodes: on a big pool, hundreds of reads through the
    // apiserver's node proxy would cost more than everything else together.
    let groups = kubelet_groups(nodes, &askable);
    let outcomes: Vec<(Vec<String>, GroupRead)> = futures::stream::iter(groups)
        .map(|group| async move {
            let read = read_group(&group, |node| kubelet_config(reader, node)).await;
            (group, read)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for (group, read) in outcomes {
        out.extend(read.configs(&group));
        gaps.extend(read.gaps(&group));
    }
    out
}

/// What reading one group came to: the failures of the members tried, in order, and the config
/// of the first member that answered, if one did.
#[derive(Debug)]
struct GroupRead {
    failed: Vec<(String, Gap)>,
    read: Option<(String, KubeletConfig)>,
}

async fn read_group<F, Fut>(group: &[String], read: F) -> GroupRead
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<KubeletConfig, Gap>>,
{
    let mut failed = Vec::new();
    for node in group.iter().take(TRIES_PER_GROUP) {
        match read(node.clone()).await {
            Ok(cfg) => {
                return GroupRead {
                    failed,
                    read: Some((node.clone(), cfg)),
                };
            }
            Err(gap) => failed.push((node.clone(), gap)),
        }
    }
    GroupRead { failed, read: None }
}

impl GroupRead {
    /// The config of every member, when one was read: its own, or the alike node's.
    fn configs(&self, group: &[String]) -> Vec<(String, KubeletConfig)> {
        let Some((from, cfg)) = &self.read else {
            return Vec::new();
        };
        group
            .iter()
            .filter(|n| !self.failed.iter().any(|(f, _)| f == *n))
            .map(|n| {
                let mut cfg = cfg.clone();
                if n != from {
                    cfg.read_from = Some(from.clone());
                }
                (n.clone(), cfg)
            })
            .collect()
    }

    /// A gap for each member that failed, and, when none answered, for each left untried.
    fn gaps(&self, group: &[String]) -> Vec<Gap> {
        let mut out: Vec<Gap> = self.failed.iter().map(|(_, g)| g.clone()).collect();
        if self.read.is_none() {
            let tried: Vec<&str> = self.failed.iter().map(|(n, _)| n.as_str()).collect();
            for n in group.iter().skip(tried.len()) {
                out.push(Gap::new(
                    GapAbout::KubeletConfig { node: n.clone() },
                    GapReason::NotTried,
                    format!(
                        "not asked: the alike nodes {} did not answer",
                        tried.join(", ")
                    ),
                ));
            }
        }
        out
    }
}

/// Whether a Node has a kubelet that could serve `/configz`: kwok's nodes (annotated
/// `kwok.x-k8s.io/node`) and virtual-kubelet's (labelled `type=virtual-kubelet`) have none.
fn has_kubelet(n: &Node) -> bool {
    let annotated = n
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kwok.x-k8s.io/node"));
    let virtual_kubelet = n
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("type"))
        .is_some_and(|t| t == "virtual-kubelet");
    !annotated && !virtual_kubelet
}

async fn kubelet_config(reader: &Reader, node: String) -> Result<KubeletConfig, Gap> {
    let about = || GapAbout::KubeletConfig { node: node.clone() };
    let req = http::Request::get(format!("/api/v1/nodes/{node}/proxy/configz"))
        .body(Vec::new())
        .map_err(|e| Gap::new(about(), GapReason::Broken, e.to_string()))?;
    let body = reader
        .get_once(req, CONFIGZ_TIMEOUT)
        .await
        .map_err(|e| match e {
            ReadError::TimedOut(_) => Gap::new(
                about(),
                GapReason::TimedOut,
                format!("no answer in {} s", CONFIGZ_TIMEOUT.as_secs()),
            ),
            other => other.gap(about()),
        })?;
    parse_configz(&String::from_utf8_lossy(&body))
        .map_err(|why| Gap::new(about(), GapReason::Broken, why))
}

/// The nodes of `involved`, grouped so that each group shares a kubelet configuration as far as
/// the API shows. What the kubelet reports of itself, which nothing else writes: its version,
/// the container runtime, OS image, kernel and architecture (`status.nodeInfo`) and the port it
/// serves on (`status.daemonEndpoints`, from its own configuration); and the node pool and
/// instance type labels, set when the node joined its pool.
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
                let port = n
                    .status
                    .as_ref()
                    .and_then(|s| s.daemon_endpoints.as_ref())
                    .and_then(|d| d.kubelet_endpoint.as_ref())
                    .map(|e| e.port.to_string())
                    .unwrap_or_default();
                let mut key = vec![
                    info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
                    info.map(|i| i.container_runtime_version.clone())
                        .unwrap_or_default(),
                    info.map(|i| i.os_image.clone()).unwrap_or_default(),
                    info.map(|i| i.kernel_version.clone()).unwrap_or_default(),
                    info.map(|i| format!("{}/{}", i.operating_system, i.architecture))
                        .unwrap_or_default(),
                    port,
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

    fn captured_node() -> Node {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/healthy/bundle.json.gz");
        crate::bundle::read(&path).unwrap().nodes[0].clone()
    }

    /// Old behaviour: the scale fixture's kwok nodes, which copy the real node's versions, were
    /// one group with it, and its config was read from a kwok node. The kubelet's own port sets
    /// them apart even without kwok's annotation.
    #[test]
    fn a_node_served_on_another_kubelet_port_is_not_alike() {
        let real = captured_node();
        let mut fake = real.clone();
        fake.metadata.name = Some("scale-node-000".into());
        fake.status
            .as_mut()
            .and_then(|s| s.daemon_endpoints.as_mut())
            .and_then(|d| d.kubelet_endpoint.as_mut())
            .unwrap()
            .port = 10247;
        let involved: BTreeSet<String> = ["unloop-node", "scale-node-000"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(kubelet_groups(&[real, fake], &involved).len(), 2);
    }

    #[test]
    fn kwok_nodes_have_no_kubelet_to_ask() {
        let mut n = captured_node();
        assert!(has_kubelet(&n));
        n.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("kwok.x-k8s.io/node".into(), "fake".into());
        assert!(!has_kubelet(&n));
    }

    /// A failed member does not stand for the others: the next one is read and stands for the
    /// rest; the one that failed keeps its own gap.
    #[tokio::test]
    async fn a_failed_member_makes_the_next_one_be_read() {
        let group: Vec<String> = ["a", "b", "c", "d"].into_iter().map(String::from).collect();
        let read = read_group(&group, |node| async move {
            if node == "a" {
                Err(Gap::status(
                    GapAbout::KubeletConfig { node },
                    404,
                    "not found (404)",
                ))
            } else {
                Ok(KubeletConfig {
                    max_container_restart_period_secs: Some(60),
                    ..Default::default()
                })
            }
        })
        .await;
        let configs: BTreeMap<String, KubeletConfig> = read.configs(&group).into_iter().collect();
        assert_eq!(configs.keys().collect::<Vec<_>>(), ["b", "c", "d"]);
        assert_eq!(configs["b"].read_from, None);
        assert_eq!(configs["d"].read_from.as_deref(), Some("b"));
        let gaps = read.gaps(&group);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].about, GapAbout::KubeletConfig { node: "a".into() });
    }
}
