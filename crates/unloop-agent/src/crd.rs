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
use unloop_core::diagnose::{Diagnosis, Report};
use unloop_core::verdict::{CauseId, RemedyKind};
use unloop_core::workload::{Workload, WorkloadKind};

use crate::outgoing;
use crate::track::Key;

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
    /// Items left out of the lists above to keep the resource bounded, by list.
    #[serde(default, skip_serializing_if = "Omitted::is_empty")]
    pub omitted: Omitted,
}

/// How many items of each list the agent left out (`outgoing::spec`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Omitted {
    #[serde(default)]
    pub evidence: u32,
    #[serde(default)]
    pub other_causes: u32,
    #[serde(default)]
    pub remedies: u32,
    #[serde(default)]
    pub pods: u32,
}

impl Omitted {
    pub fn is_empty(&self) -> bool {
        *self == Omitted::default()
    }
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
pub fn resource_name(workload: &Workload, container: &str) -> String {
    let raw = format!("{}-{}-{}", workload.kind.short(), workload.name, container);
    let mut name: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    const MAX: usize = 253;
    let hash = fnv(raw.as_bytes());
    if name.len() > MAX {
        name.truncate(MAX - 17);
        // A cut after a '.' or a '-' would leave it before the hash's '-': not a DNS subdomain.
        let kept = name.trim_end_matches(['-', '.']).len();
        name.truncate(kept);
        name = format!("{name}-{hash:016x}");
    }
    let name = name.trim_matches(['-', '.']);
    if is_dns_subdomain(name) {
        name.to_string()
    } else {
        // Names Kubernetes accepted never get here (`a..b` cannot be a workload's name).
        format!("unloop-{hash:016x}")
    }
}

/// RFC 1123 subdomain as Kubernetes checks a resource's name: at most 253 characters, labels
/// of lowercase letters, digits and '-', separated by '.', each beginning and ending with a
/// letter or digit.
pub fn is_dns_subdomain(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && alnum(b[0])
                && alnum(b[b.len() - 1])
                && b.iter().all(|&c| alnum(c) || c == b'-')
        })
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Who a diagnosis is about: the tracker's key and the names of the watched objects the
/// diagnosis read. Redaction treats a report's names as text (a Deployment named
/// `payments-sk-settlement-batch-runner` looks like a token), so every identity the agent uses
/// (the resource's name, its owner, lookups, the Event's pod, comparisons when resolving) is
/// taken from here, never from the redacted report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub workload: Workload,
    pub container: String,
    /// The replica the verdict comes from: where the Event goes.
    pub pod: String,
    /// Every troubled replica.
    pub pods: Vec<String>,
}

impl Identity {
    pub fn resource_name(&self) -> String {
        resource_name(&self.workload, &self.container)
    }
}

/// The diagnoses of a report for `key`, each with its identity taken before the report is
/// redacted (`redact::report`, done here so that no caller can take a name from a redacted one).
pub fn identified(key: &Key, mut report: Report) -> Vec<(Identity, Diagnosis)> {
    let ids: Vec<Identity> = report
        .diagnoses
        .iter()
        .map(|d| Identity {
            namespace: key.namespace.clone(),
            workload: key.workload.clone(),
            container: d.container.clone(),
            pod: d.pod.clone(),
            pods: d.pods.iter().map(|p| p.name.clone()).collect(),
        })
        .collect();
    unloop_core::redact::report(&mut report);
    ids.into_iter().zip(report.diagnoses).collect()
}

/// The spec for a redacted diagnosis of `id`, keeping `first_seen` from before; through the
/// one gate of what the agent publishes (`outgoing::spec`).
pub fn spec_of(
    id: &Identity,
    d: &Diagnosis,
    first_seen: &str,
    now: jiff::Timestamp,
) -> CrashDiagnosisSpec {
    let top = d.top();
    outgoing::spec(CrashDiagnosisSpec {
        workload: id.workload.to_string(),
        container: id.container.clone(),
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
        pods: id.pods.clone(),
        exit_code: d.exit.as_ref().map(|e| e.code),
        first_seen: first_seen.to_string(),
        last_seen: now.to_string(),
        omitted: Omitted::default(),
    })
}

/// The cause a resource names, when it is one unloop knows.
pub fn known_cause(s: &str) -> Option<CauseId> {
    CauseId::ALL.iter().copied().find(|c| c.as_str() == s)
}

/// The workload a resource the agent published is about, or `None` for a resource that anyone
/// else made (anyone allowed to create CrashDiagnoses can): it carries the agent's managed-by
/// label, names a known cause, is named as the agent names it, and is owned by the workload it
/// names (none but a CronJob's, which the agent does not watch, is published without an owner).
/// What the agent counts in its metrics and resolves comes only from these.
pub fn ours(c: &CrashDiagnosis) -> Option<Workload> {
    let labels = c.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGER) {
        return None;
    }
    known_cause(&c.spec.cause)?;
    let (kind, name) = c.spec.workload.split_once('/')?;
    let workload = Workload {
        kind: WorkloadKind::parse(kind)?,
        name: name.to_string(),
    };
    if c.metadata.name.as_deref() != Some(resource_name(&workload, &c.spec.container).as_str()) {
        return None;
    }
    let owners = c.metadata.owner_references.as_deref().unwrap_or_default();
    let owned = match owners {
        [] => workload.kind == WorkloadKind::CronJob,
        [o] => o.kind == workload.kind.kind() && o.name == workload.name,
        _ => false,
    };
    owned.then_some(workload)
}

/// The one-line verdict: the Event's note and a notification's title.
pub fn one_line(spec: &CrashDiagnosisSpec) -> String {
    let spec = outgoing::spec(spec.clone());
    let line = format!(
        "{}[{}]: {} ({} confidence): {}",
        spec.workload, spec.container, spec.cause, spec.confidence, spec.summary
    );
    // The Event API's limit on a note.
    outgoing::line(&line, 1024)
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
        let key = Key {
            namespace: report.diagnoses[0].namespace.clone(),
            workload: report.diagnoses[0].workload.clone(),
        };
        let (id, d) = identified(&key, report).remove(0);
        let spec = spec_of(&id, &d, "2026-11-30T02:00:00Z", now);
        let deploy = &state.deployments[0];
        let uid = deploy.metadata.uid.clone().unwrap();
        let mut c = CrashDiagnosis::new(&id.resource_name(), spec);
        c.metadata.labels = Some([(LABEL_MANAGED_BY.to_string(), MANAGER.to_string())].into());
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

    fn deploy(name: &str) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            name: name.into(),
        }
    }

    #[test]
    fn resource_names_are_dns_subdomains_and_long_ones_do_not_collide() {
        assert_eq!(resource_name(&deploy("api"), "app"), "deploy-api-app");
        let long_a = resource_name(&deploy(&"a".repeat(300)), "x");
        let long_b = resource_name(&deploy(&"a".repeat(300)), "y");
        assert!(long_a.len() <= 253 && long_b.len() <= 253);
        assert_ne!(long_a, long_b);
        assert!(is_dns_subdomain(&long_a), "{long_a}");
    }

    /// A long Deployment name (a valid DNS subdomain) whose cut at 236 characters falls just
    /// after a '.': `x.-hash` would be refused by the API server at every retry.
    #[test]
    fn a_long_name_cut_after_a_dot_or_a_dash_is_still_a_dns_subdomain() {
        // "deploy-" is 7 characters: the cut keeps 236, so the 229th character of the name
        // ends the prefix.
        for sep in [".", "-"] {
            let name = format!("{}{sep}{}", "a".repeat(228), "b".repeat(20));
            assert!(is_dns_subdomain(&name), "the workload's name is valid");
            let r = resource_name(&deploy(&name), "app");
            assert!(is_dns_subdomain(&r), "{r}");
            assert!(r.len() <= 253, "{r}");
            assert!(!r.contains(".-") && !r.contains("--"), "{r}");
        }
        assert!(!is_dns_subdomain("a.-b"));
        assert!(!is_dns_subdomain("a-.b"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
    }

    #[test]
    fn only_the_agent_s_own_resources_are_counted_and_resolved() {
        let (c, _) = published();
        assert_eq!(ours(&c), Some(deploy("worker")));
        let mut unlabelled = c.clone();
        unlabelled.metadata.labels = None;
        assert_eq!(ours(&unlabelled), None, "no managed-by label");
        let mut unknown = c.clone();
        unknown.spec.cause = "a\nforged=\"label\"".into();
        assert_eq!(ours(&unknown), None, "a cause unloop does not know");
        let mut elsewhere = c.clone();
        elsewhere.spec.workload = "deploy/payments".into();
        assert_eq!(ours(&elsewhere), None, "not named as the agent names it");
        let mut foreign = c.clone();
        foreign.metadata.name = Some("deploy-payments-worker".into());
        foreign.spec.workload = "deploy/payments".into();
        assert_eq!(
            ours(&foreign),
            None,
            "owned by another workload than it names"
        );
    }
}
