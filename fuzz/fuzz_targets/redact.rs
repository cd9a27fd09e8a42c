//! Redaction as a property: a secret planted in a known form inside fuzzed text never survives
//! `redact::text`, and `redact::text` never panics on any text.
//!
//! The line is `PREFIX SEP FORM END SUFFIX`: PREFIX and SUFFIX are fuzzed text, SEP is whitespace
//! so the form starts a word, FORM is one of the secret forms below with the fuzzer's choice of
//! key, case, separator, quoting and user name, or a line of the redaction corpus, and END is a
//! character that ends a value.
//!
//! `UNLOOP_FUZZ_REDACT_FORMS=base` restricts the forms to those redact.rs handled before issue 10
//! (assignments to a bare key, URL userinfo with a user, bearer and basic headers), to fuzz the
//! rest of the module while the prefixed-name forms are being fixed.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "Zq7xSECRETv4lue9";

/// Keys redact.rs must treat as naming a secret in `KEY=VALUE` and `KEY: VALUE`.
const BASE_KEYS: [&str; 10] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "client_secret",
];
/// Names with a prefix or suffix (issue 10): env names and Java properties.
const PREFIXED_KEYS: [&str; 8] = [
    "DB_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "keyStorePassword",
    "-Djavax.net.ssl.keyStorePassword",
    "STRIPE_API_KEY",
    "GITHUB_TOKEN",
];
const ASSIGN: [&str; 4] = ["=", ": ", ":", " = "];
const QUOTES: [&str; 3] = ["", "\"", "'"];
const SCHEMES: [&str; 6] = [
    "postgres",
    "postgresql",
    "mysql",
    "redis",
    "amqp",
    "mongodb+srv",
];
const HEADERS: [&str; 4] = [
    "Authorization: Bearer ",
    "authorization: bearer ",
    "Authorization: Basic ",
    "Proxy-Authorization: Bearer ",
];
const ENDS: [&str; 6] = [" ", "\n", ",", ";", "&", "\t"];

#[derive(Debug, Arbitrary)]
enum Form {
    /// `password=SECRET`, `token: "SECRET"`.
    Assignment {
        key: u8,
        assign: u8,
        quote: u8,
        upper: bool,
    },
    /// `DB_PASSWORD=SECRET`, `-Djavax.net.ssl.keyStorePassword=SECRET`.
    PrefixedName { key: u8, assign: u8, quote: u8 },
    /// `postgres://user:SECRET@host`.
    UrlUserinfo { scheme: u8, user: String },
    /// `redis://:SECRET@host`.
    UrlEmptyUser { scheme: u8 },
    /// `Authorization: Bearer SECRET`.
    Header { header: u8 },
    /// One of the 140-odd forms of the redaction corpus (crates/unloop-core/tests/redaction/
    /// secrets.txt), with its own secrets: every one must be gone.
    Corpus { line: u16 },
}

/// The corpus's lines, each with its secrets (marked `⟪...⟫` in the file) unmarked.
static CORPUS: LazyLock<Vec<(String, Vec<String>)>> = LazyLock::new(|| {
    include_str!("../../crates/unloop-core/tests/redaction/secrets.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (mut text, mut secrets, mut rest) = (String::new(), Vec::new(), line);
            while let Some(open) = rest.find('⟪') {
                text.push_str(&rest[..open]);
                let after = &rest[open + '⟪'.len_utf8()..];
                let close = after.find('⟫').expect("every ⟪ has its ⟫");
                text.push_str(&after[..close]);
                secrets.push(after[..close].to_string());
                rest = &after[close + '⟫'.len_utf8()..];
            }
            text.push_str(rest);
            (text, secrets)
        })
        .collect()
});

#[derive(Debug, Arbitrary)]
struct Input {
    prefix: String,
    form: Form,
    end: u8,
    suffix: String,
}

static BASE_ONLY: LazyLock<bool> =
    LazyLock::new(|| std::env::var("UNLOOP_FUZZ_REDACT_FORMS").is_ok_and(|v| v == "base"));

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[i as usize % list.len()]
}

/// The form's text and the secrets planted in it.
fn form_text(form: &Form) -> Option<(String, Vec<String>)> {
    if let Form::Corpus { line } = form {
        if *BASE_ONLY {
            return None;
        }
        return Some(CORPUS[*line as usize % CORPUS.len()].clone());
    }
    let text = match form {
        Form::Assignment {
            key,
            assign,
            quote,
            upper,
        } => {
            let key = pick(&BASE_KEYS, *key);
            let key = if *upper {
                key.to_ascii_uppercase()
            } else {
                key.to_string()
            };
            let q = pick(&QUOTES, *quote);
            format!("{key}{}{q}{SECRET}{q}", pick(&ASSIGN, *assign))
        }
        Form::PrefixedName { key, assign, quote } => {
            if *BASE_ONLY {
                return None;
            }
            let q = pick(&QUOTES, *quote);
            format!(
                "{}{}{q}{SECRET}{q}",
                pick(&PREFIXED_KEYS, *key),
                pick(&ASSIGN, *assign)
            )
        }
        Form::UrlUserinfo { scheme, user } => {
            let user: String = user
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(16)
                .collect();
            // The user name is not a secret: it may not hold the planted one.
            if user.is_empty() || user.contains(SECRET) {
                return None;
            }
            format!(
                "{}://{user}:{SECRET}@db.example:5432/app",
                pick(&SCHEMES, *scheme)
            )
        }
        Form::UrlEmptyUser { scheme } => {
            if *BASE_ONLY {
                return None;
            }
            format!("{}://:{SECRET}@cache.example:6379", pick(&SCHEMES, *scheme))
        }
        Form::Header { header } => format!("{}{SECRET}", pick(&HEADERS, *header)),
        Form::Corpus { .. } => unreachable!("returned above"),
    };
    Some((text, vec![SECRET.to_string()]))
}

fuzz_target!(|input: Input| {
    // Never panics, whatever the text.
    let _ = unloop_core::redact::text(&input.prefix);
    let Some((form, secrets)) = form_text(&input.form) else {
        return;
    };
    if secrets
        .iter()
        .any(|s| input.prefix.contains(s.as_str()) || input.suffix.contains(s.as_str()))
    {
        return;
    }
    // A corpus form is a whole line (some of them are secrets only where the line ends: `password:
    // word` is prose when more words follow), so a line break follows it.
    let end = match input.form {
        Form::Corpus { .. } => "\n",
        _ => pick(&ENDS, input.end),
    };
    let line = format!("{} {form}{end}{}", input.prefix, input.suffix);
    let out = unloop_core::redact::text(&line);
    for secret in &secrets {
        assert!(
            !out.contains(secret.as_str()),
            "the planted secret survived redaction\n  line: {line:?}\n  out:  {out:?}"
        );
    }
});
