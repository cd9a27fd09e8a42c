//! Reads a crashed container's log for the lines that explain the crash. Each line is classified
//! by the knowledge base of error signatures ([`crate::kb`]); the findings are sorted into the kinds
//! the cause rules read (a missing variable, a missing file, a refused connection, ...), and every
//! classified line is kept with its signature.

use std::sync::LazyLock;

use regex::Regex;

use crate::kb;
use crate::verdict::CauseId;

/// What a log says about why the program stopped. Each finding keeps its line verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogScan {
    pub missing_env: Vec<Hit<String>>,
    pub missing_file: Vec<Hit<String>>,
    pub refused: Vec<Hit<Endpoint>>,
    pub dns: Vec<Hit<String>>,
    pub not_found_command: Vec<Hit<String>>,
    pub permission_denied: Vec<Hit<()>>,
    pub exec_format: Vec<Hit<()>>,
    pub segfault: Vec<Hit<()>>,
    pub out_of_memory: Vec<Hit<()>>,
    /// Every line a signature of the knowledge base classifies, with the first signature that
    /// matched it (the most specific one): also the causes no rule above reads yet (a read-only
    /// file system, a missing module, a port not permitted, a rejected password, ...).
    pub signatures: Vec<Hit<Signal>>,
    /// Lines that look like errors, for the excerpt when nothing more specific matched.
    pub errors: Vec<Hit<()>>,
    /// The last lines of the log.
    pub tail: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<T> {
    /// 1-based line number in the log tail.
    pub line_no: usize,
    pub line: String,
    pub value: T,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// A line classified by a signature of the knowledge base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The signature's id, e.g. `nginx-open-enoent`.
    pub signature: &'static str,
    /// The knowledge-base file it comes from, e.g. `nginx`.
    pub runtime: &'static str,
    pub cause: CauseId,
    /// The signature is a phrasing many programs share, not one runtime's own format.
    pub generic: bool,
    pub fields: kb::Fields,
}

/// Longest line kept verbatim; longer lines are cut so one runaway line cannot flood a report.
const MAX_LINE: usize = 400;
const TAIL_LINES: usize = 5;
/// Findings of one kind beyond this are dropped: a log that repeats an error 10,000 times says it once.
const MAX_HITS: usize = 5;

/// A line that looks like an error when no signature knows it.
static ERRORS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:fatal|panic|error|exception|traceback|failed|failure|crash|abort)")
        .expect("pattern compiles")
});
/// Where a refused connection went, when its signature does not capture it.
static HOST_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:dial tcp |ECONNREFUSED |connect to |connecting to |host[= ]["']?|//)\[?([A-Za-z0-9_.\-]+)\]?(?:["']?\s*(?:\(\S+\))?\s*(?:and accepting TCP/IP connections on port |, port |:)(\d{1,5}))?"#)
        .expect("pattern compiles")
});

/// Scans a log tail. Pure: the same text always gives the same scan.
pub fn scan(text: &str) -> LogScan {
    let mut out = LogScan::default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        let line = clip(raw.trim_end());
        if line.trim().is_empty() {
            continue;
        }
        let no = i + 1;
        let matches = kb::matches(&line);
        let of = |causes: &'static [CauseId]| {
            matches
                .iter()
                .filter(move |m| causes.contains(&m.signature.cause))
        };
        if let Some(name) = of(&[CauseId::MissingEnvVar])
            .filter_map(|m| m.fields.variable.clone())
            .find(|v| looks_like_env_name(v))
        {
            push(&mut out.missing_env, no, &line, name);
        }
        if let Some(file) = of(&[CauseId::MissingConfigFile]).find_map(|m| m.fields.file.clone()) {
            push(&mut out.missing_file, no, &line, file);
        }
        // A signature that names the host is preferred over a generic one that does not.
        let refused = of(&[CauseId::DependencyUnreachable]);
        if let Some(first) = refused.clone().next() {
            let e = refused
                .clone()
                .find(|m| m.fields.host.is_some())
                .unwrap_or(first);
            let endpoint = match &e.fields.host {
                Some(host) => Endpoint {
                    host: Some(host.clone()),
                    port: e.fields.port,
                },
                None => endpoint(&line),
            };
            push(&mut out.refused, no, &line, endpoint);
        }
        let dns = of(&[CauseId::DependencyDns]);
        if dns.clone().next().is_some() {
            let host = dns.clone().find_map(|m| m.fields.host.clone());
            push(&mut out.dns, no, &line, host.unwrap_or_default());
        }
        if let Some(cmd) = of(&[CauseId::CommandNotFound]).find_map(|m| m.fields.command.clone()) {
            push(&mut out.not_found_command, no, &line, cmd);
        }
        for (causes, hits) in [
            (
                &[
                    CauseId::NotExecutable,
                    CauseId::FilePermissionDenied,
                    CauseId::PortNotPermitted,
                ][..],
                &mut out.permission_denied,
            ),
            (&[CauseId::ExecFormat][..], &mut out.exec_format),
            (&[CauseId::Segfault][..], &mut out.segfault),
            (
                &[
                    CauseId::OomLimitTooLow,
                    CauseId::OomJvmHeapOverLimit,
                    CauseId::HeapExhausted,
                ][..],
                &mut out.out_of_memory,
            ),
        ] {
            if of(causes).next().is_some() {
                push(hits, no, &line, ());
            }
        }
        if let Some(m) = matches.first() {
            let signal = Signal {
                signature: &m.signature.id,
                runtime: m.signature.runtime,
                cause: m.signature.cause,
                generic: m.signature.generic,
                fields: m.fields.clone(),
            };
            push(&mut out.signatures, no, &line, signal);
        } else if ERRORS.is_match(&line) {
            push(&mut out.errors, no, &line, ());
        }
    }
    let mut tail: Vec<String> = lines
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(TAIL_LINES)
        .map(|l| clip(l))
        .collect();
    tail.reverse();
    out.tail = tail;
    out
}

impl LogScan {
    /// The lines worth showing a person, in log order, without repeats: specific findings first,
    /// then generic error lines, then the tail when nothing else matched.
    pub fn highlights(&self, max: usize) -> Vec<(usize, String)> {
        let mut picked: Vec<(usize, String)> = Vec::new();
        let mut add = |no: usize, line: &str| {
            if !picked.iter().any(|(_, l)| l == line) {
                picked.push((no, line.to_string()));
            }
        };
        for h in &self.missing_env {
            add(h.line_no, &h.line);
        }
        for h in &self.missing_file {
            add(h.line_no, &h.line);
        }
        for h in &self.refused {
            add(h.line_no, &h.line);
        }
        for h in &self.dns {
            add(h.line_no, &h.line);
        }
        for h in &self.not_found_command {
            add(h.line_no, &h.line);
        }
        for h in &self.signatures {
            add(h.line_no, &h.line);
        }
        for list in [
            &self.permission_denied,
            &self.exec_format,
            &self.segfault,
            &self.out_of_memory,
            &self.errors,
        ] {
            for h in list {
                add(h.line_no, &h.line);
            }
        }
        picked.sort_by_key(|(n, _)| *n);
        picked.truncate(max);
        picked
    }
}

fn push<T>(hits: &mut Vec<Hit<T>>, line_no: usize, line: &str, value: T) {
    if hits.len() < MAX_HITS {
        hits.push(Hit {
            line_no,
            line: line.to_string(),
            value,
        });
    }
}

fn clip(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn looks_like_env_name(name: &str) -> bool {
    // "the environment variable is not set" must not name a variable called "is".
    name.len() >= 2
        && name.chars().any(|c| c.is_ascii_uppercase())
        && !name.chars().any(|c| c.is_ascii_lowercase())
}

/// The host and port a refused connection went to. Prefers a mention that carries a port: "could
/// not connect to server ... host "db" ... port 5432" names `db`, not `server`.
fn endpoint(line: &str) -> Endpoint {
    let mut first: Option<Endpoint> = None;
    for c in HOST_PORT.captures_iter(line) {
        let host = c[1].trim_end_matches('.').to_string();
        if host.is_empty()
            || host.eq_ignore_ascii_case("tcp")
            || host.eq_ignore_ascii_case("server")
        {
            continue;
        }
        let port = c.get(2).and_then(|p| p.as_str().parse().ok());
        let e = Endpoint {
            host: Some(host),
            port,
        };
        if e.port.is_some() {
            return e;
        }
        first.get_or_insert(e);
    }
    first.unwrap_or(Endpoint {
        host: None,
        port: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_environment_variables_in_common_phrasings() {
        for (line, want) in [
            (
                "FATAL: required environment variable DATABASE_URL is not set",
                "DATABASE_URL",
            ),
            ("Error: missing required env var REDIS_HOST", "REDIS_HOST"),
            ("KeyError: 'API_TOKEN'", "API_TOKEN"),
            ("panic: STRIPE_KEY must be set", "STRIPE_KEY"),
            ("env var \"QUEUE_URL\" is empty", "QUEUE_URL"),
        ] {
            let s = scan(line);
            assert_eq!(
                s.missing_env.first().map(|h| h.value.as_str()),
                Some(want),
                "{line}"
            );
        }
        assert!(
            scan("the environment variable is not set")
                .missing_env
                .is_empty()
        );
    }

    #[test]
    fn finds_missing_files() {
        for (line, want) in [
            (
                "open /etc/app/config.yaml: no such file or directory",
                "/etc/app/config.yaml",
            ),
            (
                "FileNotFoundError: [Errno 2] No such file or directory: '/config/settings.json'",
                "/config/settings.json",
            ),
            (
                "Error: ENOENT: no such file or directory, open '/srv/app.conf'",
                "/srv/app.conf",
            ),
            (
                "java.io.FileNotFoundException: /opt/app/application.yml (No such file or directory)",
                "/opt/app/application.yml",
            ),
        ] {
            assert_eq!(
                scan(line).missing_file.first().map(|h| h.value.as_str()),
                Some(want),
                "{line}"
            );
        }
    }

    #[test]
    fn finds_refused_connections_with_host_and_port() {
        let s = scan("2026/11/24 dial tcp 10.233.0.57:5432: connect: connection refused");
        let e = &s.refused[0].value;
        assert_eq!(
            (e.host.as_deref(), e.port),
            (Some("10.233.0.57"), Some(5432))
        );
        let s = scan(
            r#"could not connect to server: Connection refused Is the server running on host "postgres" (10.0.0.3) and accepting TCP/IP connections on port 5432?"#,
        );
        assert_eq!(s.refused[0].value.host.as_deref(), Some("postgres"));
        assert_eq!(s.refused[0].value.port, Some(5432));
    }

    #[test]
    fn finds_dns_failures_with_the_name() {
        let s = scan("dial tcp: lookup payments-db on 10.233.0.10:53: no such host");
        assert_eq!(s.dns[0].value, "payments-db");
        assert_eq!(
            scan("getaddrinfo ENOTFOUND redis-master").dns[0].value,
            "redis-master"
        );
        assert_eq!(scan("nc: bad address 'orders'").dns[0].value, "orders");
    }

    #[test]
    fn shell_command_not_found() {
        let s = scan("/bin/sh: line 1: start-server: not found");
        assert_eq!(s.not_found_command[0].value, "start-server");
        let s = scan("sh: migrate: not found");
        assert_eq!(s.not_found_command[0].value, "migrate");
    }

    #[test]
    fn non_utf8_and_huge_lines_do_not_break_the_scan() {
        let text = String::from_utf8_lossy(&[0xff, 0xfe, b'\n', b'E', b'r', b'r', b'o', b'r'])
            .into_owned();
        assert_eq!(scan(&text).errors.len(), 1);
        let long = "x".repeat(10_000) + " error";
        assert!(scan(&long).tail[0].chars().count() <= MAX_LINE + 1);
    }

    #[test]
    fn highlights_are_in_log_order_without_repeats() {
        let s = scan(
            "starting\nconnecting to db\ndial tcp 10.0.0.1:5432: connect: connection refused\nERROR giving up\n",
        );
        let h = s.highlights(10);
        assert_eq!(h.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![3, 4]);
    }
}
