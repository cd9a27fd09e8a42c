//! Paged lists: every object of a kind in scope, `limit` objects a page, following `continue`
//! tokens. A token that expired (410 Gone) restarts the list from the beginning, a bounded number
//! of times; a page cut short is read again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::Resource;
use kube::api::ListParams;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::client::{ReadError, Reader};

/// Objects asked for per page.
pub const PAGE: u32 = 1000;
/// Times a list starts over after its continue token expired.
const RESTARTS: u32 = 2;
/// Times a page that came whole over HTTP but is not valid JSON is read again.
const REREADS: u32 = 3;

/// The list URL of a namespaced kind, in one namespace or all.
pub(crate) fn url<K>(ns: Option<&str>) -> String
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    K::url_path(&Default::default(), ns)
}

/// An object parsed whole, without its managedFields: they are often the largest part of an
/// object and never evidence.
pub(crate) fn parse_whole<K: Resource + DeserializeOwned>(
    raw: &RawValue,
) -> Result<K, serde_json::Error> {
    let mut o: K = serde_json::from_str(raw.get())?;
    o.meta_mut().managed_fields = None;
    Ok(o)
}

/// One page of a list, its items left as unparsed JSON.
#[derive(serde::Deserialize)]
struct RawPage<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// Every object of a kind in scope, parsed whole.
pub(crate) async fn list_all<K>(
    reader: &Reader,
    url: String,
    lp: &ListParams,
) -> Result<Vec<K>, ReadError>
where
    K: Resource + DeserializeOwned,
{
    list_map(reader, url, lp, |raw| Ok(Some(parse_whole(raw)?)), || {}).await
}

/// Every object of a kind in scope, page by page, each item passed to `map` as raw JSON. `map`
/// parses what it keeps (all of it, part of it, or nothing), so what is dropped is never built and
/// never accumulates. `restarted` is called when the list starts over (its continue token
/// expired), so that `map`'s own state can forget what it saw.
pub(crate) async fn list_map<K>(
    reader: &Reader,
    url: String,
    lp: &ListParams,
    mut map: impl FnMut(&RawValue) -> Result<Option<K>, serde_json::Error>,
    mut restarted: impl FnMut(),
) -> Result<Vec<K>, ReadError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut restarts = 0;
    let mut rereads = 0;
    loop {
        let mut page = lp.clone().limit(PAGE);
        if let Some(t) = &token {
            page = page.continue_token(t);
        }
        let req = kube::core::Request::new(&url)
            .list(&page)
            .map_err(|e| ReadError::Broken(format!("cannot build the request: {e}")))?;
        let body = match reader.get(req).await {
            Ok(b) => b,
            // The continue token expired (the server compacted past it): start again.
            Err(ReadError::Status { code: 410, .. }) if token.is_some() && restarts < RESTARTS => {
                restarts += 1;
                token = None;
                out.clear();
                restarted();
                continue;
            }
            Err(e) => return Err(e),
        };
        let list: RawPage = match serde_json::from_slice(&body) {
            Ok(l) => l,
            Err(e) => {
                let e = ReadError::Broken(format!("an unreadable page of {url}: {e}"));
                rereads += 1;
                if rereads >= REREADS {
                    return Err(e);
                }
                reader.pause(rereads, None, &e).await?;
                continue;
            }
        };
        let first = token.is_none();
        let n = list.items.len();
        for raw in list.items {
            let kept = map(raw)
                .map_err(|e| ReadError::Broken(format!("an unreadable object in {url}: {e}")))?;
            if let Some(o) = kept {
                out.push(o);
            }
        }
        // When the first page was kept whole, the rest likely will be: it tells how many more
        // there are, so reserve once rather than doubling (a pod is 2.4 KB inline, and doubling
        // would leave up to half of that unused).
        if first && out.len() == n {
            let rest = list.metadata.remaining_item_count.unwrap_or(0).max(0) as usize;
            out.reserve_exact(rest);
        }
        token = list.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            out.shrink_to_fit();
            return Ok(out);
        }
    }
}
