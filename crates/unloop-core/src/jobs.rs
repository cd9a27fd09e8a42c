//! Jobs that failed and whose pods are gone: the Job's status conditions and events are then the
//! only record of the failure, and a report that looks only at pods would say nothing.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;

use crate::diagnose::{Diagnosis, EventBrief};
use crate::shell::{Argv, Cmd, Pipeline, Script};
use crate::state::ClusterState;
use crate::status::Role;
use crate::subject::{event_source, event_text, event_time};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy, RemedyKind};
use crate::workload::{Workload, WorkloadKind};

/// The workload a Job belongs to: its CronJob when one made it, else the Job.
pub fn workload_of(job: &Job) -> Workload {
    let cron = job
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.kind == "CronJob" && r.controller == Some(true));
    match cron {
        Some(c) => Workload {
            kind: WorkloadKind::CronJob,
            name: c.name.clone(),
        },
        None => Workload {
            kind: WorkloadKind::Job,
            name: job.metadata.name.clone().unwrap_or_default(),
        },
    }
}

/// The labels the API server adds to a Job and its pod template when it generates the Job's
/// selector (every Job without `spec.manualSelector: true`): tied to the old Job's uid, they must
/// go for the Job to be created again.
pub const CONTROLLER_LABELS: [&str; 4] = [
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];

/// What the API server set on a Job it stored: never sent back when the Job is created again.
const SERVER_SET: [&[&str]; 6] = [
    &["status"],
    &["metadata", "uid"],
    &["metadata", "resourceVersion"],
    &["metadata", "creationTimestamp"],
    &["metadata", "managedFields"],
    &["metadata", "generation"],
];

/// What the API server generated for a Job whose selector the user did not write: the selector
/// and its labels.
fn generated() -> Vec<Vec<&'static str>> {
    let mut paths = vec![vec!["spec", "selector"]];
    for l in CONTROLLER_LABELS {
        paths.push(vec!["metadata", "labels", l]);
        paths.push(vec!["spec", "template", "metadata", "labels", l]);
    }
    paths
}

fn manual_selector(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.manual_selector) == Some(true)
}

/// The Job to create again in place of `job` (as read from the API server): everything the user
/// wrote, without what the server set or generated (`SERVER_SET`, and unless the user wrote the
/// selector, the selector and `CONTROLLER_LABELS`). `unloop retry job/NAME` creates it; the
/// remedy's `jq` filter (`rerun_script`) deletes the same paths, so both run the same Job.
pub fn rerun(job: &Job) -> Job {
    let Ok(mut v) = serde_json::to_value(job) else {
        return job.clone();
    };
    let mut paths: Vec<Vec<&str>> = SERVER_SET.iter().map(|p| p.to_vec()).collect();
    if !manual_selector(job) {
        paths.extend(generated());
    }
    for p in &paths {
        remove(&mut v, p);
    }
    serde_json::from_value(v).unwrap_or_else(|_| job.clone())
}

fn remove(v: &mut serde_json::Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = v;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(*last);
    }
}

/// A path as `jq` writes it: `.metadata.uid`, `.metadata.labels["job-name"]`.
fn jq_path(path: &[&str]) -> String {
    path.iter()
        .map(|k| {
            if k.chars().all(|c| c.is_ascii_alphanumeric()) {
                format!(".{k}")
            } else {
                format!("[\"{k}\"]")
            }
        })
        .collect()
}

fn jq_del(paths: &[Vec<&str>]) -> String {
    let list: Vec<String> = paths.iter().map(|p| jq_path(p)).collect();
    format!("del({})", list.join(", "))
}

/// The `jq` filter that does what `rerun` does, on `kubectl get job -o json`: the same paths, the
/// labels of each object in one path expression.
pub fn rerun_filter() -> String {
    let server: Vec<Vec<&str>> = SERVER_SET.iter().map(|p| p.to_vec()).collect();
    let labels: Vec<String> = CONTROLLER_LABELS
        .iter()
        .map(|l| format!("\"{l}\""))
        .collect();
    let labels = labels.join(", ");
    format!(
        "{} | if .spec.manualSelector then . else del(.spec.selector, .metadata.labels[{labels}], .spec.template.metadata.labels[{labels}]) end",
        jq_del(&server),
    )
}

/// Runs Job `name` again by hand, as `unloop retry job/NAME` does: read, stripped by
/// `rerun_filter`, and replaced (kubectl deletes the old Job, its pods with it, and creates the
/// new one).
pub fn rerun_script(name: &str, ns: &str) -> Script {
    Script::new(Pipeline::of(vec![
        Cmd::kubectl(&["get", "job"])
            .operand(name)
            .flag_value("-n", ns)
            .flag_value("-o", "json")
            .build(),
        Argv::new("jq").arg(rerun_filter()),
        Argv::new("kubectl").args(["replace", "--force", "-f", "-"]),
    ]))
}

/// The CronJob that made `job`, if one did.
pub fn cronjob_of(job: &Job) -> Option<&str> {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.kind == "CronJob" && r.controller == Some(true))
        .map(|r| r.name.as_str())
}

/// How to run a CronJob now: a Job made from its current jobTemplate (where a fix to the pod
/// spec goes), named NAME-retry.
pub fn from_cronjob(cron: &str, ns: &str) -> Cmd {
    Cmd::kubectl(&["create", "job"])
        .operand(format!("{cron}-retry"))
        .flag(format!("--from=cronjob/{cron}"))
        .flag_value("-n", ns)
}

/// The diagnosis of a Job whose Failed condition is True and of which no pod is left in the state
/// (a Job with pods left is diagnosed through them, with their exit codes and logs).
pub fn failed_without_pods(state: &ClusterState, job: &Job) -> Option<Diagnosis> {
    let ns = job.metadata.namespace.as_deref().unwrap_or_default();
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let uid = job.metadata.uid.as_deref()?;
    let status = job.status.as_ref()?;
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    let owned = |p: &&k8s_openapi::api::core::v1::Pod| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid)
    };
    if state.pods.iter().any(|p| owned(&p)) {
        return None;
    }
    let mut events: Vec<&Event> = state
        .events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Job")
                && e.involved_object.uid.as_deref() == Some(uid)
        })
        .collect();
    events.sort_by_key(|e| event_time(e));
    let reason = failed.reason.as_deref().unwrap_or("Failed");
    let message = failed.message.as_deref().unwrap_or_default();
    let attempts = status.failed.unwrap_or(0);
    let container = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let what = match reason {
        "DeadlineExceeded" => {
            "it ran longer than its activeDeadlineSeconds and was stopped".to_string()
        }
        "BackoffLimitExceeded" => {
            format!("{attempts} of its pods failed, reaching its backoffLimit")
        }
        other => format!("{other}: {message}"),
    };
    let summary = format!(
        "Job {name} failed ({reason}): {what}; none of its pods is left, so their exit codes and logs can no longer be read"
    );
    let when = failed
        .last_transition_time
        .as_ref()
        .map(|t| format!(" (since {})", t.0))
        .unwrap_or_default();
    let mut cause = Cause::new(CauseId::JobFailed, Confidence::High, summary).with(Evidence::new(
        EvidenceKind::Field,
        format!("job/{name} status.conditions[Failed]"),
        format!("{reason}: {message}{when}"),
    ));
    cause.evidence.push(Evidence::new(
        EvidenceKind::Field,
        format!("job/{name} status"),
        format!(
            "{} failed, {} succeeded, {} active",
            plural(attempts, "pod"),
            status.succeeded.unwrap_or(0),
            status.active.unwrap_or(0)
        ),
    ));
    for e in events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
    {
        cause.evidence.push(Evidence::new(
            EvidenceKind::Event,
            event_source(e),
            event_text(e),
        ));
    }
    cause.evidence.push(Evidence::new(
        EvidenceKind::Lookup,
        format!("pods of job/{name}"),
        "none left (deleted, or removed by a garbage collector)",
    ));
    let w = workload_of(job);
    let mut remedies = vec![Remedy::inspect(
        CauseId::JobFailed,
        format!("read what is left of the Job {name}: its conditions and events"),
        Some(
            Cmd::kubectl(&["describe", "job"])
                .operand(name)
                .flag_value("-n", ns)
                .into(),
        ),
    )];
    if w.kind == WorkloadKind::CronJob {
        remedies.push(Remedy::inspect(
            CauseId::JobFailed,
            format!(
                "run the CronJob {} once by hand and diagnose its pod while it is there",
                w.name
            ),
            Some(
                Cmd::kubectl(&["create", "job"])
                    .operand(format!("{}-manual", w.name))
                    .flag_value("--from", format!("cronjob/{}", w.name))
                    .flag_value("-n", ns)
                    .into(),
            ),
        ));
    } else {
        remedies.push(Remedy::new(
            Some(CauseId::JobFailed),
            RemedyKind::Retry,
            "re-run the Job (re-created from its spec, as unloop retry job/NAME does) and diagnose its pods before they are removed; to keep failed pods for longer, give the Job a ttlSecondsAfterFinished and stop whatever deletes them",
            Some(rerun_script(name, ns)),
        ));
    }
    let event_briefs = events
        .iter()
        .map(|e| EventBrief {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: event_text(e),
            count: e.count.unwrap_or(1),
            last_seen: event_time(e),
        })
        .collect();
    Some(Diagnosis {
        namespace: ns.to_string(),
        workload: w,
        pod: String::new(),
        pods: Vec::new(),
        container,
        role: Role::Main,
        status: "Failed".into(),
        restarts: 0,
        exit: None,
        backoff: None,
        causes: vec![cause],
        remedies,
        logs: None,
        events: event_briefs,
        node: None,
        root: None,
    })
}

fn plural(n: i32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use crate::diagnose::{Query, diagnose};
    use crate::testing::{self, scenario};
    use crate::verdict::CauseId;

    #[test]
    fn a_failed_job_whose_pods_are_gone_is_still_reported() {
        let state = scenario("job-pods-gone");
        assert!(state.pods.is_empty());
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert_eq!(report.diagnoses.len(), 1);
        let d = &report.diagnoses[0];
        assert_eq!(d.workload.to_string(), "job/export");
        assert_eq!(d.top().id, CauseId::JobFailed);
        assert!(d.top().summary.contains("BackoffLimitExceeded"));
        assert!(
            d.top().summary.contains("2 of its pods failed"),
            "{}",
            d.top().summary
        );
        assert!(
            d.top()
                .evidence
                .iter()
                .any(|e| e.source.starts_with("event Warning BackoffLimitExceeded"))
        );
        assert!(d.pods.is_empty());
    }

    #[test]
    fn a_job_that_has_not_failed_or_still_has_pods_is_not_reported_here() {
        let mut state = scenario("job-pods-gone");
        for c in state.jobs[0]
            .status
            .as_mut()
            .unwrap()
            .conditions
            .iter_mut()
            .flatten()
        {
            c.status = "False".into();
        }
        assert!(
            diagnose(&state, &Query::default(), testing::now(&state))
                .diagnoses
                .is_empty()
        );
        // The job-fails scenario keeps its failed pods: they are diagnosed, with their logs.
        let state = scenario("job-fails");
        let report = diagnose(&state, &Query::default(), testing::now(&state));
        assert!(
            report
                .diagnoses
                .iter()
                .all(|d| d.top().id != CauseId::JobFailed)
        );
    }

    /// The Job of job-fails as the API server returned it, created again: what the user wrote
    /// stays, what the server set or generated goes.
    #[test]
    fn a_rerun_job_keeps_what_the_user_wrote_and_drops_what_the_server_set() {
        let state = scenario("job-fails");
        let job = &state.jobs[0];
        let labels = |j: &k8s_openapi::api::batch::v1::Job| {
            j.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .clone()
                .unwrap()
        };
        assert!(labels(job).contains_key("batch.kubernetes.io/controller-uid"));
        let again = super::rerun(job);
        let m = &again.metadata;
        assert_eq!(m.uid, None);
        assert_eq!(m.resource_version, None);
        assert_eq!(m.creation_timestamp, None);
        assert_eq!(m.managed_fields, None);
        assert_eq!(again.status, None);
        let spec = again.spec.as_ref().unwrap();
        assert_eq!(spec.selector, None);
        for l in super::CONTROLLER_LABELS {
            assert!(!labels(&again).contains_key(l), "{l}");
            assert!(!m.labels.as_ref().unwrap().contains_key(l), "{l}");
        }
        assert_eq!(
            labels(&again).get("app").map(String::as_str),
            Some("report")
        );
        assert_eq!(m.name, job.metadata.name);
        assert_eq!(m.namespace, job.metadata.namespace);
        assert_eq!(m.annotations, job.metadata.annotations);
        let old = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, old.backoff_limit);
        assert_eq!(spec.template.spec, old.template.spec);
    }

    /// A selector the user wrote (manualSelector) is theirs: kept, with its labels.
    #[test]
    fn a_manual_selector_is_kept() {
        let state = scenario("job-fails");
        let mut job = state.jobs[0].clone();
        job.spec.as_mut().unwrap().manual_selector = Some(true);
        let again = super::rerun(&job);
        assert_eq!(
            again.spec.as_ref().unwrap().selector,
            job.spec.as_ref().unwrap().selector
        );
        assert_eq!(
            again.spec.as_ref().unwrap().template.metadata,
            job.spec.as_ref().unwrap().template.metadata
        );
        assert_eq!(again.metadata.uid, None);
    }

    /// The remedy a user pastes: the paths `rerun` strips, as `jq` writes them (run on a live Job
    /// and compared with `rerun` in `e2e.rs`, `retry_re_creates_a_failed_job`).
    #[test]
    fn the_remedy_pipeline_strips_what_rerun_strips() {
        let line = crate::shell::render(&super::rerun_script("report", "job-fails"));
        let labels = r#"["batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name"]"#;
        assert_eq!(
            line,
            format!(
                "kubectl get job report -n job-fails -o json | jq 'del(.status, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp, .metadata.managedFields, .metadata.generation) | if .spec.manualSelector then . else del(.spec.selector, .metadata.labels{labels}, .spec.template.metadata.labels{labels}) end' | kubectl replace --force -f -"
            )
        );
    }
}
