//! [`Guarded`]: the decorator that checks every call of one principal.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::{Authorizer, Decision, Permission, Principal, denied};
use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::error::Result;
use crate::filter::Filter;
use crate::query::{
    CompactionStats, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats,
    VersionInfo,
};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

/// Checks each call against the [`Authorizer`] before the backend inside
/// sees it, and confines a scoped principal to its rows: the scope is ANDed
/// into searches, counts and deletes, records read are filtered by it, and
/// a write of a record outside it (or replacing one outside it) is refused.
#[derive(Debug)]
pub struct Guarded {
    inner: Arc<dyn VectorDatabase>,
    authorizer: Arc<dyn Authorizer>,
    principal: Option<Principal>,
}

/// A record's fields as the filter language sees them.
fn fields(r: &MultimodalRecord) -> Map<String, Value> {
    let mut m = r.metadata.clone();
    m.insert("id".into(), r.id.clone().into());
    m.insert(
        "text".into(),
        r.text.clone().map(Value::String).unwrap_or(Value::Null),
    );
    m
}

fn and(f: Option<Filter>, scope: Filter) -> Filter {
    match f {
        Some(f) => f.and(scope),
        None => scope,
    }
}

impl Guarded {
    /// Wraps `inner` for `principal` (`None`: the plain handle).
    pub fn new(
        inner: Arc<dyn VectorDatabase>,
        authorizer: Arc<dyn Authorizer>,
        principal: Option<Principal>,
    ) -> Self {
        Self {
            inner,
            authorizer,
            principal,
        }
    }

    /// Allowed (with an optional scope) or `PermissionDenied`.
    fn check(&self, permission: Option<Permission>, table: Option<&str>) -> Result<Option<Filter>> {
        if !self.authorizer.enabled() {
            return Ok(None);
        }
        match self
            .authorizer
            .authorize(self.principal.as_ref(), permission, table)
        {
            Decision::Allow => Ok(None),
            Decision::Scoped(f) => Ok(Some(f)),
            Decision::Deny => Err(denied(
                self.principal.as_ref(),
                permission.map_or("describe", Permission::name),
                table,
            )),
        }
    }

    /// Like `check`, but a scoped grant is not enough.
    fn check_unscoped(&self, permission: Permission, table: &str) -> Result<()> {
        match self.check(Some(permission), Some(table))? {
            None => Ok(()),
            Some(_) => Err(denied(
                self.principal.as_ref(),
                permission.name(),
                Some(table),
            )),
        }
    }

    /// Refuses a write that would put or replace a record outside the scope.
    async fn check_write_scope(
        &self,
        table: &str,
        scope: &Filter,
        records: &[MultimodalRecord],
        replaces: bool,
    ) -> Result<()> {
        let outside = || denied(self.principal.as_ref(), "write", Some(table));
        if records.iter().any(|r| !scope.matches(&fields(r))) {
            return Err(outside());
        }
        if replaces {
            let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
            let existing = self
                .inner
                .get(table, &ids, &Projection::default(), None)
                .await?;
            if existing.iter().any(|r| !scope.matches(&fields(r))) {
                return Err(outside());
            }
        }
        Ok(())
    }
}

/// Keeps the records in scope, then trims metadata to what was asked.
fn confine(
    records: Vec<MultimodalRecord>,
    scope: &Filter,
    keys: &Option<Vec<String>>,
) -> Vec<MultimodalRecord> {
    records
        .into_iter()
        .filter(|r| scope.matches(&fields(r)))
        .map(|mut r| {
            if let Some(keys) = keys {
                r.metadata.retain(|k, _| keys.contains(k));
            }
            r
        })
        .collect()
}

fn widen(projection: &Projection) -> Projection {
    Projection {
        metadata_keys: None,
        ..projection.clone()
    }
}

#[async_trait]
impl VectorDatabase for Guarded {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        self.inner.cache_stats()
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        self.check(Some(Permission::Create), Some(name))?;
        self.inner.create_table(name, schema).await
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        self.check(None, Some(name))?;
        self.inner.table_schema(name).await
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        let all = self.inner.list_tables().await?;
        if !self.authorizer.enabled() {
            return Ok(all);
        }
        if self.principal.is_none() {
            return Err(denied(None, "list_tables", None));
        }
        Ok(all
            .into_iter()
            .filter(|t| self.check(None, Some(t)).is_ok())
            .collect())
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        self.check_unscoped(Permission::Drop, name)?;
        self.inner.drop_table(name).await
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        if let Some(scope) = self.check(Some(Permission::Write), Some(table))? {
            self.check_write_scope(table, &scope, &records, false)
                .await?;
        }
        self.inner.insert(table, records).await
    }

    async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64> {
        let Some(scope) = self.check(Some(Permission::Write), Some(table))? else {
            return self.inner.insert_stream(table, batches).await;
        };
        let outside = denied(self.principal.as_ref(), "write", Some(table));
        let checked = batches
            .map(move |batch| {
                let batch = batch?;
                if batch.iter().any(|r| !scope.matches(&fields(r))) {
                    return Err(outside.clone_denied());
                }
                Ok(batch)
            })
            .boxed();
        self.inner.insert_stream(table, checked).await
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        if let Some(scope) = self.check(Some(Permission::Write), Some(table))? {
            self.check_write_scope(table, &scope, &records, true)
                .await?;
        }
        self.inner.upsert(table, records).await
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        let Some(scope) = self.check(Some(Permission::Delete), Some(table))? else {
            return self.inner.delete(table, selector).await;
        };
        let filter = match selector {
            DeleteSelector::Filter(f) => f.clone().and(scope),
            DeleteSelector::Ids(ids) => {
                let ids: Vec<Value> = ids.iter().cloned().map(Value::String).collect();
                Filter::parse(&serde_json::json!({"id": {"$in": ids}}))?.and(scope)
            }
        };
        self.inner
            .delete(table, &DeleteSelector::Filter(filter))
            .await
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        match self.check(Some(Permission::Read), Some(table))? {
            None => self.inner.get(table, ids, projection, version).await,
            Some(scope) => {
                let recs = self
                    .inner
                    .get(table, ids, &widen(projection), version)
                    .await?;
                Ok(confine(recs, &scope, &projection.metadata_keys))
            }
        }
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        match self.check(Some(Permission::Read), Some(table))? {
            None => self.inner.scan(table, projection, version).await,
            Some(scope) => {
                let keys = projection.metadata_keys.clone();
                let stream = self.inner.scan(table, &widen(projection), version).await?;
                Ok(stream
                    .map(move |b| b.map(|recs| confine(recs, &scope, &keys)))
                    .boxed())
            }
        }
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        match self.check(Some(Permission::Read), Some(table))? {
            None => self.inner.count(table, filter).await,
            Some(scope) => {
                let f = and(filter.cloned(), scope);
                self.inner.count(table, Some(&f)).await
            }
        }
    }

    async fn vector_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        match self.check(Some(Permission::Search), Some(table))? {
            None => self.inner.vector_search(table, request).await,
            Some(scope) => {
                let mut r = request.clone();
                r.filter = Some(and(r.filter.take(), scope));
                self.inner.vector_search(table, &r).await
            }
        }
    }

    async fn text_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        match self.check(Some(Permission::Search), Some(table))? {
            None => self.inner.text_search(table, request).await,
            Some(scope) => {
                let mut r = request.clone();
                r.filter = Some(and(r.filter.take(), scope));
                self.inner.text_search(table, &r).await
            }
        }
    }

    async fn hybrid_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        match self.check(Some(Permission::Search), Some(table))? {
            None => self.inner.hybrid_search(table, request).await,
            Some(scope) => {
                let mut r = request.clone();
                r.filter = Some(and(r.filter.take(), scope));
                self.inner.hybrid_search(table, &r).await
            }
        }
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        self.check_unscoped(Permission::Index, table)?;
        self.inner.create_index(table, spec).await
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.check(None, Some(table))?;
        self.inner.list_indexes(table).await
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        // Row counts of the whole table: not for a scoped principal.
        self.check_unscoped(Permission::Read, table)?;
        self.inner.table_stats(table).await
    }

    async fn version(&self, table: &str) -> Result<u64> {
        self.check(None, Some(table))?;
        self.inner.version(table).await
    }

    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        self.check(None, Some(table))?;
        self.inner.list_versions(table).await
    }

    async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        self.check_unscoped(Permission::Restore, table)?;
        self.inner.restore(table, version).await
    }

    async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        self.check_unscoped(Permission::Restore, table)?;
        self.inner.tag(table, version, tag).await
    }

    async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        self.check(None, Some(table))?;
        self.inner.tag_version(table, tag).await
    }

    async fn compact(
        &self,
        table: &str,
        keep_versions_for: std::time::Duration,
    ) -> Result<CompactionStats> {
        self.check_unscoped(Permission::Compact, table)?;
        self.inner.compact(table, keep_versions_for).await
    }
}

/// `Error` is not `Clone`; a denial is rebuilt from its fields.
trait CloneDenied {
    fn clone_denied(&self) -> crate::Error;
}

impl CloneDenied for crate::Error {
    fn clone_denied(&self) -> crate::Error {
        match self {
            crate::Error::PermissionDenied {
                principal,
                operation,
                table,
            } => crate::Error::PermissionDenied {
                principal: principal.clone(),
                operation: operation.clone(),
                table: table.clone(),
            },
            other => crate::Error::InvalidArgument(other.to_string()),
        }
    }
}
