//! JUnit XML for CI test reports: one test suite per workload, one test case per check that ran
//! on it. Findings at or above `--fail-on` are failures; those below are passing cases with the
//! finding in `system-out`, so the report agrees with the exit code.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::RenderOptions;
use unloop_audit::AuditReport;
use unloop_audit::check::{CheckId, Finding, ObjectRef};

/// Text for XML 1.0 attributes and content. Characters XML 1.0 forbids even as references (C0
/// controls but TAB, LF, CR; U+FFFE, U+FFFF) are spelled out as `\x1b`; CR is written as a
/// character reference so parsers keep it.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A raw CR would be read back as LF.
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{{{:x}}}", ch as u32)),
            c => out.push(c),
        }
    }
    out
}

fn body(f: &Finding) -> String {
    let mut b = format!(
        "{}\nwhy: {}\nfix: {}\n",
        f.message,
        f.check.why(),
        f.fix.text
    );
    if let Some(y) = &f.fix.yaml {
        b.push_str(&y.text());
    }
    b
}

pub(super) fn render(r: &AuditReport, opts: &RenderOptions) -> String {
    let mut by_object: BTreeMap<&ObjectRef, Vec<&Finding>> = BTreeMap::new();
    for f in &r.findings {
        by_object.entry(&f.object).or_default().push(f);
    }
    // Workloads in input order, then objects that are not workloads (nodes).
    let mut objects: Vec<(&ObjectRef, Option<&unloop_audit::Location>)> =
        r.workloads.iter().map(|(o, l)| (o, l.as_ref())).collect();
    for o in by_object.keys() {
        if !objects.iter().any(|(w, _)| w == o) {
            objects.push((o, None));
        }
    }
    let mut suites = String::new();
    let (mut total_tests, mut total_failures) = (0, 0);
    for (object, location) in objects {
        let findings = by_object.get(object).cloned().unwrap_or_default();
        let checks: Vec<CheckId> = if object.kind == "Node" {
            vec![CheckId::NodePressure]
        } else {
            r.checks
                .iter()
                .copied()
                .filter(|c| *c != CheckId::NodePressure)
                .collect()
        };
        let suite_name = if object.namespace.is_empty() {
            object.to_string()
        } else {
            format!("{}/{}", object.namespace, object)
        };
        let classname = escape(&suite_name);
        let mut cases = String::new();
        let mut failures = 0;
        for check in &checks {
            let mine: Vec<&&Finding> = findings.iter().filter(|f| f.check == *check).collect();
            let file = location
                .map(|l| format!(" file=\"{}\" line=\"{}\"", escape(&l.file), l.line))
                .unwrap_or_default();
            let _ = write!(
                cases,
                "    <testcase classname=\"{classname}\" name=\"{}\"{file}",
                check.as_str()
            );
            let failing: Vec<&&&Finding> =
                mine.iter().filter(|f| f.severity >= opts.fail_on).collect();
            let passing: Vec<&&&Finding> =
                mine.iter().filter(|f| f.severity < opts.fail_on).collect();
            if failing.is_empty() && passing.is_empty() {
                cases.push_str("/>\n");
                continue;
            }
            cases.push_str(">\n");
            if let Some(first) = failing.first() {
                failures += 1;
                let text: Vec<String> = failing.iter().map(|f| body(f)).collect();
                let _ = writeln!(
                    cases,
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    first.severity.as_str(),
                    escape(&first.message),
                    escape(&text.join("\n"))
                );
            }
            if !passing.is_empty() {
                let text: Vec<String> = passing
                    .iter()
                    .map(|f| format!("{}: {}", f.severity.as_str(), body(f)))
                    .collect();
                let _ = writeln!(
                    cases,
                    "      <system-out>{}</system-out>",
                    escape(&text.join("\n"))
                );
            }
            cases.push_str("    </testcase>\n");
        }
        total_tests += checks.len();
        total_failures += failures;
        let _ = write!(
            suites,
            "  <testsuite name=\"{classname}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n{cases}  </testsuite>\n",
            checks.len()
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"unloop audit\" tests=\"{total_tests}\" failures=\"{total_failures}\" errors=\"0\">\n{suites}</testsuites>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn characters_xml_forbids_are_spelled_out() {
        assert_eq!(
            escape("a\x1b[2Jb\0c\rd\te\nf<&\u{ffff}"),
            "a\\x1b[2Jb\\x00c&#13;d\te\nf&lt;&amp;\\u{ffff}"
        );
    }
}
