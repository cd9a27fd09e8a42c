//! The checks: pure functions from a workload's pod template (and, live, its pods and nodes) to
//! findings. One module per family; each check pushes findings with its default severity, and
//! [`crate::audit`] applies the configured severities and exemptions afterwards.

mod entrypoint;
mod image;
mod jvm;
mod live;
mod probes;
mod references;
mod resources;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use unloop_core::state::ClusterState;
use unloop_core::status::Role;
use unloop_core::workload::WorkloadKind;

use crate::check::{CheckId, Finding, Fix, ObjectRef};
use crate::config::AuditConfig;
use crate::inventory::{Inventory, Workload};
use crate::resolve::Resolver;
use crate::yaml::Yaml;

/// What a live cluster shows about the audited workloads: their pods and the nodes.
#[derive(Debug, Clone)]
pub struct Observed {
    pub state: ClusterState,
    pub now: jiff::Timestamp,
    /// True when the audited workloads themselves were read live (`--live`); false when only the
    /// cluster's nodes back a manifest audit (`--resolve-live`).
    pub workloads_live: bool,
    /// Pod indexes by (namespace, kind, name) of the workload that owns them.
    pods_by_workload: HashMap<(String, WorkloadKind, String), Vec<usize>>,
}

impl Observed {
    pub fn new(state: ClusterState, now: jiff::Timestamp, workloads_live: bool) -> Observed {
        let mut pods_by_workload: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, p) in state.pods.iter().enumerate() {
            let w = unloop_core::workload::of_pod(&state, p);
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            pods_by_workload
                .entry((ns, w.kind, w.name))
                .or_default()
                .push(i);
        }
        Observed {
            state,
            now,
            workloads_live,
            pods_by_workload,
        }
    }

    pub fn pods(&self, w: &Workload) -> Vec<&Pod> {
        self.pods_by_workload
            .get(&(w.namespace.clone(), w.kind, w.name.clone()))
            .map(|ix| ix.iter().filter_map(|i| self.state.pods.get(*i)).collect())
            .unwrap_or_default()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.state.nodes
    }
}

/// Everything a check may read besides the workload itself.
pub struct Context<'a> {
    pub config: &'a AuditConfig,
    pub resolver: &'a Resolver,
    pub observed: Option<&'a Observed>,
}

/// One container of a workload, with its role in the pod.
pub(crate) struct Subject<'a> {
    pub workload: &'a Workload,
    pub spec: &'a PodSpec,
    pub container: &'a Container,
    pub role: Role,
}

impl Subject<'_> {
    pub fn finding(&self, check: CheckId, message: String, fix: Fix) -> Finding {
        Finding {
            check,
            severity: check.default_severity(),
            object: self.workload.object(),
            container: Some(self.container.name.clone()),
            location: self.workload.location(Some(&self.container.name)),
            message,
            fix,
        }
    }

    /// A strategic-merge-style snippet that sets `fields` on this container.
    pub fn patch(&self, fields: Vec<(&str, Yaml)>) -> Yaml {
        let list = if self.role == Role::Main {
            "containers"
        } else {
            "initContainers"
        };
        let container =
            std::iter::once(("name", Yaml::from(self.container.name.clone()))).chain(fields);
        Yaml::map([(list, Yaml::Seq(vec![Yaml::map(container)]))])
    }

    /// `command` and `args` as one line, for messages; secret-looking values redacted.
    pub fn command_line(&self) -> Option<String> {
        let parts: Vec<&str> = self
            .container
            .command
            .iter()
            .flatten()
            .chain(self.container.args.iter().flatten())
            .map(String::as_str)
            .collect();
        (!parts.is_empty()).then(|| unloop_core::redact::text(&parts.join(" ")))
    }
}

/// A workload-level finding (no container).
pub(crate) fn workload_finding(w: &Workload, check: CheckId, message: String, fix: Fix) -> Finding {
    Finding {
        check,
        severity: check.default_severity(),
        object: w.object(),
        container: None,
        location: w.location(None),
        message,
        fix,
    }
}

/// Runs every check on every workload; findings carry default severities.
pub fn run(inventory: &Inventory, ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in &inventory.workloads {
        let Some(spec) = w.spec() else { continue };
        references::pod_level(w, spec, ctx, &mut out);
        let init = spec.init_containers.iter().flatten().map(|c| {
            let role = if c.restart_policy.as_deref() == Some("Always") {
                Role::Sidecar
            } else {
                Role::Init
            };
            (c, role)
        });
        let main = spec.containers.iter().map(|c| (c, Role::Main));
        for (container, role) in init.chain(main) {
            let s = Subject {
                workload: w,
                spec,
                container,
                role,
            };
            probes::check(&s, ctx, &mut out);
            resources::check(&s, ctx, &mut out);
            jvm::check(&s, ctx, &mut out);
            references::check(&s, ctx, &mut out);
            image::check(&s, ctx, &mut out);
            entrypoint::check(&s, &mut out);
            if let Some(obs) = ctx.observed {
                live::container(&s, obs, ctx.config, &mut out);
            }
        }
    }
    if let Some(obs) = ctx.observed.filter(|o| o.workloads_live) {
        live::nodes(inventory, obs, &mut out);
    }
    out
}

/// Findings about objects that are not workloads (nodes) use this.
pub(crate) fn object_finding(
    object: ObjectRef,
    check: CheckId,
    message: String,
    fix: Fix,
) -> Finding {
    Finding {
        check,
        severity: check.default_severity(),
        object,
        container: None,
        location: None,
        message,
        fix,
    }
}

/// Rounds seconds up to a multiple of `step`.
pub(crate) fn round_up(secs: i64, step: i64) -> i64 {
    if step <= 0 {
        secs
    } else {
        (secs + step - 1) / step * step
    }
}
