//! A table's hot state machine: building, hot, or served by LanceDB, and
//! how writes are applied to it.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::arrow::normalise_record;
use crate::filter::Filter;
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

use super::Shared;
use super::mem::Mem;
use super::row::Row;
use super::search::evaluable;

/// Which path serves a table's vector searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HotPath {
    /// The in-memory index.
    Hot,
    /// The in-memory index is being built or loaded; LanceDB serves meanwhile.
    Building,
    /// LanceDB (and its own on-disk index): the table does not fit the
    /// memory budget, or the hot index could not be built.
    Lance,
}

impl std::fmt::Display for HotPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HotPath::Hot => "hot",
            HotPath::Building => "building",
            HotPath::Lance => "lance",
        })
    }
}

/// What the hot index knows of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotStatus {
    /// The table.
    pub table: String,
    /// Which path serves its vector searches.
    pub serving: HotPath,
    /// Rows held in memory.
    pub rows: u64,
    /// Rows written but not yet in the graph (searched exactly meanwhile).
    pub pending_rows: u64,
    /// Rows in the graph its search could not reach when they were added
    /// (HNSW can leave an outlier without links to it); searched exactly.
    #[serde(default)]
    pub unreachable_rows: u64,
    /// Estimated memory in use, bytes.
    pub memory_bytes: u64,
    /// How the graph stores vectors (`i8`, `f16`, `f32`).
    pub quantization: Option<String>,
    /// Whether full-precision vectors are kept in memory to re-rank candidates.
    pub rerank: bool,
    /// Whether candidates are re-ranked with full-precision vectors read
    /// from disk instead (they do not fit the memory budget).
    #[serde(default)]
    pub rerank_on_disk: bool,
    /// True when the index was loaded from its saved file instead of built.
    pub loaded_from_disk: bool,
    /// The table version the in-memory state reflects.
    pub version: Option<u64>,
    /// Why the table is not served hot, when it is not.
    pub reason: Option<String>,
    /// Vector searches answered from memory since the database was opened.
    pub hot_searches: u64,
    /// Vector searches passed to LanceDB (building, time travel, filters
    /// not evaluable in memory, over budget).
    pub lance_searches: u64,
}

/// A write, as the hot state applies (or, while building, replays) it.
#[derive(Debug)]
pub(crate) enum Op {
    Insert(Vec<Row>),
    Upsert(Vec<Row>),
    DeleteIds(Vec<String>),
    DeleteWhere(Filter),
    /// A new version with the same contents (compaction, index build).
    Touch,
}

/// Writes made while a table's index is being built, replayed when it is.
#[derive(Debug, Default)]
pub(crate) struct OpLog {
    pub ops: Vec<Op>,
    /// Rows held by `ops` (inserted or upserted).
    pub rows: usize,
}

impl OpLog {
    fn push(&mut self, op: Op) {
        if let Op::Insert(r) | Op::Upsert(r) = &op {
            self.rows += r.len();
        }
        self.ops.push(op);
    }
}

/// Rows a build's log holds at most: past this (a bulk load during the
/// build) the log is dropped and the table is built again from LanceDB,
/// once writes pause, instead of holding every new row in memory.
pub(crate) const BUILD_LOG_ROWS: usize = 100_000;

#[derive(Debug)]
pub(crate) enum State {
    Building { ops: OpLog, version: Option<u64> },
    Hot(Box<Mem>),
    Lance { reason: String },
}

/// One table under the hot index.
#[derive(Debug)]
pub(crate) struct TableHot {
    pub name: String,
    pub schema: TableSchema,
    /// Held across a write to LanceDB and its application here, so both
    /// happen in the same order.
    pub writes: tokio::sync::Mutex<()>,
    pub state: RwLock<State>,
    /// Bumped by every (re)build; a build whose number is stale is dropped.
    pub generation: AtomicU64,
    pub folding: AtomicBool,
    pub saving: AtomicBool,
    /// Guards the usearch graph: a fold's adds and every removal take it
    /// for writing; searches, saves and `memory_usage` for reading. usearch's
    /// base-layer search reads neighbour lists without locking them while an
    /// add rewrites them (searches beside adds crashed in tests). Writes that
    /// only add rows (inserts) do not take it, so they go on while a fold
    /// adds. Lock order: `state`, then `graph`; never `state` while holding
    /// `graph`.
    pub graph: RwLock<()>,
    pub hot_searches: AtomicU64,
    pub lance_searches: AtomicU64,
    /// Writes applied so far (a build after a bulk load waits for a pause).
    pub writes_seen: AtomicU64,
    /// Set when a rebuild was asked for in the middle of a bulk load.
    pub bulk: AtomicBool,
    /// Held by the build in progress.
    pub building: tokio::sync::Mutex<()>,
    /// Set while the saved index loads for a table LanceDB has no vector
    /// index for: searches wait for the load rather than scan.
    pub loading: AtomicBool,
    /// Set when a graph was built or loaded with `[hot] huge_pages` on: the
    /// next fold or save to end moves memory onto huge pages (see
    /// [`super::huge`]) before it settles.
    pub collapse_due: AtomicBool,
}

/// What a caller must do after applying a write.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct After {
    pub rebuild: bool,
    pub fold: bool,
    pub save: bool,
}

impl TableHot {
    pub fn new(name: &str, schema: TableSchema, state: State) -> Self {
        Self {
            name: name.to_string(),
            schema,
            writes: tokio::sync::Mutex::new(()),
            state: RwLock::new(state),
            generation: AtomicU64::new(0),
            folding: AtomicBool::new(false),
            saving: AtomicBool::new(false),
            graph: RwLock::new(()),
            hot_searches: AtomicU64::new(0),
            lance_searches: AtomicU64::new(0),
            writes_seen: AtomicU64::new(0),
            bulk: AtomicBool::new(false),
            building: tokio::sync::Mutex::new(()),
            loading: AtomicBool::new(false),
            collapse_due: AtomicBool::new(false),
        }
    }

    /// Applies a committed write at `version` (when known).
    pub fn apply(&self, op: Op, version: Option<u64>, shared: &Shared) -> After {
        let cfg = &shared.cfg;
        let mut state = self.state.write().expect("lock");
        self.writes_seen.fetch_add(1, Ordering::AcqRel);
        let unevaluable = matches!(&op, Op::DeleteWhere(f) if !evaluable(f, &self.schema));
        match &mut *state {
            State::Lance { .. } => After::default(),
            State::Building { .. } if unevaluable => {
                *state = State::Building {
                    ops: OpLog::default(),
                    version: None,
                };
                After {
                    rebuild: true,
                    ..After::default()
                }
            }
            State::Building { ops, version: v } => {
                ops.push(op);
                if version.is_some() {
                    *v = version;
                }
                if ops.rows <= BUILD_LOG_ROWS {
                    return After::default();
                }
                *state = State::Building {
                    ops: OpLog::default(),
                    version: None,
                };
                // Every logged write is in LanceDB; a build already waiting
                // for the load to pause will read them there.
                let waiting = self.bulk.swap(true, Ordering::AcqRel);
                After {
                    rebuild: !waiting,
                    ..After::default()
                }
            }
            State::Hot(_) if unevaluable => {
                *state = State::Building {
                    ops: OpLog::default(),
                    version: None,
                };
                After {
                    rebuild: true,
                    ..After::default()
                }
            }
            State::Hot(mem) => {
                // Upserts and deletes may take rows out of the graph.
                let _graph = (!matches!(op, Op::Insert(_) | Op::Touch))
                    .then(|| self.graph.write().expect("lock"));
                apply_to(mem, op);
                if let Some(v) = version {
                    mem.version = v;
                }
                let need = mem.needed_bytes(cfg.connectivity);
                if need > mem.reserved {
                    let extra = (need - mem.reserved).max(mem.reserved / 4).max(1 << 20);
                    let fits = if mem.budget.try_take(extra) {
                        mem.reserved += extra;
                        true
                    } else {
                        // Over the budget under a trickle of writes: keep
                        // fewer bytes per row, in place. (A bulk load is
                        // rebuilt as before: a build from LanceDB is faster
                        // than folding its rows in one chunk at a time.)
                        mem.layout.keep_f32 && mem.pending.len() < super::build::BULK_PENDING && {
                            let file = shared.vector_file(&self.name, &mem.layout);
                            mem.drop_full_precision(cfg.connectivity, file)
                        }
                    };
                    if !fits {
                        // Over the budget: build again, keeping fewer bytes
                        // per row, or hand the table to LanceDB.
                        self.bulk.store(true, Ordering::Release);
                        *state = State::Building {
                            ops: OpLog::default(),
                            version: None,
                        };
                        return After {
                            rebuild: true,
                            ..After::default()
                        };
                    }
                }
                After {
                    rebuild: false,
                    fold: !mem.pending.is_empty(),
                    save: cfg.persist && mem.save_due(cfg.persist_every_writes),
                }
            }
        }
    }

    /// Drops the in-memory state and asks for a rebuild.
    pub fn invalidate(&self) -> After {
        let mut state = self.state.write().expect("lock");
        if matches!(*state, State::Lance { .. }) {
            return After::default();
        }
        *state = State::Building {
            ops: OpLog::default(),
            version: None,
        };
        After {
            rebuild: true,
            ..After::default()
        }
    }

    /// True when the table is served by LanceDB, or hot with every written
    /// row in the graph and no fold running. O(1).
    pub fn settled(&self) -> bool {
        match &*self.state.read().expect("lock") {
            State::Lance { .. } => true,
            State::Hot(mem) => mem.pending.is_empty() && !self.folding.load(Ordering::Acquire),
            State::Building { .. } => false,
        }
    }

    pub fn status(&self) -> HotStatus {
        let state = self.state.read().expect("lock");
        let mut s = HotStatus {
            table: self.name.clone(),
            serving: HotPath::Building,
            rows: 0,
            pending_rows: 0,
            unreachable_rows: 0,
            memory_bytes: 0,
            quantization: None,
            rerank: false,
            rerank_on_disk: false,
            loaded_from_disk: false,
            version: None,
            reason: None,
            hot_searches: self.hot_searches.load(Ordering::Relaxed),
            lance_searches: self.lance_searches.load(Ordering::Relaxed),
        };
        match &*state {
            State::Building { .. } => {}
            State::Lance { reason } => {
                s.serving = HotPath::Lance;
                s.reason = Some(reason.clone());
            }
            State::Hot(mem) => {
                s.serving = HotPath::Hot;
                s.rows = mem.live_rows() as u64;
                s.pending_rows = mem.pending_rows() as u64;
                s.unreachable_rows = mem.unreachable_rows() as u64;
                s.memory_bytes = {
                    let _no_adds = self.graph.read().expect("lock");
                    mem.memory_bytes()
                };
                s.quantization = Some(mem.layout.name().to_string());
                s.rerank = mem.layout.keep_f32;
                s.rerank_on_disk = mem.vectors.is_some();
                s.loaded_from_disk = mem.from_disk;
                s.version = Some(mem.version);
            }
        }
        s
    }
}

/// Applies one write to a hot state.
pub(crate) fn apply_to(mem: &mut Mem, op: Op) {
    match op {
        Op::Insert(rows) => rows.into_iter().for_each(|r| mem.add_row(r, false)),
        Op::Upsert(rows) => rows.into_iter().for_each(|r| mem.add_row(r, true)),
        Op::DeleteIds(ids) => {
            for id in ids {
                mem.remove_id(&id);
            }
        }
        Op::DeleteWhere(f) => {
            mem.remove_where(&f);
        }
        // Same rows, new version: the saved file no longer matches it.
        Op::Touch => mem.dirty += 1,
    }
}

/// Records as LanceDB returns them (typed fields normalised: floats as
/// floats, timestamps as RFC 3339), without blobs.
pub(crate) fn to_rows(schema: &TableSchema, records: &[MultimodalRecord]) -> Vec<Row> {
    records
        .iter()
        .map(|r| {
            let n = normalise_record(schema, r);
            Row::new(n.id, n.text, n.metadata, n.vector)
        })
        .collect()
}

/// A row from a record read back from LanceDB.
pub(crate) fn row_from(r: MultimodalRecord) -> Row {
    Row::new(r.id, r.text, r.metadata, r.vector)
}

/// Shared flag helper: true if this call set it.
pub(crate) fn claim(flag: &AtomicBool) -> bool {
    !flag.swap(true, Ordering::AcqRel)
}
