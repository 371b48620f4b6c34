//! One table's buffer: its log, its buffered rows, group commit, and the
//! fold of buffered rows into the engine.
//!
//! Locks, always taken in this order:
//! - `engine_lock` (async) is held while the engine's copy of the table
//!   changes: a fold, a write that bypasses the buffer, a restore. Counting
//!   and scanning hold it too, so they see the engine and the buffer at one
//!   consistent moment.
//! - `state` (a short synchronous lock) guards the rows, the current segment
//!   and the sequence numbers: appending a frame and applying it to the rows
//!   happen under it together, so the log order is the apply order.
//! - group commit needs no lock: writers wait for the table's sync thread
//!   (`syncer.rs`), whose every `fsync` covers all frames appended before it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::codec::Op;
use super::engine_sync::EngineSync;
use super::segment::{LogKeys, Segment, sync_dir};
use super::syncer::Syncer;
use super::view::{Buffered, Overlay, Pending};
use crate::backend::{DeleteSelector, VectorDatabase};
use crate::error::{Error, Result};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

/// Rows per engine call when a fold is large (replay after a long outage).
const FOLD_CHUNK: usize = 8192;

/// What a fold needs from the buffer around it.
pub struct FoldCtx<'a> {
    /// The engine.
    pub inner: &'a Arc<dyn VectorDatabase>,
    /// Keys for the next segment.
    pub keys: &'a LogKeys,
    /// `fsync` the log and the engine's new files.
    pub sync: bool,
    /// The engine's directory for this table, made durable after a fold.
    pub engine_dir: Option<PathBuf>,
}

pub(super) struct State {
    /// Rows written since the last fold started (newest state per id).
    pub overlay: Overlay,
    /// Rows being folded: still visible until the engine holds them.
    pub folding: Option<Arc<Overlay>>,
    /// When the oldest row of `overlay` was written.
    pub since: Option<Instant>,
    segment: Arc<Segment>,
    /// Earlier segments whose rows are not yet folded.
    sealed: Vec<Arc<Segment>>,
    next_seq: u64,
    next_segment: u64,
    dropped: bool,
}

/// One table's buffer.
pub struct TableBuf {
    /// The table's name.
    pub name: String,
    /// Its schema.
    pub schema: TableSchema,
    dir: PathBuf,
    state: Mutex<State>,
    /// Held while the engine's copy of the table changes.
    pub engine_lock: Arc<tokio::sync::Mutex<()>>,
    syncer: Syncer,
    /// The engine files folds have made durable.
    engine_sync: EngineSync,
    version: AtomicU64,
}

impl std::fmt::Debug for TableBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableBuf")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TableBuf {
    /// A buffer with an empty log in `dir` (which holds no segments).
    pub fn create(
        name: &str,
        schema: TableSchema,
        dir: PathBuf,
        keys: &LogKeys,
        sync: bool,
        version: u64,
    ) -> Result<Self> {
        if let Some(stale) = super::segment::list_segments(&dir)?.first() {
            return Err(Error::Integrity {
                path: stale.display().to_string(),
                reason: "an unreplayed write-buffer log is in the way: reopen the database so it is replayed (is another process writing to this database?)".into(),
            });
        }
        let segment = Arc::new(Segment::create(&dir, name, 0, 0, keys, sync)?);
        Ok(Self {
            name: name.to_string(),
            schema,
            dir,
            state: Mutex::new(State {
                overlay: Overlay::new(),
                folding: None,
                since: None,
                segment,
                sealed: Vec::new(),
                next_seq: 0,
                next_segment: 1,
                dropped: false,
            }),
            engine_lock: Arc::new(tokio::sync::Mutex::new(())),
            syncer: Syncer::new(name),
            engine_sync: EngineSync::new(),
            version: AtomicU64::new(version),
        })
    }

    /// The state, for readers (keep the guard short).
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine's version as last seen.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Records the engine's version after a change.
    pub fn set_version(&self, v: u64) {
        self.version.store(v, Ordering::Release);
    }

    /// Buffered rows not yet folded (including those being folded).
    pub fn len(&self) -> usize {
        let st = self.state();
        st.overlay.len() + st.folding.as_ref().map_or(0, |f| f.len())
    }

    /// Whether a fold is due: `max_rows` buffered, or the oldest older than `max_age`.
    pub fn fold_due(&self, max_rows: usize, max_age: std::time::Duration) -> bool {
        let st = self.state();
        !st.overlay.is_empty()
            && (st.overlay.len() >= max_rows || st.since.is_some_and(|t| t.elapsed() >= max_age))
    }

    /// Marks the table dropped (later writes fail with `TableNotFound`) or not.
    pub fn set_dropped(&self, dropped: bool) {
        self.state().dropped = dropped;
    }

    /// The segment being appended to.
    pub fn segment(&self) -> Arc<Segment> {
        self.state().segment.clone()
    }

    /// Logs one write call and applies it to the buffered rows. Returns the
    /// segment and sequence number to make durable, and the rows now buffered.
    pub fn append(&self, op: &Op, rows: Vec<Arc<Buffered>>) -> Result<(Arc<Segment>, u64, usize)> {
        let mut payload = Vec::new();
        op.encode(&mut payload);
        let mut st = self.state();
        if st.dropped {
            return Err(Error::TableNotFound {
                name: self.name.clone(),
            });
        }
        let seq = st.next_seq;
        st.segment.append(seq, &payload)?;
        st.next_seq += 1;
        if st.overlay.is_empty() {
            st.since = Some(Instant::now());
        }
        apply(&mut st, op, rows, seq);
        Ok((st.segment.clone(), seq, st.overlay.len()))
    }

    /// Returns once frame `seq` of `segment` is on stable storage, sharing
    /// one `fsync` among every writer waiting at the time.
    pub async fn make_durable(&self, segment: &Arc<Segment>, seq: u64) -> Result<()> {
        self.syncer.wait_durable(segment, seq).await
    }

    /// `fsync`s the current segment if frames are waiting (used when writes
    /// are acknowledged before their `fsync`).
    pub async fn sync_now(&self) -> Result<()> {
        let seg = self.segment();
        if !seg.has_unsynced() {
            return Ok(());
        }
        off_worker("log fsync", move || seg.sync()).await
    }

    /// Folds every buffered row into the engine (waits for a running fold).
    pub async fn fold(&self, ctx: &FoldCtx<'_>) -> Result<()> {
        let _engine = self.engine_lock.lock().await;
        self.fold_locked(ctx).await
    }

    /// [`fold`](Self::fold) for a caller already holding `engine_lock`.
    pub async fn fold_locked(&self, ctx: &FoldCtx<'_>) -> Result<()> {
        let number = {
            let st = self.state();
            if st.overlay.is_empty() {
                return Ok(());
            }
            st.next_segment
        };
        // The next segment is made (and made durable) before writers switch to it.
        let first_seq = self.state().next_seq;
        // (File creation, 1 MiB of zeros and two fsyncs: off the async workers,
        // which the writers acknowledged meanwhile need.)
        let (dir, name, keys, sync) = (
            self.dir.clone(),
            self.name.clone(),
            ctx.keys.clone(),
            ctx.sync,
        );
        let next = Arc::new(
            off_worker("new log segment", move || {
                Segment::create(&dir, &name, number, first_seq, &keys, sync)
            })
            .await?,
        );
        let (snapshot, old) = {
            let mut st = self.state();
            // Frames appended since `first_seq` was read go to the old segment;
            // the new one's sequence starts where the old one ends.
            next.reset_first_seq(st.next_seq);
            let snapshot = Arc::new(std::mem::take(&mut st.overlay));
            st.folding = Some(snapshot.clone());
            st.since = None;
            st.next_segment = number + 1;
            let old = std::mem::replace(&mut st.segment, next);
            st.sealed.push(old.clone());
            (snapshot, old)
        };
        if ctx.sync {
            // Everything before the new segment is durable before its frames can be.
            let old = old.clone();
            off_worker("log fsync", move || old.sync()).await?;
        }
        let started = std::time::SystemTime::now();
        match apply_to_engine(ctx.inner, &self.name, &snapshot, false).await {
            Ok(version) => {
                if let (true, Some(dir)) = (ctx.sync, &ctx.engine_dir) {
                    self.engine_sync.sync(dir.clone(), started).await?;
                }
                let sealed = {
                    let mut st = self.state();
                    st.folding = None;
                    std::mem::take(&mut st.sealed)
                };
                self.set_version(version);
                let (dir, sync) = (self.dir.clone(), ctx.sync);
                off_worker("removing folded log segments", move || {
                    remove_sealed(&sealed, &dir, sync)
                })
                .await
            }
            Err(e) => {
                // Nothing is lost: the rows go back to the buffer (newer writes
                // win) and the sealed segments stay until a fold succeeds.
                let mut st = self.state();
                if let Some(snap) = st.folding.take() {
                    for (id, p) in snap.iter() {
                        st.overlay.entry(id.clone()).or_insert_with(|| p.clone());
                    }
                    if st.since.is_none() && !st.overlay.is_empty() {
                        st.since = Some(Instant::now());
                    }
                }
                Err(e)
            }
        }
    }
}

/// Runs blocking file work (`what`, for its error) on the blocking pool,
/// off the async threads.
pub(super) async fn off_worker<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::engine("write buffer", what, e))?
}

/// Removes folded segments (the engine holds their rows now), then makes
/// the removal durable.
fn remove_sealed(sealed: &[Arc<Segment>], dir: &std::path::Path, sync: bool) -> Result<()> {
    for s in sealed {
        match std::fs::remove_file(&s.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: s.path.display().to_string(),
                    source,
                });
            }
        }
    }
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Applies a write call to the buffered rows.
fn apply(st: &mut State, op: &Op, rows: Vec<Arc<Buffered>>, seq: u64) {
    let in_folding = |st: &State, id: &str| st.folding.as_ref().is_some_and(|f| f.contains_key(id));
    match op {
        Op::Insert(_) | Op::Upsert(_) => {
            let upsert = matches!(op, Op::Upsert(_));
            for row in rows {
                let id: Arc<str> = Arc::from(row.record.id.as_str());
                let replace = match st.overlay.get(&id) {
                    // The earlier buffered write already knows whether the engine holds the id.
                    Some(Pending::Put { replace, .. }) => *replace,
                    Some(Pending::Delete) => true,
                    None => upsert || in_folding(st, &id),
                };
                st.overlay.insert(id, Pending::Put { row, replace, seq });
            }
        }
        Op::Delete(ids) => {
            for id in ids {
                let only_buffered = matches!(
                    st.overlay.get(id.as_str()),
                    Some(Pending::Put { replace: false, .. })
                ) && !in_folding(st, id);
                if only_buffered {
                    // Never reached the engine: forgetting it is the whole delete.
                    st.overlay.remove(id.as_str());
                } else {
                    st.overlay.insert(Arc::from(id.as_str()), Pending::Delete);
                }
            }
        }
    }
}

/// Builds buffered rows for replay, where every id may already be in the
/// engine (a fold may have been cut short after the engine committed).
pub fn replay_apply(overlay: &mut Overlay, op: Op, rows: Vec<Arc<Buffered>>, seq: u64) {
    match op {
        Op::Insert(_) | Op::Upsert(_) => {
            for row in rows {
                overlay.insert(
                    Arc::from(row.record.id.as_str()),
                    Pending::Put {
                        row,
                        replace: true,
                        seq,
                    },
                );
            }
        }
        Op::Delete(ids) => {
            for id in ids {
                overlay.insert(Arc::from(id.as_str()), Pending::Delete);
            }
        }
    }
}

/// Writes buffered rows into the engine: deletes (and the older copies of
/// replaced rows) first, then every buffered record in write order. Doing it
/// twice gives the same table, so a fold cut short by a crash is simply
/// replayed. Returns the engine's version afterwards.
pub async fn apply_to_engine(
    inner: &Arc<dyn VectorDatabase>,
    table: &str,
    rows: &Overlay,
    replay: bool,
) -> Result<u64> {
    let mut delete: Vec<String> = Vec::new();
    let mut puts: Vec<(u64, &MultimodalRecord)> = Vec::new();
    for (id, p) in rows {
        match p {
            Pending::Delete => delete.push(id.to_string()),
            Pending::Put { row, replace, seq } => {
                if *replace || replay {
                    delete.push(id.to_string());
                }
                puts.push((*seq, &row.record));
            }
        }
    }
    for chunk in delete.chunks(FOLD_CHUNK) {
        inner
            .delete(table, &DeleteSelector::Ids(chunk.to_vec()))
            .await?;
    }
    puts.sort_by_key(|(seq, _)| *seq);
    for chunk in puts.chunks(FOLD_CHUNK) {
        let records = chunk.iter().map(|(_, r)| (*r).clone()).collect();
        inner.insert(table, records).await?;
    }
    inner.version(table).await.or(Ok(0))
}
