//! State from a live API server: one paged list per kind, logs only for the containers that need
//! them (concurrently, bounded), and the kubelet config of the nodes involved.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::api::{Api, ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
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
    /// Keep every pod whole. Off (the default), healthy pods that a controller made are cut down to
    /// what diagnosis reads of them (`unloop_core::slim`); audit and `snapshot --whole-pods` keep them.
    pub whole_pods: bool,
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
            whole_pods: false,
        }
    }
}

/// What unloop calls itself in requests.
pub const USER_AGENT: &str = concat!("unloop/", env!("CARGO_PKG_VERSION"));

/// A connection to a cluster, ready to read.
pub struct Live {
    client: Client,
    pub server: String,
    pub context: String,
    pub default_namespace: String,
}

const PAGE: u32 = 1000;
/// How long the kubelet config of a node may take: it only refines the backoff estimate.
const CONFIGZ_TIMEOUT: Duration = Duration::from_secs(5);
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
    // Lets an apiserver's audit log and metrics tell unloop's requests apart.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
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
async fn list_all<K>(client: &Client, url: String, lp: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + DeserializeOwned,
{
    list_map(client, url, lp, |raw| Ok(Some(parse_whole(raw)?))).await
}

/// An object parsed whole, without its managedFields: they are often the largest part of an
/// object and never evidence.
fn parse_whole<K: Resource + DeserializeOwned>(raw: &RawValue) -> Result<K, serde_json::Error> {
    let mut o: K = serde_json::from_str(raw.get())?;
    o.meta_mut().managed_fields = None;
    Ok(o)
}

/// The list URL of a namespaced kind, in one namespace or all.
fn url<K>(ns: Option<&str>) -> String
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    K::url_path(&Default::default(), ns)
}

/// One page of a list, its items left as unparsed JSON.
#[derive(serde::Deserialize)]
struct RawPage<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// Every object of a kind in scope, page by page, each item passed to `map` as raw JSON. `map`
/// parses what it keeps (all of it, part of it, or nothing), so what is dropped is never built and
/// never accumulates.
async fn list_map<K>(
    client: &Client,
    url: String,
    lp: ListParams,
    mut map: impl FnMut(&RawValue) -> Result<Option<K>, serde_json::Error>,
) -> Result<Vec<K>, kube::Error>
where
    K: Resource,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut page = lp.clone().limit(PAGE);
        if let Some(t) = &token {
            page = page.continue_token(t);
        }
        let req = kube::core::Request::new(&url)
            .list(&page)
            .map_err(kube::Error::BuildRequest)?;
        let text = with_retry(|| client.request_text(req.clone())).await?;
        let list: RawPage = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
        let first = token.is_none();
        let n = list.items.len();
        for raw in list.items {
            if let Some(o) = map(raw).map_err(kube::Error::SerdeError)? {
                out.push(o);
            }
        }
        // When the first page was kept whole, the rest likely will be: it tells how many more
        // there are, so reserve once rather than doubling (a pod is 2.4 KB inline, and doubling
        // would leave up to half of that unused).
        if first && out.len() == n {
            let rest = list.metadata.remaining_item_count.unwrap_or(0).max(0) as usize;
            out.reserve_exact(rest);
        }
        token = list.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            out.shrink_to_fit();
            return Ok(out);
        }
    }
}

/// The part of an event that decides whether it is kept.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventTarget {
    #[serde(default)]
    involved_object: ObjectTarget,
}

#[derive(Default, serde::Deserialize)]
struct ObjectTarget {
    kind: Option<String>,
    uid: Option<String>,
}

/// Whether an event is evidence: about a node, or about a pod diagnosis looks at.
fn event_wanted(o: &ObjectTarget, troubled: &HashSet<String>) -> bool {
    o.kind.as_deref() == Some("Node") || o.uid.as_deref().is_some_and(|u| troubled.contains(u))
}

impl Live {
    /// The API client, for the few operations outside reading state (`unloop debug`).
    pub fn client(&self) -> Client {
        self.client.clone()
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

        // Every kind is listed at once. Pods are cut down page by page as they arrive (troubled
        // ones stay whole); events can only be filtered once the troubled pods are known, so pages
        // that arrive earlier wait, reduced to pod and node events, and are filtered at the end.
        progress("listing pods, events, nodes, workloads, services and config");
        let (troubled_tx, mut troubled_rx) = tokio::sync::watch::channel(None::<HashSet<String>>);
        let whole = opts.whole_pods;
        let pods_read = async {
            let mut troubled = HashSet::new();
            let r = list_map(&self.client, url::<Pod>(ns), ListParams::default(), |raw| {
                // Every pod is read slim first; a troubled or bare pod is read again, whole.
                let slim =
                    serde_json::from_str::<unloop_core::slim::PodView>(raw.get())?.into_slim();
                if unloop_core::slim::needs_diagnosis(&slim, now) {
                    troubled.extend(slim.metadata.uid.clone());
                    return parse_whole(raw).map(Some);
                }
                // Healthy: slim unless whole pods were asked for or nothing else holds its spec.
                if whole || !unloop_core::slim::has_controller(&slim) {
                    return parse_whole(raw).map(Some);
                }
                Ok(Some(slim))
            })
            .await;
            // Sent whatever happened, so the events read never waits for ever.
            let _ = troubled_tx.send(Some(troubled));
            r
        };
        let events_read = async {
            // Pod and node events that arrive before the troubled pods are known, unparsed.
            let mut early: Vec<(ObjectTarget, Box<RawValue>)> = Vec::new();
            let r = list_map(
                &self.client,
                url::<Event>(ns),
                ListParams::default(),
                |raw| {
                    let target = serde_json::from_str::<EventTarget>(raw.get())?.involved_object;
                    if let Some(t) = troubled_rx.borrow().as_ref() {
                        return if event_wanted(&target, t) {
                            parse_whole(raw).map(Some)
                        } else {
                            Ok(None)
                        };
                    }
                    if matches!(target.kind.as_deref(), Some("Pod" | "Node")) {
                        early.push((target, raw.to_owned()));
                    }
                    Ok(None)
                },
            )
            .await;
            let troubled = troubled_rx
                .wait_for(Option::is_some)
                .await
                .map(|t| t.clone().unwrap_or_default())
                .unwrap_or_default();
            r.and_then(|later| {
                let mut kept = Vec::new();
                for (target, raw) in early {
                    if event_wanted(&target, &troubled) {
                        kept.push(parse_whole::<Event>(&raw).map_err(kube::Error::SerdeError)?);
                    }
                }
                kept.extend(later);
                Ok(kept)
            })
        };
        let config_read = async {
            if opts.read_config {
                futures::join!(
                    list_all::<ConfigMap>(
                        &self.client,
                        url::<ConfigMap>(ns),
                        ListParams::default()
                    ),
                    list_all::<Secret>(&self.client, url::<Secret>(ns), ListParams::default())
                )
            } else {
                (Ok(Vec::new()), Ok(Vec::new()))
            }
        };
        // Node events live in the default namespace; a namespaced read fetches them separately.
        let node_events_read = async {
            match ns {
                Some(n) if n != "default" => {
                    list_all::<Event>(
                        &self.client,
                        url::<Event>(Some("default")),
                        ListParams::default().fields("involvedObject.kind=Node"),
                    )
                    .await
                }
                _ => Ok(Vec::new()),
            }
        };
        let lp = ListParams::default;
        let (
            pods,
            events,
            node_events,
            nodes,
            rs,
            deploys,
            sts,
            ds,
            jobs,
            revs,
            svcs,
            slices,
            (cms, secrets),
        ) = futures::join!(
            pods_read,
            events_read,
            node_events_read,
            list_all::<Node>(&self.client, Node::url_path(&(), None), lp()),
            list_all::<ReplicaSet>(&self.client, url::<ReplicaSet>(ns), lp()),
            list_all::<Deployment>(&self.client, url::<Deployment>(ns), lp()),
            list_all::<StatefulSet>(&self.client, url::<StatefulSet>(ns), lp()),
            list_all::<DaemonSet>(&self.client, url::<DaemonSet>(ns), lp()),
            list_all::<Job>(&self.client, url::<Job>(ns), lp()),
            list_all::<ControllerRevision>(&self.client, url::<ControllerRevision>(ns), lp()),
            list_all::<Service>(&self.client, url::<Service>(ns), lp()),
            list_all::<EndpointSlice>(&self.client, url::<EndpointSlice>(ns), lp()),
            config_read,
        );
        let pods = match pods {
            Ok(p) => p,
            Err(e) => return Err(self.fatal(&e, &format!("cannot list pods {scope_text}"))),
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
        // One configz read per group of alike nodes: on a big pool, hundreds of reads through the
        // apiserver's node proxy would cost more than everything else together.
        let groups = kubelet_groups(&state.nodes, &nodes_involved);
        let configs: Vec<(Vec<String>, Result<KubeletConfig, String>)> =
            futures::stream::iter(groups)
                .map(|group| async move {
                    let r = self.kubelet_config(&group[0]).await;
                    (group, r)
                })
                .buffer_unordered(opts.log_concurrency.max(1))
                .collect()
                .await;
        for (group, r) in configs {
            match r {
                Ok(cfg) => {
                    for node in &group {
                        let mut cfg = cfg.clone();
                        if node != &group[0] {
                            cfg.read_from = Some(group[0].clone());
                        }
                        state.kubelet_configs.insert(node.clone(), cfg);
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

    /// A node's kubelet config through the apiserver's node proxy: one attempt, bounded in time
    /// (a node that does not answer is common on a big cluster and retrying it only waits longer).
    async fn kubelet_config(&self, node: &str) -> Result<KubeletConfig, String> {
        let req = http::Request::get(format!("/api/v1/nodes/{node}/proxy/configz"))
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let text = tokio::time::timeout(CONFIGZ_TIMEOUT, self.client.request_text(req))
            .await
            .map_err(|_| format!("no answer in {} s", CONFIGZ_TIMEOUT.as_secs()))?
            .map_err(|e| match &e {
                kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
                other => error_chain(other),
            })?;
        parse_configz(&text)
    }
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
        read_from: None,
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
