//! The cluster side of `unloop debug` and `unloop retry`: the only code in unloop that changes a
//! cluster, and only what the user asked for. Objects and patches are built by `unloop_core::debug`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use unloop_core::workload::WorkloadKind;

use crate::live::Live;

/// Why a debug operation failed, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum DebugOpError {
    #[error("no {what} in namespace {namespace}")]
    NotFound { what: String, namespace: String },
    #[error("not allowed to {verb} {resource} in namespace {namespace}: {message}")]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("the debug copy did not start: {0}")]
    DidNotStart(String),
    #[error("the API server failed: {0}")]
    Api(String),
    #[error("{0}")]
    Plan(#[from] unloop_core::debug::DebugError),
}

fn api_error(
    e: kube::Error,
    verb: &'static str,
    resource: &'static str,
    namespace: &str,
    what: &str,
) -> DebugOpError {
    match e {
        kube::Error::Api(s) if s.code == 404 => DebugOpError::NotFound {
            what: what.into(),
            namespace: namespace.into(),
        },
        kube::Error::Api(s) if s.code == 403 => DebugOpError::Forbidden {
            verb,
            resource,
            namespace: namespace.into(),
            message: s.message,
        },
        kube::Error::Api(s) if s.code == 409 => DebugOpError::Conflict(s.message),
        kube::Error::Api(s) => DebugOpError::Api(format!("{} ({})", s.message, s.code)),
        other => DebugOpError::Api(other.to_string()),
    }
}

pub async fn get_pod(live: &Live, ns: &str, name: &str) -> Result<Pod, DebugOpError> {
    Api::<Pod>::namespaced(live.client(), ns)
        .get(name)
        .await
        .map_err(|e| api_error(e, "get", "pods", ns, &format!("pod {name}")))
}

pub async fn create_pod(live: &Live, ns: &str, pod: &Pod) -> Result<Pod, DebugOpError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    Api::<Pod>::namespaced(live.client(), ns).create(&PostParams::default(), pod).await.map_err(|e| match api_error(e, "create", "pods", ns, &name) {
        DebugOpError::Conflict(_) => DebugOpError::Conflict(format!(
            "a debug copy named {name} already exists in {ns}: exec into it, or remove it with unloop debug --cleanup -n {ns}"
        )),
        other => other,
    })
}

/// Deletes a debug copy: only the very pod given (by uid), and only if it is labelled as a copy.
/// A copy already gone is not an error; a pod made since under the same name is left alone.
pub async fn delete_copy(live: &Live, copy: &Pod) -> Result<(), DebugOpError> {
    let pre = unloop_core::debug::copy_delete_precondition(copy)?;
    let ns = copy.metadata.namespace.clone().unwrap_or_default();
    let name = copy.metadata.name.clone().unwrap_or_default();
    let pre = Preconditions {
        uid: pre.uid,
        resource_version: pre.resource_version,
    };
    match delete_exact::<Pod>(live, &ns, &name, pre).await? {
        Deleted::Now | Deleted::AlreadyGone => Ok(()),
        Deleted::Replaced => Err(DebugOpError::Conflict(format!(
            "pod {name} in {ns} is no longer the debug copy unloop made (another pod took its name); left alone"
        ))),
    }
}

/// How a delete by uid went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The very object shown (its uid) is being deleted.
    Now,
    /// It was gone already.
    AlreadyGone,
    /// Another object has taken its name since (or it changed, under a resourceVersion
    /// precondition): left alone.
    Replaced,
}

/// The one delete of unloop: the object `name` of kind `K` only while it is the one the user was
/// shown (`pre`: its uid, and for a debug copy its resourceVersion), its dependents deleted by the
/// garbage collector after it (propagationPolicy Background: a Job's pods go with it; a Job
/// deleted through the API without it would orphan them).
pub async fn delete_exact<K>(
    live: &Live,
    ns: &str,
    name: &str,
    pre: Preconditions,
) -> Result<Deleted, DebugOpError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let dp = DeleteParams {
        preconditions: Some(pre),
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let kind = K::kind(&()).to_lowercase();
    let resource: &'static str = if kind == "job" { "jobs" } else { "pods" };
    match Api::<K>::namespaced(live.client(), ns)
        .delete(name, &dp)
        .await
    {
        Ok(_) => Ok(Deleted::Now),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Deleted::AlreadyGone),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Deleted::Replaced),
        Err(e) => Err(api_error(
            e,
            "delete",
            resource,
            ns,
            &format!("{kind} {name}"),
        )),
    }
}

/// Deletes the pod the user was shown (`unloop retry`), by its uid: a pod re-created under the
/// same name since (a StatefulSet's) is never deleted in its place.
pub async fn delete_pod(
    live: &Live,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<Deleted, DebugOpError> {
    delete_exact::<Pod>(live, ns, name, by_uid(uid)).await
}

fn by_uid(uid: &str) -> Preconditions {
    Preconditions {
        uid: Some(uid.to_string()),
        resource_version: None,
    }
}

/// The Job `name` as the API server has it (whole: nothing redacted, since `retry` creates it
/// again from this).
pub async fn get_job(live: &Live, ns: &str, name: &str) -> Result<Job, DebugOpError> {
    Api::<Job>::namespaced(live.client(), ns)
        .get(name)
        .await
        .map_err(|e| api_error(e, "get", "jobs", ns, &format!("job {name}")))
}

/// `unloop retry job/NAME`: deletes the Job `old` (by its uid; its pods go with it) and creates
/// `again` (`unloop_core::jobs::rerun` of it) in its place. Until the old Job is gone from the API
/// server its name is taken: the create is tried again for a while as long as the name still
/// belongs to the old uid; a Job someone else made under the name meanwhile is left alone.
pub async fn rerun_job(live: &Live, ns: &str, old: &Job, again: &Job) -> Result<Job, DebugOpError> {
    let name = old.metadata.name.clone().unwrap_or_default();
    let uid = old.metadata.uid.clone().unwrap_or_default();
    let what = format!("job {name}");
    if delete_exact::<Job>(live, ns, &name, by_uid(&uid)).await? == Deleted::Replaced {
        return Err(DebugOpError::Conflict(format!(
            "job {name} in {ns} was replaced since unloop read it; nothing was changed"
        )));
    }
    let api = Api::<Job>::namespaced(live.client(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let created = api.create(&PostParams::default(), again).await;
        let Err(e) = created else {
            return created.map_err(|e| api_error(e, "create", "jobs", ns, &what));
        };
        if !matches!(&e, kube::Error::Api(s) if s.code == 409) {
            return Err(api_error(e, "create", "jobs", ns, &what));
        }
        let still_old = match api.get(&name).await {
            Ok(j) => j.metadata.uid.as_deref() == Some(uid.as_str()),
            Err(kube::Error::Api(s)) if s.code == 404 => true,
            Err(e) => return Err(api_error(e, "get", "jobs", ns, &what)),
        };
        if !still_old {
            return Err(DebugOpError::Conflict(format!(
                "another job {name} was created in {ns} meanwhile; left alone"
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DebugOpError::Conflict(format!(
                "job {name} in {ns} is deleted but still there after 30s; create it again by hand"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How a debug copy's start ended.
#[derive(Debug)]
pub enum Started {
    Running(Box<Pod>),
    /// The kept-alive container could not run; `missing_tool` when the image lacks a shell or sleep.
    Failed {
        why: String,
        missing_tool: bool,
    },
}

/// Waits until the copy's container runs, or fails, or `timeout` passes.
pub async fn wait_started(
    live: &Live,
    ns: &str,
    name: &str,
    container: &str,
    timeout: Duration,
) -> Result<Started, DebugOpError> {
    let api = Api::<Pod>::namespaced(live.client(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pod = api
            .get(name)
            .await
            .map_err(|e| api_error(e, "get", "pods", ns, name))?;
        let status = pod.status.as_ref();
        let cs = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == container));
        let state = cs.and_then(|c| c.state.as_ref());
        if state.and_then(|s| s.running.as_ref()).is_some() {
            return Ok(Started::Running(Box::new(pod)));
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            let why = format!(
                "exit code {} ({}) {}",
                t.exit_code,
                t.reason.as_deref().unwrap_or("-"),
                t.message.as_deref().unwrap_or("")
            )
            .trim()
            .to_string();
            let missing = t.exit_code == 127
                || t.exit_code == 128
                || why.contains("not found")
                || why.contains("no such file");
            return Ok(Started::Failed {
                why,
                missing_tool: missing,
            });
        }
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            if matches!(
                reason,
                "RunContainerError"
                    | "CreateContainerError"
                    | "CreateContainerConfigError"
                    | "ErrImagePull"
                    | "ImagePullBackOff"
                    | "ErrImageNeverPull"
                    | "InvalidImageName"
            ) {
                let msg = w.message.clone().unwrap_or_default();
                let missing = reason == "RunContainerError"
                    && (msg.contains("not found") || msg.contains("no such file"));
                return Ok(Started::Failed {
                    why: format!("{reason}: {msg}"),
                    missing_tool: missing,
                });
            }
        }
        if status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
            return Ok(Started::Failed {
                why: status
                    .and_then(|s| s.message.clone())
                    .unwrap_or_else(|| "the pod failed".into()),
                missing_tool: false,
            });
        }
        if let Some(c) = status.and_then(|s| s.conditions.as_ref()).and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        }) && tokio::time::Instant::now() >= deadline
        {
            return Ok(Started::Failed {
                why: format!(
                    "not scheduled: {}",
                    c.message.as_deref().unwrap_or_default()
                ),
                missing_tool: false,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Started::Failed {
                why: format!("not running after {}s", timeout.as_secs()),
                missing_tool: false,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every debug copy unloop made in scope.
pub async fn list_copies(live: &Live, ns: Option<&str>) -> Result<Vec<Pod>, DebugOpError> {
    let api: Api<Pod> = match ns {
        Some(n) => Api::namespaced(live.client(), n),
        None => Api::all(live.client()),
    };
    let lp = ListParams::default().labels(&format!("{}=true", unloop_core::debug::LABEL_COPY));
    api.list(&lp)
        .await
        .map(|l| l.items)
        .map_err(|e| api_error(e, "list", "pods", ns.unwrap_or("(all)"), "pods"))
}

/// A workload whose pod template can be overridden in place, as read: its metadata (uid and
/// resource version) limits every patch to this very version of it.
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    pub template: PodTemplateSpec,
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    pub meta: ObjectMeta,
}

pub async fn get_workload(
    live: &Live,
    ns: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<Workload, DebugOpError> {
    let what = format!("{}/{name}", kind.short());
    let c = live.client();
    let (template, meta) = match kind {
        WorkloadKind::Deployment => {
            let d = Api::<Deployment>::namespaced(c, ns)
                .get(name)
                .await
                .map_err(|e| api_error(e, "get", "deployments", ns, &what))?;
            (d.spec.template, d.metadata)
        }
        WorkloadKind::StatefulSet => {
            let d = Api::<StatefulSet>::namespaced(c, ns)
                .get(name)
                .await
                .map_err(|e| api_error(e, "get", "statefulsets", ns, &what))?;
            (d.spec.template, d.metadata)
        }
        WorkloadKind::DaemonSet => {
            let d = Api::<DaemonSet>::namespaced(c, ns)
                .get(name)
                .await
                .map_err(|e| api_error(e, "get", "daemonsets", ns, &what))?;
            (d.spec.template, d.metadata)
        }
        _ => {
            return Err(DebugOpError::Conflict(format!(
                "{what}: --in-place works on deploy/, sts/ and ds/ only"
            )));
        }
    };
    Ok(Workload {
        kind,
        name: name.into(),
        template,
        annotations: meta.annotations.clone(),
        meta,
    })
}

/// Applies a strategic-merge patch to the workload as it was read (`w`): the patch carries its
/// uid and resource version, so it fails with a conflict rather than change a workload someone
/// changed or made again since. Returns the workload as it is afterwards.
///
/// The resource version also moves with every status update of the workload's controller (several
/// a second during a rollout) and with the annotations controllers keep: on a conflict the
/// workload is read again, and while it is the one the user saw
/// (`unloop_core::debug::still_as_seen`) the patch is applied to that read, up to
/// `STATUS_RETRIES` times. Any change to what the user saw ends it with the conflict.
pub async fn patch_workload(
    live: &Live,
    ns: &str,
    w: &Workload,
    patch: &serde_json::Value,
) -> Result<Workload, DebugOpError> {
    const STATUS_RETRIES: usize = 8;
    let mut attempt = patch_once(live, ns, w, patch).await;
    for _ in 0..STATUS_RETRIES {
        let Err(DebugOpError::Conflict(msg)) = &attempt else {
            break;
        };
        if !matches!(
            w.kind,
            WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
        ) {
            break;
        }
        let now = get_workload(live, ns, w.kind, &w.name).await?;
        if !unloop_core::debug::still_as_seen(&w.meta, &w.template, &now.meta, &now.template) {
            return Err(DebugOpError::Conflict(msg.clone()));
        }
        attempt = patch_once(live, ns, &now, patch).await;
    }
    attempt
}

async fn patch_once(
    live: &Live,
    ns: &str,
    w: &Workload,
    patch: &serde_json::Value,
) -> Result<Workload, DebugOpError> {
    let what = format!("{}/{}", w.kind.short(), w.name);
    let guarded = unloop_core::debug::guarded_patch(&what, &w.meta, patch.clone())?;
    let pp = PatchParams::default();
    let p = Patch::Strategic(&guarded);
    let c = live.client();
    let conflict = |e: kube::Error, resource: &'static str| match api_error(
        e, "patch", resource, ns, &what,
    ) {
        DebugOpError::Conflict(_) => DebugOpError::Conflict(format!(
            "{what} in {ns} changed since unloop read it; nothing was changed: run the command again"
        )),
        other => other,
    };
    let (template, meta) = match w.kind {
        WorkloadKind::Deployment => {
            let d = Api::<Deployment>::namespaced(c, ns)
                .patch(&w.name, &pp, &p)
                .await
                .map_err(|e| conflict(e, "deployments"))?;
            (d.spec.template, d.metadata)
        }
        WorkloadKind::StatefulSet => {
            let d = Api::<StatefulSet>::namespaced(c, ns)
                .patch(&w.name, &pp, &p)
                .await
                .map_err(|e| conflict(e, "statefulsets"))?;
            (d.spec.template, d.metadata)
        }
        WorkloadKind::DaemonSet => {
            let d = Api::<DaemonSet>::namespaced(c, ns)
                .patch(&w.name, &pp, &p)
                .await
                .map_err(|e| conflict(e, "daemonsets"))?;
            (d.spec.template, d.metadata)
        }
        _ => {
            return Err(DebugOpError::Conflict(format!(
                "{what}: --in-place works on deploy/, sts/ and ds/ only"
            )));
        }
    };
    Ok(Workload {
        kind: w.kind,
        name: w.name.clone(),
        template,
        annotations: meta.annotations.clone(),
        meta,
    })
}

/// Workloads in scope that carry an in-place override.
pub async fn list_overrides(
    live: &Live,
    ns: Option<&str>,
) -> Result<Vec<(String, String)>, DebugOpError> {
    let mut out = Vec::new();
    let c = live.client();
    let has = |a: &Option<std::collections::BTreeMap<String, String>>| {
        a.as_ref()
            .is_some_and(|a| a.contains_key(unloop_core::debug::ANN_ORIGINAL))
    };
    let lp = ListParams::default();
    macro_rules! scan {
        ($t:ty, $short:expr, $res:expr) => {
            let api: Api<$t> = match ns {
                Some(n) => Api::namespaced(c.clone(), n),
                None => Api::all(c.clone()),
            };
            for o in api
                .list(&lp)
                .await
                .map_err(|e| api_error(e, "list", $res, ns.unwrap_or("(all)"), $res))?
                .items
            {
                if has(&o.metadata.annotations) {
                    out.push((
                        o.metadata.namespace.clone().unwrap_or_default(),
                        format!("{}/{}", $short, o.metadata.name.clone().unwrap_or_default()),
                    ));
                }
            }
        };
    }
    scan!(Deployment, "deploy", "deployments");
    scan!(StatefulSet, "sts", "statefulsets");
    scan!(DaemonSet, "ds", "daemonsets");
    Ok(out)
}
