//! Container logs: only the crashed instance of each troubled container, a bounded tail, read
//! concurrently with a bound.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use unloop_core::state::{ContainerLog, Gap, GapAbout, GapReason};
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
    /// Whether the other instance exists to read when this one is gone: a container that never
    /// ran before (restart count 0, no last state) has no previous log, and asking gives a 400.
    pub other_instance: bool,
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
            let (previous, other_instance) = if terminated_now {
                (false, crashed_before || cs.restart_count > 0)
            } else if crashed_before {
                (true, true)
            } else {
                continue;
            };
            out.push(LogWant {
                namespace: ns.clone(),
                pod: name.clone(),
                container: cs.name.clone(),
                previous,
                other_instance,
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
            let gone = match &r {
                Err(ReadError::Status { code, .. }) => *code != 404,
                Ok(b) => b.starts_with(GONE_LOG),
                Err(_) => false,
            };
            if gone && w.other_instance {
                w.previous = !w.previous;
                r = read_log(reader, &w, tail).await;
            }
            (w, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut logs: Vec<ContainerLog> = Vec::new();
    for (w, r) in results {
        let about = || GapAbout::Log {
            namespace: w.namespace.clone(),
            pod: w.pod.clone(),
            container: w.container.clone(),
        };
        match r {
            // The kubelet has removed the instance (and there was no other to read).
            Ok(b) if b.starts_with(GONE_LOG) => gaps.push(Gap::new(
                about(),
                GapReason::Gone,
                String::from_utf8_lossy(&b).trim(),
            )),
            Ok(bytes) => logs.push(ingest::log(
                &w.namespace,
                &w.pod,
                &w.container,
                w.previous,
                &bytes,
                false,
            )),
            Err(ReadError::Status { code: 404, .. }) => gaps.push(Gap::new(
                about(),
                GapReason::Gone,
                "the pod was deleted during the run",
            )),
            Err(e) => gaps.push(e.gap(about())),
        }
    }
    logs.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
    });
    logs
}
