//! JSON Schemas (draft 2020-12) of what `-o json` writes, generated from the types the renderers
//! serialize, so the documentation and the output cannot disagree. `unloop schema diagnose|audit`
//! prints them; docs/schemas/ ships them (a test keeps those files equal to these).
//!
//! Strict on purpose: every object refuses properties it does not declare and names the ones it
//! always has, so a renamed or missing field fails validation. With the `validate` feature (tests
//! only) every JSON report the renderers write is checked against its schema before it is
//! returned ([`check`]): no test that produces `-o json` can forget to validate it.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

/// The schema of `unloop diagnose -o json`.
pub fn diagnose() -> Value {
    generate::<unloop_core::Report>(
        "unloop diagnose -o json",
        "https://unloop.dev/schemas/diagnose.schema.json",
    )
}

/// The schema of `unloop audit -o json`.
pub fn audit() -> Value {
    generate::<crate::audit::json::Document<'static>>(
        "unloop audit -o json",
        "https://unloop.dev/schemas/audit.schema.json",
    )
}

fn generate<T: JsonSchema>(title: &str, id: &str) -> Value {
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    if let Value::Object(m) = &mut v {
        m.insert("$id".into(), id.into());
        m.insert("title".into(), title.into());
    }
    close(&mut v, false);
    v
}

/// Closes every object schema: properties it does not declare are refused. `unevaluated`
/// (rather than `additional`) so that properties merged in from a flattened enum (`oneOf`) count
/// as declared. The branches of `oneOf`/`anyOf`/`allOf` are left open: they are parts of the
/// object their parent closes.
fn close(v: &mut Value, branch: bool) {
    match v {
        Value::Object(m) => {
            let declared = m.contains_key("properties");
            let open =
                m.contains_key("additionalProperties") || m.contains_key("unevaluatedProperties");
            if declared && !open && !branch {
                m.insert("unevaluatedProperties".into(), false.into());
            }
            for (k, child) in m.iter_mut() {
                let parts = matches!(k.as_str(), "oneOf" | "anyOf" | "allOf");
                match child {
                    Value::Array(a) if parts => a.iter_mut().for_each(|x| close(x, true)),
                    _ => close(child, false),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| close(x, false)),
        _ => {}
    }
}

/// What a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Diagnose,
    Audit,
}

impl Kind {
    pub fn schema(self) -> Value {
        match self {
            Kind::Diagnose => diagnose(),
            Kind::Audit => audit(),
        }
    }

    /// Where the schema is shipped, from the repository's root.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Diagnose => "docs/schemas/diagnose.schema.json",
            Kind::Audit => "docs/schemas/audit.schema.json",
        }
    }

    /// The schema as shipped: pretty JSON and a final newline.
    pub fn text(self) -> String {
        let mut s = serde_json::to_string_pretty(&self.schema()).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Checks `json` against the schema of `kind`: the errors, one line, or nothing. The validators
/// are compiled once per process.
#[cfg(feature = "validate")]
pub fn check(kind: Kind, json: &str) -> Result<(), String> {
    use std::sync::OnceLock;
    static DIAGNOSE: OnceLock<jsonschema::Validator> = OnceLock::new();
    static AUDIT: OnceLock<jsonschema::Validator> = OnceLock::new();
    let cell = match kind {
        Kind::Diagnose => &DIAGNOSE,
        Kind::Audit => &AUDIT,
    };
    let validator = cell.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&kind.schema())
            .expect("the generated schema compiles")
    });
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "does not match {}: {}",
            kind.path(),
            errors.join("; ")
        ))
    }
}

/// The renderers' check of their own output, with `validate` (tests) only.
pub(crate) fn assert_valid(kind: Kind, json: &str) {
    #[cfg(feature = "validate")]
    if let Err(e) = check(kind, json) {
        panic!("-o json {e}");
    }
    #[cfg(not(feature = "validate"))]
    let _ = (kind, json);
}
