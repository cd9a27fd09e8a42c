//! Reads a crashed container's log for the lines that explain the crash.

use std::sync::LazyLock;

use regex::Regex;

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

/// Longest line kept verbatim; longer lines are cut so one runaway line cannot flood a report.
const MAX_LINE: usize = 400;
const TAIL_LINES: usize = 5;
/// Findings of one kind beyond this are dropped: a log that repeats an error 10,000 times says it once.
const MAX_HITS: usize = 5;

macro_rules! re {
    ($($name:ident = $pat:expr;)*) => {
        $(static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("pattern compiles"));)*
    };
}

re! {
    ENV_A = r#"(?i)(?:environment variable|env var(?:iable)?|\benv\b)\s*[:=]?\s*["'`$]?\{?([A-Za-z_][A-Za-z0-9_]*)\}?["'`]?\s+(?:is\s+)?(?:not set|not defined|undefined|missing|required|unset|must be set|is empty|empty)"#;
    ENV_B = r#"(?i)(?:missing|required|undefined|unset)\s+(?:required\s+)?(?:environment variable|env var(?:iable)?|env)s?\s*:?\s*["'`]?([A-Za-z_][A-Za-z0-9_]*)"#;
    ENV_C = r#"KeyError: ['"]([A-Z_][A-Z0-9_]*)['"]"#;
    ENV_D = r#"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b\s+(?:is\s+)?(?:not set|must be set|is required|is undefined|not defined)"#;
    FILE_A = r#"open (/[^\s:]+): no such file or directory"#;
    FILE_B = r#"(?i)no such file or directory[:,]?\s*(?:open\s+)?['"]?(/[^'"\s]+)"#;
    FILE_C = r#"(?:FileNotFoundException|NoSuchFileException):?\s*(/\S+)"#;
    FILE_D = r#"(?i)(?:can't|cannot|could not|unable to) (?:open|read|load|find)[^/]*['"]?(/[^'"\s:]+)['"]?"#;
    REFUSED = r#"(?i)connection refused|ECONNREFUSED|actively refused"#;
    HOST_PORT = r#"(?:dial tcp |ECONNREFUSED |connect to |connecting to |host[= ]["']?|//)\[?([A-Za-z0-9_.\-]+)\]?(?:["']?\s*(?:\(\S+\))?\s*(?:and accepting TCP/IP connections on port |, port |:)(\d{1,5}))?"#;
    DNS_A = r#"lookup ([A-Za-z0-9_.\-]+)(?: on [0-9.:\[\]a-f]+)?: (?:no such host|server misbehaving)"#;
    DNS_B = r#"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) ([A-Za-z0-9_.\-]+)"#;
    DNS_C = r#"(?i)(?:could not resolve(?: host(?:name)?)?|unknown host|UnknownHostException|bad address|nodename nor servname)[:\s]+['"]?([A-Za-z0-9_.\-]+)"#;
    DNS_D = r#"(?i)(?:name or service not known|temporary failure in name resolution|no such host|NXDOMAIN)"#;
    CMD_NOT_FOUND = r#"(?:^|\s|:)(?:line \d+: )?([^\s:]+): (?:command )?not found"#;
    PERMISSION = r#"(?i)permission denied"#;
    EXEC_FORMAT = r#"(?i)exec format error"#;
    SEGFAULT = r#"(?i)segmentation fault|SIGSEGV|signal 11\b"#;
    OOM = r#"(?i)OutOfMemoryError|out of memory|cannot allocate memory|std::bad_alloc"#;
    ERRORS = r#"(?i)\b(?:fatal|panic|error|exception|traceback|failed|failure|crash|abort)"#;
}

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
        let mut specific = false;
        for re in [&*ENV_A, &*ENV_B, &*ENV_C, &*ENV_D] {
            if let Some(c) = re.captures(&line) {
                let name = c[1].to_string();
                if looks_like_env_name(&name) {
                    push(&mut out.missing_env, no, &line, name);
                    specific = true;
                    break;
                }
            }
        }
        for re in [&*FILE_A, &*FILE_B, &*FILE_C, &*FILE_D] {
            if let Some(c) = re.captures(&line) {
                push(
                    &mut out.missing_file,
                    no,
                    &line,
                    c[1].trim_end_matches(['\'', '"', ',', '.']).to_string(),
                );
                specific = true;
                break;
            }
        }
        if REFUSED.is_match(&line) {
            push(&mut out.refused, no, &line, endpoint(&line));
            specific = true;
        }
        let dns_host = [&*DNS_A, &*DNS_B, &*DNS_C]
            .iter()
            .find_map(|re| re.captures(&line).map(|c| c[1].to_string()));
        if let Some(host) = dns_host {
            push(&mut out.dns, no, &line, host);
            specific = true;
        } else if DNS_D.is_match(&line) {
            push(&mut out.dns, no, &line, String::new());
            specific = true;
        }
        if let Some(c) = CMD_NOT_FOUND.captures(&line) {
            push(&mut out.not_found_command, no, &line, c[1].to_string());
            specific = true;
        }
        for (re, hits) in [
            (&*PERMISSION, &mut out.permission_denied),
            (&*EXEC_FORMAT, &mut out.exec_format),
            (&*SEGFAULT, &mut out.segfault),
            (&*OOM, &mut out.out_of_memory),
        ] {
            if re.is_match(&line) {
                push(hits, no, &line, ());
                specific = true;
            }
        }
        if !specific && ERRORS.is_match(&line) {
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
