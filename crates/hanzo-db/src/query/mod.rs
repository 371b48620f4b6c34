//! Search requests and results, shared by every backend.

mod fusion;

pub use fusion::reciprocal_rank_fusion;

use serde::{Deserialize, Serialize};

use crate::filter::Filter;
use crate::record::MultimodalRecord;
use crate::schema::DistanceMetric;

/// When a metadata filter is applied relative to the vector search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Filter first, then search among matching rows: always returns `k`
    /// results when `k` rows match (the default).
    #[default]
    Prefilter,
    /// Search first, then drop rows that do not match: faster, may return fewer than `k`.
    Postfilter,
}

/// Which stored fields a search or get returns. `id` is always returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// Return the vector.
    pub vector: bool,
    /// Return image, audio and other blobs (they are not read otherwise).
    pub blobs: bool,
    /// Restrict the returned metadata to these keys (typed or JSON); `None` returns all.
    pub metadata_keys: Option<Vec<String>>,
}

impl Projection {
    /// Everything: vector, blobs and all metadata.
    pub fn all() -> Self {
        Self {
            vector: true,
            blobs: true,
            metadata_keys: None,
        }
    }
}

/// A search over one table: by vector, by text, or both (hybrid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Query vector.
    pub vector: Option<Vec<f32>>,
    /// Full-text query (BM25 over the `text` field).
    pub text: Option<String>,
    /// Metadata filter.
    pub filter: Option<Filter>,
    /// Number of results.
    pub k: usize,
    /// Metric; defaults to the table's.
    pub metric: Option<DistanceMetric>,
    /// IVF partitions to probe.
    pub nprobes: Option<usize>,
    /// Re-rank `k * refine_factor` candidates with full-precision vectors.
    pub refine_factor: Option<u32>,
    /// HNSW search breadth.
    pub ef: Option<usize>,
    /// Pre- or post-filtering.
    pub filter_mode: FilterMode,
    /// Returned fields.
    pub projection: Projection,
    /// Search the table as of this version (time travel).
    pub version: Option<u64>,
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self {
            vector: None,
            text: None,
            filter: None,
            k: 10,
            metric: None,
            nprobes: None,
            refine_factor: None,
            ef: None,
            filter_mode: FilterMode::Prefilter,
            projection: Projection::default(),
            version: None,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The record; fields the projection left out are empty.
    pub record: MultimodalRecord,
    /// Vector distance (smaller is closer), when the hit came from a vector search.
    pub distance: Option<f32>,
    /// Relevance score (larger is better): BM25 for text search, fused score for hybrid.
    pub score: Option<f32>,
}

/// Which index to build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IndexSpec {
    /// Let hanzo-db choose from the row count and dimension.
    Auto,
    /// IVF with product quantisation: `nlist` partitions, `pq_dims` sub-vectors.
    IvfPq {
        /// Number of IVF partitions.
        nlist: Option<u32>,
        /// Number of PQ sub-vectors (must divide the dimension).
        pq_dims: Option<u32>,
    },
    /// HNSW graph (in LanceDB: IVF_HNSW_SQ).
    Hnsw {
        /// Graph degree.
        m: Option<u32>,
        /// Build-time search breadth.
        ef_construction: Option<u32>,
    },
    /// IVF with uncompressed vectors: `nlist` partitions (pgvector's IVFFlat,
    /// LanceDB's IVF_FLAT).
    IvfFlat {
        /// Number of IVF partitions (lists).
        nlist: Option<u32>,
    },
    /// BM25 full-text index on `text`.
    FullText,
    /// Scalar index on a typed metadata field.
    Scalar {
        /// The typed field.
        column: String,
    },
}

/// A built index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    /// The index name.
    pub name: String,
    /// Kind, e.g. `IVF_PQ`, `FTS`, `BTREE`.
    pub kind: String,
    /// Indexed columns.
    pub columns: Vec<String>,
    /// Rows covered by the index.
    pub indexed_rows: Option<u64>,
    /// Rows not yet in the index (still found by flat search).
    pub unindexed_rows: Option<u64>,
}

/// One table version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Version number, increasing with every write.
    pub version: u64,
    /// Commit time, RFC 3339.
    pub timestamp: String,
    /// The operation that made it, where the engine records it.
    pub operation: Option<String>,
    /// Tags pointing at this version.
    pub tags: Vec<String>,
}

/// Facts about one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    /// Live rows.
    pub rows: u64,
    /// Current version.
    pub version: u64,
    /// Number of versions kept.
    pub versions: u64,
    /// Bytes on disk, all versions.
    pub disk_bytes: u64,
    /// Data fragments (files).
    pub fragments: u64,
    /// Indexes and their coverage.
    pub indexes: Vec<IndexInfo>,
}

/// What compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionStats {
    /// Fragments removed by merging.
    pub fragments_removed: u64,
    /// Fragments written.
    pub fragments_added: u64,
    /// Old versions deleted.
    pub versions_pruned: u64,
    /// Bytes freed.
    pub bytes_removed: u64,
}
