//! The one way unloop talks to an API server: the kubeconfig, the user agent, one overall deadline
//! (`--timeout`), a bound on each attempt (so a stalled body cannot hang a read), and retries of
//! idempotent reads with exponential backoff and jitter on throttling (honouring `Retry-After`),
//! server errors, connection resets and truncated bodies. Every read of every command passes here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::time::Instant;
use unloop_core::state::{Gap, GapAbout, GapReason};

use crate::SourceError;

/// What unloop calls itself in requests.
pub const USER_AGENT: &str = concat!("unloop/", env!("CARGO_PKG_VERSION"));

/// The overall deadline when none is given (`--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts of one idempotent read, the first included.
const ATTEMPTS: u32 = 6;
/// First backoff delay; it doubles each attempt, with full jitter, up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured; a longer one is treated as this (the deadline still rules).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// One deadline shared by every reader of a process: set once, from `--timeout`, when the first
/// client is made. It moves only when unloop waits on purpose (metrics sampling).
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Arc<Mutex<Instant>>,
    timeout: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Arc::new(Mutex::new(Instant::now() + timeout)),
            timeout,
        }
    }

    pub fn at(&self) -> Instant {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `--timeout` it was made from.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Moves the deadline later by a wait that is not the server's doing.
    pub fn extend(&self, by: Duration) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at()
    }
}

/// Why one read failed once every retry was spent. Each variant is one kind of gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The server answered with an error status: 403 forbidden, 404 not found, 5xx, ...
    Status { code: u16, message: String },
    /// The overall deadline (`--timeout`) passed before a complete answer.
    TimedOut(String),
    /// The server could not be reached at all (refused, no route, TLS).
    Unreachable(String),
    /// The connection broke or the answer was cut short or unreadable, on every attempt.
    Broken(String),
}

impl ReadError {
    /// The reason, as a gap states it.
    pub fn why(&self) -> String {
        match self {
            ReadError::Status { code, message } => format!("{message} ({code})"),
            ReadError::TimedOut(why) | ReadError::Unreachable(why) | ReadError::Broken(why) => {
                why.clone()
            }
        }
    }

    /// What kind of failure this is, for summaries and metrics.
    pub fn kind(&self) -> ReadErrorKind {
        match self {
            ReadError::Status { code, .. } => GapReason::of_status(*code),
            ReadError::TimedOut(_) => GapReason::TimedOut,
            ReadError::Unreachable(_) => GapReason::Unreachable,
            ReadError::Broken(_) => GapReason::Broken,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            ReadError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The gap this failure leaves: `about` was not read, for this reason.
    pub fn gap(&self, about: GapAbout) -> Gap {
        Gap {
            about,
            reason: self.kind(),
            status: self.code(),
            why: self.why(),
        }
    }
}

/// The kinds of [`ReadError`]: the reasons of the gaps a report summarises.
pub type ReadErrorKind = GapReason;

/// One attempt's outcome when it failed: give up, or try again (after `Retry-After` if given).
enum Failed {
    Final(ReadError),
    Again(ReadError, Option<Duration>),
}

/// A client with the retry and deadline policy. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    client: Client,
    deadline: Deadline,
    /// The longest one attempt may take, headers and body.
    per_attempt: Duration,
}

/// How long one attempt may take under a given overall timeout: a third of it, between 2 s and
/// 30 s, so a stalled answer leaves time for two more tries.
pub fn attempt_timeout(timeout: Duration) -> Duration {
    (timeout / 3).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

impl Reader {
    pub fn new(client: Client, deadline: Deadline) -> Reader {
        let per_attempt = attempt_timeout(deadline.timeout());
        Reader {
            client,
            deadline,
            per_attempt,
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    /// An idempotent GET, retried until it succeeds, fails for good, or the deadline passes.
    pub async fn get(&self, req: http::Request<Vec<u8>>) -> Result<Bytes, ReadError> {
        let mut attempt = 1;
        loop {
            match self.attempt(&req, self.per_attempt).await {
                Ok(b) => return Ok(b),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Again(e, retry_after)) => {
                    if attempt >= ATTEMPTS {
                        return Err(e);
                    }
                    self.pause(attempt, retry_after, &e).await?;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt, bounded by `limit` and the deadline: for reads that only refine a report and
    /// that waiting longer would not help (a node's kubelet behind the apiserver's proxy).
    pub async fn get_once(
        &self,
        req: http::Request<Vec<u8>>,
        limit: Duration,
    ) -> Result<Bytes, ReadError> {
        self.attempt(&req, limit).await.map_err(|f| match f {
            Failed::Final(e) | Failed::Again(e, _) => e,
        })
    }

    /// Waits before attempt `attempt + 1`: `Retry-After` when the server gave one, else
    /// exponential backoff with full jitter. Fails when the wait would end past the deadline.
    pub(crate) async fn pause(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        last: &ReadError,
    ) -> Result<(), ReadError> {
        let delay = match retry_after {
            Some(d) => d.min(RETRY_AFTER_CAP),
            None => {
                let ceiling = BACKOFF_BASE
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(BACKOFF_CAP);
                // Full jitter: anywhere in [ceiling/2, ceiling], so clients that failed together
                // do not come back together.
                ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
            }
        };
        if Instant::now() + delay >= self.deadline.at() {
            return Err(self.gave_up(last));
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn gave_up(&self, last: &ReadError) -> ReadError {
        ReadError::TimedOut(format!(
            "{}; gave up at the {} deadline (--timeout)",
            last.why(),
            secs(self.deadline.timeout())
        ))
    }

    async fn attempt(
        &self,
        req: &http::Request<Vec<u8>>,
        limit: Duration,
    ) -> Result<Bytes, Failed> {
        if self.deadline.passed() {
            return Err(Failed::Final(ReadError::TimedOut(format!(
                "not read: the {} deadline (--timeout) had passed",
                secs(self.deadline.timeout())
            ))));
        }
        let deadline = self.deadline.at();
        let until = deadline.min(Instant::now() + limit);
        let exchange = async {
            let res = self.client.send(req.clone().map(Body::from)).await?;
            let status = res.status();
            let retry_after = res
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = res.into_body().collect_bytes().await;
            Ok::<_, kube::Error>((status, retry_after, body))
        };
        match tokio::time::timeout_at(until, exchange).await {
            Err(_) if until >= deadline => Err(Failed::Final(ReadError::TimedOut(format!(
                "no complete answer before the {} deadline (--timeout)",
                secs(self.deadline.timeout())
            )))),
            Err(_) => Err(Failed::Again(
                ReadError::TimedOut(format!("no complete answer within {}", secs(limit))),
                None,
            )),
            Ok(Err(e)) => Err(transport(&e)),
            Ok(Ok((_, _, Err(e)))) => Err(Failed::Again(
                ReadError::Broken(format!("the answer was cut short: {}", error_chain(&e))),
                None,
            )),
            Ok(Ok((status, retry_after, Ok(body)))) => {
                if status.is_success() {
                    return Ok(body);
                }
                let e = ReadError::Status {
                    code: status.as_u16(),
                    message: status_message(&body, status),
                };
                if matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504) {
                    Err(Failed::Again(e, retry_after))
                } else {
                    Err(Failed::Final(e))
                }
            }
        }
    }
}

/// The message of an error answer: the API's `Status` message, or the text a proxy sent.
fn status_message(body: &[u8], status: http::StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Status>(body) {
        Ok(s) if !s.message.is_empty() => s.message,
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.len() > 200 {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text.to_string()
            }
        }
    }
}

/// A failure below HTTP: a refused connection means nothing listens there (no retry); a reset,
/// a closed connection or an incomplete message is worth another attempt.
fn transport(e: &kube::Error) -> Failed {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<hyper_util::client::legacy::Error>()
            && c.is_connect()
        {
            return Failed::Final(ReadError::Unreachable(error_chain(e)));
        }
        cur = err.source();
    }
    match e {
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            Failed::Again(ReadError::Broken(error_chain(e)), None)
        }
        other => Failed::Final(ReadError::Broken(error_chain(other))),
    }
}

/// An error and its causes on one line, without repeats.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
}

/// A connection, before any read: the client and what the kubeconfig says about it.
pub struct Connected {
    pub client: Client,
    pub server: String,
    pub context: String,
    pub default_namespace: String,
}

/// Loads the kubeconfig (the given file, or $KUBECONFIG, or ~/.kube/config) and makes the client.
pub async fn connect(target: &Target, timeout: Duration) -> Result<Connected, SourceError> {
    connect_with(target, timeout, attempt_timeout(timeout)).await
}

/// A client for long-lived watches (`unloop agent`): the same kubeconfig, user agent and
/// connection bound, but a socket may stay quiet for a whole watch (the server ends each one
/// within 290 s), and without a kubeconfig inside a pod it uses the pod's service account.
pub async fn connect_watching(
    target: &Target,
    timeout: Duration,
) -> Result<Connected, SourceError> {
    let in_pod = target.kubeconfig.is_none()
        && std::env::var_os("KUBECONFIG").is_none()
        && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if in_pod {
        let config = Config::incluster().map_err(|e| SourceError::Kubeconfig(e.to_string()))?;
        let server = config.cluster_url.to_string();
        let default_namespace = config.default_namespace.clone();
        let client =
            client(config, timeout, WATCH_READ_TIMEOUT).map_err(SourceError::Kubeconfig)?;
        return Ok(Connected {
            client,
            server,
            context: "in-cluster".into(),
            default_namespace,
        });
    }
    connect_with(target, timeout, WATCH_READ_TIMEOUT).await
}

/// Longer than the server's longest watch (kube-runtime asks for 290 s).
const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(330);

async fn connect_with(
    target: &Target,
    timeout: Duration,
    read_timeout: Duration,
) -> Result<Connected, SourceError> {
    let kubeconfig = match &target.kubeconfig {
        Some(p) => Kubeconfig::read_from(p)
            .map_err(|e| SourceError::Kubeconfig(format!("{}: {e}", p.display())))?,
        None => Kubeconfig::read().map_err(|e| {
            SourceError::Kubeconfig(format!("{e} (set KUBECONFIG or pass --kubeconfig)"))
        })?,
    };
    let context = target
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    if target.context.is_some() && !kubeconfig.contexts.iter().any(|c| c.name == context) {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(SourceError::Kubeconfig(format!(
            "no context named {context:?} (contexts: {})",
            known.join(", ")
        )));
    }
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| SourceError::Kubeconfig(e.to_string()))?;
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client = client(config, timeout, read_timeout).map_err(SourceError::Kubeconfig)?;
    Ok(Connected {
        client,
        server,
        context,
        default_namespace,
    })
}

/// A client from a config, with unloop's user agent and connection bounds. Needs a Tokio runtime.
pub(crate) fn client(
    mut config: Config,
    timeout: Duration,
    read_timeout: Duration,
) -> Result<Client, String> {
    // Retries are `Reader`'s alone: kube's own layer would multiply them and ignore Retry-After.
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(5).min(timeout));
    // The attempt bound in `Reader` is the real limit; this one only stops a socket that stalls.
    config.read_timeout = Some(read_timeout);
    // Lets an apiserver's audit log and metrics tell unloop's requests apart.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Client::try_from(config).map_err(|e| e.to_string())
}
