//! Keeps secrets out of everything unloop stores or prints.
//!
//! Two passes use this one module. On the way in (`unloop-source`'s `ingest`), every string of
//! every object that enters a `ClusterState` is walked ([`object`], [`json`]): env values and
//! headers whose name looks secret are masked whole, annotations likewise by key, and every other
//! string goes through [`text`]. On the way out, every string of a report goes through [`text`]
//! again ([`report`]), so a value that slipped past ingest (an older bundle, a new field) still
//! never prints. Masked values read `<redacted>`; the name or key in front of them stays visible.
//!
//! [`text`] knows secrets by their context (`password=`, `--token x`, `Authorization: Bearer`,
//! `scheme://user:pw@`, `mysql -ppw`, `-u user:pw`) and by their shape (JWTs, PEM private keys,
//! cloud and SaaS tokens with a known prefix). Names are split into words (`_`, `-`, `.`,
//! camelCase) and the words are matched, so `DB_PASSWORD`, `PGPASSWORD`, `keyStorePassword` and
//! `AWS_SECRET_ACCESS_KEY` are secret while `PASSWORD_FILE` and `SECRET_NAME` (a path, a
//! reference) are not.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Container, Pod};
use regex::{Captures, Regex, RegexSet};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnose::Report;

pub const REDACTED: &str = "<redacted>";

// ---------------------------------------------------------------------------------------------
// Names

/// Words that make a name secret wherever they appear inside one of its words (`PGPASSWORD`).
const SECRET_INFIXES: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "sessionid",
    "sessid",
];

/// Words that make a name secret when they are a whole word of it.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "pw",
    "auth",
    "authorization",
    "bearer",
    "cookie",
    "cookies",
    "session",
    "dsn",
    "sig",
    "signature",
    "jwt",
    "sas",
    "creds",
    "cred",
    "psk",
    "hmac",
    "otp",
    "totp",
    "htpasswd",
];

/// Words that make a following `key` a secret one (`ACCOUNT_KEY`, `signingKey`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "account",
    "signing",
    "sign",
    "encryption",
    "encrypt",
    "decryption",
    "master",
    "client",
    "shared",
    "license",
    "storage",
    "app",
    "session",
    "cookie",
    "hmac",
    "jwt",
    "auth",
    "crypto",
    "cipher",
    "aes",
    "rsa",
    "ssh",
    "gpg",
    "pgp",
    "deploy",
    "write",
    "admin",
    "root",
    "subscription",
    "primary",
    "secondary",
    "webhook",
    "consumer",
    "service",
    "token",
    "sas",
    "kms",
    "data",
];

/// Last words that make a secret-sounding name describe a secret instead of holding one:
/// `PASSWORD_FILE`, `SECRET_NAME`, `TOKEN_URL`, `--password-stdin`.
const DESCRIPTORS: &[&str] = &[
    "file",
    "files",
    "path",
    "dir",
    "directory",
    "name",
    "names",
    "namespace",
    "ref",
    "reference",
    "url",
    "uri",
    "endpoint",
    "host",
    "hostname",
    "port",
    "enabled",
    "enable",
    "disabled",
    "required",
    "length",
    "len",
    "min",
    "max",
    "minimum",
    "maximum",
    "ttl",
    "timeout",
    "expiry",
    "expires",
    "expiration",
    "lifetime",
    "age",
    "policy",
    "mode",
    "type",
    "kind",
    "header",
    "field",
    "format",
    "algorithm",
    "alg",
    "count",
    "size",
    "version",
    "location",
    "provider",
    "source",
    "prefix",
    "suffix",
    "reset",
    "strength",
    "rotation",
    "interval",
    "stdin",
    "arn",
    "backend",
    "store",
    "mount",
    "mounted",
];

/// The words of a name: split on anything not alphanumeric and at camelCase boundaries
/// (`keyStorePassword` -> key, store, password; `XMLHttpToken` -> xml, http, token).
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// True when a value under this name (env var, flag, key, header, annotation) likely is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let w = words(name);
    if w.is_empty() {
        return false;
    }
    if w.len() > 1 && DESCRIPTORS.contains(&w[w.len() - 1].as_str()) {
        return false;
    }
    w.iter().enumerate().any(|(i, word)| {
        let word = word.as_str();
        SECRET_INFIXES.iter().any(|s| word.contains(s))
            || SECRET_WORDS.contains(&word)
            || word.ends_with("token")
            || word.ends_with("tokens")
            || ((word == "key" || word == "keys")
                && i > 0
                && KEY_QUALIFIERS.contains(&w[i - 1].as_str()))
    })
}

/// Values that are not secrets even under a secret name: placeholders the user fills in
/// (`<password>`), references to other variables (`$(DB_PASSWORD)`, `${TOKEN}`), masks.
fn is_placeholder(v: &str) -> bool {
    let mut v = v;
    for q in ["\\\"", "\"", "'"] {
        if v.len() >= 2 * q.len() && v.starts_with(q) && v.ends_with(q) {
            v = &v[q.len()..v.len() - q.len()];
            break;
        }
    }
    v.is_empty()
        || v.starts_with(REDACTED)
        || (v.starts_with('<') && v.ends_with('>') && !v[1..v.len() - 1].contains(['<', '>']))
        || (v.starts_with("$(") && v.ends_with(')'))
        || (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with('$')
            && v.len() > 1
            && v[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'))
        || v.chars()
            .all(|c| c == '*' || c == 'x' || c == 'X' || c == '.')
}

/// Words that follow `token:` or `--password` in ordinary sentences ("failed to refresh token:
/// context deadline exceeded", "set --token to ..."), never a value.
const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "to",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "not",
    "no",
    "none",
    "null",
    "nil",
    "empty",
    "missing",
    "required",
    "invalid",
    "expired",
    "incorrect",
    "wrong",
    "rejected",
    "denied",
    "unset",
    "set",
    "present",
    "absent",
    "true",
    "false",
    "yes",
    "ok",
    "failed",
    "error",
    "unknown",
    "undefined",
    "for",
    "from",
    "with",
    "without",
    "of",
    "in",
    "at",
    "by",
    "and",
    "or",
    "must",
    "should",
    "will",
    "has",
    "have",
    "had",
    "changed",
    "updated",
    "reset",
    "mismatch",
    "provided",
    "given",
    "found",
    "too",
    "please",
    "see",
    "use",
    "via",
    "into",
    "flag",
    "option",
    "value",
    "context",
    "permission",
    "unauthorized",
    "forbidden",
    "malformed",
    "revoked",
    "refreshed",
    "accepted",
    "verification",
    "validation",
    "signature",
    "length",
    "only",
    "if",
    "when",
    "then",
];

fn is_stopword(v: &str) -> bool {
    let v = v.trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
    STOPWORDS.iter().any(|s| s.eq_ignore_ascii_case(v))
}

// ---------------------------------------------------------------------------------------------
// Free text

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("pattern compiles")
}

static PEM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)(?s:.*?)(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    )
});

/// Secrets known by their shape alone: the whole match is the secret.
static SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        // JWT (header.payload.signature, the signature may be empty for alg none)
        r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
        // AWS access key ids
        r"|\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
        // GitHub
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}",
        // GitLab
        r"|\bgl(?:pat|dt|ptt|rt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_\-]{16,}|\bGR1348941[A-Za-z0-9_\-]{20,}",
        // Slack
        r"|\bxox[abposre]-[A-Za-z0-9\-]{10,}|\bxapp-\d-[A-Za-z0-9\-]{10,}",
        // Stripe
        r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|\bwhsec_[A-Za-z0-9]{16,}",
        // Google
        r"|\bAIza[0-9A-Za-z_\-]{35}|\bya29\.[0-9A-Za-z_\-]{20,}|\bGOCSPX-[A-Za-z0-9_\-]{20,}",
        // npm, PyPI, Docker Hub, HashiCorp Vault, Hugging Face, Grafana, Databricks
        r"|\bnpm_[A-Za-z0-9]{30,}|\bpypi-[A-Za-z0-9_\-]{40,}|\bdckr_pat_[A-Za-z0-9_\-]{20,}",
        r"|\bhv[sbr]\.[A-Za-z0-9_\-]{20,}|\bhf_[A-Za-z0-9]{30,}|\bgl(?:sa|c)_[A-Za-z0-9_=\-]{30,}",
        r"|\bdapi[a-f0-9]{32}",
        // OpenAI, Anthropic
        r"|\bsk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_\-]{20,}",
        // SendGrid, Twilio, Shopify, DigitalOcean, Atlassian, Doppler, New Relic, age
        r"|\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}|\bSK[0-9a-f]{32}\b",
        r"|\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|\bdo[opr]_v1_[a-f0-9]{64}|\bATATT3[A-Za-z0-9_\-=]{50,}",
        r"|\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{30,}|\bNRAK-[A-Z0-9]{27}|\bAGE-SECRET-KEY-1[0-9A-Z]{58}",
    ))
});

/// 40 characters of base64 standing alone: the shape of an AWS secret access key.
static AWS_SECRET: LazyLock<Regex> =
    LazyLock::new(|| re(r"(^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})($|[^A-Za-z0-9/+=])"));

static SLACK_WEBHOOK: LazyLock<Regex> =
    LazyLock::new(|| re(r"(hooks\.slack\.com/(?:services|workflows)/)[A-Za-z0-9/_\-]+"));

/// `scheme://user:password@host`, the user possibly empty (`redis://:pw@host`).
static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| re(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)([^\s@/]+)@"));

/// `Authorization: Bearer x`, `Proxy-Authorization=Basic x`, `authorization: token x`.
static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b((?:proxy-)?authorization\\?["']?\s*[:=]\s*[\[(]?\\?["']?(?:(?:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|aws4-hmac-sha256|hmac|jwt|sharedkey|sharedaccesssignature|splunk|dsn)\s+)?)([^\s"',;\\]+)"#,
    )
});

/// `Bearer x` / `Basic x` anywhere.
static AUTH_SCHEME: LazyLock<Regex> =
    // `=` may come inside the credential too: `Bearer KEY=value` is masked whole, never leaving the
    // value of an assignment with its key masked away in front of it.
    LazyLock::new(|| {
        re(r"(?i)\b((?:bearer|basic)\s+)([A-Za-z0-9._~+/\-]+(?:=+[A-Za-z0-9._~+/\-]*)*)")
    });

/// `Cookie: a=b; c=d` and `Set-Cookie: ...`: the whole value.
static COOKIE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    // Quoted parts are part of the value (`a="x"; b=y`): the whole value is masked, so no quoted
    // value is left behind with its name masked away in front of it.
    re(
        r#"(?i)\b((?:set-)?cookie\\?["']?:\s*\\?["']?)((?:[^"'\r\n\\]|"[^"\r\n]*"|'[^'\r\n]*')*=(?:[^"'\r\n\\]|"[^"\r\n]*"|'[^'\r\n]*')*)"#,
    )
});

/// `key=value`, `key: value`, `"key": "value"`, `key => value`, `key := value`.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<cq>\\?["'])?(?P<sep>\s*(?:=>|:=|=|:)[ \t]*)(?P<val>\\"(?:[^"\\]|\\[^"])*\\"|"(?:[^"\\]|\\.)*"|'[^'\n]*'|[^\s;&,"']+)"#,
    )
});

/// Which stages can apply: one pass over the text decides, so text with nothing secret-shaped
/// (most of it) costs one scan.
static TRIGGERS: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"-----BEGIN",
        r"eyJ|AKIA|ASIA|A[BCGIRPN][A-Z]A|gh[pousr]_|github_pat_|gl[a-z]+[-_]|GR1348941|xox|xapp-|_live_|_test_|whsec_|AIza|ya29\.|GOCSPX-|npm_|pypi-|dckr_pat_|hv[sbr]\.|hf_|dapi|sk-|SG\.|SK[0-9a-f]|shp|do[opr]_v1_|ATATT3|dp\.|NRAK-|AGE-SECRET",
        r"[A-Za-z0-9/+]{40}",
        r"hooks\.slack\.com",
        r"://[^\s/]*@",
        r"(?i)authorization|bearer|basic|cookie",
        r"[=:]",
        r"(?:^|\s)-",
    ])
    .expect("patterns compile")
});

/// Replaces secrets in free text (log lines, messages, command lines, annotation values) with
/// `<redacted>`, keeping what names them. Idempotent; text without secrets is returned unchanged.
pub fn text(input: &str) -> String {
    redact_text(input).into_owned()
}

/// Every stage reads the original text and proposes byte spans to mask; the union of the spans is
/// masked once, at the end. No stage sees another's output, so the order of the stages cannot
/// matter: one stage masking the key of an assignment (`authorization= PWD = x`) never hides that
/// key from the stage that masks its value. Adding a stage can only mask more.
fn redact_text(input: &str) -> Cow<'_, str> {
    let mut spans = Vec::new();
    text_spans(input, &mut spans);
    mask(input, spans)
}

/// The spans of `s` that free-text redaction masks.
fn text_spans(s: &str, spans: &mut Vec<Range<usize>>) {
    let hits = TRIGGERS.matches(s);
    if !hits.matched_any() {
        return;
    }
    if hits.matched(0) {
        for c in PEM.captures_iter(s) {
            spans.push(group(&c, 1).end()..group(&c, 2).start());
        }
    }
    if hits.matched(1) {
        spans.extend(SHAPES.find_iter(s).map(|m| m.range()));
    }
    if hits.matched(2) {
        for c in AWS_SECRET.captures_iter(s) {
            if looks_random(&c[2]) {
                spans.push(group(&c, 2).range());
            }
        }
    }
    if hits.matched(3) {
        for c in SLACK_WEBHOOK.captures_iter(s) {
            spans.push(group(&c, 1).end()..group(&c, 0).end());
        }
    }
    if hits.matched(4) {
        for c in URL_USERINFO.captures_iter(s) {
            if !is_placeholder(&c[2]) {
                spans.push(group(&c, 2).range());
            }
        }
    }
    if hits.matched(5) {
        for c in AUTH_HEADER.captures_iter(s) {
            if !is_placeholder(&c[2]) {
                spans.push(group(&c, 2).range());
            }
        }
        for c in AUTH_SCHEME.captures_iter(s) {
            let whole = group(&c, 0);
            // `bearer KEY = value`: the word is the key of an assignment, not a credential (the
            // keyed stage masks the value).
            let names_a_value = s[whole.end()..]
                .trim_start_matches([' ', '\t'])
                .starts_with(['=', ':'])
                || c[2]
                    .split_once('=')
                    .is_some_and(|(key, _)| is_secret_name(key));
            if looks_like_credential(&c[2]) && !names_a_value {
                spans.push(group(&c, 2).range());
            }
        }
        for c in COOKIE_HEADER.captures_iter(s) {
            spans.push(group(&c, 2).range());
        }
    }
    if hits.matched(6) {
        key_values(s, spans);
    }
    if hits.matched(7) || hits.matched(6) {
        command_lines(s, spans);
    }
}

fn group<'h>(c: &Captures<'h>, i: usize) -> regex::Match<'h> {
    c.get(i).expect("the group takes part in every match")
}

/// Replaces the union of `spans` with one marker per run of overlapping or touching spans.
/// An empty span (a PEM block with nothing between its lines) still gets its marker.
fn mask(s: &str, mut spans: Vec<Range<usize>>) -> Cow<'_, str> {
    if spans.is_empty() {
        return Cow::Borrowed(s);
    }
    spans.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while i < spans.len() {
        let start = spans[i].start.max(last);
        let mut end = spans[i].end.max(start);
        i += 1;
        while i < spans.len() && spans[i].start <= end {
            end = end.max(spans[i].end);
            i += 1;
        }
        out.push_str(&s[last..start]);
        out.push_str(REDACTED);
        last = end;
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// Mixed upper, lower and digits, and not a path of words: the look of a generated key.
fn looks_random(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && digits >= 2
        && s.matches('/').count() <= 4
        && !s.contains("//")
}

/// After `Bearer`/`Basic`: a credential rather than an English word ("Basic authentication").
fn looks_like_credential(s: &str) -> bool {
    s.len() >= 6
        && !is_placeholder(s)
        && (s
            .chars()
            .any(|c| c.is_ascii_digit() || "+/=_.~-".contains(c))
            || s.chars().skip(1).any(|c| c.is_ascii_uppercase()))
}

/// `key=value` forms: the value's span when the key is secret-looking.
fn key_values(s: &str, spans: &mut Vec<Range<usize>>) {
    let mut pos = 0;
    while let Some(c) = KEY_VALUE.captures_at(s, pos) {
        let whole = group(&c, 0);
        let key = c.name("key").expect("key");
        let sep = c.name("sep").expect("sep");
        let val = c.name("val").expect("val");
        // Resume right after the separator, so `--from-literal=password=x` still sees `password=x`.
        pos = sep.end();
        if !secret_assignment(
            s,
            key.start(),
            key.as_str(),
            c.name("cq").is_some(),
            sep.as_str(),
            val,
        ) {
            continue;
        }
        let (start, end) = value_span(val.as_str(), val.start());
        if start >= end {
            continue;
        }
        spans.push(start..end);
        // Resume at the value itself, not after it: what looked like this key's value may be the
        // next key (`token: PWD = x`), or hold the next key's opening quote (`a=' pwd='x'`, where
        // the quote that seemed to close the value opens the next one). Scanning it again as text
        // finds that key and masks its value too; when in doubt, more is masked, never less.
        pos = start.max(whole.start() + 1);
    }
}

fn secret_assignment(
    s: &str,
    key_start: usize,
    key: &str,
    quoted_key: bool,
    sep: &str,
    val: regex::Match<'_>,
) -> bool {
    if !is_secret_name(key) || is_placeholder(val.as_str()) {
        return false;
    }
    let colon = sep.trim() == ":";
    if !colon {
        return true;
    }
    // `volume "db-secret" : secret ...` is prose; `"password": "x"` and `password: x` are not.
    if sep.starts_with(char::is_whitespace) {
        return false;
    }
    // `registry/auth:v2` is an image, `/run/secrets/token:` a path.
    if s[..key_start].ends_with('/') {
        return false;
    }
    let v = val.as_str();
    if quoted_key || v.starts_with(['"', '\'', '\\']) || !sep.ends_with(char::is_whitespace) {
        return true;
    }
    // `token: <word>`: a value if it is not a word of a sentence ("token: context deadline
    // exceeded"): it has a digit or a symbol, or it ends the line.
    if is_stopword(v) {
        return false;
    }
    let rest = s[val.end()..].split('\n').next().unwrap_or("");
    !v.chars().all(char::is_alphabetic) || rest.trim().is_empty()
}

/// The byte span of a value to mask: inside its quotes, without closing brackets it did not open.
fn value_span(v: &str, start: usize) -> (usize, usize) {
    for q in ["\\\"", "\"", "'"] {
        if v.len() >= 2 * q.len() && v.starts_with(q) && v.ends_with(q) {
            return (start + q.len(), start + v.len() - q.len());
        }
    }
    let mut end = v.len();
    for (close, open) in [(')', '('), (']', '['), ('}', '{')] {
        while v[..end].ends_with(close) && !v[..end].contains(open) {
            end -= 1;
        }
    }
    let trimmed = v[..end].trim_end_matches('\\');
    (start, start + trimmed.len())
}

// ---------------------------------------------------------------------------------------------
// Command lines: flags whose value is the next word, and programs with their own password flags

/// Programs whose `-pVALUE` (attached) is a password.
const ATTACHED_P: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mysqlpump",
    "mysqlshow",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "sshpass",
];
/// Programs whose `-p VALUE` (separate) is a password.
const SEPARATE_P: &[&str] = &[
    "sshpass",
    "mongo",
    "mongosh",
    "mongodump",
    "mongorestore",
    "mongoexport",
    "mongoimport",
];
/// Programs whose `-a VALUE` is a password.
const SEPARATE_A: &[&str] = &["redis-cli", "keydb-cli"];

/// Spans to mask in a list of words (one command line): `(word index, byte range in the word)`.
fn argv_spans(words: &[&str]) -> Vec<(usize, usize, usize)> {
    let mut spans = Vec::new();
    let mut program: Option<&str> = None;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].trim_matches(|c| c == '"' || c == '\'');
        let base = w.rsplit('/').next().unwrap_or(w);
        if ATTACHED_P.contains(&base) || SEPARATE_P.contains(&base) || SEPARATE_A.contains(&base) {
            program = Some(base);
        }
        let next = words.get(i + 1).copied();
        let takes_next = |n: &str| !n.starts_with('-') && !is_placeholder(n) && !n.is_empty();
        if let Some(flag) = w.strip_prefix('-')
            && !flag.contains('=')
            && flag.len() > 1
            && (flag.starts_with('-') || flag.len() > 2)
            && is_secret_name(flag)
            && let Some(n) = next
            && takes_next(n)
            && !is_stopword(n)
        {
            spans.push((i + 1, 0, n.len()));
            // The value is read again as a word of its own: it may really be the program or a
            // flag (`-token redis-cli -a pw`), and when in doubt more is masked, never less.
            i += 1;
            continue;
        }
        if matches!(w, "-u" | "--user" | "--proxy-user")
            && let Some(n) = next
            && let Some((user, pw)) = n.split_once(':')
            && !pw.is_empty()
            && !is_placeholder(pw)
            && !(user.chars().all(|c| c.is_ascii_digit()) && pw.chars().all(|c| c.is_ascii_digit()))
        {
            spans.push((i + 1, user.len() + 1, n.len()));
            i += 1;
            continue;
        }
        if let Some(p) = program {
            if ATTACHED_P.contains(&p)
                && let Some(pw) = w.strip_prefix("-p")
                && !pw.is_empty()
                && !is_placeholder(pw)
            {
                let at = words[i].find("-p").expect("has -p") + 2;
                spans.push((i, at, words[i].len()));
            }
            let short = if SEPARATE_A.contains(&p) { "-a" } else { "-p" };
            if (SEPARATE_P.contains(&p) || SEPARATE_A.contains(&p))
                && w == short
                && let Some(n) = next
                && takes_next(n)
            {
                spans.push((i + 1, 0, n.len()));
                i += 1;
                continue;
            }
        }
        i += 1;
    }
    spans
}

/// Applies the command-line rules to each line of free text, word by word.
fn command_lines(s: &str, spans: &mut Vec<Range<usize>>) {
    let mut line_start = 0;
    for line in s.split_inclusive('\n') {
        let words: Vec<(usize, &str)> = line
            .split_ascii_whitespace()
            .map(|w| (w.as_ptr() as usize - line.as_ptr() as usize, w))
            .collect();
        let plain: Vec<&str> = words.iter().map(|(_, w)| *w).collect();
        for (wi, from, to) in argv_spans(&plain) {
            let (off, w) = words[wi];
            let mut end = line_start + off + to;
            // A quoted value spans words until its closing quote.
            if from == 0
                && let Some(q) = w.chars().next().filter(|c| *c == '"' || *c == '\'')
                && !(w.len() > 1 && w.ends_with(q))
                && let Some(close) = line[off + 1..].find(q)
            {
                end = line_start + off + 1 + close + 1;
            }
            let start = line_start + off + from;
            let (start, end) = strip_quotes(s, start, end);
            if start < end {
                spans.push(start..end);
            }
        }
        line_start += line.len();
    }
}

fn strip_quotes(s: &str, mut a: usize, mut b: usize) -> (usize, usize) {
    let v = &s[a..b];
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            a += 1;
            b -= 1;
            break;
        }
    }
    (a, b)
}

/// Redacts one command line given as words (a container's `command` and `args`): a secret flag's
/// value in the next word, `-u user:pw`, `mysql -ppw`, then each word as free text.
pub fn argv(words: &mut [String]) {
    let mut per_word: Vec<Vec<Range<usize>>> = vec![Vec::new(); words.len()];
    {
        let plain: Vec<&str> = words.iter().map(String::as_str).collect();
        for (wi, from, to) in argv_spans(&plain) {
            per_word[wi].push(from..to);
        }
    }
    for (w, mut spans) in words.iter_mut().zip(per_word) {
        text_spans(w, &mut spans);
        if let Cow::Owned(o) = mask(w, spans) {
            *w = o;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

/// Fields that hold identifiers, times and addresses only: never masked. Names among them are
/// what other fields and commands refer to (an owner reference, a selector, `kubectl -n`): a name
/// that looks like a token (`payments-sk-settlement-batch-runner`) masked would name nothing.
fn is_plain_field(key: &str) -> bool {
    matches!(
        key,
        "uid"
            | "resourceVersion"
            | "imageID"
            | "containerID"
            | "podIP"
            | "hostIP"
            | "ip"
            | "name"
            | "namespace"
            | "generateName"
            | "nodeName"
            | "serviceAccountName"
            | "serviceAccount"
    ) || key.ends_with("Timestamp")
        || key.ends_with("Time")
        || key.ends_with("At")
}

/// Redacts every string of a JSON document: `{name, value}` pairs (env vars, HTTP headers) and
/// map entries (annotations) by their name, argument lists word by word, the rest as free text.
/// Returns true when something changed.
pub fn json(v: &mut Value) -> bool {
    walk(v, None)
}

fn walk(v: &mut Value, key: Option<&str>) -> bool {
    match v {
        Value::String(s) => {
            if key.is_some_and(is_plain_field) {
                return false;
            }
            match redact_text(s) {
                Cow::Borrowed(_) => false,
                Cow::Owned(o) => {
                    *s = o;
                    true
                }
            }
        }
        Value::Array(items) => {
            if matches!(key, Some("command" | "args")) && items.iter().all(Value::is_string) {
                let mut words: Vec<String> = items
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect();
                argv(&mut words);
                let mut changed = false;
                for (item, w) in items.iter_mut().zip(words) {
                    if item.as_str() != Some(w.as_str()) {
                        *item = Value::String(w);
                        changed = true;
                    }
                }
                return changed;
            }
            let mut changed = false;
            for i in items {
                changed |= walk(i, key);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            // A `{name, value}` pair: the name says whether the value is secret.
            let secret_pair = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_secret_name);
            if secret_pair
                && let Some(Value::String(val)) = map.get_mut("value")
                && !is_placeholder(val)
            {
                *val = REDACTED.to_string();
                changed = true;
            }
            // Annotations by key; labels are not (selectors match them, and their values are too
            // short and plain to hold more than text rules catch).
            let user_map = key == Some("annotations");
            // kubectl's copy of the whole applied spec: dropped, not worth walking.
            if key == Some("annotations") {
                changed |= map.remove(LAST_APPLIED).is_some();
            }
            for (k, item) in map.iter_mut() {
                if user_map {
                    changed |= annotation(k, item);
                } else {
                    changed |= walk(item, Some(k));
                }
            }
            changed
        }
        _ => false,
    }
}

/// An annotation's value: masked whole under a secret-looking key; walked when it is JSON (a
/// copy of a spec, a config); free text otherwise.
fn annotation(key: &str, v: &mut Value) -> bool {
    let Value::String(s) = v else {
        return walk(v, None);
    };
    let short = key.rsplit('/').next().unwrap_or(key);
    if is_secret_name(short) && !is_placeholder(s) {
        *s = REDACTED.to_string();
        return true;
    }
    let t = s.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(mut doc) = serde_json::from_str::<Value>(s)
    {
        if walk(&mut doc, None) {
            *s = doc.to_string();
            return true;
        }
        return false;
    }
    walk(v, None)
}

/// Redacts every string of any serializable object (a pod, an event, a node, a workload) by
/// walking its JSON form. Objects with nothing to redact are left as they were.
pub fn object<T: Serialize + DeserializeOwned>(obj: &mut T) {
    let Ok(mut v) = serde_json::to_value(&*obj) else {
        return;
    };
    if json(&mut v)
        && let Ok(back) = serde_json::from_value(v)
    {
        *obj = back;
    }
}

/// Redacts a container: env values by name, command line, every other string as text.
pub fn container(c: &mut Container) {
    object(c);
}

/// Redacts a pod, and drops the kubectl last-applied annotation (a full copy of the spec).
pub fn pod(p: &mut Pod) {
    object(p);
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn strip_last_applied(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

// ---------------------------------------------------------------------------------------------
// Reports

/// The output-side pass: every string of a diagnosis report through [`text`], before any
/// renderer writes it.
pub fn report(r: &mut Report) {
    crate::text::each_report_string(r, &mut |s, layout| {
        if layout == crate::text::Layout::Name {
            return;
        }
        if let Cow::Owned(o) = redact_text(s) {
            *s = o;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name that looks like a token stays a name (the objects, the report, the commands refer to
    /// it); the same token in a log line or a message is still masked.
    #[test]
    fn names_that_look_like_tokens_are_kept_and_the_token_elsewhere_is_not() {
        const NAME: &str = "payments-sk-settlement-batch-runner";
        assert!(
            text(&format!("key {NAME}")).contains(REDACTED),
            "the name looks like a token"
        );
        let mut state = crate::testing::scenario("missing-env-var");
        let pod = crate::testing::pod(&mut state);
        pod.metadata.name = Some(NAME.into());
        pod.metadata.namespace = Some(NAME.into());
        let mut p = pod.clone();
        super::pod(&mut p);
        assert_eq!(p.metadata.name.as_deref(), Some(NAME));
        assert_eq!(p.metadata.namespace.as_deref(), Some(NAME));

        let mut state = crate::testing::scenario("missing-env-var");
        let now = crate::testing::now(&state);
        crate::testing::log(&mut state)
            .text
            .push_str(&format!("\nusing key {NAME}\n"));
        let mut r = crate::diagnose(&state, &crate::Query::default(), now);
        let d = &mut r.diagnoses[0];
        d.workload.name = NAME.into();
        d.pod = format!("{NAME}-7d4b9c-x2x9z");
        d.container = NAME.into();
        report(&mut r);
        let d = &r.diagnoses[0];
        assert_eq!(d.workload.name, NAME);
        assert_eq!(d.pod, format!("{NAME}-7d4b9c-x2x9z"));
        assert_eq!(d.container, NAME);
        let tail = &d.logs.as_ref().unwrap().tail;
        assert!(
            tail.iter()
                .any(|l| l.starts_with("using key") && !l.contains(NAME) && l.contains(REDACTED)),
            "{tail:?}"
        );
    }

    #[test]
    fn redacts_tokens_passwords_and_url_credentials() {
        let out = text(
            "connecting to postgres://app:hunter2@db:5432/x with password=s3cr3t token: abc Authorization: Bearer abcdefghijkl",
        );
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains("abcdefghijkl"), "{out}");
        assert!(out.contains("postgres://app:<redacted>@db:5432/x"), "{out}");
    }

    #[test]
    fn keeps_ordinary_lines() {
        for line in [
            "dial tcp 10.233.0.57:5432: connect: connection refused",
            "failed to refresh token: context deadline exceeded",
            r#"MountVolume.SetUp failed for volume "db-secret" : secret "db-secret" not found"#,
            "kubectl create secret generic db --from-literal=password=<value>",
            "docker.io/library/auth:v2",
        ] {
            assert_eq!(text(line), line);
        }
    }

    #[test]
    fn secret_names_by_words() {
        for n in [
            "DB_PASSWORD",
            "MYSQL_ROOT_PASSWORD",
            "PGPASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "keyStorePassword",
            "STRIPE_API_KEY",
            "x-api-key",
            "GITHUB_TOKEN",
            "ACCOUNT_KEY",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "DATABASE_HOST",
            "JAVA_OPTS",
            "PASSWORD_FILE",
            "SECRET_NAME",
            "KEY_STORE",
            "key",
            "MONKEY",
            "BYPASS_CACHE",
            "password-stdin",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn argv_masks_next_word_and_attached_values() {
        let mut a: Vec<String> = [
            "mysql",
            "-uroot",
            "-phunter2",
            "--password",
            "s3cr3t",
            "-u",
            "bob:pw1",
        ]
        .map(String::from)
        .to_vec();
        argv(&mut a);
        assert_eq!(
            a,
            [
                "mysql",
                "-uroot",
                "-p<redacted>",
                "--password",
                "<redacted>",
                "-u",
                "bob:<redacted>"
            ]
        );
    }

    #[test]
    fn env_pairs_and_annotations() {
        let mut v = serde_json::json!({
            "env": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "JAVA_OPTS", "value": "-Djavax.net.ssl.keyStorePassword=changeit -Xmx512m"}],
            "annotations": {"example.com/api-token": "abc", "note": "{\"env\":[{\"name\":\"PGPASSWORD\",\"value\":\"pw\"}]}"}
        });
        assert!(json(&mut v));
        let s = v.to_string();
        assert!(!s.contains("hunter2") && !s.contains("changeit") && !s.contains("abc"));
        assert!(!s.contains("\\\"pw\\\""), "{s}");
        assert!(s.contains("-Xmx512m"));
    }
}
