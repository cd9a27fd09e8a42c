//! Requests and limits: present, consistent, not far apart, and the CPU-limit policy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use unloop_core::quantity::{bytes, bytes_text as quantity, cores, cpu_text, round_up_tidy};

use super::{Context, Subject};
use crate::check::{CheckId, Finding, Fix};
use crate::config::CpuLimitPolicy;
use crate::yaml::Yaml;

const MI: u64 = 1024 * 1024;
/// The guide's example sizes, used when nothing better is known: `unloop audit --live
/// --rightsize` measures real ones.
const DEFAULT_MEMORY_REQUEST: u64 = 128 * MI;
const DEFAULT_CPU_REQUEST: &str = "100m";

fn get<'a>(c: &'a Container, limits: bool, name: &str) -> Option<&'a str> {
    let r = c.resources.as_ref()?;
    let m = if limits {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    m.get(name).map(|q| q.0.as_str())
}

fn amount(name: &str, q: &str) -> Option<f64> {
    if name == "cpu" {
        cores(q).ok()
    } else {
        bytes(q).ok().map(|b| b as f64)
    }
}

/// The container's resources with `edit` applied, as a snippet.
fn resources_fix(
    s: &Subject,
    text: String,
    edit: impl FnOnce(&mut BTreeMap<String, Quantity>, &mut BTreeMap<String, Quantity>),
) -> Fix {
    let current = s.container.resources.clone().unwrap_or_default();
    let mut requests = current.requests.unwrap_or_default();
    let mut limits = current.limits.unwrap_or_default();
    edit(&mut requests, &mut limits);
    let wanted = ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    };
    Fix::with_yaml(text, s.patch(vec![("resources", Yaml::of(&wanted))]))
}

pub(crate) fn check(s: &Subject, ctx: &Context, out: &mut Vec<Finding>) {
    let c = s.container;
    let (req_mem, lim_mem) = (get(c, false, "memory"), get(c, true, "memory"));
    let (req_cpu, lim_cpu) = (get(c, false, "cpu"), get(c, true, "cpu"));

    // The API server copies a limit into a missing request, so only both missing is "no request".
    let mut missing = Vec::new();
    if req_mem.is_none() && lim_mem.is_none() {
        missing.push("memory");
    }
    if req_cpu.is_none() && lim_cpu.is_none() {
        missing.push("cpu");
    }
    if !missing.is_empty() {
        out.push(s.finding(
            CheckId::RequestsMissing,
            format!("no {} request", missing.join(" or ")),
            resources_fix(s, "request what the container needs (measure it with `unloop audit --live --rightsize`)".into(), |req, _| {
                if missing.contains(&"memory") {
                    req.insert("memory".into(), Quantity(quantity(DEFAULT_MEMORY_REQUEST)));
                }
                if missing.contains(&"cpu") {
                    req.insert("cpu".into(), Quantity(DEFAULT_CPU_REQUEST.into()));
                }
            }),
        ));
    }

    if lim_mem.is_none() {
        let request = req_mem
            .and_then(|q| bytes(q).ok())
            .unwrap_or(DEFAULT_MEMORY_REQUEST);
        let limit = round_up_tidy(request.saturating_mul(2));
        out.push(s.finding(
            CheckId::LimitsMissing,
            "no memory limit".to_string(),
            resources_fix(
                s,
                format!(
                    "set limits.memory; twice the request ({}) leaves room for peaks",
                    quantity(limit)
                ),
                |req, lim| {
                    req.entry("memory".into())
                        .or_insert_with(|| Quantity(quantity(request)));
                    lim.insert("memory".into(), Quantity(quantity(limit)));
                },
            ),
        ));
    }

    for (name, req, lim) in [("memory", req_mem, lim_mem), ("cpu", req_cpu, lim_cpu)] {
        let (Some(rq), Some(lq)) = (req, lim) else {
            continue;
        };
        let (Some(r), Some(l)) = (amount(name, rq), amount(name, lq)) else {
            continue;
        };
        if l < r {
            out.push(s.finding(
                CheckId::LimitBelowRequest,
                format!("limits.{name} {lq} is below requests.{name} {rq}"),
                resources_fix(
                    s,
                    format!("raise limits.{name} to at least the request"),
                    |_, lim| {
                        lim.insert(name.into(), Quantity(rq.to_string()));
                    },
                ),
            ));
        }
    }

    if let (Some(rq), Some(lq)) = (req_mem, lim_mem) {
        let ratio_max = ctx.config.thresholds.memory_limit_max_ratio;
        if let (Some(r), Some(l)) = (bytes(rq).ok(), bytes(lq).ok())
            && r > 0
            && l as f64 / r as f64 > ratio_max
        {
            let new_request = round_up_tidy(l / 2);
            out.push(s.finding(
                    CheckId::MemoryLimitFarAboveRequest,
                    format!("limits.memory {lq} is {:.0}x requests.memory {rq} (more than {ratio_max}x)", l as f64 / r as f64),
                    resources_fix(s, format!("request at least half the limit ({}), or lower the limit to what the container uses", quantity(new_request)), |req, _| {
                        req.insert("memory".into(), Quantity(quantity(new_request)));
                    }),
                ));
        }
    }

    match ctx.config.thresholds.cpu_limit_policy {
        CpuLimitPolicy::Forbid => {
            if let Some(lq) = lim_cpu {
                out.push(s.finding(
                    CheckId::CpuLimit,
                    format!("limits.cpu {lq} throttles the container when it is busiest, such as during start-up"),
                    resources_fix(s, "remove limits.cpu and keep a CPU request (policy: forbid)".into(), |req, lim| {
                        if let Some(q) = lim.remove("cpu") {
                            req.entry("cpu".into()).or_insert(q);
                        }
                    }),
                ));
            }
        }
        CpuLimitPolicy::Require => {
            if lim_cpu.is_none() {
                let limit = req_cpu
                    .and_then(|q| cores(q).ok())
                    .map(|r| r * 2.0)
                    .unwrap_or(1.0)
                    .max(0.1);
                out.push(s.finding(
                    CheckId::CpuLimit,
                    "no CPU limit (policy: require)".to_string(),
                    resources_fix(
                        s,
                        format!("set limits.cpu ({}: twice the request)", cpu_text(limit)),
                        |req, lim| {
                            req.entry("cpu".into())
                                .or_insert_with(|| Quantity(DEFAULT_CPU_REQUEST.into()));
                            lim.insert("cpu".into(), Quantity(cpu_text(limit)));
                        },
                    ),
                ));
            }
        }
        CpuLimitPolicy::Ignore => {}
    }
}
