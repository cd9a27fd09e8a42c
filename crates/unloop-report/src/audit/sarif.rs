//! SARIF 2.1.0, for code-scanning UIs (GitHub, GitLab, Azure DevOps). Every check is a rule;
//! every finding a result with a physical location (manifest file and line) when it came from a
//! manifest and a logical one (namespace/kind/name/container) always. Suppressed findings are
//! kept as results with `suppressions`, as the format intends.

use serde_json::{Value, json};

use super::RenderOptions;
use unloop_audit::AuditReport;
use unloop_audit::check::{CheckId, Finding, Severity};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A URI reference for a path as the user gave it: relative paths stay relative (resolved
/// against the repository root by code-scanning UIs), absolute ones become `file://` URIs.
fn uri(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                encoded.push(b as char)
            }
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    let encoded = encoded
        .strip_prefix("./")
        .map(str::to_string)
        .unwrap_or(encoded);
    if path.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

fn rule(c: CheckId) -> Value {
    json!({
        "id": c.as_str(),
        "name": c.as_str(),
        "shortDescription": { "text": c.title() },
        "fullDescription": { "text": c.why() },
        "help": {
            "text": format!("{} See docs/audit-checks.md#{}.", c.why(), c.as_str()),
            "markdown": format!("{}\n\nSee [docs/audit-checks.md](docs/audit-checks.md#{}).", c.why(), c.as_str()),
        },
        "defaultConfiguration": { "level": level(c.default_severity()) },
        "properties": { "tags": ["kubernetes", "crashloopbackoff", if c.live_only() { "live" } else { "manifest" }] },
    })
}

fn result(f: &Finding) -> Value {
    let rule_index = CheckId::ALL.iter().position(|c| *c == f.check).unwrap_or(0);
    let mut fqn = vec![
        f.object.namespace.as_str(),
        f.object.kind.as_str(),
        f.object.name.as_str(),
    ];
    fqn.retain(|p| !p.is_empty());
    if let Some(c) = &f.container {
        fqn.push(c);
    }
    let mut location = json!({
        "logicalLocations": [{
            "name": f.container.clone().unwrap_or_else(|| f.object.name.clone()),
            "fullyQualifiedName": fqn.join("/"),
            "kind": "object",
        }]
    });
    if let Some(loc) = f.location.as_ref().filter(|l| l.file != "<stdin>") {
        location["physicalLocation"] = json!({
            "artifactLocation": { "uri": uri(&loc.file) },
            "region": { "startLine": loc.line.max(1) },
        });
    }
    let mut markdown = format!("{}\n\n**Fix:** {}", f.message, f.fix.text);
    if let Some(y) = &f.fix.yaml {
        markdown.push_str(&format!("\n\n```yaml\n{}```", y.text()));
    }
    let mut fix = json!({ "text": f.fix.text });
    if let Some(y) = &f.fix.yaml {
        fix["yaml"] = Value::String(y.text().into_owned());
    }
    json!({
        "ruleId": f.check.as_str(),
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": format!("{} Fix: {}", f.message, f.fix.text), "markdown": markdown },
        "locations": [location],
        "partialFingerprints": { "unloopObject/v1": format!("{}:{}", f.check.as_str(), fqn.join("/")) },
        "properties": { "fix": fix, "object": f.object.to_string(), "namespace": f.object.namespace },
    })
}

pub(super) fn render(r: &AuditReport, opts: &RenderOptions) -> String {
    let mut results: Vec<Value> = r.findings.iter().map(result).collect();
    for s in &r.suppressed {
        let mut v = result(&s.finding);
        let kind = if s.by.starts_with("annotation") {
            "inSource"
        } else {
            "external"
        };
        v["suppressions"] = json!([{ "kind": kind, "justification": s.by }]);
        results.push(v);
    }
    let notifications: Vec<Value> = r
        .notes
        .iter()
        .map(|n| json!({ "level": "note", "message": { "text": n } }))
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "unloop",
                    "semanticVersion": opts.tool_version,
                    "version": opts.tool_version,
                    "rules": CheckId::ALL.iter().map(|c| rule(*c)).collect::<Vec<_>>(),
                }
            },
            "invocations": [{ "executionSuccessful": true, "toolExecutionNotifications": notifications }],
            "results": results,
            "columnKind": "unicodeCodePoints",
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(uri("deploy/app.yaml"), "deploy/app.yaml");
        assert_eq!(uri("./my app.yaml"), "my%20app.yaml");
        assert_eq!(uri("/srv/x.yaml"), "file:///srv/x.yaml");
    }
}
