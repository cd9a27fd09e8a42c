//! Probes: a startupProbe where a livenessProbe exists, enough start-up time, liveness distinct
//! from readiness, and probes on ports the container declares.

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use unloop_core::causes::probe::{
    at_declared_port, budget_secs, describe, port_mismatch, probe_port,
};
use unloop_core::status::Role;

use super::{Context, Subject, jvm, live, round_up};
use crate::check::{CheckId, Finding, Fix};
use crate::yaml::Yaml;

/// The period the recommended startup probes use.
const PERIOD: i64 = 10;

pub(crate) fn check(s: &Subject, ctx: &Context, out: &mut Vec<Finding>) {
    // Init containers have no probes; sidecars (restartPolicy Always) do.
    if s.role == Role::Init {
        return;
    }
    // A probe that kills a slow start (or a busy container) makes a crash loop only when the
    // kubelet restarts the container after the kill: its restartPolicyRules, its own
    // restartPolicy, else the pod's. A container that just ends, failed, gets only the port checks.
    if !s.restarted_after_kill() {
        return port_checks(s, out);
    }
    let c = s.container;
    let th = &ctx.config.thresholds;
    let is_jvm = jvm::is_jvm(c);
    let floor = i64::from(if is_jvm {
        th.jvm_start_budget_floor_seconds
    } else {
        th.start_budget_floor_seconds
    });
    let observed = ctx.observed.and_then(|o| live::start_to_ready_secs(s, o));

    if let (Some(liveness), None) = (c.liveness_probe.as_ref(), c.startup_probe.as_ref()) {
        let want = wanted_budget(budget_secs(liveness), floor, observed);
        let runtime = if is_jvm {
            "; JVM start-up (class loading, JIT, framework wiring) is slow and varies with CPU"
        } else {
            ""
        };
        out.push(s.finding(
            CheckId::StartupProbeMissing,
            format!(
                "livenessProbe ({}) runs from start-up and there is no startupProbe{runtime}",
                describe(liveness)
            ),
            startup_fix(s, liveness, want),
        ));
    }

    // The probe that decides whether a start is slow enough to kill: the startupProbe when there
    // is one (liveness waits for it), else the livenessProbe.
    let (which, probe) = match (c.startup_probe.as_ref(), c.liveness_probe.as_ref()) {
        (Some(p), _) => ("startupProbe", p),
        (None, Some(p)) => ("livenessProbe", p),
        (None, None) => return ready_checks(s, out),
    };
    let budget = budget_secs(probe);
    let observed_over = observed.filter(|o| (budget as f64) < *o);
    if budget < floor || observed_over.is_some() {
        let want = wanted_budget(budget, floor, observed);
        let why = match observed_over {
            Some(o) => format!("its pods took up to {o:.0}s from container start to Ready"),
            None => format!(
                "under the {floor}s floor{}",
                if is_jvm { " for JVM containers" } else { "" }
            ),
        };
        let message = format!(
            "{which} allows {budget}s to start ({} + {} x {}): {why}",
            probe.initial_delay_seconds.unwrap_or(0),
            probe.period_seconds.unwrap_or(10),
            probe.failure_threshold.unwrap_or(3),
        );
        let fix = if which == "startupProbe" {
            let mut p = probe.clone();
            let period = i64::from(p.period_seconds.unwrap_or(10)).max(1);
            let delay = i64::from(p.initial_delay_seconds.unwrap_or(0));
            p.failure_threshold =
                Some(((want - delay).max(period) + period - 1).div_euclid(period) as i32);
            Fix::with_yaml(
                format!("raise the startupProbe's failureThreshold so it allows {want}s"),
                s.patch(vec![("startupProbe", Yaml::of(&p))]),
            )
        } else {
            startup_fix(s, probe, want)
        };
        out.push(s.finding(CheckId::LivenessBudgetTooShort, message, fix));
    }
    ready_checks(s, out);
}

fn ready_checks(s: &Subject, out: &mut Vec<Finding>) {
    let c = s.container;
    if let (Some(l), Some(r)) = (c.liveness_probe.as_ref(), c.readiness_probe.as_ref())
        && handler(l) == handler(r)
        && has_handler(l)
    {
        out.push(s.finding(
                CheckId::LivenessEqualsReadiness,
                format!("livenessProbe and readinessProbe both check {}", handler_text(l)),
                Fix::text(
                    "make liveness answer only \"is this process stuck?\" (a cheap endpoint such as /livez that checks no dependency), \
                     keep dependency checks in readiness, or drop the livenessProbe",
                ),
            ));
    }
    port_checks(s, out);
}

/// Start-up time to recommend: three times what the probe allows now, twice the floor, twice the
/// slowest observed start, whichever is most, in whole periods.
fn wanted_budget(current: i64, floor: i64, observed: Option<f64>) -> i64 {
    let observed = observed.map(|o| (o * 2.0).ceil() as i64).unwrap_or(0);
    round_up((current * 3).max(floor * 2).max(observed), PERIOD)
}

/// A startupProbe with the liveness probe's check and `want` seconds to pass.
fn startup_fix(s: &Subject, liveness: &Probe, want: i64) -> Fix {
    let probe = Probe {
        exec: liveness.exec.clone(),
        http_get: liveness.http_get.clone(),
        tcp_socket: liveness.tcp_socket.clone(),
        grpc: liveness.grpc.clone(),
        period_seconds: Some(PERIOD as i32),
        failure_threshold: Some((want / PERIOD) as i32),
        ..Default::default()
    };
    Fix::with_yaml(
        format!(
            "add a startupProbe with the same check that allows {want}s ({} x {PERIOD}s); liveness checks begin once it passes",
            want / PERIOD
        ),
        s.patch(vec![("startupProbe", Yaml::of(&probe))]),
    )
}

fn has_handler(p: &Probe) -> bool {
    p.exec.is_some() || p.http_get.is_some() || p.tcp_socket.is_some() || p.grpc.is_some()
}

/// The probe's check without its timing.
fn handler(p: &Probe) -> Probe {
    Probe {
        exec: p.exec.clone(),
        http_get: p.http_get.clone(),
        tcp_socket: p.tcp_socket.clone(),
        grpc: p.grpc.clone(),
        ..Default::default()
    }
}

fn handler_text(p: &Probe) -> String {
    describe(p)
        .split(", initialDelaySeconds")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn port_checks(s: &Subject, out: &mut Vec<Finding>) {
    let c = s.container;
    let ports = c.ports.as_deref().unwrap_or_default();
    for (which, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(port) = probe.as_ref().and_then(probe_port) else {
            continue;
        };
        // A named port must be declared, or the probe cannot run at all; a number needs no
        // declaration, but when the container declares ports and this is none of them, it is
        // most likely a typo. Diagnose reads the same mismatch (`probe-wrong-port`).
        let mismatch = probe.as_ref().and_then(|p| port_mismatch(c, p));
        let problem = match mismatch {
            Some(m) => Some(m.describe(which)),
            None => udp_only(&port, ports).map(|udp| {
                format!(
                    "{which} is a {} probe on port {udp}, which the container declares only with protocol UDP: the kubelet probes over TCP, so the probe never succeeds",
                    probe.as_ref().map(kind_text).unwrap_or_default(),
                )
            }),
        };
        let Some(message) = problem else { continue };
        let fix = if udp_only(&port, ports).is_some() {
            Fix::text(format!(
                "point the {which} at a TCP port the container listens on (declared with protocol TCP, the default), or use an exec probe for a UDP-only server"
            ))
        } else {
            port_fix(s, which, probe.as_ref(), ports)
        };
        out.push(s.finding(CheckId::ProbePortNotExposed, message, fix));
    }
}

/// The port as the container declares it (`53` or `53 (dns)`), when every declaration of its
/// number is UDP. HTTP, TCP and gRPC probes all connect over TCP; a name stands for its number
/// (the kubelet probes the number), so `dns` on 53/UDP with 53/TCP declared as `dns-tcp` is fine.
fn udp_only(port: &IntOrString, ports: &[ContainerPort]) -> Option<String> {
    let named = match port {
        IntOrString::Int(n) => ports.iter().find(|p| p.container_port == *n),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str())),
    }?;
    ports
        .iter()
        .filter(|p| p.container_port == named.container_port)
        .all(|p| p.protocol.as_deref() == Some("UDP"))
        .then(|| match &named.name {
            Some(name) => format!("{} ({name})", named.container_port),
            None => named.container_port.to_string(),
        })
}

fn kind_text(p: &Probe) -> &'static str {
    if p.http_get.is_some() {
        "HTTP"
    } else if p.grpc.is_some() {
        "gRPC"
    } else {
        "TCP"
    }
}

fn port_fix(s: &Subject, which: &str, probe: Option<&Probe>, ports: &[ContainerPort]) -> Fix {
    let fixed = match (probe, ports) {
        (Some(probe), [_]) => at_declared_port(probe, ports),
        _ => None,
    };
    let Some(p) = fixed else {
        return Fix::text(format!(
            "point the {which} at a port the container listens on, and declare it under ports"
        ));
    };
    let port = probe_port(&p).map(|x| match x {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(n) => n,
    });
    Fix::with_yaml(
        format!("probe the declared port {}", port.unwrap_or_default()),
        s.patch(vec![(which, Yaml::of(&p))]),
    )
}
