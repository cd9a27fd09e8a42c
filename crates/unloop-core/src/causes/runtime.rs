//! A runtime said why it stopped, in a message the knowledge base of error signatures knows and no
//! other rule reads: a missing module, a read-only file system, a file or a port it may not use, a
//! port already taken, a dependency that rejected its credentials, a heap the runtime exhausted.

use crate::logscan::{Hit, Signal};
use crate::subject::{About, Finding, Subject};
use crate::verdict::{Cause, CauseId, Confidence, Evidence, EvidenceKind, Remedy};

/// The causes this rule names; the others have rules of their own.
const CAUSES: [CauseId; 7] = [
    CauseId::MissingModule,
    CauseId::ReadOnlyFilesystem,
    CauseId::FilePermissionDenied,
    CauseId::PortNotPermitted,
    CauseId::PortInUse,
    CauseId::DependencyAuth,
    CauseId::HeapExhausted,
];

pub fn detect(s: &Subject) -> Vec<Finding> {
    let Some(run) = s.last_run() else {
        return Vec::new();
    };
    if run.exit_code == 0 || run.reason.as_deref() == Some("OOMKilled") {
        return Vec::new();
    }
    // The last such line is the one closest to the exit.
    let Some(hit) = s
        .scan
        .signatures
        .iter()
        .rev()
        .find(|h| CAUSES.contains(&h.value.cause))
    else {
        return Vec::new();
    };
    let id = hit.value.cause;
    // A runtime's own format names its cause; a phrasing many programs share is weaker evidence.
    let confidence = if hit.value.generic {
        Confidence::Medium
    } else {
        Confidence::High
    };
    let mut cause = Cause::new(id, confidence, summary(s, hit));
    cause.evidence.extend(s.termination_evidence());
    // The log line, with the signature that recognised it (kb/RUNTIME.toml) in its source.
    cause.evidence.push(Evidence::new(
        EvidenceKind::Log,
        format!(
            "{} (signature {} in kb/{}.toml)",
            s.log_source(),
            hit.value.signature,
            hit.value.runtime
        ),
        hit.line.clone(),
    ));
    if id == CauseId::ReadOnlyFilesystem && read_only_root(s) {
        cause.evidence.push(s.spec_evidence(
            ".securityContext.readOnlyRootFilesystem",
            "readOnlyRootFilesystem: true",
        ));
    }
    if matches!(
        id,
        CauseId::PortNotPermitted | CauseId::FilePermissionDenied
    ) {
        cause.evidence.extend(run_as_user(s));
    }
    let remedies = vec![Remedy::fix(id, remedy(hit), None)];
    vec![Finding { cause, remedies, about: About::Container }]
}

fn summary(s: &Subject, hit: &Hit<Signal>) -> String {
    let f = &hit.value.fields;
    let what = |x: &Option<String>| x.clone().unwrap_or_else(|| "a path".to_string());
    let port = || match (f.host.as_deref(), f.port) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (None, Some(p)) => format!("port {p}"),
        _ => "its port".to_string(),
    };
    let c = s.container();
    match hit.value.cause {
        CauseId::MissingModule => format!(
            "{c} cannot load {}: it is not in the image",
            f.module
                .as_deref()
                .or(f.file.as_deref())
                .unwrap_or("a module it needs")
        ),
        CauseId::ReadOnlyFilesystem => {
            format!("{c} writes to {} on a read-only file system", what(&f.file))
        }
        CauseId::FilePermissionDenied => {
            format!("{c} may not open or create {}", what(&f.file))
        }
        CauseId::PortNotPermitted => format!(
            "{c} runs as a non-root user and may not bind {}, below 1024",
            port()
        ),
        CauseId::PortInUse => format!("{c} cannot listen on {}: it is already in use", port()),
        CauseId::DependencyAuth => format!(
            "a dependency rejected {c}'s credentials{}",
            f.host
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        ),
        CauseId::HeapExhausted => {
            format!("{c} exhausted its runtime's own heap (not the container's memory limit)")
        }
        other => format!("{c}: {other}"),
    }
}

fn remedy(hit: &Hit<Signal>) -> String {
    let f = &hit.value.fields;
    match hit.value.cause {
        CauseId::MissingModule => "add the missing dependency to the image (or fix the module, class or path the entry point names), rebuild and roll out".to_string(),
        CauseId::ReadOnlyFilesystem => format!(
            "mount a writable emptyDir volume at {} (or point the app's cache, temp or pid file at one); keep readOnlyRootFilesystem",
            f.file.as_deref().unwrap_or("the directory it writes")
        ),
        CauseId::FilePermissionDenied => "make the path writable by the container's user: an fsGroup that owns the volume, or an emptyDir".to_string(),
        CauseId::PortNotPermitted => format!(
            "listen on a port above 1023 (say 8080) and point the Service's targetPort at it{}; or grant the NET_BIND_SERVICE capability",
            f.port.map(|p| format!(" instead of {p}")).unwrap_or_default()
        ),
        CauseId::PortInUse => "give each container of the pod its own port: they share one network namespace".to_string(),
        CauseId::DependencyAuth => "check the user and password the container is given (its Secret) against the dependency's".to_string(),
        CauseId::HeapExhausted => "raise the runtime's heap limit (-Xmx or -XX:MaxRAMPercentage, --max-old-space-size) within the container's memory limit, or look for a leak".to_string(),
        _ => "read the crashed container's full log".to_string(),
    }
}

fn read_only_root(s: &Subject) -> bool {
    s.spec
        .security_context
        .as_ref()
        .and_then(|c| c.read_only_root_filesystem)
        == Some(true)
}

/// The user the container runs as, where the spec sets it: the container's securityContext, else
/// the pod's.
fn run_as_user(s: &Subject) -> Option<Evidence> {
    if let Some(uid) = s.spec.security_context.as_ref().and_then(|c| c.run_as_user) {
        return Some(s.spec_evidence(".securityContext.runAsUser", format!("runAsUser: {uid}")));
    }
    let uid = s
        .pod
        .spec
        .as_ref()
        .and_then(|p| p.security_context.as_ref())
        .and_then(|c| c.run_as_user)?;
    Some(Evidence::new(
        EvidenceKind::Spec,
        format!("pod/{} spec.securityContext.runAsUser", s.pod_name),
        format!("runAsUser: {uid}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, cites, finding, ids, scenario};

    #[test]
    fn a_missing_python_module_from_the_knowledge_base() {
        let state = scenario("python-missing-module");
        let f = finding(&state, detect, CauseId::MissingModule);
        assert!(cites(&f, "ModuleNotFoundError"), "{:#?}", f.cause.evidence);
    }

    #[test]
    fn a_read_only_root_is_cited_from_the_spec() {
        let mut state = scenario("python-readonly-rootfs");
        let f = finding(&state, detect, CauseId::ReadOnlyFilesystem);
        assert!(cites(&f, "readOnlyRootFilesystem: true"));
        testing::log(&mut state).text.clear();
        assert!(ids(&state, detect).is_empty());
    }

    #[test]
    fn a_healthy_log_has_no_signature() {
        assert!(ids(&testing::healthy(), detect).is_empty());
    }
}
