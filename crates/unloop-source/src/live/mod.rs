//! State from a live API server, for every command that reads one (diagnose, snapshot, audit,
//! right-sizing; debug for its few writes). One client per process, made once by [`connect`]:
//!
//! - [`client`]: the kubeconfig, the user agent, the overall deadline (`--timeout`), the bound on
//!   each attempt and the retries of idempotent reads: the one place requests are sent.
//! - [`list`]: paged lists (`limit` and `continue`, a list restarted when its token expires).
//! - [`state`]: the [`ClusterState`](unloop_core::ClusterState) diagnosis reads, one list per kind.
//! - [`logs`]: previous logs of troubled containers; [`configz`]: kubelet configs of their nodes.
//! - [`audit`]: what audit reads beyond that (CronJobs, ServiceAccounts, key lists for
//!   `--resolve-live`, nodes, the metrics API); [`prometheus`]: the Prometheus a user names.
//! - [`watch`]: a watch of a workload's pods (`unloop retry`, `diagnose --watch`).

pub mod audit;
pub mod client;
pub mod configz;
pub mod list;
pub mod logs;
pub mod prometheus;
pub mod state;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;

pub use client::{DEFAULT_TIMEOUT, Deadline, ReadError, ReadErrorKind, Reader, USER_AGENT};
pub use configz::parse_configz;

use crate::SourceError;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The overall deadline of every request this process makes (`--timeout`).
    pub timeout: Duration,
    /// The namespace to read; None means the kubeconfig context's namespace.
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    /// Log lines read per container at most.
    pub log_tail_lines: i64,
    /// Log requests in flight at once.
    pub log_concurrency: usize,
    /// Read ConfigMaps and Secrets (key names only). Off for a faster, narrower read.
    pub read_config: bool,
    /// Keep every pod whole. Off (the default), healthy pods that a controller made are cut down to
    /// what diagnosis reads of them (`unloop_core::slim`); audit and `snapshot --whole-pods` keep them.
    pub whole_pods: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            kubeconfig: None,
            context: None,
            timeout: DEFAULT_TIMEOUT,
            namespace: None,
            all_namespaces: false,
            log_tail_lines: 200,
            log_concurrency: 8,
            read_config: true,
            whole_pods: false,
        }
    }
}

/// A connection to a cluster, ready to read. Made once per process and passed to every reader.
pub struct Live {
    reader: Reader,
    pub server: String,
    pub context: String,
    pub default_namespace: String,
}

/// Connects with the kubeconfig and context of `opts`; the deadline starts now.
pub async fn connect(opts: &LiveOptions) -> Result<Live, SourceError> {
    let deadline = Deadline::after(opts.timeout);
    let target = client::Target {
        kubeconfig: opts.kubeconfig.clone(),
        context: opts.context.clone(),
    };
    let c = client::connect(&target, opts.timeout).await?;
    Ok(Live {
        reader: Reader::new(c.client, deadline),
        server: c.server,
        context: c.context,
        default_namespace: c.default_namespace,
    })
}

impl Live {
    /// The API client, for the few operations outside reading state (`unloop debug`).
    pub fn client(&self) -> Client {
        self.reader.client()
    }

    /// The reader every read goes through (retries, deadline).
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The process's deadline, to share with other readers (Prometheus).
    pub fn deadline(&self) -> &Deadline {
        self.reader.deadline()
    }

    /// The namespace `opts` asks for: None for all, else the given one or the context's.
    pub fn namespace(&self, opts: &LiveOptions) -> Option<String> {
        if opts.all_namespaces {
            None
        } else {
            Some(
                opts.namespace
                    .clone()
                    .unwrap_or_else(|| self.default_namespace.clone()),
            )
        }
    }

    /// A read that failed for good, as the error of the whole command.
    pub(crate) fn fatal(&self, e: &ReadError, doing: &str) -> SourceError {
        match e {
            ReadError::Unreachable(why) => SourceError::Unreachable {
                server: self.server.clone(),
                why: why.clone(),
            },
            ReadError::Status { code: 401, message } => SourceError::Unauthorized {
                context: self.context.clone(),
                why: message.clone(),
            },
            ReadError::TimedOut(why) => SourceError::TimedOut {
                doing: doing.to_string(),
                why: why.clone(),
            },
            other => SourceError::Api(format!("{doing}: {}", other.why())),
        }
    }
}
