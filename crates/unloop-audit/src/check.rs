//! The catalogue of checks: stable ids, default severities and the one-line why of each, and
//! the finding a check produces. docs/audit-checks.md documents every id listed here.

use serde::{Deserialize, Serialize};

use crate::yaml::{Snippet, Yaml};

/// How much a finding matters. Ordered: `Info < Warning < Error`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A check's stable id, as written in config files, `unloop.dev/ignore` annotations and every
/// output format. Never rename one: CI configurations and suppressions depend on them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    StartupProbeMissing,
    LivenessBudgetTooShort,
    LivenessEqualsReadiness,
    ProbePortNotExposed,
    RequestsMissing,
    LimitsMissing,
    LimitBelowRequest,
    MemoryLimitFarAboveRequest,
    CpuLimit,
    JvmHeapOverLimit,
    UnresolvedConfigmap,
    UnresolvedSecret,
    UnresolvedKey,
    UnresolvedServiceAccount,
    OptionalReferenceUnresolved,
    ConfigFileMissing,
    ImageTagLatest,
    PullNeverRegistryImage,
    EntrypointBackgrounds,
    EntrypointExits,
    RecentRestarts,
    OomHistory,
    NodePressure,
}

impl CheckId {
    pub const ALL: [CheckId; 23] = [
        CheckId::StartupProbeMissing,
        CheckId::LivenessBudgetTooShort,
        CheckId::LivenessEqualsReadiness,
        CheckId::ProbePortNotExposed,
        CheckId::RequestsMissing,
        CheckId::LimitsMissing,
        CheckId::LimitBelowRequest,
        CheckId::MemoryLimitFarAboveRequest,
        CheckId::CpuLimit,
        CheckId::JvmHeapOverLimit,
        CheckId::UnresolvedConfigmap,
        CheckId::UnresolvedSecret,
        CheckId::UnresolvedKey,
        CheckId::UnresolvedServiceAccount,
        CheckId::OptionalReferenceUnresolved,
        CheckId::ConfigFileMissing,
        CheckId::ImageTagLatest,
        CheckId::PullNeverRegistryImage,
        CheckId::EntrypointBackgrounds,
        CheckId::EntrypointExits,
        CheckId::RecentRestarts,
        CheckId::OomHistory,
        CheckId::NodePressure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::StartupProbeMissing => "startup-probe-missing",
            CheckId::LivenessBudgetTooShort => "liveness-budget-too-short",
            CheckId::LivenessEqualsReadiness => "liveness-equals-readiness",
            CheckId::ProbePortNotExposed => "probe-port-not-exposed",
            CheckId::RequestsMissing => "requests-missing",
            CheckId::LimitsMissing => "limits-missing",
            CheckId::LimitBelowRequest => "limit-below-request",
            CheckId::MemoryLimitFarAboveRequest => "memory-limit-far-above-request",
            CheckId::CpuLimit => "cpu-limit",
            CheckId::JvmHeapOverLimit => "jvm-heap-over-limit",
            CheckId::UnresolvedConfigmap => "unresolved-configmap",
            CheckId::UnresolvedSecret => "unresolved-secret",
            CheckId::UnresolvedKey => "unresolved-key",
            CheckId::UnresolvedServiceAccount => "unresolved-service-account",
            CheckId::OptionalReferenceUnresolved => "optional-reference-unresolved",
            CheckId::ConfigFileMissing => "config-file-missing",
            CheckId::ImageTagLatest => "image-tag-latest",
            CheckId::PullNeverRegistryImage => "pull-never-registry-image",
            CheckId::EntrypointBackgrounds => "entrypoint-backgrounds",
            CheckId::EntrypointExits => "entrypoint-exits",
            CheckId::RecentRestarts => "recent-restarts",
            CheckId::OomHistory => "oom-history",
            CheckId::NodePressure => "node-pressure",
        }
    }

    pub fn parse(s: &str) -> Option<CheckId> {
        CheckId::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    /// A short title, for SARIF rule names and JUnit test names.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::StartupProbeMissing => "livenessProbe without a startupProbe",
            CheckId::LivenessBudgetTooShort => "probe allows too little time to start",
            CheckId::LivenessEqualsReadiness => "livenessProbe identical to readinessProbe",
            CheckId::ProbePortNotExposed => "probe on a port the container does not expose",
            CheckId::RequestsMissing => "resource requests missing",
            CheckId::LimitsMissing => "memory limit missing",
            CheckId::LimitBelowRequest => "limit below request",
            CheckId::MemoryLimitFarAboveRequest => "memory limit far above request",
            CheckId::CpuLimit => "CPU limit policy",
            CheckId::JvmHeapOverLimit => "JVM heap too large for the memory limit",
            CheckId::UnresolvedConfigmap => "ConfigMap not found",
            CheckId::UnresolvedSecret => "Secret not found",
            CheckId::UnresolvedKey => "ConfigMap or Secret key not found",
            CheckId::UnresolvedServiceAccount => "ServiceAccount not found",
            CheckId::OptionalReferenceUnresolved => "optional reference not found",
            CheckId::ConfigFileMissing => {
                "file named on the command line missing from its mounted volume"
            }
            CheckId::ImageTagLatest => "image tag latest or missing",
            CheckId::PullNeverRegistryImage => "imagePullPolicy Never",
            CheckId::EntrypointBackgrounds => "entrypoint backgrounds itself",
            CheckId::EntrypointExits => "entrypoint exits at once",
            CheckId::RecentRestarts => "recent restarts",
            CheckId::OomHistory => "OOMKilled before",
            CheckId::NodePressure => "node under pressure",
        }
    }

    /// Why the check matters, in one line: what goes wrong at run time.
    pub fn why(self) -> &'static str {
        match self {
            CheckId::StartupProbeMissing => {
                "without a startupProbe the livenessProbe runs from the first second, so a slow start is killed and restarted over and over (CrashLoopBackOff)"
            }
            CheckId::LivenessBudgetTooShort => {
                "the probe kills the container if it is not up within initialDelaySeconds + periodSeconds x failureThreshold; a budget shorter than the start-up time is a crash loop"
            }
            CheckId::LivenessEqualsReadiness => {
                "a liveness probe that checks what readiness checks restarts a container that is only busy or waiting for a dependency, turning an outage into a crash loop"
            }
            CheckId::ProbePortNotExposed => {
                "a probe on a port the container does not declare is usually a typo: the probe fails and the kubelet kills or never readies the container"
            }
            CheckId::RequestsMissing => {
                "without requests the scheduler places the pod as if it needed nothing, so it lands on a full node and is OOM-killed or evicted first"
            }
            CheckId::LimitsMissing => {
                "without a memory limit one leaking container can exhaust the node, and the kernel then kills processes of other pods as well"
            }
            CheckId::LimitBelowRequest => {
                "a limit below its request is rejected by the API server, so the workload never rolls out"
            }
            CheckId::MemoryLimitFarAboveRequest => {
                "the scheduler reserves the request but the container may grow to the limit: far apart, nodes overcommit and pods die in node-wide OOM kills and evictions"
            }
            CheckId::CpuLimit => {
                "a CPU limit throttles the container when it is busiest, such as during start-up, which makes probes time out and the kubelet restart it"
            }
            CheckId::JvmHeapOverLimit => {
                "the JVM also needs memory outside the heap (metaspace, threads, code cache, buffers): a heap near or over the memory limit is OOM-killed (137) before Java ever throws OutOfMemoryError"
            }
            CheckId::UnresolvedConfigmap => {
                "a missing ConfigMap keeps the container from starting (CreateContainerConfigError) or its volume from mounting"
            }
            CheckId::UnresolvedSecret => {
                "a missing Secret keeps the container from starting (CreateContainerConfigError) or its volume from mounting"
            }
            CheckId::UnresolvedKey => {
                "a key missing from an existing ConfigMap or Secret keeps the container from starting (CreateContainerConfigError: couldn't find key)"
            }
            CheckId::UnresolvedServiceAccount => {
                "pods that name a ServiceAccount that does not exist are refused at creation, so the ReplicaSet or Job never gets a pod"
            }
            CheckId::OptionalReferenceUnresolved => {
                "an optional reference to something missing does not stop the container, but the variable or file it provides is absent, and an app that needs it exits"
            }
            CheckId::ConfigFileMissing => {
                "the command names a file under a ConfigMap or Secret mount that the volume does not provide, so the app fails to open it at start-up"
            }
            CheckId::ImageTagLatest => {
                "a moving tag makes nodes run different builds and hides which change broke a rollout, so a crash cannot be rolled back to a known-good image"
            }
            CheckId::PullNeverRegistryImage => {
                "with imagePullPolicy Never every node must already have the image; a node without it fails with ErrImageNeverPull"
            }
            CheckId::EntrypointBackgrounds => {
                "a command that starts its process in the background and returns exits at once; a long-running container (restartPolicy Always, or a sidecar) is then restarted forever"
            }
            CheckId::EntrypointExits => {
                "a long-running container (restartPolicy Always, or a sidecar) whose command finishes (exit 0, Completed) is restarted forever"
            }
            CheckId::RecentRestarts => {
                "containers that restarted recently are crash-looping or were killed: the cause is still present"
            }
            CheckId::OomHistory => {
                "a container that was OOMKilled will be killed again at the same limit when it reaches the same memory use"
            }
            CheckId::NodePressure => {
                "a node under memory, disk or PID pressure evicts pods and may fail to start containers"
            }
        }
    }

    pub fn default_severity(self) -> Severity {
        match self {
            CheckId::LimitBelowRequest
            | CheckId::JvmHeapOverLimit
            | CheckId::UnresolvedConfigmap
            | CheckId::UnresolvedSecret
            | CheckId::UnresolvedKey
            | CheckId::UnresolvedServiceAccount
            | CheckId::ConfigFileMissing
            | CheckId::EntrypointExits
            | CheckId::OomHistory => Severity::Error,
            CheckId::CpuLimit | CheckId::OptionalReferenceUnresolved => Severity::Info,
            _ => Severity::Warning,
        }
    }

    /// Checks that need a live cluster's status: they never fire on manifests alone.
    pub fn live_only(self) -> bool {
        matches!(
            self,
            CheckId::RecentRestarts | CheckId::OomHistory | CheckId::NodePressure
        )
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
pub struct ObjectRef {
    /// The Kubernetes kind: `Deployment`, `CronJob`, `Pod`, `Node`, ...
    pub kind: String,
    /// Empty for cluster-scoped objects (nodes).
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = unloop_core::workload::WorkloadKind::parse(&self.kind)
            .map(|k| k.short().to_string())
            .unwrap_or_else(|| self.kind.to_ascii_lowercase());
        write!(f, "{short}/{}", self.name)
    }
}

/// Where an object came from: a manifest file and line, when it came from one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Location {
    /// The path as the user gave it (or `<stdin>`).
    pub file: String,
    /// 1-based line of the object's document, or of the container within it when known.
    pub line: usize,
    /// For `helm template` output: the chart template the object was rendered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// How to fix a finding: a sentence, and a YAML snippet with concrete numbers where one helps.
/// The snippet stays data until a renderer prints it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Fix {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaml: Option<Snippet>,
}

impl Fix {
    pub fn text(text: impl Into<String>) -> Self {
        Fix {
            text: text.into(),
            yaml: None,
        }
    }

    pub fn with_yaml(text: impl Into<String>, yaml: Yaml) -> Self {
        Fix {
            text: text.into(),
            yaml: Some(Snippet::from(yaml)),
        }
    }
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub check: CheckId,
    pub severity: Severity,
    pub object: ObjectRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What is wrong with this object, specifically (names, numbers).
    pub message: String,
    pub fix: Fix,
}

/// A finding an exemption switched off, and which one.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    /// `annotation unloop.dev/ignore` or `config exemption #N (reason)`.
    pub by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_match_serde() {
        for c in CheckId::ALL {
            assert_eq!(CheckId::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::Value::String(c.as_str().into()))
            );
            assert!(!c.why().is_empty() && !c.title().is_empty());
        }
    }
}
