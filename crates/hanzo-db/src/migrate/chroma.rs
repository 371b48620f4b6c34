//! Chroma (REST v2).
//!
//! Collections under a tenant and database (`default_tenant` /
//! `default_database` unless told), listed with `GET
//! /api/v2/tenants/{t}/databases/{d}/collections`, counted with `…/{id}/count`.
//! The distance is the `space` of the collection configuration (`hnsw` or
//! `spann`; the legacy `hnsw:space` metadata key otherwise; Chroma's default
//! `l2`). Records come from `POST …/collections/{id}/get` with `include:
//! ["embeddings","metadatas","documents","uris"]` (embeddings are not
//! returned unless asked), paged by limit/offset, the offset being the
//! cursor (stable while nothing writes to the collection). Documents become
//! the text, metadatas the metadata, a URI the `uri` metadata key. Auth:
//! the `X-Chroma-Token` header.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::record::MultimodalRecord;
use crate::schema::DistanceMetric;

use super::http::{Http, RetryPolicy, encode};
use super::{Cursor, MigrationSource, Page, SourceCollection, json_vector};

const STORE: &str = "chroma";
const INCLUDE: [&str; 4] = ["embeddings", "metadatas", "documents", "uris"];

/// Reads every collection of one Chroma tenant and database.
#[derive(Debug, Clone)]
pub struct ChromaSource {
    http: Http,
    tenant: String,
    database: String,
}

impl ChromaSource {
    /// A source at `url` (e.g. `http://localhost:8000`), with an optional token.
    pub fn new(url: &str, token: Option<String>) -> Result<Self> {
        let headers = token
            .map(|t| vec![("X-Chroma-Token".to_string(), t)])
            .unwrap_or_default();
        Ok(Self {
            http: Http::new(STORE, url, headers, RetryPolicy::default())?,
            tenant: "default_tenant".into(),
            database: "default_database".into(),
        })
    }

    /// The tenant (default `default_tenant`).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// The database (default `default_database`).
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Retries on 429/503 with this policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_retry(policy);
        self
    }

    fn base_path(&self) -> String {
        format!(
            "/api/v2/tenants/{}/databases/{}/collections",
            encode(&self.tenant),
            encode(&self.database)
        )
    }

    async fn get(&self, id: &str, body: Value, op: &str) -> Result<Value> {
        self.http
            .post(
                &format!("{}/{}/get", self.base_path(), encode(id)),
                &body,
                op,
            )
            .await
    }
}

/// The collection's distance: configuration `hnsw.space` / `spann.space`,
/// else the legacy `hnsw:space` metadata, else Chroma's default `l2`.
fn space(coll: &Value) -> (String, bool) {
    let config = coll
        .get("configuration_json")
        .or_else(|| coll.get("configuration"))
        .filter(|v| !v.is_null());
    let from_config = config.and_then(|c| {
        ["hnsw", "spann"].iter().find_map(|k| {
            c.get(*k)
                .and_then(|i| i.get("space"))
                .and_then(Value::as_str)
        })
    });
    let from_meta = coll.pointer("/metadata/hnsw:space").and_then(Value::as_str);
    match from_config.or(from_meta) {
        Some(s) => (s.to_string(), true),
        None => ("l2".into(), false),
    }
}

#[async_trait]
impl MigrationSource for ChromaSource {
    fn store(&self) -> &'static str {
        STORE
    }

    fn describe(&self) -> String {
        format!(
            "{} tenant {} database {}",
            self.http.base(),
            self.tenant,
            self.database
        )
    }

    async fn collections(&self) -> Result<Vec<SourceCollection>> {
        const PAGE: usize = 100;
        let mut all = Vec::new();
        loop {
            let resp = self
                .http
                .get(
                    &self.base_path(),
                    &[
                        ("limit", PAGE.to_string()),
                        ("offset", all.len().to_string()),
                    ],
                    "list collections",
                )
                .await?;
            let batch = resp
                .as_array()
                .cloned()
                .ok_or_else(|| Error::SourceRequest {
                    store: STORE.into(),
                    operation: "list collections".into(),
                    status: None,
                    message: format!(
                        "expected an array of collections, got {}",
                        super::clip(&resp)
                    ),
                })?;
            let n = batch.len();
            all.extend(batch);
            if n < PAGE {
                break;
            }
        }
        let mut out = Vec::new();
        for coll in all {
            let (Some(id), Some(name)) = (
                coll.get("id").and_then(Value::as_str),
                coll.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let mut c = SourceCollection::new(name, 0);
            let (sp, said) = space(&coll);
            match sp.as_str() {
                "l2" => c.metric = Some(DistanceMetric::L2),
                "cosine" => c.metric = Some(DistanceMetric::Cosine),
                "ip" => c.metric = Some(DistanceMetric::Dot),
                other => c
                    .notes
                    .push(format!("space {other} has no hanzo-db equivalent")),
            }
            if !said {
                c.notes
                    .push("no space configured: Chroma's default l2".into());
            }
            let count = self
                .http
                .get(
                    &format!("{}/{}/count", self.base_path(), encode(id)),
                    &[],
                    &format!("count collection `{name}`"),
                )
                .await?;
            c.count = count.as_u64();
            c.dimension = match coll.get("dimension").and_then(Value::as_u64) {
                Some(d) => d as usize,
                None => {
                    let first = self
                        .get(
                            id,
                            json!({"limit": 1, "offset": 0, "include": ["embeddings"]}),
                            &format!("read a first record of `{name}`"),
                        )
                        .await?;
                    first
                        .pointer("/embeddings/0")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                }
            };
            if c.dimension == 0 {
                c.unsupported = Some(
                    "no dimension configured and no embedding to read one from (empty?)".into(),
                );
            }
            c.locator = json!({ "id": id });
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
        let id = collection
            .locator
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let offset = cursor.and_then(Value::as_u64).unwrap_or(0);
        let limit = limit.max(1);
        let resp = self
            .get(
                &id,
                json!({"ids": null, "where": null, "where_document": null,
                       "limit": limit, "offset": offset, "include": INCLUDE}),
                &format!("read collection `{}`", collection.name),
            )
            .await?;
        let bad = |rid: Option<String>, reason: String| Error::BadSourceRecord {
            store: STORE.into(),
            collection: collection.key(),
            record: rid,
            reason,
        };
        let ids = resp
            .get("ids")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(None, "the response has no `ids` array".into()))?;
        let column = |name: &str| resp.get(name).and_then(Value::as_array);
        let (embeddings, documents, metadatas, uris) = (
            column("embeddings"),
            column("documents"),
            column("metadatas"),
            column("uris"),
        );
        let mut page = Page::default();
        for (i, rid) in ids.iter().enumerate() {
            let rid = rid
                .as_str()
                .ok_or_else(|| bad(None, format!("id {i} is not a string: {rid}")))?
                .to_string();
            let Some(e) = embeddings.and_then(|e| e.get(i)).filter(|e| !e.is_null()) else {
                page.skipped += 1;
                continue;
            };
            let vector = json_vector(e).map_err(|r| bad(Some(rid.clone()), r))?;
            let mut rec = MultimodalRecord::new(rid.clone(), vector);
            match documents.and_then(|d| d.get(i)) {
                Some(Value::String(s)) => rec.text = Some(s.clone()),
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(bad(
                        Some(rid),
                        format!("the document is not text: {}", super::clip(other)),
                    ));
                }
            }
            match metadatas.and_then(|m| m.get(i)) {
                Some(Value::Object(m)) => rec.metadata = m.clone(),
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(bad(
                        Some(rid),
                        format!("the metadata is not an object: {}", super::clip(other)),
                    ));
                }
            }
            if let Some(Value::String(u)) = uris.and_then(|u| u.get(i)) {
                rec.metadata
                    .entry("uri".to_string())
                    .or_insert_with(|| Value::String(u.clone()));
            }
            page.records.push(rec);
        }
        page.next = (ids.len() >= limit).then(|| json!(offset + ids.len() as u64));
        Ok(page)
    }
}
