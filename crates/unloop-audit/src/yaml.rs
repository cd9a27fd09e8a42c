//! Fix snippets: YAML kept as data ([`Yaml`], in a [`Snippet`]) until a renderer prints it, and
//! the small writer that prints it in the block style `kubectl get -o yaml` uses.
//!
//! Why a writer of our own: serde-saphyr's emitter quotes and folds differently from the
//! snippets users have seen (`"8080"` as `'8080'`, long strings folded with `>`), and costs
//! several times as much a snippet (`cargo bench -p unloop-audit --bench audit -- snippet`).
//! Snippets need only maps, sequences and scalars, and the round-trip test below reads every
//! output back with serde-saphyr.

use std::borrow::Cow;

use serde::Serialize;

/// A YAML value, with maps in the order they were built.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// `pairs` as a map, in this order.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
        Yaml::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The YAML text, block style.
    pub fn text(&self) -> String {
        to_string(self)
    }

    /// A value's serde form (k8s-openapi objects write their fields in alphabetical order, as
    /// `kubectl get -o yaml` does); anything that does not serialize is null.
    pub fn of<T: Serialize>(v: &T) -> Yaml {
        serde_json::to_value(v)
            .map(Yaml::from)
            .unwrap_or(Yaml::Null)
    }
}

impl From<serde_json::Value> for Yaml {
    fn from(v: serde_json::Value) -> Yaml {
        use serde_json::Value as J;
        match v {
            J::Null => Yaml::Null,
            J::Bool(b) => Yaml::Bool(b),
            J::Number(n) => Yaml::Number(n),
            J::String(s) => Yaml::String(s),
            J::Array(a) => Yaml::Seq(a.into_iter().map(Yaml::from).collect()),
            J::Object(m) => Yaml::Map(m.into_iter().map(|(k, v)| (k, Yaml::from(v))).collect()),
        }
    }
}

/// The same value through any serde writer (the benchmark compares serde-saphyr's).
impl Serialize for Yaml {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Yaml::Null => s.serialize_unit(),
            Yaml::Bool(b) => s.serialize_bool(*b),
            Yaml::Number(n) => n.serialize(s),
            Yaml::String(t) => s.serialize_str(t),
            Yaml::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Yaml::Map(pairs) => {
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl From<&str> for Yaml {
    fn from(s: &str) -> Yaml {
        Yaml::String(s.into())
    }
}

impl From<String> for Yaml {
    fn from(s: String) -> Yaml {
        Yaml::String(s)
    }
}

/// A fix's YAML: data until a renderer asks for its text, so a finding nobody prints (a
/// suppressed one in the human report or JUnit) never pays for writing it. Serializes as its
/// text.
#[derive(Debug, Clone, PartialEq)]
pub enum Snippet {
    Data(Yaml),
    Text(String),
}

impl Snippet {
    /// The YAML text.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Snippet::Data(v) => Cow::Owned(to_string(v)),
            Snippet::Text(t) => Cow::Borrowed(t),
        }
    }

    /// The YAML text, written once and kept, for the output passes to edit in place.
    pub fn text_mut(&mut self) -> &mut String {
        if let Snippet::Data(v) = self {
            *self = Snippet::Text(to_string(v));
        }
        match self {
            Snippet::Text(t) => t,
            Snippet::Data(_) => unreachable!("written just above"),
        }
    }
}

impl From<Yaml> for Snippet {
    fn from(v: Yaml) -> Snippet {
        Snippet::Data(v)
    }
}

impl Serialize for Snippet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl schemars::JsonSchema for Snippet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Snippet".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"description": "YAML to merge into the object.", "type": "string"})
    }
}

pub fn to_string(v: &Yaml) -> String {
    let mut out = String::new();
    match v {
        Yaml::Map(m) if !m.is_empty() => map(m, 0, false, &mut out),
        Yaml::Seq(s) if !s.is_empty() => seq(s, 0, &mut out),
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
fn map(m: &[(String, Yaml)], indent: usize, first_inline: bool, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(indent, out);
        }
        out.push_str(&scalar(k));
        out.push(':');
        match v {
            Yaml::Map(child) if !child.is_empty() => {
                out.push('\n');
                map(child, indent + 2, false, out);
            }
            Yaml::Seq(items) if !items.is_empty() => {
                out.push('\n');
                seq(items, indent, out);
            }
            Yaml::String(s) if s.contains('\n') => block(s, indent + 2, out),
            other => {
                out.push(' ');
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

fn seq(items: &[Yaml], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push('-');
        match item {
            Yaml::Map(m) if !m.is_empty() => {
                out.push(' ');
                map(m, indent + 2, true, out);
            }
            Yaml::Seq(s) if !s.is_empty() => {
                out.push('\n');
                seq(s, indent + 2, out);
            }
            Yaml::String(s) if s.contains('\n') => block(s, indent + 2, out),
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

/// A value on one line; only empty collections are collections here.
fn inline(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => scalar(s),
        Yaml::Map(m) if m.is_empty() => "{}".into(),
        Yaml::Seq(s) if s.is_empty() => "[]".into(),
        // Never reached (the block writer takes every non-empty collection); JSON is YAML.
        Yaml::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", quoted(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Yaml::Seq(s) => format!("[{}]", s.iter().map(flow).collect::<Vec<_>>().join(", ")),
    }
}

/// A value inside a flow collection: strings always quoted.
fn flow(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => quoted(s),
        other => inline(other),
    }
}

fn scalar(s: &str) -> String {
    if plain(s) { s.to_string() } else { quoted(s) }
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

    fn read(text: &str) -> Yaml {
        Yaml::from(serde_saphyr::from_str::<serde_json::Value>(text).expect("parses"))
    }

    #[test]
    fn round_trips_through_a_yaml_parser() {
        // Keys in alphabetical order: `read` goes through serde_json's sorted maps.
        let text = "containers:\n- args: null\n  command:\n  - sh\n  - -c\n  - |-\n    cd /app\n    exec ./server\n  env:\n  - name: A\n    value: \"true\"\n  - name: B\n    value: \"8080\"\n  - name: C\n    value: \"a: b\"\n  name: api\n  ports: []\n  resources:\n    limits:\n      memory: 256Mi\n";
        assert_eq!(to_string(&read(text)), text);
        let tricky = [
            "", "-", "- x", "yes", "1.5", "0x1f", "#x", "x #y", " lead", "trail ", "*a", "12:30",
            "a\n b", "line\n", "a,b", "[x]", "{y}",
        ];
        for s in tricky {
            let v = Yaml::Seq(vec![s.into()]);
            assert_eq!(read(&to_string(&v)), v, "{s:?} -> {}", to_string(&v));
        }
        let nested = Yaml::Seq(vec![Yaml::Seq(vec![Yaml::map([("k", "v, w".into())])])]);
        assert_eq!(read(&to_string(&nested)), nested);
        assert_eq!(
            inline(&nested),
            "[[{\"k\": \"v, w\"}]]",
            "flow style, if ever reached"
        );
    }

    #[test]
    fn a_snippet_is_written_once_and_serializes_as_its_text() {
        let mut s = Snippet::from(Yaml::map([("image", "app:1.4.2".into())]));
        assert_eq!(s.text(), "image: app:1.4.2\n");
        s.text_mut().push_str("# edited\n");
        assert_eq!(
            serde_json::to_string(&s).ok().as_deref(),
            Some("\"image: app:1.4.2\\n# edited\\n\"")
        );
    }
}
