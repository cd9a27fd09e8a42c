//! What `unloop audit` reads beyond the diagnosis state, through the same client: CronJobs,
//! ServiceAccounts, ConfigMap and Secret key lists for `--resolve-live`, nodes, and the metrics
//! API. Each list is paged and made once per kind; answers are plain data for the audit crate.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::ListParams;
use unloop_core::state::{Gap, GapAbout, KeySet, ListOf};

use super::Live;
use super::client::ReadError;
use super::list::{list_all, list_map, parse_whole, url};
use crate::{SourceError, ingest};

/// ConfigMaps and Secrets (key names only) and ServiceAccounts of some namespaces.
#[derive(Debug, Clone, Default)]
pub struct ConfigKeys {
    pub config_maps: Vec<KeySet>,
    pub secrets: Vec<KeySet>,
    /// (namespace, name); None when they could not be read.
    pub service_accounts: Option<BTreeSet<(String, String)>>,
    /// What could not be read, and why.
    pub gaps: Vec<Gap>,
}

#[derive(serde::Deserialize)]
struct MetaOnly {
    #[serde(default)]
    metadata: ObjectMeta,
}

impl Live {
    /// CronJobs in one namespace or all.
    pub async fn cron_jobs(&self, namespace: Option<&str>) -> Result<Vec<CronJob>, ReadError> {
        list_all(
            self.reader(),
            url::<CronJob>(namespace),
            &ListParams::default(),
        )
        .await
    }

    /// ServiceAccounts by (namespace, name), in one namespace or all; only their names are parsed.
    pub async fn service_accounts(
        &self,
        namespace: Option<&str>,
    ) -> Result<BTreeSet<(String, String)>, ReadError> {
        let names = list_map(
            self.reader(),
            url::<ServiceAccount>(namespace),
            &ListParams::default(),
            |raw| {
                let m = serde_json::from_str::<MetaOnly>(raw.get())?.metadata;
                Ok(Some((
                    m.namespace.unwrap_or_default(),
                    m.name.unwrap_or_default(),
                )))
            },
            || {},
        )
        .await?;
        Ok(names.into_iter().collect())
    }

    pub async fn nodes(&self) -> Result<Vec<Node>, ReadError> {
        list_all(
            self.reader(),
            Node::url_path(&(), None),
            &ListParams::default(),
        )
        .await
    }

    /// What the cluster holds in `namespaces` for reference resolution: one list per kind (across
    /// all namespaces when there are several, each filtered to those asked for; per namespace
    /// when a cluster-wide list is forbidden). Refusals become gaps; only an unreachable server
    /// is an error.
    pub async fn config_keys(
        &self,
        namespaces: &BTreeSet<String>,
    ) -> Result<ConfigKeys, SourceError> {
        let mut out = ConfigKeys::default();
        let (cms, secrets, accounts) = futures::join!(
            self.keys_in::<ConfigMap>(namespaces, ListOf::ConfigMaps, |raw| {
                parse_whole::<ConfigMap>(raw).map(ingest::config_map)
            }),
            self.keys_in::<Secret>(namespaces, ListOf::Secrets, |raw| {
                parse_whole::<Secret>(raw).map(ingest::secret)
            }),
            self.accounts_in(namespaces),
        );
        for (r, list) in [(cms, &mut out.config_maps), (secrets, &mut out.secrets)] {
            match r {
                Ok((sets, gaps)) => {
                    list.extend(sets);
                    out.gaps.extend(gaps);
                }
                Err(e) => return Err(self.fatal(&e, "cannot read config")),
            }
        }
        out.service_accounts = match accounts {
            Ok(a) => Some(a),
            Err(ReadError::Unreachable(why)) => {
                return Err(self.fatal(&ReadError::Unreachable(why), "cannot read config"));
            }
            Err(_) => None,
        };
        Ok(out)
    }

    /// Key sets of a kind in `namespaces`: one list when possible, gaps for what was refused.
    async fn keys_in<K>(
        &self,
        namespaces: &BTreeSet<String>,
        resource: ListOf,
        parse: impl Fn(&serde_json::value::RawValue) -> Result<KeySet, serde_json::Error>,
    ) -> Result<(Vec<KeySet>, Vec<Gap>), ReadError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        let lp = ListParams::default();
        let wanted = |k: &KeySet| namespaces.contains(&k.namespace);
        if namespaces.len() > 1 {
            let r = list_map(
                self.reader(),
                url::<K>(None),
                &lp,
                |raw| parse(raw).map(Some),
                || {},
            )
            .await;
            match r {
                Ok(sets) => return Ok((sets.into_iter().filter(wanted).collect(), Vec::new())),
                Err(ReadError::Unreachable(why)) => return Err(ReadError::Unreachable(why)),
                // Not allowed across namespaces: try each one.
                Err(_) => {}
            }
        }
        let mut sets = Vec::new();
        let mut gaps = Vec::new();
        for ns in namespaces {
            match list_map(
                self.reader(),
                url::<K>(Some(ns)),
                &lp,
                |raw| parse(raw).map(Some),
                || {},
            )
            .await
            {
                Ok(s) => sets.extend(s),
                Err(ReadError::Unreachable(why)) => return Err(ReadError::Unreachable(why)),
                Err(e) => gaps.push(e.gap(GapAbout::list(resource, Some(ns)))),
            }
        }
        Ok((sets, gaps))
    }

    async fn accounts_in(
        &self,
        namespaces: &BTreeSet<String>,
    ) -> Result<BTreeSet<(String, String)>, ReadError> {
        if namespaces.len() > 1
            && let Ok(all) = self.service_accounts(None).await
        {
            return Ok(all
                .into_iter()
                .filter(|(ns, _)| namespaces.contains(ns))
                .collect());
        }
        let mut out = BTreeSet::new();
        for ns in namespaces {
            out.extend(self.service_accounts(Some(ns)).await?);
        }
        Ok(out)
    }

    /// One read of the metrics API (metrics-server): its `PodMetricsList` answer, as JSON text.
    pub async fn pod_metrics(&self, namespace: Option<&str>) -> Result<String, SourceError> {
        let path = match namespace {
            Some(ns) => format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"),
            None => "/apis/metrics.k8s.io/v1beta1/pods".to_string(),
        };
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| SourceError::Api(e.to_string()))?;
        match self.reader().get(req).await {
            Ok(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
            Err(
                e @ ReadError::Status {
                    code: 404 | 503, ..
                },
            ) => Err(SourceError::MetricsUnavailable(format!(
                "{}; is metrics-server installed and its APIService Available? (kubectl get apiservice v1beta1.metrics.k8s.io)",
                e.why()
            ))),
            Err(e @ (ReadError::Unreachable(_) | ReadError::TimedOut(_))) => {
                Err(self.fatal(&e, "cannot read the metrics API"))
            }
            Err(e) => Err(SourceError::MetricsUnavailable(e.why())),
        }
    }

    /// `samples` reads of the metrics API, `interval` apart (metrics-server refreshes every 15 s
    /// by default). The waits between reads move the deadline: they are unloop's, not the server's.
    pub async fn sample_pod_metrics(
        &self,
        namespace: Option<&str>,
        samples: u32,
        interval: Duration,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<String>, SourceError> {
        let mut out = Vec::new();
        for i in 0..samples.max(1) {
            if i > 0 {
                progress(&format!(
                    "sampling the metrics API ({} of {}, every {}s)",
                    i + 1,
                    samples,
                    interval.as_secs()
                ));
                self.deadline().extend(interval);
                tokio::time::sleep(interval).await;
            }
            out.push(self.pod_metrics(namespace).await?);
        }
        Ok(out)
    }
}
