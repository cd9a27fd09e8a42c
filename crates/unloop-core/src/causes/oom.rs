//! Resources and OOM: a memory limit too low, or a JVM heap larger than the limit.

use crate::causes::config::retry_now;
use crate::resources::{self, HEAP_SHARE, Heap, HeapSource};
use crate::shell::Script;
use crate::subject::{About, Finding, Subject, event_time};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};

pub fn detect(s: &Subject) -> Vec<Finding> {
    let Some(run) = s.last_run() else {
        return Vec::new();
    };
    if run.reason.as_deref() != Some("OOMKilled") {
        return Vec::new();
    }
    let limit_q = resources::memory_limit(s.spec);
    let limit = limit_q
        .as_deref()
        .and_then(|q| crate::quantity::bytes(q).ok());
    let request_q = resources::memory_request(s.spec);
    let mut base = vec![];
    if let Some(ev) = s.termination_evidence() {
        base.push(ev);
    }
    base.push(s.spec_evidence(
        ".resources",
        format!(
            "limits.memory {}, requests.memory {}",
            limit_q.as_deref().unwrap_or("(none)"),
            request_q.as_deref().unwrap_or("(none)")
        ),
    ));
    let Some(limit) = limit else {
        // No limit: the container was killed because the node ran out, not because of its own cap.
        let mut cause = Cause::new(
            CauseId::NodePressure,
            Confidence::Medium,
            "OOM-killed without a memory limit of its own: the node ran out of memory",
        );
        cause.evidence = base;
        return vec![Finding {
            about: About::Container,
            cause,
            remedies: vec![set_memory(s, None, CauseId::NodePressure)],
        }];
    };
    let mut out = Vec::new();
    if let Some(heap) = resources::jvm_heap(s.spec) {
        let heap_bytes = heap.bytes_under(limit);
        if heap_bytes as f64 > limit as f64 * HEAP_SHARE {
            out.push(jvm_finding(s, &heap, heap_bytes, limit, base.clone()));
        }
    }
    let mut cause = Cause::new(
        CauseId::OomLimitTooLow,
        if out.is_empty() {
            Confidence::High
        } else {
            Confidence::Medium
        },
        format!(
            "the container needs more memory than its limit of {}",
            limit_q.as_deref().unwrap_or_default()
        ),
    );
    cause.evidence = base;
    if let Some(change) = limit_change(s) {
        cause.summary.push_str(&format!(
            "; revision {} changed the limit",
            s.revision.unwrap_or_default()
        ));
        cause.evidence.push(Evidence::new(
            EvidenceKind::Rollout,
            "rollout history",
            change,
        ));
    }
    if let Some(node) = s.node {
        let pressure = node
            .status
            .as_ref()
            .and_then(|st| st.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "MemoryPressure"))
            .map(|c| format!("MemoryPressure={}", c.status));
        if let Some(p) = pressure {
            cause.evidence.push(Evidence::new(
                EvidenceKind::Node,
                format!("node/{}", node.metadata.name.as_deref().unwrap_or_default()),
                p,
            ));
        }
    }
    let mut remedies = vec![set_memory(s, Some(limit), CauseId::OomLimitTooLow)];
    remedies.extend(resize_in_place(s, limit));
    remedies.push(retry_now(s, CauseId::OomLimitTooLow));
    out.push(Finding { cause, remedies, about: About::Container });
    out
}

fn jvm_finding(
    s: &Subject,
    heap: &Heap,
    heap_bytes: u64,
    limit: u64,
    base: Vec<Evidence>,
) -> Finding {
    let id = CauseId::OomJvmHeapOverLimit;
    let mut cause = Cause::new(
        id,
        Confidence::High,
        format!(
            "the JVM heap ({}, {}) leaves no room under the memory limit of {}: heap plus metaspace, threads and buffers exceed it",
            heap.flag(),
            resources::quantity(heap_bytes),
            resources::quantity(limit)
        ),
    );
    cause.evidence = base;
    cause
        .evidence
        .push(s.spec_evidence("", format!("{} in {}", heap.flag(), heap.source())));
    let fit = (limit as f64 * HEAP_SHARE) as u64 / (1024 * 1024);
    let new_limit = resources::round_up_tidy((heap_bytes as f64 / HEAP_SHARE) as u64);
    let mut remedies = Vec::new();
    if let (
        Heap::Max {
            flag,
            source: HeapSource::Env(var),
            ..
        },
        Some(w),
    ) = (heap, s.settable())
    {
        let value = s
            .spec
            .env
            .iter()
            .flatten()
            .find(|e| &e.name == var)
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        let fixed = value.replace(flag.as_str(), &format!("-Xmx{fit}m"));
        remedies.push(Remedy::fix(
            id,
            format!("lower the heap to 75% of the limit ({fit}Mi)"),
            Some(
                s.kubectl(&["set", "env"], w)
                    .flag_value("-c", s.container())
                    .operand(format!("{var}={fixed}"))
                    .into(),
            ),
        ));
    }
    remedies.push(Remedy::fix(
        id,
        format!(
            "or raise the memory limit so the heap is 75% of it ({})",
            resources::quantity(new_limit)
        ),
        set_resources(s, &resources::quantity(new_limit)),
    ));
    remedies.push(retry_now(s, id));
    Finding { cause, remedies, about: About::Container }
}

/// A concrete new limit: without usage metrics, twice the limit that was exceeded, rounded to 64Mi.
fn set_memory(s: &Subject, limit: Option<u64>, id: CauseId) -> Remedy {
    let new = resources::round_up_tidy(
        limit
            .map(|l| l.saturating_mul(2))
            .unwrap_or(512 * 1024 * 1024),
    );
    let q = resources::quantity(new);
    let title = match limit {
        Some(l) => format!(
            "raise the memory limit from {} to {q} (double; size it from observed usage when you have it)",
            resources::quantity(l)
        ),
        None => {
            format!("set a memory request and limit ({q}) so the scheduler reserves memory for it")
        }
    };
    Remedy::fix(id, title, set_resources(s, &q))
}

/// The first Kubernetes minor version whose kubelet resizes a running pod in place (KEP-1287 GA).
const RESIZE_MINOR: u32 = 35;

/// A stopgap beside the template fix: the running pod's memory limit raised in place through the
/// `resize` subresource (in-place resize, GA in 1.35), without waiting for a rollout. Offered only
/// for a pod that is running (not deleted, not finished) on a node whose kubelet is 1.35 or newer,
/// and only where the container's resizePolicy does not forbid it (RestartContainer in a pod whose
/// container is never restarted: the API refuses). A Guaranteed pod gets its request raised too
/// (a resize may not change the QoS class). The next rollout re-creates the pod from the template.
fn resize_in_place(s: &Subject, limit: u64) -> Option<Remedy> {
    let status = s.pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") || s.pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let version = &s.node?.status.as_ref()?.node_info.as_ref()?.kubelet_version;
    let mut parts = version.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next()?.parse::<u32>().ok()?, parts.next()?);
    let minor: u32 = minor
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    if major != 1 || minor < RESIZE_MINOR {
        return None;
    }
    let restarts_to_resize = s.spec.resize_policy.iter().flatten().any(|p| {
        p.resource_name == "memory" && p.restart_policy == "RestartContainer"
    });
    if restarts_to_resize && !s.restart_on(1).restarts {
        return None;
    }
    let q = resources::quantity(resources::round_up_tidy(limit.saturating_mul(2)));
    let guaranteed = status.qos_class.as_deref() == Some("Guaranteed");
    let mut memory = serde_json::Map::new();
    memory.insert("limits".into(), serde_json::json!({ "memory": q }));
    if guaranteed {
        memory.insert("requests".into(), serde_json::json!({ "memory": q }));
    }
    let patch = serde_json::json!({
        "spec": { "containers": [ { "name": s.container(), "resources": memory } ] }
    });
    let how = if restarts_to_resize {
        "the kubelet restarts the container to apply it (its resizePolicy for memory)"
    } else {
        "the kubelet applies it to the running pod"
    };
    Some(Remedy::fix(
        CauseId::OomLimitTooLow,
        format!(
            "stopgap until the template is fixed: raise this pod's memory limit to {q} in place (in-place resize); {how}, and the next rollout undoes it"
        ),
        Some(
            s.kubectl(&["patch", "pod"], s.pod_name)
                .flag_value("--subresource", "resize")
                .flag_value("--type", "strategic")
                .flag_value("-p", patch.to_string())
                .into(),
        ),
    ))
}

/// `kubectl set resources` with memory limit and request `q`, on the owner when there is one.
fn set_resources(s: &Subject, q: &str) -> Option<Script> {
    s.settable().map(|w| {
        s.kubectl(&["set", "resources"], w)
            .flag_value("-c", s.container())
            .flag(format!("--limits=memory={q}"))
            .flag(format!("--requests=memory={q}"))
            .into()
    })
}

/// When this pod's revision lowered the container's memory limit relative to the one before.
fn limit_change(s: &Subject) -> Option<String> {
    let rev = s.revision?;
    let idx = s.revisions.iter().position(|r| r.number == rev)?;
    let prev = s.revisions.get(idx.checked_sub(1)?)?;
    let old_c = prev
        .template()?
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == s.spec.name)?;
    let old = resources::memory_limit(old_c);
    let new = resources::memory_limit(s.spec);
    let (ob, nb) = (
        old.as_deref().and_then(|q| crate::quantity::bytes(q).ok()),
        new.as_deref().and_then(|q| crate::quantity::bytes(q).ok()),
    );
    match (ob, nb) {
        (Some(o), Some(n)) if n < o => Some(format!(
            "revision {} lowered limits.memory from {} to {}",
            rev,
            old.unwrap_or_default(),
            new.unwrap_or_default()
        )),
        _ => None,
    }
}

/// SystemOOM events on the node close to this container's death: a node-wide OOM.
pub fn node_oom_near(s: &Subject) -> Vec<Evidence> {
    let Some(finished) = s
        .last_run()
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0)
    else {
        return Vec::new();
    };
    s.node_events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SystemOOM"))
        .filter(|e| {
            event_time(e).is_some_and(|t| t.duration_since(finished).as_secs().abs() <= 120)
        })
        .map(|e| s.event_evidence(e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn killed_under_its_own_limit() {
        let state = scenario("oom-limit");
        let f = finding(&state, detect, CauseId::OomLimitTooLow);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "exit code 137 (OOMKilled)"));
        assert!(cites(&f, "limits.memory 128Mi"));
        assert!(f.remedies[0].command().unwrap().contains("--limits=memory=256Mi"));
    }

    /// The captured OOM pod runs on the testbed's 1.35.4 kubelet: beside the template fix, the
    /// stopgap resize of this pod in place, as argv through the one shell renderer. Not offered
    /// on an older kubelet, nor where the memory resizePolicy needs a restart the pod never does.
    #[test]
    fn a_running_pod_on_a_1_35_node_gets_an_in_place_resize_stopgap() {
        let mut state = scenario("oom-limit");
        let stopgap = |state: &crate::ClusterState| {
            finding(state, detect, CauseId::OomLimitTooLow)
                .remedies
                .into_iter()
                .find(|r| r.title.starts_with("stopgap"))
        };
        let r = stopgap(&state).expect("a resize stopgap");
        assert!(r.title.contains("the next rollout undoes it"), "{}", r.title);
        let pod = state.pods[0].metadata.name.clone().unwrap();
        assert_eq!(
            r.command().unwrap(),
            format!(
                "kubectl patch pod {pod} -n oom-limit --subresource resize --type strategic -p '{{\"spec\":{{\"containers\":[{{\"name\":\"worker\",\"resources\":{{\"limits\":{{\"memory\":\"256Mi\"}}}}}}]}}}}'"
            )
        );

        state.nodes[0]
            .status
            .as_mut()
            .unwrap()
            .node_info
            .as_mut()
            .unwrap()
            .kubelet_version = "v1.34.2".into();
        assert!(stopgap(&state).is_none());

        let mut state = scenario("oom-limit");
        testing::container(&mut state).resize_policy =
            Some(vec![k8s_openapi::api::core::v1::ContainerResizePolicy {
                resource_name: "memory".into(),
                restart_policy: "RestartContainer".into(),
            }]);
        let r = stopgap(&state).expect("a Deployment's container restarts");
        assert!(r.title.contains("restarts the container"), "{}", r.title);
        testing::pod(&mut state).spec.as_mut().unwrap().restart_policy = Some("Never".into());
        assert!(stopgap(&state).is_none());
    }

    #[test]
    fn without_a_limit_the_node_ran_out() {
        let mut state = scenario("oom-limit");
        let r = testing::container(&mut state).resources.as_mut().unwrap();
        r.limits = None;
        assert_eq!(
            ids(&state, detect),
            [(CauseId::NodePressure, Confidence::Medium)]
        );
    }

    #[test]
    fn another_termination_is_no_oom() {
        let mut state = scenario("oom-limit");
        testing::last_run(&mut state).reason = Some("Error".into());
        assert!(ids(&state, detect).is_empty());
    }

    #[test]
    fn a_jvm_heap_over_the_limit_is_fixed_in_its_variable() {
        let state = scenario("jvm-heap");
        let f = finding(&state, detect, CauseId::OomJvmHeapOverLimit);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "in env JAVA_OPTS"));
        let fix = f.remedies[0].command().unwrap();
        assert!(fix.contains("set env deploy/orders"), "{fix}");
        assert!(fix.contains("JAVA_OPTS="), "{fix}");
        let limit = finding(&state, detect, CauseId::OomLimitTooLow);
        assert_eq!(limit.cause.confidence, Confidence::Medium);
    }

    /// The heap's source is typed: a flag on the command line has no variable to edit.
    #[test]
    fn a_jvm_heap_on_the_command_line_is_not_edited_as_a_variable() {
        let mut state = scenario("jvm-heap");
        let c = testing::container(&mut state);
        let opts = c.env.take().unwrap()[0].value.clone().unwrap();
        c.args = Some(opts.split_whitespace().map(str::to_string).collect());
        let f = finding(&state, detect, CauseId::OomJvmHeapOverLimit);
        assert!(cites(&f, "in command line (word"));
        assert!(
            f.remedies
                .iter()
                .filter_map(|r| r.command())
                .all(|c| !c.contains("set env"))
        );
    }

    #[test]
    fn a_healthy_pod_is_not_oom_killed() {
        assert!(testing::run(&testing::healthy(), detect).is_empty());
    }
}
