//! `unloop audit`: catches what makes pods crash-loop before it runs, in manifests or a live
//! cluster.
//!
//! Layers, in the order data flows:
//! - [`load`] reads manifests (files, directories, stdin; multi-document YAML, JSON, `kind: List`,
//!   `helm template` and `kustomize build` output) document by document into an [`Inventory`].
//!   It is the only module that touches the file system. Nothing here talks to a cluster or to
//!   Prometheus: `unloop_source::live` reads them and hands over plain data (a `ClusterState`,
//!   CronJobs, key lists, metrics API and Prometheus answers as text).
//! - [`checks`] are pure functions over k8s-openapi pod templates (and, live, pods and nodes).
//!   They reuse unloop-core's knowledge: reference enumeration and resolution, JVM heap flags,
//!   memory quantities, probe budgets.
//! - [`audit`] applies the [`config::AuditConfig`] (severities, thresholds, exemptions).
//! - [`render`] writes human, JSON, SARIF 2.1.0 or JUnit XML.
//! - [`rightsize`] turns observed usage into requests and limits.

pub mod check;
pub mod checks;
pub mod config;
pub mod inventory;
pub mod load;
pub mod render;
pub mod resolve;
pub mod rightsize;
mod yaml;

use std::collections::{BTreeMap, HashMap};

pub use check::{CheckId, Finding, Fix, Location, ObjectRef, Severity, Suppressed};
pub use checks::{Context, Observed};
pub use config::AuditConfig;
pub use inventory::Inventory;
pub use resolve::{Known, Resolver};
pub use yaml::{Snippet, Yaml};

use crate::config::{IGNORE_ANNOTATION, parse_ignore};

/// The result of an audit, ready to render.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditReport {
    /// Findings in input order: by object, then by container and check.
    pub findings: Vec<Finding>,
    /// Findings an exemption switched off.
    pub suppressed: Vec<Suppressed>,
    /// The workloads audited, in input order, with where each came from.
    pub workloads: Vec<(ObjectRef, Option<Location>)>,
    /// The checks that ran (enabled, and live-only ones only when live).
    pub checks: Vec<CheckId>,
    pub objects_read: usize,
    /// Objects of kinds unloop does not audit, by kind.
    pub skipped: BTreeMap<String, usize>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rightsize: Option<rightsize::RightsizeReport>,
}

impl AuditReport {
    /// The most severe finding, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Runs the checks on every workload of `inventory` and applies the configuration.
pub fn audit(inventory: &Inventory, ctx: &Context) -> AuditReport {
    let raw = checks::run(inventory, ctx);
    let mut notes = inventory.notes.clone();
    // Annotation exemptions by object.
    let mut ignored: HashMap<ObjectRef, Vec<CheckId>> = HashMap::new();
    for w in &inventory.workloads {
        let Some(value) = w.annotation(IGNORE_ANNOTATION) else {
            continue;
        };
        let (ids, unknown) = parse_ignore(value);
        if !unknown.is_empty() {
            notes.push(format!(
                "{}/{}: {IGNORE_ANNOTATION} names unknown check ids {} (see docs/audit-checks.md)",
                w.namespace,
                w.object(),
                unknown.join(", ")
            ));
        }
        ignored.insert(w.object(), ids);
    }
    let mut findings = Vec::new();
    let mut suppressed = Vec::new();
    for mut f in raw {
        let Some(severity) = ctx.config.severity(f.check) else {
            continue;
        };
        f.severity = severity;
        if ignored
            .get(&f.object)
            .is_some_and(|ids| ids.contains(&f.check))
        {
            suppressed.push(Suppressed {
                finding: f,
                by: format!("annotation {IGNORE_ANNOTATION}"),
            });
        } else if let Some(by) = ctx.config.exemption_for(&f) {
            suppressed.push(Suppressed { finding: f, by });
        } else {
            findings.push(f);
        }
    }
    let live = ctx.observed.is_some_and(|o| o.workloads_live);
    AuditReport {
        findings,
        suppressed,
        workloads: inventory
            .workloads
            .iter()
            .map(|w| (w.object(), w.location(None)))
            .collect(),
        checks: CheckId::ALL
            .into_iter()
            .filter(|c| ctx.config.severity(*c).is_some() && (live || !c.live_only()))
            .collect(),
        objects_read: inventory.objects_read,
        skipped: inventory.skipped.clone(),
        notes,
        rightsize: None,
    }
}
