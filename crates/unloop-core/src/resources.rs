//! Memory quantities and JVM heap flags: what a container may use and what it asks for.

use k8s_openapi::api::core::v1::Container;

// Memory is parsed and written by [`crate::quantity`]; these two names stay for the callers that
// spell sizes in findings and remedies.
pub use crate::quantity::{bytes_text as quantity, round_up_tidy};

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
    /// `-XX:MaxRAMPercentage`, of `-XX:MaxRAM` when set (else of the limit).
    Percentage {
        flag: String,
        percent: f64,
        source: HeapSource,
        max_ram: Option<u64>,
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
            Heap::Percentage {
                percent, max_ram, ..
            } => (max_ram.unwrap_or(limit) as f64 * percent / 100.0) as u64,
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
/// the command line is read after the environment. An explicit maximum (`-Xmx`,
/// `-XX:MaxHeapSize`) beats a share of RAM (`-XX:MaxRAMPercentage`, against `-XX:MaxRAM` when
/// given), and `-Xms` alone sets the heap the JVM grows to at least.
pub fn jvm_heap(c: &Container) -> Option<Heap> {
    let mut flags = JvmFlags::default();
    for env in c.env.iter().flatten() {
        if JVM_ENV.contains(&env.name.as_str())
            && let Some(v) = env.value.as_deref()
        {
            let source = HeapSource::Env(env.name.clone());
            for tok in v.split_whitespace() {
                flags.read(tok, &source);
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
            flags.read(word, &HeapSource::CommandLine { word: i + 1 });
        }
    }
    flags.heap()
}

/// The heap flags seen so far; each later one replaces an earlier one of its kind.
#[derive(Default)]
struct JvmFlags {
    max: Option<Heap>,
    initial: Option<Heap>,
    percentage: Option<(String, f64, HeapSource)>,
    max_ram: Option<u64>,
}

impl JvmFlags {
    fn read(&mut self, tok: &str, source: &HeapSource) {
        let sized = |v: &str| {
            jvm_size(v).map(|bytes| Heap::Max {
                flag: tok.to_string(),
                bytes,
                source: source.clone(),
            })
        };
        if let Some(v) = tok
            .strip_prefix("-Xmx")
            .or_else(|| tok.strip_prefix("-XX:MaxHeapSize="))
        {
            self.max = sized(v).or(self.max.take());
        } else if let Some(v) = tok
            .strip_prefix("-Xms")
            .or_else(|| tok.strip_prefix("-XX:InitialHeapSize="))
        {
            self.initial = sized(v).or(self.initial.take());
        } else if let Some(v) = tok.strip_prefix("-XX:MaxRAMPercentage=") {
            if let Ok(p) = v.parse::<f64>()
                && p.is_finite()
                && (0.0..=100.0).contains(&p)
            {
                self.percentage = Some((tok.to_string(), p, source.clone()));
            }
        } else if let Some(v) = tok.strip_prefix("-XX:MaxRAM=") {
            self.max_ram = jvm_size(v).or(self.max_ram);
        }
    }

    fn heap(self) -> Option<Heap> {
        if self.max.is_some() {
            return self.max;
        }
        if let Some((flag, percent, source)) = self.percentage {
            return Some(Heap::Percentage {
                flag,
                percent,
                source,
                max_ram: self.max_ram,
            });
        }
        self.initial
    }
}

/// JVM sizes: `512m`, `2g`, `1024k`, `1t`, or bytes. A size too large for a u64 is `u64::MAX`:
/// the JVM would refuse it or it is above any memory limit, and either way it is no small number.
pub fn jvm_size(v: &str) -> Option<u64> {
    let (num, shift) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 10),
        b'm' | b'M' => (&v[..v.len() - 1], 20),
        b'g' | b'G' => (&v[..v.len() - 1], 30),
        b't' | b'T' => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = num.parse::<u64>().unwrap_or(u64::MAX);
    Some(n.saturating_mul(1 << shift))
}

/// How much of a memory limit the JVM heap may take and leave room for metaspace, threads, code
/// cache and native buffers. 75% is the common production ceiling.
pub const HEAP_SHARE: f64 = 0.75;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jvm_sizes_are_checked() {
        assert_eq!(jvm_size("512m"), Some(512 << 20));
        assert_eq!(jvm_size("2G"), Some(2 << 30));
        assert_eq!(jvm_size("1t"), Some(1 << 40));
        assert_eq!(jvm_size("1048576"), Some(1 << 20));
        // Overflowing sizes are above any limit, not wrapped to a small number or zero.
        assert_eq!(jvm_size("16777216t"), Some(u64::MAX));
        assert_eq!(jvm_size("99999999999999999999999g"), Some(u64::MAX));
        assert_eq!(jvm_size("g"), None);
        assert_eq!(jvm_size("-1g"), None);
        assert_eq!(jvm_size("1é"), None);
        assert_eq!(jvm_size(""), None);
    }

    proptest::proptest! {
        #[test]
        fn jvm_size_never_panics_and_never_shrinks(n in proptest::prelude::any::<u64>(), i in 0usize..5) {
            let (suffix, shift) = [("", 0), ("k", 10), ("m", 20), ("g", 30), ("t", 40)][i];
            let want = u64::try_from(u128::from(n) << shift).unwrap_or(u64::MAX);
            proptest::prop_assert_eq!(jvm_size(&format!("{n}{suffix}")), Some(want));
        }

        #[test]
        fn jvm_flags_never_panic(s in "\\PC{0,30}") {
            let _ = jvm_size(&s);
        }
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
