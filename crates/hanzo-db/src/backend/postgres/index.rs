//! Index specs → pgvector and PostgreSQL indexes, and per-search settings.
//!
//! - [`IndexSpec::Hnsw`] → pgvector HNSW (`m`, `ef_construction`).
//! - [`IndexSpec::IvfFlat`] → pgvector IVFFlat (`lists`; default rows/1000,
//!   at least 1), probed `sqrt(lists)` by default.
//! - [`IndexSpec::Auto`] → HNSW with m = 16, ef_construction = 64, searched
//!   with `ef_search` = max(100, k): pgvector's recommended index, built
//!   without training and kept up to date on every write.
//! - [`IndexSpec::IvfPq`] → `Unsupported`: pgvector has no product quantisation.
//! - [`IndexSpec::Scalar`] → B-tree on a typed column (GIN for string lists).
//! - [`IndexSpec::FullText`] → GIN over `to_tsvector('simple', text)`.
//!
//! The operator class follows the table's metric (`vector_l2_ops`,
//! `vector_cosine_ops`, `vector_ip_ops`), so searches in the table's metric
//! use the index and searches in another metric scan exactly.
//! A table has at most one vector index: building one replaces the other.

use serde::{Deserialize, Serialize};

use super::sql::{derived_name, opclass, quote};
use crate::error::{Error, Result};
use crate::query::{FilterMode, IndexSpec, SearchRequest};
use crate::schema::{FieldType, TableSchema};

/// pgvector's largest dimension for an indexed `vector` column.
pub const MAX_INDEXED_DIMENSION: usize = 2000;

/// The vector index a table has, kept in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VectorIndex {
    /// HNSW graph.
    Hnsw {
        /// Graph degree.
        m: u32,
        /// Build-time breadth.
        ef_construction: u32,
    },
    /// IVFFlat.
    IvfFlat {
        /// Number of lists.
        lists: u32,
    },
}

/// Default HNSW search breadth (pgvector's own default, 40, misses too many
/// neighbours at k = 10 on embedding-like data).
const DEFAULT_EF_SEARCH: usize = 100;

/// The name of a table's vector index.
pub fn vector_index_name(table: &str) -> String {
    derived_name(table, "vector_idx")
}

/// The statements that build an index, and the vector index it makes (if it is one).
pub fn index_ddl(
    qualified: &str,
    table: &str,
    schema: &TableSchema,
    spec: &IndexSpec,
    rows: u64,
    backend: &str,
) -> Result<(Vec<String>, Option<VectorIndex>)> {
    let vector_index = match spec {
        IndexSpec::Auto => Some(VectorIndex::Hnsw {
            m: 16,
            ef_construction: 64,
        }),
        IndexSpec::Hnsw { m, ef_construction } => {
            let m = m.unwrap_or(16);
            let ef = ef_construction.unwrap_or(64);
            if !(2..=100).contains(&m) || !(4..=1000).contains(&ef) || ef < 2 * m {
                return Err(Error::InvalidArgument(format!(
                    "HNSW needs 2 <= m <= 100 and 2m <= ef_construction <= 1000, got m = {m}, ef_construction = {ef}"
                )));
            }
            Some(VectorIndex::Hnsw {
                m,
                ef_construction: ef,
            })
        }
        IndexSpec::IvfFlat { nlist } => {
            let lists = nlist.unwrap_or_else(|| (rows / 1000).clamp(1, 32_768) as u32);
            if !(1..=32_768).contains(&lists) {
                return Err(Error::InvalidArgument(format!(
                    "IVFFlat needs 1 to 32768 lists, got {lists}"
                )));
            }
            Some(VectorIndex::IvfFlat { lists })
        }
        IndexSpec::IvfPq { .. } => {
            return Err(Error::Unsupported {
                feature: "IVF_PQ (pgvector has no product quantisation; use IndexSpec::Hnsw, \
                          IndexSpec::IvfFlat or IndexSpec::Auto)"
                    .into(),
                backend: backend.into(),
            });
        }
        IndexSpec::FullText => {
            let name = quote(&derived_name(table, "text_idx"));
            return Ok((
                vec![format!(
                    "CREATE INDEX IF NOT EXISTS {name} ON {qualified} \
                     USING gin (to_tsvector('simple', coalesce(text, '')))"
                )],
                None,
            ));
        }
        IndexSpec::Scalar { column } => {
            if column == "id" {
                return Ok((Vec::new(), None)); // the primary key's index
            }
            let kind = schema.field_type(column).ok_or_else(|| {
                Error::InvalidArgument(format!("`{column}` is not a typed field of `{table}`"))
            })?;
            let method = if kind == FieldType::StringList {
                "gin"
            } else {
                "btree"
            };
            let name = quote(&derived_name(table, &format!("{column}_idx")));
            return Ok((
                vec![format!(
                    "CREATE INDEX IF NOT EXISTS {name} ON {qualified} USING {method} ({})",
                    quote(column)
                )],
                None,
            ));
        }
    };
    let vi = vector_index.expect("vector specs set it");
    if schema.dimension > MAX_INDEXED_DIMENSION {
        return Err(Error::Unsupported {
            feature: format!(
                "vector indexes over {MAX_INDEXED_DIMENSION} dimensions (the table has {}; search stays exact)",
                schema.dimension
            ),
            backend: backend.into(),
        });
    }
    let name = quote(&vector_index_name(table));
    let ops = opclass(schema.metric);
    let create = match vi {
        VectorIndex::Hnsw { m, ef_construction } => format!(
            "CREATE INDEX {name} ON {qualified} USING hnsw (vector {ops}) \
             WITH (m = {m}, ef_construction = {ef_construction})"
        ),
        VectorIndex::IvfFlat { lists } => format!(
            "CREATE INDEX {name} ON {qualified} USING ivfflat (vector {ops}) WITH (lists = {lists})"
        ),
    };
    Ok((
        vec![
            "SET LOCAL maintenance_work_mem = '512MB'".into(),
            format!("DROP INDEX IF EXISTS {}", schema_of(qualified, &name)),
            create,
        ],
        Some(vi),
    ))
}

/// `"schema"."index"` for an index beside `qualified` (`"schema"."table"`).
fn schema_of(qualified: &str, index: &str) -> String {
    let schema = qualified.split('.').next().unwrap_or_default();
    format!("{schema}.{index}")
}

/// `SET` statements that make a search over this index behave as the
/// request asks: breadth (`ef`, at least k), probes (`nprobes`), and, for
/// pre-filtering, pgvector's iterative scan so that a filter still yields k
/// rows when k match.
pub fn search_settings(index: Option<VectorIndex>, req: &SearchRequest) -> Option<String> {
    let iterate = req.filter_mode == FilterMode::Prefilter;
    Some(match index? {
        VectorIndex::Hnsw { .. } => {
            let ef = req
                .ef
                .unwrap_or(DEFAULT_EF_SEARCH)
                .max(req.k)
                .clamp(1, 1000);
            format!(
                "SET hnsw.ef_search = {ef}; SET hnsw.iterative_scan = {}",
                if iterate { "strict_order" } else { "off" }
            )
        }
        VectorIndex::IvfFlat { lists } => {
            let probes = req
                .nprobes
                .unwrap_or_else(|| (lists as f64).sqrt().ceil() as usize)
                .clamp(1, lists as usize);
            format!(
                "SET ivfflat.probes = {probes}; SET ivfflat.iterative_scan = {}",
                if iterate { "relaxed_order" } else { "off" }
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DistanceMetric;

    #[test]
    fn opclass_follows_metric_and_pq_is_unsupported() {
        for (metric, ops) in [
            (DistanceMetric::L2, "vector_l2_ops"),
            (DistanceMetric::Cosine, "vector_cosine_ops"),
            (DistanceMetric::Dot, "vector_ip_ops"),
        ] {
            let s = TableSchema::new(8).metric(metric);
            let (sql, vi) =
                index_ddl("\"s\".\"t\"", "t", &s, &IndexSpec::Auto, 10, "postgres").unwrap();
            assert!(sql[2].contains(ops) && sql[2].contains("hnsw"), "{sql:?}");
            assert!(matches!(vi, Some(VectorIndex::Hnsw { m: 16, .. })));
        }
        let s = TableSchema::new(8);
        let pq = IndexSpec::IvfPq {
            nlist: None,
            pq_dims: None,
        };
        assert!(matches!(
            index_ddl("\"s\".\"t\"", "t", &s, &pq, 10, "postgres"),
            Err(Error::Unsupported { .. })
        ));
        let (sql, _) = index_ddl(
            "\"s\".\"t\"",
            "t",
            &s,
            &IndexSpec::IvfFlat { nlist: None },
            5000,
            "postgres",
        )
        .unwrap();
        assert!(sql[2].contains("lists = 5"), "{sql:?}");
    }
}
