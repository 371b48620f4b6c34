//! Which Lance index to build for an [`IndexSpec`], and `Auto`'s choices.
//!
//! `Auto` picks from the row count: under 10,000 rows an IVF_FLAT index
//! whose partitions are all probed by default (exact results); above,
//! IVF_HNSW_SQ (an HNSW graph over 8-bit scalar-quantised vectors, one
//! partition per 100,000 rows), re-ranked with full-precision vectors.
//! Measured with `hanzo-db bench` on clustered embedding-like data, IVF_PQ
//! with refinement 10 reached only recall@10 0.65 at 100k × 384 (PQ cannot
//! separate near neighbours inside a tight cluster), while IVF_HNSW_SQ gave
//! 1.0 and built faster. An explicit IVF_PQ gets 4-float sub-vectors and
//! re-ranking of 30 × k candidates ([`refine_for`]).

use lancedb::index::Index;
use lancedb::index::scalar::{
    BTreeIndexBuilder, BitmapIndexBuilder, FtsIndexBuilder, LabelListIndexBuilder,
};
use lancedb::index::vector::{IvfFlatIndexBuilder, IvfHnswSqIndexBuilder, IvfPqIndexBuilder};

use super::distance_type;
use crate::error::{Error, Result};
use crate::query::IndexSpec;
use crate::schema::{FieldType, TableSchema};

/// Re-ranking applied to vector searches unless the request sets its own:
/// the engine fetches `k × factor` candidates by quantised distance and
/// re-ranks them with full-precision vectors (ignored by flat search). PQ
/// codes are coarse, so PQ indexes get a wider candidate set.
pub fn refine_for(pq: bool) -> u32 {
    if pq { 30 } else { 10 }
}

/// Rows below which `Auto` builds IVF_FLAT rather than IVF_PQ.
const AUTO_PQ_MIN_ROWS: usize = 10_000;

/// Lance's PQ training needs this many rows for 8-bit codebooks.
const PQ_MIN_ROWS: usize = 256;

/// IVF partitions for `rows` rows: about 4,096 rows each.
pub fn auto_nlist(rows: usize) -> u32 {
    (rows / 4096).clamp(1, 4096) as u32
}

/// PQ sub-vectors for a dimension: sub-vectors of 4 floats, or 2, or 1,
/// whichever divides the dimension.
pub fn auto_pq_dims(dim: usize) -> u32 {
    let sub = [4, 2, 1].into_iter().find(|s| dim % s == 0).unwrap_or(1);
    (dim / sub) as u32
}

/// The columns and Lance index for a spec.
pub fn lance_index(
    schema: &TableSchema,
    spec: &IndexSpec,
    rows: usize,
) -> Result<(Vec<String>, Index)> {
    let dt = distance_type(schema.metric);
    let vector = vec!["vector".to_string()];
    let need_rows = |min: usize, what: &str| {
        if rows < min {
            Err(Error::InvalidArgument(format!(
                "{what} needs at least {min} rows to train, the table has {rows}; insert more or use IndexSpec::Auto"
            )))
        } else {
            Ok(())
        }
    };
    Ok(match spec {
        IndexSpec::Auto if rows < AUTO_PQ_MIN_ROWS => {
            need_rows(1, "a vector index")?;
            let nlist = ((rows as f64).sqrt() / 4.0).clamp(1.0, 20.0) as u32;
            (
                vector,
                Index::IvfFlat(
                    IvfFlatIndexBuilder::default()
                        .distance_type(dt)
                        .num_partitions(nlist),
                ),
            )
        }
        IndexSpec::Auto => (
            vector,
            Index::IvfHnswSq(
                IvfHnswSqIndexBuilder::default()
                    .distance_type(dt)
                    .num_partitions(((rows / 100_000).max(1)) as u32),
            ),
        ),
        IndexSpec::IvfPq { nlist, pq_dims } => {
            need_rows(PQ_MIN_ROWS, "IVF_PQ")?;
            let nlist = nlist.unwrap_or_else(|| auto_nlist(rows));
            need_rows(nlist as usize, "IVF with this many partitions")?;
            (
                vector,
                Index::IvfPq(
                    IvfPqIndexBuilder::default()
                        .distance_type(dt)
                        .num_partitions(nlist)
                        .num_sub_vectors(pq_dims.unwrap_or_else(|| auto_pq_dims(schema.dimension))),
                ),
            )
        }
        IndexSpec::Hnsw { m, ef_construction } => {
            need_rows(PQ_MIN_ROWS, "HNSW (IVF_HNSW_SQ)")?;
            let mut b = IvfHnswSqIndexBuilder::default()
                .distance_type(dt)
                .num_partitions(((rows / 100_000).max(1)) as u32);
            if let Some(m) = m {
                b = b.num_edges(*m);
            }
            if let Some(ef) = ef_construction {
                b = b.ef_construction(*ef);
            }
            (vector, Index::IvfHnswSq(b))
        }
        IndexSpec::IvfFlat { nlist } => {
            need_rows(1, "a vector index")?;
            let nlist = nlist.unwrap_or_else(|| auto_nlist(rows));
            need_rows(nlist as usize, "IVF with this many partitions")?;
            (
                vector,
                Index::IvfFlat(
                    IvfFlatIndexBuilder::default()
                        .distance_type(dt)
                        .num_partitions(nlist),
                ),
            )
        }
        IndexSpec::FullText => (vec!["text".into()], Index::FTS(FtsIndexBuilder::default())),
        IndexSpec::Scalar { column } => {
            let idx = match schema.field_type(column) {
                Some(FieldType::StringList) => Index::LabelList(LabelListIndexBuilder::default()),
                Some(FieldType::Bool) => Index::Bitmap(BitmapIndexBuilder::default()),
                _ => Index::BTree(BTreeIndexBuilder::default()),
            };
            (vec![column.clone()], idx)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_parameters() {
        assert_eq!(auto_pq_dims(768), 192);
        assert_eq!(auto_pq_dims(384), 96);
        assert_eq!(auto_pq_dims(10), 5);
        assert_eq!(auto_pq_dims(7), 7);
        assert_eq!(auto_nlist(1_000_000), 244);
        assert_eq!(auto_nlist(100), 1);
    }
}
