//! What a diagnosis says: causes with evidence and confidence, and remedies to paste.

use serde::{Deserialize, Serialize};

use crate::shell::{self, Script};

/// Stable identifiers of the causes unloop can name. Their kebab-case spelling is part of the
/// JSON output contract; docs/causes.md documents each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseId {
    BadRollout,
    MissingEnvVar,
    MissingConfigmap,
    MissingSecret,
    MissingConfigKey,
    MissingConfigFile,
    OomLimitTooLow,
    OomJvmHeapOverLimit,
    NodePressure,
    DependencyUnreachable,
    DependencyDns,
    LivenessProbeKill,
    EntrypointExited,
    CommandNotFound,
    NotExecutable,
    Segfault,
    ExecFormat,
    ImagePull,
    MissingModule,
    ReadOnlyFilesystem,
    FilePermissionDenied,
    PortNotPermitted,
    PortInUse,
    DependencyAuth,
    HeapExhausted,
    AppError,
    Unknown,
}

impl CauseId {
    pub const ALL: [CauseId; 27] = [
        CauseId::BadRollout,
        CauseId::MissingEnvVar,
        CauseId::MissingConfigmap,
        CauseId::MissingSecret,
        CauseId::MissingConfigKey,
        CauseId::MissingConfigFile,
        CauseId::OomLimitTooLow,
        CauseId::OomJvmHeapOverLimit,
        CauseId::NodePressure,
        CauseId::DependencyUnreachable,
        CauseId::DependencyDns,
        CauseId::LivenessProbeKill,
        CauseId::EntrypointExited,
        CauseId::CommandNotFound,
        CauseId::NotExecutable,
        CauseId::Segfault,
        CauseId::ExecFormat,
        CauseId::ImagePull,
        CauseId::MissingModule,
        CauseId::ReadOnlyFilesystem,
        CauseId::FilePermissionDenied,
        CauseId::PortNotPermitted,
        CauseId::PortInUse,
        CauseId::DependencyAuth,
        CauseId::HeapExhausted,
        CauseId::AppError,
        CauseId::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CauseId::BadRollout => "bad-rollout",
            CauseId::MissingEnvVar => "missing-env-var",
            CauseId::MissingConfigmap => "missing-configmap",
            CauseId::MissingSecret => "missing-secret",
            CauseId::MissingConfigKey => "missing-config-key",
            CauseId::MissingConfigFile => "missing-config-file",
            CauseId::OomLimitTooLow => "oom-limit-too-low",
            CauseId::OomJvmHeapOverLimit => "oom-jvm-heap-over-limit",
            CauseId::NodePressure => "node-pressure",
            CauseId::DependencyUnreachable => "dependency-unreachable",
            CauseId::DependencyDns => "dependency-dns",
            CauseId::LivenessProbeKill => "liveness-probe-kill",
            CauseId::EntrypointExited => "entrypoint-exited",
            CauseId::CommandNotFound => "command-not-found",
            CauseId::NotExecutable => "not-executable",
            CauseId::Segfault => "segfault",
            CauseId::ExecFormat => "exec-format",
            CauseId::ImagePull => "image-pull",
            CauseId::MissingModule => "missing-module",
            CauseId::ReadOnlyFilesystem => "read-only-filesystem",
            CauseId::FilePermissionDenied => "file-permission-denied",
            CauseId::PortNotPermitted => "port-not-permitted",
            CauseId::PortInUse => "port-in-use",
            CauseId::DependencyAuth => "dependency-auth",
            CauseId::HeapExhausted => "heap-exhausted",
            CauseId::AppError => "app-error",
            CauseId::Unknown => "unknown",
        }
    }

    /// The guide's bucket for this cause.
    pub fn bucket(self) -> Bucket {
        match self {
            CauseId::MissingEnvVar
            | CauseId::MissingConfigmap
            | CauseId::MissingSecret
            | CauseId::MissingConfigKey
            | CauseId::MissingConfigFile
            | CauseId::EntrypointExited
            | CauseId::CommandNotFound
            | CauseId::NotExecutable
            | CauseId::ExecFormat
            | CauseId::ImagePull
            | CauseId::LivenessProbeKill
            | CauseId::MissingModule
            | CauseId::ReadOnlyFilesystem
            | CauseId::FilePermissionDenied
            | CauseId::PortNotPermitted
            | CauseId::PortInUse => Bucket::Configuration,
            CauseId::OomLimitTooLow
            | CauseId::OomJvmHeapOverLimit
            | CauseId::NodePressure
            | CauseId::HeapExhausted => Bucket::Resources,
            CauseId::DependencyUnreachable
            | CauseId::DependencyDns
            | CauseId::DependencyAuth
            | CauseId::Segfault
            | CauseId::AppError
            | CauseId::BadRollout
            | CauseId::Unknown => Bucket::Application,
        }
    }
}

impl std::fmt::Display for CauseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guide's three families of crash-loop causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bucket {
    /// Configuration and environment: what the container was given.
    Configuration,
    /// Resources and OOM: what the container was allowed.
    Resources,
    /// Application and dependency failures: what the program did.
    Application,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        })
    }
}

/// Where a piece of evidence was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceKind {
    /// A field of an object, e.g. a container status.
    Field,
    /// A Kubernetes event.
    Event,
    /// A line of the container's log.
    Log,
    /// A lookup against the API: an object exists or not, a Service has endpoints or not.
    Lookup,
    /// The container's spec.
    Spec,
    /// The node the pod ran on.
    Node,
    /// The owner's rollout history.
    Rollout,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// Where it was read, e.g. `pod/api-1 status.containerStatuses[app].lastState.terminated`.
    pub source: String,
    /// What it says, verbatim where it is a message or a log line.
    pub text: String,
}

impl Evidence {
    pub fn new(kind: EvidenceKind, source: impl Into<String>, text: impl Into<String>) -> Self {
        Evidence {
            kind,
            source: source.into(),
            text: text.into(),
        }
    }
}

/// One explanation of the crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    pub id: CauseId,
    pub bucket: Bucket,
    pub confidence: Confidence,
    /// One sentence a person reads first.
    pub summary: String,
    pub evidence: Vec<Evidence>,
}

impl Cause {
    pub fn new(id: CauseId, confidence: Confidence, summary: impl Into<String>) -> Self {
        Cause {
            id,
            bucket: id.bucket(),
            confidence,
            summary: summary.into(),
            evidence: Vec::new(),
        }
    }

    pub fn with(mut self, evidence: Evidence) -> Self {
        self.evidence.push(evidence);
        self
    }
}

/// What a remedy does: ranking and renderers decide by this, never by its title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemedyKind {
    /// Changes the workload, the cluster or the image so that the cause goes away.
    Fix,
    /// Only reads: a log, a description, a list, a comparison.
    Inspect,
    /// Makes a debug copy of the pod to look inside it (`unloop debug`).
    Debug,
    /// Once the cause is fixed, retries at once instead of waiting out the backoff. A diagnosis
    /// offers at most one, last.
    Retry,
}

/// Something to do about it: a title and, where there is one, a command to paste.
///
/// In JSON: `forCause`, `kind`, `title`, and with a command, `command` (the line to paste, see
/// [`shell::render`]) and `steps` (the same as argv, see [`shell::Pipeline`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// The cause this remedy addresses, or none for general advice such as retrying now.
    pub for_cause: Option<CauseId>,
    pub kind: RemedyKind,
    pub title: String,
    /// The command, complete except for values only the user knows (placeholders `<like-this>`).
    pub script: Option<Script>,
}

impl Remedy {
    pub fn new(
        for_cause: Option<CauseId>,
        kind: RemedyKind,
        title: impl Into<String>,
        script: Option<Script>,
    ) -> Self {
        Remedy {
            for_cause,
            kind,
            title: title.into(),
            script,
        }
    }

    pub fn fix(cause: CauseId, title: impl Into<String>, script: Option<Script>) -> Self {
        Remedy::new(Some(cause), RemedyKind::Fix, title, script)
    }

    pub fn inspect(cause: CauseId, title: impl Into<String>, script: Option<Script>) -> Self {
        Remedy::new(Some(cause), RemedyKind::Inspect, title, script)
    }

    /// The command as one line to paste into a POSIX shell.
    pub fn command(&self) -> Option<String> {
        self.script.as_ref().map(shell::render)
    }
}

impl Serialize for Remedy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if let Some(c) = &self.for_cause {
            m.serialize_entry("forCause", c)?;
        }
        m.serialize_entry("kind", &self.kind)?;
        m.serialize_entry("title", &self.title)?;
        if let Some(script) = &self.script {
            m.serialize_entry("command", &shell::render(script))?;
            m.serialize_entry("steps", &script.steps)?;
        }
        m.end()
    }
}
