//! State from a live API server: one paged list per kind, logs only for the containers that need
//! them (concurrently, bounded), and the kubelet config of the nodes involved.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use unloop_core::state::{ClusterState, ContainerLog, Gap, KubeletConfig, Scope};
use unloop_core::status;

use crate::{SourceError, ingest};

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The namespace to read; None means the kubeconfig context's namespace.
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    /// Log lines read per container at most.
    pub log_tail_lines: i64,
    /// Log requests in flight at once.
    pub log_concurrency: usize,
    /// Read ConfigMaps and Secrets (key names only). Off for a faster, narrower read.
    pub read_config: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            kubeconfig: None,
            context: None,
            namespace: None,
            all_namespaces: false,
            log_tail_lines: 200,
            log_concurrency: 8,
            read_config: true,
        }
    }
}

/// A connection to a cluster, ready to read.
pub struct Live {
    client: Client,
    pub server: String,
    pub context: String,
    pub default_namespace: String,
}

const PAGE: u32 = 500;
const ATTEMPTS: u32 = 4;

pub async fn connect(opts: &LiveOptions) -> Result<Live, SourceError> {
    let kubeconfig = match &opts.kubeconfig {
        Some(p) => Kubeconfig::read_from(p)
            .map_err(|e| SourceError::Kubeconfig(format!("{}: {e}", p.display())))?,
        None => Kubeconfig::read().map_err(|e| {
            SourceError::Kubeconfig(format!("{e} (set KUBECONFIG or pass --kubeconfig)"))
        })?,
    };
    let context = opts
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    if opts.context.is_some() && !kubeconfig.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(SourceError::Kubeconfig(format!(
            "no context named {context:?} (contexts: {})",
            known.join(", ")
        )));
    }
    let options = KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| SourceError::Kubeconfig(e.to_string()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| SourceError::Kubeconfig(e.to_string()))?;
    Ok(Live {
        client,
        server,
        context,
        default_namespace,
    })
}

/// What went wrong with one request, sorted into what the caller does about it.
enum Failure {
    /// Not allowed or not served: record a gap and go on.
    Gap(String),
    /// The server cannot be reached at all.
    Unreachable(String),
    Unauthorized(String),
    Other(String),
}

fn classify(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) if s.code == 401 => Failure::Unauthorized(s.message.clone()),
        kube::Error::Api(s) if s.code == 403 || s.code == 404 || s.code == 405 => {
            Failure::Gap(format!("{} ({})", s.message, s.code))
        }
        kube::Error::Api(s) => Failure::Other(format!("{} ({})", s.message, s.code)),
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            Failure::Unreachable(error_chain(e))
        }
        other => Failure::Other(error_chain(other)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn retryable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 429 | 500 | 502 | 503 | 504))
}

/// Runs a request, retrying throttling and server errors with exponential backoff.
async fn with_retry<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Every object of a kind in scope, page by page.
async fn list_all<K>(api: Api<K>, lp: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    list_keep(api, lp, |_| true).await
}

/// Every object of a kind in scope that `keep` accepts, filtered page by page so what is dropped
/// never accumulates.
async fn list_keep<K>(
    api: Api<K>,
    lp: ListParams,
    keep: impl Fn(&K) -> bool,
) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut page = lp.clone().limit(PAGE);
        if let Some(t) = &token {
            page = page.continue_token(t);
        }
        let list = with_retry(|| api.list(&page)).await?;
        // managedFields are often the largest part of an object and never evidence: drop them page
        // by page so a big cluster's lists do not sit in memory twice their useful size.
        out.extend(list.items.into_iter().filter(|o| keep(o)).map(|mut o| {
            o.meta_mut().managed_fields = None;
            o
        }));
        token = list.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
}

impl Live {
    /// The API client, for the few operations outside reading state (`unloop debug`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn api<K>(&self, ns: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Reads the state unloop needs. `now` decides which restarts are recent enough to need logs.
    pub async fn read(
        &self,
        opts: &LiveOptions,
        now: jiff::Timestamp,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<ClusterState, SourceError> {
        let ns_owned = if opts.all_namespaces {
            None
        } else {
            Some(
                opts.namespace
                    .clone()
                    .unwrap_or_else(|| self.default_namespace.clone()),
            )
        };
        let ns = ns_owned.as_deref();
        let mut gaps: Vec<Gap> = Vec::new();
        let scope_text = ns
            .map(|n| format!("in namespace {n}"))
            .unwrap_or_else(|| "in all namespaces".into());

        progress("listing pods");
        let pods: Vec<Pod> = match list_all(self.api::<Pod>(ns), ListParams::default()).await {
            Ok(p) => p,
            Err(e) => return Err(self.fatal(&e, &format!("cannot list pods {scope_text}"))),
        };

        // Events matter only for the pods diagnosis looks at (joined by uid) and for nodes.
        let troubled_uids: std::collections::HashSet<String> = pods
            .iter()
            .filter(|p| {
                !status::troubled_containers(p, now).is_empty() || status::pod_failure(p).is_some()
            })
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let troubled_uids = &troubled_uids;
        progress("listing events, nodes, workloads, services and config");
        let lp = ListParams::default;
        let (events, nodes, rs, deploys, sts, ds, jobs, revs, svcs, slices) = futures::join!(
            list_keep(self.api::<Event>(ns), lp(), |e: &Event| {
                let o = &e.involved_object;
                o.kind.as_deref() == Some("Node")
                    || o.uid.as_deref().is_some_and(|u| troubled_uids.contains(u))
            }),
            list_all(Api::<Node>::all(self.client.clone()), lp()),
            list_all(self.api::<ReplicaSet>(ns), lp()),
            list_all(self.api::<Deployment>(ns), lp()),
            list_all(self.api::<StatefulSet>(ns), lp()),
            list_all(self.api::<DaemonSet>(ns), lp()),
            list_all(self.api::<Job>(ns), lp()),
            list_all(self.api::<ControllerRevision>(ns), lp()),
            list_all(self.api::<Service>(ns), lp()),
            list_all(self.api::<EndpointSlice>(ns), lp()),
        );
        let (cms, secrets) = if opts.read_config {
            futures::join!(
                list_all(self.api::<ConfigMap>(ns), lp()),
                list_all(self.api::<Secret>(ns), lp())
            )
        } else {
            (Ok(Vec::new()), Ok(Vec::new()))
        };
        // Node events live in the default namespace; a namespaced read fetches them separately.
        let node_events = match ns {
            Some(n) if n != "default" => {
                list_all(
                    self.api::<Event>(Some("default")),
                    ListParams::default().fields("involvedObject.kind=Node"),
                )
                .await
            }
            _ => Ok(Vec::new()),
        };

        let mut state = ClusterState {
            captured_at: Some(now),
            ..Default::default()
        };
        state.scope = Scope {
            context: Some(self.context.clone()),
            server: Some(self.server.clone()),
            namespaces: ns.map(|n| vec![n.to_string()]).unwrap_or_default(),
        };
        state.pods = pods;
        state.events = self.keep(events, &format!("events {scope_text}"), &mut gaps)?;
        let node_events = self.keep(node_events, "node events in namespace default", &mut gaps)?;
        state.events.extend(node_events);
        state.nodes = self.keep(nodes, "nodes", &mut gaps)?;
        state.replica_sets = self.keep(rs, &format!("replicasets {scope_text}"), &mut gaps)?;
        state.deployments = self.keep(deploys, &format!("deployments {scope_text}"), &mut gaps)?;
        state.stateful_sets = self.keep(sts, &format!("statefulsets {scope_text}"), &mut gaps)?;
        state.daemon_sets = self.keep(ds, &format!("daemonsets {scope_text}"), &mut gaps)?;
        state.jobs = self.keep(jobs, &format!("jobs {scope_text}"), &mut gaps)?;
        state.controller_revisions = self.keep(
            revs,
            &format!("controllerrevisions {scope_text}"),
            &mut gaps,
        )?;
        state.services = self.keep(svcs, &format!("services {scope_text}"), &mut gaps)?;
        state.endpoint_slices =
            self.keep(slices, &format!("endpointslices {scope_text}"), &mut gaps)?;
        if opts.read_config {
            state.config_maps = self
                .keep(cms, &format!("configmaps {scope_text}"), &mut gaps)?
                .into_iter()
                .map(ingest::config_map)
                .collect();
            state.secrets = self
                .keep(secrets, &format!("secrets {scope_text}"), &mut gaps)?
                .into_iter()
                .map(ingest::secret)
                .collect();
        } else {
            gaps.push(Gap {
                what: format!("configmaps {scope_text}"),
                why: "not read (--no-config)".into(),
            });
            gaps.push(Gap {
                what: format!("secrets {scope_text}"),
                why: "not read (--no-config)".into(),
            });
        }

        let wanted = logs_needed(&state.pods, now);
        if !wanted.is_empty() {
            progress(&format!("reading {} container logs", wanted.len()));
        }
        let results: Vec<(LogWant, Result<Vec<u8>, kube::Error>)> = futures::stream::iter(wanted)
            .map(|mut w| async move {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &w.namespace);
                let mut r = read_log(&api, &w, opts.log_tail_lines).await;
                // The container restarted between the list and this read: the instance asked for is
                // gone (the kubelet keeps one dead container), so read the other one.
                if r.as_ref()
                    .is_err_and(|e| !matches!(e, kube::Error::Api(s) if s.code == 404))
                    || r.as_ref().is_ok_and(|b| b.starts_with(GONE_LOG))
                {
                    w.previous = !w.previous;
                    r = read_log(&api, &w, opts.log_tail_lines).await;
                }
                if r.as_ref().is_ok_and(|b| b.starts_with(GONE_LOG)) {
                    let text = String::from_utf8_lossy(r.as_deref().unwrap_or_default())
                        .trim()
                        .to_string();
                    r = Err(kube::Error::Service(text.into()));
                }
                (w, r)
            })
            .buffer_unordered(opts.log_concurrency.max(1))
            .collect()
            .await;
        let mut logs: Vec<ContainerLog> = Vec::new();
        for (w, r) in results {
            match r {
                Ok(bytes) => logs.push(ingest::log(
                    &w.namespace,
                    &w.pod,
                    &w.container,
                    w.previous,
                    &bytes,
                    false,
                )),
                Err(e) => {
                    let why = match &e {
                        kube::Error::Api(s) if s.code == 404 => {
                            "the pod was deleted during the run".to_string()
                        }
                        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
                        other => error_chain(other),
                    };
                    gaps.push(Gap {
                        what: format!("logs of {}/{}[{}]", w.namespace, w.pod, w.container),
                        why,
                    });
                }
            }
        }
        logs.sort_by(|a, b| {
            (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
        });
        state.logs = logs;

        let nodes_involved: BTreeSet<String> = state
            .pods
            .iter()
            .filter(|p| !status::troubled_containers(p, now).is_empty())
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        let configs: Vec<(String, Result<KubeletConfig, String>)> =
            futures::stream::iter(nodes_involved)
                .map(|node| async move {
                    let r = self.kubelet_config(&node).await;
                    (node, r)
                })
                .buffer_unordered(opts.log_concurrency.max(1))
                .collect()
                .await;
        for (node, r) in configs {
            match r {
                Ok(cfg) => {
                    state.kubelet_configs.insert(node, cfg);
                }
                Err(why) => gaps.push(Gap {
                    what: format!("kubelet config of node {node}"),
                    why,
                }),
            }
        }
        state.gaps = gaps;
        ingest::scrub(&mut state);
        Ok(state)
    }

    fn keep<T>(
        &self,
        r: Result<Vec<T>, kube::Error>,
        what: &str,
        gaps: &mut Vec<Gap>,
    ) -> Result<Vec<T>, SourceError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => match classify(&e) {
                Failure::Gap(why) | Failure::Other(why) => {
                    gaps.push(Gap {
                        what: what.to_string(),
                        why,
                    });
                    Ok(Vec::new())
                }
                _ => Err(self.fatal(&e, &format!("cannot list {what}"))),
            },
        }
    }

    fn fatal(&self, e: &kube::Error, doing: &str) -> SourceError {
        match classify(e) {
            Failure::Unreachable(why) => SourceError::Unreachable {
                server: self.server.clone(),
                why,
            },
            Failure::Unauthorized(why) => SourceError::Unauthorized {
                context: self.context.clone(),
                why,
            },
            Failure::Gap(why) | Failure::Other(why) => SourceError::Api(format!("{doing}: {why}")),
        }
    }

    async fn kubelet_config(&self, node: &str) -> Result<KubeletConfig, String> {
        let req = http::Request::get(format!("/api/v1/nodes/{node}/proxy/configz"))
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = with_retry(|| self.client.request_text(req.clone()))
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
                other => error_chain(other),
            })?;
        parse_configz(&text)
    }
}

/// What the kubelet answers, with status 200, for the log of a container it has already removed.
const GONE_LOG: &[u8] = b"unable to retrieve container logs for ";

async fn read_log(api: &Api<Pod>, w: &LogWant, tail: i64) -> Result<Vec<u8>, kube::Error> {
    let lp = LogParams {
        container: Some(w.container.clone()),
        previous: w.previous,
        tail_lines: Some(tail),
        limit_bytes: Some(ingest::MAX_LOG_BYTES as i64),
        ..Default::default()
    };
    with_retry(|| async {
        let mut reader = api.log_stream(&w.pod, &lp).await?;
        let mut buf = Vec::new();
        reader
            .read_to_end(&mut buf)
            .await
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        Ok(buf)
    })
    .await
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
    })
}

#[derive(Debug, Clone)]
struct LogWant {
    namespace: String,
    pod: String,
    container: String,
    previous: bool,
}

/// The logs diagnosis needs: the crashed instance of each troubled container that has run.
fn logs_needed(pods: &[Pod], now: jiff::Timestamp) -> Vec<LogWant> {
    let mut out = Vec::new();
    for p in pods {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        for (_, cs) in status::troubled_containers(p, now) {
            let crashed_before = cs
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some();
            let terminated_now = cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some();
            let previous = if terminated_now {
                false
            } else if crashed_before {
                true
            } else {
                continue;
            };
            out.push(LogWant {
                namespace: ns.clone(),
                pod: name.clone(),
                container: cs.name.clone(),
                previous,
            });
        }
    }
    out
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
}
