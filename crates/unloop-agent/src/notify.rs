//! Notifications: a Slack-compatible incoming webhook and a generic JSON webhook.
//!
//! At most one per workload, container and cause within the window: the last one sent is recorded
//! in the `CrashDiagnosis` status *before* it is sent, so a new leader never sends it again (at
//! most once; a leader that dies between the record and the send loses that one notification).
//! Sent with retries and exponential backoff. Every body is made from a spec that went through
//! `outgoing::spec` (here again, for a spec read back from the cluster): free text redacted once
//! more, every field one visible line, bounded; a command as `shell::render` wrote it or not at all.
//!
//! The generic JSON body (`schemaVersion` 1) is documented in docs/agent.md.

use std::time::Duration;

use crate::crd::{CrashDiagnosisSpec, EvidenceItem, Notified, Omitted, RemedyItem};
use crate::outgoing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// The version of the generic JSON body.
pub const PAYLOAD_SCHEMA_VERSION: u32 = 1;

/// Whether to notify about `cause` now, given the last notification recorded for the resource.
pub fn should_notify(
    last: Option<&Notified>,
    cause: &str,
    now: Timestamp,
    window: SignedDuration,
) -> bool {
    let Some(last) = last else { return true };
    if last.cause != cause {
        return true;
    }
    match last.at.parse::<Timestamp>() {
        Ok(at) => now.duration_since(at) >= window,
        // An unreadable record: sending twice is better than never.
        Err(_) => true,
    }
}

/// The generic JSON webhook's body.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub schema_version: u32,
    /// `diagnosed` (a new cause) or `resolved`.
    pub event: &'static str,
    pub namespace: String,
    /// The `CrashDiagnosis` resource: `kubectl get crashdiagnosis NAME -n NAMESPACE`.
    pub resource: String,
    pub workload: String,
    pub container: String,
    pub cause: String,
    pub confidence: String,
    pub summary: String,
    pub restarts: i32,
    pub pods: Vec<String>,
    pub evidence: Vec<EvidenceItem>,
    pub remedies: Vec<RemedyItem>,
    pub first_seen: String,
    pub last_seen: String,
    /// Items left out of the lists to keep the body bounded, as in the resource.
    #[serde(skip_serializing_if = "Omitted::is_empty")]
    pub omitted: Omitted,
}

/// Where Slack's text says to look when a command cannot be shown as it is.
const SEE_RESOURCE: &str = "see the CrashDiagnosis resource for the command";

impl Payload {
    pub fn diagnosed(namespace: &str, resource: &str, spec: &CrashDiagnosisSpec) -> Payload {
        let spec = outgoing::spec(spec.clone());
        Payload {
            schema_version: PAYLOAD_SCHEMA_VERSION,
            event: "diagnosed",
            namespace: outgoing::line(namespace, outgoing::SHORT_MAX),
            resource: outgoing::line(resource, outgoing::SHORT_MAX),
            workload: spec.workload,
            container: spec.container,
            cause: spec.cause,
            confidence: spec.confidence,
            summary: spec.summary,
            restarts: spec.restarts,
            pods: spec.pods,
            evidence: spec.evidence,
            remedies: spec.remedies,
            first_seen: spec.first_seen,
            last_seen: spec.last_seen,
            omitted: spec.omitted,
        }
    }

    /// The workload recovered: the same body as when it was diagnosed, with `event: resolved`.
    pub fn resolved(namespace: &str, resource: &str, spec: &CrashDiagnosisSpec) -> Payload {
        Payload {
            event: "resolved",
            ..Payload::diagnosed(namespace, resource, spec)
        }
    }

    /// The body for a Slack-compatible incoming webhook: `text` in Slack's mrkdwn, the remedy's
    /// command in a code span. `&`, `<` and `>` are escaped as Slack asks, so text from the
    /// cluster cannot make a link or a mention; every field is one line (`outgoing`), so none
    /// can end the evidence's quote and forge a line. A command is shown exactly as
    /// `shell::render` wrote it: one with a backtick cannot be in a code span, and is left out
    /// rather than changed (an altered quote changes what the pasted line runs).
    pub fn slack(&self) -> serde_json::Value {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let span = |s: &str| (!s.contains('`')).then(|| format!("`{}`", esc(s)));
        let namespace = span(&self.namespace).unwrap_or_else(|| esc(&self.namespace));
        if self.event == "resolved" {
            let text = format!(
                "Resolved: *{}[{}]* in {namespace} (was *{}*): no container in trouble any more",
                esc(&self.workload),
                esc(&self.container),
                esc(&self.cause),
            );
            return serde_json::json!({ "text": text });
        }
        let mut text = format!(
            "*{}[{}]* in {namespace}: *{}* ({} confidence, {} restarts)\n{}",
            esc(&self.workload),
            esc(&self.container),
            esc(&self.cause),
            esc(&self.confidence),
            self.restarts,
            esc(&self.summary)
        );
        if let Some(e) = self.evidence.first() {
            text.push_str(&format!("\n> {}", esc(&e.text)));
        }
        if let Some(m) = self
            .remedies
            .iter()
            .find(|m| m.kind == "fix")
            .or(self.remedies.first())
        {
            text.push_str(&format!("\n{}", esc(&m.title)));
            if let Some(c) = &m.command {
                match span(c) {
                    Some(code) => text.push_str(&format!(": {code}")),
                    None => {
                        let resource = span(&self.resource).unwrap_or_else(|| esc(&self.resource));
                        text.push_str(&format!(" ({SEE_RESOURCE} {resource})"));
                    }
                }
            }
        }
        serde_json::json!({ "text": text })
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub slack: Option<String>,
    pub json: Option<String>,
}

impl Targets {
    pub fn any(&self) -> bool {
        self.slack.is_some() || self.json.is_some()
    }
}

/// Attempts per notification, the first included.
pub const ATTEMPTS: u32 = 5;

/// The wait before attempt `attempt + 1` after a failure: none when the failure is final (a 4xx
/// other than 408 and 429 means the receiver refuses this body), else 1 s doubling to 16 s, with
/// jitter in its upper half so receivers that failed together are not hit together again.
pub fn retry_delay(attempt: u32, status: Option<u16>, jitter: f64) -> Option<Duration> {
    if attempt >= ATTEMPTS {
        return None;
    }
    if let Some(s) = status
        && (400..500).contains(&s)
        && s != 408
        && s != 429
    {
        return None;
    }
    let ceiling = Duration::from_secs(1 << (attempt - 1).min(4));
    Some(ceiling / 2 + ceiling.mul_f64(jitter.clamp(0.0, 1.0) / 2.0))
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Sends bodies to webhooks over HTTP or HTTPS (the system's roots).
#[derive(Clone)]
pub struct Sender {
    client: HttpsClient,
}

impl Sender {
    pub fn new() -> Result<Sender, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("cannot load the system's TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Sender { client })
    }

    /// Posts `body` as JSON to `url`, retried; the error says what the last attempt met.
    pub async fn post(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
        let mut attempt = 1;
        loop {
            let (status, why) = match self.attempt(url, bytes.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match retry_delay(attempt, status, fastrand::f64()) {
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(format!("{why} (after {attempt} attempts)")),
            }
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &str, body: Bytes) -> Result<(), (Option<u16>, String)> {
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, unloop_source::live::USER_AGENT)
            .body(Full::new(body))
            .map_err(|e| (Some(400), format!("bad webhook URL: {e}")))?;
        let sent = tokio::time::timeout(Duration::from_secs(10), async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| (None, e.to_string()))?;
            let status = res.status();
            // Read the answer so the connection can be reused.
            let _ = res.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err((
                    Some(status.as_u16()),
                    format!("the webhook answered {status}"),
                ))
            }
        })
        .await;
        match sent {
            Ok(r) => r,
            Err(_) => Err((None, "no answer within 10s".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn record(cause: &str, s: i64) -> Notified {
        Notified {
            cause: cause.into(),
            at: at(s).to_string(),
        }
    }

    #[test]
    fn one_notification_per_cause_within_the_window() {
        let w = SignedDuration::from_hours(1);
        assert!(should_notify(None, "oom-killed", at(0), w));
        let last = record("oom-killed", 0);
        assert!(!should_notify(Some(&last), "oom-killed", at(3599), w));
        assert!(should_notify(Some(&last), "oom-killed", at(3600), w));
        assert!(
            should_notify(Some(&last), "missing-env", at(10), w),
            "another cause is news"
        );
    }

    #[test]
    fn retries_back_off_and_stop_on_a_refusal() {
        assert_eq!(retry_delay(1, None, 0.0), Some(Duration::from_millis(500)));
        assert_eq!(retry_delay(2, Some(503), 1.0), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(3, Some(429), 0.0), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(1, Some(404), 0.0), None);
        assert_eq!(retry_delay(ATTEMPTS, Some(503), 0.0), None);
    }
}
