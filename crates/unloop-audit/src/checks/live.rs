//! Live-only checks, from the workload's pods and the nodes: recent restarts, OOMKilled history,
//! node pressure; and the observed start-up time the probe checks compare with.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use unloop_core::quantity::bytes;
use unloop_core::resources::{memory_limit, quantity, round_up_tidy};
use unloop_core::shell::{self, Cmd};
use unloop_core::subject::human_secs;

use super::{Observed, Subject, object_finding};
use crate::check::{CheckId, Finding, Fix, ObjectRef};
use crate::config::AuditConfig;
use crate::inventory::Inventory;
use crate::yaml::Yaml;

fn statuses<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
}

/// The slowest observed start of this container: from its start to its pod's Ready condition, over
/// the pods that are Ready.
pub(crate) fn start_to_ready_secs(s: &Subject, obs: &Observed) -> Option<f64> {
    obs.pods(s.workload)
        .into_iter()
        .filter_map(|p| {
            let cs = statuses(p, &s.container.name).filter(|c| c.ready)?;
            let started = cs.state.as_ref()?.running.as_ref()?.started_at.as_ref()?.0;
            let ready = p
                .status
                .as_ref()?
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
                .as_ref()?
                .0;
            let secs = ready.duration_since(started).as_secs_f64();
            (secs >= 0.0).then_some(secs)
        })
        .reduce(f64::max)
}

pub(crate) fn container(s: &Subject, obs: &Observed, config: &AuditConfig, out: &mut Vec<Finding>) {
    let pods = obs.pods(s.workload);
    if pods.is_empty() {
        return;
    }
    let window_secs = i64::from(config.thresholds.restart_window_hours) * 3600;
    let mut restarts = 0;
    let mut pods_restarted = 0;
    let mut last: Option<(jiff::Timestamp, String)> = None;
    let mut oom: Option<(jiff::Timestamp, String)> = None;
    for p in &pods {
        let Some(cs) = statuses(p, &s.container.name) else {
            continue;
        };
        let states = [cs.last_state.as_ref(), cs.state.as_ref()];
        for t in states
            .into_iter()
            .flatten()
            .filter_map(|st| st.terminated.as_ref())
        {
            let Some(at) = t.finished_at.as_ref().map(|f| f.0) else {
                continue;
            };
            if t.reason.as_deref() == Some("OOMKilled") && oom.as_ref().is_none_or(|(o, _)| at > *o)
            {
                oom = Some((at, p.metadata.name.clone().unwrap_or_default()));
            }
        }
        let Some(t) = cs.last_state.as_ref().and_then(|st| st.terminated.as_ref()) else {
            continue;
        };
        let Some(at) = t.finished_at.as_ref().map(|f| f.0) else {
            continue;
        };
        if cs.restart_count > 0 && obs.now.duration_since(at).as_secs() <= window_secs {
            restarts += cs.restart_count;
            pods_restarted += 1;
            if last.as_ref().is_none_or(|(l, _)| at > *l) {
                let reason = t.reason.clone().unwrap_or_else(|| "Error".into());
                last = Some((at, format!("exit code {} ({reason})", t.exit_code)));
            }
        }
    }
    let workload = s.workload.object().to_string();
    let ns = &s.workload.namespace;
    if let Some((at, what)) = last {
        let ago = human_secs(obs.now.duration_since(at).as_secs_f64());
        out.push(s.finding(
            CheckId::RecentRestarts,
            format!(
                "{restarts} restarts in {pods_restarted} of {} pods, the last {ago} ago (within {}h): {what}",
                pods.len(),
                config.thresholds.restart_window_hours
            ),
            Fix::text(format!("find out why: unloop diagnose {workload} -n {ns}")),
        ));
    }
    if let Some((at, pod)) = oom {
        let limit = memory_limit(s.container);
        let limit_bytes = limit.as_deref().and_then(|q| bytes(q).ok());
        let ago = human_secs(obs.now.duration_since(at).as_secs_f64());
        let message = format!(
            "OOMKilled in pod {pod} {ago} ago{}",
            limit
                .as_ref()
                .map(|l| format!(", at limits.memory {l}"))
                .unwrap_or_else(|| " (no memory limit: the node ran out)".into())
        );
        let fix = match limit_bytes {
            Some(b) => {
                let new_limit = round_up_tidy(b.saturating_mul(2));
                let mut res: ResourceRequirements =
                    s.container.resources.clone().unwrap_or_default();
                res.limits
                    .get_or_insert_with(BTreeMap::new)
                    .insert("memory".into(), Quantity(quantity(new_limit)));
                res.requests
                    .get_or_insert_with(BTreeMap::new)
                    .insert("memory".into(), Quantity(quantity(new_limit)));
                Fix::with_yaml(
                    format!(
                        "give it at least twice the limit it died at ({}), then right-size from measured use: unloop audit --live --rightsize -n {ns}",
                        quantity(new_limit)
                    ),
                    s.patch(vec![("resources", Yaml::of(&res))]),
                )
            }
            None => Fix::text(format!(
                "set a memory request and limit from measured use: unloop audit --live --rightsize -n {ns}"
            )),
        };
        out.push(s.finding(CheckId::OomHistory, message, fix));
    }
}

/// Nodes with a pressure condition, naming the audited pods they run.
pub(crate) fn nodes(inventory: &Inventory, obs: &Observed, out: &mut Vec<Finding>) {
    for node in obs.nodes() {
        let name = node.metadata.name.clone().unwrap_or_default();
        let pressure: Vec<String> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .filter(|c| c.type_.ends_with("Pressure") && c.status == "True")
                    .map(|c| match c.message.as_deref().filter(|m| !m.is_empty()) {
                        Some(m) => format!("{} ({m})", c.type_),
                        None => c.type_.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if pressure.is_empty() {
            continue;
        }
        let affected: Vec<String> = inventory
            .workloads
            .iter()
            .filter(|w| {
                obs.pods(w).iter().any(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                })
            })
            .map(|w| format!("{}/{}", w.namespace, w.object()))
            .collect();
        let runs = if affected.is_empty() {
            String::new()
        } else {
            format!("; it runs {}", affected.join(", "))
        };
        out.push(object_finding(
            ObjectRef { kind: "Node".into(), namespace: String::new(), name: name.clone() },
            CheckId::NodePressure,
            format!("node {name} reports {}{runs}", pressure.join(", ")),
            Fix::text(format!(
                "see what the node is short of: {}; free memory or disk, or move workloads elsewhere",
                shell::render(&Cmd::kubectl(&["describe", "node"]).operand(name).into())
            )),
        ));
    }
}
