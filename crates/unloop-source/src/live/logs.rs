//! Container logs: only the crashed instance of each troubled container, a bounded tail, read
//! concurrently with a bound.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use unloop_core::state::{ContainerLog, Gap};
use unloop_core::status;

use super::client::{ReadError, Reader};
use super::list::url;
use crate::ingest;

/// What the kubelet answers, with status 200, for the log of a container it has already removed.
const GONE_LOG: &[u8] = b"unable to retrieve container logs for ";

#[derive(Debug, Clone)]
pub struct LogWant {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
}

/// The logs diagnosis needs: the crashed instance of each troubled container that has run.
pub fn logs_needed(pods: &[Pod], now: jiff::Timestamp) -> Vec<LogWant> {
    let mut out = Vec::new();
    for p in pods {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        for (_, cs) in status::troubled_containers(p, now) {
            let crashed_before = cs
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some();
            let terminated_now = cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some();
            let previous = if terminated_now {
                false
            } else if crashed_before {
                true
            } else {
                continue;
            };
            out.push(LogWant {
                namespace: ns.clone(),
                pod: name.clone(),
                container: cs.name.clone(),
                previous,
            });
        }
    }
    out
}

async fn read_log(reader: &Reader, w: &LogWant, tail: i64) -> Result<Vec<u8>, ReadError> {
    let lp = LogParams {
        container: Some(w.container.clone()),
        previous: w.previous,
        tail_lines: Some(tail),
        limit_bytes: Some(ingest::MAX_LOG_BYTES as i64),
        ..Default::default()
    };
    let req = kube::core::Request::new(url::<Pod>(Some(&w.namespace)))
        .logs(&w.pod, &lp)
        .map_err(|e| ReadError::Broken(format!("cannot build the request: {e}")))?;
    reader.get(req).await.map(|b| b.to_vec())
}

/// Reads the wanted logs, `concurrency` at a time; what cannot be read becomes a gap.
pub async fn read_logs(
    reader: &Reader,
    wanted: Vec<LogWant>,
    tail: i64,
    concurrency: usize,
    gaps: &mut Vec<Gap>,
) -> Vec<ContainerLog> {
    let results: Vec<(LogWant, Result<Vec<u8>, ReadError>)> = futures::stream::iter(wanted)
        .map(|mut w| async move {
            let mut r = read_log(reader, &w, tail).await;
            // The container restarted between the list and this read: the instance asked for is
            // gone (the kubelet keeps one dead container), so read the other one.
            let other_instance = match &r {
                Err(ReadError::Status { code, .. }) => *code != 404,
                Ok(b) => b.starts_with(GONE_LOG),
                Err(_) => false,
            };
            if other_instance {
                w.previous = !w.previous;
                r = read_log(reader, &w, tail).await;
            }
            if let Ok(b) = &r
                && b.starts_with(GONE_LOG)
            {
                r = Err(ReadError::Broken(
                    String::from_utf8_lossy(b).trim().to_string(),
                ));
            }
            (w, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut logs: Vec<ContainerLog> = Vec::new();
    for (w, r) in results {
        match r {
            Ok(bytes) => logs.push(ingest::log(
                &w.namespace,
                &w.pod,
                &w.container,
                w.previous,
                &bytes,
                false,
            )),
            Err(e) => {
                let why = match &e {
                    ReadError::Status { code: 404, .. } => {
                        "the pod was deleted during the run".to_string()
                    }
                    other => other.why(),
                };
                gaps.push(Gap {
                    what: format!("logs of {}/{}[{}]", w.namespace, w.pod, w.container),
                    why,
                });
            }
        }
    }
    logs.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
    });
    logs
}
