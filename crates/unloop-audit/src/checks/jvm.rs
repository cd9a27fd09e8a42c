//! The JVM heap against the memory limit. Heap flags are read by unloop-core's
//! [`unloop_core::resources::jvm_heap`], the same reader diagnosis uses after an OOM kill.

use k8s_openapi::api::core::v1::Container;
use unloop_core::quantity::bytes;
use unloop_core::resources::{JVM_ENV, jvm_heap, memory_limit, quantity, round_up_tidy};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{Context, Subject};
use crate::check::{CheckId, Finding, Fix};
use crate::yaml::Yaml;

const MI: u64 = 1024 * 1024;

/// 1Pi: more memory than any node has.
const ABSURD_HEAP: u64 = 1 << 50;

/// The heap size as a quantity, or what it is when it does not fit one.
fn heap_text(bytes: u64) -> String {
    if bytes == u64::MAX {
        "more than 16Ei".into()
    } else {
        quantity(bytes)
    }
}

/// Image names of JVM runtimes and of servers that run on one.
const JVM_IMAGE_WORDS: [&str; 14] = [
    "java", "jdk", "jre", "openjdk", "temurin", "corretto", "zulu", "graalvm", "tomcat", "jetty",
    "wildfly", "keycloak", "spring", "kafka",
];

/// True when the container runs a JVM: heap flags or JVM options in its environment, `java` on
/// its command line, or an image of a JVM runtime.
pub(crate) fn is_jvm(c: &Container) -> bool {
    if jvm_heap(c).is_some() {
        return true;
    }
    if c.env
        .iter()
        .flatten()
        .any(|e| JVM_ENV.contains(&e.name.as_str()))
    {
        return true;
    }
    let argv = c.command.iter().flatten().chain(c.args.iter().flatten());
    if argv
        .flat_map(|a| a.split_whitespace())
        .any(|w| w == "java" || w.ends_with("/java") || w == "-jar")
    {
        return true;
    }
    let image = c.image.as_deref().unwrap_or_default().to_ascii_lowercase();
    let name = image.rsplit('/').next().unwrap_or_default();
    JVM_IMAGE_WORDS.iter().any(|w| name.contains(w))
}

pub(crate) fn check(s: &Subject, ctx: &Context, out: &mut Vec<Finding>) {
    let c = s.container;
    let Some(heap) = jvm_heap(c) else { return };
    let Some((limit_text, limit)) = memory_limit(c).and_then(|q| bytes(&q).ok().map(|b| (q, b)))
    else {
        return;
    };
    if limit == 0 {
        return;
    }
    let share = ctx.config.thresholds.jvm_heap_share;
    let heap_bytes = heap.bytes_under(limit);
    if (heap_bytes as f64) <= share * limit as f64 {
        return;
    }
    let flag = heap.flag();
    let source = heap.source();
    // A heap no node has (a typo, or an overflowing size) is not a reason to raise the limit.
    let absurd = heap_bytes >= ABSURD_HEAP;
    let message = if heap_bytes >= limit {
        format!(
            "{flag} ({source}) lets the heap grow to {}, above limits.memory {limit_text}: the container is OOM-killed before the heap is full",
            heap_text(heap_bytes)
        )
    } else {
        format!(
            "{flag} ({source}) lets the heap take {} of limits.memory {limit_text}, leaving {} for metaspace, threads and native memory (keep the heap within {:.0}%)",
            quantity(heap_bytes),
            quantity(limit - heap_bytes),
            share * 100.0
        )
    };
    // Two ways out; the snippet raises the limit, the text also gives the flag that fits the
    // current limit.
    let new_limit = round_up_tidy((heap_bytes as f64 / share).ceil() as u64);
    let fitting_heap_mib = ((limit as f64 * share) as u64 / MI).max(1);
    if absurd {
        out.push(s.finding(
            CheckId::JvmHeapOverLimit,
            message,
            Fix::text(format!(
                "size the heap to the limit: -Xmx{fitting_heap_mib}m, or better -XX:MaxRAMPercentage={:.0} instead of {flag}",
                share * 100.0
            )),
        ));
        return;
    }
    let mut resources = c.resources.clone().unwrap_or_default();
    let limits = resources.limits.get_or_insert_with(Default::default);
    limits.insert("memory".into(), Quantity(quantity(new_limit)));
    let requests = resources.requests.get_or_insert_with(Default::default);
    requests.insert("memory".into(), Quantity(quantity(new_limit)));
    let text = format!(
        "raise limits.memory to {} (heap / {share}); or keep the limit and size the heap to it: -Xmx{fitting_heap_mib}m, or better -XX:MaxRAMPercentage={:.0} instead of {flag}",
        quantity(new_limit),
        share * 100.0
    );
    out.push(s.finding(
        CheckId::JvmHeapOverLimit,
        message,
        Fix::with_yaml(text, s.patch(vec![("resources", Yaml::of(&resources))])),
    ));
}
