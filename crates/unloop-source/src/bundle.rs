//! Snapshot bundles: one gzip-compressed JSON document holding a `ClusterState`.
//!
//! Layout (schema 1): `{"kind": "UnloopSnapshot", "schemaVersion": 1, "unloopVersion": "x.y.z",
//! "state": {...ClusterState...}}`. The header fields come first so a reader can refuse a newer
//! schema before it parses the body. Readers stream: the file is never held whole in memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use unloop_core::state::{BUNDLE_SCHEMA_VERSION, ClusterState};

use crate::SourceError;
use crate::input::{self, Capped};

pub const KIND: &str = "UnloopSnapshot";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeOut<'a> {
    kind: &'static str,
    schema_version: u32,
    unloop_version: &'static str,
    state: &'a ClusterState,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvelopeIn {
    pub kind: String,
    pub schema_version: u32,
    pub state: ClusterState,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    kind: Option<String>,
    schema_version: Option<u32>,
}

/// Writes `state` to `path` atomically (a temporary file renamed into place), so an interrupted
/// capture never leaves a half-written bundle under the final name.
pub fn write(path: &Path, state: &ClusterState) -> Result<(), SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("partial");
    let file = File::create(&tmp).map_err(io)?;
    let mut gz = GzEncoder::new(BufWriter::new(file), Compression::default());
    let env = EnvelopeOut {
        kind: KIND,
        schema_version: BUNDLE_SCHEMA_VERSION,
        unloop_version: env!("CARGO_PKG_VERSION"),
        state,
    };
    serde_json::to_writer(&mut gz, &env).map_err(|e| io(e.into()))?;
    let mut inner = gz.finish().map_err(io)?;
    inner.flush().map_err(io)?;
    drop(inner);
    std::fs::rename(&tmp, path).map_err(io)
}

/// The most compressed bytes a bundle file may hold.
pub const MAX_COMPRESSED_BYTES: u64 = 256 << 20;
/// The most JSON a bundle may hold, after decompression (a gzip bomb stops here) or as plain JSON.
pub const MAX_JSON_BYTES: u64 = 1 << 30;

/// True when the file starts like a gzip stream. Only regular files are opened.
pub fn looks_gzipped(path: &Path) -> Result<bool, SourceError> {
    let (file, _) = input::open_regular(path)?;
    let mut magic = [0u8; 2];
    let n = file
        .take(2)
        .read(&mut magic)
        .map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(n == 2 && magic == GZIP_MAGIC)
}

/// Reads a bundle, gzip-compressed or plain JSON, streaming and within the size limits.
pub fn read(path: &Path) -> Result<ClusterState, SourceError> {
    let gz = looks_gzipped(path)?;
    let parsed: Result<EnvelopeIn, serde_json::Error> = parse(path, gz)?;
    match parsed {
        Ok(env) if env.kind == KIND && env.schema_version <= BUNDLE_SCHEMA_VERSION => {
            let mut state = env.state;
            crate::ingest::scrub(&mut state);
            Ok(state)
        }
        Ok(env) if env.kind == KIND => Err(newer(path, env.schema_version)),
        Ok(_) => Err(SourceError::Unrecognised {
            path: path.to_path_buf(),
        }),
        Err(e) if e.is_io() => Err(failed(path, gz, e)),
        Err(e) => {
            // A body this build cannot parse may come from a newer schema: say so if the header does.
            if let Ok(Ok(h)) = parse::<Header>(path, gz)
                && h.kind.as_deref() == Some(KIND)
                && h.schema_version.is_some_and(|v| v > BUNDLE_SCHEMA_VERSION)
            {
                return Err(newer(path, h.schema_version.unwrap_or_default()));
            }
            // A field of the wrong type: read the document again as plain JSON (within the same
            // limits) to name the object and the field, not a column of a one-line file.
            if e.classify() == serde_json::error::Category::Data
                && let Ok(Ok(doc)) = parse::<serde_json::Value>(path, gz)
                && let Some(what) = unloop_core::malformed::explain::<EnvelopeIn>(&doc)
            {
                return Err(SourceError::Malformed {
                    path: path.to_path_buf(),
                    what,
                });
            }
            Err(failed(path, gz, e))
        }
    }
}

/// Buffer for streaming a bundle: large reads keep the parser out of per-byte I/O calls.
const READ_BUFFER: usize = 256 * 1024;

/// Parses the file as `T`, through concrete reader types (no dynamic dispatch per byte). The
/// file's size is checked before reading, and every layer is capped while reading, so neither a
/// growing file nor a gzip bomb can take more than the limits.
fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    gz: bool,
) -> Result<Result<T, serde_json::Error>, SourceError> {
    let (file, meta) = input::open_regular(path)?;
    let (on_disk, what) = if gz {
        (MAX_COMPRESSED_BYTES, "compressed bundle")
    } else {
        (MAX_JSON_BYTES, "bundle JSON")
    };
    let disk_limit = input::LimitExceeded {
        what,
        limit: on_disk,
    };
    if meta.len() > on_disk {
        return Err(input::too_large(path, &disk_limit));
    }
    let file = Capped::new(file, on_disk, what);
    Ok(if gz {
        serde_json::from_reader(BufReader::with_capacity(
            READ_BUFFER,
            Capped::new(
                GzDecoder::new(BufReader::with_capacity(READ_BUFFER, file)),
                MAX_JSON_BYTES,
                "JSON once decompressed",
            ),
        ))
    } else {
        serde_json::from_reader(BufReader::with_capacity(READ_BUFFER, file))
    })
}

fn newer(path: &Path, found: u32) -> SourceError {
    SourceError::NewerSchema {
        path: path.to_path_buf(),
        found,
        supported: BUNDLE_SCHEMA_VERSION,
    }
}

/// Why a bundle could not be parsed: over a limit, truncated, damaged, or not valid JSON.
fn failed(path: &Path, gz: bool, e: serde_json::Error) -> SourceError {
    let why = if e.is_io() {
        let io = std::io::Error::from(e);
        if let Some(l) = input::limit_of(&io) {
            return input::too_large(path, l);
        }
        match (io.kind(), gz) {
            (std::io::ErrorKind::UnexpectedEof, true) => {
                "the compressed stream ends early (truncated file)".to_string()
            }
            (_, true) => format!("the compressed stream is damaged ({io})"),
            (_, false) => {
                return SourceError::Io {
                    path: path.to_path_buf(),
                    source: io,
                };
            }
        }
    } else if e.is_eof() {
        "the JSON ends early (truncated file)".to_string()
    } else {
        format!(
            "invalid bundle JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        )
    };
    SourceError::Corrupt {
        path: path.to_path_buf(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterState {
        let mut s = ClusterState::default();
        s.logs.push(unloop_core::state::ContainerLog {
            namespace: "a".into(),
            pod: "p".into(),
            container: "c".into(),
            previous: true,
            text: "boom\n".into(),
            truncated: false,
        });
        s
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json.gz");
        write(&p, &sample()).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.logs, sample().logs);
    }

    /// A captured bundle with one field of one pod broken: the error names the pod and the
    /// field, not a column of the one-line JSON.
    #[test]
    fn a_malformed_field_names_the_object_and_the_field() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testbed/scenarios/segfault/bundle.json.gz");
        let mut doc: serde_json::Value = serde_json::from_reader(flate2::read::GzDecoder::new(
            std::fs::File::open(&path).unwrap(),
        ))
        .unwrap();
        let pod = &mut doc["state"]["pods"][0];
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        pod["status"]["containerStatuses"][0]["restartCount"] = "x".into();
        let dir = tempfile::tempdir().unwrap();
        for (file, gz) in [("b.json.gz", true), ("b.json", false)] {
            let p = dir.path().join(file);
            let mut bytes = Vec::new();
            if gz {
                let mut w = GzEncoder::new(&mut bytes, flate2::Compression::fast());
                serde_json::to_writer(&mut w, &doc).unwrap();
                w.finish().unwrap();
            } else {
                serde_json::to_writer(&mut bytes, &doc).unwrap();
            }
            std::fs::write(&p, bytes).unwrap();
            let e = read(&p).unwrap_err();
            assert!(matches!(e, SourceError::Malformed { .. }), "{e}");
            let e = e.to_string();
            assert!(
                e.contains(&format!(
                    "Pod segfault/{name}: field status.containerStatuses[0].restartCount: invalid type: string \"x\""
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn truncated_bundles_are_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json.gz");
        let mut big = sample();
        big.logs[0].text = "line of text that compresses\n".repeat(20_000);
        write(&p, &big).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json");
        std::fs::write(
            &p,
            r#"{"kind":"UnloopSnapshot","schemaVersion":99,"state":{"pods":"a new shape"}}"#,
        )
        .unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(
            err.contains("newer unloop") && err.contains("schema 99"),
            "{err}"
        );
    }
}
