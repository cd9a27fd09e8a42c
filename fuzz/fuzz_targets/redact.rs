//! Redaction as a property: a secret planted in a known form inside fuzzed text never survives
//! `redact::text`, and `redact::text` never panics on any text.
//!
//! The line is `PREFIX SEP FORM END SUFFIX`: PREFIX and SUFFIX are fuzzed text, SEP is whitespace
//! so the form starts a word, FORM is one of the secret forms below with the fuzzer's choice of
//! key, case, separator, quoting and user name, and END is a character that ends a value.
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
}

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

fn form_text(form: &Form) -> Option<String> {
    Some(match form {
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
            if user.is_empty() {
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
    })
}

fuzz_target!(|input: Input| {
    // Never panics, whatever the text.
    let _ = unloop_core::redact::text(&input.prefix);
    if input.prefix.contains(SECRET) || input.suffix.contains(SECRET) {
        return;
    }
    let Some(form) = form_text(&input.form) else {
        return;
    };
    let line = format!(
        "{} {form}{}{}",
        input.prefix,
        pick(&ENDS, input.end),
        input.suffix
    );
    let out = unloop_core::redact::text(&line);
    assert!(
        !out.contains(SECRET),
        "the planted secret survived redaction\n  line: {line:?}\n  out:  {out:?}"
    );
});
