//! The guide's "sleep infinity" technique, made safe: building a debug copy of a pod, or the patch
//! that overrides a workload's command in place and the patch that restores it. Pure: the edge
//! sends what these functions build.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, Pod, PodSpec, PodTemplateSpec, Probe, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Preconditions};
use serde::{Deserialize, Serialize};

use crate::shell::{self, Arg, Argv};

/// The prefix of every label and annotation unloop writes.
pub const ANNOTATION_PREFIX: &str = "unloop.dev/";
/// Label on every debug copy; `--list` and `--cleanup` find copies by it.
pub const LABEL_COPY: &str = "unloop.dev/debug-copy";
pub const ANN_SOURCE: &str = "unloop.dev/source-pod";
pub const ANN_CONTAINER: &str = "unloop.dev/container";
pub const ANN_COMMAND: &str = "unloop.dev/original-command";
pub const ANN_EXPIRES: &str = "unloop.dev/expires-at";
/// On a workload overridden in place: what was there before, as JSON (`Original`).
pub const ANN_ORIGINAL: &str = "unloop.dev/debug-original";
/// On a workload overridden in place: the fingerprint of the pod template unloop left.
pub const ANN_FINGERPRINT: &str = "unloop.dev/debug-fingerprint";

const KEEPALIVE_DIR: &str = "/.unloop";
const KEEPALIVE_VOLUME: &str = "unloop-keepalive";
const KEEPALIVE_INIT: &str = "unloop-keepalive";

/// A shell loop that sleeps until the pod is deleted and exits at once on SIGTERM.
const SHELL_LOOP: &str = "echo 'unloop debug: kept alive; the original command is in annotation unloop.dev/original-command'; trap 'exit 0' TERM INT; while true; do sleep 3600 & wait $!; done";

/// How the debug container stays alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    /// The image's own `sh` and `sleep`.
    Shell,
    /// A static busybox copied by an init container (from `image`) into an emptyDir: works for
    /// images with no shell at all.
    Helper { image: String },
}

impl KeepAlive {
    fn command(&self) -> Vec<String> {
        match self {
            KeepAlive::Shell => vec!["sh".into(), "-c".into(), SHELL_LOOP.into()],
            KeepAlive::Helper { .. } => vec![
                format!("{KEEPALIVE_DIR}/busybox"),
                "sh".into(),
                "-c".into(),
                SHELL_LOOP.replace("sleep", &format!("{KEEPALIVE_DIR}/busybox sleep")),
            ],
        }
    }

    /// The command that gives a shell inside the kept-alive container.
    pub fn shell(&self) -> Vec<String> {
        match self {
            KeepAlive::Shell => vec!["sh".into()],
            KeepAlive::Helper { .. } => vec![format!("{KEEPALIVE_DIR}/busybox"), "sh".into()],
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DebugError {
    #[error("pod {pod} has no container named {wanted:?} (containers: {known})")]
    NoSuchContainer {
        pod: String,
        wanted: String,
        known: String,
    },
    #[error("pod {pod} has several containers ({known}); choose one with -c")]
    Ambiguous { pod: String, known: String },
    #[error("{workload} has no container named {wanted:?} (containers: {known})")]
    NoSuchWorkloadContainer {
        workload: String,
        wanted: String,
        known: String,
    },
    #[error(
        "{0} is already overridden in place by unloop debug; restore it first with unloop debug --restore"
    )]
    AlreadyOverridden(String),
    #[error("{0} was not overridden by unloop debug (no {ANN_ORIGINAL} annotation)")]
    NotOverridden(String),
    #[error(
        "{workload}'s pod template changed since unloop overrode it ({why}); restore it by hand from annotation {ANN_ORIGINAL}"
    )]
    ChangedSince { workload: String, why: String },
    #[error("the {ANN_ORIGINAL} annotation of {0} is damaged: {1}")]
    BadAnnotation(String, String),
    #[error(
        "pod {0} is not a debug copy (no {LABEL_COPY} label); unloop deletes only its own copies"
    )]
    NotACopy(String),
    #[error("{0} has no uid, so a change could not be limited to it")]
    NoUid(String),
}

/// The container to debug: the one asked for, else the only one, else the only troubled one.
pub fn choose_container(
    pod: &Pod,
    wanted: Option<&str>,
    now: Timestamp,
) -> Result<String, DebugError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let all: Vec<&Container> = spec
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .collect()
        })
        .unwrap_or_default();
    let known = all
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(w) = wanted {
        return if all.iter().any(|c| c.name == w) {
            Ok(w.to_string())
        } else {
            Err(DebugError::NoSuchContainer {
                pod: name,
                wanted: w.into(),
                known,
            })
        };
    }
    let main: Vec<&Container> = spec
        .map(|s| s.containers.iter().collect())
        .unwrap_or_default();
    if main.len() == 1
        && crate::status::troubled_containers(pod, now)
            .iter()
            .all(|(_, c)| c.name == main[0].name)
    {
        return Ok(main[0].name.clone());
    }
    let troubled = crate::status::troubled_containers(pod, now);
    match troubled.as_slice() {
        [(_, one)] => Ok(one.name.clone()),
        _ => Err(DebugError::Ambiguous { pod: name, known }),
    }
}

/// Without a `command`, the image's ENTRYPOINT runs (with `args`, or else its CMD); the API does not
/// say what that is, so the original command starts with this placeholder (`'<image entrypoint>'`).
pub const IMAGE_ENTRYPOINT: &str = "image entrypoint";

/// The command the container would have run, as argv.
pub fn original_command(c: &Container) -> Argv {
    let mut argv = Argv(Vec::new());
    if c.command.as_ref().is_none_or(|c| c.is_empty()) {
        argv.0.push(Arg::placeholder(IMAGE_ENTRYPOINT));
    }
    argv.args(c.command.iter().flatten().chain(c.args.iter().flatten()))
}

/// The command line the container would have run, as a person types it inside the debug copy.
pub fn original_command_line(c: &Container) -> String {
    shell::render(&original_command(c).into())
}

/// The command line as shown to a person and recorded in the copy's `ANN_COMMAND` annotation
/// (which `unloop debug --list` and anyone who can read pods see): [`original_command_line`] with
/// its words through `redact::argv` (a secret flag's value, a password in a URL, a token). Only
/// the objects sent to the API keep the real words.
pub fn shown_command_line(c: &Container) -> String {
    let command = c.command.clone().unwrap_or_default();
    let mut words: Vec<String> = command
        .iter()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect();
    // Redacted as one line: a secret flag in `command` may take its value from `args`.
    crate::redact::argv(&mut words);
    let args = words.split_off(command.len());
    original_command_line(&Container {
        command: c.command.as_ref().map(|_| words),
        args: c.args.as_ref().map(|_| args),
        ..Default::default()
    })
}

/// A debug copy of `pod`: same image, env, volumes, service account and scheduling constraints;
/// the chosen container kept alive instead of running its command; every probe removed; labels
/// and owner references dropped so no Service routes to it and no controller adopts it.
pub fn debug_copy(
    pod: &Pod,
    container: &str,
    keep: &KeepAlive,
    same_node: bool,
    expires: Timestamp,
) -> Pod {
    let src = pod.metadata.name.clone().unwrap_or_default();
    let mut spec: PodSpec = pod.spec.clone().unwrap_or_default();
    if !same_node {
        spec.node_name = None;
    }
    spec.restart_policy = Some("Never".into());
    spec.termination_grace_period_seconds = Some(1);
    spec.active_deadline_seconds = None;
    // A debug copy must not steal the original's identity on the network.
    spec.hostname = None;
    spec.subdomain = None;
    let original = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container)
        .map(shown_command_line)
        .unwrap_or_default();
    let is_init = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == container);
    if is_init {
        // Debugging an init container: run it as the main container so it stays up, and run
        // nothing else.
        let mut c = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == container)
            .cloned()
            .unwrap_or_default();
        c.restart_policy = None;
        spec.containers = vec![c];
        spec.init_containers = None;
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        strip_probes(c);
        if c.name == container {
            c.command = Some(keep.command());
            c.args = None;
            c.stdin = Some(true);
            c.tty = Some(true);
        }
    }
    if let KeepAlive::Helper { image } = keep {
        add_helper(&mut spec, container, image);
    }
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_SOURCE.to_string(), src.clone());
    annotations.insert(ANN_CONTAINER.to_string(), container.to_string());
    annotations.insert(ANN_COMMAND.to_string(), original);
    annotations.insert(ANN_EXPIRES.to_string(), expires.to_string());
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_COPY.to_string(), "true".to_string());
    Pod {
        metadata: ObjectMeta {
            name: Some(copy_name(&src)),
            namespace: pod.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// True for a pod template that `unloop debug --in-place` left: a revision made for debugging, not
/// a release, so rollout history must look past it.
pub fn is_keepalive_template(t: &PodTemplateSpec) -> bool {
    t.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| {
            c.command
                .iter()
                .flatten()
                .any(|a| a.contains("unloop debug: kept alive"))
        })
    })
}

/// `<pod>-debug`, within the 63-character limit for names that become hostnames.
pub fn copy_name(pod: &str) -> String {
    let base: String = pod.chars().take(63 - "-debug".len()).collect();
    format!("{}-debug", base.trim_end_matches('-'))
}

fn strip_probes(c: &mut Container) {
    c.liveness_probe = None;
    c.readiness_probe = None;
    c.startup_probe = None;
}

fn add_helper(spec: &mut PodSpec, container: &str, image: &str) {
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: KEEPALIVE_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    let mount = VolumeMount {
        name: KEEPALIVE_VOLUME.into(),
        mount_path: KEEPALIVE_DIR.into(),
        ..Default::default()
    };
    let init = Container {
        name: KEEPALIVE_INIT.into(),
        image: Some(image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "cp".into(),
            "/bin/busybox".into(),
            format!("{KEEPALIVE_DIR}/busybox"),
        ]),
        volume_mounts: Some(vec![mount.clone()]),
        ..Default::default()
    };
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .insert(0, init);
    if let Some(c) = spec.containers.iter_mut().find(|c| c.name == container) {
        c.volume_mounts.get_or_insert_with(Vec::new).push(mount);
    }
}

/// What an in-place override replaced, kept in the workload's `ANN_ORIGINAL` annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Original {
    pub container: String,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub overridden_at: Timestamp,
}

/// The strategic-merge patch that overrides `container` of a workload's template in place, and
/// the record of what it replaced.
pub fn in_place_patch(
    workload: &str,
    template: &PodTemplateSpec,
    annotations: Option<&BTreeMap<String, String>>,
    container: &str,
    now: Timestamp,
) -> Result<(serde_json::Value, Original), DebugError> {
    if annotations.is_some_and(|a| a.contains_key(ANN_ORIGINAL)) {
        return Err(DebugError::AlreadyOverridden(workload.into()));
    }
    let containers: &[Container] = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let c = containers
        .iter()
        .find(|c| c.name == container)
        .ok_or_else(|| DebugError::NoSuchWorkloadContainer {
            workload: workload.into(),
            wanted: container.into(),
            known: containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let original = Original {
        container: container.into(),
        command: c.command.clone(),
        args: c.args.clone(),
        liveness_probe: c.liveness_probe.clone(),
        readiness_probe: c.readiness_probe.clone(),
        startup_probe: c.startup_probe.clone(),
        overridden_at: now,
    };
    let record = serde_json::to_string(&original)
        .map_err(|e| DebugError::BadAnnotation(workload.into(), e.to_string()))?;
    let patch = serde_json::json!({
        "metadata": {"annotations": {ANN_ORIGINAL: record}},
        "spec": {"template": {"spec": {"containers": [{
            "name": container,
            "command": KeepAlive::Shell.command(),
            "args": null,
            "livenessProbe": null,
            "readinessProbe": null,
            "startupProbe": null,
        }]}}}
    });
    Ok((patch, original))
}

/// Whether `container` of `template` is exactly as an in-place override leaves it: the keep-alive
/// command, no arguments, no probes.
fn left_by_override(template: &PodTemplateSpec, container: &str) -> bool {
    template
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .is_some_and(|c| {
            c.command.as_ref() == Some(&KeepAlive::Shell.command())
                && c.args.as_ref().is_none_or(Vec::is_empty)
                && c.liveness_probe.is_none()
                && c.readiness_probe.is_none()
                && c.startup_probe.is_none()
        })
}

/// Whether a workload read again (`now`) is still the one a patch was planned on (`seen`), so the
/// patch may be sent again after a conflict: the same uid, generation and pod template, and the
/// same annotations of unloop's own. What else moves the resource version does not count: the
/// status, and the annotations controllers keep (the deployment controller's
/// `deployment.kubernetes.io/revision` moves with the very rollout an override starts).
pub fn still_as_seen(
    seen: &ObjectMeta,
    seen_template: &PodTemplateSpec,
    now: &ObjectMeta,
    now_template: &PodTemplateSpec,
) -> bool {
    let ours = |m: &ObjectMeta| -> BTreeMap<String, String> {
        m.annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    seen.uid == now.uid
        && seen.generation == now.generation
        && seen_template == now_template
        && ours(seen) == ours(now)
}

/// The patch that records the fingerprint of the template unloop left.
pub fn fingerprint_patch(template: &PodTemplateSpec) -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {ANN_FINGERPRINT: fingerprint(template)}}})
}

/// The patch that puts back exactly what an in-place override replaced, refusing when someone
/// changed the template since.
pub fn restore_patch(
    workload: &str,
    template: &PodTemplateSpec,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<(serde_json::Value, Original), DebugError> {
    let a = annotations.ok_or_else(|| DebugError::NotOverridden(workload.into()))?;
    let raw = a
        .get(ANN_ORIGINAL)
        .ok_or_else(|| DebugError::NotOverridden(workload.into()))?;
    let original: Original = serde_json::from_str(raw)
        .map_err(|e| DebugError::BadAnnotation(workload.into(), e.to_string()))?;
    match a.get(ANN_FINGERPRINT) {
        Some(f) if *f != fingerprint(template) => {
            return Err(DebugError::ChangedSince {
                workload: workload.into(),
                why: format!("fingerprint {} is now {}", f, fingerprint(template)),
            });
        }
        // The override was applied but its fingerprint never recorded (the second patch failed):
        // restorable while the container is still exactly as the override left it.
        None if !left_by_override(template, &original.container) => {
            return Err(DebugError::ChangedSince {
                workload: workload.into(),
                why: format!(
                    "the override never recorded its fingerprint, and container {} is no longer as it left it",
                    original.container
                ),
            });
        }
        _ => {}
    }
    let patch = serde_json::json!({
        "metadata": {"annotations": {ANN_ORIGINAL: null, ANN_FINGERPRINT: null}},
        "spec": {"template": {"spec": {"containers": [{
            "name": original.container,
            "command": original.command,
            "args": original.args,
            "livenessProbe": original.liveness_probe,
            "readinessProbe": original.readiness_probe,
            "startupProbe": original.startup_probe,
        }]}}}
    });
    Ok((patch, original))
}

/// A stable fingerprint of a pod template (FNV-1a over its canonical JSON).
pub fn fingerprint(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The precondition every delete of a debug copy carries: the uid of the copy unloop inspected
/// (or created), so a pod made since under the same name is never deleted. No resource version:
/// the kubelet updates a running pod's status all the time. Refuses pods that are not copies.
pub fn copy_delete_precondition(pod: &Pod) -> Result<Preconditions, DebugError> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let labelled = pod
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(LABEL_COPY).is_some_and(|v| v == "true"));
    if !labelled {
        return Err(DebugError::NotACopy(name));
    }
    let uid = pod
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DebugError::NoUid(format!("pod {name}")))?;
    Ok(Preconditions {
        uid: Some(uid),
        resource_version: None,
    })
}

/// `patch` limited to the workload unloop read: its uid (the API server refuses to change a
/// uid, so the patch fails on a workload deleted and made again under the same name) and its
/// resource version (the patch fails with a conflict if anyone changed the workload since).
pub fn guarded_patch(
    workload: &str,
    meta: &ObjectMeta,
    mut patch: serde_json::Value,
) -> Result<serde_json::Value, DebugError> {
    let uid = meta
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DebugError::NoUid(workload.into()))?;
    if let Some(m) = patch
        .as_object_mut()
        .map(|p| p.entry("metadata").or_insert_with(|| serde_json::json!({})))
        .and_then(serde_json::Value::as_object_mut)
    {
        m.insert("uid".into(), uid.into());
        if let Some(rv) = meta.resource_version.clone().filter(|v| !v.is_empty()) {
            m.insert("resourceVersion".into(), rv.into());
        }
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerStatus;

    /// The liveness-slow-start scenario's captured pod (a Deployment's, with a liveness probe,
    /// env and arguments), its container given an explicit command: what the copy must record.
    fn pod() -> Pod {
        let mut state = crate::testing::scenario("liveness-slow-start");
        crate::testing::container(&mut state).command = Some(vec!["/app/server".into()]);
        state.pods.swap_remove(0)
    }

    #[test]
    fn a_copy_is_alive_unreachable_and_unowned() {
        let expires: Timestamp = "2026-11-24T23:00:00Z".parse().unwrap();
        let copy = debug_copy(&pod(), "search", &KeepAlive::Shell, false, expires);
        assert_eq!(
            copy.metadata.name.as_deref(),
            Some("search-755645dddc-c86hn-debug")
        );
        assert_eq!(
            copy.metadata.labels.as_ref().unwrap().len(),
            1,
            "only the debug label: no Service selects it"
        );
        assert!(copy.metadata.owner_references.is_none());
        let ann = copy.metadata.annotations.unwrap();
        assert_eq!(ann[ANN_COMMAND], "/app/server serve");
        assert_eq!(ann[ANN_EXPIRES], "2026-11-24T23:00:00Z");
        let spec = copy.spec.unwrap();
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.service_account_name.as_deref(), Some("default"));
        let c = &spec.containers[0];
        assert!(c.liveness_probe.is_none());
        assert_eq!(c.command.as_ref().unwrap()[0], "sh");
        assert_eq!(c.args, None);
        assert_eq!(c.env.as_ref().unwrap()[0].name, "APP_NAME");
    }

    #[test]
    fn the_helper_fallback_needs_no_shell_in_the_image() {
        let copy = debug_copy(
            &pod(),
            "search",
            &KeepAlive::Helper {
                image: "busybox:1.37-musl".into(),
            },
            true,
            Timestamp::UNIX_EPOCH,
        );
        let spec = copy.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("unloop-node"));
        assert_eq!(
            spec.init_containers.as_ref().unwrap()[0]
                .command
                .as_ref()
                .unwrap()[0],
            "cp"
        );
        assert_eq!(
            spec.containers[0].command.as_ref().unwrap()[0],
            "/.unloop/busybox"
        );
        assert!(
            spec.volumes
                .unwrap()
                .iter()
                .any(|v| v.name == "unloop-keepalive")
        );
    }

    #[test]
    fn in_place_round_trip_restores_exactly() {
        let template: PodTemplateSpec =
            serde_json::from_value(serde_json::json!({"spec": pod().spec})).unwrap();
        let (patch, original) = in_place_patch(
            "deploy/search",
            &template,
            None,
            "search",
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"][0]["livenessProbe"],
            serde_json::Value::Null
        );
        assert_eq!(original.args, Some(vec!["serve".to_string()]));
        let mut ann = BTreeMap::new();
        ann.insert(
            ANN_ORIGINAL.to_string(),
            patch["metadata"]["annotations"][ANN_ORIGINAL]
                .as_str()
                .unwrap()
                .to_string(),
        );
        ann.insert(ANN_FINGERPRINT.to_string(), fingerprint(&template));
        let (restore, _) = restore_patch("deploy/search", &template, Some(&ann)).unwrap();
        assert_eq!(
            restore["spec"]["template"]["spec"]["containers"][0]["command"],
            serde_json::json!(["/app/server"])
        );
        assert_eq!(
            restore["metadata"]["annotations"][ANN_ORIGINAL],
            serde_json::Value::Null
        );
        let mut changed = template.clone();
        changed.spec.as_mut().unwrap().containers[0].image = Some("unloop/search:2".into());
        assert!(matches!(
            restore_patch("deploy/search", &changed, Some(&ann)),
            Err(DebugError::ChangedSince { .. })
        ));
        assert!(matches!(
            in_place_patch(
                "deploy/search",
                &template,
                Some(&ann),
                "search",
                Timestamp::UNIX_EPOCH
            ),
            Err(DebugError::AlreadyOverridden(_))
        ));
    }

    /// The missing-env-var scenario's captured Deployment.
    fn deployment() -> k8s_openapi::api::apps::v1::Deployment {
        crate::testing::scenario("missing-env-var")
            .deployments
            .swap_remove(0)
    }

    #[test]
    fn a_workload_read_again_after_a_conflict_is_the_same_unless_what_the_user_saw_moved() {
        let seen = deployment();
        let template = &seen.spec.template;
        // What the deployment controller does after an override: a new revision, a new status.
        let mut rolled = seen.clone();
        let ann = rolled
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        assert!(ann.contains_key("deployment.kubernetes.io/revision"));
        ann.insert("deployment.kubernetes.io/revision".into(), "2".into());
        rolled.metadata.resource_version = Some("999999".into());
        rolled.status.as_mut().unwrap().observed_generation = Some(99);
        assert!(still_as_seen(
            &seen.metadata,
            template,
            &rolled.metadata,
            &rolled.spec.template
        ));
        let changed = |f: &dyn Fn(&mut k8s_openapi::api::apps::v1::Deployment)| {
            let mut d = seen.clone();
            f(&mut d);
            still_as_seen(&seen.metadata, template, &d.metadata, &d.spec.template)
        };
        assert!(!changed(&|d| {
            d.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANN_ORIGINAL.into(), "{}".into());
        }));
        assert!(!changed(&|d| d.metadata.generation = Some(7)));
        assert!(!changed(&|d| d.metadata.uid = Some("another".into())));
        assert!(!changed(&|d| {
            d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("api:2".into())
        }));
    }

    /// The override's second patch (the fingerprint) can fail after the first went through: the
    /// override is then restorable while its container is as the override left it.
    #[test]
    fn an_override_without_its_fingerprint_is_restored_only_while_untouched() {
        let template = deployment().spec.template;
        let name = template.spec.as_ref().unwrap().containers[0].name.clone();
        let (patch, original) =
            in_place_patch("deploy/api", &template, None, &name, Timestamp::UNIX_EPOCH).unwrap();
        let mut left = template.clone();
        let c = &mut left.spec.as_mut().unwrap().containers[0];
        c.command = Some(KeepAlive::Shell.command());
        c.args = None;
        c.liveness_probe = None;
        c.readiness_probe = None;
        c.startup_probe = None;
        let ann = BTreeMap::from([(
            ANN_ORIGINAL.to_string(),
            patch["metadata"]["annotations"][ANN_ORIGINAL]
                .as_str()
                .unwrap()
                .to_string(),
        )]);
        let (restore, back) = restore_patch("deploy/api", &left, Some(&ann)).unwrap();
        assert_eq!(back, original);
        assert_eq!(
            restore["spec"]["template"]["spec"]["containers"][0]["command"],
            serde_json::to_value(&original.command).unwrap()
        );
        let mut touched = left.clone();
        touched.spec.as_mut().unwrap().containers[0].command = Some(vec!["/bin/api".into()]);
        let err = restore_patch("deploy/api", &touched, Some(&ann)).unwrap_err();
        assert!(err.to_string().contains("no longer as it left it"), "{err}");
    }

    #[test]
    fn ambiguous_containers_are_refused_with_their_names() {
        let mut p = pod();
        let containers = &mut p.spec.as_mut().unwrap().containers;
        let sidecar = Container {
            name: "sidecar".into(),
            ..containers[0].clone()
        };
        containers.push(sidecar);
        // The sidecar crash-loops too: nothing tells which one is meant.
        let statuses = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
            .unwrap();
        let status = ContainerStatus {
            name: "sidecar".into(),
            ..statuses[0].clone()
        };
        statuses.push(status);
        let err = choose_container(&p, None, Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod search-755645dddc-c86hn has several containers (search, sidecar); choose one with -c"
        );
        assert_eq!(
            choose_container(&p, Some("search"), Timestamp::UNIX_EPOCH),
            Ok("search".into())
        );
    }

    /// A pod the testbed's kubelet really ran (the oom-limit scenario's bundle).
    fn captured_pod() -> Pod {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/oom-limit/bundle.json.gz");
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
        let bundle: serde_json::Value = serde_json::from_reader(gz).unwrap();
        serde_json::from_value(bundle["state"]["pods"][0].clone()).unwrap()
    }

    #[test]
    fn deleting_a_copy_is_limited_to_the_copy_inspected() {
        let original = captured_pod();
        assert!(original.metadata.uid.is_some());
        // The original is not a copy: unloop never deletes it.
        assert!(matches!(
            copy_delete_precondition(&original),
            Err(DebugError::NotACopy(_))
        ));
        let mut copy = debug_copy(
            &original,
            &original.spec.as_ref().unwrap().containers[0].name,
            &KeepAlive::Shell,
            false,
            Timestamp::UNIX_EPOCH,
        );
        // As sent, before the API server gave it a uid: nothing to limit a delete to.
        assert!(matches!(
            copy_delete_precondition(&copy),
            Err(DebugError::NoUid(_))
        ));
        copy.metadata.uid = Some("7c0e5a8e-0000-4000-8000-000000000001".into());
        copy.metadata.resource_version = Some("4242".into());
        let pre = copy_delete_precondition(&copy).unwrap();
        assert_eq!(
            serde_json::to_value(&pre).unwrap(),
            serde_json::json!({"uid": "7c0e5a8e-0000-4000-8000-000000000001"})
        );
    }

    #[test]
    fn workload_patches_carry_the_uid_and_version_read() {
        let pod = captured_pod();
        let template: PodTemplateSpec =
            serde_json::from_value(serde_json::json!({"spec": pod.spec})).unwrap();
        let container = template.spec.as_ref().unwrap().containers[0].name.clone();
        let read = ObjectMeta {
            uid: Some("d3b07384-0000-4000-8000-00000000000a".into()),
            resource_version: Some("981".into()),
            ..Default::default()
        };
        let (patch, _) = in_place_patch(
            "deploy/x",
            &template,
            None,
            &container,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let guarded = guarded_patch("deploy/x", &read, patch.clone()).unwrap();
        assert_eq!(
            guarded["metadata"]["uid"],
            "d3b07384-0000-4000-8000-00000000000a"
        );
        assert_eq!(guarded["metadata"]["resourceVersion"], "981");
        // The rest of the patch is untouched.
        assert_eq!(guarded["spec"], patch["spec"]);
        assert!(guarded["metadata"]["annotations"][ANN_ORIGINAL].is_string());
        let fp = guarded_patch("deploy/x", &read, fingerprint_patch(&template)).unwrap();
        assert_eq!(fp["metadata"]["resourceVersion"], "981");
        assert!(fp["metadata"]["annotations"][ANN_FINGERPRINT].is_string());
        assert!(matches!(
            guarded_patch("deploy/x", &ObjectMeta::default(), patch),
            Err(DebugError::NoUid(_))
        ));
    }
}
