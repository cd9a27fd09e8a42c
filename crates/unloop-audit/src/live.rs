//! The audit's own reads from a cluster and from Prometheus: what `unloop-source`'s live reader
//! does not cover. ConfigMap and Secret key lists for `--resolve-live` (values skipped while
//! parsing), ServiceAccounts, CronJobs, nodes, metrics API samples, and Prometheus ranges.
//! Everything else about a live cluster comes from `unloop_source::live`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use unloop_core::state::{Gap, KeySet};

use crate::inventory::{KeysOnly, Workload};
use crate::resolve::Known;
use crate::rightsize::{
    Sample, parse_pod_metrics, parse_prometheus_matrix, pod_regex, samples_from_series,
};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(String),
    #[error("the metrics API (metrics.k8s.io) is not available: {0}")]
    MetricsUnavailable(String),
    #[error("Prometheus at {url}: {why}")]
    Prometheus { url: String, why: String },
    #[error("the API server failed: {0}")]
    Api(String),
}

pub struct Cluster {
    client: Client,
    pub default_namespace: String,
}

/// Connects the way `unloop_source::live::connect` does: the kubeconfig (or $KUBECONFIG, or
/// ~/.kube/config) and the chosen context.
pub async fn connect(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> Result<Cluster, LiveError> {
    let kc = match &kubeconfig {
        Some(p) => Kubeconfig::read_from(p)
            .map_err(|e| LiveError::Kubeconfig(format!("{}: {e}", p.display())))?,
        None => Kubeconfig::read().map_err(|e| LiveError::Kubeconfig(e.to_string()))?,
    };
    let options = KubeConfigOptions {
        context,
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| LiveError::Kubeconfig(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| LiveError::Kubeconfig(e.to_string()))?;
    Ok(Cluster {
        client,
        default_namespace,
    })
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => {
            let mut parts = vec![other.to_string()];
            let mut cur = std::error::Error::source(other);
            while let Some(s) = cur {
                parts.push(s.to_string());
                cur = s.source();
            }
            parts.join(": ")
        }
    }
}

fn is_unreachable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

#[derive(Deserialize)]
struct KeysOnlyList {
    #[serde(default)]
    items: Vec<KeysOnly>,
    #[serde(default)]
    metadata: ListMeta,
}

/// Key lists of every ConfigMap or Secret in a namespace, page by page. The list is parsed into
/// [`KeysOnly`], which skips values as it reads.
async fn key_sets(
    client: &Client,
    namespace: &str,
    resource: &str,
) -> Result<Vec<KeySet>, kube::Error> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/namespaces/{namespace}/{resource}?limit=500");
        if let Some(t) = &token {
            url.push_str(&format!("&continue={}", encode(t)));
        }
        let req = http::Request::get(url)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        let page: KeysOnlyList = client.request(req).await?;
        out.extend(page.items.into_iter().map(|k| k.into_key_set(namespace)));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

#[derive(Deserialize)]
struct MetaOnlyList {
    #[serde(default)]
    items: Vec<MetaOnly>,
}

#[derive(Deserialize)]
struct MetaOnly {
    metadata: ObjectMeta,
}

impl Cluster {
    /// What the cluster holds in `namespaces` for reference resolution, with gaps for what was
    /// refused. Only unreachability is an error.
    pub async fn config_in(&self, namespaces: &BTreeSet<String>) -> Result<Known, LiveError> {
        let mut config_maps = Vec::new();
        let mut secrets = Vec::new();
        let mut accounts = BTreeSet::new();
        let mut accounts_readable = true;
        let mut gaps = Vec::new();
        for ns in namespaces {
            for (resource, out) in [("configmaps", &mut config_maps), ("secrets", &mut secrets)] {
                match key_sets(&self.client, ns, resource).await {
                    Ok(sets) => out.extend(sets),
                    Err(e) if is_unreachable(&e) => {
                        return Err(LiveError::Unreachable(describe(&e)));
                    }
                    Err(e) => gaps.push(Gap {
                        what: format!("{resource} in namespace {ns}"),
                        why: describe(&e),
                    }),
                }
            }
            match self.service_accounts(Some(ns)).await {
                Ok(a) => accounts.extend(a),
                Err(LiveError::Unreachable(e)) => return Err(LiveError::Unreachable(e)),
                Err(_) => accounts_readable = false,
            }
        }
        Ok(Known::live(
            namespaces.iter().cloned().collect(),
            config_maps,
            secrets,
            accounts_readable.then_some(accounts),
            gaps,
        ))
    }

    /// ServiceAccounts by (namespace, name), in one namespace or all.
    pub async fn service_accounts(
        &self,
        namespace: Option<&str>,
    ) -> Result<BTreeSet<(String, String)>, LiveError> {
        let url = match namespace {
            Some(ns) => format!("/api/v1/namespaces/{ns}/serviceaccounts"),
            None => "/api/v1/serviceaccounts".to_string(),
        };
        let req = http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| LiveError::Api(e.to_string()))?;
        let list: MetaOnlyList = self.client.request(req).await.map_err(|e| {
            if is_unreachable(&e) {
                LiveError::Unreachable(describe(&e))
            } else {
                LiveError::Api(describe(&e))
            }
        })?;
        Ok(list
            .items
            .into_iter()
            .map(|i| {
                (
                    i.metadata.namespace.unwrap_or_default(),
                    i.metadata.name.unwrap_or_default(),
                )
            })
            .collect())
    }

    pub async fn cron_jobs(&self, namespace: Option<&str>) -> Result<Vec<CronJob>, LiveError> {
        let api: Api<CronJob> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| LiveError::Api(describe(&e)))
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, LiveError> {
        let api: Api<Node> = Api::all(self.client.clone());
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| LiveError::Api(describe(&e)))
    }

    /// One read of the metrics API (metrics-server): a sample per running container.
    pub async fn pod_metrics(&self, namespace: Option<&str>) -> Result<Vec<Sample>, LiveError> {
        let url = match namespace {
            Some(ns) => format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"),
            None => "/apis/metrics.k8s.io/v1beta1/pods".to_string(),
        };
        let req = http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| LiveError::Api(e.to_string()))?;
        let text = self.client.request_text(req).await.map_err(|e| match &e {
            kube::Error::Api(s) if matches!(s.code, 404 | 503) => LiveError::MetricsUnavailable(format!(
                "{} ({}); is metrics-server installed and its APIService Available? (kubectl get apiservice v1beta1.metrics.k8s.io)",
                s.message, s.code
            )),
            e if is_unreachable(e) => LiveError::Unreachable(describe(e)),
            e => LiveError::MetricsUnavailable(describe(e)),
        })?;
        parse_pod_metrics(&text).map_err(LiveError::MetricsUnavailable)
    }

    /// `samples` reads of the metrics API, `interval` apart (metrics-server refreshes every
    /// 15 s by default), without repeats of the same scrape.
    pub async fn sample_metrics(
        &self,
        namespace: Option<&str>,
        samples: u32,
        interval: Duration,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<Sample>, LiveError> {
        let mut out: Vec<Sample> = Vec::new();
        let mut seen = BTreeSet::new();
        for i in 0..samples.max(1) {
            if i > 0 {
                progress(&format!(
                    "sampling the metrics API ({} of {}, every {}s)",
                    i + 1,
                    samples,
                    interval.as_secs()
                ));
                tokio::time::sleep(interval).await;
            }
            for s in self.pod_metrics(namespace).await? {
                let key = (
                    s.namespace.clone(),
                    s.pod.clone(),
                    s.container.clone(),
                    s.at as i64,
                );
                if seen.insert(key) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }
}

/// Percent-encodes a query parameter value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A PromQL string literal.
fn promql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The memory and CPU queries for one workload's containers.
pub fn prometheus_queries(w: &Workload) -> (String, String) {
    let selector = format!(
        "namespace={},pod=~{},container!=\"\",container!=\"POD\"",
        promql_string(&w.namespace),
        promql_string(&pod_regex(w))
    );
    (
        format!("max by (pod, container) (container_memory_working_set_bytes{{{selector}}})"),
        format!(
            "sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{selector}}}[5m]))"
        ),
    )
}

/// A Prometheus server the user named with `--prometheus URL`; nothing else is ever contacted.
pub struct Prometheus {
    /// The client is made in the async context that uses it (kube's client spawns a task).
    config: Config,
    url: String,
    base_path: String,
}

impl Prometheus {
    pub fn new(url: &str) -> Result<Prometheus, LiveError> {
        let err = |why: String| LiveError::Prometheus {
            url: url.to_string(),
            why,
        };
        let uri: http::Uri = url.parse().map_err(|e| err(format!("not a URL: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(err("give a full URL such as http://127.0.0.1:9090".into()));
        };
        if scheme != "http" && scheme != "https" {
            return Err(err(format!("unsupported scheme {scheme}")));
        }
        let root: http::Uri = format!("{scheme}://{authority}")
            .parse()
            .map_err(|e| err(format!("not a URL: {e}")))?;
        let mut config = Config::new(root);
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(60));
        Ok(Prometheus {
            config,
            url: url.to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// A `query_range` over [start, end] (Unix seconds) at `step` seconds.
    pub async fn range(
        &self,
        client: &Client,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<crate::rightsize::Series>, LiveError> {
        let url = format!(
            "{}/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            self.base_path,
            encode(query)
        );
        let err = |why: String| LiveError::Prometheus {
            url: self.url.clone(),
            why,
        };
        let req = http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| err(e.to_string()))?;
        let text = client
            .request_text(req)
            .await
            .map_err(|e| err(describe(&e)))?;
        parse_prometheus_matrix(&text).map_err(err)
    }

    /// Usage samples of each workload over the last `history_secs` before `now`.
    pub async fn usage(
        &self,
        workloads: &[Workload],
        now: jiff::Timestamp,
        history_secs: i64,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<Sample>, LiveError> {
        let end = now.as_second();
        let start = end - history_secs;
        // Prometheus answers at most 11,000 points per series.
        let step = (history_secs / 10_000).max(60);
        let client = Client::try_from(self.config.clone()).map_err(|e| LiveError::Prometheus {
            url: self.url.clone(),
            why: e.to_string(),
        })?;
        let mut out = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            progress(&format!(
                "querying Prometheus ({} of {})",
                i + 1,
                workloads.len()
            ));
            let (memory_q, cpu_q) = prometheus_queries(w);
            let memory = self.range(&client, &memory_q, start, end, step).await?;
            let cpu = self.range(&client, &cpu_q, start, end, step).await?;
            out.extend(samples_from_series(&w.namespace, &memory, &cpu));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_select_the_workload_pods() {
        let w = Workload {
            kind: unloop_core::workload::WorkloadKind::Deployment,
            namespace: "shop".into(),
            name: "api".into(),
            labels: Default::default(),
            annotations: Default::default(),
            template: Default::default(),
            source: None,
        };
        let (m, c) = prometheus_queries(&w);
        assert_eq!(
            m,
            "max by (pod, container) (container_memory_working_set_bytes{namespace=\"shop\",pod=~\"api-[a-z0-9]+-[a-z0-9]+\",container!=\"\",container!=\"POD\"})"
        );
        assert!(
            c.starts_with("sum by (pod, container) (rate(container_cpu_usage_seconds_total{"),
            "{c}"
        );
        assert_eq!(encode("a b{c=\"d\"}"), "a%20b%7Bc%3D%22d%22%7D");
    }
}
