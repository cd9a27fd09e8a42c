//! `CrashDiagnosis`: the custom resource the agent publishes, one per troubled workload and
//! container. Its schema is generated from these types (kube's `CustomResource` derive and
//! schemars), so the CRD and the code cannot disagree.
//!
//! The spec is the verdict as of the last diagnosis (cause, evidence, remedies, restarts,
//! first and last seen); the status is its life cycle (resolved, and the last notification sent,
//! which is how a new leader knows not to notify again).

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unloop_core::diagnose::Diagnosis;
use unloop_core::verdict::RemedyKind;

/// The API group of unloop's resources.
pub const GROUP: &str = "unloop.dev";
/// The field manager of every write the agent makes (server-side apply).
pub const MANAGER: &str = "unloop-agent";
/// Labels on every `CrashDiagnosis`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_CAUSE: &str = "unloop.dev/cause";

/// What unloop found about one crash-looping container of one workload.
// Each printer column repeats `name = ...` inside `printcolumn(...)`, which clippy reads as a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "unloop.dev",
    version = "v1alpha1",
    kind = "CrashDiagnosis",
    plural = "crashdiagnoses",
    shortname = "cdiag",
    namespaced,
    status = "CrashDiagnosisStatus",
    printcolumn(name = "Workload", type_ = "string", json_path = ".spec.workload"),
    printcolumn(name = "Container", type_ = "string", json_path = ".spec.container"),
    printcolumn(name = "Cause", type_ = "string", json_path = ".spec.cause"),
    printcolumn(name = "Confidence", type_ = "string", json_path = ".spec.confidence"),
    printcolumn(name = "Restarts", type_ = "integer", json_path = ".spec.restarts"),
    printcolumn(name = "Resolved", type_ = "boolean", json_path = ".status.resolved"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Summary",
        type_ = "string",
        json_path = ".spec.summary",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CrashDiagnosisSpec {
    /// The workload as kubectl names it: `deploy/api`, `sts/db`, `job/x`, `pod/x`.
    pub workload: String,
    pub container: String,
    /// The most likely cause, its kebab-case id (docs/causes.md).
    pub cause: String,
    /// `high`, `medium` or `low`.
    pub confidence: String,
    /// One sentence a person reads first.
    pub summary: String,
    /// What the verdict rests on: fields, events, log lines.
    #[serde(default)]
    pub evidence: Vec<EvidenceItem>,
    /// Less likely causes, most likely first.
    #[serde(default)]
    pub other_causes: Vec<String>,
    /// What to do, a command to paste where there is one (secret-looking values redacted).
    #[serde(default)]
    pub remedies: Vec<RemedyItem>,
    /// Restarts of the replica the verdict comes from.
    pub restarts: i32,
    /// The troubled replicas.
    #[serde(default)]
    pub pods: Vec<String>,
    /// The exit code of the last crash, where there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the agent first saw this container in trouble (RFC 3339).
    pub first_seen: String,
    /// The last diagnosis (RFC 3339).
    pub last_seen: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceItem {
    /// field, event, log, lookup, spec, node or rollout.
    pub kind: String,
    pub source: String,
    pub text: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemedyItem {
    /// fix, inspect, debug or retry.
    pub kind: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrashDiagnosisStatus {
    /// True once the workload has no container in trouble.
    #[serde(default)]
    pub resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The last notification sent about this workload and container, shared by every replica
    /// of the agent so that a new leader does not send it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<Notified>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notified {
    pub cause: String,
    /// RFC 3339.
    pub at: String,
}

/// What a diagnosis of a workload takes over from the resource already published under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// When the trouble was first seen, if it is the same incident.
    pub first_seen: Option<String>,
    /// The last notification sent about it, if it is the same incident.
    pub notified: Option<Notified>,
    /// Whether this is news: no resource yet, another cause, resolved, or another workload.
    pub news: bool,
}

/// What `existing` carries over to a diagnosis of `cause` for the workload whose uid is
/// `owner_uid`. A resource owned by another uid was made for an earlier workload of the same
/// name, deleted and created again (its garbage collection lags behind): nothing of it counts,
/// so the new workload is first seen and notified as what it is, a new incident.
pub fn carried(existing: Option<&CrashDiagnosis>, owner_uid: Option<&str>, cause: &str) -> Carried {
    let earlier_owner = |c: &CrashDiagnosis| {
        let owner = c
            .metadata
            .owner_references
            .iter()
            .flatten()
            .next()
            .map(|r| r.uid.as_str());
        matches!((owner, owner_uid), (Some(a), Some(b)) if a != b)
    };
    let Some(c) = existing.filter(|c| !earlier_owner(c)) else {
        return Carried {
            first_seen: None,
            notified: None,
            news: true,
        };
    };
    let resolved = c.status.as_ref().is_some_and(|s| s.resolved);
    Carried {
        first_seen: (!resolved).then(|| c.spec.first_seen.clone()),
        notified: c.status.as_ref().and_then(|s| s.notified.clone()),
        news: c.spec.cause != cause || resolved,
    }
}

/// The CRD as YAML, as `unloop agent crd` prints it.
pub fn crd_yaml() -> String {
    serde_saphyr::to_string(&CrashDiagnosis::crd()).unwrap_or_default()
}

/// The name of the resource for a workload's container: `deploy-api-app`, a DNS subdomain.
/// Names longer than the limit keep a prefix and a hash of the whole, so two never collide.
pub fn resource_name(workload: &str, container: &str) -> String {
    let raw = format!("{}-{}", workload.replace('/', "-"), container);
    let mut name: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    const MAX: usize = 253;
    if name.len() > MAX {
        let hash = fnv(raw.as_bytes());
        name.truncate(MAX - 17);
        name = format!("{name}-{hash:016x}");
    }
    name.trim_matches(|c| c == '-' || c == '.').to_string()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// The spec for a diagnosis (already redacted by the caller), keeping `first_seen` from before.
pub fn spec_of(d: &Diagnosis, first_seen: &str, now: jiff::Timestamp) -> CrashDiagnosisSpec {
    let top = d.top();
    CrashDiagnosisSpec {
        workload: d.workload.to_string(),
        container: d.container.clone(),
        cause: top.id.as_str().to_string(),
        confidence: top.confidence.to_string(),
        summary: top.summary.clone(),
        evidence: top
            .evidence
            .iter()
            .map(|e| EvidenceItem {
                kind: serde_json::to_value(e.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                source: e.source.clone(),
                text: e.text.clone(),
            })
            .collect(),
        other_causes: d.causes[1..]
            .iter()
            .map(|c| c.id.as_str().to_string())
            .collect(),
        remedies: d
            .remedies
            .iter()
            .map(|r| RemedyItem {
                kind: match r.kind {
                    RemedyKind::Fix => "fix",
                    RemedyKind::Inspect => "inspect",
                    RemedyKind::Debug => "debug",
                    RemedyKind::Retry => "retry",
                }
                .to_string(),
                title: r.title.clone(),
                command: r.script.as_ref().map(unloop_core::shell::render),
            })
            .collect(),
        restarts: d.restarts,
        pods: d.pods.iter().map(|p| p.name.clone()).collect(),
        exit_code: d.exit.as_ref().map(|e| e.code),
        first_seen: first_seen.to_string(),
        last_seen: now.to_string(),
    }
}

/// The one-line verdict: the Event's note and a notification's title.
pub fn one_line(spec: &CrashDiagnosisSpec) -> String {
    format!(
        "{}[{}]: {} ({} confidence): {}",
        spec.workload, spec.container, spec.cause, spec.confidence, spec.summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resource the agent published for the captured oom-limit scenario, owned by its
    /// captured Deployment and notified once; and that Deployment's uid.
    fn published() -> (CrashDiagnosis, String) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/oom-limit/bundle.json.gz");
        let state = unloop_source::bundle::read(&path).unwrap();
        let now = state.captured_at.unwrap();
        let report = unloop_core::diagnose::diagnose(&state, &Default::default(), now);
        let spec = spec_of(&report.diagnoses[0], "2026-11-30T02:00:00Z", now);
        let deploy = &state.deployments[0];
        let uid = deploy.metadata.uid.clone().unwrap();
        let mut c = CrashDiagnosis::new(&resource_name(&spec.workload, &spec.container), spec);
        c.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: deploy.metadata.name.clone().unwrap(),
                uid: uid.clone(),
                ..Default::default()
            },
        ]);
        c.status = Some(CrashDiagnosisStatus {
            notified: Some(Notified {
                cause: "oom-limit-too-low".into(),
                at: "2026-11-30T02:00:05Z".into(),
            }),
            ..Default::default()
        });
        (c, uid)
    }

    #[test]
    fn the_same_workload_keeps_its_first_sighting_and_its_notification() {
        let (c, uid) = published();
        let kept = carried(Some(&c), Some(&uid), "oom-limit-too-low");
        assert!(!kept.news);
        assert_eq!(kept.first_seen.as_deref(), Some("2026-11-30T02:00:00Z"));
        assert_eq!(kept.notified, c.status.as_ref().unwrap().notified);
        // Another cause for the same workload is news, still within the same incident.
        let other = carried(Some(&c), Some(&uid), "missing-env-var");
        assert!(other.news);
        assert_eq!(other.first_seen.as_deref(), Some("2026-11-30T02:00:00Z"));
    }

    /// Deleted and created again under the same name (the soak found it: the old resource, not
    /// yet garbage-collected, held the notification of the old workload, and the new one was
    /// never notified).
    #[test]
    fn a_workload_created_again_under_the_same_name_is_a_new_incident() {
        let (c, uid) = published();
        let again = format!("{}-again", &uid[..8]);
        let new = carried(Some(&c), Some(&again), "oom-limit-too-low");
        assert_eq!(
            new,
            Carried {
                first_seen: None,
                notified: None,
                news: true
            }
        );
        assert!(carried(None, Some(&uid), "oom-limit-too-low").news);
    }

    #[test]
    fn a_resolved_resource_starts_a_new_sighting_within_the_notification_window() {
        let (mut c, uid) = published();
        c.status.as_mut().unwrap().resolved = true;
        let back = carried(Some(&c), Some(&uid), "oom-limit-too-low");
        assert!(back.news);
        assert_eq!(back.first_seen, None);
        assert_eq!(back.notified, c.status.as_ref().unwrap().notified);
    }

    #[test]
    fn the_crd_has_the_columns_kubectl_prints_and_a_schema_from_the_types() {
        let crd = CrashDiagnosis::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("crashdiagnoses.unloop.dev")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        let cols: Vec<&str> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        for want in ["Cause", "Confidence", "Restarts", "Resolved", "Age"] {
            assert!(cols.contains(&want), "{want} missing from {cols:?}");
        }
        let yaml = crd_yaml();
        for field in [
            "otherCauses",
            "firstSeen",
            "remedies",
            "resolved",
            "notified",
        ] {
            assert!(yaml.contains(field), "{field} not in the schema");
        }
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }

    #[test]
    fn resource_names_are_dns_subdomains_and_long_ones_do_not_collide() {
        assert_eq!(resource_name("deploy/api", "app"), "deploy-api-app");
        let long_a = resource_name(&format!("deploy/{}", "a".repeat(300)), "x");
        let long_b = resource_name(&format!("deploy/{}", "a".repeat(300)), "y");
        assert!(long_a.len() <= 253 && long_b.len() <= 253);
        assert_ne!(long_a, long_b);
    }
}
