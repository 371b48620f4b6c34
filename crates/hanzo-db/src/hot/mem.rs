//! One table's in-memory state: the usearch graph, the rows it points at
//! (id, text, metadata, and full-precision vectors where kept), and the
//! rows written since that are not yet in the graph.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::config::{HotConfig, HotQuantization};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::schema::DistanceMetric;

use super::filters::FilterBits;
use super::row::{Row, RowMap};
use super::search::row_matches;
use super::vectors::VectorFile;

/// The memory all hot tables share.
#[derive(Debug)]
pub(crate) struct Budget {
    pub limit: u64,
    pub used: AtomicU64,
}

impl Budget {
    /// Takes `bytes` from the budget if they fit.
    pub fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + bytes <= self.limit).then_some(u + bytes)
            })
            .is_ok()
    }
    pub fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Graph settings of one table, fixed when its index is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Layout {
    pub dim: usize,
    pub metric: DistanceMetric,
    pub scalar: HotQuantization,
    pub keep_f32: bool,
}

impl Layout {
    /// The concrete quantisation for a metric (`Auto` resolved).
    pub fn resolve(q: HotQuantization, metric: DistanceMetric) -> HotQuantization {
        match (q, metric) {
            (HotQuantization::Auto, DistanceMetric::Cosine) => HotQuantization::I8,
            (HotQuantization::Auto, _) => HotQuantization::F16,
            // i8 scales every vector to unit length: right for cosine only.
            (HotQuantization::I8, m) if m != DistanceMetric::Cosine => HotQuantization::F16,
            (q, _) => q,
        }
    }

    pub fn scalar_bytes(&self) -> u64 {
        match self.scalar {
            HotQuantization::F32 => 4,
            HotQuantization::F16 => 2,
            HotQuantization::I8 | HotQuantization::Auto => 1,
        }
    }

    /// Estimated bytes per row in the graph: quantised vector and links.
    pub fn graph_bytes(&self, connectivity: usize) -> u64 {
        self.dim as u64 * self.scalar_bytes() + connectivity as u64 * 8 + 48
    }

    /// Estimated bytes per row: [`graph_bytes`](Self::graph_bytes), the two
    /// table slots, the full-precision copy where kept, and a typical small payload.
    pub fn row_bytes(&self, connectivity: usize) -> u64 {
        let f32s = if self.keep_f32 {
            self.dim as u64 * 4
        } else {
            0
        };
        self.graph_bytes(connectivity) + f32s + 300
    }

    /// True when vectors reach the graph as our own `i8` ([`quantize_i8`])
    /// rather than through usearch's cast.
    pub fn own_i8(&self) -> bool {
        self.scalar == HotQuantization::I8 && self.metric == DistanceMetric::Cosine
    }

    pub fn name(&self) -> &'static str {
        match self.scalar {
            HotQuantization::F32 => "f32",
            HotQuantization::F16 => "f16",
            HotQuantization::I8 | HotQuantization::Auto => "i8",
        }
    }

    /// A new, empty usearch index with room for `capacity` rows.
    pub fn new_index(&self, cfg: &HotConfig, capacity: usize) -> Result<Index> {
        let options = IndexOptions {
            dimensions: self.dim,
            metric: match self.metric {
                DistanceMetric::L2 => MetricKind::L2sq,
                DistanceMetric::Cosine => MetricKind::Cos,
                DistanceMetric::Dot => MetricKind::IP,
            },
            quantization: match self.scalar {
                HotQuantization::F32 => ScalarKind::F32,
                HotQuantization::F16 => ScalarKind::F16,
                HotQuantization::I8 | HotQuantization::Auto => ScalarKind::I8,
            },
            connectivity: cfg.connectivity,
            expansion_add: cfg.expansion_add,
            expansion_search: search_floor(cfg),
            multi: false,
        };
        let index = Index::new(&options).map_err(usearch_err)?;
        index
            .reserve_capacity_and_threads(capacity.max(64), search_threads())
            .map_err(usearch_err)?;
        Ok(index)
    }
}

/// A vector as the graph stores it, for cosine: each vector scaled so its
/// largest component is ±127, then rounded. usearch's own `f32 → i8` cast
/// scales to unit length and truncates `x × 127`: at 768 dimensions a
/// typical component becomes ±4, and recall@10 at 1M rows fell to 0.85.
/// Cosine ignores a vector's scale, so the per-vector scale needs no storing.
pub(crate) fn quantize_i8(v: &[f32]) -> Vec<i8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if !(max > 0.0 && max.is_finite()) {
        return vec![0; v.len()];
    }
    let s = 127.0 / max;
    v.iter().map(|x| (x * s).round() as i8).collect()
}

/// Adds a vector to the graph (quantised by us when `own_i8`).
pub(crate) fn graph_add(index: &Index, own_i8: bool, key: u64, v: &[f32]) -> Result<()> {
    if own_i8 {
        index.add(key, &quantize_i8(v))
    } else {
        index.add(key, v)
    }
    .map_err(usearch_err)
}

/// The graph's `count` nearest keys and distances, only keys `accept`s when given.
pub(crate) fn graph_search(
    index: &Index,
    own_i8: bool,
    query: &[f32],
    count: usize,
    accept: Option<&dyn Fn(u64) -> bool>,
) -> Result<(Vec<u64>, Vec<f32>)> {
    fn run<T: usearch::VectorType>(
        index: &Index,
        q: &[T],
        count: usize,
        accept: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<(Vec<u64>, Vec<f32>)> {
        let m = match accept {
            None => index.search(q, count),
            Some(f) => index.filtered_search(q, count, f),
        }
        .map_err(usearch_err)?;
        Ok((m.keys, m.distances))
    }
    if own_i8 {
        run(index, &quantize_i8(query), count, accept)
    } else {
        run(index, query, count, accept)
    }
}

/// The breadth the graph itself is given: the smaller of the two. usearch
/// searches with the larger of it and the count asked for, so each search
/// picks its own breadth by asking for that many results.
pub(crate) fn search_floor(cfg: &HotConfig) -> usize {
    cfg.expansion_search
        .min(cfg.filtered_expansion_search)
        .max(1)
}

/// Thread contexts reserved in every index: more than can search at once.
pub(crate) fn search_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 4 + 16).max(64)
}

pub(crate) fn usearch_err(e: impl std::fmt::Display) -> Error {
    Error::engine("usearch", "hot index", e)
}

/// The in-memory state of one table while it is served hot.
pub(crate) struct Mem {
    pub layout: Layout,
    pub index: Arc<Index>,
    /// Rows by key and keys by id.
    pub rows: RowMap,
    /// Bits of the filters searches repeat, kept in step with the rows.
    pub filters: FilterBits,
    /// Keys written since the graph was built, not yet in it (searched exactly).
    pub pending: Vec<u64>,
    /// Keys in the graph that a search for their own vector did not reach
    /// (HNSW outliers): searched exactly as well.
    pub stragglers: Vec<u64>,
    pub next_key: u64,
    /// The table version this state reflects.
    pub version: u64,
    /// True when it was loaded from the saved file rather than built.
    pub from_disk: bool,
    /// Writes since it was last saved.
    pub dirty: u64,
    /// Bytes taken from the budget for this table.
    pub reserved: u64,
    pub budget: Arc<Budget>,
    /// Full-precision vectors on disk for re-ranking, when they are not
    /// kept in memory (rows in the graph; see [`super::vectors`]). Only
    /// ever set with `layout.keep_f32` false (which never turns true again).
    pub vectors: Option<Arc<VectorFile>>,
}

impl std::fmt::Debug for Mem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mem")
            .field("layout", &self.layout)
            .field("rows", &self.rows.len())
            .field("in_graph", &self.index.size())
            .field("pending", &self.pending.len())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        self.budget.give_back(self.reserved);
    }
}

impl Mem {
    pub fn live_rows(&self) -> usize {
        self.rows.len()
    }

    /// Rows waiting to be folded into the graph. O(1): a row deleted while
    /// pending counts until the fold passes it (a status is polled often;
    /// counting live rows walked the whole list, 1M rows during a bulk load).
    pub fn pending_rows(&self) -> usize {
        self.pending.len()
    }

    /// Live rows the graph could not reach when they were added.
    pub fn unreachable_rows(&self) -> usize {
        self.stragglers
            .iter()
            .filter(|k| self.rows.contains_key(k))
            .count()
    }

    /// Stops keeping full-precision copies for re-ranking, in place: rows in
    /// the graph drop theirs; rows not yet in it and unreachable ones keep
    /// theirs (they are scored exactly). What a rebuild under a smaller
    /// budget would make, without the rebuild (which re-read the table from
    /// LanceDB and re-added every row while writes went on). The reservation
    /// is then resized to the smaller state and an eighth more; returns
    /// whether that fits the budget. The dropped vectors go to `file` first,
    /// when one is given, to re-rank from disk.
    pub fn drop_full_precision(&mut self, connectivity: usize, file: Option<VectorFile>) -> bool {
        self.layout.keep_f32 = false;
        let keep: std::collections::HashSet<u64> = self
            .pending
            .iter()
            .chain(&self.stragglers)
            .copied()
            .collect();
        let drop: Vec<u64> = self
            .rows
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !keep.contains(k))
            .collect();
        if let Some(file) = file {
            let rows = drop
                .iter()
                .filter_map(|k| self.rows.get(k).map(|r| (*k, &r.vector[..])));
            if file.write_or_warn(rows) {
                self.vectors = Some(Arc::new(file));
            }
        }
        for k in drop {
            self.rows.drop_vector(k);
        }
        let need = self.needed_bytes(connectivity);
        let want = need + need / 8;
        if want <= self.reserved {
            self.budget.give_back(self.reserved - want);
        } else if !self.budget.try_take(want - self.reserved) {
            return false;
        }
        self.reserved = want;
        true
    }

    /// Whether unsaved writes call for a save: `every` of them (0: only on
    /// close), and at least an eighth of the rows (a save rewrites the whole
    /// table: at 1M × 768, 1.1 GB for every 1,000 writes otherwise).
    pub fn save_due(&self, every: u64) -> bool {
        every > 0 && self.dirty >= every.max(self.rows.len() as u64 / 8)
    }

    /// Estimated bytes this state needs: graph and quantised vectors per
    /// row, plus the rows themselves.
    pub fn needed_bytes(&self, connectivity: usize) -> u64 {
        self.rows.len() as u64 * self.layout.graph_bytes(connectivity) + self.rows.bytes()
    }

    /// Bytes in use: the graph's resident part and the rows. usearch's own
    /// `memory_usage` also counts the untouched tails of its arenas, which
    /// double in size (mapped, but not resident): at 1M × 768, 0.25 GB.
    pub fn memory_bytes(&self) -> u64 {
        let s = self.index.memory_stats();
        let untouched = s.graph_reserved + s.vectors_reserved;
        (self.index.memory_usage().saturating_sub(untouched)) as u64
            + self.rows.bytes()
            + self.filters.bytes()
    }

    /// Adds a row (not yet in the graph). With `replace`, rows with the same id go first.
    pub fn add_row(&mut self, row: Row, replace: bool) {
        if replace {
            self.remove_id(&row.id);
        }
        let key = self.next_key;
        self.next_key += 1;
        self.insert_loaded(key, row);
        self.pending.push(key);
        self.dirty += 1;
    }

    /// Adds a row that the caller puts in the graph itself; returns its key.
    pub fn add_built(&mut self, row: Row) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.insert_loaded(key, row);
        key
    }

    /// Records a row under a known key (no graph change).
    pub fn insert_loaded(&mut self, key: u64, row: Row) {
        self.filters.added(key, &row);
        self.rows.insert(key, row);
    }

    /// Removes every row with this id; returns how many.
    pub fn remove_id(&mut self, id: &str) -> usize {
        let Some(keys) = self.rows.remove_id(id) else {
            return 0;
        };
        for &key in keys.as_slice() {
            self.filters.removed(key);
            if self.index.contains(key) {
                // A soft delete in usearch; the slot is reused by later adds.
                let _ = self.index.remove(key);
            }
        }
        self.dirty += 1;
        keys.as_slice().len()
    }

    /// Removes the rows a filter matches (the filter must be evaluable in memory).
    pub fn remove_where(&mut self, filter: &Filter) -> usize {
        let ids: Vec<Arc<str>> = self
            .rows
            .iter()
            .filter(|(_, r)| row_matches(filter, r))
            .map(|(_, r)| r.id.clone())
            .collect();
        ids.iter().map(|id| self.remove_id(id)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_i8_keeps_resolution_and_direction() {
        let v: Vec<f32> = (0..768)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
            .collect();
        let q = quantize_i8(&v);
        assert_eq!(q.iter().map(|x| x.unsigned_abs()).max(), Some(127));
        let cos = |q: &[i8]| {
            let (mut dot, mut nv, mut nq) = (0f64, 0f64, 0f64);
            for (a, b) in v.iter().zip(q) {
                dot += *a as f64 * *b as f64;
                nv += (*a as f64).powi(2);
                nq += (*b as f64).powi(2);
            }
            dot / (nv.sqrt() * nq.sqrt())
        };
        // usearch's cast: unit length, then `x × 127` truncated.
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let theirs: Vec<i8> = v.iter().map(|x| (x / norm * 127.0) as i8).collect();
        assert!(cos(&q) > 0.99999, "ours: {}", cos(&q));
        assert!(cos(&theirs) < 0.999, "usearch's: {}", cos(&theirs));
        assert_eq!(quantize_i8(&[0.0, 0.0]), [0, 0]);
        assert_eq!(quantize_i8(&[f32::NAN, 1.0]), [0, 127]);
        assert_eq!(quantize_i8(&[f32::INFINITY, 1.0]), [0, 0]);
    }
}
