//! [`Audited`]: the decorator that records every operation of the
//! [`VectorDatabase`] trait.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;

use super::read::{Read, ReadShape};
use super::{AuditLog, Event, Outcome, filter_shape};
use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::error::Result;
use crate::filter::Filter;
use crate::query::{
    CompactionStats, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats,
    VersionInfo,
};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

/// The log an [`Audited`] decorator writes to; empty while auditing is off
/// (it can be turned on while handles are open).
pub type AuditCell = Arc<OnceLock<Arc<AuditLog>>>;

/// Records every call to the backend inside it in the audit log, with the
/// principal it acts for. Writes get a `begin` entry before they start and
/// an outcome entry (fsync'd) before they return; reads get one entry,
/// queued before their result is returned and appended within
/// `sync_interval_ms` (see [`AuditLog::record_read`]). A read queues its
/// typed facts (no JSON is built on the caller's thread). Once the log cannot
/// be written, every later read and write fails (reads rather than return
/// unrecorded data; writes are not started) until the database is
/// reopened; a write that already took effect is never undone because of
/// the log (its `begin` entry stands, and the failure is reported through
/// `tracing`).
#[derive(Debug)]
pub struct Audited {
    inner: Arc<dyn VectorDatabase>,
    log: AuditCell,
    principal: Option<Arc<str>>,
}

impl Audited {
    /// Wraps `inner`, recording as `principal` (`None`: the key holder).
    pub fn new(inner: Arc<dyn VectorDatabase>, log: AuditCell, principal: Option<String>) -> Self {
        Self {
            inner,
            log,
            principal: principal.map(Arc::from),
        }
    }

    fn event(&self, op: &str, table: Option<&str>) -> Event {
        Event::new(self.principal.as_deref(), op, table)
    }

    /// One entry after a read (queued, see [`AuditLog::record_read`]).
    /// `shape` is only called while auditing is on.
    async fn read<T, F>(
        &self,
        op: &'static str,
        table: Option<&str>,
        shape: impl FnOnce() -> ReadShape,
        fut: F,
        rows: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        if let Some(log) = self.log.get() {
            log.check()?;
        }
        let r = fut.await;
        let Some(log) = self.log.get() else { return r };
        let mut read = Read::new(self.principal.as_ref(), op, table, shape(), &r);
        if let Ok(v) = &r {
            read.rows = rows(v);
        }
        log.record_read_facts(read).await?;
        r
    }

    /// A `begin` entry, the write, then its outcome entry.
    async fn write<T, F>(
        &self,
        op: &str,
        table: Option<&str>,
        shape: Option<serde_json::Value>,
        fut: F,
        facts: impl FnOnce(&T) -> (Option<u64>, Option<u64>),
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let Some(log) = self.log.get() else {
            return fut.await;
        };
        let mut begin = self.event(op, table);
        begin.outcome = Some(Outcome::Begin);
        begin.shape = shape;
        let seq = log.record_async(begin).await?;
        let r = fut.await;
        let mut ev = self.event(op, table).result(&r);
        ev.begin = Some(seq);
        if let Ok(v) = &r {
            (ev.rows, ev.version) = facts(v);
        }
        if let Err(e) = log.record_async(ev).await {
            if r.is_ok() {
                tracing::error!(error = %e, op, "the outcome of a completed write could not be recorded in the audit log");
            } else {
                return Err(e);
            }
        }
        r
    }
}

fn selector_shape(s: &DeleteSelector) -> serde_json::Value {
    match s {
        DeleteSelector::Ids(ids) => json!({"by": "ids", "ids": ids.len()}),
        DeleteSelector::Filter(f) => json!({"by": "filter", "filter": filter_shape(f)}),
    }
}

fn len<T>(v: &Vec<T>) -> Option<u64> {
    Some(v.len() as u64)
}

#[async_trait]
impl VectorDatabase for Audited {
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
        let shape = json!({
            "dimension": schema.dimension,
            "metric": schema.metric,
            "fields": schema.fields.iter().map(|f| &f.name).collect::<Vec<_>>(),
        });
        self.write(
            "create_table",
            Some(name),
            Some(shape),
            self.inner.create_table(name, schema),
            |_| (None, None),
        )
        .await
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        self.read(
            "describe",
            Some(name),
            || ReadShape::None,
            self.inner.table_schema(name),
            |_| None,
        )
        .await
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        self.read(
            "list_tables",
            None,
            || ReadShape::None,
            self.inner.list_tables(),
            len,
        )
        .await
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        self.write(
            "drop_table",
            Some(name),
            None,
            self.inner.drop_table(name),
            |_| (None, None),
        )
        .await
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let n = records.len() as u64;
        self.write(
            "insert",
            Some(table),
            None,
            self.inner.insert(table, records),
            |v| (Some(n), Some(*v)),
        )
        .await
    }

    async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64> {
        self.write(
            "insert_stream",
            Some(table),
            None,
            self.inner.insert_stream(table, batches),
            |n| (Some(*n), None),
        )
        .await
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let n = records.len() as u64;
        self.write(
            "upsert",
            Some(table),
            None,
            self.inner.upsert(table, records),
            |v| (Some(n), Some(*v)),
        )
        .await
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        self.write(
            "delete",
            Some(table),
            Some(selector_shape(selector)),
            self.inner.delete(table, selector),
            |n| (Some(*n), None),
        )
        .await
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        self.read(
            "get",
            Some(table),
            || ReadShape::get(ids.len(), projection, version),
            self.inner.get(table, ids, projection, version),
            len,
        )
        .await
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        let r = self
            .read(
                "scan",
                Some(table),
                || ReadShape::scan(projection, version),
                self.inner.scan(table, projection, version),
                |_| None,
            )
            .await?;
        Ok(r.boxed())
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        self.read(
            "count",
            Some(table),
            || ReadShape::count(filter),
            self.inner.count(table, filter),
            |n| Some(*n),
        )
        .await
    }

    async fn vector_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.read(
            "search",
            Some(table),
            || ReadShape::search("vector", request),
            self.inner.vector_search(table, request),
            len,
        )
        .await
    }

    async fn text_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.read(
            "search",
            Some(table),
            || ReadShape::search("text", request),
            self.inner.text_search(table, request),
            len,
        )
        .await
    }

    async fn hybrid_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        let kind = match (&request.vector, &request.text) {
            (Some(_), Some(_)) => "hybrid",
            (None, Some(_)) => "text",
            _ => "vector",
        };
        self.read(
            "search",
            Some(table),
            || ReadShape::search(kind, request),
            self.inner.hybrid_search(table, request),
            len,
        )
        .await
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        self.write(
            "create_index",
            Some(table),
            serde_json::to_value(spec).ok(),
            self.inner.create_index(table, spec),
            |_| (None, None),
        )
        .await
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.read(
            "list_indexes",
            Some(table),
            || ReadShape::None,
            self.inner.list_indexes(table),
            len,
        )
        .await
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        self.read(
            "stats",
            Some(table),
            || ReadShape::None,
            self.inner.table_stats(table),
            |s| Some(s.rows),
        )
        .await
    }

    async fn version(&self, table: &str) -> Result<u64> {
        self.read(
            "version",
            Some(table),
            || ReadShape::None,
            self.inner.version(table),
            |_| None,
        )
        .await
    }

    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        self.read(
            "list_versions",
            Some(table),
            || ReadShape::None,
            self.inner.list_versions(table),
            len,
        )
        .await
    }

    async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        self.write(
            "restore",
            Some(table),
            Some(json!({"to_version": version})),
            self.inner.restore(table, version),
            |v| (None, Some(*v)),
        )
        .await
    }

    async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        self.write(
            "tag",
            Some(table),
            Some(json!({"version": version})),
            self.inner.tag(table, version, tag),
            |_| (None, None),
        )
        .await
    }

    async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        self.read(
            "tag_version",
            Some(table),
            || ReadShape::None,
            self.inner.tag_version(table, tag),
            |_| None,
        )
        .await
    }

    async fn compact(
        &self,
        table: &str,
        keep_versions_for: std::time::Duration,
    ) -> Result<CompactionStats> {
        self.write(
            "compact",
            Some(table),
            Some(json!({"keep_versions_secs": keep_versions_for.as_secs()})),
            self.inner.compact(table, keep_versions_for),
            |s| (Some(s.fragments_removed), None),
        )
        .await
    }
}
