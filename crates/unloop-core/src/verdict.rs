//! What a diagnosis says: causes with evidence and confidence, and remedies to paste.

use serde::{Deserialize, Serialize};

use crate::shell::{self, Script};

/// Declares every cause once: its variant, its kebab-case id (part of the JSON output contract,
/// never renamed) and its bucket. The order of the declaration is the ranking priority: among causes
/// of equal confidence, the one declared first is ranked first (see [`CauseId::priority`]).
/// docs/causes.md lists the ids in the same order; a test keeps the two in step.
macro_rules! causes {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $bucket:ident;)+) => {
        /// Stable identifiers of the causes unloop can name. Their kebab-case spelling is part of
        /// the JSON output contract; docs/causes.md documents each one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum CauseId {
            $($(#[$doc])* #[serde(rename = $id)] $variant,)+
        }

        impl CauseId {
            /// Every cause, in order of priority.
            pub const ALL: &'static [CauseId] = &[$(CauseId::$variant,)+];

            /// The stable kebab-case id.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CauseId::$variant => $id,)+
                }
            }

            /// The guide's bucket for this cause.
            pub fn bucket(self) -> Bucket {
                match self {
                    $(CauseId::$variant => Bucket::$bucket,)+
                }
            }
        }
    };
}

causes! {
    BadRollout = "bad-rollout", Application;
    MissingEnvVar = "missing-env-var", Configuration;
    MissingConfigmap = "missing-configmap", Configuration;
    MissingSecret = "missing-secret", Configuration;
    MissingConfigKey = "missing-config-key", Configuration;
    MissingConfigFile = "missing-config-file", Configuration;
    OomLimitTooLow = "oom-limit-too-low", Resources;
    OomJvmHeapOverLimit = "oom-jvm-heap-over-limit", Resources;
    NodePressure = "node-pressure", Resources;
    DependencyUnreachable = "dependency-unreachable", Application;
    DependencyDns = "dependency-dns", Application;
    ProbeWrongPort = "probe-wrong-port", Configuration;
    LivenessProbeKill = "liveness-probe-kill", Configuration;
    EntrypointExited = "entrypoint-exited", Configuration;
    CommandNotFound = "command-not-found", Configuration;
    NotExecutable = "not-executable", Configuration;
    Segfault = "segfault", Application;
    ExecFormat = "exec-format", Configuration;
    ImagePull = "image-pull", Configuration;
    MissingModule = "missing-module", Configuration;
    ReadOnlyFilesystem = "read-only-filesystem", Configuration;
    FilePermissionDenied = "file-permission-denied", Configuration;
    PortNotPermitted = "port-not-permitted", Configuration;
    PortInUse = "port-in-use", Configuration;
    DependencyAuth = "dependency-auth", Application;
    HeapExhausted = "heap-exhausted", Resources;
    Unschedulable = "unschedulable", Resources;
    SandboxFailed = "sandbox-failed", Configuration;
    VolumeMountFailed = "volume-mount-failed", Configuration;
    JobFailed = "job-failed", Application;
    AppError = "app-error", Application;
    Unknown = "unknown", Application;
}

impl CauseId {
    /// The tie-break between causes of equal confidence: lower ranks first. It is the position in
    /// the `causes!` declaration (and the row of docs/causes.md), nothing else.
    pub fn priority(self) -> usize {
        CauseId::ALL
            .iter()
            .position(|c| *c == self)
            .unwrap_or(CauseId::ALL.len())
    }
}

impl std::fmt::Display for CauseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guide's three families of crash-loop causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Bucket {
    /// Configuration and environment: what the container was given.
    Configuration,
    /// Resources and OOM: what the container was allowed.
    Resources,
    /// Application and dependency failures: what the program did.
    Application,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The JSON form of a [`Remedy`] (its `Serialize`), for the schema.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct RemedyJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    for_cause: Option<CauseId>,
    kind: RemedyKind,
    title: String,
    /// The line to paste into a POSIX shell.
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    /// The same command as argv, one entry per `&&` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<shell::Pipeline>>,
}

impl schemars::JsonSchema for Remedy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Remedy".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RemedyJson::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAUSES_MD: &str = include_str!("../../../docs/causes.md");

    /// The ids of the cause table of docs/causes.md, in the order of its rows.
    fn documented() -> Vec<&'static str> {
        CAUSES_MD
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn every_cause_is_documented_in_the_order_it_ranks() {
        let ids: Vec<&str> = CauseId::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented(), ids);
    }

    #[test]
    fn every_documented_row_names_the_bucket_of_its_cause() {
        for c in CauseId::ALL {
            let row = CAUSES_MD
                .lines()
                .find(|l| l.starts_with(&format!("| `{c}` |")))
                .unwrap();
            let bucket = serde_json::to_value(c.bucket()).unwrap();
            assert!(
                row.contains(&format!("| {} |", bucket.as_str().unwrap())),
                "{row}"
            );
        }
    }

    #[test]
    fn the_json_id_is_the_declared_kebab_id() {
        for c in CauseId::ALL {
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, serde_json::Value::from(c.as_str()));
            assert_eq!(serde_json::from_value::<CauseId>(json).unwrap(), *c);
        }
        assert_eq!(CauseId::MissingConfigmap.as_str(), "missing-configmap");
        assert_eq!(
            CauseId::OomJvmHeapOverLimit.as_str(),
            "oom-jvm-heap-over-limit"
        );
    }

    #[test]
    fn priority_is_the_declared_order() {
        for (i, c) in CauseId::ALL.iter().enumerate() {
            assert_eq!(c.priority(), i);
        }
        assert!(CauseId::BadRollout.priority() < CauseId::MissingEnvVar.priority());
        assert!(CauseId::AppError.priority() < CauseId::Unknown.priority());
    }
}
