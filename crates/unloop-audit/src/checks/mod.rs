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
use unloop_core::restart::{self, Policy};
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
    /// The pod's restartPolicy as the kubelet will see it ([`pod_policy`]).
    pub pod_policy: Policy,
}

/// The restartPolicy of a workload's pods: the template's, else what the API server gives: Always
/// (a Job's template must name Never or OnFailure; without one, nothing is taken to restart).
fn pod_policy(w: &Workload, spec: &PodSpec) -> Policy {
    restart::pod_policy(Some(spec)).unwrap_or(match w.kind {
        WorkloadKind::Job | WorkloadKind::CronJob => Policy::Never,
        _ => Policy::Always,
    })
}

impl Subject<'_> {
    /// Whether the kubelet restarts this container even after a clean exit, so that a command
    /// that returns is a crash loop (`restart::long_running`: a sidecar, restartPolicy Always of
    /// the container or the pod, or restartPolicyRules that restart exit 0).
    pub fn long_running(&self) -> bool {
        restart::long_running(self.pod_policy, self.container, self.role != Role::Main)
    }

    /// Whether the kubelet restarts this container after killing it on a failed probe, so that a
    /// probe that kills a slow start makes a crash loop (`restart::restarted_after_kill`).
    pub fn restarted_after_kill(&self) -> bool {
        restart::restarted_after_kill(self.pod_policy, self.container, self.role != Role::Main)
    }

    /// What decides that a clean exit restarts this container (`restart::decide` on exit 0).
    pub fn exit_zero_because(&self) -> restart::Because {
        restart::decide(
            self.pod_policy,
            Some(self.container),
            self.role != Role::Main,
            0,
        )
        .because
    }

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
        let pod_policy = pod_policy(w, spec);
        let init = spec.init_containers.iter().flatten().map(|c| {
            let role = if restart::sidecar(c, true) {
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
                pod_policy,
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
