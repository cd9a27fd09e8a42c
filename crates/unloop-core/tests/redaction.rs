//! The redaction corpus: every secret form in `redaction/secrets.txt` is masked, every line of
//! `redaction/benign.txt` survives byte for byte, and a random secret planted in each form never
//! survives (`proptest`).

use proptest::prelude::*;
use unloop_core::redact;

const OPEN: char = '⟪';
const CLOSE: char = '⟫';

fn lines(corpus: &str) -> impl Iterator<Item = (usize, &str)> {
    corpus
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// A corpus line with its markers taken out, and the secrets they marked.
fn planted(line: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut secrets = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find(OPEN) {
        text.push_str(&rest[..open]);
        let after = &rest[open + OPEN.len_utf8()..];
        let close = after.find(CLOSE).expect("every ⟪ has its ⟫");
        text.push_str(&after[..close]);
        secrets.push(after[..close].to_string());
        rest = &after[close + CLOSE.len_utf8()..];
    }
    text.push_str(rest);
    (text, secrets)
}

#[test]
fn every_secret_form_is_masked() {
    let corpus = include_str!("redaction/secrets.txt");
    let mut forms = 0;
    let mut leaks = Vec::new();
    for (n, line) in lines(corpus) {
        let (text, secrets) = planted(line);
        assert!(!secrets.is_empty(), "secrets.txt:{n} marks no secret");
        let out = redact::text(&text);
        for s in &secrets {
            forms += 1;
            if out.contains(s.as_str()) || !out.contains(redact::REDACTED) {
                leaks.push(format!("secrets.txt:{n}: {out}"));
            }
        }
        assert_eq!(redact::text(&out), out, "secrets.txt:{n}: not idempotent");
    }
    assert!(forms >= 100, "only {forms} secret forms");
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[test]
fn benign_lines_survive_unchanged() {
    let corpus = include_str!("redaction/benign.txt");
    let mut count = 0;
    let mut changed = Vec::new();
    for (n, line) in lines(corpus) {
        count += 1;
        let out = redact::text(line);
        if out != line {
            changed.push(format!("benign.txt:{n}:\n  in:  {line}\n  out: {out}"));
        }
    }
    assert!(count >= 100, "only {count} benign lines");
    assert!(
        changed.is_empty(),
        "{} changed:\n{}",
        changed.len(),
        changed.join("\n")
    );
}

/// Secret forms with a hole for the value (`{}`), the value drawn at random.
const FORMS: &[&str] = &[
    "DB_PASSWORD={}",
    "MYSQL_ROOT_PASSWORD={}",
    "PGPASSWORD={} psql -h db",
    "AWS_SECRET_ACCESS_KEY={}",
    "keyStorePassword={}",
    "export API_TOKEN=\"{}\"",
    "JAVA_OPTS=-Xmx512m -Djavax.net.ssl.keyStorePassword={} -XX:+UseG1GC",
    "connecting to postgres://app:{}@db:5432/orders",
    "redis://:{}@redis:6379/0",
    "mongodb+srv://svc:{}@cluster0.example.net/app",
    "--password {}",
    "--password={}",
    "--client-secret \"{}\"",
    "curl -u admin:{} https://api.internal",
    "mysql -uroot -p{} -h db",
    "redis-cli -a {} ping",
    "Authorization: Bearer {}",
    "authorization: Basic {}",
    "X-Api-Key: {}",
    "Cookie: session={}; theme=dark",
    "Server=sql;User Id=sa;Password={};Pooling=true",
    "jdbc:mysql://db/shop?user=app&password={}&useSSL=false",
    "AccountName=a;AccountKey={};EndpointSuffix=core.windows.net",
    "https://a.blob.core.windows.net/c?sv=2021&sig={}",
    "{\"level\":\"debug\",\"password\":\"{}\"}",
    "level=debug client_secret={} host=db",
    "password: {}",
    "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
];

fn plant(form: &str, secret: &str) -> String {
    form.replacen("{}", secret, 1)
}

fn assert_masked(line: &str, secret: &str) -> Result<(), TestCaseError> {
    let out = redact::text(line);
    prop_assert!(!out.contains(secret), "{line:?} -> {out:?}");
    prop_assert_eq!(redact::text(&out), out.clone());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn planted_secrets_never_survive(
        secret in "[A-Za-z][A-Za-z0-9!*~_.-]{6,30}[0-9]",
        prefix in "[a-z ]{0,16}",
        suffix in "( [a-z]{1,8}){0,3}",
    ) {
        for form in FORMS {
            let line = format!("{prefix} {}{suffix}", plant(form, &secret));
            assert_masked(&line, &secret)?;
        }
    }

    #[test]
    fn shaped_tokens_never_survive(
        body in "[A-Za-z0-9]{40}",
        hex in "[a-f0-9]{32}",
        upper in "[A-Z2-7]{16}",
    ) {
        let tokens = [
            format!("ghp_{}", &body[..36]),
            format!("github_pat_{body}"),
            format!("glpat-{}", &body[..20]),
            format!("xoxb-{}", &body[..30]),
            format!("sk_live_{}", &body[..24]),
            format!("AKIA{upper}"),
            format!("AIza{}", &body[..35]),
            format!("npm_{}", &body[..36]),
            format!("hvs.{}", &body[..24]),
            format!("dapi{hex}"),
            format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}", &body[..20], &body[20..]),
        ];
        for t in &tokens {
            assert_masked(&format!("request failed with credential {t} attached"), t)?;
            assert_masked(&format!("\"{t}\""), t)?;
        }
    }

    #[test]
    fn env_values_under_secret_names_never_survive(
        prefix in "(|[A-Z]{2,6}_)",
        word in "(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS)",
        suffix in "(|_[0-9]|_VALUE|_B64)",
        value in "[ -~]{1,40}",
    ) {
        let name = format!("{prefix}{word}{suffix}");
        prop_assume!(!value.trim().is_empty() && !value.starts_with(['$', '<', '*', 'x', 'X', '.']));
        let mut v = serde_json::json!({"env": [{"name": name, "value": value}]});
        redact::json(&mut v);
        prop_assert_eq!(v["env"][0]["value"].as_str(), Some(redact::REDACTED), "{}", name);
    }
}
