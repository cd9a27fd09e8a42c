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
//! - [`rightsize`] turns observed usage into requests and limits.
//!
//! The report is rendered by `unloop-report` (human, JSON, SARIF 2.1.0, JUnit XML); [`each_string`]
//! is the one list of its strings that the renderers' output passes walk.

pub mod check;
pub mod checks;
pub mod config;
pub mod inventory;
pub mod load;
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

use unloop_core::text::Layout;

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

/// Audits manifests alone, as `unloop audit FILE` does: references resolve against the
/// manifests given, nothing is observed live.
pub fn audit_manifests(inventory: &Inventory, config: &AuditConfig) -> AuditReport {
    let resolver = Resolver::new(vec![Known::manifests(&inventory.config)]);
    let ctx = Context {
        config,
        resolver: &resolver,
        observed: None,
    };
    audit(inventory, &ctx)
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

/// Calls `f` on every string of an audit report that came from the input or was built from it:
/// the one list both output passes (redaction, terminal escaping) walk. Fix snippets are written
/// here, when a format prints them (those of suppressed findings only with `suppressed_fixes`).
pub fn each_string(
    r: &mut AuditReport,
    suppressed_fixes: bool,
    f: &mut dyn FnMut(&mut String, Layout),
) {
    fn object(o: &mut crate::ObjectRef, f: &mut dyn FnMut(&mut String, Layout)) {
        f(&mut o.kind, Layout::Line);
        f(&mut o.namespace, Layout::Line);
        f(&mut o.name, Layout::Line);
    }
    fn location(l: &mut crate::Location, f: &mut dyn FnMut(&mut String, Layout)) {
        f(&mut l.file, Layout::Line);
        if let Some(t) = l.template.as_mut() {
            f(t, Layout::Line);
        }
    }
    fn finding(x: &mut crate::Finding, fix: bool, f: &mut dyn FnMut(&mut String, Layout)) {
        object(&mut x.object, f);
        if let Some(c) = x.container.as_mut() {
            f(c, Layout::Line);
        }
        if let Some(l) = x.location.as_mut() {
            location(l, f);
        }
        f(&mut x.message, Layout::Line);
        f(&mut x.fix.text, Layout::Line);
        if let Some(y) = x.fix.yaml.as_mut().filter(|_| fix) {
            f(y.text_mut(), Layout::Lines);
        }
    }
    for x in &mut r.findings {
        finding(x, true, f);
    }
    for s in &mut r.suppressed {
        finding(&mut s.finding, suppressed_fixes, f);
        f(&mut s.by, Layout::Line);
    }
    for (o, l) in &mut r.workloads {
        object(o, f);
        if let Some(l) = l.as_mut() {
            location(l, f);
        }
    }
    for n in &mut r.notes {
        f(n, Layout::Line);
    }
    if !r.skipped.is_empty() {
        r.skipped = std::mem::take(&mut r.skipped)
            .into_iter()
            .map(|(mut k, v)| {
                f(&mut k, Layout::Line);
                (k, v)
            })
            .collect();
    }
    if let Some(rs) = r.rightsize.as_mut() {
        f(&mut rs.source, Layout::Line);
        f(&mut rs.method, Layout::Line);
        for g in &mut rs.gaps {
            f(g, Layout::Line);
        }
        for rec in &mut rs.recommendations {
            object(&mut rec.object, f);
            f(&mut rec.container, Layout::Line);
            for v in rec.current.values_mut() {
                f(v, Layout::Line);
            }
            if let Some(o) = rec.oom_killed_at_limit.as_mut() {
                f(o, Layout::Line);
            }
            f(&mut rec.snippet, Layout::Lines);
        }
    }
}
