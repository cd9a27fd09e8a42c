//! Configuration and environment: missing ConfigMaps, Secrets, keys, variables and files.

use std::sync::LazyLock;

use regex::Regex;

use std::collections::HashSet;

use crate::refs::{self, Lookup, RefKind, Unresolved};
use crate::shell::{self, Arg, Argv, Cmd, Pipeline, Script};
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy, RemedyKind};

static NOT_FOUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(configmap|secret) "([^"]+)" not found"#).expect("pattern compiles")
});
static NO_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"couldn't find key (\S+) in (ConfigMap|Secret) ([^/\s]+)/(\S+)"#)
        .expect("pattern compiles")
});

pub fn detect(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(missing_objects(s));
    out.extend(missing_env(s));
    out.extend(missing_file(s));
    out
}

/// Missing ConfigMaps, Secrets and keys: from the kubelet's own words (waiting message, FailedMount
/// events), confirmed or contradicted by a lookup, and from the spec resolved against the state.
fn missing_objects(s: &Subject) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut said: Vec<(Evidence, RefKind, String, Option<String>)> = Vec::new();
    if let Some(msg) = s
        .waiting_message()
        .filter(|_| s.waiting_reason() == Some("CreateContainerConfigError"))
    {
        let ev = s.field("state.waiting.message", msg);
        if let Some(c) = NOT_FOUND.captures(msg) {
            said.push((ev.clone(), kind(&c[1]), c[2].to_string(), None));
        }
        if let Some(c) = NO_KEY.captures(msg) {
            said.push((ev, kind(&c[2]), c[4].to_string(), Some(c[1].to_string())));
        }
    }
    for e in s.container_events(&["FailedMount"]) {
        let msg = e.message.as_deref().unwrap_or_default();
        if let Some(c) = NOT_FOUND.captures(msg) {
            said.push((s.event_evidence(e), kind(&c[1]), c[2].to_string(), None));
        }
    }
    let spec = s.pod.spec.as_ref();
    let all_refs = spec
        .map(|p| refs::of_container(p, s.spec))
        .unwrap_or_default();
    // One finding per object, the kubelet's word first: a kind and a name, never a summary's text.
    let mut seen: HashSet<(RefKind, String)> = HashSet::new();
    for (ev, k, name, key) in said {
        if !seen.insert((k, name.clone())) {
            continue;
        }
        let looked_up = refs::lookup(s.state, k, s.namespace, &name);
        let exists_now = match looked_up {
            Lookup::Found(set) => Some(set),
            Lookup::Absent | Lookup::Unreadable => None,
        };
        let via: Vec<String> = all_refs
            .iter()
            .filter(|r| r.kind == k && r.name == name && (key.is_none() || r.key == key))
            .map(|r| r.via.clone())
            .collect();
        let mut f = match &key {
            None => object_finding(s, k, &name, &via, Confidence::High),
            Some(key) => key_finding(
                s,
                k,
                &name,
                key,
                &via,
                exists_now.map(|x| x.keys.clone()).unwrap_or_default(),
            ),
        };
        f.cause.evidence.insert(0, ev);
        match looked_up {
            Lookup::Found(set) if key.as_ref().is_none_or(|k| set.keys.contains(k)) => {
                let when = set
                    .created_at
                    .map(|t| format!(" (created {t})"))
                    .unwrap_or_default();
                f.cause.summary.push_str(&format!(
                    "; it exists now{when}, so the pod only waits for the kubelet's next retry"
                ));
                f.cause.evidence.push(Evidence::new(
                    EvidenceKind::Lookup,
                    format!("{} {}/{name}", k.noun(), s.namespace),
                    format!("exists now{when}"),
                ));
                f.remedies = vec![retry_now(s, f.cause.id)];
            }
            Lookup::Absent => f.cause.evidence.push(Evidence::new(
                EvidenceKind::Lookup,
                format!("{} {}/{name}", k.noun(), s.namespace),
                "does not exist",
            )),
            _ => {}
        }
        out.push(f);
    }
    // References the kubelet has not complained about yet (the pod may be failing for another
    // reason first, or the state came from manifests).
    for r in &all_refs {
        if seen.contains(&(r.kind, r.name.clone())) {
            continue;
        }
        let unresolved = refs::resolve(s.state, s.namespace, r);
        if unresolved.is_some() {
            seen.insert((r.kind, r.name.clone()));
        }
        match unresolved {
            Some(Unresolved::Missing) => {
                let mut f = object_finding(
                    s,
                    r.kind,
                    &r.name,
                    std::slice::from_ref(&r.via),
                    Confidence::Medium,
                );
                f.cause.evidence.push(Evidence::new(
                    EvidenceKind::Lookup,
                    format!("{} {}/{}", r.kind.noun(), s.namespace, r.name),
                    "does not exist",
                ));
                out.push(f);
            }
            Some(Unresolved::MissingKey { keys }) => {
                let key = r.key.clone().unwrap_or_default();
                out.push(key_finding(
                    s,
                    r.kind,
                    &r.name,
                    &key,
                    std::slice::from_ref(&r.via),
                    keys,
                ));
            }
            None => {}
        }
    }
    out
}

fn kind(word: &str) -> RefKind {
    if word.eq_ignore_ascii_case("secret") {
        RefKind::Secret
    } else {
        RefKind::ConfigMap
    }
}

fn object_finding(
    s: &Subject,
    k: RefKind,
    name: &str,
    via: &[String],
    confidence: Confidence,
) -> Finding {
    let id = match k {
        RefKind::ConfigMap => CauseId::MissingConfigmap,
        RefKind::Secret => CauseId::MissingSecret,
    };
    let used = if via.is_empty() {
        String::new()
    } else {
        format!(" (used by {})", via.join(", "))
    };
    let mut cause = Cause::new(
        id,
        confidence,
        format!(
            "the {} \"{name}\" that container {} needs does not exist{used}",
            k.noun(),
            s.container()
        ),
    );
    for v in via {
        cause
            .evidence
            .push(s.spec_evidence("", format!("{v} → {} {name}", k.noun())));
    }
    let keys: Vec<String> = refs_keys(s, k, name);
    let literals: Vec<Arg> = if keys.is_empty() {
        vec![
            Arg::lit("--from-literal=")
                .then_placeholder("key")
                .then("=")
                .then_placeholder("value"),
        ]
    } else {
        keys.iter()
            .map(|k| Arg::lit(format!("--from-literal={k}=")).then_placeholder("value"))
            .collect()
    };
    let words: &[&str] = match k {
        RefKind::ConfigMap => &["create", "configmap"],
        RefKind::Secret => &["create", "secret", "generic"],
    };
    let mut cmd = s.kubectl(words, name);
    for l in literals {
        cmd = cmd.flag(l);
    }
    Finding {
        about: About::Object(k, name.to_string()),
        cause,
        remedies: vec![
            Remedy::fix(
                id,
                format!("create the {} {name}", k.noun()),
                Some(cmd.into()),
            ),
            retry_now(s, id),
        ],
    }
}

fn key_finding(
    s: &Subject,
    k: RefKind,
    name: &str,
    key: &str,
    via: &[String],
    keys: Vec<String>,
) -> Finding {
    let id = CauseId::MissingConfigKey;
    let used = if via.is_empty() {
        String::new()
    } else {
        format!(" (used by {})", via.join(", "))
    };
    let mut cause = Cause::new(
        id,
        Confidence::High,
        format!("the {} \"{name}\" has no key {key}{used}", k.noun()),
    );
    if !keys.is_empty() || s.state.read_config_maps() {
        let listed = if keys.is_empty() {
            "no keys".to_string()
        } else {
            keys.join(", ")
        };
        cause.evidence.push(Evidence::new(
            EvidenceKind::Lookup,
            format!("{} {}/{name}", k.noun(), s.namespace),
            format!("has keys: {listed}"),
        ));
    }
    let field = match k {
        RefKind::ConfigMap => "data",
        RefKind::Secret => "stringData",
    };
    let patch = serde_json::json!({ field: { key: "<value>" } }).to_string();
    let cmd = Cmd::kubectl(&["patch", k.noun()])
        .operand(name)
        .flag_value("-n", s.namespace)
        .flag_value("--type", "merge")
        .flag_value("-p", patch);
    Finding {
        about: About::Object(k, name.to_string()),
        cause,
        remedies: vec![
            Remedy::fix(
                id,
                format!("add the key {key} to {} {name}", k.noun()),
                Some(cmd.into()),
            ),
            retry_now(s, id),
        ],
    }
}

/// The keys the container asks of one object, for a `create` command that gives it all of them.
fn refs_keys(s: &Subject, k: RefKind, name: &str) -> Vec<String> {
    let Some(spec) = s.pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut keys: Vec<String> = refs::of_container(spec, s.spec)
        .into_iter()
        .filter(|r| r.kind == k && r.name == name)
        .filter_map(|r| r.key)
        .collect();
    keys.dedup();
    keys
}

/// How to retry at once when the cause is fixed. Deleting a pod whose controller re-creates it
/// skips the rest of the backoff; a failed Job does not run again by itself; a bare pod deleted is
/// gone for good.
pub fn retry_now(s: &Subject, id: CauseId) -> Remedy {
    use crate::workload::WorkloadKind;
    let name = s.workload.name.as_str();
    // A container whose own restart settings restart it after this exit (restartPolicyRules in a
    // Job's or a bare pod's Never pod) retries by itself: re-running the Job or re-creating the pod
    // is not needed, and deleting a Job's pod would count as a failure of the Job.
    if matches!(s.workload.kind, WorkloadKind::Job | WorkloadKind::Pod)
        && let Some(code) = s.exit_code()
        && let on = s.restart_on(code)
        && on.container_decides()
        && let Some(why) = on.reason()
    {
        return Remedy::new(
            Some(id),
            RemedyKind::Retry,
            format!(
                "once fixed, nothing to re-run: the kubelet restarts the container at the end of its backoff ({why})"
            ),
            None,
        );
    }
    let (title, script) = match s.workload.kind {
        WorkloadKind::Job => (
            "once fixed, run the Job again, re-created from its spec (a failed Job does not retry by itself; unloop retry does this and follows it)",
            crate::jobs::rerun_script(name, s.namespace),
        ),
        WorkloadKind::CronJob => (
            "once fixed, run the CronJob now instead of waiting for its schedule",
            crate::jobs::from_cronjob(name, s.namespace).into(),
        ),
        WorkloadKind::Pod => {
            let file = format!("{}.yaml", s.pod_name);
            let saved = Pipeline::from(
                s.kubectl(&["get", "pod"], s.pod_name)
                    .flag_value("-o", "yaml"),
            )
            .to_file(&file);
            let file = saved.stdout.clone().unwrap_or_default();
            (
                "once fixed, re-create the pod: it has no controller, so save its manifest first",
                Script::new(saved)
                    .and_then(s.kubectl(&["delete", "pod"], s.pod_name))
                    .and_then(Argv::new("kubectl").args(["apply", "-f"]).arg(file)),
            )
        }
        _ => (
            "once fixed, retry now instead of waiting out the backoff (the controller re-creates the pod)",
            s.kubectl(&["delete", "pod"], s.pod_name).into(),
        ),
    };
    Remedy::new(Some(id), RemedyKind::Retry, title, Some(script))
}

fn missing_env(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    let defined: Vec<&str> = s
        .spec
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    // One finding per variable, by its name: DB_HOST is not DB_HOST_URL.
    let mut seen: HashSet<&str> = HashSet::new();
    for hit in &s.scan.missing_env {
        let var = &hit.value;
        if !seen.insert(var.as_str()) {
            continue;
        }
        if let Some(f) = env_from_reference(s, var, &hit.line) {
            out.push(f);
            continue;
        }
        let in_spec = defined.contains(&var.as_str());
        let from_keys = env_from_keys(s).into_iter().any(|k| &k == var);
        let mut cause = Cause::new(
            CauseId::MissingEnvVar,
            if in_spec || from_keys { Confidence::Medium } else { Confidence::High },
            if in_spec || from_keys {
                format!("the app says {var} is missing or empty, though the spec sets it: check its value")
            } else {
                format!("the app exits because the environment variable {var} is not set")
            },
        )
        .with(s.log_evidence(&hit.line));
        let env_from: Vec<String> = s
            .spec
            .env_from
            .iter()
            .flatten()
            .filter_map(|f| {
                f.config_map_ref
                    .as_ref()
                    .map(|r| format!("configmap {}", r.name))
                    .or_else(|| f.secret_ref.as_ref().map(|r| format!("secret {}", r.name)))
            })
            .collect();
        let listed = if defined.is_empty() {
            "none".into()
        } else {
            defined.join(", ")
        };
        let from = if env_from.is_empty() {
            String::new()
        } else {
            format!("; envFrom: {}", env_from.join(", "))
        };
        cause.evidence.push(s.spec_evidence(
            ".env",
            format!(
                "{} {var} (env: {listed}{from})",
                if in_spec { "sets" } else { "has no" }
            ),
        ));
        out.push(Finding {
            about: About::EnvVar(var.clone()),
            cause,
            remedies: vec![
                s.set_env_remedy(CauseId::MissingEnvVar, var),
                retry_now(s, CauseId::MissingEnvVar),
            ],
        });
    }
    out
}

/// The app misses a variable that the spec takes from an optional ConfigMap or Secret key: the
/// object or key was absent when the container started, so the variable was silently unset.
fn env_from_reference(s: &Subject, var: &str, line: &str) -> Option<Finding> {
    let env = s.spec.env.iter().flatten().find(|e| e.name == var)?;
    let from = env.value_from.as_ref()?;
    let (k, name, key) = if let Some(r) = from.config_map_key_ref.as_ref() {
        (RefKind::ConfigMap, r.name.clone(), r.key.clone())
    } else if let Some(r) = from.secret_key_ref.as_ref() {
        (RefKind::Secret, r.name.clone(), r.key.clone())
    } else {
        return None;
    };
    let found = refs::lookup(s.state, k, s.namespace, &name);
    let via = vec![format!("env {var}")];
    let log = s.log_evidence(line);
    let lookup = |text: String| {
        Evidence::new(
            EvidenceKind::Lookup,
            format!("{} {}/{name}", k.noun(), s.namespace),
            text,
        )
    };
    let mut f = match found {
        Lookup::Unreadable => return None,
        Lookup::Absent => {
            let mut f = object_finding(s, k, &name, &via, Confidence::High);
            f.cause.summary = format!(
                "{var} comes from the {} \"{name}\" (optional), which does not exist, so the variable is unset",
                k.noun()
            );
            f.cause.evidence.push(lookup("does not exist".into()));
            f
        }
        Lookup::Found(set) if !set.keys.contains(&key) => {
            key_finding(s, k, &name, &key, &via, set.keys.clone())
        }
        Lookup::Found(set) => {
            // It exists with the key: was it created after the crashed instance started?
            let started = s
                .last_run()
                .and_then(|t| t.started_at.as_ref())
                .map(|t| t.0);
            let (Some(created), Some(started)) = (set.created_at, started) else {
                return None;
            };
            if created <= started {
                return None;
            }
            let id = match k {
                RefKind::ConfigMap => CauseId::MissingConfigmap,
                RefKind::Secret => CauseId::MissingSecret,
            };
            let cause = Cause::new(
                id,
                Confidence::High,
                format!(
                    "{var} comes from the {} \"{name}\", which did not exist when the container last started; it exists now (created {created}), so the next restart will pick it up",
                    k.noun()
                ),
            )
            .with(lookup(format!("exists now, created {created}, after the crashed instance started at {started}")));
            Finding {
                about: About::Object(k, name.clone()),
                cause,
                remedies: vec![retry_now(s, id)],
            }
        }
    };
    f.cause.evidence.insert(0, log);
    f.cause.evidence.retain(|e| e.kind != EvidenceKind::Spec);
    f.cause.evidence.push(s.spec_evidence(
        ".env",
        format!(
            "{var} ← {} {name} key {key}{}",
            k.noun(),
            if env_optional(from) {
                " (optional: true)"
            } else {
                ""
            }
        ),
    ));
    Some(f)
}

fn env_optional(from: &k8s_openapi::api::core::v1::EnvVarSource) -> bool {
    from.config_map_key_ref
        .as_ref()
        .and_then(|r| r.optional)
        .or_else(|| from.secret_key_ref.as_ref().and_then(|r| r.optional))
        .unwrap_or(false)
}

/// Keys that envFrom brings in, when the referenced objects are known.
fn env_from_keys(s: &Subject) -> Vec<String> {
    let mut keys = Vec::new();
    for f in s.spec.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        if let Some(set) = f
            .config_map_ref
            .as_ref()
            .and_then(|r| s.state.config_map(s.namespace, &r.name))
        {
            keys.extend(set.keys.iter().map(|k| format!("{prefix}{k}")));
        }
        if let Some(set) = f
            .secret_ref
            .as_ref()
            .and_then(|r| s.state.secret(s.namespace, &r.name))
        {
            keys.extend(set.keys.iter().map(|k| format!("{prefix}{k}")));
        }
    }
    keys
}

fn missing_file(s: &Subject) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(hit) = s.scan.missing_file.first() else {
        return out;
    };
    let path = &hit.value;
    let mut cause = Cause::new(
        CauseId::MissingConfigFile,
        Confidence::High,
        format!("the app exits because {path} does not exist in the container"),
    )
    .with(s.log_evidence(&hit.line));
    let mut remedies = Vec::new();
    // Which mount should have provided it?
    let mount = s
        .spec
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| path.starts_with(m.mount_path.trim_end_matches('/')))
        .max_by_key(|m| m.mount_path.len());
    match mount {
        Some(m) => {
            let vol = s
                .pod
                .spec
                .as_ref()
                .and_then(|p| p.volumes.as_ref())
                .and_then(|vs| vs.iter().find(|v| v.name == m.name));
            let file = path
                .strip_prefix(m.mount_path.trim_end_matches('/'))
                .unwrap_or(path)
                .trim_start_matches('/');
            let (noun, obj) = match vol {
                Some(v) if v.config_map.is_some() => {
                    ("configmap", v.config_map.as_ref().map(|c| c.name.clone()))
                }
                Some(v) if v.secret.is_some() => (
                    "secret",
                    v.secret.as_ref().and_then(|c| c.secret_name.clone()),
                ),
                _ => ("volume", None),
            };
            let mut text = format!(
                "{} is mounted at {} from volume {}",
                file, m.mount_path, m.name
            );
            if let Some(obj) = obj.as_deref() {
                text = format!(
                    "volume {} ({noun} {obj}) is mounted at {}",
                    m.name, m.mount_path
                );
                let keys = if noun == "configmap" {
                    s.state.config_map(s.namespace, obj)
                } else {
                    s.state.secret(s.namespace, obj)
                };
                if let Some(set) = keys {
                    let listed = if set.keys.is_empty() {
                        "no keys".into()
                    } else {
                        set.keys.join(", ")
                    };
                    cause.evidence.push(Evidence::new(
                        EvidenceKind::Lookup,
                        format!("{noun} {}/{obj}", s.namespace),
                        format!("has keys: {listed}; none is {file}"),
                    ));
                }
                let words: &[&str] = if noun == "configmap" {
                    &["create", "configmap"]
                } else {
                    &["create", "secret", "generic"]
                };
                let create = s
                    .kubectl(words, obj)
                    .flag(format!("--from-file={file}=./{}", shell::file_name(file)))
                    .flag("--dry-run=client")
                    .flag_value("-o", "yaml");
                remedies.push(Remedy::fix(
                    CauseId::MissingConfigFile,
                    format!("add {file} to {noun} {obj}"),
                    Some(
                        Pipeline::of(vec![
                            create.build(),
                            Argv::new("kubectl").args(["apply", "-f", "-"]),
                        ])
                        .into(),
                    ),
                ));
            }
            cause.evidence.push(s.spec_evidence(".volumeMounts", text));
        }
        None => {
            cause.evidence.push(s.spec_evidence(
                ".volumeMounts",
                format!("no volume is mounted at or above {path}"),
            ));
            remedies.push(Remedy::fix(CauseId::MissingConfigFile, format!("mount a ConfigMap or Secret that provides {path}, or bake the file into the image"), None));
        }
    }
    remedies.push(retry_now(s, CauseId::MissingConfigFile));
    out.push(Finding { cause, remedies, about: About::Container });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};
    use crate::state::{GapAbout, ListOf};

    #[test]
    fn a_variable_the_log_misses_and_the_spec_lacks() {
        let state = scenario("missing-env-var");
        let f = finding(&state, detect, CauseId::MissingEnvVar);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "DATABASE_URL is not set"));
        assert!(cites(&f, "has no DATABASE_URL"));
        assert_eq!(f.about, About::EnvVar("DATABASE_URL".into()));
    }

    #[test]
    fn a_variable_the_spec_sets_is_only_a_medium_finding() {
        let mut state = scenario("missing-env-var");
        let env = testing::container(&mut state).env.as_mut().unwrap();
        let mut set = env[0].clone();
        set.name = "DATABASE_URL".into();
        env.push(set);
        let f = finding(&state, detect, CauseId::MissingEnvVar);
        assert_eq!(f.cause.confidence, Confidence::Medium);
        assert!(f.cause.summary.contains("though the spec sets it"));
    }

    /// Old behaviour: DATABASE_URL was dropped because the summary about DATABASE_URL_RO contains it.
    #[test]
    fn a_variable_is_not_hidden_by_a_longer_one() {
        let mut state = scenario("missing-env-var");
        let log = testing::log(&mut state);
        let line = log
            .text
            .lines()
            .find(|l| l.contains("DATABASE_URL"))
            .unwrap()
            .to_string();
        log.text = log.text.replace(
            &line,
            &format!("{}\n{line}", line.replace("DATABASE_URL", "DATABASE_URL_RO")),
        );
        let abouts: Vec<About> = testing::run(&state, detect)
            .into_iter()
            .map(|f| f.about)
            .collect();
        assert_eq!(
            abouts,
            [
                About::EnvVar("DATABASE_URL_RO".into()),
                About::EnvVar("DATABASE_URL".into())
            ]
        );
        let report = crate::diagnose(&state, &Default::default(), testing::now(&state));
        let causes = &report.diagnoses[0].causes;
        assert_eq!(causes.len(), 2, "{causes:#?}");
        assert!(causes.iter().all(|c| c.id == CauseId::MissingEnvVar));
    }

    #[test]
    fn a_missing_configmap_in_the_kubelets_words_confirmed_by_a_lookup() {
        let state = scenario("missing-configmap");
        let f = finding(&state, detect, CauseId::MissingConfigmap);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, r#"configmap "api-config" not found"#));
        assert!(cites(&f, "does not exist"));
        assert!(f.remedies.iter().any(|r| r.kind == RemedyKind::Fix));
    }

    #[test]
    fn a_configmap_created_since_only_needs_a_retry() {
        let mut state = scenario("missing-configmap");
        let mut created = state.config_maps[0].clone();
        created.name = "api-config".into();
        state.config_maps.push(created);
        let f = finding(&state, detect, CauseId::MissingConfigmap);
        assert!(f.cause.summary.contains("it exists now"));
        assert_eq!(f.remedies.len(), 1);
        assert_eq!(f.remedies[0].kind, RemedyKind::Retry);
    }

    #[test]
    fn unreadable_configmaps_prove_nothing() {
        let mut state = scenario("missing-configmap");
        state.gaps.push(crate::state::Gap::status(
            GapAbout::list(ListOf::ConfigMaps, Some("missing-configmap")),
            403,
            "forbidden (403)",
        ));
        let f = finding(&state, detect, CauseId::MissingConfigmap);
        assert!(!cites(&f, "does not exist"));
    }

    /// Old behaviour: the ConfigMap was dropped because the Secret's summary names "db-credentials".
    #[test]
    fn a_configmap_and_a_secret_of_one_name_are_both_reported() {
        let mut state = scenario("missing-secret");
        let c = testing::container(&mut state);
        c.env_from = Some(vec![k8s_openapi::api::core::v1::EnvFromSource {
            config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                name: "db-credentials".into(),
                optional: None,
            }),
            ..Default::default()
        }]);
        let found = ids(&state, detect);
        assert!(found.contains(&(CauseId::MissingSecret, Confidence::High)));
        assert!(found.contains(&(CauseId::MissingConfigmap, Confidence::Medium)));
        let report = crate::diagnose(&state, &Default::default(), testing::now(&state));
        let causes: Vec<CauseId> = report.diagnoses[0].causes.iter().map(|c| c.id).collect();
        assert_eq!(causes, [CauseId::MissingSecret, CauseId::MissingConfigmap]);
    }

    #[test]
    fn a_secret_without_the_key() {
        let state = scenario("missing-secret-key");
        let f = finding(&state, detect, CauseId::MissingConfigKey);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(cites(&f, "couldn't find key password"));
        assert!(cites(&f, "has keys: "));
    }

    #[test]
    fn a_missing_file_names_its_mount() {
        let state = scenario("missing-config-file");
        let f = finding(&state, detect, CauseId::MissingConfigFile);
        assert_eq!(f.cause.confidence, Confidence::High);
        assert!(f.cause.summary.contains("/etc/app/config.yaml"));
    }

    #[test]
    fn a_healthy_pod_misses_nothing() {
        assert!(testing::run(&testing::healthy(), detect).is_empty());
    }
}
