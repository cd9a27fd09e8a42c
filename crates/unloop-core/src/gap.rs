//! Gaps: evidence unloop tried to read and could not, typed by what they are about and why.
//!
//! Readers (live, bundle, kubectl files) make them; rules ask whether a kind of object was read
//! (`ClusterState::read_config_maps`, ...) by comparing types, never text; the report summarises
//! them, one line per kind of gap ([`summarise`]). In JSON a gap keeps the `what` and `why` text a
//! consumer may rely on and adds its typed fields: `kind` (stable, kebab-case), the object it is
//! about, `reason` and the HTTP `status` when there was one.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A piece of evidence unloop tried to read and could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// What was not read.
    pub about: GapAbout,
    /// Why, as a kind.
    pub reason: GapReason,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// Why, as the server or the system said it, e.g. `forbidden: User "dev" cannot list
    /// resource "secrets" (403)`.
    pub why: String,
}

/// What a gap is about. The JSON `kind` names the variant.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum GapAbout {
    /// A list of one kind of object, in one namespace or (`namespace` absent) all of them.
    List {
        resource: ListOf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// The log of one container.
    Log {
        namespace: String,
        pod: String,
        container: String,
    },
    /// A node's kubelet configuration (`/configz`).
    KubeletConfig { node: String },
    /// A file of a `kubectl cluster-info dump` directory.
    File { path: String },
    /// A directory of a dump.
    Directory { path: String },
    /// A gap written by an older unloop whose text names nothing known.
    Other { what: String },
}

/// The kinds of object unloop lists.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ListOf {
    Pods,
    Events,
    /// Events about nodes, which live in the default namespace.
    #[serde(rename = "node-events")]
    NodeEvents,
    Nodes,
    ReplicaSets,
    Deployments,
    StatefulSets,
    DaemonSets,
    Jobs,
    CronJobs,
    ControllerRevisions,
    Services,
    EndpointSlices,
    ConfigMaps,
    Secrets,
    ServiceAccounts,
}

/// Why a gap is there.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum GapReason {
    /// 401.
    Unauthorized,
    /// 403: RBAC said no.
    Forbidden,
    /// 404 or 405: the server has no such thing to give.
    NotFound,
    /// 429 on every attempt.
    Throttled,
    /// 5xx on every attempt.
    ServerError,
    /// Another 4xx answer.
    Refused,
    /// No complete answer within the deadline.
    TimedOut,
    /// The server could not be reached at all.
    Unreachable,
    /// The connection broke or the answer was unreadable, on every attempt.
    Broken,
    /// The object went away during the run (a deleted pod, a log the kubelet removed).
    Gone,
    /// Not asked for, by the user's choice (`--no-config`).
    NotRequested,
    /// Not asked for: the node has no kubelet to answer (a simulated node, e.g. kwok's).
    NoKubelet,
    /// Not asked for: alike nodes failed to answer before it, so it was not tried.
    NotTried,
    /// A file that is not read (not a regular file, too deep, too large).
    Skipped,
    /// The input holds no such objects (a `kubectl cluster-info dump` has no ConfigMaps or
    /// Secrets; `kubectl get pods -o json` has only pods): absent from it, not from the cluster.
    NotInInput,
    /// Written by an older unloop, with no reason unloop can tell.
    Unknown,
}

impl GapReason {
    /// The reason for an HTTP error status.
    pub fn of_status(code: u16) -> GapReason {
        match code {
            401 => GapReason::Unauthorized,
            403 => GapReason::Forbidden,
            404 | 405 => GapReason::NotFound,
            410 => GapReason::Gone,
            429 => GapReason::Throttled,
            c if c >= 500 => GapReason::ServerError,
            _ => GapReason::Refused,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Unauthorized => "unauthorized",
            GapReason::Forbidden => "forbidden",
            GapReason::NotFound => "not found",
            GapReason::Throttled => "throttled",
            GapReason::ServerError => "server error",
            GapReason::Refused => "refused",
            GapReason::TimedOut => "timed out",
            GapReason::Unreachable => "unreachable",
            GapReason::Broken => "broken answer",
            GapReason::Gone => "gone",
            GapReason::NotRequested => "not requested",
            GapReason::NoKubelet => "no kubelet",
            GapReason::NotTried => "not tried",
            GapReason::Skipped => "skipped",
            GapReason::NotInInput => "not in the input",
            GapReason::Unknown => "unknown",
        }
    }
}

impl ListOf {
    pub fn as_str(self) -> &'static str {
        match self {
            ListOf::Pods => "pods",
            ListOf::Events => "events",
            ListOf::NodeEvents => "node events",
            ListOf::Nodes => "nodes",
            ListOf::ReplicaSets => "replicasets",
            ListOf::Deployments => "deployments",
            ListOf::StatefulSets => "statefulsets",
            ListOf::DaemonSets => "daemonsets",
            ListOf::Jobs => "jobs",
            ListOf::CronJobs => "cronjobs",
            ListOf::ControllerRevisions => "controllerrevisions",
            ListOf::Services => "services",
            ListOf::EndpointSlices => "endpointslices",
            ListOf::ConfigMaps => "configmaps",
            ListOf::Secrets => "secrets",
            ListOf::ServiceAccounts => "serviceaccounts",
        }
    }

    const ALL: &[ListOf] = &[
        ListOf::Pods,
        ListOf::Events,
        ListOf::NodeEvents,
        ListOf::Nodes,
        ListOf::ReplicaSets,
        ListOf::Deployments,
        ListOf::StatefulSets,
        ListOf::DaemonSets,
        ListOf::Jobs,
        ListOf::CronJobs,
        ListOf::ControllerRevisions,
        ListOf::Services,
        ListOf::EndpointSlices,
        ListOf::ConfigMaps,
        ListOf::Secrets,
        ListOf::ServiceAccounts,
    ];

    /// What diagnosis loses without this list.
    fn cost(self) -> &'static str {
        match self {
            ListOf::Pods => "these pods are not diagnosed",
            ListOf::Events | ListOf::NodeEvents => {
                "kubelet events (probe failures, pull errors, OOM notices) are not evidence"
            }
            ListOf::Nodes => "node conditions and kubelet versions are not evidence",
            ListOf::ReplicaSets
            | ListOf::Deployments
            | ListOf::StatefulSets
            | ListOf::DaemonSets
            | ListOf::Jobs
            | ListOf::CronJobs
            | ListOf::ControllerRevisions => "owners and rollouts are not followed",
            ListOf::Services | ListOf::EndpointSlices => {
                "hosts a container calls are not checked against Services"
            }
            ListOf::ConfigMaps => "a ConfigMap reference cannot be shown missing",
            ListOf::Secrets => "a Secret reference cannot be shown missing",
            ListOf::ServiceAccounts => "service account references are not checked",
        }
    }
}

impl GapAbout {
    /// A list in `namespace`, or in every namespace.
    pub fn list(resource: ListOf, namespace: Option<&str>) -> GapAbout {
        GapAbout::List {
            resource,
            namespace: namespace.map(str::to_string),
        }
    }

    /// The kind of gap, as JSON names it (`kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            GapAbout::List { .. } => "list",
            GapAbout::Log { .. } => "log",
            GapAbout::KubeletConfig { .. } => "kubelet-config",
            GapAbout::File { .. } => "file",
            GapAbout::Directory { .. } => "directory",
            GapAbout::Other { .. } => "other",
        }
    }

    /// The one thing it names, short, for examples in a summary.
    fn subject(&self) -> String {
        match self {
            GapAbout::List { namespace, .. } => namespace.clone().unwrap_or_default(),
            GapAbout::Log {
                namespace,
                pod,
                container,
            } => format!("{namespace}/{pod}[{container}]"),
            GapAbout::KubeletConfig { node } => node.clone(),
            GapAbout::File { path } | GapAbout::Directory { path } => path.clone(),
            GapAbout::Other { what } => what.clone(),
        }
    }

    /// Every string it holds, for the output-side redaction and terminal passes.
    pub fn strings_mut(&mut self) -> Vec<&mut String> {
        match self {
            GapAbout::List { namespace, .. } => namespace.iter_mut().collect(),
            GapAbout::Log {
                namespace,
                pod,
                container,
            } => vec![namespace, pod, container],
            GapAbout::KubeletConfig { node } => vec![node],
            GapAbout::File { path } | GapAbout::Directory { path } => vec![path],
            GapAbout::Other { what } => vec![what],
        }
    }

    /// How an older unloop wrote it (`secrets in namespace shop`, `logs of shop/api-1[app]`, ...):
    /// read once, at the edge, so that a bundle written before gaps were typed still says what
    /// was not read.
    fn from_text(what: &str) -> GapAbout {
        if let Some(node) = what.strip_prefix("kubelet config of node ") {
            return GapAbout::KubeletConfig { node: node.into() };
        }
        if let Some(path) = what.strip_prefix("file ") {
            return GapAbout::File { path: path.into() };
        }
        if let Some(path) = what.strip_prefix("directory ") {
            return GapAbout::Directory { path: path.into() };
        }
        if let Some(rest) = what.strip_prefix("logs of ")
            && let Some((ns, rest)) = rest.split_once('/')
            && let Some((pod, c)) = rest.strip_suffix(']').and_then(|r| r.split_once('['))
        {
            return GapAbout::Log {
                namespace: ns.into(),
                pod: pod.into(),
                container: c.into(),
            };
        }
        for &l in ListOf::ALL {
            let Some(rest) = what.strip_prefix(l.as_str()) else {
                continue;
            };
            if rest.is_empty() || rest == " in all namespaces" {
                return GapAbout::list(l, None);
            }
            if let Some(ns) = rest.strip_prefix(" in namespace ") {
                return GapAbout::list(l, Some(ns));
            }
        }
        GapAbout::Other { what: what.into() }
    }
}

impl fmt::Display for GapAbout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapAbout::List {
                resource,
                namespace,
            } => match namespace {
                Some(ns) => write!(f, "{} in namespace {ns}", resource.as_str()),
                None if *resource == ListOf::Nodes => f.write_str("nodes"),
                None => write!(f, "{} in all namespaces", resource.as_str()),
            },
            GapAbout::Log {
                namespace,
                pod,
                container,
            } => write!(f, "logs of {namespace}/{pod}[{container}]"),
            GapAbout::KubeletConfig { node } => write!(f, "kubelet config of node {node}"),
            GapAbout::File { path } => write!(f, "file {path}"),
            GapAbout::Directory { path } => write!(f, "directory {path}"),
            GapAbout::Other { what } => f.write_str(what),
        }
    }
}

impl Gap {
    pub fn new(about: GapAbout, reason: GapReason, why: impl Into<String>) -> Gap {
        Gap {
            about,
            reason,
            status: None,
            why: why.into(),
        }
    }

    /// A gap for an HTTP error answer.
    pub fn status(about: GapAbout, code: u16, why: impl Into<String>) -> Gap {
        Gap {
            about,
            reason: GapReason::of_status(code),
            status: Some(code),
            why: why.into(),
        }
    }

    /// What was not read, as a line says it: `secrets in namespace shop`.
    pub fn what(&self) -> String {
        self.about.to_string()
    }

    /// Is this a list of `resource` that was not read?
    pub fn is_list_of(&self, resource: ListOf) -> bool {
        matches!(self.about, GapAbout::List { resource: r, .. } if r == resource)
    }

    /// The key gaps are summarised by: their kind, and for lists, the kind of object.
    fn summary_key(&self) -> (&'static str, Option<ListOf>) {
        match &self.about {
            GapAbout::List { resource, .. } => ("list", Some(*resource)),
            other => (other.kind(), None),
        }
    }
}

/// The wire form: the typed fields, plus `what` (derived) and `why` as before.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(flatten)]
    about: GapAbout,
    reason: GapReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default)]
    what: String,
    why: String,
}

impl schemars::JsonSchema for Gap {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Gap".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Wire::json_schema(g)
    }
}

/// A gap as unloop wrote it before gaps were typed.
#[derive(Deserialize)]
struct Untyped {
    what: String,
    why: String,
}

impl Serialize for Gap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            about: self.about.clone(),
            reason: self.reason,
            status: self.status,
            what: self.what(),
            why: self.why.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Gap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Gap, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        if v.get("kind").is_some() {
            let w: Wire = serde_json::from_value(v).map_err(D::Error::custom)?;
            return Ok(Gap {
                about: w.about,
                reason: w.reason,
                status: w.status,
                why: w.why,
            });
        }
        let u: Untyped = serde_json::from_value(v).map_err(D::Error::custom)?;
        let status = legacy_status(&u.why);
        let reason = match status {
            Some(code) => GapReason::of_status(code),
            None if u.why.contains("--no-config") => GapReason::NotRequested,
            None => GapReason::Unknown,
        };
        Ok(Gap {
            about: GapAbout::from_text(&u.what),
            reason,
            status,
            why: u.why,
        })
    }
}

/// The status an older unloop wrote at the end of a reason: `... (403)`.
fn legacy_status(why: &str) -> Option<u16> {
    let code = why.strip_suffix(')')?.rsplit_once(" (")?.1;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// Examples named per summary line.
const EXAMPLES: usize = 3;

/// One line of the report per kind of gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GapSummary {
    /// The gaps' `kind`.
    pub kind: String,
    /// For lists: the kind of object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ListOf>,
    /// How many gaps of this kind.
    pub count: usize,
    /// How many for each reason, most first.
    pub reasons: Vec<ReasonCount>,
    /// A few of what was not read: node names, containers, namespaces, paths.
    pub examples: Vec<String>,
    /// One reason as stated, the first gap's.
    pub why: String,
    /// What the diagnosis does without it.
    pub cost: String,
    /// The whole line, as the human and markdown reports print it.
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReasonCount {
    pub reason: GapReason,
    pub count: usize,
}

/// The gaps summarised, one entry per kind (lists: per kind of object), in the order each kind
/// first appears.
pub fn summarise(gaps: &[Gap]) -> Vec<GapSummary> {
    let mut order: Vec<(&'static str, Option<ListOf>)> = Vec::new();
    let mut by_key: BTreeMap<(&'static str, Option<ListOf>), Vec<&Gap>> = BTreeMap::new();
    for g in gaps {
        let k = g.summary_key();
        if !by_key.contains_key(&k) {
            order.push(k);
        }
        by_key.entry(k).or_default().push(g);
    }
    order.into_iter().map(|k| summary(k, &by_key[&k])).collect()
}

fn summary((kind, resource): (&'static str, Option<ListOf>), gaps: &[&Gap]) -> GapSummary {
    let mut counts: BTreeMap<GapReason, usize> = BTreeMap::new();
    for g in gaps {
        *counts.entry(g.reason).or_default() += 1;
    }
    let mut reasons: Vec<ReasonCount> = counts
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    let first = gaps[0];
    let cost = match &first.about {
        GapAbout::List { resource, .. } => resource.cost(),
        GapAbout::Log { .. } => "their log lines are not evidence",
        GapAbout::KubeletConfig { .. } => "backoff timing assumes the kubelet's defaults",
        GapAbout::File { .. } | GapAbout::Directory { .. } => {
            "the objects in them are not evidence"
        }
        GapAbout::Other { .. } => "",
    }
    .to_string();
    let examples: Vec<String> = gaps
        .iter()
        .map(|g| g.about.subject())
        .filter(|s| !s.is_empty())
        .take(EXAMPLES)
        .collect();
    let line = if gaps.len() == 1 {
        format!("{}: {}", first.what(), first.why)
    } else {
        let n = gaps.len();
        let what = match &first.about {
            GapAbout::List { resource, .. } => format!("{} in {n} namespaces", resource.as_str()),
            GapAbout::Log { .. } => format!("logs of {n} containers"),
            GapAbout::KubeletConfig { .. } => format!("kubelet config of {n} nodes"),
            GapAbout::File { .. } => format!("{n} files"),
            GapAbout::Directory { .. } => format!("{n} directories"),
            GapAbout::Other { .. } => format!("{n} other reads"),
        };
        let more = gaps.len().saturating_sub(examples.len());
        let named = if examples.is_empty() {
            String::new()
        } else if more > 0 {
            format!(" ({}, and {more} more)", examples.join(", "))
        } else {
            format!(" ({})", examples.join(", "))
        };
        let why = reasons
            .iter()
            .map(|r| format!("{} {}", r.count, r.reason.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{what}{named}: {why}, e.g. {}", first.why)
    };
    let line = if cost.is_empty() {
        line
    } else {
        format!("{line}; {cost}")
    };
    GapSummary {
        kind: kind.to_string(),
        resource,
        count: gaps.len(),
        reasons,
        examples,
        why: first.why.clone(),
        cost,
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configz_404(node: &str) -> Gap {
        Gap::status(
            GapAbout::KubeletConfig { node: node.into() },
            404,
            "the server could not find the requested resource (404)",
        )
    }

    /// The scale fixture's 126 kubelet-config gaps are one line, with a count, examples and cost.
    #[test]
    fn many_gaps_of_one_kind_are_one_line() {
        let mut gaps: Vec<Gap> = (0..126)
            .map(|i| configz_404(&format!("scale-node-{i:03}")))
            .collect();
        gaps.push(Gap::status(
            GapAbout::list(ListOf::Secrets, Some("shop")),
            403,
            "secrets is forbidden (403)",
        ));
        let s = summarise(&gaps);
        assert_eq!(s.len(), 2, "{s:#?}");
        assert_eq!(s[0].count, 126);
        assert_eq!(
            s[0].line,
            "kubelet config of 126 nodes (scale-node-000, scale-node-001, scale-node-002, and 123 \
             more): 126 not found, e.g. the server could not find the requested resource (404); \
             backoff timing assumes the kubelet's defaults"
        );
        assert_eq!(
            s[1].line,
            "secrets in namespace shop: secrets is forbidden (403); a Secret reference cannot be \
             shown missing"
        );
    }

    #[test]
    fn json_keeps_what_and_why_and_adds_the_kind() {
        let g = Gap::status(
            GapAbout::Log {
                namespace: "shop".into(),
                pod: "api-1".into(),
                container: "app".into(),
            },
            403,
            "forbidden (403)",
        );
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["kind"], "log");
        assert_eq!(v["what"], "logs of shop/api-1[app]");
        assert_eq!(v["why"], "forbidden (403)");
        assert_eq!(v["reason"], "forbidden");
        assert_eq!(v["status"], 403);
        assert_eq!(v["pod"], "api-1");
        assert_eq!(serde_json::from_value::<Gap>(v).unwrap(), g);
    }

    /// A bundle written before gaps were typed still says which lists were not read.
    #[test]
    fn untyped_gaps_of_older_bundles_are_read_as_typed() {
        let old = serde_json::json!([
            {"what": "configmaps in namespace shop", "why": "configmaps is forbidden (403)"},
            {"what": "secrets in all namespaces", "why": "not read (--no-config)"},
            {"what": "kubelet config of node n1", "why": "no answer in 5 s"},
            {"what": "something else", "why": "?"},
        ]);
        let gaps: Vec<Gap> = serde_json::from_value(old).unwrap();
        assert!(gaps[0].is_list_of(ListOf::ConfigMaps));
        assert_eq!(gaps[0].reason, GapReason::Forbidden);
        assert_eq!(gaps[0].status, Some(403));
        assert_eq!(gaps[1].about, GapAbout::list(ListOf::Secrets, None));
        assert_eq!(gaps[1].reason, GapReason::NotRequested);
        assert_eq!(gaps[2].about, GapAbout::KubeletConfig { node: "n1".into() });
        assert_eq!(gaps[3].what(), "something else");
    }
}
