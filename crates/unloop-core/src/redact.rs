//! Keeps secrets out of everything unloop stores or prints.
//!
//! Applied where state enters unloop (live reads and bundle loads alike), so no rule or renderer
//! ever holds a secret-looking value.

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Container, Pod};
use regex::Regex;

pub const REDACTED: &str = "<redacted>";

static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)pass(word|wd)?|secret|token|api[_-]?key|private|credential|auth|_key$|^key$|dsn|cookie|session|signature|cert")
        .expect("pattern compiles")
});

static LOG_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|authorization)["']?\s*[=:]\s*)(?:"[^"]*"|'[^']*'|[^\s,;&]+)"#)
        .expect("pattern compiles")
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}").expect("pattern compiles")
});
static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(://[^:/@\s]+:)[^@\s/]+@").expect("pattern compiles"));
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]+")
        .expect("pattern compiles")
});
static AWS_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bAKIA[0-9A-Z]{16}\b").expect("pattern compiles"));
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)")
        .expect("pattern compiles")
});

/// True when an environment variable of this name likely holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    SECRET_NAME.is_match(name)
}

/// Replaces tokens, passwords and keys in free text (log lines, messages).
pub fn text(input: &str) -> String {
    let s = PEM.replace_all(input, REDACTED);
    let s = BEARER.replace_all(&s, format!("${{1}} {REDACTED}"));
    let s = URL_PASSWORD.replace_all(&s, format!("${{1}}{REDACTED}@"));
    let s = LOG_ASSIGNMENT.replace_all(&s, format!("${{1}}{REDACTED}"));
    let s = JWT.replace_all(&s, REDACTED);
    AWS_KEY.replace_all(&s, REDACTED).into_owned()
}

/// Redacts secret-looking literal env values of a container, and secrets inside its command line.
pub fn container(c: &mut Container) {
    for env in c.env.iter_mut().flatten() {
        if let Some(v) = env.value.as_mut() {
            *v = if is_secret_name(&env.name) {
                REDACTED.to_string()
            } else {
                text(v)
            };
        }
    }
    for arg in c.command.iter_mut().chain(c.args.iter_mut()).flatten() {
        *arg = text(arg);
    }
}

/// Redacts every container of a pod, and the kubectl last-applied annotation (a full copy of the
/// spec that would otherwise carry the same values).
pub fn pod(p: &mut Pod) {
    if let Some(spec) = p.spec.as_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            container(c);
        }
    }
    strip_last_applied(&mut p.metadata);
}

pub fn strip_last_applied(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let line = "dial tcp 10.233.0.57:5432: connect: connection refused";
        assert_eq!(text(line), line);
    }

    #[test]
    fn secret_env_names() {
        assert!(is_secret_name("DB_PASSWORD"));
        assert!(is_secret_name("STRIPE_API_KEY"));
        assert!(!is_secret_name("DATABASE_HOST"));
        assert!(!is_secret_name("JAVA_OPTS"));
    }
}
