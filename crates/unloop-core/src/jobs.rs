//! Jobs that failed and whose pods are gone: the Job's status conditions and events are then the
//! only record of the failure, and a report that looks only at pods would say nothing.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;

use crate::diagnose::{Diagnosis, EventBrief};
use crate::shell::Cmd;
use crate::state::ClusterState;
use crate::status::Role;
use crate::subject::{event_source, event_text, event_time};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};
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
        remedies.push(Remedy::fix(
            CauseId::JobFailed,
            "re-run the Job and diagnose its pods before they are removed; to keep failed pods for longer, give the Job a ttlSecondsAfterFinished and stop whatever deletes them",
            None,
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
}
