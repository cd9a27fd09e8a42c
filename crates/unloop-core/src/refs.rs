//! Every ConfigMap and Secret a container depends on, and whether each resolves.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::Serialize;

use crate::state::{ClusterState, KeySet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RefKind {
    ConfigMap,
    Secret,
}

impl RefKind {
    pub fn noun(self) -> &'static str {
        match self {
            RefKind::ConfigMap => "configmap",
            RefKind::Secret => "secret",
        }
    }
}

/// One reference from a container to a ConfigMap or Secret (and maybe one key of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ref {
    pub kind: RefKind,
    pub name: String,
    pub key: Option<String>,
    pub optional: bool,
    /// Where in the spec, e.g. `env DATABASE_URL`, `envFrom[0]`, `volume config`.
    pub via: String,
}

/// The references of `container` within `spec`: env, envFrom, and the volumes it mounts.
pub fn of_container(spec: &PodSpec, container: &Container) -> Vec<Ref> {
    let mut out = Vec::new();
    for env in container.env.iter().flatten() {
        let Some(from) = env.value_from.as_ref() else {
            continue;
        };
        if let Some(r) = from.config_map_key_ref.as_ref() {
            out.push(Ref {
                kind: RefKind::ConfigMap,
                name: r.name.clone(),
                key: Some(r.key.clone()),
                optional: r.optional.unwrap_or(false),
                via: format!("env {}", env.name),
            });
        }
        if let Some(r) = from.secret_key_ref.as_ref() {
            out.push(Ref {
                kind: RefKind::Secret,
                name: r.name.clone(),
                key: Some(r.key.clone()),
                optional: r.optional.unwrap_or(false),
                via: format!("env {}", env.name),
            });
        }
    }
    for (i, from) in container.env_from.iter().flatten().enumerate() {
        if let Some(r) = from.config_map_ref.as_ref() {
            out.push(Ref {
                kind: RefKind::ConfigMap,
                name: r.name.clone(),
                key: None,
                optional: r.optional.unwrap_or(false),
                via: format!("envFrom[{i}]"),
            });
        }
        if let Some(r) = from.secret_ref.as_ref() {
            out.push(Ref {
                kind: RefKind::Secret,
                name: r.name.clone(),
                key: None,
                optional: r.optional.unwrap_or(false),
                via: format!("envFrom[{i}]"),
            });
        }
    }
    let mounted: Vec<&str> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.name.as_str())
        .collect();
    for vol in spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| mounted.contains(&v.name.as_str()))
    {
        let via = format!("volume {}", vol.name);
        if let Some(cm) = vol.config_map.as_ref() {
            push_volume(
                &mut out,
                RefKind::ConfigMap,
                &cm.name,
                cm.items.as_deref(),
                cm.optional,
                &via,
            );
        }
        if let Some(s) = vol.secret.as_ref() {
            let name = s.secret_name.clone().unwrap_or_default();
            push_volume(
                &mut out,
                RefKind::Secret,
                &name,
                s.items.as_deref(),
                s.optional,
                &via,
            );
        }
        for src in vol
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_deref())
            .unwrap_or_default()
        {
            if let Some(cm) = src.config_map.as_ref() {
                push_volume(
                    &mut out,
                    RefKind::ConfigMap,
                    &cm.name,
                    cm.items.as_deref(),
                    cm.optional,
                    &via,
                );
            }
            if let Some(s) = src.secret.as_ref() {
                push_volume(
                    &mut out,
                    RefKind::Secret,
                    &s.name,
                    s.items.as_deref(),
                    s.optional,
                    &via,
                );
            }
        }
    }
    out
}

/// References the pod itself makes: imagePullSecrets.
pub fn of_pod(spec: &PodSpec) -> Vec<Ref> {
    spec.image_pull_secrets
        .iter()
        .flatten()
        .map(|s| Ref {
            kind: RefKind::Secret,
            name: s.name.clone(),
            key: None,
            optional: false,
            via: "imagePullSecrets".into(),
        })
        .collect()
}

fn push_volume(
    out: &mut Vec<Ref>,
    kind: RefKind,
    name: &str,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    optional: Option<bool>,
    via: &str,
) {
    let optional = optional.unwrap_or(false);
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                out.push(Ref {
                    kind,
                    name: name.into(),
                    key: Some(it.key.clone()),
                    optional,
                    via: via.into(),
                });
            }
        }
        _ => out.push(Ref {
            kind,
            name: name.into(),
            key: None,
            optional,
            via: via.into(),
        }),
    }
}

/// Why a reference does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Unresolved {
    /// The ConfigMap or Secret does not exist.
    Missing,
    /// It exists but lacks the key; its keys are listed.
    MissingKey { keys: Vec<String> },
}

/// What the state knows of a ConfigMap or Secret of some name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// That kind was not readable: absence proves nothing.
    Unreadable,
    /// Readable, and it does not exist.
    Absent,
    /// It exists, with these keys.
    Found(&'a KeySet),
}

/// The ConfigMap or Secret of that name as the state knows it.
pub fn lookup<'a>(
    state: &'a ClusterState,
    kind: RefKind,
    namespace: &str,
    name: &str,
) -> Lookup<'a> {
    let (readable, found) = match kind {
        RefKind::ConfigMap => (state.read_config_maps(), state.config_map(namespace, name)),
        RefKind::Secret => (state.read_secrets(), state.secret(namespace, name)),
    };
    match (readable, found) {
        (false, _) => Lookup::Unreadable,
        (true, None) => Lookup::Absent,
        (true, Some(set)) => Lookup::Found(set),
    }
}

/// Checks a reference against the cluster state. None when it resolves, is optional, or the
/// state cannot tell (the kind was not readable).
pub fn resolve(state: &ClusterState, namespace: &str, r: &Ref) -> Option<Unresolved> {
    if r.optional || !state.covers(namespace) {
        return None;
    }
    match (lookup(state, r.kind, namespace, &r.name), r.key.as_ref()) {
        (Lookup::Absent, _) => Some(Unresolved::Missing),
        (Lookup::Found(set), Some(k)) if !set.keys.contains(k) => Some(Unresolved::MissingKey {
            keys: set.keys.clone(),
        }),
        _ => None,
    }
}
