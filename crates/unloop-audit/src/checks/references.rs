//! References that must resolve before a container can start: ConfigMaps, Secrets and their keys
//! (enumerated by unloop-core's [`unloop_core::refs`], the same list diagnosis checks), the pod's
//! imagePullSecrets and ServiceAccount, and files the command line expects in a mounted volume.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{KeyToPath, PodSpec, Volume};
use unloop_core::refs::{self, Ref, RefKind};
use unloop_core::shell::{self, Arg, Cmd};

use super::{Context, Subject, workload_finding};
use crate::check::{CheckId, Finding, Fix};
use crate::inventory::Workload;
use crate::resolve::Outcome;
use crate::yaml::Yaml;

/// A command inside a fix's text, quoted by the one renderer.
fn command(cmd: Cmd) -> String {
    shell::render(&cmd.into())
}

fn kind_word(kind: RefKind) -> &'static str {
    match kind {
        RefKind::ConfigMap => "ConfigMap",
        RefKind::Secret => "Secret",
    }
}

pub(crate) fn check(s: &Subject, ctx: &Context, out: &mut Vec<Finding>) {
    let all = refs::of_container(s.spec, s.container);
    for r in &all {
        if let Some((check, message, fix)) = judge(s.workload, r, &all, ctx) {
            out.push(s.finding(check, message, fix));
        }
    }
    config_files(s, ctx, out);
}

/// References of the pod rather than of one container: imagePullSecrets, serviceAccountName.
pub(crate) fn pod_level(w: &Workload, spec: &PodSpec, ctx: &Context, out: &mut Vec<Finding>) {
    let pull = refs::of_pod(spec);
    for r in &pull {
        if let Some((check, message, fix)) = judge(w, r, &pull, ctx) {
            out.push(workload_finding(w, check, message, fix));
        }
    }
    #[allow(deprecated)]
    let account = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .filter(|a| !a.is_empty() && *a != "default");
    if let Some(account) = account
        && let Some((false, searched)) = ctx.resolver.service_account(&w.namespace, account)
    {
        let yaml = Yaml::map([
            ("apiVersion", "v1".into()),
            ("kind", "ServiceAccount".into()),
            (
                "metadata",
                Yaml::map([
                    ("name", account.into()),
                    ("namespace", w.namespace.clone().into()),
                ]),
            ),
        ]);
        out.push(workload_finding(
            w,
            CheckId::UnresolvedServiceAccount,
            format!("serviceAccountName {account} is not in {searched}"),
            Fix::with_yaml(
                format!(
                    "create ServiceAccount {account} in namespace {} (with the RBAC the app needs)",
                    w.namespace
                ),
                yaml,
            ),
        ));
    }
}

fn judge(w: &Workload, r: &Ref, siblings: &[Ref], ctx: &Context) -> Option<(CheckId, String, Fix)> {
    let ns = &w.namespace;
    let what = kind_word(r.kind);
    match ctx.resolver.resolve(ns, r) {
        Outcome::Resolved | Outcome::Unknown => None,
        Outcome::Missing { searched } if r.optional => Some((
            CheckId::OptionalReferenceUnresolved,
            format!(
                "{} reads {what} {} with optional: true, and it is not in {searched}: the container starts without {}",
                r.via,
                r.name,
                provides(r)
            ),
            Fix::text(format!(
                "create {what} {} in namespace {ns}, or drop optional: true if the app cannot run without it",
                r.name
            )),
        )),
        Outcome::Missing { searched } => {
            let check = if r.kind == RefKind::ConfigMap {
                CheckId::UnresolvedConfigmap
            } else {
                CheckId::UnresolvedSecret
            };
            Some((
                check,
                format!(
                    "{} names {what} {}, which is not in {searched}",
                    r.via, r.name
                ),
                create_fix(ns, r, siblings),
            ))
        }
        Outcome::MissingKey { keys, searched } => {
            let key = r.key.clone().unwrap_or_default();
            let has = if keys.is_empty() {
                "it has no keys".to_string()
            } else {
                format!("it has {}", keys.join(", "))
            };
            let where_ = if searched.contains(" nor ") {
                String::new()
            } else {
                format!(" in {searched}")
            };
            let message = format!(
                "{} needs key {key} of {what} {}{where_}; {has}",
                r.via, r.name
            );
            if r.optional {
                return Some((
                    CheckId::OptionalReferenceUnresolved,
                    format!(
                        "{message}; optional: true, so the container starts without {}",
                        provides(r)
                    ),
                    Fix::text(format!(
                        "add key {key} to {what} {}, or drop optional: true if the app cannot run without it",
                        r.name
                    )),
                ));
            }
            let fix = match r.kind {
                RefKind::ConfigMap => Fix::text(format!(
                    "add key {key} to ConfigMap {} ({}), or reference one of its keys",
                    r.name,
                    command(
                        Cmd::kubectl(&["edit", "configmap"])
                            .operand(&r.name)
                            .flag_value("-n", ns)
                    )
                )),
                RefKind::Secret => {
                    let patch = serde_json::json!({ "stringData": { &key: "<value>" } });
                    Fix::text(format!(
                        "add key {key} to Secret {}: {}",
                        r.name,
                        command(
                            Cmd::kubectl(&["patch", "secret"])
                                .operand(&r.name)
                                .flag_value("-n", ns)
                                .flag_value("--type", "merge")
                                .flag_value("-p", patch.to_string())
                        )
                    ))
                }
            };
            Some((CheckId::UnresolvedKey, message, fix))
        }
    }
}

/// What a reference provides the container, for "starts without ...".
fn provides(r: &Ref) -> String {
    match r.via.strip_prefix("env ") {
        Some(var) => format!("{var} set"),
        None if r.via.starts_with("envFrom") => "its variables".into(),
        None => format!("the files of {}", r.via),
    }
}

/// Create the missing object, with the keys this container reads from it. Secrets are created
/// with kubectl so that no value is ever written into a manifest by following the advice.
fn create_fix(ns: &str, r: &Ref, siblings: &[Ref]) -> Fix {
    let keys: BTreeSet<&str> = siblings
        .iter()
        .filter(|o| o.kind == r.kind && o.name == r.name)
        .filter_map(|o| o.key.as_deref())
        .collect();
    match r.kind {
        RefKind::Secret if r.via == "imagePullSecrets" => Fix::text(format!(
            "create it: {}",
            command(
                Cmd::kubectl(&["create", "secret", "docker-registry"])
                    .operand(&r.name)
                    .flag_value("-n", ns)
                    .flag(Arg::lit("--docker-server=").then_placeholder("registry"))
                    .flag(Arg::lit("--docker-username=").then_placeholder("user"))
                    .flag(Arg::lit("--docker-password=").then_placeholder("password"))
            )
        )),
        RefKind::Secret => {
            let mut cmd = Cmd::kubectl(&["create", "secret", "generic"])
                .operand(&r.name)
                .flag_value("-n", ns);
            if keys.is_empty() {
                cmd = cmd.flag(
                    Arg::lit("--from-literal=")
                        .then_placeholder("KEY")
                        .then("=")
                        .then_placeholder("value"),
                );
            }
            for k in &keys {
                cmd = cmd.flag(Arg::lit(format!("--from-literal={k}=")).then_placeholder("value"));
            }
            Fix::text(format!("create it before the workload: {}", command(cmd)))
        }
        RefKind::ConfigMap => {
            let data: Vec<(&str, Yaml)> = keys.iter().map(|k| (*k, "<value>".into())).collect();
            let yaml = Yaml::map([
                ("apiVersion", "v1".into()),
                ("kind", "ConfigMap".into()),
                (
                    "metadata",
                    Yaml::map([("name", r.name.clone().into()), ("namespace", ns.into())]),
                ),
                ("data", Yaml::map(data)),
            ]);
            Fix::with_yaml(
                format!(
                    "create ConfigMap {} in namespace {ns} with the keys the container reads, or mark the reference optional: true",
                    r.name
                ),
                yaml,
            )
        }
    }
}

/// The file names a ConfigMap, Secret or projected volume provides at its mount path; None when
/// unknown (the object is not among the sources, or a source gives no key list).
fn volume_files(v: &Volume, ns: &str, ctx: &Context) -> Option<BTreeSet<String>> {
    let mut files = BTreeSet::new();
    let mut add = |kind: RefKind, name: &str, items: Option<&[KeyToPath]>| -> Option<()> {
        match items.filter(|i| !i.is_empty()) {
            Some(items) => files.extend(items.iter().map(|i| first_component(&i.path))),
            None => files.extend(ctx.resolver.keys(ns, kind, name)?.iter().cloned()),
        }
        Some(())
    };
    if let Some(cm) = &v.config_map {
        add(RefKind::ConfigMap, &cm.name, cm.items.as_deref())?;
    } else if let Some(sec) = &v.secret {
        add(
            RefKind::Secret,
            sec.secret_name.as_deref().unwrap_or_default(),
            sec.items.as_deref(),
        )?;
    } else if let Some(p) = &v.projected {
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                add(RefKind::ConfigMap, &cm.name, cm.items.as_deref())?;
            } else if let Some(sec) = &src.secret {
                add(RefKind::Secret, &sec.name, sec.items.as_deref())?;
            } else {
                // downwardAPI, serviceAccountToken, clusterTrustBundle: files not modelled here.
                return None;
            }
        }
    } else {
        return None;
    }
    Some(files)
}

fn first_component(path: &str) -> String {
    path.trim_start_matches("./")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn volume_source_text(v: &Volume) -> String {
    if let Some(cm) = &v.config_map {
        format!("ConfigMap {}", cm.name)
    } else if let Some(s) = &v.secret {
        format!("Secret {}", s.secret_name.as_deref().unwrap_or_default())
    } else {
        format!("projected volume {}", v.name)
    }
}

/// Paths on the command line (or in literal env values) under a ConfigMap or Secret mount that
/// the volume does not provide: `--config /etc/app/config.yaml` with only `settings.yaml` there.
fn config_files(s: &Subject, ctx: &Context, out: &mut Vec<Finding>) {
    let c = s.container;
    let volumes = s.spec.volumes.as_deref().unwrap_or_default();
    let words: Vec<&str> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .chain(c.env.iter().flatten().filter_map(|e| e.value.as_ref()))
        .flat_map(|a| {
            a.split(|ch: char| {
                ch.is_whitespace() || ch == '=' || ch == ',' || ch == '\'' || ch == '"'
            })
        })
        .filter(|w| w.starts_with('/'))
        .collect();
    if words.is_empty() {
        return;
    }
    for m in c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.sub_path.as_deref().is_none_or(str::is_empty))
    {
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            continue;
        };
        let mount = m.mount_path.trim_end_matches('/');
        let prefix = format!("{mount}/");
        let mut named: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| w.starts_with(&prefix) && w.len() > prefix.len())
            .collect();
        if named.is_empty() {
            continue;
        }
        named.dedup();
        let Some(files) = volume_files(v, &s.workload.namespace, ctx) else {
            continue;
        };
        for path in named {
            let file = first_component(&path[prefix.len()..]);
            if file.is_empty() || files.contains(&file) {
                continue;
            }
            let source = volume_source_text(v);
            let has = if files.is_empty() {
                "no files".to_string()
            } else {
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            let fix = match files.iter().next() {
                Some(existing) if files.len() == 1 => Fix::text(format!(
                    "point the command at {prefix}{existing}, or add key {file} to {source}"
                )),
                _ => Fix::text(format!(
                    "add key {file} to {source}, or point the command at a file it has"
                )),
            };
            out.push(s.finding(
                CheckId::ConfigFileMissing,
                format!(
                    "the command line names {path}, but {source} mounted at {mount} provides {has}"
                ),
                fix,
            ));
        }
    }
}
