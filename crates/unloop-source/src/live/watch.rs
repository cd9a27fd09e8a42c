//! A watch of a workload's pods (`unloop retry`, `unloop diagnose --watch`): a kube-runtime
//! watcher and reflector on a client made for watching (the same kubeconfig, context and user
//! agent as every read; a read timeout longer than the server's watch). One list, then the
//! server's changes: no polling, no request per pod.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::LiveOptions;
use super::client::{self, Target};
use crate::SourceError;

type Events = Pin<Box<dyn Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send>>;

/// The pods of one namespace that a label selector picks, kept current by a watch.
pub struct PodWatch {
    events: Events,
    store: Store<Pod>,
    listed: bool,
}

/// Starts watching the pods of `ns` that `selector` (as `kubectl -l` takes it) picks.
pub async fn watch_pods(
    opts: &LiveOptions,
    ns: &str,
    selector: &str,
) -> Result<PodWatch, SourceError> {
    let target = Target {
        kubeconfig: opts.kubeconfig.clone(),
        context: opts.context.clone(),
    };
    let c = client::connect_watching(&target, opts.timeout).await?;
    let api: Api<Pod> = Api::namespaced(c.client, ns);
    let (store, writer) = reflector::store::<Pod>();
    let events = watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .reflect(writer)
        .boxed();
    Ok(PodWatch {
        events,
        store,
        listed: false,
    })
}

impl PodWatch {
    /// The pods after the next change (the first time: once they are all listed). An error is a
    /// watch that broke; it is restarted with backoff and the next call goes on.
    pub async fn changed(&mut self) -> Option<Result<Vec<Pod>, String>> {
        loop {
            match self.events.next().await? {
                Ok(watcher::Event::InitDone) => {
                    self.listed = true;
                    return Some(Ok(self.pods()));
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) if self.listed => {
                    return Some(Ok(self.pods()));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }

    /// The pods as the watch last saw them.
    pub fn pods(&self) -> Vec<Pod> {
        self.store.state().iter().map(|p| (**p).clone()).collect()
    }
}
