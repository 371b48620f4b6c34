//! DuckDB: the analytics engine (feature `duckdb`).
//!
//! One file, `<database path>/hanzo.duckdb`, opened in process. Each
//! hanzo-db table is a plain DuckDB table in the `main` schema with a
//! `FLOAT[dim]` vector column, typed columns and a `JSON` metadata column
//! (layout in [`store`]), so any SQL — aggregates, joins, window functions —
//! runs over the same data: [`DuckDbBackend::sql`], or another DuckDB
//! client on the file while hanzo-db has it closed.
//!
//! Searches are exact, in SQL, with `array_distance` (l2),
//! `array_cosine_distance` and `array_inner_product` (dot), the filter in the
//! same `WHERE` clause; results equal exact search. Parquet export uses
//! DuckDB's `COPY … (FORMAT parquet)`.
//!
//! Not supported (returns [`Error::Unsupported`]): time travel and tags,
//! restore, full-text search, vector and scalar indexes, compaction.
//! `version()` is a write counter that grows with every committed write.

mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use ::duckdb::Connection;
use async_trait::async_trait;
use futures::StreamExt;

use crate::backend::sql::check_table_name;
use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{IndexSpec, Projection, SearchHit, SearchRequest, TableStats};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

use store::ENGINE;

/// The database file inside the database directory.
pub const FILE_NAME: &str = "hanzo.duckdb";
const SCAN_PAGE: usize = 2048;

/// DuckDB files open in this process.
fn instances() -> &'static Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

struct Inner {
    conn: Mutex<Connection>,
    file: PathBuf,
    schemas: RwLock<HashMap<String, TableSchema>>,
}

/// DuckDB behind [`VectorDatabase`]. Clones share the connection, so a
/// caller can keep one for [`sql`](Self::sql) and
/// [`export_parquet`](Self::export_parquet) while a
/// [`Database`](crate::Database) wraps another.
#[derive(Clone)]
pub struct DuckDbBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DuckDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbBackend")
            .field("file", &self.inner.file)
            .finish()
    }
}

impl DuckDbBackend {
    /// Opens (creating if missing) `<config.path>/hanzo.duckdb`.
    pub async fn open(config: &DatabaseConfig) -> Result<Self> {
        Self::open_file(&config.path.join(FILE_NAME)).await
    }

    /// Opens (creating if missing) this DuckDB file. A file already open in
    /// this process is shared rather than opened twice (two DuckDB instances
    /// on one file would each keep their own write-ahead log).
    pub async fn open_file(file: &Path) -> Result<Self> {
        let path = file.to_path_buf();
        let inner = tokio::task::spawn_blocking(move || -> Result<Arc<Inner>> {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let key = dir
                .canonicalize()
                .map_err(|source| Error::Io {
                    path: dir.display().to_string(),
                    source,
                })?
                .join(path.file_name().unwrap_or_default());
            let mut open = instances().lock().unwrap_or_else(|p| p.into_inner());
            if let Some(inner) = open.get(&key).and_then(Weak::upgrade) {
                return Ok(inner);
            }
            let conn = Connection::open(&key).map_err(|e| store::err("open", e))?;
            store::prepare_connection(&conn)?;
            let inner = Arc::new(Inner {
                conn: Mutex::new(conn),
                file: key.clone(),
                schemas: RwLock::default(),
            });
            open.retain(|_, w| w.strong_count() > 0);
            open.insert(key, Arc::downgrade(&inner));
            Ok(inner)
        })
        .await
        .map_err(|e| Error::engine(ENGINE, "open", e))??;
        Ok(Self { inner })
    }

    /// The DuckDB file.
    pub fn file(&self) -> &Path {
        &self.inner.file
    }

    /// Runs any SQL over the database (tables are in the `main` schema under
    /// their hanzo-db names) and returns its rows as JSON objects keyed by
    /// column name: numbers, strings, booleans, timestamps as RFC 3339, blobs
    /// as base64, lists as arrays.
    ///
    /// ```no_run
    /// # async fn run(duck: hanzo_db::backend::duckdb::DuckDbBackend) -> hanzo_db::Result<()> {
    /// let rows = duck.sql("SELECT kind, count(*) AS n, avg(year) FROM main.docs GROUP BY kind").await?;
    /// # Ok(()) }
    /// ```
    pub async fn sql(
        &self,
        query: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let q = query.to_string();
        self.run(move |c| store::sql(c, &q)).await
    }

    /// Writes a table to a Parquet file (DuckDB's `COPY … (FORMAT parquet)`);
    /// returns the rows written.
    pub async fn export_parquet(&self, table: &str, path: &Path) -> Result<u64> {
        let (n, p) = (table.to_string(), path.to_path_buf());
        self.run(move |c| store::export_parquet(c, &n, &p)).await
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let guard = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&*guard)
        })
        .await
        .map_err(|e| Error::engine(ENGINE, "run a blocking task", e))?
    }

    async fn schema(&self, name: &str) -> Result<TableSchema> {
        if let Some(s) = self.inner.schemas.read().expect("lock").get(name) {
            return Ok(s.clone());
        }
        let n = name.to_string();
        let s = self.run(move |c| store::load_schema(c, &n)).await?;
        self.inner
            .schemas
            .write()
            .expect("lock")
            .insert(name.to_string(), s.clone());
        Ok(s)
    }

    async fn check_version(&self, name: &str, version: Option<u64>) -> Result<()> {
        if let Some(v) = version {
            if v != self.version(name).await? {
                return Err(self.unsupported("time travel (reading a past version)"));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl VectorDatabase for DuckDbBackend {
    fn backend_name(&self) -> &'static str {
        ENGINE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            full_text: false,
            vector_indexes: Vec::new(),
            time_travel: false,
            compaction: false,
            scalar_indexes: false,
            max_dimension: None,
        }
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        check_table_name(name, ENGINE)?;
        let (n, s) = (name.to_string(), schema.clone());
        self.run(move |c| store::create_table(c, &n, &s)).await?;
        self.inner
            .schemas
            .write()
            .expect("lock")
            .insert(name.to_string(), schema.clone());
        Ok(())
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        self.schema(name).await
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        self.run(store::list_tables).await
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        self.inner.schemas.write().expect("lock").remove(name);
        let n = name.to_string();
        self.run(move |c| store::drop_table(c, &n)).await
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let schema = self.schema(table).await?;
        let n = table.to_string();
        self.run(move |c| store::write(c, &n, &schema, &records, false))
            .await
    }

    async fn insert_stream(&self, table: &str, mut batches: RecordStream) -> Result<u64> {
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            self.insert(table, batch).await?;
            rows += n;
        }
        Ok(rows)
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let schema = self.schema(table).await?;
        let n = table.to_string();
        self.run(move |c| store::write(c, &n, &schema, &records, true))
            .await
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        let schema = self.schema(table).await?;
        let n = table.to_string();
        let selector = selector.clone();
        self.run(move |c| match &selector {
            DeleteSelector::Ids(ids) => store::delete(c, &n, &schema, Some(ids.as_slice()), None),
            DeleteSelector::Filter(f) => store::delete(c, &n, &schema, None, Some(f)),
        })
        .await
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        let schema = self.schema(table).await?;
        self.check_version(table, version).await?;
        let (n, ids, p) = (table.to_string(), ids.to_vec(), projection.clone());
        self.run(move |c| store::get(c, &n, &schema, &ids, &p))
            .await
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        let schema = self.schema(table).await?;
        self.check_version(table, version).await?;
        let me = self.clone();
        let name = table.to_string();
        let p = projection.clone();
        let stream = futures::stream::unfold(Some(-1i64), move |after| {
            let (me, name, schema, p) = (me.clone(), name.clone(), schema.clone(), p.clone());
            async move {
                let after = after?;
                let page = me
                    .run(move |c| store::scan_page(c, &name, &schema, &p, after, SCAN_PAGE))
                    .await;
                match page {
                    Ok((records, _)) if records.is_empty() => None,
                    Ok((records, last)) => Some((Ok(records), last)),
                    Err(e) => Some((Err(e), None)),
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        let schema = self.schema(table).await?;
        let (n, f) = (table.to_string(), filter.cloned());
        self.run(move |c| store::count(c, &n, &schema, f.as_ref()))
            .await
    }

    async fn vector_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        let schema = self.schema(table).await?;
        self.check_version(table, req.version).await?;
        let query = req
            .vector
            .clone()
            .ok_or_else(|| Error::InvalidArgument("vector search needs a vector".into()))?;
        let metric = req.metric.unwrap_or(schema.metric);
        let (n, f, p, k) = (
            table.to_string(),
            req.filter.clone(),
            req.projection.clone(),
            req.k,
        );
        let rows = self
            .run(move |c| store::search(c, &n, &schema, &query, k, metric, f.as_ref(), &p))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(record, d)| SearchHit {
                record,
                distance: Some(d),
                score: None,
            })
            .collect())
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        self.schema(table).await?;
        Err(self.unsupported(match spec {
            IndexSpec::FullText => "full-text indexes",
            IndexSpec::Scalar { .. } => "scalar indexes",
            IndexSpec::IvfPq { .. } => "IVF_PQ indexes (searches are exact)",
            IndexSpec::Hnsw { .. } => "HNSW indexes (searches are exact)",
            IndexSpec::IvfFlat { .. } => "IVF_FLAT indexes (searches are exact)",
            IndexSpec::Auto => "vector indexes (searches are exact)",
        }))
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        let schema = self.schema(table).await?;
        let n = table.to_string();
        let (rows, version) = self
            .run(move |c| Ok((store::count(c, &n, &schema, None)?, store::version(c, &n)?)))
            .await?;
        Ok(TableStats {
            rows,
            version,
            versions: 1,
            disk_bytes: store::file_bytes(&self.inner.file),
            fragments: 1,
            indexes: Vec::new(),
        })
    }

    async fn version(&self, table: &str) -> Result<u64> {
        let n = table.to_string();
        self.run(move |c| store::version(c, &n)).await
    }
}
