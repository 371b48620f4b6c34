//! Background work: loading or building a table's index, folding new rows
//! into the graph, and saving it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use usearch::Index;

use crate::error::{Error, Result};
use crate::query::Projection;

use super::huge;
use super::mem::{Layout, Mem, graph_add, graph_search, search_threads, usearch_err};
use super::persist::{self, Expect};
use super::row::RowMap;
use super::table::{After, OpLog, State, TableHot, apply_to, claim, row_from};
use super::vectors::VectorFile;
use super::{Shared, background};

/// Rows folded per thread per step (a step's adds hold the graph's write
/// lock, so searches wait for them: at 1M x 768, about 5 ms).
const FOLD_CHUNK: usize = 16;
/// The same during a bulk load (a search waits up to about 20 ms).
const FOLD_CHUNK_BULK: usize = 64;
/// Pending rows from which folding uses every core (a bulk load).
pub(crate) const BULK_PENDING: usize = 4096;

impl Shared {
    /// Acts on what applying a write asked for.
    pub(crate) fn follow(self: &Arc<Self>, t: &Arc<TableHot>, after: After) {
        if after.rebuild {
            self.spawn_build(t.clone());
        } else if after.fold {
            self.spawn_fold(t.clone());
        } else if after.save {
            self.spawn_save(t.clone());
        }
    }

    fn layout_for(&self, t: &TableHot) -> Layout {
        Layout {
            dim: t.schema.dimension,
            metric: t.schema.metric,
            scalar: Layout::resolve(self.cfg.quantization, t.schema.metric),
            keep_f32: true,
        }
    }

    /// Loads the saved index if it matches the table's version, else builds.
    pub(crate) fn spawn_start(self: &Arc<Self>, t: Arc<TableHot>) {
        let me = self.clone();
        tokio::spawn(async move {
            if t.loading.load(Ordering::Acquire) {
                // Without a vector index of its own, LanceDB would answer the
                // searches made meanwhile by scanning every row — slower than
                // the load, and competing with it: they wait for it instead.
                let indexed = me.inner.list_indexes(&t.name).await.is_ok_and(|v| {
                    v.iter()
                        .any(|i| i.kind.contains("IVF") || i.kind.contains("HNSW"))
                });
                t.loading.store(!indexed, Ordering::Release);
                let loaded = me.try_load(&t).await;
                t.loading.store(false, Ordering::Release);
                if loaded {
                    return;
                }
            }
            me.build(t).await;
        });
    }

    async fn try_load(self: &Arc<Self>, t: &Arc<TableHot>) -> bool {
        let _w = t.writes.lock().await;
        let Ok(version) = self.inner.version(&t.name).await else {
            return false;
        };
        let me = self.clone();
        let table = t.clone();
        let layout = self.layout_for(t);
        let loaded = tokio::task::spawn_blocking(move || {
            persist::load(
                &me.dir,
                &table.name,
                &me.sealing,
                Expect {
                    version,
                    layout,
                    cfg: &me.cfg,
                    budget: &me.budget,
                },
            )
        })
        .await;
        match loaded {
            Ok(Ok(Some(mem))) => {
                let fold = !mem.pending.is_empty();
                t.generation.fetch_add(1, Ordering::AcqRel);
                *t.state.write().expect("lock") = State::Hot(Box::new(mem));
                t.collapse_due.store(self.cfg.huge_pages, Ordering::Release);
                if fold {
                    self.spawn_fold(t.clone());
                } else {
                    self.spawn_save(t.clone());
                }
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::warn!(table = %t.name, error = %e, "saved hot index unusable; rebuilding");
                false
            }
            Err(e) => {
                tracing::warn!(table = %t.name, error = %e, "loading the hot index failed; rebuilding");
                false
            }
        }
    }

    pub(crate) fn spawn_build(self: &Arc<Self>, t: Arc<TableHot>) {
        let me = self.clone();
        tokio::spawn(async move { me.build(t).await });
    }

    /// Builds a table's index from a scan of one version, then replays the
    /// writes made meanwhile.
    async fn build(self: &Arc<Self>, t: Arc<TableHot>) {
        if t.bulk.load(Ordering::Acquire) {
            // Asked for in the middle of a bulk load: build once it pauses,
            // from LanceDB, rather than from a log of every row meanwhile.
            loop {
                let seen = t.writes_seen.load(Ordering::Acquire);
                tokio::time::sleep(BULK_PAUSE).await;
                if self.is_closed() || t.writes_seen.load(Ordering::Acquire) == seen {
                    break;
                }
            }
            t.bulk.store(false, Ordering::Release);
        }
        // Fix the version under the write lock: every later write is logged.
        let (generation, version) = {
            let _w = t.writes.lock().await;
            let version = match self.inner.version(&t.name).await {
                Ok(v) => v,
                Err(e) => {
                    self.give_up(&t, None, format!("cannot read the table version: {e}"));
                    return;
                }
            };
            let generation = t.generation.fetch_add(1, Ordering::AcqRel) + 1;
            *t.state.write().expect("lock") = State::Building {
                ops: OpLog::default(),
                version: None,
            };
            (generation, version)
        };
        // One build at a time: the one this replaces sees the new generation
        // at its next batch and stops, handing its memory back to the budget
        // (two at once made the second refuse a budget it fits).
        let _one = t.building.lock().await;
        if t.generation.load(Ordering::Acquire) != generation {
            return;
        }
        match self.build_at(&t, generation, version).await {
            Ok(Some(mut mem)) => {
                let mut state = t.state.write().expect("lock");
                if t.generation.load(Ordering::Acquire) != generation
                    || !matches!(*state, State::Building { .. })
                {
                    return;
                }
                let empty = State::Building {
                    ops: OpLog::default(),
                    version: None,
                };
                let State::Building { ops, version: v } = std::mem::replace(&mut *state, empty)
                else {
                    unreachable!("checked above")
                };
                for op in ops.ops {
                    apply_to(&mut mem, op);
                }
                if let Some(v) = v {
                    mem.version = v;
                }
                let fold = !mem.pending.is_empty();
                *state = State::Hot(Box::new(mem));
                drop(state);
                t.collapse_due.store(self.cfg.huge_pages, Ordering::Release);
                if fold {
                    self.spawn_fold(t.clone());
                } else {
                    self.spawn_save(t.clone());
                }
            }
            Ok(None) => {}
            Err(e) => self.give_up(&t, Some(generation), e.to_string()),
        }
    }

    fn give_up(&self, t: &TableHot, generation: Option<u64>, reason: String) {
        if generation.is_some_and(|g| t.generation.load(Ordering::Acquire) != g) {
            return;
        }
        tracing::info!(table = %t.name, %reason, "table served by LanceDB");
        *t.state.write().expect("lock") = State::Lance { reason };
    }

    async fn build_at(
        self: &Arc<Self>,
        t: &Arc<TableHot>,
        generation: u64,
        version: u64,
    ) -> Result<Option<Mem>> {
        let n = self.inner.count(&t.name, None).await? as usize;
        let mut layout = self.layout_for(t);
        // Room for an eighth more rows, at the layout's own cost per row.
        let need = |l: &Layout| {
            let per = l.row_bytes(self.cfg.connectivity);
            n as u64 * per + (1u64 << 20) + n as u64 / 8 * per
        };
        let mut reserve = need(&layout);
        if !self.budget.try_take(reserve) {
            layout.keep_f32 = false;
            // (The slack is the smaller layout's too: with the full-precision
            // layout's, 1M × 768 rows were refused a budget they fit.)
            let want = need(&layout);
            if !self.budget.try_take(want) {
                return Err(Error::InvalidArgument(format!(
                    "{n} rows need about {want} bytes in memory; the hot index budget is {} bytes ({} in use)",
                    self.budget.limit,
                    self.budget.used.load(Ordering::Acquire)
                )));
            }
            reserve = want;
        }
        let index = match layout.new_index(&self.cfg, n + n / 8 + 64) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                self.budget.give_back(reserve);
                return Err(e);
            }
        };
        let mut mem = Mem {
            layout,
            index,
            rows: RowMap::with_capacity(n),
            filters: Default::default(),
            pending: Vec::new(),
            stragglers: Vec::new(),
            next_key: 0,
            version,
            from_disk: false,
            dirty: 1,
            reserved: reserve,
            budget: self.budget.clone(),
            vectors: None,
        };
        // Full precision does not fit in memory: it goes to disk instead.
        let vectors = match layout.keep_f32 {
            true => None,
            false => self.vector_file(&t.name, &layout).map(Arc::new),
        };
        mem.vectors = vectors.clone();
        let projection = Projection {
            vector: true,
            blobs: false,
            metadata_keys: None,
        };
        let mut stream = self.inner.scan(&t.name, &projection, Some(version)).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if t.generation.load(Ordering::Acquire) != generation || self.is_closed() {
                // Replaced by a newer build: its vectors are of no use.
                if let Some(v) = &vectors {
                    v.remove_file();
                }
                return Ok(None);
            }
            let mut work = Vec::with_capacity(batch.len());
            for record in batch {
                let mut row = row_from(record);
                let v = if layout.keep_f32 {
                    row.vector.to_vec()
                } else {
                    std::mem::take(&mut row.vector).into_vec()
                };
                work.push((mem.add_built(row), v));
            }
            let need = mem.index.size() + work.len();
            if need > mem.index.capacity() {
                mem.index
                    .reserve_capacity_and_threads(need + need / 2, search_threads())
                    .map_err(usearch_err)?;
            }
            let index = mem.index.clone();
            let own = layout.own_i8();
            let file = vectors.clone();
            let added = background::spawn("hanzo-hot-build", move || {
                add_parallel(&index, own, &work, build_threads())?;
                write_vectors(file.as_deref(), &work);
                Ok(())
            })
            .map_err(|e| Error::engine("usearch", "hot index build", e))?;
            added
                .await
                .map_err(|e| Error::engine("usearch", "hot index build", e))??;
        }
        Ok(Some(mem))
    }

    /// Moves pending rows into the graph on a thread of lower priority
    /// ([`background`]), a chunk at a time, releasing the table's lock
    /// between chunks so searches go on.
    pub(crate) fn spawn_fold(self: &Arc<Self>, t: Arc<TableHot>) {
        if !claim(&t.folding) {
            return;
        }
        let me = self.clone();
        let t2 = t.clone();
        let started = background::spawn("hanzo-hot-fold", move || {
            loop {
                match me.fold_step(&t) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => {
                        tracing::warn!(table = %t.name, error = %e, "folding failed; rebuilding");
                        t.invalidate();
                        t.folding.store(false, Ordering::Release);
                        let me2 = me.clone();
                        let t2 = t.clone();
                        me.runtime.spawn(async move { me2.build(t2).await });
                        return;
                    }
                }
                let save = match &*t.state.read().expect("lock") {
                    State::Hot(mem) => me.cfg.persist && mem.save_due(me.cfg.persist_every_writes),
                    _ => false,
                };
                if save {
                    me.save_claimed(&t);
                }
                me.collapse_if_due(&t);
                t.folding.store(false, Ordering::Release);
                // A write may have added rows after the last chunk.
                let more = matches!(&*t.state.read().expect("lock"),
                    State::Hot(mem) if !mem.pending.is_empty());
                if more && claim(&t.folding) {
                    continue;
                }
                return;
            }
        });
        if let Err(e) = started {
            tracing::warn!(table = %t2.name, error = %e, "could not start folding");
            t2.folding.store(false, Ordering::Release);
        }
    }

    /// Folds one chunk; returns true when nothing is left to fold. The
    /// chunk is taken under the table's state lock, added to the graph under
    /// the graph's write lock alone (searches wait, inserts go on), checked
    /// for reachability under the graph's read lock, and settled under both
    /// write locks. Its rows stay pending (searched exactly) until settled.
    fn fold_step(&self, t: &TableHot) -> Result<bool> {
        let (index, taken, work, threads, own, file) = {
            let mut state = t.state.write().expect("lock");
            let State::Hot(mem) = &mut *state else {
                return Ok(true);
            };
            if mem.pending.is_empty() {
                return Ok(true);
            }
            let need = mem.index.size() + mem.pending.len();
            if need > mem.index.capacity() {
                let grow = (mem.index.capacity() * 2).max(need + 1024);
                mem.index
                    .reserve_capacity_and_threads(grow, search_threads())
                    .map_err(usearch_err)?;
            }
            // A bulk load gets every core; a trickle of writes leaves one
            // to the foreground.
            let (threads, per) = if mem.pending.len() >= BULK_PENDING {
                (build_threads(), FOLD_CHUNK_BULK)
            } else {
                (background_threads(), FOLD_CHUNK)
            };
            let taken = mem.pending.len().min(per * threads);
            let work: Vec<(u64, Vec<f32>)> = mem.pending[..taken]
                .iter()
                .filter_map(|k| mem.rows.get(k).map(|r| (*k, r.vector.to_vec())))
                .collect();
            (
                mem.index.clone(),
                taken,
                work,
                threads,
                mem.layout.own_i8(),
                mem.vectors.clone(),
            )
        };
        {
            // Adds hold the graph's lock, not the state's: searches wait for
            // them (a step is small: a few milliseconds), inserts do not.
            let _graph = t.graph.write().expect("lock");
            add_parallel(&index, own, &work, threads)?;
        }
        // Their full-precision copies go to disk before they leave memory.
        write_vectors(file.as_deref(), &work);
        // HNSW can leave an outlier with no links pointing to it; such rows
        // are searched exactly from then on instead of being lost. The check
        // reads the graph only, so writes go on meanwhile.
        let unreachable = {
            let _graph = t.graph.read().expect("lock");
            let mut unreachable = Vec::new();
            for (key, v) in &work {
                let (keys, dist) = graph_search(&index, own, v, self.cfg.expansion_search, None)?;
                let reachable =
                    keys.first() == Some(key) || dist.first().is_some_and(|d| *d <= 1e-6);
                if !reachable {
                    unreachable.push(*key);
                }
            }
            unreachable
        };
        let mut state = t.state.write().expect("lock");
        let State::Hot(mem) = &mut *state else {
            return Ok(true);
        };
        if !Arc::ptr_eq(&mem.index, &index) {
            return Ok(false);
        }
        // Writes only push to the end of `pending`: the chunk is still first.
        mem.pending.drain(..taken);
        let _graph = t.graph.write().expect("lock");
        for (key, _) in &work {
            if !mem.rows.contains_key(key) {
                // Deleted while it was being added: out of the graph again.
                if mem.index.contains(*key) {
                    let _ = mem.index.remove(*key);
                }
            } else if !mem.layout.keep_f32 && !unreachable.contains(key) {
                // Unreachable rows keep their full-precision vector: every
                // search scores them exactly, and de-quantising from the
                // graph cost ~1 µs a row (0.2 ms a search at 1M x 768).
                mem.rows.drop_vector(*key);
            }
        }
        mem.stragglers.extend(unreachable);
        Ok(mem.pending.is_empty())
    }

    /// Saves (and moves memory onto huge pages when due) in the background.
    pub(crate) fn spawn_save(self: &Arc<Self>, t: Arc<TableHot>) {
        let collapse = t.collapse_due.load(Ordering::Acquire);
        if !self.cfg.persist && !collapse {
            return;
        }
        // `folding` is claimed here, not on the thread: whoever waits for the
        // table to settle (`wait_hot`, the bench before timing searches)
        // waits for this save too.
        if !claim(&t.folding) {
            return;
        }
        let me = self.clone();
        let t2 = t.clone();
        if background::spawn("hanzo-hot-save", move || me.save_and_release(&t2)).is_err() {
            t.folding.store(false, Ordering::Release);
        }
    }

    /// On close: waits for a running fold to finish, then saves.
    pub(crate) fn save_on_close(&self, t: &TableHot) {
        if !self.cfg.persist {
            return;
        }
        let start = std::time::Instant::now();
        while !claim(&t.folding) {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.save_claimed(t);
        t.folding.store(false, Ordering::Release);
    }

    /// Saves a table's state if it is hot and has unsaved writes, with
    /// `folding` held, then releases it. Folding and saving exclude each
    /// other (both hold `folding`): the graph is never serialised while rows
    /// are being added to it.
    fn save_and_release(self: &Arc<Self>, t: &Arc<TableHot>) {
        if self.cfg.persist {
            self.save_claimed(t);
        }
        self.collapse_if_due(t);
        t.folding.store(false, Ordering::Release);
        // Writes made meanwhile could not start a fold.
        let more = matches!(&*t.state.read().expect("lock"),
            State::Hot(mem) if !mem.pending.is_empty());
        if more && !self.is_closed() {
            self.spawn_fold(t.clone());
        }
    }

    /// Moves memory onto huge pages once after a build or load, with
    /// `folding` held (so whoever waits for the table to settle waits for
    /// this too, and no fold adds to the graph meanwhile).
    fn collapse_if_due(&self, t: &TableHot) {
        if t.collapse_due.swap(false, Ordering::AcqRel) {
            let start = std::time::Instant::now();
            let c = huge::collapse();
            tracing::debug!(table = %t.name, chunks = c.chunks, refused = c.refused,
                ms = start.elapsed().as_millis() as u64, "memory moved onto huge pages");
        }
    }

    /// Saves, with `folding` already held by the caller.
    pub(crate) fn save_claimed(&self, t: &TableHot) {
        if !claim(&t.saving) {
            return;
        }
        // Written under the table's locks (no row added or removed halfway);
        // made durable after they are released, so writes go on meanwhile.
        let staged = {
            let state = t.state.read().expect("lock");
            let _graph = t.graph.read().expect("lock");
            match &*state {
                State::Hot(mem) if mem.dirty > 0 => {
                    match persist::stage(&self.dir, &t.name, mem, &self.sealing) {
                        Ok(staged) => Some((staged, mem.dirty, mem.version)),
                        Err(e) => {
                            tracing::warn!(table = %t.name, error = %e, "saving the hot index failed");
                            None
                        }
                    }
                }
                _ => None,
            }
        };
        let saved = staged.and_then(|(staged, dirty, version)| match staged.commit() {
            Ok(_) if matches!(&*t.state.read().expect("lock"), State::Lance { .. }) => {
                // Dropped (or handed to LanceDB) while the file was synced:
                // the drop's removal may have come before the rename.
                persist::remove(&self.dir, &t.name);
                None
            }
            Ok(_) => Some((dirty, version)),
            Err(e) => {
                tracing::warn!(table = %t.name, error = %e, "saving the hot index failed");
                None
            }
        });
        if let Some((dirty, version)) = saved {
            if let State::Hot(mem) = &mut *t.state.write().expect("lock") {
                if mem.version == version {
                    mem.dirty = mem.dirty.saturating_sub(dirty);
                }
            }
        }
        t.saving.store(false, Ordering::Release);
    }
}

/// How long writes must pause before a build asked for during a bulk load starts.
const BULK_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Threads for a first build: every core (up to 8).
fn build_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// Threads for folding new writes in while the table is in use: one core
/// is left to the reads and writes that produce them.
fn background_threads() -> usize {
    build_threads().saturating_sub(1).max(1)
}

/// Writes rows' vectors to the table's file for re-ranking, if it has one.
fn write_vectors(file: Option<&VectorFile>, work: &[(u64, Vec<f32>)]) {
    if let Some(file) = file {
        file.write_or_warn(work.iter().map(|(k, v)| (*k, v.as_slice())));
    }
}

/// Adds vectors to the graph from several threads (usearch allows
/// concurrent inserts once capacity is reserved).
fn add_parallel(index: &Index, own: bool, work: &[(u64, Vec<f32>)], threads: usize) -> Result<()> {
    if threads <= 1 || work.len() < 64 {
        for (key, v) in work {
            graph_add(index, own, *key, v)?;
        }
        return Ok(());
    }
    let per = work.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || -> Result<()> {
                    for (key, v) in chunk {
                        graph_add(index, own, *key, v)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("indexing thread panicked"))
    })
}
