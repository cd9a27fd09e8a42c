//! Aggressive probes: a liveness (or startup) probe that kills an app before it is up.

use k8s_openapi::api::core::v1::Probe;

use crate::subject::{About, Finding, Subject, container_patch, human_secs};
use crate::verdict::{Cause, CauseId, Confidence, Remedy};
use crate::workload::WorkloadKind;

pub fn detect(s: &Subject) -> Vec<Finding> {
    let killing: Vec<_> = s
        .container_events(&["Killing"])
        .into_iter()
        .filter(|e| {
            e.message.as_deref().is_some_and(|m| {
                m.contains("failed liveness probe") || m.contains("failed startup probe")
            })
        })
        .collect();
    let unhealthy: Vec<_> = s
        .container_events(&["Unhealthy"])
        .into_iter()
        .filter(|e| {
            e.message.as_deref().is_some_and(|m| {
                m.starts_with("Liveness probe failed") || m.starts_with("Startup probe failed")
            })
        })
        .collect();
    if killing.is_empty() {
        return Vec::new();
    }
    let id = CauseId::LivenessProbeKill;
    let startup = s.spec.startup_probe.as_ref();
    let liveness = s.spec.liveness_probe.as_ref();
    let by_startup = killing.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.contains("startup probe"))
    });
    let probe = if by_startup { startup } else { liveness };
    let which = if by_startup { "startup" } else { "liveness" };
    let budget = probe.map(budget_secs);
    let ran = s.ran_for_secs();
    let mut summary = format!("the {which} probe kills the container before the app is ready");
    if let (Some(b), Some(r)) = (budget, ran) {
        summary.push_str(&format!(" (probe budget {b}s, it ran {})", human_secs(r)));
    }
    if startup.is_none() && !by_startup {
        summary.push_str("; there is no startupProbe");
    }
    let mut cause = Cause::new(id, Confidence::High, summary);
    if let Some(e) = killing.last() {
        cause.evidence.push(s.event_evidence(e));
    }
    if let Some(e) = unhealthy.last() {
        cause.evidence.push(s.event_evidence(e));
    }
    if let Some(p) = probe {
        cause
            .evidence
            .push(s.spec_evidence(&format!(".{which}Probe"), describe(p)));
    }
    cause.evidence.extend(s.termination_evidence());
    vec![Finding {
        about: About::Container,
        cause,
        remedies: remedies(s, liveness, startup, ran, by_startup),
    }]
}

/// Seconds a probe tolerates failure from container start: initialDelay + period x failureThreshold.
pub fn budget_secs(p: &Probe) -> i64 {
    let delay = p.initial_delay_seconds.unwrap_or(0) as i64;
    let period = p.period_seconds.unwrap_or(10) as i64;
    let threshold = p.failure_threshold.unwrap_or(3) as i64;
    delay + period * threshold
}

pub fn describe(p: &Probe) -> String {
    let handler = if let Some(h) = p.http_get.as_ref() {
        format!(
            "httpGet {}:{}",
            h.path.as_deref().unwrap_or("/"),
            port_text(&h.port)
        )
    } else if let Some(t) = p.tcp_socket.as_ref() {
        format!("tcpSocket :{}", port_text(&t.port))
    } else if let Some(e) = p.exec.as_ref() {
        format!(
            "exec {}",
            e.command.as_deref().unwrap_or_default().join(" ")
        )
    } else if p.grpc.is_some() {
        "grpc".into()
    } else {
        "no handler".into()
    };
    format!(
        "{handler}, initialDelaySeconds {}, periodSeconds {}, failureThreshold {}, timeoutSeconds {} (budget {}s)",
        p.initial_delay_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(10),
        p.failure_threshold.unwrap_or(3),
        p.timeout_seconds.unwrap_or(1),
        budget_secs(p)
    )
}

fn port_text(p: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match p {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

/// A startupProbe that gives the app room: the same check as the liveness probe, with a budget of
/// at least 3x what it was allowed so far and never under 2 minutes.
fn remedies(
    s: &Subject,
    liveness: Option<&Probe>,
    startup: Option<&Probe>,
    ran: Option<f64>,
    by_startup: bool,
) -> Vec<Remedy> {
    let id = CauseId::LivenessProbeKill;
    let base = if by_startup { startup } else { liveness };
    let Some(base) = base else { return Vec::new() };
    let allowed = budget_secs(base).max(ran.unwrap_or(0.0).ceil() as i64);
    let want = (allowed * 3).max(120);
    let period: i64 = 10;
    let threshold = (want + period - 1) / period;
    let mut probe = base.clone();
    probe.initial_delay_seconds = None;
    probe.period_seconds = Some(period as i32);
    probe.failure_threshold = Some(threshold as i32);
    probe.success_threshold = None;
    let title = format!(
        "add a startupProbe that allows {}s to start ({threshold} x {period}s); liveness checks begin only once it passes",
        threshold * period
    );
    let mut out = Vec::new();
    let patchable = matches!(
        s.workload.kind,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
    );
    let cmd = s.settable().filter(|_| patchable).map(|w| {
        let patch = container_patch(s.container(), "startupProbe", &probe);
        s.kubectl(&["patch"], w)
            .flag_value("--type", "strategic")
            .flag_value("-p", patch)
            .into()
    });
    out.push(Remedy::fix(id, title, cmd));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, scenario};

    #[test]
    fn a_liveness_probe_on_the_wrong_port_kills_the_container() {
        let state = scenario("liveness-wrong-port");
        let f = finding(&state, detect, CauseId::LivenessProbeKill);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "httpGet /:80,"));
        assert!(f.cause.summary.contains("there is no startupProbe"));
        let fix = f.remedies[0].command().unwrap();
        assert!(fix.contains("startupProbe"), "{fix}");
    }

    #[test]
    fn the_probe_cited_is_the_one_in_the_spec() {
        let mut state = scenario("liveness-wrong-port");
        let probe = testing::container(&mut state).liveness_probe.as_mut().unwrap();
        probe.http_get.as_mut().unwrap().port =
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080);
        let f = finding(&state, detect, CauseId::LivenessProbeKill);
        assert!(cites(&f, "httpGet /:8080,"));
    }

    #[test]
    fn no_kill_by_a_probe_no_finding() {
        let mut state = scenario("liveness-wrong-port");
        state
            .events
            .retain(|e| e.reason.as_deref() != Some("Killing"));
        assert!(testing::run(&state, detect).is_empty());
        assert!(testing::run(&testing::healthy(), detect).is_empty());
    }

    #[test]
    fn budget_is_delay_plus_period_times_threshold() {
        let mut state = scenario("liveness-wrong-port");
        let probe = testing::container(&mut state).liveness_probe.clone().unwrap();
        assert_eq!(budget_secs(&probe), 3 + 3 * 2);
    }
}
