//! The hot in-memory index: sub-millisecond vector search in front of LanceDB.
//!
//! [`HotIndex`] is a decorator: it implements [`VectorDatabase`] around
//! another `Arc<dyn VectorDatabase>` (LanceDB), which stays the durable
//! source of truth. Per table it keeps, in memory:
//!
//! - a [usearch](https://github.com/unum-cloud/usearch) HNSW graph of
//!   quantised vectors (`i8` for cosine, `f16` for L2 and dot by default),
//!   string ids mapped to `u64` keys;
//! - each row's id, text and metadata (exactly as LanceDB returns them), so
//!   hits are built without touching disk and filters run during the walk;
//! - full-precision vectors to re-rank candidates, while the table fits the
//!   memory budget with them; otherwise they are kept on disk, encrypted
//!   (`vectors.rs`), and the best `k × rerank_factor` candidates are re-ranked
//!   with one read each.
//!
//! Writes go to LanceDB first, then to memory under the table's write lock:
//! new rows are searched exactly until a background task folds them into the
//! graph; deletes and upserts take effect at once. An index is built in the
//! background on open (or loaded from its encrypted file when that file
//! reflects the table's current version) and after bulk writes it cannot
//! follow; meanwhile LanceDB serves. Time travel, full-text search, metric
//! overrides and filters that cannot be evaluated in memory with LanceDB's
//! exact semantics (timestamps) are passed to LanceDB. A table that does
//! not fit [`HotConfig::memory_budget_bytes`] is served by LanceDB's own
//! index; [`HotIndex::status`] says which path serves each table.

mod background;
mod build;
mod filters;
mod huge;
mod mem;
mod persist;
mod row;
mod search;
mod table;
mod vectors;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;

use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::config::HotConfig;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{
    CompactionStats, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats,
    VersionInfo,
};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;
use crate::security::Security;

use mem::{Budget, Layout, Mem};
use persist::Sealing;
use row::RowMap;
pub use table::{HotPath, HotStatus};
use table::{Op, OpLog, State, TableHot, to_rows};
use vectors::VectorFile;

/// The longest a search waits for a saved index to load (see `TableHot::loading`).
const LOAD_WAIT: Duration = Duration::from_secs(30);

/// Rows of one streamed insert held for the hot index; past this the table
/// is rebuilt from LanceDB instead.
const STREAM_TAP_ROWS: usize = 200_000;

/// State shared with background tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Arc<dyn VectorDatabase>,
    cfg: HotConfig,
    dir: PathBuf,
    sealing: Sealing,
    budget: Arc<Budget>,
    tables: RwLock<HashMap<String, Arc<TableHot>>>,
    runtime: tokio::runtime::Handle,
    closed: AtomicBool,
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A new file of full-precision vectors for re-ranking a table state of
    /// this layout from disk; `None` when `rerank_on_disk` is off, for an
    /// `f32` graph (exact already), or when the file cannot be made (searches then use the graph's distances).
    fn vector_file(&self, table: &str, layout: &Layout) -> Option<VectorFile> {
        if !self.cfg.rerank_on_disk {
            return None;
        }
        vectors::element_bytes(layout)?;
        match VectorFile::create(&self.dir, table, layout, &self.sealing) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(%table, error = %e, "no vectors on disk for re-ranking");
                None
            }
        }
    }

    /// The table's hot state, registering it (and starting its load or
    /// build) on first use. `None` when the table does not exist.
    async fn table(self: &Arc<Self>, name: &str) -> Result<Option<Arc<TableHot>>> {
        if let Some(t) = self.tables.read().expect("lock").get(name) {
            return Ok(Some(t.clone()));
        }
        let schema = match self.inner.table_schema(name).await {
            Ok(s) => s,
            Err(Error::TableNotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (t, fresh) = {
            let mut tables = self.tables.write().expect("lock");
            match tables.get(name) {
                Some(t) => (t.clone(), false),
                None => {
                    let t = Arc::new(TableHot::new(
                        name,
                        schema,
                        State::Building {
                            ops: OpLog::default(),
                            version: None,
                        },
                    ));
                    tables.insert(name.to_string(), t.clone());
                    (t, true)
                }
            }
        };
        if fresh {
            // Searches from now on wait for a saved index to load (cleared
            // at once when LanceDB has a vector index to answer meanwhile).
            let saved = self.cfg.persist && persist::path_for(&self.dir, name).exists();
            t.loading.store(saved, Ordering::Release);
            self.spawn_start(t.clone());
        }
        Ok(Some(t))
    }
}

/// The hot index decorator. See the [module docs](self).
#[derive(Debug)]
pub struct HotIndex {
    shared: Arc<Shared>,
}

impl HotIndex {
    /// Wraps `inner` and starts loading or building every table's index in
    /// the background. Index files live in `<db>/.hanzo/hot/`, encrypted
    /// with the database's data key when the database is encrypted.
    pub async fn open(
        inner: Arc<dyn VectorDatabase>,
        db_path: &std::path::Path,
        cfg: HotConfig,
        security: &Security,
    ) -> Result<Self> {
        let (alg, chunk) = security.write_params()?;
        let shared = Arc::new(Shared {
            inner,
            budget: Arc::new(Budget {
                limit: cfg.memory_budget_bytes,
                used: AtomicU64::new(0),
            }),
            cfg,
            dir: db_path.join(".hanzo").join("hot"),
            sealing: Sealing {
                keys: security.key_source(),
                alg,
                chunk,
            },
            tables: RwLock::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            closed: AtomicBool::new(false),
        });
        for name in shared.inner.list_tables().await? {
            shared.table(&name).await?;
        }
        Ok(Self { shared })
    }

    /// Which path serves a table, with its in-memory figures. `None` for a
    /// table the hot index has not seen (it registers on first use).
    pub fn status(&self, table: &str) -> Option<HotStatus> {
        let t = self.shared.tables.read().expect("lock").get(table).cloned();
        t.map(|t| t.status())
    }

    /// Status of every table seen, by name.
    pub fn statuses(&self) -> Vec<HotStatus> {
        let mut v: Vec<HotStatus> = self
            .shared
            .tables
            .read()
            .expect("lock")
            .values()
            .map(|t| t.status())
            .collect();
        v.sort_by(|a, b| a.table.cmp(&b.table));
        v
    }

    /// Waits until a table is no longer building and every written row is
    /// in the graph (or the table is served by LanceDB), at most `timeout`.
    pub async fn wait_ready(&self, table: &str, timeout: Duration) -> Result<HotStatus> {
        let start = Instant::now();
        let t = self
            .shared
            .table(table)
            .await?
            .ok_or_else(|| Error::TableNotFound {
                name: table.to_string(),
            })?;
        // A cheap check per poll: the full status measures the graph's
        // memory, which waits for a fold's adds and walks every node.
        while !t.settled() && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(t.status())
    }

    /// Saves every table with unsaved writes now, waiting for folds in
    /// progress (also done on close).
    pub fn save(&self) {
        let tables: Vec<_> = self
            .shared
            .tables
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        for t in tables {
            self.shared.save_on_close(&t);
        }
    }

    fn inner(&self) -> &Arc<dyn VectorDatabase> {
        &self.shared.inner
    }

    /// Runs a LanceDB write and applies it here, in the same order as every
    /// other write to the table.
    async fn write<F, Fut, T>(&self, table: &str, op: Op, run: F) -> Result<T>
    where
        F: FnOnce(Arc<dyn VectorDatabase>) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<u64>)>>,
    {
        let Some(t) = self.shared.table(table).await? else {
            return run(self.inner().clone()).await.map(|(r, _)| r);
        };
        self.write_to(&t, op, run).await
    }

    async fn write_to<F, Fut, T>(&self, t: &Arc<TableHot>, op: Op, run: F) -> Result<T>
    where
        F: FnOnce(Arc<dyn VectorDatabase>) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<u64>)>>,
    {
        let _w = t.writes.lock().await;
        let (result, version) = run(self.inner().clone()).await?;
        let version = match version {
            Some(v) => Some(v),
            None => self.inner().version(&t.name).await.ok(),
        };
        let after = t.apply(op, version, &self.shared);
        self.shared.follow(t, after);
        Ok(result)
    }

    /// Runs an operation that makes a new version with the same rows.
    async fn touch<T>(
        &self,
        table: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.write(table, Op::Touch, |_| async move { Ok((fut.await?, None)) })
            .await
    }

    /// Searches memory; `None` when LanceDB must serve this request.
    async fn search_hot(
        &self,
        t: &TableHot,
        req: &SearchRequest,
    ) -> Result<Option<Vec<SearchHit>>> {
        let table = t.name.as_str();
        if !search::eligible(req, &t.schema) {
            return Ok(None);
        }
        let start = Instant::now();
        while t.loading.load(Ordering::Acquire) && start.elapsed() < LOAD_WAIT {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let query = req
            .vector
            .as_deref()
            .expect("eligible requests have a vector");
        let fetch: Vec<(String, f32)> = {
            let state = t.state.read().expect("lock");
            let State::Hot(mem) = &*state else {
                return Ok(None);
            };
            let best = {
                let _graph = t.graph.read().expect("lock");
                search::nearest(mem, &self.shared.cfg, query, req.k, req.filter.as_ref())?
            };
            if search::served_from_memory(mem, &req.projection) {
                return Ok(Some(
                    best.into_iter()
                        .map(|(key, d)| search::hit(&mem.rows[&key], d, &req.projection))
                        .collect(),
                ));
            }
            best.into_iter()
                .map(|(key, d)| (mem.rows[&key].id.to_string(), d))
                .collect()
        };
        // Blobs (or vectors not kept in memory) come from LanceDB.
        let ids: Vec<String> = fetch.iter().map(|(id, _)| id.clone()).collect();
        let mut records: HashMap<String, MultimodalRecord> = self
            .inner()
            .get(table, &ids, &req.projection, None)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        Ok(Some(
            fetch
                .into_iter()
                .filter_map(|(id, d)| {
                    records.remove(&id).map(|record| SearchHit {
                        record,
                        distance: Some(d),
                        score: None,
                    })
                })
                .collect(),
        ))
    }
}

impl Drop for HotIndex {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.save();
    }
}

#[async_trait]
impl VectorDatabase for HotIndex {
    fn backend_name(&self) -> &'static str {
        self.inner().backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        self.inner().cache_stats()
    }

    async fn flush(&self) -> Result<()> {
        self.inner().flush().await
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        self.inner().create_table(name, schema).await?;
        persist::remove(&self.shared.dir, name);
        let version = self.inner().version(name).await.unwrap_or(0);
        let layout = Layout {
            dim: schema.dimension,
            metric: schema.metric,
            scalar: Layout::resolve(self.shared.cfg.quantization, schema.metric),
            keep_f32: true,
        };
        let state = match layout.new_index(&self.shared.cfg, 1024) {
            Ok(index) => State::Hot(Box::new(Mem {
                layout,
                index: Arc::new(index),
                rows: RowMap::default(),
                filters: Default::default(),
                pending: Vec::new(),
                stragglers: Vec::new(),
                next_key: 0,
                version,
                from_disk: false,
                dirty: 0,
                reserved: 0,
                budget: self.shared.budget.clone(),
                vectors: None,
            })),
            Err(e) => State::Lance {
                reason: e.to_string(),
            },
        };
        let t = Arc::new(TableHot::new(name, schema.clone(), state));
        self.shared
            .tables
            .write()
            .expect("lock")
            .insert(name.to_string(), t);
        Ok(())
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        self.inner().table_schema(name).await
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        self.inner().list_tables().await
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        let t = self.shared.tables.write().expect("lock").remove(name);
        let _w = match &t {
            Some(t) => {
                t.generation.fetch_add(1, Ordering::AcqRel);
                Some(t.writes.lock().await)
            }
            None => None,
        };
        let result = self.inner().drop_table(name).await;
        if let Some(t) = &t {
            *t.state.write().expect("lock") = State::Lance {
                reason: "dropped".into(),
            };
        }
        persist::remove(&self.shared.dir, name);
        result
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let Some(t) = self.shared.table(table).await? else {
            return self.inner().insert(table, records).await;
        };
        let rows = to_rows(&t.schema, &records);
        self.write_to(&t, Op::Insert(rows), |inner| async move {
            let v = inner.insert(table, records).await?;
            Ok((v, Some(v)))
        })
        .await
    }

    async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64> {
        let Some(t) = self.shared.table(table).await? else {
            return self.inner().insert_stream(table, batches).await;
        };
        let tap: Arc<Mutex<Option<Vec<row::Row>>>> = Arc::new(Mutex::new(Some(Vec::new())));
        let schema = t.schema.clone();
        let sink = tap.clone();
        let tapped = batches
            .map(move |batch| {
                if let Ok(records) = &batch {
                    let mut held = sink.lock().expect("lock");
                    let fits = held
                        .as_ref()
                        .is_some_and(|v| v.len() + records.len() <= STREAM_TAP_ROWS);
                    if fits {
                        held.as_mut()
                            .expect("fits")
                            .extend(to_rows(&schema, records));
                    } else {
                        *held = None;
                    }
                }
                batch
            })
            .boxed();
        let _w = t.writes.lock().await;
        let result = self.inner().insert_stream(table, tapped).await;
        let held = tap.lock().expect("lock").take();
        let after = match (&result, held) {
            (Ok(_), Some(rows)) => {
                let version = self.inner().version(table).await.ok();
                t.apply(Op::Insert(rows), version, &self.shared)
            }
            // A large or failed stream: rebuild from what LanceDB holds.
            _ => t.invalidate(),
        };
        self.shared.follow(&t, after);
        result
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let Some(t) = self.shared.table(table).await? else {
            return self.inner().upsert(table, records).await;
        };
        let rows = to_rows(&t.schema, &records);
        self.write_to(&t, Op::Upsert(rows), |inner| async move {
            let v = inner.upsert(table, records).await?;
            Ok((v, Some(v)))
        })
        .await
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        let op = match selector {
            DeleteSelector::Ids(ids) => Op::DeleteIds(ids.clone()),
            DeleteSelector::Filter(f) => Op::DeleteWhere(f.clone()),
        };
        self.write(table, op, |inner| async move {
            Ok((inner.delete(table, selector).await?, None))
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
        self.inner().get(table, ids, projection, version).await
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        self.inner().scan(table, projection, version).await
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        self.inner().count(table, filter).await
    }

    async fn vector_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        let Some(t) = self.shared.table(table).await? else {
            return self.inner().vector_search(table, request).await;
        };
        match self.search_hot(&t, request).await? {
            Some(hits) => {
                t.hot_searches.fetch_add(1, Ordering::Relaxed);
                Ok(hits)
            }
            None => {
                t.lance_searches.fetch_add(1, Ordering::Relaxed);
                self.inner().vector_search(table, request).await
            }
        }
    }

    async fn text_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.inner().text_search(table, request).await
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        self.touch(table, self.inner().create_index(table, spec))
            .await
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.inner().list_indexes(table).await
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        self.inner().table_stats(table).await
    }

    async fn version(&self, table: &str) -> Result<u64> {
        self.inner().version(table).await
    }

    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        self.inner().list_versions(table).await
    }

    async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        let Some(t) = self.shared.table(table).await? else {
            return self.inner().restore(table, version).await;
        };
        let _w = t.writes.lock().await;
        let result = self.inner().restore(table, version).await;
        if result.is_ok() {
            let after = t.invalidate();
            self.shared.follow(&t, after);
        }
        result
    }

    async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        self.touch(table, self.inner().tag(table, version, tag))
            .await
    }

    async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        self.inner().tag_version(table, tag).await
    }

    async fn compact(&self, table: &str, keep_versions_for: Duration) -> Result<CompactionStats> {
        self.touch(table, self.inner().compact(table, keep_versions_for))
            .await
    }
}
