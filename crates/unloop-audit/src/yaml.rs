//! A small YAML writer for fix snippets, in the block style `kubectl get -o yaml` uses.
//!
//! serde_yaml's emitter costs tens of microseconds a snippet, which dominated auditing large
//! repositories; snippets need only maps, sequences and scalars.

use serde_yaml::{Mapping, Value};

pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Mapping(m) if !m.is_empty() => map(m, 0, false, &mut out),
        Value::Sequence(s) if !s.is_empty() => seq(s, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn pad(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Entries of a map at `indent`; with `first_inline` the first entry continues a `- ` line.
fn map(m: &Mapping, indent: usize, first_inline: bool, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(indent, out);
        }
        out.push_str(&inline(k));
        out.push(':');
        match v {
            Value::Mapping(child) if !child.is_empty() => {
                out.push('\n');
                map(child, indent + 2, false, out);
            }
            Value::Sequence(items) if !items.is_empty() => {
                out.push('\n');
                seq(items, indent, out);
            }
            Value::String(s) if s.contains('\n') => block(s, indent + 2, out),
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn seq(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push('-');
        match item {
            Value::Mapping(m) if !m.is_empty() => {
                out.push(' ');
                map(m, indent + 2, true, out);
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push('\n');
                seq(s, indent + 2, out);
            }
            Value::String(s) if s.contains('\n') => block(s, indent + 2, out),
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// A multi-line string as a literal block (`|-`), or quoted when a block cannot hold it.
fn block(s: &str, indent: usize, out: &mut String) {
    if s.lines().any(|l| l.ends_with(' ') || l.starts_with(' ')) || s.ends_with('\n') {
        out.push(' ');
        out.push_str(&quoted(s));
        out.push('\n');
        return;
    }
    out.push_str(" |-\n");
    for line in s.lines() {
        pad(indent, out);
        out.push_str(line);
        out.push('\n');
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if plain(s) => s.clone(),
        Value::String(s) => quoted(s),
        Value::Mapping(m) if m.is_empty() => "{}".into(),
        Value::Sequence(s) if s.is_empty() => "[]".into(),
        // Not produced by the snippets; serde_yaml's flow output is still valid YAML.
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

/// A JSON string is a valid YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// True when `s` reads back as the same string unquoted.
fn plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.trim() != s
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains('\n')
        || s.contains('\t')
    {
        return false;
    }
    if "?:,[]{}#&*!|>'\"%@`".contains(first)
        || (first == '-' && (s.len() == 1 || s[1..].starts_with(' ')))
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if [
        "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n",
    ]
    .contains(&lower.as_str())
    {
        return false;
    }
    // Numbers and things YAML 1.1 readers take for numbers (0x10, 1e3, .5, 1_000, 12:30).
    !(s.parse::<f64>().is_ok()
        || s.starts_with("0x")
        || s.starts_with("0o")
        || s.starts_with('.')
        || s.chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_yaml_parser() {
        let text = "containers:\n- name: api\n  command:\n  - sh\n  - -c\n  - |-\n    cd /app\n    exec ./server\n  args: null\n  env:\n  - name: A\n    value: \"true\"\n  - name: B\n    value: \"8080\"\n  - name: C\n    value: \"a: b\"\n  ports: []\n  resources:\n    limits:\n      memory: 256Mi\n";
        let v: Value = serde_yaml::from_str(text).expect("parses");
        assert_eq!(to_string(&v), text);
        let tricky = [
            "", "-", "- x", "yes", "1.5", "0x1f", "#x", "x #y", " lead", "trail ", "*a", "12:30",
            "a\n b", "line\n",
        ];
        for s in tricky {
            let v = Value::Sequence(vec![Value::String(s.into())]);
            let back: Value = serde_yaml::from_str(&to_string(&v)).expect("parses");
            assert_eq!(back, v, "{s:?} -> {}", to_string(&v));
        }
    }
}
