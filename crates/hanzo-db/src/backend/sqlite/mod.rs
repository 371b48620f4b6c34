//! SQLite + sqlite-vec: the lightweight embedded engine (feature `sqlite`).
//!
//! One file, `<database path>/hanzo.sqlite`, in WAL mode with full sync, in
//! process and offline. Records live in an ordinary table per hanzo-db table
//! and vectors in a sqlite-vec `vec0` virtual table joined on the row key
//! (layout in [`store`]). Filters compile to parameterised SQL
//! ([`crate::backend::sql::filter`]).
//!
//! Searches: sqlite-vec's KNN for unfiltered searches in the table's metric
//! (l2 or cosine); an exact scan over the matching rows for filtered
//! searches (so `k` results come back however selective the filter), for the
//! dot product (vec0 has no dot metric) and for `k` above 4096. Results equal
//! exact search.
//!
//! Not supported (returns [`Error::Unsupported`]): time travel and tags,
//! restore, full-text search, approximate vector indexes, compaction.
//! `version()` is a write counter that grows with every committed write.
//!
//! rusqlite is synchronous: every call runs on the blocking thread pool with
//! the one connection behind a mutex (SQLite serialises writers anyway).

mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, RwLock};

use async_trait::async_trait;
use futures::StreamExt;
use rusqlite::Connection;

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
pub const FILE_NAME: &str = "hanzo.sqlite";
/// Records per page of a scan.
const SCAN_PAGE: usize = 1024;

/// Registers sqlite-vec with every SQLite connection this process opens.
#[allow(unsafe_code)]
fn register_sqlite_vec() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_vec_init` is sqlite-vec's extension entry point,
        // compiled into this binary and linked against the same bundled
        // SQLite; SQLite calls it with the signature `sqlite3_auto_extension`
        // expects (db, error message out-pointer, API routines), which the
        // transmute restores from the crate's argument-less declaration.
        unsafe {
            rusqlite::ffi::sqlite3_auto_extension(Some(std::mem::transmute::<
                *const (),
                unsafe extern "C" fn(
                    *mut rusqlite::ffi::sqlite3,
                    *mut *mut std::os::raw::c_char,
                    *const rusqlite::ffi::sqlite3_api_routines,
                ) -> std::os::raw::c_int,
            >(
                sqlite_vec::sqlite3_vec_init as *const (),
            )));
        }
    });
}

/// SQLite with sqlite-vec behind [`VectorDatabase`].
pub struct SqliteBackend {
    conn: Arc<Mutex<Connection>>,
    file: PathBuf,
    schemas: RwLock<HashMap<String, TableSchema>>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("file", &self.file)
            .finish()
    }
}

impl SqliteBackend {
    /// Opens (creating if missing) `<config.path>/hanzo.sqlite`.
    pub async fn open(config: &DatabaseConfig) -> Result<Self> {
        Self::open_file(&config.path.join(FILE_NAME)).await
    }

    /// Opens (creating if missing) this SQLite file.
    pub async fn open_file(file: &Path) -> Result<Self> {
        register_sqlite_vec();
        let path = file.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let conn = Connection::open(&path).map_err(|e| store::err("open", e))?;
            store::prepare_connection(&conn)?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::engine(ENGINE, "open", e))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            file: file.to_path_buf(),
            schemas: RwLock::default(),
        })
    }

    /// The SQLite file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut *guard)
        })
        .await
        .map_err(|e| Error::engine(ENGINE, "run a blocking task", e))?
    }

    async fn schema(&self, name: &str) -> Result<TableSchema> {
        if let Some(s) = self.schemas.read().expect("lock").get(name) {
            return Ok(s.clone());
        }
        let n = name.to_string();
        let s = self.run(move |c| store::load_schema(c, &n)).await?;
        self.schemas
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
impl VectorDatabase for SqliteBackend {
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
        self.schemas
            .write()
            .expect("lock")
            .insert(name.to_string(), schema.clone());
        Ok(())
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        self.schema(name).await
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        self.run(|c| store::list_tables(c)).await
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        self.schemas.write().expect("lock").remove(name);
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
        let (removed, _) = self
            .run(move |c| match &selector {
                DeleteSelector::Ids(ids) => {
                    store::delete(c, &n, &schema, Some(ids.as_slice()), None)
                }
                DeleteSelector::Filter(f) => store::delete(c, &n, &schema, None, Some(f)),
            })
            .await?;
        Ok(removed)
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
        let conn = self.conn.clone();
        let name = table.to_string();
        let p = projection.clone();
        let stream = futures::stream::unfold(Some(i64::MIN), move |after| {
            let (conn, name, schema, p) = (conn.clone(), name.clone(), schema.clone(), p.clone());
            async move {
                let after = after?;
                let page = tokio::task::spawn_blocking(move || {
                    let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
                    store::scan_page(&guard, &name, &schema, &p, after, SCAN_PAGE)
                })
                .await
                .map_err(|e| Error::engine(ENGINE, "scan", e))
                .and_then(|r| r);
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
        let (rows, version, disk) = self
            .run(move |c| {
                Ok((
                    store::count(c, &n, &schema, None)?,
                    store::version(c, &n)?,
                    store::disk_bytes(c, &n)?,
                ))
            })
            .await?;
        Ok(TableStats {
            rows,
            version,
            versions: 1,
            disk_bytes: disk,
            fragments: 1,
            indexes: Vec::new(),
        })
    }

    async fn version(&self, table: &str) -> Result<u64> {
        let n = table.to_string();
        self.run(move |c| store::version(c, &n)).await
    }
}
