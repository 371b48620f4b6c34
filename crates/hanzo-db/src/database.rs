//! The public [`Database`] handle and its builders.
//!
//! `Database` is a cheap-to-clone handle over an `Arc<dyn VectorDatabase>`.
//! It validates every input (dimensions, NaN, blob sizes, typed metadata,
//! filters) before the engine sees it, so a bad call changes nothing, and it
//! runs upkeep (compaction, pruning) after a configurable number of writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;

use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::config::{DatabaseBackend, DatabaseConfig, Workload};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{
    CompactionStats, FilterMode, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest,
    TableStats, VersionInfo,
};
use crate::record::{MultimodalRecord, WriteLimits, validate_records, validate_vector};
use crate::schema::{DistanceMetric, TableSchema, validate_identifier};
use crate::security::keys::{KeyProvider, PassphraseProvider};
use crate::security::{KeyConfig, Security, SecurityStatus, SecurityTier};

/// Largest `k` a search accepts.
pub const MAX_K: usize = 10_000;

/// Opens a database at `path` (created if missing) on the default engine, LanceDB.
///
/// ```no_run
/// # async fn run() -> hanzo_db::Result<()> {
/// let db = hanzo_db::connect("./my-data").execute().await?;
/// # Ok(()) }
/// ```
pub fn connect(path: impl Into<std::path::PathBuf>) -> ConnectBuilder {
    ConnectBuilder {
        config: DatabaseConfig::new(path),
        key_provider: None,
        workload: Workload::Vectors,
        authorizer: None,
    }
}

/// Builder returned by [`connect`].
#[derive(Debug)]
#[must_use = "call .execute().await to open the database"]
pub struct ConnectBuilder {
    config: DatabaseConfig,
    key_provider: Option<Box<dyn KeyProvider>>,
    workload: Workload,
    authorizer: Option<Arc<dyn crate::access::Authorizer>>,
}

impl ConnectBuilder {
    /// Replaces the whole configuration, keeping the path given to [`connect`]
    /// unless the configuration names one.
    pub fn config(mut self, config: DatabaseConfig) -> Self {
        let path = std::mem::take(&mut self.config.path);
        self.config = config;
        if self.config.path.as_os_str().is_empty() {
            self.config.path = path;
        }
        self
    }

    /// Chooses the engine for vectors.
    pub fn backend(mut self, backend: DatabaseBackend) -> Self {
        self.config.workloads.vectors = backend;
        self
    }

    /// The PostgreSQL server for [`DatabaseBackend::Postgres`],
    /// `postgres://user:password@host:port/database`.
    pub fn postgres_url(mut self, url: impl Into<String>) -> Self {
        self.config.postgres.url = Some(url.into());
        self
    }

    /// The PostgreSQL schema (namespace) holding the tables (default `public`).
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.config.postgres.schema = schema.into();
        self
    }

    /// Puts a Redis cache of search results and records in front of the
    /// engine (feature `redis`).
    pub fn redis_cache(mut self, cache: crate::cache::CacheConfig) -> Self {
        self.config.cache = Some(cache);
        self
    }

    /// Opens the engine the configuration assigns to this workload (default:
    /// [`Workload::Vectors`]); e.g. `Workload::Analytics` opens DuckDB unless
    /// `[workloads] analytics` names another engine.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workload = workload;
        self
    }

    /// Largest blob accepted, in bytes.
    pub fn max_blob_bytes(mut self, bytes: usize) -> Self {
        self.config.max_blob_bytes = bytes;
        self
    }

    /// Turns encryption at rest on (the default) or off (an explicit opt-out
    /// that the security status reports).
    pub fn encryption(mut self, on: bool) -> Self {
        self.config.security.encryption = on;
        self
    }

    /// Where the key-encryption key comes from (default: a generated key file
    /// outside the database directory).
    pub fn key(mut self, key: KeyConfig) -> Self {
        self.config.security.key = key;
        self
    }

    /// Settings of the hot in-memory index (feature `hot`); `enabled: false` turns it off.
    pub fn hot(mut self, hot: crate::config::HotConfig) -> Self {
        self.config.hot = hot;
        self
    }

    /// Settings of the write buffer for small writes (on by default).
    pub fn write_buffer(mut self, buffer: crate::config::WriteBufferConfig) -> Self {
        self.config.write_buffer = buffer;
        self
    }

    /// Uses this key provider (e.g. an external KMS) instead of `key`.
    pub fn key_provider(mut self, provider: Box<dyn KeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// Uses this authorizer (an external identity and access service)
    /// instead of the built-in policy kept in the database.
    pub fn authorizer(mut self, authorizer: Arc<dyn crate::access::Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Uses a passphrase (Argon2id) as the key-encryption key.
    pub fn passphrase(self, passphrase: impl Into<String>) -> Result<Self> {
        let p = PassphraseProvider::new(passphrase.into()).map_err(|e| Error::Security {
            reason: e.to_string(),
        })?;
        Ok(self.key_provider(Box::new(p)))
    }

    /// Asks for a confidential-computing tier: degrades to the best available
    /// with a recorded warning, or fails when `strict`.
    pub fn with_tee_protection(mut self, tier: SecurityTier, strict: bool) -> Self {
        self.config.security.tee_tier = Some(tier);
        self.config.security.strict_tier = strict;
        self
    }

    /// Opens the database.
    pub async fn execute(self) -> Result<Database> {
        let config = self.config;
        let engine = config.workloads.backend_for(self.workload);
        refuse_unsupported_encryption(engine, &config)?;
        // A server engine: no local directory, and encryption at rest is the server's.
        #[cfg(feature = "postgres")]
        if engine == DatabaseBackend::Postgres {
            let engine =
                crate::backend::postgres::PostgresBackend::connect(&config.postgres).await?;
            let backend = crate::cache::wrap(Arc::new(engine), config.cache.as_ref())?;
            return Ok(Database::from_backend(backend, config));
        }
        #[cfg(feature = "redis")]
        if config.workloads.vectors == DatabaseBackend::Redis {
            return Err(Error::Config(
                "Redis is a cache, not a storage engine: choose another engine for vectors \
                 and put Redis in front of it with `cache` (ConnectBuilder::redis_cache)"
                    .into(),
            ));
        }
        std::fs::create_dir_all(&config.path).map_err(|source| Error::Io {
            path: config.path.display().to_string(),
            source,
        })?;
        let security = Arc::new(Security::open(
            &config.path,
            &config.security,
            self.key_provider,
        )?);
        #[cfg(feature = "hot")]
        let mut hot = None;
        let backend: Arc<dyn VectorDatabase> = match engine {
            // LanceDB, the source of truth; over it the hot in-memory index,
            // and over that the write buffer, which acknowledges small writes
            // from its log and folds them down in batches.
            #[cfg(feature = "lancedb")]
            DatabaseBackend::LanceDb => {
                #[cfg_attr(not(feature = "hot"), allow(unused_mut))]
                let mut stack: Arc<dyn VectorDatabase> =
                    Arc::new(crate::backend::lance::LanceBackend::open(&config, &security).await?);
                #[cfg(feature = "hot")]
                if config.hot.enabled {
                    let index = Arc::new(
                        crate::hot::HotIndex::open(
                            stack,
                            &config.path,
                            config.hot.clone(),
                            &security,
                        )
                        .await?,
                    );
                    stack = index.clone();
                    hot = Some(index);
                }
                if config.write_buffer.enabled {
                    crate::buffer::WriteBuffer::open(
                        stack,
                        &config.path,
                        &config.write_buffer,
                        &security,
                    )
                    .await?
                } else {
                    stack
                }
            }
            #[cfg(feature = "sqlite")]
            DatabaseBackend::Sqlite => {
                Arc::new(crate::backend::sqlite::SqliteBackend::open(&config).await?)
            }
            #[cfg(feature = "duckdb")]
            DatabaseBackend::DuckDb => {
                Arc::new(crate::backend::duckdb::DuckDbBackend::open(&config).await?)
            }
            #[cfg(feature = "postgres")]
            DatabaseBackend::Postgres => {
                // Opened above, before any local directory is made.
                return Err(Error::Config(
                    "PostgreSQL is opened before the local engines".into(),
                ));
            }
            other => {
                return Err(Error::FeatureDisabled {
                    backend: other.to_string(),
                    feature: other.feature().to_string(),
                });
            }
        };
        let backend = crate::cache::wrap(backend, config.cache.as_ref())?;
        // Every handle goes through the audit and access-control decorators.
        let gov = crate::access::Governance::open(
            &config.path,
            security.key_source(),
            config.audit.clone(),
            backend,
            self.authorizer,
        )?;
        let mut open = crate::audit::Event::new(None, "open", None);
        open.shape = Some(serde_json::json!({"backend": config.workloads.vectors.to_string()}));
        gov.record(open)?;
        let mut db = Database::from_backend(gov.backend(None), config);
        db.security = Some(security);
        db.governance = Some(gov);
        #[cfg(feature = "hot")]
        {
            db.hot = hot;
        }
        Ok(db)
    }
}

/// SQLite and DuckDB files are not encrypted by hanzo-db: refuse to open them
/// while encryption at rest is asked for, rather than store plaintext silently.
fn refuse_unsupported_encryption(engine: DatabaseBackend, config: &DatabaseConfig) -> Result<()> {
    let embedded_sql = (engine == DatabaseBackend::Sqlite && cfg!(feature = "sqlite"))
        || (engine == DatabaseBackend::DuckDb && cfg!(feature = "duckdb"));
    if embedded_sql && config.security.encryption {
        return Err(Error::Unsupported {
            feature: "encryption at rest (open it with encryption off: `.encryption(false)`, \
                      `--no-encryption`, or `[security] encryption = false`)"
                .into(),
            backend: engine.to_string(),
        });
    }
    Ok(())
}

/// An open database. Clone it freely: clones share the engine.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) inner: Arc<dyn VectorDatabase>,
    config: Arc<DatabaseConfig>,
    schemas: Arc<RwLock<HashMap<String, TableSchema>>>,
    writes: Arc<RwLock<HashMap<String, Arc<AtomicU64>>>>,
    /// Writes between automatic compactions; 0 when off or the engine cannot compact.
    compact_every: u64,
    pub(crate) security: Option<Arc<Security>>,
    /// Access control and audit state (handles opened with `connect`).
    pub(crate) governance: Option<Arc<crate::access::Governance>>,
    /// The principal this handle acts for.
    pub(crate) principal: Option<crate::access::Principal>,
    #[cfg(feature = "hot")]
    hot: Option<Arc<crate::hot::HotIndex>>,
}

impl Database {
    /// Wraps any backend (or decorator) in the validating handle.
    pub fn from_backend(inner: Arc<dyn VectorDatabase>, config: DatabaseConfig) -> Self {
        let compact_every = if inner.capabilities().compaction {
            config.auto_compact_every
        } else {
            0
        };
        Self {
            compact_every,
            inner,
            config: Arc::new(config),
            schemas: Arc::default(),
            writes: Arc::default(),
            security: None,
            #[cfg(feature = "hot")]
            hot: None,
            governance: None,
            principal: None,
        }
    }

    /// Which path serves a table's vector searches (`hot`, `building` or
    /// `lance`) and its in-memory figures; `None` when the hot index is off
    /// or has not seen the table yet.
    #[cfg(feature = "hot")]
    pub fn hot_status(&self, table: &str) -> Option<crate::hot::HotStatus> {
        self.hot.as_ref().and_then(|h| h.status(table))
    }

    /// Waits (at most `timeout`) until a table's hot index is built and holds
    /// every written row, or the table is handed to LanceDB; returns its
    /// status. `None` when the hot index is off.
    #[cfg(feature = "hot")]
    pub async fn wait_hot(
        &self,
        table: &str,
        timeout: std::time::Duration,
    ) -> Result<Option<crate::hot::HotStatus>> {
        match &self.hot {
            Some(h) => h.wait_ready(table, timeout).await.map(Some),
            None => Ok(None),
        }
    }

    /// The hot index, when it is on.
    #[cfg(feature = "hot")]
    pub fn hot(&self) -> Option<&Arc<crate::hot::HotIndex>> {
        self.hot.as_ref()
    }

    /// Encryption, keys and confidential-computing tier of this database.
    pub fn security_status(&self) -> Result<SecurityStatus> {
        Ok(self.security()?.status())
    }

    fn security(&self) -> Result<&Security> {
        self.security.as_deref().ok_or_else(|| Error::Security {
            reason:
                "this handle wraps a backend opened outside connect(); it has no security state"
                    .into(),
        })
    }

    /// Rewraps the data keys under a new key-encryption key; no data is rewritten.
    pub fn rotate_key_encryption_key(&self, new_provider: Box<dyn KeyProvider>) -> Result<()> {
        self.governed(
            "rotate_kek",
            crate::access::Permission::Keys,
            None,
            None,
            || self.security()?.rotate_kek(new_provider),
        )
    }

    /// Starts a new data key: new files use it, old files stay readable and are
    /// re-encrypted when compaction rewrites them. Returns the new key id.
    pub fn rotate_data_key(&self) -> Result<String> {
        self.governed(
            "rotate_data_key",
            crate::access::Permission::Keys,
            None,
            None,
            || self.security()?.rotate_data_key(),
        )
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> &Arc<dyn VectorDatabase> {
        &self.inner
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &DatabaseConfig {
        &self.config
    }

    /// What the engine supports.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    /// The engine's name, e.g. `"lancedb"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    /// Hits, misses and health of the Redis cache; `None` without one.
    pub fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        self.inner.cache_stats()
    }

    /// Creates an empty table.
    pub async fn create_table(&self, name: &str, schema: TableSchema) -> Result<()> {
        validate_identifier(name, "table name")?;
        schema.validate()?;
        self.inner.create_table(name, &schema).await?;
        self.schemas
            .write()
            .expect("lock")
            .insert(name.to_string(), schema);
        Ok(())
    }

    /// The table's schema.
    pub async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        if let Some(s) = self.schemas.read().expect("lock").get(name) {
            return Ok(s.clone());
        }
        let schema = self.inner.table_schema(name).await?;
        self.schemas
            .write()
            .expect("lock")
            .insert(name.to_string(), schema.clone());
        Ok(schema)
    }

    /// Table names, sorted.
    pub async fn list_tables(&self) -> Result<Vec<String>> {
        self.inner.list_tables().await
    }

    /// Drops a table and its data.
    pub async fn drop_table(&self, name: &str) -> Result<()> {
        self.schemas.write().expect("lock").remove(name);
        self.inner.drop_table(name).await
    }

    fn limits(&self) -> WriteLimits {
        WriteLimits {
            max_blob_bytes: self.config.max_blob_bytes,
        }
    }

    /// Inserts records. Nothing is written if any record is invalid. Returns the new version.
    pub async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let schema = self.table_schema(table).await?;
        validate_records(table, &schema, &records, self.limits())?;
        if records.is_empty() {
            return self.inner.version(table).await.or(Ok(0));
        }
        let v = self.inner.insert(table, records).await?;
        self.after_write(table);
        Ok(v)
    }

    /// Inserts a stream of batches without holding it all in memory. Each
    /// batch is validated before it is written; an invalid batch stops the
    /// stream with its error, and the batches before it stay written.
    pub async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64> {
        let schema = self.table_schema(table).await?;
        let limits = self.limits();
        let name = table.to_string();
        let checked = batches
            .map(move |batch| {
                let batch = batch?;
                validate_records(&name, &schema, &batch, limits)?;
                Ok(batch)
            })
            .boxed();
        let n = self.inner.insert_stream(table, checked).await?;
        self.after_write(table);
        Ok(n)
    }

    /// Inserts or replaces records by id. Returns the new version.
    pub async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let schema = self.table_schema(table).await?;
        validate_records(table, &schema, &records, self.limits())?;
        if records.is_empty() {
            return self.inner.version(table).await.or(Ok(0));
        }
        let v = self.inner.upsert(table, records).await?;
        self.after_write(table);
        Ok(v)
    }

    /// Deletes records by id; returns how many were removed.
    pub async fn delete(&self, table: &str, ids: &[impl AsRef<str>]) -> Result<u64> {
        self.table_schema(table).await?;
        let ids: Vec<String> = ids.iter().map(|s| s.as_ref().to_string()).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let n = self.inner.delete(table, &DeleteSelector::Ids(ids)).await?;
        self.after_write(table);
        Ok(n)
    }

    /// Deletes every record the filter matches; returns how many were removed.
    pub async fn delete_where(&self, table: &str, filter: impl IntoFilter) -> Result<u64> {
        self.table_schema(table).await?;
        let filter = filter.into_filter()?;
        let n = self
            .inner
            .delete(table, &DeleteSelector::Filter(filter))
            .await?;
        self.after_write(table);
        Ok(n)
    }

    /// One record by id, with everything (vector, blobs, metadata).
    pub async fn get(&self, table: &str, id: &str) -> Result<Option<MultimodalRecord>> {
        Ok(self
            .get_many(table, &[id.to_string()], &Projection::all(), None)
            .await?
            .into_iter()
            .next())
    }

    /// The specification's name for [`get`](Self::get).
    pub async fn query_by_id(&self, table: &str, id: &str) -> Result<Option<MultimodalRecord>> {
        self.get(table, id).await
    }

    /// Records by id, in the order asked, optionally at a past version.
    pub async fn get_many(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        self.table_schema(table).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.get(table, ids, projection, version).await
    }

    /// Streams every record of a table, a batch at a time (for export).
    pub async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        self.table_schema(table).await?;
        self.inner.scan(table, projection, version).await
    }

    /// Number of records, optionally only those matching a filter.
    pub async fn count(&self, table: &str, filter: Option<Filter>) -> Result<u64> {
        self.table_schema(table).await?;
        self.inner.count(table, filter.as_ref()).await
    }

    /// Starts a search: add a vector, a text query or both, then `.execute().await`.
    pub fn search(&self, table: &str) -> SearchBuilder {
        SearchBuilder {
            db: self.clone(),
            table: table.to_string(),
            request: SearchRequest::default(),
            filter: None,
        }
    }

    /// The `k` nearest records to `query`, best first.
    pub async fn vector_search(
        &self,
        table: &str,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<SearchHit>> {
        self.search(table)
            .vector(query.to_vec())
            .k(k)
            .execute()
            .await
    }

    /// Vector search restricted to records matching `filter`.
    pub async fn hybrid_search(
        &self,
        table: &str,
        query: &[f32],
        filter: impl IntoFilter,
        k: usize,
    ) -> Result<Vec<SearchHit>> {
        self.search(table)
            .vector(query.to_vec())
            .filter(filter)
            .k(k)
            .execute()
            .await
    }

    async fn run_search(&self, table: &str, request: SearchRequest) -> Result<Vec<SearchHit>> {
        let schema = self.table_schema(table).await?;
        if request.k == 0 || request.k > MAX_K {
            return Err(Error::InvalidArgument(format!(
                "k must be between 1 and {MAX_K}, got {}",
                request.k
            )));
        }
        if let Some(v) = &request.vector {
            validate_vector(table, schema.dimension, v, None)?;
        }
        if let Some(t) = &request.text {
            if t.trim().is_empty() {
                return Err(Error::InvalidArgument("the text query is empty".into()));
            }
        }
        self.inner.hybrid_search(table, &request).await
    }

    /// Builds an index.
    pub async fn create_index(&self, table: &str, spec: IndexSpec) -> Result<()> {
        let schema = self.table_schema(table).await?;
        if let IndexSpec::Scalar { column } = &spec {
            if schema.field_type(column).is_none() && column != "id" {
                return Err(Error::InvalidArgument(format!(
                    "`{column}` is not a typed field of `{table}`; scalar indexes go on typed fields or `id`"
                )));
            }
        }
        if let IndexSpec::IvfPq {
            pq_dims: Some(m), ..
        } = &spec
        {
            if *m == 0 || schema.dimension % *m as usize != 0 {
                return Err(Error::InvalidArgument(format!(
                    "pq_dims {m} must divide the dimension {}",
                    schema.dimension
                )));
            }
        }
        self.inner.create_index(table, &spec).await
    }

    /// The specification's IVF_PQ call: `nlist` partitions, `pq_dims` sub-vectors,
    /// on the vector column (the only vector column a table has).
    pub async fn create_ivf_pq_index(
        &self,
        table: &str,
        column: &str,
        nlist: u32,
        pq_dims: u32,
    ) -> Result<()> {
        if column != "vector" {
            return Err(Error::InvalidArgument(format!(
                "`{column}` is not a vector column; tables have one, `vector`"
            )));
        }
        self.create_index(
            table,
            IndexSpec::IvfPq {
                nlist: Some(nlist),
                pq_dims: Some(pq_dims),
            },
        )
        .await
    }

    /// Indexes and their coverage.
    pub async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.inner.list_indexes(table).await
    }

    /// Rows, versions, size and indexes.
    pub async fn table_stats(&self, table: &str) -> Result<TableStats> {
        self.inner.table_stats(table).await
    }

    /// Current version.
    pub async fn version(&self, table: &str) -> Result<u64> {
        self.inner.version(table).await
    }

    /// Versions kept, oldest first.
    pub async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        self.inner.list_versions(table).await
    }

    /// Restores `version` as the newest state; returns the new version number.
    pub async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        let v = self.inner.restore(table, version).await?;
        self.after_write(table);
        Ok(v)
    }

    /// Names a version.
    pub async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        validate_identifier(tag, "tag")?;
        self.inner.tag(table, version, tag).await
    }

    /// The version a tag names.
    pub async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        self.inner.tag_version(table, tag).await
    }

    /// Compacts files, folds new rows into indexes and prunes versions older
    /// than the configured retention.
    pub async fn compact(&self, table: &str) -> Result<CompactionStats> {
        self.inner
            .compact(table, self.config.keep_versions_for())
            .await
    }

    /// Folds buffered small writes into the engine now (they are durable and
    /// visible already; this makes them part of the engine's own files and
    /// versions). A no-op without a write buffer.
    pub async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }

    fn after_write(&self, table: &str) {
        let every = self.compact_every;
        if every == 0 {
            return;
        }
        let counter = {
            let map = self.writes.read().expect("lock");
            map.get(table).cloned()
        }
        .unwrap_or_else(|| {
            self.writes
                .write()
                .expect("lock")
                .entry(table.to_string())
                .or_default()
                .clone()
        });
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if n % every == 0 {
            let db = self.upkeep_handle();
            let table = table.to_string();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(e) = db.compact(&table).await {
                        tracing::warn!(table, error = %e, "automatic compaction failed");
                    }
                });
            }
        }
    }
}

/// Anything that can be turned into a [`Filter`]: a parsed filter, a JSON
/// value, or JSON text.
pub trait IntoFilter {
    /// Parses or passes through.
    fn into_filter(self) -> Result<Filter>;
}

impl IntoFilter for Filter {
    fn into_filter(self) -> Result<Filter> {
        Ok(self)
    }
}
impl IntoFilter for serde_json::Value {
    fn into_filter(self) -> Result<Filter> {
        Filter::parse(&self)
    }
}
impl IntoFilter for &serde_json::Value {
    fn into_filter(self) -> Result<Filter> {
        Filter::parse(self)
    }
}
impl IntoFilter for &str {
    fn into_filter(self) -> Result<Filter> {
        Filter::parse_str(self)
    }
}

/// Builder returned by [`Database::search`].
///
/// ```no_run
/// # async fn run(db: hanzo_db::Database) -> hanzo_db::Result<()> {
/// let hits = db
///     .search("docs")
///     .vector(vec![0.1; 384])
///     .text("red bicycle")
///     .filter(serde_json::json!({"year": {"$gte": 2020}}))
///     .k(5)
///     .execute()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call .execute().await to run the search"]
pub struct SearchBuilder {
    db: Database,
    table: String,
    request: SearchRequest,
    filter: Option<Result<Filter>>,
}

impl SearchBuilder {
    /// Query vector.
    pub fn vector(mut self, v: Vec<f32>) -> Self {
        self.request.vector = Some(v);
        self
    }
    /// Full-text query; with a vector too, the search is hybrid (rank fusion).
    pub fn text(mut self, q: impl Into<String>) -> Self {
        self.request.text = Some(q.into());
        self
    }
    /// Metadata filter.
    pub fn filter(mut self, f: impl IntoFilter) -> Self {
        let f = f.into_filter();
        self.filter = Some(match self.filter.take() {
            Some(Ok(prev)) => f.map(|f| prev.and(f)),
            Some(Err(e)) => Err(e),
            None => f,
        });
        self
    }
    /// Number of results (default 10).
    pub fn k(mut self, k: usize) -> Self {
        self.request.k = k;
        self
    }
    /// Metric, overriding the table's.
    pub fn metric(mut self, m: DistanceMetric) -> Self {
        self.request.metric = Some(m);
        self
    }
    /// IVF partitions to probe.
    pub fn nprobes(mut self, n: usize) -> Self {
        self.request.nprobes = Some(n);
        self
    }
    /// Re-rank factor.
    pub fn refine_factor(mut self, r: u32) -> Self {
        self.request.refine_factor = Some(r);
        self
    }
    /// HNSW search breadth.
    pub fn ef(mut self, ef: usize) -> Self {
        self.request.ef = Some(ef);
        self
    }
    /// Filter after the vector search instead of before.
    pub fn postfilter(mut self) -> Self {
        self.request.filter_mode = FilterMode::Postfilter;
        self
    }
    /// Fields to return.
    pub fn projection(mut self, p: Projection) -> Self {
        self.request.projection = p;
        self
    }
    /// Also return vectors.
    pub fn with_vector(mut self) -> Self {
        self.request.projection.vector = true;
        self
    }
    /// Also return blobs.
    pub fn with_blobs(mut self) -> Self {
        self.request.projection.blobs = true;
        self
    }
    /// Search as of this table version.
    pub fn at_version(mut self, v: u64) -> Self {
        self.request.version = Some(v);
        self
    }
    /// The request as built so far.
    pub fn request(&self) -> &SearchRequest {
        &self.request
    }
    /// Runs the search.
    pub async fn execute(mut self) -> Result<Vec<SearchHit>> {
        if let Some(f) = self.filter.take() {
            self.request.filter = Some(f?);
        }
        self.db.run_search(&self.table, self.request).await
    }
}
