//! Qdrant (REST).
//!
//! Collections from `GET /collections`, each one's config from `GET
//! /collections/{name}` (`config.params.vectors`: one unnamed `VectorParams`
//! or a map of named ones; `distance` Cosine/Euclid/Dot). Points come from
//! `POST /collections/{name}/points/scroll` with `with_vector` and
//! `with_payload`, paged by `next_page_offset` (a point id, so the cursor is
//! resumable). Integer and UUID ids become string ids; the payload becomes
//! the metadata. Each named dense vector is its own collection
//! (`name:vector`); sparse vectors and multi-vectors are left out and said so.
//! Auth: the `api-key` header.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::record::MultimodalRecord;
use crate::schema::DistanceMetric;

use super::http::{Http, RetryPolicy};
use super::{Cursor, MigrationSource, Page, SourceCollection, json_vector};

const STORE: &str = "qdrant";

/// Reads every collection (or the ones named) of a Qdrant server.
#[derive(Debug, Clone)]
pub struct QdrantSource {
    http: Http,
}

impl QdrantSource {
    /// A source at `url` (e.g. `http://localhost:6333`), with an optional API key.
    pub fn new(url: &str, api_key: Option<String>) -> Result<Self> {
        let headers = api_key
            .map(|k| vec![("api-key".to_string(), k)])
            .unwrap_or_default();
        Ok(Self {
            http: Http::new(STORE, url, headers, RetryPolicy::default())?,
        })
    }

    /// Retries on 429/503 with this policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_retry(policy);
        self
    }
}

fn metric(distance: &str) -> std::result::Result<DistanceMetric, String> {
    match distance {
        "Cosine" => Ok(DistanceMetric::Cosine),
        "Euclid" => Ok(DistanceMetric::L2),
        "Dot" => Ok(DistanceMetric::Dot),
        other => Err(other.to_string()),
    }
}

fn bad_config(name: &str, what: &str) -> Error {
    Error::SourceRequest {
        store: STORE.into(),
        operation: format!("read collection `{name}`"),
        status: None,
        message: format!("unexpected collection info: {what}"),
    }
}

#[async_trait]
impl MigrationSource for QdrantSource {
    fn store(&self) -> &'static str {
        STORE
    }

    fn describe(&self) -> String {
        self.http.base().to_string()
    }

    async fn collections(&self) -> Result<Vec<SourceCollection>> {
        let list = self
            .http
            .get("/collections", &[], "list collections")
            .await?;
        let names: Vec<String> = list
            .pointer("/result/collections")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_config("*", "no result.collections"))?
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut names = names;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let info = self
                .http
                .get(
                    &format!("/collections/{}", super::http::encode(&name)),
                    &[],
                    &format!("read collection `{name}`"),
                )
                .await?;
            let result = info
                .get("result")
                .ok_or_else(|| bad_config(&name, "no result"))?;
            let params = result
                .pointer("/config/params")
                .ok_or_else(|| bad_config(&name, "no config.params"))?;
            let count = result.get("points_count").and_then(Value::as_u64);
            let sparse: Vec<String> = params
                .get("sparse_vectors")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let vectors = params.get("vectors").cloned().unwrap_or(Value::Null);
            // One unnamed VectorParams has `size`; otherwise a map of named ones.
            let mut entries: Vec<(Option<String>, Value)> = if vectors.get("size").is_some() {
                vec![(None, vectors)]
            } else {
                vectors
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (Some(k.clone()), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            if entries.is_empty() {
                let mut c = SourceCollection::new(name.clone(), 0);
                c.count = count;
                c.unsupported = Some("the collection has no dense vectors".into());
                out.push(c);
                continue;
            }
            let several = entries.len() > 1;
            for (vname, vp) in entries {
                let dim = vp.get("size").and_then(Value::as_u64).unwrap_or(0) as usize;
                let mut c = SourceCollection::new(name.clone(), dim);
                c.count = count;
                if several {
                    c.vector = vname.clone();
                }
                match vp.get("distance").and_then(Value::as_str).map(metric) {
                    Some(Ok(m)) => c.metric = Some(m),
                    Some(Err(d)) => c
                        .notes
                        .push(format!("distance {d} has no hanzo-db equivalent")),
                    None => {}
                }
                if vp.get("multivector_config").is_some_and(|m| !m.is_null()) {
                    c.unsupported =
                        Some("multi-vectors cannot be stored in one vector column".into());
                }
                if let Some(dt) = vp.get("datatype").and_then(Value::as_str) {
                    if dt != "float32" {
                        c.notes.push(format!(
                            "stored as {dt} in Qdrant; migrated as the float32 values it returns"
                        ));
                    }
                }
                if !sparse.is_empty() {
                    c.notes.push(format!(
                        "sparse vectors ({}) are not migrated",
                        sparse.join(", ")
                    ));
                }
                if dim == 0 && c.unsupported.is_none() {
                    c.unsupported = Some("the vector size is not given".into());
                }
                c.locator = json!({"collection": name, "vector": vname});
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn read_page(
        &self,
        collection: &SourceCollection,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page> {
        let name = collection.name.clone();
        let vname = collection
            .locator
            .get("vector")
            .and_then(Value::as_str)
            .map(str::to_string);
        let with_vector = match &vname {
            Some(v) => json!([v]),
            None => json!(true),
        };
        let body = json!({
            "limit": limit.max(1),
            "offset": cursor.cloned().unwrap_or(Value::Null),
            "with_payload": true,
            "with_vector": with_vector,
        });
        let op = format!("scroll collection `{name}`");
        let resp = self
            .http
            .post(
                &format!("/collections/{}/points/scroll", super::http::encode(&name)),
                &body,
                &op,
            )
            .await?;
        let bad = |id: Option<String>, reason: String| Error::BadSourceRecord {
            store: STORE.into(),
            collection: collection.key(),
            record: id,
            reason,
        };
        let points = resp
            .pointer("/result/points")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(None, "the scroll response has no result.points".into()))?;
        let mut page = Page::default();
        for p in points {
            let id = match p.get("id") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                other => {
                    return Err(bad(
                        None,
                        format!("a point id must be an integer or a UUID, got {:?}", other),
                    ));
                }
            };
            let raw = match (&vname, p.get("vector")) {
                (None, Some(v)) if v.is_array() => Some(v),
                (None, Some(Value::Object(m))) if m.len() == 1 => m.values().next(),
                (Some(n), Some(Value::Object(m))) => m.get(n),
                (_, None) | (_, Some(Value::Null)) => None,
                (_, Some(other)) => {
                    return Err(bad(
                        Some(id),
                        format!("unexpected vector shape: {}", super::clip(other)),
                    ));
                }
            };
            let Some(raw) = raw else {
                page.skipped += 1;
                continue;
            };
            let vector = json_vector(raw).map_err(|r| bad(Some(id.clone()), r))?;
            let mut rec = MultimodalRecord::new(id.clone(), vector);
            match p.get("payload") {
                Some(Value::Object(m)) => rec.metadata = m.clone(),
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(bad(
                        Some(id),
                        format!("the payload is not an object: {}", super::clip(other)),
                    ));
                }
            }
            page.records.push(rec);
        }
        page.next = resp
            .pointer("/result/next_page_offset")
            .filter(|v| !v.is_null())
            .cloned();
        Ok(page)
    }
}
