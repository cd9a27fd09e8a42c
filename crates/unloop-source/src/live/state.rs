//! The cluster state diagnosis reads: every kind listed at once, one paged list per kind for the
//! scope. Pods are cut down page by page as they arrive (troubled ones stay whole); events are
//! kept only for troubled pods and nodes. What cannot be read becomes a gap; only the pods are
//! indispensable.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::api::ListParams;
use serde_json::value::RawValue;
use unloop_core::state::{ClusterState, Gap, GapAbout, GapReason, ListOf, Scope};
use unloop_core::status;

use super::client::ReadError;
use super::list::{list_all, list_map, parse_whole, url};
use super::{Live, LiveOptions, configz, logs};
use crate::{SourceError, ingest};

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

/// Whether an event is evidence: about a node, a Job (a failed Job whose pods are gone has only
/// its own events left), or a pod diagnosis looks at.
fn event_wanted(o: &ObjectTarget, troubled: &HashSet<String>) -> bool {
    matches!(o.kind.as_deref(), Some("Node" | "Job"))
        || o.uid.as_deref().is_some_and(|u| troubled.contains(u))
}

/// A lock that is never poisoned in practice (nothing panics while holding it).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A list's outcome: its objects, or a gap (the read goes on without them).
fn keep<T>(r: Result<Vec<T>, ReadError>, what: GapAbout, gaps: &mut Vec<Gap>) -> Vec<T> {
    r.unwrap_or_else(|e| {
        gaps.push(e.gap(what));
        Vec::new()
    })
}

impl Live {
    /// Reads the state unloop needs. `now` decides which restarts are recent enough to need logs.
    pub async fn read(
        &self,
        opts: &LiveOptions,
        now: jiff::Timestamp,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<ClusterState, SourceError> {
        let reader = self.reader();
        let ns_owned = self.namespace(opts);
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
        let pods_url = url::<Pod>(ns);
        let events_url = url::<Event>(ns);
        let lp = ListParams::default();
        let pods_read = async {
            let troubled = Mutex::new(HashSet::new());
            let r = list_map(
                reader,
                pods_url,
                &lp,
                |raw| {
                    // Every pod is read slim first; a troubled or bare pod is read again, whole.
                    let slim =
                        serde_json::from_str::<unloop_core::slim::PodView>(raw.get())?.into_slim();
                    if unloop_core::slim::needs_diagnosis(&slim, now) {
                        lock(&troubled).extend(slim.metadata.uid.clone());
                        return parse_whole(raw).map(Some);
                    }
                    // Healthy: slim unless whole pods were asked for or nothing else holds its spec.
                    if whole || !unloop_core::slim::has_controller(&slim) {
                        return parse_whole(raw).map(Some);
                    }
                    Ok(Some(slim))
                },
                || lock(&troubled).clear(),
            )
            .await;
            // Sent whatever happened, so the events read never waits for ever.
            let _ = troubled_tx.send(Some(
                troubled.into_inner().unwrap_or_else(|e| e.into_inner()),
            ));
            r
        };
        let events_read = async {
            // Pod and node events that arrive before the troubled pods are known, unparsed.
            let early: Mutex<Vec<(ObjectTarget, Box<RawValue>)>> = Mutex::new(Vec::new());
            let r = list_map(
                reader,
                events_url,
                &lp,
                |raw| {
                    let target = serde_json::from_str::<EventTarget>(raw.get())?.involved_object;
                    if let Some(t) = troubled_rx.borrow().as_ref() {
                        return if event_wanted(&target, t) {
                            parse_whole(raw).map(Some)
                        } else {
                            Ok(None)
                        };
                    }
                    if matches!(target.kind.as_deref(), Some("Pod" | "Node" | "Job")) {
                        lock(&early).push((target, raw.to_owned()));
                    }
                    Ok(None)
                },
                || lock(&early).clear(),
            )
            .await;
            let troubled = troubled_rx
                .wait_for(Option::is_some)
                .await
                .map(|t| t.clone().unwrap_or_default())
                .unwrap_or_default();
            r.and_then(|later| {
                let mut kept = Vec::new();
                for (target, raw) in early.into_inner().unwrap_or_else(|e| e.into_inner()) {
                    if event_wanted(&target, &troubled) {
                        kept.push(
                            parse_whole::<Event>(&raw).map_err(|e| {
                                ReadError::Broken(format!("an unreadable event: {e}"))
                            })?,
                        );
                    }
                }
                kept.extend(later);
                Ok(kept)
            })
        };
        let config_read = async {
            if opts.read_config {
                futures::join!(
                    list_all::<ConfigMap>(reader, url::<ConfigMap>(ns), &lp),
                    list_all::<Secret>(reader, url::<Secret>(ns), &lp)
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
                        reader,
                        url::<Event>(Some("default")),
                        &ListParams::default().fields("involvedObject.kind=Node"),
                    )
                    .await
                }
                _ => Ok(Vec::new()),
            }
        };
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
            list_all::<Node>(reader, Node::url_path(&(), None), &lp),
            list_all::<ReplicaSet>(reader, url::<ReplicaSet>(ns), &lp),
            list_all::<Deployment>(reader, url::<Deployment>(ns), &lp),
            list_all::<StatefulSet>(reader, url::<StatefulSet>(ns), &lp),
            list_all::<DaemonSet>(reader, url::<DaemonSet>(ns), &lp),
            list_all::<Job>(reader, url::<Job>(ns), &lp),
            list_all::<ControllerRevision>(reader, url::<ControllerRevision>(ns), &lp),
            list_all::<Service>(reader, url::<Service>(ns), &lp),
            list_all::<EndpointSlice>(reader, url::<EndpointSlice>(ns), &lp),
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
        state.events = keep(events, GapAbout::list(ListOf::Events, ns), &mut gaps);
        let node_events = keep(
            node_events,
            GapAbout::list(ListOf::NodeEvents, Some("default")),
            &mut gaps,
        );
        state.events.extend(node_events);
        state.nodes = keep(nodes, GapAbout::list(ListOf::Nodes, None), &mut gaps);
        state.replica_sets = keep(rs, GapAbout::list(ListOf::ReplicaSets, ns), &mut gaps);
        state.deployments = keep(deploys, GapAbout::list(ListOf::Deployments, ns), &mut gaps);
        state.stateful_sets = keep(sts, GapAbout::list(ListOf::StatefulSets, ns), &mut gaps);
        state.daemon_sets = keep(ds, GapAbout::list(ListOf::DaemonSets, ns), &mut gaps);
        state.jobs = keep(jobs, GapAbout::list(ListOf::Jobs, ns), &mut gaps);
        state.controller_revisions = keep(
            revs,
            GapAbout::list(ListOf::ControllerRevisions, ns),
            &mut gaps,
        );
        state.services = keep(svcs, GapAbout::list(ListOf::Services, ns), &mut gaps);
        state.endpoint_slices = keep(
            slices,
            GapAbout::list(ListOf::EndpointSlices, ns),
            &mut gaps,
        );
        if opts.read_config {
            state.config_maps = keep(cms, GapAbout::list(ListOf::ConfigMaps, ns), &mut gaps)
                .into_iter()
                .map(ingest::config_map)
                .collect();
            state.secrets = keep(secrets, GapAbout::list(ListOf::Secrets, ns), &mut gaps)
                .into_iter()
                .map(ingest::secret)
                .collect();
        } else {
            for l in [ListOf::ConfigMaps, ListOf::Secrets] {
                gaps.push(Gap::new(
                    GapAbout::list(l, ns),
                    GapReason::NotRequested,
                    "not read (--no-config)",
                ));
            }
        }

        let wanted = logs::logs_needed(&state.pods, now);
        if !wanted.is_empty() {
            progress(&format!("reading {} container logs", wanted.len()));
        }
        state.logs = logs::read_logs(
            reader,
            wanted,
            opts.log_tail_lines,
            opts.log_concurrency,
            &mut gaps,
        )
        .await;

        let nodes_involved: BTreeSet<String> = state
            .pods
            .iter()
            .filter(|p| !status::troubled_containers(p, now).is_empty())
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        state.kubelet_configs = configz::read_configs(
            reader,
            &state.nodes,
            &nodes_involved,
            opts.log_concurrency,
            &mut gaps,
        )
        .await;
        state.gaps = gaps;
        ingest::scrub(&mut state);
        Ok(state)
    }
}
