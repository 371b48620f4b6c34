//! The write buffer: fast, durable small writes in front of an engine.
//!
//! [`WriteBuffer`] is a [`VectorDatabase`] decorator. A small write (an
//! insert, upsert or delete by ids of at most `max_write_rows` rows) is
//! appended as one frame to the table's log — encrypted with a key derived
//! from the database's data key, checksummed, numbered — and acknowledged
//! once the frame is on stable storage (`fsync`; writers waiting at the same
//! time share one). It is visible at once: gets, scans, counts, filters and
//! vector searches merge the buffered rows with the engine's (an exact
//! search over the buffered rows; buffered upserts and deletes hide the
//! engine's older rows). In the background, when a table holds `max_rows`
//! buffered rows or its oldest is `max_delay_ms` old, the rows are folded
//! into the engine in one batch and the log segment is removed.
//!
//! Everything else goes to the engine after a fold, so the engine sees
//! writes in order: large writes, deletes by filter, full-text search,
//! indexes, versions, restore, time travel, compaction and statistics.
//!
//! After a crash the log is replayed into the engine when the database is
//! opened. Replay deletes every logged id before inserting the logged
//! records, so a fold the crash cut short is harmless to repeat. A torn or
//! damaged last frame is cut (it was never acknowledged, or is
//! indistinguishable from one that was not); damage followed by intact
//! frames is an [`Error::Integrity`]. The format is in
//! `docs/write-buffer-format.md`.
//!
//! One buffer serves a database directory per process (later handles in the
//! same process share it). Another process opening the same directory while
//! one holds the buffer works without a buffer, and sees the first
//! process's small writes once they are folded.

mod codec;
mod engine_sync;
mod frame;
mod read;
mod recover;
mod segment;
mod syncer;
mod table;
mod view;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::config::WriteBufferConfig;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{
    CompactionStats, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats,
    VersionInfo,
};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;
use crate::security::Security;
use codec::Op;
use segment::LogKeys;
pub(crate) use segment::sync_dir;
use table::{FoldCtx, TableBuf};
use view::{Pending, normalise, view_get};

pub(crate) use codec::record_len;

/// A write call larger than this (in encoded bytes) bypasses the buffer.
const MAX_SMALL_BYTES: usize = 8 << 20;
/// Writers wait for a fold when a table holds this many times `max_rows`.
const BACKPRESSURE: usize = 8;

/// The buffers open in this process, by database directory.
fn registry() -> &'static tokio::sync::Mutex<HashMap<PathBuf, Weak<Core>>> {
    static R: std::sync::OnceLock<tokio::sync::Mutex<HashMap<PathBuf, Weak<Core>>>> =
        std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// The engine held for a write that goes straight to it.
struct Held {
    table: Arc<TableBuf>,
    _engine: tokio::sync::OwnedMutexGuard<()>,
}

/// Buffers small writes in an encrypted log in front of another engine.
#[derive(Debug, Clone)]
pub struct WriteBuffer {
    core: Arc<Core>,
}

struct Core {
    inner: Arc<dyn VectorDatabase>,
    config: WriteBufferConfig,
    root: PathBuf,
    wal: PathBuf,
    keys: LogKeys,
    tables: RwLock<HashMap<String, Arc<TableBuf>>>,
    creating: tokio::sync::Mutex<()>,
    wake: Arc<tokio::sync::Notify>,
    folder: Mutex<Option<tokio::task::AbortHandle>>,
    _lock: std::fs::File,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBuffer")
            .field("inner", &self.inner)
            .field("wal", &self.wal)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(h) = self.folder.lock().ok().and_then(|mut f| f.take()) {
            h.abort();
        }
        // Acknowledged-before-fsync writes reach the disk on a clean close.
        if !self.config.sync {
            for t in self.all_tables() {
                let _ = t.segment().sync();
            }
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl WriteBuffer {
    /// Puts a buffer in front of `inner`, the engine of the database at
    /// `root`, replaying first any log a crash left behind. Returns `inner`
    /// itself when another process holds this database's buffer.
    pub async fn open(
        inner: Arc<dyn VectorDatabase>,
        root: &Path,
        config: &WriteBufferConfig,
        security: &Security,
    ) -> Result<Arc<dyn VectorDatabase>> {
        config.validate()?;
        let root = root.canonicalize().map_err(io_err(root))?;
        // Held until the buffer is registered: a second handle waits for recovery.
        let mut reg = registry().lock().await;
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(core) = reg.get(&root).and_then(Weak::upgrade) {
            return Ok(Arc::new(WriteBuffer { core }));
        }
        let wal = root.join(".hanzo").join("wal");
        std::fs::create_dir_all(&wal).map_err(io_err(&wal))?;
        let lock_path = wal.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // A process that is closing the database lets go within moments.
        let mut tries = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    tracing::warn!(
                        path = %root.display(),
                        "another process holds this database's write buffer; writing without one"
                    );
                    return Ok(inner);
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
            }
        }
        let keys = LogKeys {
            keys: security.key_source(),
            alg: security.write_params()?.0,
        };
        let core = Arc::new(Core {
            inner,
            config: config.clone(),
            root: root.clone(),
            wal,
            keys,
            tables: RwLock::default(),
            creating: tokio::sync::Mutex::new(()),
            wake: Arc::default(),
            folder: Mutex::new(None),
            _lock: lock,
        });
        core.recover().await?;
        reg.insert(root, Arc::downgrade(&core));
        drop(reg);
        core.spawn_folder();
        Ok(Arc::new(WriteBuffer { core }))
    }

    /// The engine behind the buffer.
    pub fn inner(&self) -> &Arc<dyn VectorDatabase> {
        &self.core.inner
    }

    /// Rows buffered (not yet folded) for a table.
    pub fn buffered_rows(&self, table: &str) -> usize {
        self.core.existing(table).map_or(0, |t| t.len())
    }
}

impl Core {
    fn fold_ctx(&self, table: &str) -> FoldCtx<'_> {
        FoldCtx {
            inner: &self.inner,
            keys: &self.keys,
            sync: self.config.sync,
            engine_dir: self.engine_dir(table),
        }
    }

    /// Where the engine keeps a table's files, when it is a local engine we know.
    fn engine_dir(&self, table: &str) -> Option<PathBuf> {
        (self.inner.backend_name() == "lancedb").then(|| self.root.join(format!("{table}.lance")))
    }

    fn existing(&self, table: &str) -> Option<Arc<TableBuf>> {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
            .cloned()
    }

    async fn table(&self, name: &str) -> Result<Arc<TableBuf>> {
        if let Some(t) = self.existing(name) {
            return Ok(t);
        }
        let _one = self.creating.lock().await;
        if let Some(t) = self.existing(name) {
            return Ok(t);
        }
        let schema = self.inner.table_schema(name).await?;
        let version = self.inner.version(name).await.unwrap_or(0);
        let t = Arc::new(TableBuf::create(
            name,
            schema,
            self.wal.join(name),
            &self.keys,
            self.config.sync,
            version,
        )?);
        if self.config.sync {
            sync_dir(&self.wal)?;
        }
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn all_tables(&self) -> Vec<Arc<TableBuf>> {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Folds a table's buffered rows, if it has a buffer.
    async fn flush_table(&self, table: &str) -> Result<()> {
        match self.existing(table) {
            Some(t) => t.fold(&self.fold_ctx(table)).await,
            None => Ok(()),
        }
    }

    fn spawn_folder(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let wake = self.wake.clone();
        let tick = Duration::from_millis((self.config.max_delay_ms / 2).clamp(5, 1000));
        let handle = rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(tick) => {}
                }
                let Some(core) = weak.upgrade() else { break };
                core.background_pass().await;
            }
        });
        *self.folder.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.abort_handle());
    }

    async fn background_pass(&self) {
        let max_age = Duration::from_millis(self.config.max_delay_ms);
        for t in self.all_tables() {
            if t.fold_due(self.config.max_rows, max_age) {
                if let Err(e) = t.fold(&self.fold_ctx(&t.name)).await {
                    tracing::warn!(table = %t.name, error = %e, "folding buffered writes failed; will retry");
                }
            }
            if !self.config.sync {
                if let Err(e) = t.sync_now().await {
                    tracing::warn!(table = %t.name, error = %e, "log fsync failed");
                }
            }
        }
    }

    fn is_small(&self, op: &Op) -> bool {
        op.len() <= self.config.max_write_rows && op.encoded_len() <= MAX_SMALL_BYTES
    }

    /// Logs a small write, applies it to the buffer, and returns once durable.
    async fn write_small(&self, t: &TableBuf, op: Op) -> Result<()> {
        let rows = match &op {
            Op::Insert(r) | Op::Upsert(r) => normalise(&t.schema, r),
            Op::Delete(_) => Vec::new(),
        };
        if t.len() >= self.config.max_rows.saturating_mul(BACKPRESSURE) {
            t.fold(&self.fold_ctx(&t.name)).await?;
        }
        let (segment, seq, buffered) = t.append(&op, rows)?;
        if buffered >= self.config.max_rows {
            self.wake.notify_one();
        }
        if segment.wants_zeros() {
            let seg = segment.clone();
            tokio::task::spawn_blocking(move || seg.extend_ahead());
        }
        if self.config.sync {
            t.make_durable(&segment, seq).await?;
        }
        Ok(())
    }

    /// Folds the buffered writes and holds the engine for a write that goes
    /// straight to it (so it lands after them).
    async fn hold(&self, table: &str) -> Result<Option<Held>> {
        let Some(t) = self.existing(table) else {
            return Ok(None);
        };
        let engine = t.engine_lock.clone().lock_owned().await;
        t.fold_locked(&self.fold_ctx(table)).await?;
        Ok(Some(Held {
            table: t,
            _engine: engine,
        }))
    }

    /// Ends [`hold`](Self::hold), noting the engine's new version.
    async fn release(&self, table: &str, held: Option<Held>) {
        if let Some(h) = held {
            if let Ok(v) = self.inner.version(table).await {
                h.table.set_version(v);
            }
        }
    }
}

/// A projection that reads nothing but ids.
fn ids_only() -> Projection {
    Projection {
        vector: false,
        blobs: false,
        metadata_keys: Some(Vec::new()),
    }
}

#[async_trait]
impl VectorDatabase for WriteBuffer {
    fn backend_name(&self) -> &'static str {
        self.core.inner.backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.core.inner.capabilities()
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        self.core.inner.create_table(name, schema).await
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        match self.core.existing(name) {
            Some(t) => Ok(t.schema.clone()),
            None => self.core.inner.table_schema(name).await,
        }
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        self.core.inner.list_tables().await
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        let core = &self.core;
        let t = core
            .tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let _engine = match &t {
            Some(t) => {
                let g = t.engine_lock.clone().lock_owned().await;
                t.set_dropped(true);
                Some(g)
            }
            None => None,
        };
        if let Err(e) = core.inner.drop_table(name).await {
            if let Some(t) = t {
                t.set_dropped(false);
                core.tables
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), t);
            }
            return Err(e);
        }
        let dir = core.wal.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&dir)(e)),
        }
        Ok(())
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let op = Op::Insert(records);
        if !self.core.is_small(&op) {
            let Op::Insert(records) = op else {
                unreachable!("built above")
            };
            let held = self.core.hold(table).await?;
            let out = self.core.inner.insert(table, records).await;
            self.core.release(table, held).await;
            return out;
        }
        let t = self.core.table(table).await?;
        self.core.write_small(&t, op).await?;
        Ok(t.version())
    }

    async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64> {
        let held = self.core.hold(table).await?;
        let out = self.core.inner.insert_stream(table, batches).await;
        self.core.release(table, held).await;
        out
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let op = Op::Upsert(records);
        if !self.core.is_small(&op) {
            let Op::Upsert(records) = op else {
                unreachable!("built above")
            };
            let held = self.core.hold(table).await?;
            let out = self.core.inner.upsert(table, records).await;
            self.core.release(table, held).await;
            return out;
        }
        let t = self.core.table(table).await?;
        self.core.write_small(&t, op).await?;
        Ok(t.version())
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        let ids = match selector {
            DeleteSelector::Ids(ids) if ids.len() <= self.core.config.max_write_rows => ids,
            _ => {
                let held = self.core.hold(table).await?;
                let out = self.core.inner.delete(table, selector).await;
                self.core.release(table, held).await;
                return out;
            }
        };
        let t = self.core.table(table).await?;
        let mut removed = 0u64;
        let mut unknown: Vec<String> = Vec::new();
        {
            let st = t.state();
            let mut seen = HashSet::new();
            for id in ids {
                if !seen.insert(id.as_str()) {
                    continue;
                }
                match view_get(&st.overlay, st.folding.as_deref(), id) {
                    Some(Pending::Put { .. }) => removed += 1,
                    Some(Pending::Delete) => {}
                    None => unknown.push(id.clone()),
                }
            }
        }
        if !unknown.is_empty() {
            removed += self
                .core
                .inner
                .get(table, &unknown, &ids_only(), None)
                .await?
                .len() as u64;
        }
        self.core.write_small(&t, Op::Delete(ids.clone())).await?;
        Ok(removed)
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        self.core.get(table, ids, projection, version).await
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        self.core.scan(table, projection, version).await
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        self.core.count(table, filter).await
    }

    async fn vector_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.core.vector_search(table, req).await
    }

    async fn text_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.core.flush_table(table).await?;
        self.core.inner.text_search(table, req).await
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        self.core.flush_table(table).await?;
        self.core.inner.create_index(table, spec).await
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.core.inner.list_indexes(table).await
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        self.core.flush_table(table).await?;
        self.core.inner.table_stats(table).await
    }

    async fn version(&self, table: &str) -> Result<u64> {
        self.core.flush_table(table).await?;
        self.core.inner.version(table).await
    }

    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        self.core.flush_table(table).await?;
        self.core.inner.list_versions(table).await
    }

    async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        let held = self.core.hold(table).await?;
        let out = self.core.inner.restore(table, version).await;
        self.core.release(table, held).await;
        out
    }

    async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        self.core.inner.tag(table, version, tag).await
    }

    async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        self.core.inner.tag_version(table, tag).await
    }

    async fn compact(&self, table: &str, keep: Duration) -> Result<CompactionStats> {
        self.core.flush_table(table).await?;
        self.core.inner.compact(table, keep).await
    }

    async fn flush(&self) -> Result<()> {
        for t in self.core.all_tables() {
            t.fold(&self.core.fold_ctx(&t.name)).await?;
        }
        self.core.inner.flush().await
    }
}
