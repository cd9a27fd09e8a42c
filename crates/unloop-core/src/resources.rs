//! Memory quantities and JVM heap flags: what a container may use and what it asks for.

use k8s_openapi::api::core::v1::Container;

/// Bytes in a Kubernetes quantity such as `256Mi`, `1G`, `512k` or `1.5Gi`. None when unparseable.
pub fn bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 0.001,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "e3" => 1e3,
        "e6" => 1e6,
        "e9" => 1e9,
        _ => return None,
    };
    Some((n * mult).round() as u64)
}

/// A human and Kubernetes-friendly spelling: whole Mi or Gi.
pub fn quantity(bytes: u64) -> String {
    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;
    if bytes >= GI && bytes.is_multiple_of(GI) {
        format!("{}Gi", bytes / GI)
    } else {
        format!("{}Mi", bytes.div_ceil(MI))
    }
}

/// Rounds up to a tidy size for a recommendation: a multiple of 64Mi.
pub fn round_up_tidy(bytes: u64) -> u64 {
    const STEP: u64 = 64 * 1024 * 1024;
    bytes.div_ceil(STEP).max(1) * STEP
}

fn resource(c: &Container, which: &str, name: &str) -> Option<String> {
    let r = c.resources.as_ref()?;
    let map = if which == "limits" {
        r.limits.as_ref()?
    } else {
        r.requests.as_ref()?
    };
    map.get(name).map(|q| q.0.clone())
}

pub fn memory_limit(c: &Container) -> Option<String> {
    resource(c, "limits", "memory")
}

pub fn memory_request(c: &Container) -> Option<String> {
    resource(c, "requests", "memory")
}

/// Where a JVM heap flag is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeapSource {
    /// In the value of this environment variable (one of [`JVM_ENV`]).
    Env(String),
    /// In the command line (command then args), at this word, counting from 1.
    CommandLine { word: usize },
}

impl std::fmt::Display for HeapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeapSource::Env(var) => write!(f, "env {var}"),
            HeapSource::CommandLine { word } => write!(f, "command line (word {word})"),
        }
    }
}

/// A JVM heap setting found in a container's command line or environment.
#[derive(Debug, Clone, PartialEq)]
pub enum Heap {
    /// `-Xmx` with the bytes it sets.
    Max {
        flag: String,
        bytes: u64,
        source: HeapSource,
    },
    /// `-XX:MaxRAMPercentage`.
    Percentage {
        flag: String,
        percent: f64,
        source: HeapSource,
    },
}

impl Heap {
    pub fn flag(&self) -> &str {
        match self {
            Heap::Max { flag, .. } | Heap::Percentage { flag, .. } => flag,
        }
    }

    pub fn source(&self) -> &HeapSource {
        match self {
            Heap::Max { source, .. } | Heap::Percentage { source, .. } => source,
        }
    }

    /// Heap bytes under a memory limit.
    pub fn bytes_under(&self, limit: u64) -> u64 {
        match self {
            Heap::Max { bytes, .. } => *bytes,
            Heap::Percentage { percent, .. } => (limit as f64 * percent / 100.0) as u64,
        }
    }
}

/// Environment variables the JVM reads options from.
pub const JVM_ENV: [&str; 4] = [
    "JAVA_TOOL_OPTIONS",
    "JAVA_OPTS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
];

/// The effective JVM max-heap setting of a container, if any. The last flag wins, as in the JVM;
/// the command line is read after the environment.
pub fn jvm_heap(c: &Container) -> Option<Heap> {
    let mut found = None;
    for env in c.env.iter().flatten() {
        if JVM_ENV.contains(&env.name.as_str())
            && let Some(v) = env.value.as_deref()
        {
            for tok in v.split_whitespace() {
                found = parse_heap_flag(tok, HeapSource::Env(env.name.clone())).or(found);
            }
        }
    }
    for (i, tok) in c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .enumerate()
    {
        for word in tok.split_whitespace() {
            found = parse_heap_flag(word, HeapSource::CommandLine { word: i + 1 }).or(found);
        }
    }
    found
}

fn parse_heap_flag(tok: &str, source: HeapSource) -> Option<Heap> {
    if let Some(v) = tok.strip_prefix("-Xmx") {
        let b = jvm_size(v)?;
        return Some(Heap::Max {
            flag: tok.to_string(),
            bytes: b,
            source,
        });
    }
    if let Some(v) = tok.strip_prefix("-XX:MaxRAMPercentage=") {
        let p: f64 = v.parse().ok()?;
        return Some(Heap::Percentage {
            flag: tok.to_string(),
            percent: p,
            source,
        });
    }
    None
}

/// JVM sizes: `512m`, `2g`, `1024k`, or bytes.
pub fn jvm_size(v: &str) -> Option<u64> {
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1024),
        'm' | 'M' => (&v[..v.len() - 1], 1024 * 1024),
        'g' | 'G' => (&v[..v.len() - 1], 1024 * 1024 * 1024),
        't' | 'T' => (&v[..v.len() - 1], 1024u64.pow(4)),
        _ => (v, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// How much of a memory limit the JVM heap may take and leave room for metaspace, threads, code
/// cache and native buffers. 75% is the common production ceiling.
pub const HEAP_SHARE: f64 = 0.75;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(bytes("256Mi"), Some(256 * 1024 * 1024));
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("500M"), Some(500_000_000));
        assert_eq!(bytes("lots"), None);
        assert_eq!(quantity(512 * 1024 * 1024), "512Mi");
        assert_eq!(quantity(2 << 30), "2Gi");
    }

    #[test]
    fn jvm_heap_from_env_and_args() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "app",
            "env": [{"name": "JAVA_OPTS", "value": "-Xms128m -Xmx768m"}],
        }))
        .unwrap();
        assert_eq!(
            jvm_heap(&c).map(|h| h.bytes_under(0)),
            Some(768 * 1024 * 1024)
        );
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "app",
            "args": ["-XX:MaxRAMPercentage=90", "-jar", "app.jar"],
        }))
        .unwrap();
        assert_eq!(jvm_heap(&c).map(|h| h.bytes_under(1000)), Some(900));
    }
}
