//! The audit configuration: severities per check, thresholds, and exemptions, read from a YAML
//! file (`--config FILE`). Exemptions also come from the annotation `unloop.dev/ignore`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::check::{CheckId, Finding, Severity};

/// The annotation that exempts one workload from checks: `unloop.dev/ignore: check-id,check-id`
/// (or `all`), on the workload or on its pod template.
pub const IGNORE_ANNOTATION: &str = "unloop.dev/ignore";

/// A severity as configured: a check can also be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    Info,
    Warning,
    Error,
}

/// What the `cpu-limit` check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuLimitPolicy {
    /// Flag CPU limits: they throttle start-up and make probes time out (the default).
    Forbid,
    /// Flag containers without a CPU limit.
    Require,
    /// No opinion.
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Thresholds {
    /// Least start-up time a liveness (or startup) probe must allow, in seconds.
    pub start_budget_floor_seconds: u32,
    /// The same for JVM containers, which start slower.
    pub jvm_start_budget_floor_seconds: u32,
    /// `memory-limit-far-above-request` fires above limit / request = this.
    pub memory_limit_max_ratio: f64,
    pub cpu_limit_policy: CpuLimitPolicy,
    /// Share of limits.memory the JVM heap may take; the rest is for non-heap memory.
    pub jvm_heap_share: f64,
    /// `recent-restarts` looks back this far.
    pub restart_window_hours: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            start_budget_floor_seconds: 30,
            jvm_start_budget_floor_seconds: 60,
            memory_limit_max_ratio: 4.0,
            cpu_limit_policy: CpuLimitPolicy::Forbid,
            jvm_heap_share: unloop_core::resources::HEAP_SHARE,
            restart_window_hours: 24,
        }
    }
}

/// Exempts the findings of some checks on the objects it matches. Every field but `checks` narrows
/// the match; a `name` ending in `*` matches by prefix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Check ids, or `all`.
    pub checks: Vec<String>,
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub container: Option<String>,
    /// Why; shown with the suppressed finding.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    pub severities: BTreeMap<CheckId, Level>,
    pub thresholds: Thresholds,
    pub exemptions: Vec<Exemption>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl AuditConfig {
    pub fn parse(text: &str) -> Result<AuditConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(AuditConfig::default());
        }
        let config: AuditConfig = crate::load::yaml(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            ConfigError(format!("{}{at}", crate::load::yaml_message(&e)))
        })?;
        for (i, ex) in config.exemptions.iter().enumerate() {
            for c in &ex.checks {
                if c != "all" && CheckId::parse(c).is_none() {
                    return Err(ConfigError(format!(
                        "exemption #{}: unknown check id {c:?} (see docs/audit-checks.md)",
                        i + 1
                    )));
                }
            }
        }
        let t = &config.thresholds;
        if !(t.jvm_heap_share > 0.0 && t.jvm_heap_share <= 1.0) {
            return Err(ConfigError(
                "thresholds.jvm-heap-share must be above 0 and at most 1".into(),
            ));
        }
        if t.memory_limit_max_ratio < 1.0 {
            return Err(ConfigError(
                "thresholds.memory-limit-max-ratio must be at least 1".into(),
            ));
        }
        Ok(config)
    }

    /// The severity a check reports at, or None when it is switched off.
    pub fn severity(&self, check: CheckId) -> Option<Severity> {
        if check == CheckId::CpuLimit && self.thresholds.cpu_limit_policy == CpuLimitPolicy::Ignore
        {
            return None;
        }
        match self.severities.get(&check) {
            None => Some(check.default_severity()),
            Some(Level::Off) => None,
            Some(Level::Info) => Some(Severity::Info),
            Some(Level::Warning) => Some(Severity::Warning),
            Some(Level::Error) => Some(Severity::Error),
        }
    }

    /// The exemption that switches this finding off, described, if any.
    pub fn exemption_for(&self, f: &Finding) -> Option<String> {
        self.exemptions.iter().enumerate().find_map(|(i, ex)| {
            let check = ex
                .checks
                .iter()
                .any(|c| c == "all" || c == f.check.as_str());
            let ns = ex
                .namespace
                .as_ref()
                .is_none_or(|n| *n == f.object.namespace);
            let kind = ex
                .kind
                .as_ref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&f.object.kind));
            let name = ex.name.as_ref().is_none_or(|n| match n.strip_suffix('*') {
                Some(prefix) => f.object.name.starts_with(prefix),
                None => *n == f.object.name,
            });
            let container = ex
                .container
                .as_ref()
                .is_none_or(|c| f.container.as_ref() == Some(c));
            (check && ns && kind && name && container).then(|| match &ex.reason {
                Some(r) => format!("config exemption #{} ({r})", i + 1),
                None => format!("config exemption #{}", i + 1),
            })
        })
    }
}

/// The check ids an `unloop.dev/ignore` annotation value names; `all` names every check. Unknown
/// ids are returned separately so the caller can say so.
pub fn parse_ignore(value: &str) -> (Vec<CheckId>, Vec<String>) {
    let mut ids = Vec::new();
    let mut unknown = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "all" || part == "*" {
            ids.extend(CheckId::ALL);
        } else if let Some(id) = CheckId::parse(part) {
            ids.push(id);
        } else {
            unknown.push(part.to_string());
        }
    }
    (ids, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_severities_thresholds_and_exemptions() {
        let c = AuditConfig::parse(
            "severities:\n  image-tag-latest: off\n  cpu-limit: warning\nthresholds:\n  start-budget-floor-seconds: 60\n  cpu-limit-policy: require\nexemptions:\n  - checks: [limits-missing]\n    namespace: batch\n    name: nightly-*\n    reason: batch jobs may use the node\n",
        )
        .expect("valid config");
        assert_eq!(c.severity(CheckId::ImageTagLatest), None);
        assert_eq!(c.severity(CheckId::CpuLimit), Some(Severity::Warning));
        assert_eq!(c.severity(CheckId::UnresolvedSecret), Some(Severity::Error));
        assert_eq!(c.thresholds.start_budget_floor_seconds, 60);
        assert_eq!(c.thresholds.cpu_limit_policy, CpuLimitPolicy::Require);
        assert_eq!(c.exemptions.len(), 1);
    }

    #[test]
    fn typos_are_errors_with_a_line() {
        let e =
            AuditConfig::parse("severities:\n  image-tag-lates: off\n").expect_err("unknown check");
        assert!(e.0.contains("at line 2 column 3"), "{e}");
        assert!(!e.0.contains('\n'), "one line: {e}");
        let e = AuditConfig::parse("severities: [\n").expect_err("not YAML");
        assert!(e.0.contains("at line "), "{e}");
        assert!(!e.0.contains('\n'), "one line: {e}");
        let e = AuditConfig::parse("thresholds:\n  floor: 3\n").expect_err("unknown field");
        assert!(e.0.contains("unknown field"), "{e}");
        let e = AuditConfig::parse("exemptions:\n  - checks: [nope]\n").expect_err("unknown id");
        assert!(e.0.contains("\"nope\""), "{e}");
    }

    #[test]
    fn ignore_annotation_values() {
        let (ids, unknown) = parse_ignore("image-tag-latest, cpu-limit,bogus");
        assert_eq!(ids, vec![CheckId::ImageTagLatest, CheckId::CpuLimit]);
        assert_eq!(unknown, vec!["bogus"]);
        assert_eq!(parse_ignore("all").0.len(), CheckId::ALL.len());
    }
}
