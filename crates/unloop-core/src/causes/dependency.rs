//! Application and dependency failures: a dependency that refuses connections or does not resolve.

use k8s_openapi::api::core::v1::Service;

use crate::causes::config::retry_now;
use crate::shell::Cmd;
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};

pub fn detect(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(hit) = s.scan.dns.first() {
        out.push(dns(s, &hit.value, &hit.line));
    } else if let Some(hit) = s.scan.refused.first() {
        out.push(refused(
            s,
            hit.value.host.as_deref(),
            hit.value.port,
            &hit.line,
        ));
    }
    out
}

/// The Service a host name or IP designates, searched in the pod's namespace (or the one the name
/// carries: `db.other`, `db.other.svc.cluster.local`).
fn service_for<'a>(s: &'a Subject, host: &str) -> (String, String, Option<&'a Service>) {
    let parts: Vec<&str> = host.split('.').collect();
    if host.parse::<std::net::IpAddr>().is_ok() {
        let svc =
            s.state.services.iter().find(|svc| {
                svc.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref()) == Some(host)
            });
        let ns = svc
            .and_then(|x| x.metadata.namespace.clone())
            .unwrap_or_else(|| s.namespace.to_string());
        let name = svc
            .and_then(|x| x.metadata.name.clone())
            .unwrap_or_else(|| host.to_string());
        return (ns, name, svc);
    }
    let name = parts[0].to_string();
    let ns = match parts.get(1) {
        Some(n) if *n != "svc" => n.to_string(),
        _ => s.namespace.to_string(),
    };
    let svc = s.state.services.iter().find(|x| {
        x.metadata.namespace.as_deref() == Some(ns.as_str())
            && x.metadata.name.as_deref() == Some(name.as_str())
    });
    (ns, name, svc)
}

/// Ready endpoints of a Service, from its EndpointSlices.
fn ready_endpoints(s: &Subject, ns: &str, name: &str) -> (usize, usize) {
    let mut ready = 0;
    let mut total = 0;
    for slice in s.state.endpoint_slices.iter().filter(|e| {
        e.metadata.namespace.as_deref() == Some(ns)
            && e.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .map(String::as_str)
                == Some(name)
    }) {
        for ep in slice.endpoints.iter().flatten() {
            total += 1;
            if ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                ready += 1;
            }
        }
    }
    (ready, total)
}

/// The env var that holds a host name, so the remedy can point at it.
fn env_holding<'a>(s: &'a Subject, host: &str) -> Option<&'a str> {
    s.spec
        .env
        .iter()
        .flatten()
        .find(|e| e.value.as_deref().is_some_and(|v| v.contains(host)))
        .map(|e| e.name.as_str())
}

fn selector_text(svc: &Service) -> Option<String> {
    let sel = svc.spec.as_ref()?.selector.as_ref()?;
    Some(
        sel.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn refused(s: &Subject, host: Option<&str>, port: Option<u16>, line: &str) -> Finding {
    let id = CauseId::DependencyUnreachable;
    let target = match (host, port) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "a dependency".to_string(),
    };
    let mut cause = Cause::new(
        id,
        Confidence::Medium,
        format!("the app exits because {target} refuses connections"),
    )
    .with(s.log_evidence(line));
    let mut remedies = Vec::new();
    if let Some(h) = host {
        let (ns, name, svc) = service_for(s, h);
        if let Some(var) = env_holding(s, h) {
            cause
                .evidence
                .push(s.spec_evidence(".env", format!("{var} points at {h}")));
        }
        match svc {
            Some(svc) if s.state.read_services() => {
                let (ready, total) = ready_endpoints(s, &ns, &name);
                let ip = svc
                    .spec
                    .as_ref()
                    .and_then(|x| x.cluster_ip.clone())
                    .unwrap_or_default();
                cause.evidence.push(Evidence::new(
                    EvidenceKind::Lookup,
                    format!("service {ns}/{name}"),
                    format!("exists ({ip}), {ready} ready of {total} endpoints"),
                ));
                if ready == 0 {
                    cause.confidence = Confidence::High;
                    cause.summary = format!(
                        "the app exits because its dependency, Service {name}, has no ready endpoints (connection refused)"
                    );
                    let near = near_matches(s, &ns, svc);
                    if let Some(first) = near.first() {
                        cause.summary.push_str(&format!(
                            "; its selector matches no pod, but {} almost match it ({})",
                            near.iter()
                                .map(|n| format!("the pods of {}", n.workload))
                                .collect::<Vec<_>>()
                                .join(", "),
                            first.differences.join(", ")
                        ));
                    }
                    for n in &near {
                        cause.evidence.push(Evidence::new(
                            EvidenceKind::Lookup,
                            format!("pod/{} ({})", n.pod, n.workload),
                            format!(
                                "labels {}: almost match selector {} ({})",
                                n.labels,
                                selector_text(svc).unwrap_or_default(),
                                n.differences.join(", ")
                            ),
                        ));
                    }
                    if let Some(first) = near.first() {
                        let mut selector = serde_json::Map::new();
                        // A merge patch removes the keys the pods do not carry (null).
                        for k in svc
                            .spec
                            .as_ref()
                            .and_then(|x| x.selector.as_ref())
                            .into_iter()
                            .flat_map(|x| x.keys())
                        {
                            if !first.selector.contains_key(k) {
                                selector.insert(k.clone(), serde_json::Value::Null);
                            }
                        }
                        for (k, v) in &first.selector {
                            selector.insert(k.clone(), v.clone().into());
                        }
                        let patch = serde_json::json!({"spec": {"selector": selector}}).to_string();
                        remedies.push(Remedy::fix(
                            id,
                            format!(
                                "if {} is what Service {name} should reach, point the Service at its pods (selector {}); else label the right pods {}",
                                first.workload,
                                first
                                    .selector
                                    .iter()
                                    .map(|(k, v)| format!("{k}={v}"))
                                    .collect::<Vec<_>>()
                                    .join(","),
                                selector_text(svc).unwrap_or_default()
                            ),
                            Some(
                                Cmd::kubectl(&["patch", "service"])
                                    .operand(&name)
                                    .flag_value("-n", &ns)
                                    .flag_value("--type", "merge")
                                    .flag_value("-p", patch)
                                    .into(),
                            ),
                        ));
                    }
                    let sel = selector_text(svc);
                    remedies.push(Remedy::inspect(
                        id,
                        format!(
                            "start or fix the pods behind Service {name}{}",
                            sel.as_ref()
                                .map(|x| format!(" (selector {x})"))
                                .unwrap_or_default()
                        ),
                        Some(match sel {
                            Some(sel) => Cmd::kubectl(&["get", "pods"])
                                .flag_value("-n", &ns)
                                .flag_value("-l", sel)
                                .flag_value("-o", "wide")
                                .into(),
                            None => Cmd::kubectl(&["describe", "service"])
                                .operand(&name)
                                .flag_value("-n", &ns)
                                .into(),
                        }),
                    ));
                } else {
                    remedies.push(Remedy::inspect(
                        id,
                        format!("Service {name} has ready endpoints: check the port the app dials ({}) against the Service's ports", port.map(|p| p.to_string()).unwrap_or("?".into())),
                        Some(
                            Cmd::kubectl(&["get", "service"])
                                .operand(&name)
                                .flag_value("-n", &ns)
                                .flag_value("-o", "wide")
                                .into(),
                        ),
                    ));
                }
            }
            None if s.state.read_services() && h.parse::<std::net::IpAddr>().is_err() => {
                cause.evidence.push(Evidence::new(
                    EvidenceKind::Lookup,
                    format!("service {ns}/{name}"),
                    "does not exist",
                ));
            }
            _ => {}
        }
    }
    remedies.push(Remedy::fix(
        id,
        "make the app wait for its dependency instead of exiting (retry with backoff, or an init container that waits)",
        None,
    ));
    remedies.push(retry_now(s, id));
    let about = host
        .and_then(|h| service_about(s, h))
        .unwrap_or(About::Container);
    Finding { cause, remedies, about }
}

/// The Service a host designates, as what a finding is about: a Service found by its cluster IP,
/// or a name in the cluster's own form (`db`, `db.ns`, `db.ns.svc...`), never an outside host.
fn service_about(s: &Subject, host: &str) -> Option<About> {
    let (namespace, name, svc) = service_for(s, host);
    let in_cluster = match host.parse::<std::net::IpAddr>() {
        Ok(_) => svc.is_some(),
        Err(_) => {
            let labels = host.split('.').count();
            labels <= 2 || host.split('.').nth(2) == Some("svc")
        }
    };
    (in_cluster && !name.is_empty()).then_some(About::Service { namespace, name })
}

fn dns(s: &Subject, host: &str, line: &str) -> Finding {
    let id = CauseId::DependencyDns;
    let shown = if host.is_empty() {
        "a dependency's name".to_string()
    } else {
        host.to_string()
    };
    let mut cause = Cause::new(
        id,
        Confidence::Medium,
        format!("the app exits because {shown} does not resolve (DNS)"),
    )
    .with(s.log_evidence(line));
    let mut remedies = Vec::new();
    if !host.is_empty() {
        let (ns, name, svc) = service_for(s, host);
        let var = env_holding(s, host);
        if let Some(var) = var {
            cause
                .evidence
                .push(s.spec_evidence(".env", format!("{var} points at {host}")));
        }
        if s.state.read_services() && s.state.covers(&ns) {
            match svc {
                None => {
                    cause.confidence = Confidence::High;
                    cause.summary = format!(
                        "the app exits because there is no Service named {name} in namespace {ns}, so {host} does not resolve"
                    );
                    let others: Vec<String> = s
                        .state
                        .services
                        .iter()
                        .filter(|x| x.metadata.namespace.as_deref() == Some(ns.as_str()))
                        .filter_map(|x| x.metadata.name.clone())
                        .collect();
                    let listed = if others.is_empty() {
                        "none".into()
                    } else {
                        others.join(", ")
                    };
                    cause.evidence.push(Evidence::new(
                        EvidenceKind::Lookup,
                        format!("service {ns}/{name}"),
                        format!("does not exist (Services in {ns}: {listed})"),
                    ));
                    if let Some(close) = others.iter().find(|o| similar(o, &name)) {
                        remedies.push(match (var, s.settable()) {
                            (Some(var), Some(w)) => Remedy::fix(
                                id,
                                format!("did you mean Service {close}? point {var} at it"),
                                Some(
                                    s.kubectl(&["set", "env"], w)
                                        .flag_value("-c", s.container())
                                        .operand(format!("{var}={close}"))
                                        .into(),
                                ),
                            ),
                            _ => Remedy::fix(id, format!("did you mean Service {close}?"), None),
                        });
                    }
                    remedies.push(Remedy::inspect(
                        id,
                        format!("deploy {name} (or its Service) in {ns}, or correct the host name the app uses"),
                        Some(Cmd::kubectl(&["get", "services"]).flag_value("-n", &ns).into()),
                    ));
                }
                Some(_) => {
                    cause.evidence.push(Evidence::new(
                        EvidenceKind::Lookup,
                        format!("service {ns}/{name}"),
                        "exists: the cluster DNS itself may be failing",
                    ));
                    remedies.push(Remedy::inspect(
                        id,
                        "check the cluster DNS pods",
                        Some(
                            Cmd::kubectl(&["get", "pods"])
                                .flag_value("-n", "kube-system")
                                .flag_value("-l", "k8s-app=kube-dns")
                                .into(),
                        ),
                    ));
                }
            }
        }
    }
    remedies.push(retry_now(s, id));
    let about = service_about(s, host).unwrap_or(About::Container);
    Finding { cause, remedies, about }
}

/// A pod that almost matches a Service's selector that matches nothing.
struct NearMatch {
    pod: String,
    workload: String,
    /// The pod's labels, `k=v,...`.
    labels: String,
    /// How each selector pair the pod misses differs: `orders-db is under component, not app`.
    differences: Vec<String>,
    /// The selector that would match this pod, pair by pair from the Service's.
    selector: std::collections::BTreeMap<String, String>,
}

/// Pods of `ns` that almost match the selector of `svc`: for each pair `k=v` of the selector, the
/// pod has it, or has the value `v` under another key, or a value of `k` one typo from `v`; at
/// least one pair is only almost there. One pod per workload, three workloads at most.
fn near_matches(s: &Subject, ns: &str, svc: &Service) -> Vec<NearMatch> {
    let Some(sel) = svc.spec.as_ref().and_then(|x| x.selector.as_ref()) else {
        return Vec::new();
    };
    if sel.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<NearMatch> = Vec::new();
    for pod in s
        .state
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
    {
        let Some(labels) = pod.metadata.labels.as_ref() else {
            continue;
        };
        let mut differences = Vec::new();
        let mut selector = std::collections::BTreeMap::new();
        let mut all = true;
        for (k, v) in sel {
            if labels.get(k) == Some(v) {
                selector.insert(k.clone(), v.clone());
            } else if let Some((other, _)) = labels.iter().find(|(lk, lv)| *lv == v && *lk != k) {
                differences.push(format!("{v} is under {other}, not {k}"));
                selector.insert(other.clone(), v.clone());
            } else if let Some(w) = labels.get(k).filter(|w| similar(w, v)) {
                differences.push(format!("{k}={w}, not {v}"));
                selector.insert(k.clone(), w.clone());
            } else {
                all = false;
                break;
            }
        }
        if !all || differences.is_empty() {
            continue;
        }
        let workload = crate::workload::of_pod(s.state, pod).to_string();
        if out.iter().any(|n| n.workload == workload) {
            continue;
        }
        out.push(NearMatch {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            workload,
            labels: labels
                .iter()
                .filter(|(k, _)| *k != "pod-template-hash")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            differences,
            selector,
        });
        if out.len() == 3 {
            break;
        }
    }
    out
}

/// Names one typo apart, or one a prefix of the other (`payments-db` vs `payments`).
fn similar(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a) || edit_distance(a, b) <= 2
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn a_refused_connection_names_the_service_behind_the_host() {
        let state = scenario("dependency-refused");
        let f = finding(&state, detect, CauseId::DependencyUnreachable);
        assert!(cites(&f, "connection refused"));
        assert!(cites(&f, "0 ready of 0 endpoints"));
    }

    #[test]
    fn an_empty_service_names_the_pods_that_almost_match_its_selector() {
        let state = scenario("node-no-endpoints");
        let f = finding(&state, detect, CauseId::DependencyUnreachable);
        assert!(
            f.cause
                .summary
                .contains("the pods of deploy/postgres almost match it (orders-db is under component, not app)"),
            "{}",
            f.cause.summary
        );
        assert!(cites(&f, "app=postgres,component=orders-db"));
        let fix = f
            .remedies
            .iter()
            .find_map(|r| r.command().filter(|c| c.contains("patch service")))
            .unwrap();
        assert!(
            fix.contains(r#"{"spec":{"selector":{"app":null,"component":"orders-db"}}}"#),
            "{fix}"
        );
        // Without the almost-matching pod, nothing is named.
        let mut state = scenario("node-no-endpoints");
        state
            .pods
            .retain(|p| !p.metadata.name.as_deref().unwrap_or_default().starts_with("postgres"));
        let f = finding(&state, detect, CauseId::DependencyUnreachable);
        assert!(!f.cause.summary.contains("almost match"));
    }

    #[test]
    fn a_name_that_does_not_resolve() {
        let state = scenario("dependency-dns");
        let f = finding(&state, detect, CauseId::DependencyDns);
        assert!(cites(&f, "does not exist"), "{:#?}", f.cause.evidence);
    }

    #[test]
    fn no_connection_error_no_dependency_finding() {
        let mut state = scenario("dependency-refused");
        testing::log(&mut state).text.clear();
        assert!(ids(&state, detect).is_empty());
        assert!(ids(&testing::healthy(), detect).is_empty());
    }
}
