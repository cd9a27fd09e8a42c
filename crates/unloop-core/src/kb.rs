//! The knowledge base of error signatures: what runtimes and client libraries print when they fail,
//! as data (`crates/unloop-core/kb/*.toml`, one file per runtime or library, described in
//! `kb/README.md`). Each signature names the cause its line is evidence of and what it extracts
//! (variable, file, host, port, module, command). The files are embedded in the binary and parsed
//! once; `tests` prove that every sample line classifies as its signature says.

use std::collections::BTreeMap;
use std::sync::{LazyLock, OnceLock};

use regex::{Regex, RegexSet};
use serde::Deserialize;

use crate::verdict::CauseId;

/// The files in the order they are consulted: libraries before the runtimes that host them,
/// generic phrasings last. A line takes the first signature that matches it.
const FILES: [(&str, &str); 13] = [
    ("nginx", include_str!("../kb/nginx.toml")),
    ("postgres", include_str!("../kb/postgres.toml")),
    ("mysql", include_str!("../kb/mysql.toml")),
    ("redis", include_str!("../kb/redis.toml")),
    ("kafka", include_str!("../kb/kafka.toml")),
    ("mongodb", include_str!("../kb/mongodb.toml")),
    ("jvm", include_str!("../kb/jvm.toml")),
    ("python", include_str!("../kb/python.toml")),
    ("node", include_str!("../kb/node.toml")),
    ("go", include_str!("../kb/go.toml")),
    ("ruby", include_str!("../kb/ruby.toml")),
    ("dotnet", include_str!("../kb/dotnet.toml")),
    ("shell", include_str!("../kb/shell.toml")),
];

/// The named captures a signature may use.
pub const CAPTURES: [&str; 6] = ["variable", "file", "host", "port", "module", "command"];

/// Keys of a sample that are not captures.
const SAMPLE_META: [&str; 3] = ["line", "origin", "scenario"];

/// One known error message.
#[derive(Debug)]
pub struct Signature {
    /// Unique across the base, e.g. `nginx-open-enoent`.
    pub id: String,
    /// The file it comes from, e.g. `nginx`.
    pub runtime: &'static str,
    pub cause: CauseId,
    /// A phrasing many programs share (`permission denied`), not one runtime's own format: weaker
    /// evidence of its cause.
    pub generic: bool,
    /// One sentence on what the message means.
    pub summary: String,
    /// Real lines the signature must classify, each with the captures it must extract.
    pub samples: Vec<Sample>,
    pattern: String,
    /// The pattern compiled alone (for its captures), on the first line the base's set says it
    /// matches: compiled one by one, the whole base took 16 MB in every process.
    compiled: OnceLock<Regex>,
}

impl Signature {
    /// The regular expression, as written in its file.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The pattern compiled (once, on first use).
    pub fn regex(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            // The base's set compiled this very pattern already; `check` proved its captures.
            Regex::new(&self.pattern).expect("a signature's pattern compiles (kb tests)")
        })
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub line: String,
    /// `testbed` when copied from a run on the testbed, else absent (a documented format).
    pub origin: Option<String>,
    /// The testbed scenario the line was copied from.
    pub scenario: Option<String>,
    pub fields: BTreeMap<String, String>,
}

/// What a signature extracted from a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub variable: Option<String>,
    pub file: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub module: Option<String>,
    pub command: Option<String>,
}

impl Fields {
    /// The extracted fields by capture name, for tests and reports.
    pub fn as_map(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        let port = self.port.map(|p| p.to_string());
        for (k, v) in [
            ("variable", self.variable.as_ref()),
            ("file", self.file.as_ref()),
            ("host", self.host.as_ref()),
            ("port", port.as_ref()),
            ("module", self.module.as_ref()),
            ("command", self.command.as_ref()),
        ] {
            if let Some(v) = v {
                m.insert(k, v.clone());
            }
        }
        m
    }
}

/// A line classified by a signature.
#[derive(Debug, Clone)]
pub struct Match<'b> {
    pub signature: &'b Signature,
    pub fields: Fields,
}

/// Why the embedded base does not load; only a broken edit of `kb/*.toml` causes one, and the
/// tests catch it before a release.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("kb/{file}.toml: {source}")]
    Toml {
        file: &'static str,
        source: toml::de::Error,
    },
    #[error("kb/{file}.toml: signature {id}: {message}")]
    Signature {
        file: &'static str,
        id: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    signature: Vec<RawSignature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    id: String,
    cause: String,
    #[serde(default)]
    generic: bool,
    summary: String,
    regex: String,
    samples: Vec<BTreeMap<String, String>>,
}

struct Base {
    signatures: Vec<Signature>,
    set: RegexSet,
}

/// Parses the embedded files, compiling and checking every signature's pattern.
pub fn load() -> Result<Vec<Signature>, KbError> {
    let mut out = Vec::new();
    for (file, text) in FILES {
        out.extend(parse(file, text)?);
    }
    Ok(out)
}

/// Parses one file's text and checks every pattern: it compiles, and captures only `CAPTURES`.
fn parse(file: &'static str, text: &str) -> Result<Vec<Signature>, KbError> {
    let signatures = read(file, text)?;
    for s in &signatures {
        let bad = |message: String| KbError::Signature {
            file,
            id: s.id.clone(),
            message,
        };
        let regex = Regex::new(&s.pattern).map_err(|e| bad(e.to_string()))?;
        if let Some(name) = regex
            .capture_names()
            .flatten()
            .find(|n| !CAPTURES.contains(n))
        {
            return Err(bad(format!("capture {name:?} is not one of {CAPTURES:?}")));
        }
    }
    Ok(signatures)
}

/// Parses one file's text, leaving the patterns uncompiled.
fn read(file: &'static str, text: &str) -> Result<Vec<Signature>, KbError> {
    let mut out = Vec::new();
    let raw: RawFile = toml::from_str(text).map_err(|source| KbError::Toml { file, source })?;
    for s in raw.signature {
        let bad = |message: String| KbError::Signature {
            file,
            id: s.id.clone(),
            message,
        };
        let cause = CauseId::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s.cause)
            .ok_or_else(|| bad(format!("unknown cause id {:?}", s.cause)))?;
        let mut samples = Vec::new();
        for mut m in s.samples {
            let line = m
                .remove("line")
                .ok_or_else(|| bad("a sample without `line`".to_string()))?;
            let origin = m.remove("origin");
            let scenario = m.remove("scenario");
            if let Some(k) = m.keys().find(|k| !CAPTURES.contains(&k.as_str())) {
                return Err(bad(format!(
                    "sample key {k:?} is none of {SAMPLE_META:?} and no capture"
                )));
            }
            samples.push(Sample {
                line,
                origin,
                scenario,
                fields: m,
            });
        }
        out.push(Signature {
            id: s.id,
            runtime: file,
            cause,
            generic: s.generic,
            summary: s.summary,
            samples,
            pattern: s.regex,
            compiled: OnceLock::new(),
        });
    }
    Ok(out)
}

static BASE: LazyLock<Base> = LazyLock::new(|| {
    // The base is compiled in: a broken file is a build defect that the kb tests report in detail.
    base().expect("the embedded knowledge base parses (cargo test -p unloop-core kb)")
});

/// The embedded base, ready to match: one set of every pattern; each pattern alone is compiled
/// when a line first matches it (`Signature::regex`). Its checks are `load`'s, run by the tests.
fn base() -> Result<Base, KbError> {
    let mut signatures = Vec::new();
    for (file, text) in FILES {
        signatures.extend(read(file, text)?);
    }
    let set = RegexSet::new(signatures.iter().map(|s| s.pattern.as_str())).map_err(|e| {
        KbError::Signature {
            file: "(all)",
            id: "(the set of every pattern)".into(),
            message: e.to_string(),
        }
    })?;
    Ok(Base { signatures, set })
}

/// Every signature, in the order they are consulted.
pub fn signatures() -> &'static [Signature] {
    &BASE.signatures
}

/// Every signature that matches `line`, in the order they are consulted.
pub fn matches(line: &str) -> Vec<Match<'static>> {
    matches_in(&BASE, line)
}

fn matches_in<'b>(base: &'b Base, line: &str) -> Vec<Match<'b>> {
    base.set
        .matches(line)
        .into_iter()
        .filter_map(|i| {
            let signature = &base.signatures[i];
            let caps = signature.regex().captures(line)?;
            Some(Match {
                signature,
                fields: fields(&caps),
            })
        })
        .collect()
}

/// The signature a line is classified by: the first that matches.
pub fn classify(line: &str) -> Option<Match<'static>> {
    matches(line).into_iter().next()
}

fn fields(c: &regex::Captures<'_>) -> Fields {
    let get = |name: &str| {
        c.name(name)
            .map(|m| m.as_str().to_string())
            .filter(|s| !s.is_empty())
    };
    Fields {
        variable: get("variable"),
        // A path quoted at the end of a sentence keeps none of the punctuation around it.
        file: get("file").map(|f| f.trim_end_matches(['\'', '"', ',', '.']).to_string()),
        host: get("host").map(|h| h.trim_end_matches('.').to_string()),
        port: get("port").and_then(|p| p.parse().ok()),
        module: get("module").map(|m| m.trim_end_matches('.').to_string()),
        command: get("command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_parse_and_every_cause_id_is_known() {
        let sigs = load().unwrap_or_else(|e| panic!("{e}"));
        assert!(sigs.len() >= 80, "{} signatures", sigs.len());
        let mut ids = std::collections::BTreeSet::new();
        for s in &sigs {
            assert!(ids.insert(s.id.as_str()), "duplicate signature id {}", s.id);
            assert!(
                s.id.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}: ids are kebab-case",
                s.id
            );
            assert!(!s.samples.is_empty(), "{}: no sample line", s.id);
            assert!(
                CauseId::ALL.contains(&s.cause),
                "{}: cause {}",
                s.id,
                s.cause
            );
            assert!(!s.summary.trim().is_empty(), "{}: no summary", s.id);
        }
        assert_eq!(signatures().len(), sigs.len());
    }

    #[test]
    fn a_broken_signature_is_named_with_its_file() {
        let one = |cause: &str, regex: &str| {
            format!(
                "[[signature]]\nid = \"x-1\"\ncause = \"{cause}\"\nsummary = \"s\"\nregex = '''{regex}'''\nsamples = [{{ line = \"l\" }}]\n"
            )
        };
        let err = |text: String| parse("demo", &text).err().map(|e| e.to_string());
        assert_eq!(
            err(one("no-such-cause", "x")).as_deref(),
            Some("kb/demo.toml: signature x-1: unknown cause id \"no-such-cause\"")
        );
        assert!(
            err(one("app-error", "(?P<user>x)")).is_some_and(|e| e.contains("capture \"user\""))
        );
        assert!(err(one("app-error", "(")).is_some());
        assert!(
            err("[[signature]]\nid = 1\n".into()).is_some_and(|e| e.starts_with("kb/demo.toml: "))
        );
        assert_eq!(
            parse("demo", &one("app-error", "x")).map(|v| v.len()).ok(),
            Some(1)
        );
    }

    #[test]
    fn every_sample_classifies_as_its_signature_and_extracts_its_fields() {
        let mut failures = Vec::new();
        for s in signatures() {
            for sample in &s.samples {
                match classify(&sample.line) {
                    None => failures.push(format!("{}: no match for {:?}", s.id, sample.line)),
                    Some(m) if m.signature.id != s.id => failures.push(format!(
                        "{}: {:?} is classified as {}",
                        s.id, sample.line, m.signature.id
                    )),
                    Some(m) => {
                        let got: BTreeMap<String, String> = m
                            .fields
                            .as_map()
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect();
                        if got != sample.fields {
                            failures.push(format!(
                                "{}: {:?} extracts {got:?}, the sample says {:?}",
                                s.id, sample.line, sample.fields
                            ));
                        }
                    }
                }
                if sample.origin.is_some()
                    && (sample.origin.as_deref() != Some("testbed") || sample.scenario.is_none())
                {
                    failures.push(format!(
                        "{}: a sample's origin is `testbed`, with the scenario it was copied from",
                        s.id
                    ));
                }
                if let Some(scenario) = &sample.scenario {
                    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../testbed/scenarios")
                        .join(scenario)
                        .join("manifest.yaml");
                    if !manifest.is_file() {
                        failures.push(format!("{}: no testbed scenario {scenario}", s.id));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A process compiles the patterns of the signatures its lines match, not the whole base.
    #[test]
    fn a_pattern_is_compiled_alone_only_once_a_line_matches_it() {
        let base = base().unwrap();
        fn compiled(b: &Base) -> Vec<&str> {
            b.signatures
                .iter()
                .filter(|s| s.compiled.get().is_some())
                .map(|s| s.id.as_str())
                .collect()
        }
        assert!(compiled(&base).is_empty());
        assert!(matches_in(&base, "GET /healthz 200").is_empty());
        assert!(compiled(&base).is_empty());
        let line = r#"[emerg] 1#1: open() "/etc/proxy/upstreams.conf" failed (2: No such file or directory)"#;
        let m = matches_in(&base, line);
        assert_eq!(
            m[0].fields.file.as_deref(),
            Some("/etc/proxy/upstreams.conf")
        );
        let ids: Vec<&str> = m.iter().map(|m| m.signature.id.as_str()).collect();
        assert_eq!(compiled(&base), ids);
    }

    #[test]
    fn nginx_missing_include_is_a_missing_config_file() {
        let m = classify(
            r#"[emerg] 1#1: open() "/etc/proxy/upstreams.conf" failed (2: No such file or directory)"#,
        )
        .expect("classified");
        assert_eq!(m.signature.cause, CauseId::MissingConfigFile);
        assert_eq!(m.fields.file.as_deref(), Some("/etc/proxy/upstreams.conf"));
    }

    /// Ordinary lines of healthy programs: start-up banners, access logs, health checks, retries.
    /// None may be classified by any signature.
    const ORDINARY: &str = include_str!("../kb/tests/ordinary.log");

    #[test]
    fn ordinary_log_lines_match_no_signature() {
        let lines: Vec<&str> = ORDINARY.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() >= 100, "{} ordinary lines", lines.len());
        let hits: Vec<String> = lines
            .iter()
            .filter_map(|l| classify(l).map(|m| format!("{} <- {l}", m.signature.id)))
            .collect();
        assert!(hits.is_empty(), "{}", hits.join("\n"));
    }

    #[test]
    fn the_base_covers_every_runtime_of_the_issue() {
        for runtime in [
            "jvm", "python", "node", "go", "ruby", "dotnet", "nginx", "postgres", "mysql", "redis",
            "kafka", "mongodb",
        ] {
            let n = signatures().iter().filter(|s| s.runtime == runtime).count();
            assert!(n >= 5, "{runtime}: {n} signatures");
        }
    }
}
