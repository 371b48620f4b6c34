//! Weaviate (REST `/v1`).
//!
//! Classes from `GET /v1/schema` (named vectors in `vectorConfig`, the legacy
//! single vector's distance in `vectorIndexConfig.distance`), tenants of
//! multi-tenant classes from `GET /v1/schema/{class}/tenants` (each tenant is
//! a partition: `Class@tenant`), counts from a GraphQL `Aggregate { meta {
//! count } }`. Objects come from the cursor API, `GET
//! /v1/objects?class=…&after=<last id>&include=vector[&tenant=…]` (UUID
//! order, resumable), until an empty page. Properties become the metadata;
//! the legacy `vector` or one named vector from `vectors` is the vector.
//! Auth: `Authorization: Bearer <key>`.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::record::MultimodalRecord;
use crate::schema::DistanceMetric;

use super::http::{Http, RetryPolicy, encode};
use super::{Cursor, MigrationSource, Page, SourceCollection, json_vector};

const STORE: &str = "weaviate";
/// Weaviate's default `QUERY_MAXIMUM_RESULTS`.
const PAGE_MAX: usize = 10_000;

/// Reads every class (and every tenant of multi-tenant classes) of a Weaviate server.
#[derive(Debug, Clone)]
pub struct WeaviateSource {
    http: Http,
    tenant: Option<String>,
}

impl WeaviateSource {
    /// A source at `url` (e.g. `http://localhost:8080`), with an optional API key.
    pub fn new(url: &str, api_key: Option<String>) -> Result<Self> {
        let headers = api_key
            .map(|k| vec![("Authorization".to_string(), format!("Bearer {k}"))])
            .unwrap_or_default();
        Ok(Self {
            http: Http::new(STORE, url, headers, RetryPolicy::default())?,
            tenant: None,
        })
    }

    /// Only this tenant of multi-tenant classes.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Retries on 429/503 with this policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_retry(policy);
        self
    }

    fn objects_query(
        class: &str,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("class", class.to_string()),
            ("limit", limit.clamp(1, PAGE_MAX).to_string()),
            ("include", "vector".to_string()),
            ("after", after.unwrap_or("").to_string()),
        ];
        if let Some(t) = tenant {
            q.push(("tenant", t.to_string()));
        }
        q
    }

    async fn count(&self, class: &str, tenant: Option<&str>) -> Option<u64> {
        let args = tenant
            .map(|t| format!("(tenant: {})", Value::String(t.into())))
            .unwrap_or_default();
        let query = format!("{{ Aggregate {{ {class}{args} {{ meta {{ count }} }} }} }}");
        let resp = self
            .http
            .post("/v1/graphql", &json!({ "query": query }), "count objects")
            .await
            .ok()?;
        resp.pointer(&format!("/data/Aggregate/{class}/0/meta/count"))
            .and_then(Value::as_u64)
    }
}

fn metric(distance: &str) -> std::result::Result<DistanceMetric, String> {
    match distance {
        "cosine" => Ok(DistanceMetric::Cosine),
        "l2-squared" => Ok(DistanceMetric::L2),
        "dot" => Ok(DistanceMetric::Dot),
        other => Err(other.to_string()),
    }
}

/// The vector of an object: a named one from `vectors`, or the legacy `vector`.
fn object_vector<'a>(obj: &'a Value, name: Option<&str>) -> Option<&'a Value> {
    match name {
        Some(n) => obj.get("vectors").and_then(|v| v.get(n)),
        None => obj.get("vector"),
    }
    .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
}

#[async_trait]
impl MigrationSource for WeaviateSource {
    fn store(&self) -> &'static str {
        STORE
    }

    fn describe(&self) -> String {
        self.http.base().to_string()
    }

    async fn collections(&self) -> Result<Vec<SourceCollection>> {
        let schema = self.http.get("/v1/schema", &[], "read the schema").await?;
        let empty = Vec::new();
        let classes = schema
            .get("classes")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let mut out = Vec::new();
        for class in classes {
            let Some(name) = class.get("class").and_then(Value::as_str) else {
                continue;
            };
            let multi_tenant = class
                .pointer("/multiTenancyConfig/enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            // (tenant, activity status)
            let tenants: Vec<(Option<String>, Option<String>)> = if multi_tenant {
                let list = self
                    .http
                    .get(
                        &format!("/v1/schema/{}/tenants", encode(name)),
                        &[],
                        &format!("list tenants of `{name}`"),
                    )
                    .await?;
                list.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| {
                                let n = t.get("name")?.as_str()?.to_string();
                                let s = t
                                    .get("activityStatus")
                                    .and_then(Value::as_str)
                                    .map(str::to_string);
                                Some((Some(n), s))
                            })
                            .filter(|(n, _)| self.tenant.is_none() || *n == self.tenant)
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                vec![(None, None)]
            };
            // (vector name, its index config)
            let named = class
                .get("vectorConfig")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty());
            let vectors: Vec<(Option<String>, Value)> = match named {
                Some(m) => m
                    .iter()
                    .map(|(k, v)| {
                        (
                            Some(k.clone()),
                            v.get("vectorIndexConfig").cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
                None => vec![(
                    None,
                    class.get("vectorIndexConfig").cloned().unwrap_or_default(),
                )],
            };
            let mut vectors = vectors;
            vectors.sort_by(|a, b| a.0.cmp(&b.0));
            let several = vectors.len() > 1;
            for (tenant, status) in &tenants {
                let count = self.count(name, tenant.as_deref()).await;
                let first = self
                    .http
                    .get(
                        "/v1/objects",
                        &Self::objects_query(name, tenant.as_deref(), None, 1),
                        &format!("read a first object of `{name}`"),
                    )
                    .await?;
                let first = first.pointer("/objects/0").cloned();
                for (vname, index) in &vectors {
                    let mut c = SourceCollection::new(name, 0);
                    c.partition = tenant.clone();
                    if several {
                        c.vector = vname.clone();
                    }
                    c.count = count;
                    if count.is_none() {
                        c.notes
                            .push("the object count could not be read (Aggregate)".into());
                    }
                    match index.get("distance").and_then(Value::as_str).map(metric) {
                        Some(Ok(m)) => c.metric = Some(m),
                        Some(Err(d)) => c
                            .notes
                            .push(format!("distance {d} has no hanzo-db equivalent")),
                        None => c.metric = Some(DistanceMetric::Cosine), // Weaviate's default
                    }
                    if index
                        .pointer("/multivector/enabled")
                        .and_then(Value::as_bool)
                        == Some(true)
                    {
                        c.unsupported =
                            Some("multi-vectors cannot be stored in one vector column".into());
                    }
                    if let Some(s) = status.as_deref() {
                        if matches!(s, "COLD" | "INACTIVE" | "FROZEN" | "OFFLOADED") {
                            c.unsupported = Some(format!("tenant is {s}: activate it first"));
                        }
                    }
                    match first
                        .as_ref()
                        .and_then(|o| object_vector(o, vname.as_deref()))
                    {
                        Some(v) => c.dimension = v.as_array().map_or(0, Vec::len),
                        None if c.unsupported.is_none() => {
                            c.unsupported = Some(
                                "no object with this vector to read the dimension from (empty?)"
                                    .into(),
                            );
                        }
                        None => {}
                    }
                    c.locator = json!({ "class": name, "tenant": tenant, "vector": vname });
                    out.push(c);
                }
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
        let class = collection.name.as_str();
        let tenant = collection.locator.get("tenant").and_then(Value::as_str);
        let vname = collection.locator.get("vector").and_then(Value::as_str);
        let after = cursor.and_then(Value::as_str);
        let resp = self
            .http
            .get(
                "/v1/objects",
                &Self::objects_query(class, tenant, after, limit),
                &format!("read objects of `{}`", collection.key()),
            )
            .await?;
        let bad = |id: Option<String>, reason: String| Error::BadSourceRecord {
            store: STORE.into(),
            collection: collection.key(),
            record: id,
            reason,
        };
        let objects = resp
            .get("objects")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(None, "the response has no `objects` array".into()))?;
        let mut page = Page::default();
        let mut last = None;
        for o in objects {
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(None, format!("an object has no id: {}", super::clip(o))))?
                .to_string();
            last = Some(id.clone());
            let Some(raw) = object_vector(o, vname) else {
                page.skipped += 1;
                continue;
            };
            let vector = json_vector(raw).map_err(|r| bad(Some(id.clone()), r))?;
            let mut rec = MultimodalRecord::new(id.clone(), vector);
            match o.get("properties") {
                Some(Value::Object(m)) => rec.metadata = m.clone(),
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(bad(
                        Some(id),
                        format!("the properties are not an object: {}", super::clip(other)),
                    ));
                }
            }
            page.records.push(rec);
        }
        page.next = last.map(Value::String);
        Ok(page)
    }
}
