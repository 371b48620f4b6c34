//! Pinecone (data plane of one index, at its host).
//!
//! Namespaces, dimension and metric from `POST /describe_index_stats`; each
//! namespace is its own collection (the default namespace is `__default__`).
//! Ids come from `GET /vectors/list` (≤ 100 per call, `paginationToken`
//! paging, the token being the cursor), vectors from `GET /vectors/fetch`
//! with up to 1,000 repeated `ids`. Response fields are read in both
//! camelCase and snake_case. Auth: the `Api-Key` header, with
//! `X-Pinecone-Api-Version`.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::record::MultimodalRecord;
use crate::schema::DistanceMetric;

use super::http::{Http, RetryPolicy};
use super::{Cursor, MigrationSource, Page, SourceCollection, json_vector};

const STORE: &str = "pinecone";
/// The API version asked for.
pub const API_VERSION: &str = "2025-10";
/// The name of the default (`""`) namespace.
pub const DEFAULT_NAMESPACE: &str = "__default__";
const LIST_MAX: usize = 100;
const FETCH_MAX: usize = 1000;

/// Reads every namespace (or one) of a Pinecone index.
#[derive(Debug, Clone)]
pub struct PineconeSource {
    http: Http,
    namespace: Option<String>,
}

impl PineconeSource {
    /// A source for the index whose data-plane host is `url`
    /// (`https://INDEX-PROJECT.svc.REGION.pinecone.io`).
    pub fn new(url: &str, api_key: Option<String>) -> Result<Self> {
        let mut headers = vec![(
            "X-Pinecone-Api-Version".to_string(),
            API_VERSION.to_string(),
        )];
        if let Some(k) = api_key {
            headers.push(("Api-Key".to_string(), k));
        }
        Ok(Self {
            http: Http::new(STORE, url, headers, RetryPolicy::default())?,
            namespace: None,
        })
    }

    /// Only this namespace (`""` or `__default__` for the default one).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// Retries on 429/503 with this policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_retry(policy);
        self
    }
}

/// The first of these fields present (camelCase and snake_case spellings).
fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n))
        .filter(|v| !v.is_null())
}

fn raw_namespace(name: &str) -> &str {
    if name == DEFAULT_NAMESPACE { "" } else { name }
}

#[async_trait]
impl MigrationSource for PineconeSource {
    fn store(&self) -> &'static str {
        STORE
    }

    fn describe(&self) -> String {
        self.http.base().to_string()
    }

    async fn collections(&self) -> Result<Vec<SourceCollection>> {
        let stats = self
            .http
            .post("/describe_index_stats", &json!({}), "describe the index")
            .await?;
        let dim = field(&stats, &["dimension"])
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let metric = field(&stats, &["metric"])
            .and_then(Value::as_str)
            .map(str::to_string);
        let vector_type = field(&stats, &["vectorType", "vector_type"])
            .and_then(Value::as_str)
            .unwrap_or("dense")
            .to_string();
        let empty = serde_json::Map::new();
        let namespaces = field(&stats, &["namespaces"])
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut out = Vec::new();
        let mut names: Vec<&String> = namespaces.keys().collect();
        names.sort();
        if let Some(want) = &self.namespace {
            let want_raw = raw_namespace(want);
            if !namespaces.contains_key(want_raw) {
                let have: Vec<String> = names
                    .iter()
                    .map(|n| {
                        if n.is_empty() {
                            DEFAULT_NAMESPACE.to_string()
                        } else {
                            (*n).clone()
                        }
                    })
                    .collect();
                return Err(Error::InvalidArgument(format!(
                    "the Pinecone index has no namespace `{want}`; it has: {}",
                    if have.is_empty() {
                        "none".into()
                    } else {
                        have.join(", ")
                    }
                )));
            }
        }
        for ns in names {
            if let Some(want) = &self.namespace {
                if raw_namespace(want) != ns.as_str() {
                    continue;
                }
            }
            let name = if ns.is_empty() {
                DEFAULT_NAMESPACE
            } else {
                ns.as_str()
            };
            let mut c = SourceCollection::new(name, dim);
            c.count = namespaces
                .get(ns)
                .and_then(|s| field(s, &["vectorCount", "vector_count"]))
                .and_then(Value::as_u64);
            match metric.as_deref() {
                Some("cosine") => c.metric = Some(DistanceMetric::Cosine),
                Some("euclidean") => c.metric = Some(DistanceMetric::L2),
                Some("dotproduct") => c.metric = Some(DistanceMetric::Dot),
                Some(other) => c
                    .notes
                    .push(format!("metric {other} has no hanzo-db equivalent")),
                None => {
                    c.metric = Some(DistanceMetric::Cosine);
                    c.notes.push(
                        "the index stats do not name the metric: cosine (Pinecone's default) assumed"
                            .into(),
                    );
                }
            }
            if vector_type == "sparse" {
                c.unsupported = Some("sparse-only indexes have no dense vectors".into());
            } else if dim == 0 {
                c.unsupported = Some("the index stats give no dimension".into());
            }
            c.locator = json!({ "namespace": ns });
            out.push(c);
        }
        Ok(out)
    }

    async fn read_page(
        &self,
        collection: &SourceCollection,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page> {
        let ns = collection
            .locator
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let limit = limit.max(1);
        let mut token: Option<String> = cursor.and_then(Value::as_str).map(str::to_string);
        let mut ids: Vec<String> = Vec::with_capacity(limit);
        let list_op = format!("list ids of namespace `{}`", collection.name);
        loop {
            let mut q: Vec<(&str, String)> =
                vec![("limit", (limit - ids.len()).min(LIST_MAX).to_string())];
            if !ns.is_empty() {
                q.push(("namespace", ns.clone()));
            }
            if let Some(t) = &token {
                q.push(("paginationToken", t.clone()));
            }
            let resp = self.http.get("/vectors/list", &q, &list_op).await?;
            let listed = field(&resp, &["vectors"]).and_then(Value::as_array);
            for v in listed.into_iter().flatten() {
                match v.get("id").and_then(Value::as_str) {
                    Some(id) => ids.push(id.to_string()),
                    None => {
                        return Err(Error::BadSourceRecord {
                            store: STORE.into(),
                            collection: collection.key(),
                            record: None,
                            reason: format!("a listed vector has no id: {}", super::clip(v)),
                        });
                    }
                }
            }
            token = field(&resp, &["pagination"])
                .and_then(|p| field(p, &["next"]))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() || ids.len() >= limit {
                break;
            }
        }
        let mut page = Page::default();
        let fetch_op = format!("fetch vectors of namespace `{}`", collection.name);
        for chunk in ids.chunks(FETCH_MAX) {
            let mut q: Vec<(&str, String)> = chunk.iter().map(|id| ("ids", id.clone())).collect();
            if !ns.is_empty() {
                q.push(("namespace", ns.clone()));
            }
            let resp = self.http.get("/vectors/fetch", &q, &fetch_op).await?;
            let vectors = field(&resp, &["vectors"]).and_then(Value::as_object);
            for id in chunk {
                // An id listed but no longer fetched was deleted meanwhile.
                let Some(v) = vectors.and_then(|m| m.get(id)) else {
                    continue;
                };
                let bad = |reason: String| Error::BadSourceRecord {
                    store: STORE.into(),
                    collection: collection.key(),
                    record: Some(id.clone()),
                    reason,
                };
                let Some(values) = field(v, &["values"]) else {
                    page.skipped += 1; // sparse-only record
                    continue;
                };
                let vector = json_vector(values).map_err(bad)?;
                let mut rec = MultimodalRecord::new(id.clone(), vector);
                match field(v, &["metadata"]) {
                    Some(Value::Object(m)) => rec.metadata = m.clone(),
                    None => {}
                    Some(other) => {
                        return Err(bad(format!(
                            "the metadata is not an object: {}",
                            super::clip(other)
                        )));
                    }
                }
                page.records.push(rec);
            }
        }
        page.next = token.map(Value::String);
        Ok(page)
    }
}
