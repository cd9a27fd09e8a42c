//! Aggressive probes: a liveness (or startup) probe that kills an app before it is up.

use k8s_openapi::api::core::v1::{Container, ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
    // The kubelet's events are the proof, but they do not last: an hour by default, and a crash
    // loop's repeats are dropped by its spam filter long before that. Without them, a run that
    // ended exactly when the probe would have killed it, with a log that says nothing of a crash,
    // tells the same story with less certainty.
    let (by_startup, timed) = if killing.is_empty() {
        match killed_on_time(s) {
            Some(t) => (t.by_startup, Some(t)),
            None => return Vec::new(),
        }
    } else {
        let by_startup = killing.iter().any(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("startup probe"))
        });
        (by_startup, None)
    };
    let id = CauseId::LivenessProbeKill;
    let startup = s.spec.startup_probe.as_ref();
    let liveness = s.spec.liveness_probe.as_ref();
    let probe = if by_startup { startup } else { liveness };
    let which = if by_startup { "startup" } else { "liveness" };
    if let Some(mismatch) = probe.and_then(|p| port_mismatch(s.spec, p)) {
        let mut f = wrong_port(s, which, probe, &mismatch, &killing, &unhealthy);
        if let Some(t) = &timed {
            t.qualify(s, &mut f.cause);
        }
        return vec![f];
    }
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
    if let Some(t) = &timed {
        t.qualify(s, &mut cause);
    }
    vec![Finding {
        about: About::Container,
        cause,
        remedies: remedies(s, liveness, startup, ran, by_startup),
    }]
}

/// A run whose end matches the moment a probe kills: the evidence when the kubelet's events are
/// gone.
struct KilledOnTime {
    by_startup: bool,
    ran: f64,
    /// When the probe kills it, in seconds from the start: promptly if the app exits on SIGTERM,
    /// or a grace period later if it does not.
    windows: [(i64, i64); 2],
}

impl KilledOnTime {
    /// Medium confidence, the summary says why, the timing is the evidence.
    fn qualify(&self, s: &Subject, cause: &mut crate::verdict::Cause) {
        cause.confidence = Confidence::Medium;
        cause.summary.push_str(
            " (inferred from the timing: no event of the kill is left, the kubelet's events expire)",
        );
        let [(a, b), (c, d)] = self.windows;
        cause.evidence.push(s.field(
            "lastState.terminated",
            format!(
                "ran {}, when the {} probe kills it ({a}-{b}s from the start, or {c}-{d}s if the app ignores SIGTERM)",
                human_secs(self.ran),
                if self.by_startup { "startup" } else { "liveness" },
            ),
        ));
    }
}

/// Whether the crashed run ended when the container's probe would have killed it, for a
/// long-running container whose log says nothing of a crash. The startup probe decides when
/// there is one (liveness checks start only after it passes, at no time a run's length shows).
fn killed_on_time(s: &Subject) -> Option<KilledOnTime> {
    if !s.long_running() || !s.scan.errors.is_empty() || !s.scan.signatures.is_empty() {
        return None;
    }
    let run = s.last_run()?;
    if matches!(
        run.reason.as_deref(),
        Some("OOMKilled" | "StartError" | "ContainerCannotRun")
    ) {
        return None;
    }
    let ran = s.ran_for_secs()?;
    let (by_startup, p) = match (s.spec.startup_probe.as_ref(), s.spec.liveness_probe.as_ref()) {
        (Some(p), _) => (true, p),
        (None, Some(p)) => (false, p),
        (None, None) => return None,
    };
    let secs = |v: Option<i32>, default: i64| v.map_or(default, |v| i64::from(v.max(0)));
    let delay = secs(p.initial_delay_seconds, 0);
    let period = secs(p.period_seconds, 10).max(1);
    let threshold = secs(p.failure_threshold, 3).max(1);
    let timeout = secs(p.timeout_seconds, 1).max(1);
    let grace = p
        .termination_grace_period_seconds
        .or_else(|| s.pod.spec.as_ref()?.termination_grace_period_seconds)
        .map_or(30, |g| g.max(0));
    // The first check comes up to a period after the delay (the prober ticks on its own clock);
    // the kill on the threshold-th failure, after its timeout. Times have whole seconds.
    let first = delay.saturating_add(period.saturating_mul(threshold - 1));
    let last = first.saturating_add(period).saturating_add(timeout);
    let prompt = (first.saturating_sub(1), last.saturating_add(1));
    let late = (
        prompt.0.saturating_add(grace),
        prompt.1.saturating_add(grace),
    );
    let fits = |(a, b): (i64, i64)| (a as f64) <= ran && ran <= b as f64;
    (fits(prompt) || fits(late)).then_some(KilledOnTime {
        by_startup,
        ran,
        windows: [prompt, late],
    })
}

/// A probe aimed at a port the container does not declare: audit's `probe-port-not-exposed` and
/// diagnose's `probe-wrong-port` share this one reading of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMismatch {
    /// A named port no containerPort declares: the probe cannot run at all.
    UnknownName(String),
    /// A number that is none of the declared ports (when some are declared): most likely a typo.
    Undeclared { port: i32, declared: Vec<i32> },
}

impl PortMismatch {
    /// "probes port 80, but the container declares only 8080", after the probe's name.
    pub fn describe(&self, which: &str) -> String {
        match self {
            PortMismatch::UnknownName(name) => {
                format!("{which} uses the port name {name:?}, which no containerPort declares")
            }
            PortMismatch::Undeclared { port, declared } => format!(
                "{which} probes port {port}, but the container declares only {}",
                declared
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The port a probe connects to, for HTTP, TCP and gRPC probes.
pub fn probe_port(p: &Probe) -> Option<IntOrString> {
    if let Some(h) = &p.http_get {
        return Some(h.port.clone());
    }
    if let Some(t) = &p.tcp_socket {
        return Some(t.port.clone());
    }
    p.grpc.as_ref().map(|g| IntOrString::Int(g.port))
}

/// Whether `probe` of `container` aims at a port the container does not declare.
pub fn port_mismatch(container: &Container, probe: &Probe) -> Option<PortMismatch> {
    let ports = container.ports.as_deref().unwrap_or_default();
    match probe_port(probe)? {
        IntOrString::String(name) if !ports.iter().any(|p| p.name.as_deref() == Some(&name)) => {
            Some(PortMismatch::UnknownName(name))
        }
        IntOrString::Int(n) if !ports.is_empty() && !ports.iter().any(|p| p.container_port == n) => {
            Some(PortMismatch::Undeclared {
                port: n,
                declared: ports.iter().map(|p| p.container_port).collect(),
            })
        }
        _ => None,
    }
}

/// `probe` aimed at the one TCP port the container declares, when it declares exactly one.
pub fn at_declared_port(probe: &Probe, ports: &[ContainerPort]) -> Option<Probe> {
    let tcp: Vec<&ContainerPort> = ports
        .iter()
        .filter(|p| p.protocol.as_deref().is_none_or(|x| x == "TCP"))
        .collect();
    let [only] = tcp.as_slice() else {
        return None;
    };
    let mut p = probe.clone();
    let port = IntOrString::Int(only.container_port);
    if let Some(h) = p.http_get.as_mut() {
        h.port = port;
    } else if let Some(t) = p.tcp_socket.as_mut() {
        t.port = port;
    } else if let Some(g) = p.grpc.as_mut() {
        g.port = only.container_port;
    } else {
        return None;
    }
    Some(p)
}

/// The probe that kills the container aims at a port it does not declare: no start-up time helps,
/// the fix is the probe's port.
fn wrong_port(
    s: &Subject,
    which: &str,
    probe: Option<&Probe>,
    mismatch: &PortMismatch,
    killing: &[&k8s_openapi::api::core::v1::Event],
    unhealthy: &[&k8s_openapi::api::core::v1::Event],
) -> Finding {
    let id = CauseId::ProbeWrongPort;
    let field = format!("{which}Probe");
    let mut cause = Cause::new(
        id,
        Confidence::High,
        format!(
            "the {which} probe checks a port the app does not serve ({}), so it fails however long the app runs and the kubelet kills it",
            mismatch.describe(&field)
        ),
    );
    if let Some(e) = unhealthy.last() {
        cause.evidence.push(s.event_evidence(e));
    }
    if let Some(e) = killing.last() {
        cause.evidence.push(s.event_evidence(e));
    }
    if let Some(p) = probe {
        cause
            .evidence
            .push(s.spec_evidence(&format!(".{field}"), describe(p)));
    }
    let declared: Vec<String> = s
        .spec
        .ports
        .iter()
        .flatten()
        .map(|p| match &p.name {
            Some(n) => format!("{} ({n})", p.container_port),
            None => p.container_port.to_string(),
        })
        .collect();
    cause.evidence.push(s.spec_evidence(
        ".ports",
        if declared.is_empty() {
            "no port declared".to_string()
        } else {
            format!("declares {}", declared.join(", "))
        },
    ));
    cause.evidence.extend(s.termination_evidence());
    let ports = s.spec.ports.as_deref().unwrap_or_default();
    let fixed = probe.and_then(|p| at_declared_port(p, ports));
    let patchable = matches!(
        s.workload.kind,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
    );
    let remedy = match fixed {
        Some(p) => {
            let port = probe_port(&p)
                .map(|x| port_text(&x))
                .unwrap_or_default();
            Remedy::fix(
                id,
                format!("point the {field} at the declared port {port}"),
                s.settable().filter(|_| patchable).map(|w| {
                    s.kubectl(&["patch"], w)
                        .flag_value("--type", "strategic")
                        .flag_value("-p", container_patch(s.container(), &field, &p))
                        .into()
                }),
            )
        }
        None => Remedy::fix(
            id,
            format!("point the {field} at a port the app listens on, and declare it under ports"),
            None,
        ),
    };
    Finding {
        about: About::Container,
        cause,
        remedies: vec![remedy],
    }
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

fn port_text(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
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
    use crate::state::ClusterState;
    use crate::testing::{self, cites, finding, scenario};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn a_liveness_probe_on_an_undeclared_port_is_pointed_at_the_declared_one() {
        let state = scenario("liveness-wrong-port");
        assert_eq!(
            testing::ids(&state, detect),
            [(CauseId::ProbeWrongPort, Confidence::High)]
        );
        let f = finding(&state, detect, CauseId::ProbeWrongPort);
        assert!(cites(&f, "httpGet /:80,"));
        assert!(cites(&f, "declares 8080 (http)"));
        assert!(cites(&f, "connection refused"), "{:#?}", f.cause.evidence);
        assert!(
            f.cause
                .summary
                .contains("livenessProbe probes port 80, but the container declares only 8080"),
            "{}",
            f.cause.summary
        );
        let fix = f.remedies[0].command().unwrap();
        assert!(fix.contains(r#""livenessProbe":{"#), "{fix}");
        assert!(fix.contains(r#""port":8080"#), "{fix}");
        assert!(!fix.contains("startupProbe"), "{fix}");
    }

    #[test]
    fn a_probe_on_the_declared_port_that_kills_is_a_start_up_story() {
        let mut state = scenario("liveness-wrong-port");
        let probe = testing::container(&mut state).liveness_probe.as_mut().unwrap();
        probe.http_get.as_mut().unwrap().port = IntOrString::Int(8080);
        let f = finding(&state, detect, CauseId::LivenessProbeKill);
        assert!(cites(&f, "httpGet /:8080,"));
        assert!(f.cause.summary.contains("there is no startupProbe"));
        let fix = f.remedies[0].command().unwrap();
        assert!(fix.contains("startupProbe"), "{fix}");
    }

    #[test]
    fn a_named_port_no_container_port_declares() {
        let mut state = scenario("liveness-wrong-port");
        let c = testing::container(&mut state);
        c.liveness_probe.as_mut().unwrap().http_get.as_mut().unwrap().port =
            IntOrString::String("metrics".into());
        let f = finding(&state, detect, CauseId::ProbeWrongPort);
        assert!(f.cause.summary.contains(r#"the port name "metrics""#));
        assert!(f.remedies[0].command().unwrap().contains(r#""port":8080"#));
    }

    /// The scenarios with every event of the pod gone, as a crash loop older than the apiserver's
    /// event TTL (an hour) is read.
    fn events_expired(name: &str) -> ClusterState {
        let mut state = scenario(name);
        let uid = testing::pod(&mut state).metadata.uid.clone();
        state
            .events
            .retain(|e| e.involved_object.uid.is_none() || e.involved_object.uid != uid);
        state
    }

    #[test]
    fn without_events_a_run_that_ends_when_the_probe_kills_is_still_the_probe() {
        // Slow start: killed 19 s in, the probe allows 5 + 5 x 3 and the app exits on SIGTERM.
        let state = events_expired("liveness-slow-start");
        assert_eq!(
            testing::ids(&state, detect),
            [(CauseId::LivenessProbeKill, Confidence::Medium)]
        );
        let f = finding(&state, detect, CauseId::LivenessProbeKill);
        assert!(f.cause.summary.contains("inferred from the timing"), "{}", f.cause.summary);
        assert!(cites(&f, "ran 19s, when the liveness probe kills it"), "{:#?}", f.cause.evidence);
        assert!(f.remedies[0].command().unwrap().contains("startupProbe"));

        // Wrong port: python ignores SIGTERM, killed 30 s (the grace period) after the probe gave
        // up; the port is still the story.
        let state = events_expired("liveness-wrong-port");
        assert_eq!(
            testing::ids(&state, detect),
            [(CauseId::ProbeWrongPort, Confidence::Medium)]
        );
        let f = finding(&state, detect, CauseId::ProbeWrongPort);
        assert!(cites(&f, "if the app ignores SIGTERM"), "{:#?}", f.cause.evidence);
        assert!(f.remedies[0].command().unwrap().contains(r#""port":8080"#));
    }

    #[test]
    fn without_events_a_run_of_another_length_is_not_the_probe() {
        let mut state = events_expired("liveness-slow-start");
        let run = testing::last_run(&mut state);
        let started = run.started_at.clone().unwrap().0;
        run.finished_at = Some(Time(started + jiff::SignedDuration::from_secs(120)));
        assert!(testing::run(&state, detect).is_empty());
    }

    #[test]
    fn without_events_a_log_that_says_why_is_not_the_probe() {
        let mut state = events_expired("liveness-slow-start");
        testing::log(&mut state)
            .text
            .push_str("panic: runtime error: index out of range [3] with length 3\n");
        assert!(testing::run(&state, detect).is_empty());
    }

    #[test]
    fn without_events_an_oom_kill_is_not_the_probe() {
        let mut state = events_expired("liveness-slow-start");
        testing::last_run(&mut state).reason = Some("OOMKilled".into());
        assert!(testing::run(&state, detect).is_empty());
    }

    #[test]
    fn no_kill_by_a_probe_no_finding() {
        let mut state = scenario("liveness-wrong-port");
        state
            .events
            .retain(|e| e.reason.as_deref() != Some("Killing"));
        testing::container(&mut state).liveness_probe = None;
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
