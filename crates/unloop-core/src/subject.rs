//! One troubled container with everything known about it: the input of every cause rule.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, ContainerStatus, Event, Node, Pod,
};

use crate::logscan::LogScan;
use crate::refs::RefKind;
use crate::shell::{Arg, Cmd};
use crate::state::{ClusterState, ContainerLog};
use crate::status::Role;
use crate::verdict::{CauseId, Confidence, Evidence, EvidenceKind, Remedy};
use crate::workload::{Revision, Workload};

pub struct Subject<'a> {
    pub state: &'a ClusterState,
    pub now: Timestamp,
    pub pod: &'a Pod,
    pub namespace: &'a str,
    pub pod_name: &'a str,
    pub spec: &'a Container,
    pub status: Option<&'a ContainerStatus>,
    pub role: Role,
    pub workload: Workload,
    /// This pod's events, matched by uid, oldest first.
    pub events: Vec<&'a Event>,
    pub node: Option<&'a Node>,
    /// Events about the pod's node (SystemOOM, pressure), oldest first.
    pub node_events: Vec<&'a Event>,
    /// The crashed instance's log when there is one, else the current one.
    pub log: Option<&'a ContainerLog>,
    pub scan: LogScan,
    /// The owning Deployment's revisions, oldest first (empty for other owners).
    pub revisions: Vec<Revision<'a>>,
    /// This pod's revision number.
    pub revision: Option<u64>,
    /// Since when the pod has waited to start, when it is stuck past the grace period: no
    /// container of it has run yet.
    pub stuck_since: Option<Timestamp>,
}

/// A cause the rules found, with what to do about it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub cause: crate::verdict::Cause,
    pub remedies: Vec<Remedy>,
    /// What the cause is about: findings of one cause about different things are all reported.
    pub about: About,
}

/// The dedup key of a finding beside its cause id: a typed name, never its summary text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum About {
    /// The container as a whole: one finding per cause.
    Container,
    /// One environment variable the app misses.
    EnvVar(String),
    /// One ConfigMap or Secret (or a key of it), in the pod's namespace.
    Object(RefKind, String),
    /// A dependency's Service, named by the host the app dials or resolves.
    Service { namespace: String, name: String },
    /// The node the pod runs on, when the cause is the node's.
    Node(String),
    /// The image as the container names it.
    Image(String),
    /// The registry an image is pulled from (`host[:port]`), when the registry cannot be reached.
    Registry(String),
}

impl<'a> Subject<'a> {
    pub fn container(&self) -> &str {
        &self.spec.name
    }

    /// The status of the run that crashed: the last terminated state, or the current one if it is
    /// terminated (restartPolicy Never, or between restarts).
    pub fn last_run(&self) -> Option<&'a ContainerStateTerminated> {
        let s = self.status?;
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .or_else(|| s.last_state.as_ref().and_then(|st| st.terminated.as_ref()))
    }

    pub fn waiting_reason(&self) -> Option<&'a str> {
        self.status?
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .as_deref()
    }

    pub fn waiting_message(&self) -> Option<&'a str> {
        self.status?
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .message
            .as_deref()
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.last_run().map(|t| t.exit_code)
    }

    /// Seconds the crashed run lasted.
    pub fn ran_for_secs(&self) -> Option<f64> {
        let t = self.last_run()?;
        let (s, f) = (t.started_at.as_ref()?, t.finished_at.as_ref()?);
        // A process that never started reports the zero time (1970) as its start.
        if s.0.as_second() <= 0 || s.0 > f.0 {
            return None;
        }
        Some(f.0.duration_since(s.0).as_secs_f64())
    }

    /// Whether the kubelet restarts this container after it exits with `code`, and why: the pod's
    /// and the container's restart policies and its restartPolicyRules ([`crate::restart`]).
    pub fn restart_on(&self, code: i32) -> crate::restart::OnExit {
        crate::restart::on_exit(
            self.pod.spec.as_ref(),
            Some(self.spec),
            self.role != Role::Main,
            code,
        )
    }

    /// Whether the container is meant to run forever: a clean exit restarts it.
    pub fn long_running(&self) -> bool {
        self.role != Role::Init && self.restart_on(0).restarts
    }

    /// `pod/NAME status.containerStatuses[app]` and friends, for evidence sources.
    pub fn status_path(&self) -> String {
        let list = match self.role {
            Role::Main => "containerStatuses",
            Role::Init | Role::Sidecar => "initContainerStatuses",
        };
        format!("pod/{} status.{list}[{}]", self.pod_name, self.container())
    }

    pub fn spec_path(&self) -> String {
        let list = match self.role {
            Role::Main => "containers",
            Role::Init | Role::Sidecar => "initContainers",
        };
        format!("pod/{} spec.{list}[{}]", self.pod_name, self.container())
    }

    pub fn log_source(&self) -> String {
        let which = if self.log.is_some_and(|l| l.previous) {
            "previous"
        } else {
            "current"
        };
        format!(
            "logs {}/{}[{}] ({which})",
            self.namespace,
            self.pod_name,
            self.container()
        )
    }

    pub fn log_evidence(&self, line: &str) -> Evidence {
        Evidence::new(EvidenceKind::Log, self.log_source(), line)
    }

    /// Events whose reason is one of `reasons` and whose message names this container (events that
    /// name no container at all are kept: older kubelets omit it).
    pub fn container_events(&self, reasons: &[&str]) -> Vec<&'a Event> {
        let c = self.container();
        self.events
            .iter()
            .copied()
            .filter(|e| e.reason.as_deref().is_some_and(|r| reasons.contains(&r)))
            .filter(|e| {
                let field = e.involved_object.field_path.as_deref().unwrap_or_default();
                let msg = e.message.as_deref().unwrap_or_default();
                field.contains(&format!("{{{c}}}"))
                    || msg.contains(&format!("ontainer {c} "))
                    || msg.contains(&format!("container={c}"))
                    || field.is_empty()
            })
            .collect()
    }

    /// The object a `kubectl set ...` command should change: the workload when one owns the pod.
    pub fn settable(&self) -> Option<&Workload> {
        use crate::workload::WorkloadKind::*;
        matches!(
            self.workload.kind,
            Deployment | StatefulSet | DaemonSet | ReplicaSet
        )
        .then_some(&self.workload)
    }

    /// `kubectl WORDS OBJECT -n NS`, to which flags and operands are added.
    pub fn kubectl(&self, words: &[&str], object: impl Into<Arg>) -> Cmd {
        Cmd::kubectl(words)
            .operand(object)
            .flag_value("-n", self.namespace)
    }

    /// A remedy that sets an environment variable on the owner, or says to edit the manifest.
    pub fn set_env_remedy(&self, cause: CauseId, var: &str) -> Remedy {
        match self.settable() {
            Some(w) => Remedy::fix(
                cause,
                format!("set {var} on {w}"),
                Some(
                    self.kubectl(&["set", "env"], w)
                        .flag_value("-c", self.container())
                        .operand(Arg::lit(format!("{var}=")).then_placeholder("value"))
                        .into(),
                ),
            ),
            None => Remedy::fix(
                cause,
                format!(
                    "add {var} to the env of container {} in the manifest and re-create the pod",
                    self.container()
                ),
                None,
            ),
        }
    }

    pub fn field(&self, path_suffix: &str, text: impl Into<String>) -> Evidence {
        Evidence::new(
            EvidenceKind::Field,
            format!("{} {path_suffix}", self.status_path()),
            text,
        )
    }

    pub fn spec_evidence(&self, path_suffix: &str, text: impl Into<String>) -> Evidence {
        Evidence::new(
            EvidenceKind::Spec,
            format!("{}{path_suffix}", self.spec_path()),
            text,
        )
    }

    /// The evidence of the last termination: exit code, reason, and how long it ran.
    pub fn termination_evidence(&self) -> Option<Evidence> {
        let t = self.last_run()?;
        let which = if self
            .status
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .is_some()
        {
            "state.terminated"
        } else {
            "lastState.terminated"
        };
        let mut text = format!("exit code {}", t.exit_code);
        if let Some(r) = t.reason.as_deref() {
            text.push_str(&format!(" ({r})"));
        }
        if let Some(secs) = self.ran_for_secs() {
            text.push_str(&format!(" after running {}", human_secs(secs)));
        }
        Some(self.field(which, text))
    }

    pub fn event_evidence(&self, e: &Event) -> Evidence {
        Evidence::new(EvidenceKind::Event, event_source(e), event_text(e))
    }

    pub fn confidence_if(&self, strong: bool) -> Confidence {
        if strong {
            Confidence::High
        } else {
            Confidence::Medium
        }
    }
}

/// A strategic-merge patch (JSON, for `kubectl patch -p`) that sets `field` of one container of a
/// pod template: `{"spec":{"template":{"spec":{"containers":[{"name":C,FIELD:VALUE}]}}}}`. Built
/// with serde, so names and values are always escaped; `name` comes first, as people write it.
pub fn container_patch<V: serde::Serialize>(container: &str, field: &str, value: &V) -> String {
    use serde::Serialize;
    use serde::ser::SerializeMap;
    struct Entry<'a, V> {
        name: &'a str,
        field: &'a str,
        value: &'a V,
    }
    impl<V: Serialize> Serialize for Entry<'_, V> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("name", self.name)?;
            m.serialize_entry(self.field, self.value)?;
            m.end()
        }
    }
    #[derive(Serialize)]
    struct Spec<T> {
        spec: T,
    }
    #[derive(Serialize)]
    struct Template<T> {
        template: T,
    }
    #[derive(Serialize)]
    struct Containers<E> {
        containers: [E; 1],
    }
    let patch = Spec {
        spec: Template {
            template: Spec {
                spec: Containers {
                    containers: [Entry {
                        name: container,
                        field,
                        value,
                    }],
                },
            },
        },
    };
    serde_json::to_string(&patch).unwrap_or_default()
}

pub fn event_source(e: &Event) -> String {
    let count = e.count.unwrap_or(1);
    let times = if count > 1 {
        format!(", x{count}")
    } else {
        String::new()
    };
    format!(
        "event {} {}{}",
        e.type_.as_deref().unwrap_or("Normal"),
        e.reason.as_deref().unwrap_or_default(),
        times
    )
}

pub fn event_text(e: &Event) -> String {
    e.message.clone().unwrap_or_default().trim().to_string()
}

/// The last time an event was seen.
pub fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub use crate::duration::human as human_secs;

#[cfg(test)]
mod tests {
    use crate::diagnose::subject_of;
    use crate::testing::{self, scenario};
    use crate::verdict::CauseId;

    #[test]
    fn the_crashed_run_and_how_long_it_lasted() {
        let state = scenario("oom-limit");
        let s = subject_of(&state, &state.pods[0], "worker", testing::now(&state)).unwrap();
        assert_eq!(s.exit_code(), Some(137));
        assert!(s.ran_for_secs().is_some_and(|r| r >= 0.0));
        assert!(
            s.termination_evidence()
                .unwrap()
                .text
                .starts_with("exit code 137 (OOMKilled)")
        );
        assert!(s.long_running());
        assert_eq!(
            s.status_path(),
            format!("pod/{} status.containerStatuses[worker]", s.pod_name)
        );
    }

    #[test]
    fn a_command_changes_the_owner_or_says_to_edit_the_manifest() {
        let mut state = scenario("missing-env-var");
        {
            let s = subject_of(&state, &state.pods[0], "api", testing::now(&state)).unwrap();
            assert_eq!(
                s.settable().map(|w| w.to_string()).as_deref(),
                Some("deploy/api")
            );
            let r = s.set_env_remedy(CauseId::MissingEnvVar, "DATABASE_URL");
            assert!(r.command().unwrap().contains("set env deploy/api"));
        }
        testing::pod(&mut state).metadata.owner_references = None;
        let s = subject_of(&state, &state.pods[0], "api", testing::now(&state)).unwrap();
        assert!(s.settable().is_none());
        let r = s.set_env_remedy(CauseId::MissingEnvVar, "DATABASE_URL");
        assert!(r.script.is_none());
        assert!(r.title.contains("in the manifest"));
    }

    #[test]
    fn a_running_container_has_no_crashed_run() {
        let state = testing::healthy();
        let s = subject_of(&state, &state.pods[0], "web", testing::now(&state)).unwrap();
        assert!(s.last_run().is_none());
        assert!(s.termination_evidence().is_none());
    }
}
