//! Where references resolve: within the given manifests, against a live cluster, or both
//! (`--resolve-live`: a reference resolves when either provides it, as `kubectl apply` of the
//! manifests into that cluster would). Resolution of one reference is unloop-core's
//! [`unloop_core::refs::resolve`]; this module only decides which sources can answer.

use std::collections::{BTreeSet, HashMap};

use unloop_core::refs::{self, Ref, RefKind, Unresolved};
use unloop_core::state::{ClusterState, Gap, KeySet, Scope};

use crate::inventory::ConfigSet;

/// One source of truth about which ConfigMaps, Secrets and ServiceAccounts exist.
#[derive(Debug, Clone)]
pub struct Known {
    /// What was read (scope) and what could not be (gaps); its lists are in `by_namespace`.
    state: ClusterState,
    /// ConfigMaps and Secrets (key lists) per namespace, so a lookup scans one namespace only.
    by_namespace: HashMap<String, ClusterState>,
    empty: ClusterState,
    opaque_secrets: BTreeSet<(String, String)>,
    /// None when ServiceAccounts could not be read.
    service_accounts: Option<BTreeSet<(String, String)>>,
    /// How to name this source in a message: `the given manifests`, `the cluster`.
    pub name: &'static str,
}

impl Known {
    pub fn manifests(config: &ConfigSet) -> Known {
        Known::new(
            ClusterState::default(),
            config.config_maps.clone(),
            config.secrets.clone(),
            config.opaque_secrets.clone(),
            Some(config.service_accounts.clone()),
            "the given manifests",
        )
    }

    fn new(
        state: ClusterState,
        config_maps: Vec<KeySet>,
        secrets: Vec<KeySet>,
        opaque_secrets: BTreeSet<(String, String)>,
        service_accounts: Option<BTreeSet<(String, String)>>,
        name: &'static str,
    ) -> Known {
        let mut by_namespace: HashMap<String, ClusterState> = HashMap::new();
        for cm in config_maps {
            by_namespace
                .entry(cm.namespace.clone())
                .or_default()
                .config_maps
                .push(cm);
        }
        for s in secrets {
            by_namespace
                .entry(s.namespace.clone())
                .or_default()
                .secrets
                .push(s);
        }
        Known {
            state,
            by_namespace,
            empty: ClusterState::default(),
            opaque_secrets,
            service_accounts,
            name,
        }
    }

    /// The namespace's ConfigMaps and Secrets, as a state that covers it and lacks nothing.
    fn in_namespace(&self, namespace: &str) -> &ClusterState {
        self.by_namespace.get(namespace).unwrap_or(&self.empty)
    }

    /// What a cluster holds in `namespaces` (empty: all), minus what `gaps` says was not read.
    pub fn live(
        namespaces: Vec<String>,
        config_maps: Vec<KeySet>,
        secrets: Vec<KeySet>,
        service_accounts: Option<BTreeSet<(String, String)>>,
        gaps: Vec<Gap>,
    ) -> Known {
        let state = ClusterState {
            scope: Scope {
                namespaces,
                ..Default::default()
            },
            gaps,
            ..Default::default()
        };
        Known::new(
            state,
            config_maps,
            secrets,
            BTreeSet::new(),
            service_accounts,
            "the cluster",
        )
    }

    fn can_answer(&self, namespace: &str, kind: RefKind) -> bool {
        self.state.covers(namespace)
            && match kind {
                RefKind::ConfigMap => self.state.read_config_maps(),
                RefKind::Secret => self.state.read_secrets(),
            }
    }
}

/// How one reference fares against every source that can answer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Resolved,
    /// The object is in none of the sources that were searched (named in `searched`).
    Missing {
        searched: String,
    },
    /// The object exists but not the key; `keys` are the keys it has.
    MissingKey {
        keys: Vec<String>,
        searched: String,
    },
    /// No source could answer (not read, forbidden, another namespace).
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pub sources: Vec<Known>,
}

impl Resolver {
    pub fn new(sources: Vec<Known>) -> Resolver {
        Resolver { sources }
    }

    /// Resolves a reference as if it were not optional: the caller decides what optional means.
    pub fn resolve(&self, namespace: &str, r: &Ref) -> Outcome {
        let required = Ref {
            optional: false,
            ..r.clone()
        };
        let mut searched = Vec::new();
        let mut missing_key: Option<Vec<String>> = None;
        for src in &self.sources {
            if !src.can_answer(namespace, r.kind) {
                continue;
            }
            if r.kind == RefKind::Secret
                && src
                    .opaque_secrets
                    .contains(&(namespace.to_string(), r.name.clone()))
            {
                return Outcome::Resolved;
            }
            searched.push(src.name);
            match refs::resolve(src.in_namespace(namespace), namespace, &required) {
                None => return Outcome::Resolved,
                Some(Unresolved::Missing) => {}
                Some(Unresolved::MissingKey { keys }) => {
                    missing_key.get_or_insert_with(Vec::new).extend(keys)
                }
            }
        }
        if searched.is_empty() {
            return Outcome::Unknown;
        }
        let searched = searched.join(" nor in ");
        match missing_key {
            Some(mut keys) => {
                keys.sort();
                keys.dedup();
                Outcome::MissingKey { keys, searched }
            }
            None => Outcome::Missing { searched },
        }
    }

    /// The keys a ConfigMap or Secret is known to have, from the first source that has it.
    pub fn keys(&self, namespace: &str, kind: RefKind, name: &str) -> Option<&[String]> {
        self.sources.iter().find_map(|src| {
            let state = src.in_namespace(namespace);
            let set = match kind {
                RefKind::ConfigMap => state.config_map(namespace, name),
                RefKind::Secret => state.secret(namespace, name),
            };
            set.map(|s| s.keys.as_slice())
        })
    }

    /// Whether a ServiceAccount exists: None when no source could tell.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<(bool, String)> {
        let mut searched = Vec::new();
        for src in &self.sources {
            let Some(set) = src
                .service_accounts
                .as_ref()
                .filter(|_| src.state.covers(namespace))
            else {
                continue;
            };
            if set.contains(&(namespace.to_string(), name.to_string())) {
                return Some((true, String::new()));
            }
            searched.push(src.name);
        }
        (!searched.is_empty()).then(|| (false, searched.join(" nor in ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unloop_core::state::{GapAbout, ListOf};

    fn cm(ns: &str, name: &str, keys: &[&str]) -> KeySet {
        KeySet {
            namespace: ns.into(),
            name: name.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            created_at: None,
        }
    }

    fn r(kind: RefKind, name: &str, key: Option<&str>) -> Ref {
        Ref {
            kind,
            name: name.into(),
            key: key.map(str::to_string),
            optional: false,
            via: "env X".into(),
        }
    }

    #[test]
    fn either_source_resolves_and_keys_merge() {
        let manifests = Known::manifests(&ConfigSet {
            config_maps: vec![cm("shop", "app", &["a"])],
            ..Default::default()
        });
        let live = Known::live(
            vec!["shop".into()],
            vec![cm("shop", "app", &["b"]), cm("shop", "other", &[])],
            vec![],
            None,
            vec![],
        );
        let both = Resolver::new(vec![manifests, live]);
        assert_eq!(
            both.resolve("shop", &r(RefKind::ConfigMap, "other", None)),
            Outcome::Resolved
        );
        assert_eq!(
            both.resolve("shop", &r(RefKind::ConfigMap, "app", Some("b"))),
            Outcome::Resolved
        );
        assert_eq!(
            both.resolve("shop", &r(RefKind::ConfigMap, "app", Some("c"))),
            Outcome::MissingKey {
                keys: vec!["a".into(), "b".into()],
                searched: "the given manifests nor in the cluster".into()
            }
        );
        // The live read covered only namespace shop: elsewhere only the manifests answer.
        assert_eq!(
            both.resolve("web", &r(RefKind::ConfigMap, "app", None)),
            Outcome::Missing {
                searched: "the given manifests".into()
            }
        );
    }

    #[test]
    fn unreadable_secrets_are_unknown_not_missing() {
        let gap = Gap::status(
            GapAbout::list(ListOf::Secrets, Some("shop")),
            403,
            "forbidden (403)",
        );
        let live = Resolver::new(vec![Known::live(
            vec!["shop".into()],
            vec![],
            vec![],
            None,
            vec![gap],
        )]);
        assert_eq!(
            live.resolve("shop", &r(RefKind::Secret, "db", Some("password"))),
            Outcome::Unknown
        );
        assert_eq!(live.service_account("shop", "builder"), None);
    }
}
