//! Searching one table's in-memory state: the graph (filtered during the
//! walk), exact search over rows not yet in it, and re-ranking with
//! full-precision vectors.

use serde_json::Value;

use crate::config::HotConfig;
use crate::error::Result;
use crate::filter::{CompareOp, Condition, Filter, Leaf, Scalar, leaf_matches};
use crate::query::{Projection, SearchHit, SearchRequest};
use crate::record::MultimodalRecord;
use crate::schema::{FieldType, TableSchema};

use super::mem::{Mem, graph_search};
use super::row::Row;
use super::vectors::VectorFile;

/// True when every leaf of the filter can be evaluated on the in-memory
/// copy with exactly LanceDB's semantics. Anything else (timestamps, type
/// mismatches LanceDB reports as errors, nested keys of typed fields) is
/// left to LanceDB.
pub(crate) fn evaluable(filter: &Filter, schema: &TableSchema) -> bool {
    filter
        .leaves()
        .into_iter()
        .all(|leaf| leaf_evaluable(leaf, schema))
}

fn leaf_evaluable(leaf: &Leaf, schema: &TableSchema) -> bool {
    let first = leaf.path[0].as_str();
    let kind = match first {
        "id" | "text" => Some(FieldType::String),
        _ => schema.field_type(first),
    };
    let Some(kind) = kind else {
        // A path into the JSON metadata: LanceDB evaluates it with the same `leaf_matches`.
        return true;
    };
    if leaf.path.len() > 1 {
        return false;
    }
    let scalars: Vec<&Scalar> = match &leaf.op {
        Condition::Compare(op, s) => {
            if kind == FieldType::StringList && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return false;
            }
            vec![s]
        }
        Condition::In { values, .. } => values.iter().collect(),
        Condition::Exists(_) => Vec::new(),
    };
    scalars.into_iter().all(|s| match kind {
        FieldType::String | FieldType::StringList => matches!(s, Scalar::Str(_)),
        FieldType::Int | FieldType::Float => matches!(s, Scalar::Int(_) | Scalar::Float(_)),
        FieldType::Bool => matches!(s, Scalar::Bool(_)),
        FieldType::Timestamp => false,
    })
}

/// Evaluates a filter on an in-memory row (`id` and `text` beside the metadata).
pub(crate) fn row_matches(filter: &Filter, row: &Row) -> bool {
    match filter {
        Filter::And(v) => v.iter().all(|f| row_matches(f, row)),
        Filter::Or(v) => v.iter().any(|f| row_matches(f, row)),
        Filter::Not(f) => !row_matches(f, row),
        Filter::Leaf(leaf) => {
            let owned: Value;
            let mut cur = match leaf.path[0].as_str() {
                "id" => {
                    owned = Value::String(row.id.to_string());
                    Some(&owned)
                }
                "text" => {
                    owned = row
                        .text
                        .as_ref()
                        .map_or(Value::Null, |t| Value::String(t.to_string()));
                    Some(&owned)
                }
                key => row.meta.get(key),
            };
            for key in &leaf.path[1..] {
                cur = cur.and_then(|v| v.get(key));
            }
            leaf_matches(&leaf.op, cur)
        }
    }
}

/// The `k` best keys with their distances, best first.
pub(crate) fn nearest(
    mem: &Mem,
    cfg: &HotConfig,
    query: &[f32],
    k: usize,
    filter: Option<&Filter>,
) -> Result<Vec<(u64, f32)>> {
    let metric = mem.layout.metric;
    // A filter searches repeat is a bit per key (see `filters`).
    let bits = filter.and_then(|f| mem.filters.lookup(f, &mem.rows));
    let accept = |key: u64| match &bits {
        Some(bits) => bits.get(key),
        None => mem
            .rows
            .get(&key)
            .is_some_and(|r| filter.is_none_or(|f| row_matches(f, r))),
    };
    let in_graph = mem.index.size();
    let mut out: Vec<(u64, f32)> = if in_graph < cfg.exact_below.max(1) {
        exact(mem, query, filter, true)
    } else {
        // Candidates for re-ranking, where full-precision vectors are kept
        // in memory. From disk, the best `rerank` of those the search's own
        // breadth finds (a filtered search's is smaller: raising it to
        // `rerank` cost more than the reads).
        let disk = mem.vectors.as_deref();
        let rerank = (k * cfg.rerank_factor.max(1)).max(k);
        let want = match mem.layout.keep_f32 {
            true => rerank,
            false => k,
        };
        // The breadth of this search (see `search_floor`): a filter's
        // selectivity, once known, scales it down.
        let want = want.max(match &bits {
            Some(bits) => {
                let s = bits.ones() as f64 / mem.rows.len().max(1) as f64;
                let ef = (cfg.expansion_search as f64 * s).ceil() as usize;
                let least = cfg.filtered_expansion_search.min(cfg.expansion_search);
                ef.clamp(least, cfg.expansion_search)
            }
            None => cfg.expansion_search,
        });
        let accept = filter.map(|_| &accept as &dyn Fn(u64) -> bool);
        let (keys, dist) = graph_search(&mem.index, mem.layout.own_i8(), query, want, accept)?;
        let mut found: Vec<(u64, f32)> = keys
            .into_iter()
            .zip(dist)
            .filter(|(key, _)| mem.rows.contains_key(key))
            .collect();
        if filter.is_some() && found.len() < want.min(mem.rows.len()) {
            // The walk found fewer matches than it was asked for: the filter
            // is selective, so the matching rows are few; search them exactly.
            found = exact(mem, query, filter, true);
        } else if mem.layout.keep_f32 {
            for (key, d) in &mut found {
                if let Some(row) = mem.rows.get(key) {
                    *d = metric.distance(query, &row.vector);
                }
            }
        }
        if let Some(file) = disk {
            rerank_from_disk(mem, file, query, &mut found, rerank);
        }
        found
    };
    // Rows written since the graph was built, and outliers it cannot reach, exactly.
    out.extend(exact(mem, query, filter, false));
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    // A row being folded can be found both in the graph and as pending.
    let mut seen = std::collections::HashSet::with_capacity(out.len());
    out.retain(|(key, _)| seen.insert(*key));
    out.truncate(k);
    Ok(out)
}

/// Re-scores the best `count` candidates with their full-precision vectors
/// from disk and drops the rest (their distances are the graph's, coarser).
/// A row whose copy is still in memory (unreachable ones) uses that; one
/// whose slot cannot be read keeps the graph's distance.
fn rerank_from_disk(
    mem: &Mem,
    file: &VectorFile,
    query: &[f32],
    found: &mut Vec<(u64, f32)>,
    count: usize,
) {
    let metric = mem.layout.metric;
    found.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    found.truncate(count);
    let mut from_disk = Vec::with_capacity(found.len());
    for (i, (key, d)) in found.iter_mut().enumerate() {
        match mem.rows.get(key) {
            Some(row) if row.vector.len() == query.len() => {
                *d = metric.distance(query, &row.vector);
            }
            _ => from_disk.push(i),
        }
    }
    let keys: Vec<u64> = from_disk.iter().map(|&i| found[i].0).collect();
    file.read_many(&keys, |j, v| {
        found[from_disk[j]].1 = metric.distance(query, v)
    });
}

/// Brute force over the rows in the graph (`in_graph`) or the pending ones.
fn exact(mem: &Mem, query: &[f32], filter: Option<&Filter>, in_graph: bool) -> Vec<(u64, f32)> {
    let metric = mem.layout.metric;
    let mut buf = vec![0f32; mem.layout.dim];
    let mut score = |key: u64, row: &Row| -> f32 {
        if row.vector.len() == query.len() {
            metric.distance(query, &row.vector)
        } else {
            // Not kept at full precision: the graph's copy, de-quantised.
            match mem.index.get(key, &mut buf) {
                Ok(n) if n > 0 => metric.distance(query, &buf),
                _ => f32::INFINITY,
            }
        }
    };
    let ok = |row: &Row| filter.is_none_or(|f| row_matches(f, row));
    if in_graph {
        let pending: std::collections::HashSet<u64> = mem.pending.iter().copied().collect();
        mem.rows
            .iter()
            .filter(|(key, row)| !pending.contains(key) && ok(row))
            .map(|(key, row)| (*key, score(*key, row)))
            .collect()
    } else {
        mem.pending
            .iter()
            .chain(&mem.stragglers)
            .filter_map(|key| mem.rows.get(key).map(|row| (*key, row)))
            .filter(|(_, row)| ok(row))
            .map(|(key, row)| (key, score(key, row)))
            .collect()
    }
}

/// True when the hit can be built from memory alone (no blobs asked for,
/// and the vector, if asked for, is kept at full precision).
pub(crate) fn served_from_memory(mem: &Mem, p: &Projection) -> bool {
    !p.blobs && (!p.vector || mem.layout.keep_f32)
}

/// A search hit from an in-memory row, shaped by the projection as LanceDB shapes it.
pub(crate) fn hit(row: &Row, distance: f32, p: &Projection) -> SearchHit {
    let meta = row
        .meta
        .iter()
        .filter(|(k, _)| {
            p.metadata_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|w| w.as_str() == *k))
        })
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    SearchHit {
        record: MultimodalRecord {
            id: row.id.to_string(),
            vector: if p.vector {
                row.vector.to_vec()
            } else {
                Vec::new()
            },
            text: row.text.as_ref().map(|t| t.to_string()),
            metadata: meta,
            ..MultimodalRecord::default()
        },
        distance: Some(distance),
        score: None,
    }
}

/// Whether a request can be served by the hot path at all (the filter is
/// checked separately, against the schema).
pub(crate) fn eligible(req: &SearchRequest, schema: &TableSchema) -> bool {
    req.vector.is_some()
        && req.version.is_none()
        && req.metric.is_none_or(|m| m == schema.metric)
        && req.filter.as_ref().is_none_or(|f| evaluable(f, schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row() -> Row {
        Row::new(
            "a".into(),
            Some("hello".into()),
            json!({"kind": "x", "year": 2020, "info": {"n": 3}, "tags": ["p", "q"]})
                .as_object()
                .unwrap()
                .clone(),
            vec![],
        )
    }

    #[test]
    fn filters_on_rows_and_evaluability() {
        let schema = TableSchema::new(2)
            .field("kind", FieldType::String)
            .field("year", FieldType::Int)
            .field("at", FieldType::Timestamp)
            .field("tags", FieldType::StringList);
        let f = |v: serde_json::Value| Filter::parse(&v).unwrap();
        let r = row();
        assert!(row_matches(&f(json!({"id": "a", "kind": "x"})), &r));
        assert!(row_matches(&f(json!({"text": {"$gte": "h"}})), &r));
        assert!(row_matches(&f(json!({"info.n": {"$gt": 2}})), &r));
        assert!(row_matches(&f(json!({"tags": "q"})), &r));
        assert!(!row_matches(&f(json!({"$not": {"year": 2020}})), &r));
        assert!(evaluable(&f(json!({"kind": "x", "info.n": 1})), &schema));
        assert!(!evaluable(
            &f(json!({"at": {"$gt": "2024-01-01T00:00:00Z"}})),
            &schema
        ));
        assert!(!evaluable(&f(json!({"year": "2020"})), &schema));
        assert!(!evaluable(&f(json!({"tags": {"$gt": "a"}})), &schema));
        assert!(!evaluable(&f(json!({"kind.x": "a"})), &schema));
    }
}
