//! The seam between hanzo-db's API and its storage engines.
//!
//! [`VectorDatabase`] is the one trait every engine implements (LanceDB now;
//! DuckDB, PostgreSQL, SQLite behind cargo features). It is object-safe and
//! async; the public [`Database`](crate::Database) handle holds an
//! `Arc<dyn VectorDatabase>` and validates input before calling it, so a
//! backend receives only well-formed records (right dimension, finite
//! values, blobs under the limit, typed metadata of the right type, unique
//! ids within a batch) and well-formed filters.
//!
//! Decorators (caching, auditing, access control) implement the same trait
//! around another `Arc<dyn VectorDatabase>`.
//!
//! Capabilities an engine lacks return [`Error::Unsupported`], never a silent
//! substitute: the provided methods below do exactly that.

#[cfg(feature = "duckdb")]
pub mod duckdb;
#[cfg(feature = "lancedb")]
pub mod lance;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "duckdb"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{
    CompactionStats, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats,
    VersionInfo, reciprocal_rank_fusion,
};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

/// A stream of record batches for [`VectorDatabase::insert_stream`].
pub type RecordStream = BoxStream<'static, Result<Vec<MultimodalRecord>>>;

/// What a backend can do, for callers that adapt to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Full-text (BM25) search.
    pub full_text: bool,
    /// Approximate vector indexes it can build, e.g. `["ivf_pq", "hnsw"]`.
    pub vector_indexes: Vec<String>,
    /// Versions, search at a version, restore, tags.
    pub time_travel: bool,
    /// Compaction and pruning of old versions.
    pub compaction: bool,
    /// Scalar indexes on typed metadata fields.
    pub scalar_indexes: bool,
    /// Largest vector dimension a table may have, where the engine limits it.
    pub max_dimension: Option<usize>,
}

/// Which records a delete removes.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteSelector {
    /// These ids (ids not present are ignored).
    Ids(Vec<String>),
    /// Every record the filter matches.
    Filter(Filter),
}

/// One storage engine behind hanzo-db's API.
///
/// Every method that writes either applies completely or leaves the table as
/// it was. Writes are durable when the future resolves.
#[async_trait]
pub trait VectorDatabase: Send + Sync + std::fmt::Debug {
    /// Short engine name, e.g. `"lancedb"`.
    fn backend_name(&self) -> &'static str;

    /// What this engine supports.
    fn capabilities(&self) -> Capabilities;

    /// Hits, misses and health of a caching decorator; `None` for an engine
    /// (or a decorator chain) without a cache.
    fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        None
    }

    /// Creates an empty table. Fails with `TableExists` if the name is taken.
    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()>;

    /// The schema a table was created with. Fails with `TableNotFound`.
    async fn table_schema(&self, name: &str) -> Result<TableSchema>;

    /// Table names, sorted.
    async fn list_tables(&self) -> Result<Vec<String>>;

    /// Removes a table and its data. Fails with `TableNotFound`.
    async fn drop_table(&self, name: &str) -> Result<()>;

    /// Appends records (ids must not already exist for `get` to be unambiguous;
    /// use [`upsert`](Self::upsert) to replace). Returns the new table version.
    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64>;

    /// Appends a stream of batches of any length without holding it all in
    /// memory. Each batch is committed as it arrives; on error the batches
    /// already committed stay. Returns the number of rows written.
    async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64>;

    /// Inserts records, replacing any with the same id. Returns the new version.
    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64>;

    /// Deletes records; returns how many were removed.
    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64>;

    /// Fetches records by id, in the order asked; ids not found are left out.
    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>>;

    /// Streams every record of a table (optionally as of a version) in
    /// engine order, a batch at a time, without holding the table in memory.
    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream>;

    /// Counts records, optionally only those matching a filter.
    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64>;

    /// Nearest neighbours of `request.vector`, best first, at most `request.k`.
    async fn vector_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>>;

    /// Full-text (BM25) search for `request.text`, best first.
    async fn text_search(&self, table: &str, _request: &SearchRequest) -> Result<Vec<SearchHit>> {
        let _ = table;
        Err(self.unsupported("full-text search"))
    }

    /// Vector and full-text search fused with reciprocal rank fusion.
    /// A request with only one of the two runs just that search.
    async fn hybrid_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        match (&request.vector, &request.text) {
            (Some(_), Some(_)) => {
                // Each side fetches more than k so that fusion has candidates to agree on.
                let mut wide = request.clone();
                wide.k = (request.k * 2).max(20);
                let (v, t) = futures::try_join!(
                    self.vector_search(table, &wide),
                    self.text_search(table, &wide)
                )?;
                Ok(reciprocal_rank_fusion(&[v, t], 60.0, request.k))
            }
            (Some(_), None) => self.vector_search(table, request).await,
            (None, Some(_)) => self.text_search(table, request).await,
            (None, None) => Err(Error::InvalidArgument(
                "a search needs a vector, a text query, or both".into(),
            )),
        }
    }

    /// Builds an index.
    async fn create_index(&self, table: &str, _spec: &IndexSpec) -> Result<()> {
        let _ = table;
        Err(self.unsupported("indexes"))
    }

    /// Lists indexes with their coverage.
    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        let _ = table;
        Ok(Vec::new())
    }

    /// Rows, versions, size and indexes of a table.
    async fn table_stats(&self, table: &str) -> Result<TableStats>;

    /// Current version of a table.
    async fn version(&self, table: &str) -> Result<u64> {
        let _ = table;
        Err(self.unsupported("versions"))
    }

    /// Every version kept, oldest first.
    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        let _ = table;
        Err(self.unsupported("versions"))
    }

    /// Makes `version`'s contents the table's latest state (as a new version).
    async fn restore(&self, table: &str, _version: u64) -> Result<u64> {
        let _ = table;
        Err(self.unsupported("restore"))
    }

    /// Names a version.
    async fn tag(&self, table: &str, _version: u64, _tag: &str) -> Result<()> {
        let _ = table;
        Err(self.unsupported("tags"))
    }

    /// The version a tag points at.
    async fn tag_version(&self, table: &str, _tag: &str) -> Result<u64> {
        let _ = table;
        Err(self.unsupported("tags"))
    }

    /// Merges small files, folds new rows into indexes, and removes versions
    /// older than `keep_versions_for`.
    async fn compact(
        &self,
        table: &str,
        _keep_versions_for: std::time::Duration,
    ) -> Result<CompactionStats> {
        let _ = table;
        Err(self.unsupported("compaction"))
    }

    /// Makes writes an engine buffers part of its own storage (a decorator
    /// that buffers writes folds them, then flushes the engine it wraps).
    /// Engines that do not buffer return at once.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// The `Unsupported` error for this backend.
    fn unsupported(&self, feature: &str) -> Error {
        Error::Unsupported {
            feature: feature.to_string(),
            backend: self.backend_name().to_string(),
        }
    }
}
