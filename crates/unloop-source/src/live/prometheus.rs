//! A Prometheus server the user named with `--prometheus URL`; nothing else is ever contacted.
//! Its `query_range` answers go back as JSON text (the audit crate parses them); requests go
//! through the same retrying [`Reader`], under the same deadline as the cluster's.

use std::time::Duration;

use kube::Config;

use super::client::{self, Deadline, Reader};
use crate::SourceError;

pub struct Prometheus {
    /// The client is made in the async context that uses it (kube's client spawns a task).
    config: Config,
    reader: tokio::sync::OnceCell<Reader>,
    url: String,
    base_path: String,
}

impl Prometheus {
    /// Checks the URL; nothing is contacted yet.
    pub fn new(url: &str) -> Result<Prometheus, SourceError> {
        let err = |why: String| SourceError::Prometheus {
            url: url.to_string(),
            why,
        };
        let uri: http::Uri = url.parse().map_err(|e| err(format!("not a URL: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(err("give a full URL such as http://127.0.0.1:9090".into()));
        };
        if scheme != "http" && scheme != "https" {
            return Err(err(format!("unsupported scheme {scheme}")));
        }
        let root: http::Uri = format!("{scheme}://{authority}")
            .parse()
            .map_err(|e| err(format!("not a URL: {e}")))?;
        Ok(Prometheus {
            config: Config::new(root),
            reader: tokio::sync::OnceCell::new(),
            url: url.to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    fn error(&self, why: String) -> SourceError {
        SourceError::Prometheus {
            url: self.url.clone(),
            why,
        }
    }

    /// A `query_range` over [start, end] (Unix seconds) at `step` seconds: the answer's JSON.
    pub async fn query_range(
        &self,
        deadline: &Deadline,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<String, SourceError> {
        let reader = self
            .reader
            .get_or_try_init(|| async {
                // Range queries over days are slow: each attempt may take the whole deadline.
                let timeout = deadline.timeout().max(Duration::from_secs(60));
                client::client(
                    self.config.clone(),
                    timeout,
                    client::attempt_timeout(timeout),
                )
                .map(|c| Reader::new(c, deadline.clone()))
                .map_err(|e| self.error(e))
            })
            .await?;
        let query: String = form_urlencoded_value(query);
        let path = format!(
            "{}/api/v1/query_range?query={query}&start={start}&end={end}&step={step}",
            self.base_path
        );
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| self.error(e.to_string()))?;
        reader
            .get(req)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| self.error(e.why()))
    }
}

/// A query parameter value, percent-encoded by the `url` crate's rules (what kube uses for its
/// own query strings).
fn form_urlencoded_value(v: &str) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.append_pair("q", v);
    s.finish().trim_start_matches("q=").to_string()
}
