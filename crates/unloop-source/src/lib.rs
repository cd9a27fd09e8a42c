//! Where unloop's cluster state comes from: a live API server, a snapshot bundle, or files that
//! kubectl wrote. Everything that touches the network or the file system lives here; every path
//! ends in the same [`unloop_core::ClusterState`], already redacted.

pub mod bundle;
pub mod debug;
pub mod files;
pub mod ingest;
mod input;
pub mod live;

use std::path::PathBuf;

/// Why reading cluster state failed. Each variant is one clear sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is truncated or corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error(
        "{path} was written by a newer unloop (bundle schema {found}, this unloop reads up to {supported}); upgrade unloop"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} is {kind}, not a regular file")]
    NotRegular { path: PathBuf, kind: &'static str },
    /// `limit` says how much of what, e.g. `1 GiB of JSON once decompressed`.
    #[error("{path} is too large: unloop reads at most {limit}")]
    TooLarge { path: PathBuf, limit: String },
    #[error(
        "{path} is not an unloop bundle, a kubectl JSON output, or a cluster-info dump directory"
    )]
    Unrecognised { path: PathBuf },
    /// An object with a field of the wrong type: the object and the field are named.
    #[error("{path}: {what}")]
    Malformed {
        path: PathBuf,
        what: unloop_core::malformed::Malformed,
    },
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the Kubernetes API server at {server}: {why}")]
    Unreachable { server: String, why: String },
    #[error("the API server refused the credentials of context {context}: {why}")]
    Unauthorized { context: String, why: String },
    #[error("{doing}: {why}")]
    TimedOut { doing: String, why: String },
    #[error("the API server failed: {0}")]
    Api(String),
    #[error("the metrics API (metrics.k8s.io) is not available: {0}")]
    MetricsUnavailable(String),
    #[error("Prometheus at {url}: {why}")]
    Prometheus { url: String, why: String },
}

impl SourceError {
    /// True for errors about the input files, false for errors about reaching a cluster.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            SourceError::Io { .. }
                | SourceError::Corrupt { .. }
                | SourceError::Malformed { .. }
                | SourceError::NewerSchema { .. }
                | SourceError::Unrecognised { .. }
                | SourceError::NotRegular { .. }
                | SourceError::TooLarge { .. }
        )
    }
}
