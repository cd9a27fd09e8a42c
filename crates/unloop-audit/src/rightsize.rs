//! Right-sizing: memory and CPU requests and limits from observed usage.
//!
//! The method (documented in docs/audit-checks.md, and at least as careful as krr's):
//! - memory: the maximum working set seen across the workload's pods x 1.15, and after an
//!   OOMKilled at least twice the limit it died at (the maximum seen is then a floor: the kill
//!   cut the growth short). Request = limit, rounded up to 64Mi, so the scheduler reserves what
//!   the container may use.
//! - CPU: the 95th percentile of the usage samples as the request, rounded up to 10m; no limit
//!   unless the CPU-limit policy requires one (then twice the request).
//! - Every recommendation states how many samples, over how long, from how many pods, it rests
//!   on; under a day of data it is a floor, not a verdict.
//!
//! Parsing of the metrics API (`PodMetricsList`) and Prometheus (`query_range` matrices) and the
//! Prometheus queries are here too, pure; fetching is `unloop_source::live`'s.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};
use unloop_core::quantity::{
    bytes, bytes_text as quantity, cores, cpu_round_up, cpu_text, round_up_tidy,
};

use crate::check::ObjectRef;
use crate::checks::Observed;
use crate::config::CpuLimitPolicy;
use crate::inventory::{Inventory, Workload};

/// Headroom over the maximum memory seen.
pub const MEMORY_MARGIN: f64 = 1.15;
/// After an OOM kill, at least this multiple of the limit it died at.
pub const OOM_FACTOR: u64 = 2;
pub const CPU_PERCENTILE: f64 = 95.0;
/// Less data than this makes a recommendation a floor.
pub const CONFIDENT_SPAN_SECS: f64 = 24.0 * 3600.0;

/// One usage sample of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub memory_bytes: Option<f64>,
    pub cpu_cores: Option<f64>,
}

#[derive(Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

#[derive(Deserialize)]
struct PodMetrics {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    timestamp: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Deserialize)]
struct ContainerMetrics {
    name: String,
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

/// The samples in a `metrics.k8s.io/v1beta1` PodMetricsList (or one PodMetrics).
pub fn parse_pod_metrics(json: &str) -> Result<Vec<Sample>, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("unreadable metrics API answer: {e}"))?;
    let items: Vec<PodMetrics> = if value.get("items").is_some() {
        serde_json::from_value::<PodMetricsList>(value)
            .map_err(|e| format!("unexpected PodMetricsList: {e}"))?
            .items
    } else {
        vec![serde_json::from_value(value).map_err(|e| format!("unexpected PodMetrics: {e}"))?]
    };
    let mut out = Vec::new();
    for item in items {
        let at = item
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_millisecond() as f64 / 1000.0)
            .unwrap_or(0.0);
        for c in item.containers {
            out.push(Sample {
                namespace: item.metadata.namespace.clone().unwrap_or_default(),
                pod: item.metadata.name.clone().unwrap_or_default(),
                container: c.name,
                at,
                memory_bytes: c
                    .usage
                    .get("memory")
                    .and_then(|q| bytes(q).ok())
                    .map(|b| b as f64),
                cpu_cores: c.usage.get("cpu").and_then(|q| cores(q).ok()),
            });
        }
    }
    Ok(out)
}

/// The samples of several reads of the metrics API, without repeats of the same scrape (a read
/// sooner than metrics-server's refresh answers the previous one again).
pub fn samples_from_pod_metrics_reads(reads: &[String]) -> Result<Vec<Sample>, String> {
    let mut out: Vec<Sample> = Vec::new();
    let mut seen = BTreeSet::new();
    for read in reads {
        for s in parse_pod_metrics(read)? {
            let key = (
                s.namespace.clone(),
                s.pod.clone(),
                s.container.clone(),
                s.at as i64,
            );
            if seen.insert(key) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// A PromQL string literal.
fn promql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The memory and CPU queries for one workload's containers.
pub fn prometheus_queries(w: &Workload) -> (String, String) {
    let selector = format!(
        "namespace={},pod=~{},container!=\"\",container!=\"POD\"",
        promql_string(&w.namespace),
        promql_string(&pod_regex(w))
    );
    (
        format!("max by (pod, container) (container_memory_working_set_bytes{{{selector}}})"),
        format!(
            "sum by (pod, container) (rate(container_cpu_usage_seconds_total{{{selector}}}[5m]))"
        ),
    )
}

/// The step of a range query over `history_secs`: Prometheus answers at most 11,000 points per
/// series.
pub fn prometheus_step(history_secs: i64) -> i64 {
    (history_secs / 10_000).max(60)
}

/// One series of a Prometheus `query_range` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct PromAnswer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<PromData>,
}

#[derive(Deserialize)]
struct PromData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<PromSeries>,
}

#[derive(Deserialize)]
struct PromSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// The series of a Prometheus `query_range` answer (a matrix).
pub fn parse_prometheus_matrix(json: &str) -> Result<Vec<Series>, String> {
    let a: PromAnswer =
        serde_json::from_str(json).map_err(|e| format!("unreadable Prometheus answer: {e}"))?;
    if a.status != "success" {
        return Err(format!(
            "Prometheus answered {}: {}",
            a.status,
            a.error.unwrap_or_default()
        ));
    }
    let data = a.data.ok_or("Prometheus answered without data")?;
    if data.result_type != "matrix" {
        return Err(format!(
            "expected a matrix from Prometheus, got {}",
            data.result_type
        ));
    }
    Ok(data
        .result
        .into_iter()
        .map(|s| Series {
            labels: s.metric,
            // Prometheus writes NaN and Inf as strings; they carry no usage.
            values: s
                .values
                .into_iter()
                .filter_map(|(t, v)| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .map(|x| (t, x))
                })
                .collect(),
        })
        .collect())
}

/// Samples from the memory and CPU matrices of one workload.
pub fn samples_from_series(namespace: &str, memory: &[Series], cpu: &[Series]) -> Vec<Sample> {
    let mut out = Vec::new();
    for (series, is_memory) in memory
        .iter()
        .map(|s| (s, true))
        .chain(cpu.iter().map(|s| (s, false)))
    {
        let pod = series.labels.get("pod").cloned().unwrap_or_default();
        let container = series.labels.get("container").cloned().unwrap_or_default();
        if container.is_empty() || container == "POD" {
            continue;
        }
        for (at, v) in &series.values {
            out.push(Sample {
                namespace: namespace.to_string(),
                pod: pod.clone(),
                container: container.clone(),
                at: *at,
                memory_bytes: is_memory.then_some(*v),
                cpu_cores: (!is_memory).then_some(*v),
            });
        }
    }
    out
}

/// A pod-name pattern (Prometheus RE2, fully anchored) for the pods a workload creates.
pub fn pod_regex(w: &Workload) -> String {
    let name = regex::escape(&w.name);
    match w.kind {
        unloop_core::workload::WorkloadKind::Deployment => format!("{name}-[a-z0-9]+-[a-z0-9]+"),
        unloop_core::workload::WorkloadKind::StatefulSet => format!("{name}-[0-9]+"),
        unloop_core::workload::WorkloadKind::Pod => name,
        unloop_core::workload::WorkloadKind::CronJob => format!("{name}-[0-9]+-[a-z0-9]+"),
        _ => format!("{name}-[a-z0-9]+"),
    }
}

/// The value below which `p` percent of the values fall (nearest rank).
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank - 1).copied()
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub object: ObjectRef,
    pub container: String,
    /// Current requests and limits, as written.
    pub current: BTreeMap<String, String>,
    /// Recommended memory request and limit, in bytes.
    pub memory_bytes: Option<u64>,
    pub memory: Option<String>,
    pub cpu_request: Option<String>,
    pub cpu_limit: Option<String>,
    /// Largest working set seen, bytes.
    pub memory_max_seen: Option<u64>,
    /// The CPU percentile the request rests on, cores.
    pub cpu_percentile_seen: Option<f64>,
    /// Set when an OOM kill raised the memory recommendation: the limit it died at.
    pub oom_killed_at_limit: Option<String>,
    pub samples: usize,
    pub pods: usize,
    pub span_secs: f64,
    /// Under a day of data, or a single sample.
    pub low_confidence: bool,
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RightsizeReport {
    /// `metrics-server (metrics.k8s.io)` or `Prometheus at URL`.
    pub source: String,
    pub method: String,
    pub recommendations: Vec<Recommendation>,
    /// What could not be measured, and why.
    pub gaps: Vec<String>,
}

pub fn method_text(policy: CpuLimitPolicy) -> String {
    let limit = if policy == CpuLimitPolicy::Require {
        "CPU limit = 2 x request"
    } else {
        "no CPU limit"
    };
    format!(
        "memory request = limit = max working set x {MEMORY_MARGIN}, at least {OOM_FACTOR} x the limit of an OOM kill, rounded up to 64Mi; CPU request = p{CPU_PERCENTILE:.0} of usage, rounded up to 10m; {limit}"
    )
}

fn current(c: &Container) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(r) = &c.resources {
        for (which, m) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, v) in m.iter().flatten() {
                out.insert(format!("{which}.{k}"), v.0.clone());
            }
        }
    }
    out
}

/// The memory limit an OOM kill of this container happened at, from the pods' status and spec.
fn oom_limit(obs: &Observed, w: &Workload, container: &str) -> Option<u64> {
    obs.pods(w)
        .into_iter()
        .filter(|p| {
            let st = p.status.as_ref();
            st.map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            })
            .into_iter()
            .flatten()
            .any(|cs| {
                cs.name == container
                    && [cs.last_state.as_ref(), cs.state.as_ref()]
                        .into_iter()
                        .flatten()
                        .any(|s| {
                            s.terminated
                                .as_ref()
                                .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
                        })
            })
        })
        .filter_map(|p| {
            let c = p
                .spec
                .as_ref()?
                .containers
                .iter()
                .find(|c| c.name == container)?;
            unloop_core::resources::memory_limit(c).and_then(|q| bytes(&q).ok())
        })
        .max()
}

/// Recommendations for every container of every workload that has samples.
pub fn recommend(
    inventory: &Inventory,
    obs: &Observed,
    samples: &[Sample],
    source: String,
    policy: CpuLimitPolicy,
) -> RightsizeReport {
    // Samples by workload and container: live pods are matched to their owner the way diagnosis
    // does; Prometheus samples were fetched per workload and already carry its pods only.
    let mut by_pod: BTreeMap<(&str, &str), Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_pod
            .entry((s.namespace.as_str(), s.pod.as_str()))
            .or_default()
            .push(s);
    }
    let mut recommendations = Vec::new();
    let mut gaps = Vec::new();
    for w in &inventory.workloads {
        let Some(spec) = w.spec() else { continue };
        let live_pods: BTreeSet<String> = obs
            .pods(w)
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let pattern = regex::Regex::new(&format!("^(?:{})$", pod_regex(w))).ok();
        let mine: Vec<&Sample> = by_pod
            .iter()
            .filter(|((ns, pod), _)| {
                *ns == w.namespace
                    && (live_pods.contains(*pod)
                        || pattern.as_ref().is_some_and(|r| r.is_match(pod)))
            })
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        let mut recommended = false;
        for c in &spec.containers {
            let of_c: Vec<&Sample> = mine
                .iter()
                .copied()
                .filter(|s| s.container == c.name)
                .collect();
            // A container that keeps being OOM-killed is rarely up when the metrics API is read:
            // the kill alone still sets the memory floor.
            let oom = oom_limit(obs, w, &c.name);
            if of_c.is_empty() && oom.is_none() {
                continue;
            }
            recommendations.push(one(w, c, &of_c, oom, policy));
            recommended = true;
        }
        if !recommended {
            gaps.push(format!("{}/{}: no usage samples", w.namespace, w.object()));
        }
    }
    RightsizeReport {
        source,
        method: method_text(policy),
        recommendations,
        gaps,
    }
}

fn one(
    w: &Workload,
    c: &Container,
    samples: &[&Sample],
    oom_at: Option<u64>,
    policy: CpuLimitPolicy,
) -> Recommendation {
    let memory: Vec<f64> = samples.iter().filter_map(|s| s.memory_bytes).collect();
    let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_cores).collect();
    let max_seen = memory
        .iter()
        .copied()
        .reduce(f64::max)
        .map(|m| m.max(0.0) as u64);
    let mut memory_bytes = max_seen.map(|m| (m as f64 * MEMORY_MARGIN).ceil() as u64);
    if let Some(limit) = oom_at {
        memory_bytes = Some(
            memory_bytes
                .unwrap_or(0)
                .max(limit.saturating_mul(OOM_FACTOR)),
        );
    }
    let memory_bytes = memory_bytes.map(round_up_tidy);
    let cpu_seen = percentile(&cpu, CPU_PERCENTILE);
    let cpu_request = cpu_seen.map(cpu_round_up);
    let cpu_limit = cpu_request
        .filter(|_| policy == CpuLimitPolicy::Require)
        .map(|r| r * 2.0);
    let times: Vec<f64> = samples.iter().map(|s| s.at).collect();
    let span = times.iter().copied().reduce(f64::max).unwrap_or(0.0)
        - times.iter().copied().reduce(f64::min).unwrap_or(0.0);
    let pods: BTreeSet<&str> = samples.iter().map(|s| s.pod.as_str()).collect();
    let distinct_times: BTreeSet<u64> = times.iter().map(|t| *t as u64).collect();

    let mut res = ResourceRequirements::default();
    if let Some(m) = memory_bytes {
        res.requests
            .get_or_insert_with(BTreeMap::new)
            .insert("memory".into(), Quantity(quantity(m)));
        res.limits
            .get_or_insert_with(BTreeMap::new)
            .insert("memory".into(), Quantity(quantity(m)));
    }
    if let Some(r) = cpu_request {
        res.requests
            .get_or_insert_with(BTreeMap::new)
            .insert("cpu".into(), Quantity(cpu_text(r)));
    }
    if let Some(l) = cpu_limit {
        res.limits
            .get_or_insert_with(BTreeMap::new)
            .insert("cpu".into(), Quantity(cpu_text(l)));
    }
    use crate::yaml::Yaml;
    let container = Yaml::map([
        ("name", Yaml::from(c.name.clone())),
        ("resources", Yaml::of(&res)),
    ]);
    let root = Yaml::map([("containers", Yaml::Seq(vec![container]))]);
    Recommendation {
        object: w.object(),
        container: c.name.clone(),
        current: current(c),
        memory_bytes,
        memory: memory_bytes.map(quantity),
        cpu_request: cpu_request.map(cpu_text),
        cpu_limit: cpu_limit.map(cpu_text),
        memory_max_seen: max_seen,
        cpu_percentile_seen: cpu_seen,
        oom_killed_at_limit: oom_at.map(quantity),
        samples: distinct_times.len(),
        pods: pods.len(),
        span_secs: span,
        low_confidence: span < CONFIDENT_SPAN_SECS || distinct_times.len() < 2,
        snippet: crate::yaml::to_string(&root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&[3.0], 95.0), Some(3.0));
        assert_eq!(percentile(&[], 95.0), None);
    }

    fn scenario_file(name: &str, file: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios")
            .join(name)
            .join(file)
    }

    #[test]
    fn metrics_api_answers() {
        // What metrics-server answered on the testbed (testbed/capture.sh), first sample.
        let text = std::fs::read_to_string(scenario_file("healthy", "pod-metrics.json"))
            .expect("captured metrics");
        let answers: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
        let s = parse_pod_metrics(&answers[0].to_string()).expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].pod, "web-75fbc8685-cnd4r");
        assert_eq!(s[0].container, "web");
        assert_eq!(s[0].memory_bytes, Some(3248.0 * 1024.0));
        assert!((s[0].cpu_cores.unwrap_or_default() - 0.000154413).abs() < 1e-12);
        assert!(parse_pod_metrics("<html>").is_err());
    }

    #[test]
    fn queries_select_the_workload_pods() {
        let state = unloop_source::bundle::read(&scenario_file("healthy", "bundle.json.gz"))
            .expect("captured bundle");
        let inv = crate::Inventory::from_state(&state, Vec::new());
        let w = &inv.workloads[0];
        assert_eq!((w.namespace.as_str(), w.name.as_str()), ("healthy", "web"));
        let (m, c) = prometheus_queries(w);
        assert_eq!(
            m,
            "max by (pod, container) (container_memory_working_set_bytes{namespace=\"healthy\",pod=~\"web-[a-z0-9]+-[a-z0-9]+\",container!=\"\",container!=\"POD\"})"
        );
        assert!(
            c.starts_with("sum by (pod, container) (rate(container_cpu_usage_seconds_total{"),
            "{c}"
        );
    }

    #[test]
    fn prometheus_matrices() {
        let json = r#"{"status":"success","data":{"resultType":"matrix","result":[
          {"metric":{"namespace":"shop","pod":"api-5c9-abcde","container":"api"},"values":[[1700000000,"100"],[1700000060,"NaN"],[1700000120,"300"]]}]}}"#;
        let s = parse_prometheus_matrix(json).expect("parses");
        assert_eq!(
            s[0].values,
            vec![(1_700_000_000.0, 100.0), (1_700_000_120.0, 300.0)]
        );
        let err = parse_prometheus_matrix(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .expect_err("error");
        assert!(err.contains("parse error"), "{err}");
    }
}
