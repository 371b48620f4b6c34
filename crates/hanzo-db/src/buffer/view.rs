//! The buffered rows of one table as readers see them: the latest state per
//! id (a record, or a deletion), and how that state is merged with the
//! engine's own results.
//!
//! Records are stored as the engine would return them (an Arrow round trip:
//! typed fields, timestamps and defaults exactly as a `get` would show them),
//! with the flat field map filters are evaluated on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::arrow::normalise_record;
use crate::filter::{Condition, Filter, Leaf, Scalar};
use crate::query::{Projection, SearchHit};
use crate::record::{MultimodalRecord, timestamp_micros};
use crate::schema::{DistanceMetric, FieldType, TableSchema};

/// A buffered record and the fields its filters see.
#[derive(Debug)]
pub struct Buffered {
    /// The record as the engine would return it.
    pub record: MultimodalRecord,
    /// `id`, `text`, typed fields (timestamps as microseconds) and metadata.
    fields: Map<String, Value>,
}

/// The latest buffered state of one id.
#[derive(Debug, Clone)]
pub enum Pending {
    /// The record to hold. `replace`: the engine may hold an older row with
    /// this id, which the fold removes first.
    Put {
        /// The record.
        row: Arc<Buffered>,
        /// Whether the engine may hold this id already.
        replace: bool,
        /// The log sequence number of the write (folds keep write order).
        seq: u64,
    },
    /// The id is deleted.
    Delete,
}

impl Pending {
    /// Whether the engine may hold a row with this id that this entry hides.
    pub fn masks_engine_row(&self) -> bool {
        matches!(self, Pending::Delete | Pending::Put { replace: true, .. })
    }
}

/// Buffered state by id.
pub type Overlay = HashMap<Arc<str>, Pending>;

/// Normalises records the way the engine stores them.
pub fn normalise(schema: &TableSchema, records: &[MultimodalRecord]) -> Vec<Arc<Buffered>> {
    records
        .iter()
        .map(|r| {
            let record = normalise_record(schema, r);
            let fields = filter_fields(schema, &record);
            Arc::new(Buffered { record, fields })
        })
        .collect()
}

fn timestamp_fields(schema: &TableSchema) -> impl Iterator<Item = &str> {
    schema
        .fields
        .iter()
        .filter(|f| f.kind == FieldType::Timestamp)
        .map(|f| f.name.as_str())
}

fn filter_fields(schema: &TableSchema, r: &MultimodalRecord) -> Map<String, Value> {
    let mut fields = r.metadata.clone();
    for name in timestamp_fields(schema) {
        if let Some(v) = fields.get_mut(name) {
            if let Ok(micros) = timestamp_micros(v) {
                *v = Value::from(micros);
            }
        }
    }
    fields.insert("id".into(), Value::from(r.id.clone()));
    fields.insert(
        "text".into(),
        r.text.clone().map(Value::from).unwrap_or(Value::Null),
    );
    fields
}

/// A filter whose comparisons on timestamp fields use microseconds, as the
/// engine compares them. Values that are not timestamps are left as they are
/// (the engine rejects such a filter, and its error is what the caller sees).
pub fn normalise_filter(schema: &TableSchema, f: &Filter) -> Filter {
    let ts: HashSet<&str> = timestamp_fields(schema).collect();
    if ts.is_empty() {
        return f.clone();
    }
    fn walk(f: &Filter, ts: &HashSet<&str>) -> Filter {
        match f {
            Filter::And(v) => Filter::And(v.iter().map(|f| walk(f, ts)).collect()),
            Filter::Or(v) => Filter::Or(v.iter().map(|f| walk(f, ts)).collect()),
            Filter::Not(f) => Filter::Not(Box::new(walk(f, ts))),
            Filter::Leaf(leaf) if leaf.path.len() == 1 && ts.contains(leaf.path[0].as_str()) => {
                let conv = |s: &Scalar| match timestamp_micros(&s.to_json()) {
                    Ok(m) => Scalar::Int(m),
                    Err(_) => s.clone(),
                };
                let op = match &leaf.op {
                    Condition::Compare(op, s) => Condition::Compare(*op, conv(s)),
                    Condition::In { values, negated } => Condition::In {
                        values: values.iter().map(conv).collect(),
                        negated: *negated,
                    },
                    other => other.clone(),
                };
                Filter::Leaf(Leaf {
                    path: leaf.path.clone(),
                    op,
                })
            }
            other => other.clone(),
        }
    }
    walk(f, &ts)
}

impl Buffered {
    /// Whether the (normalised) filter matches.
    pub fn matches(&self, filter: Option<&Filter>) -> bool {
        filter.is_none_or(|f| f.matches(&self.fields))
    }

    /// The record with only the projected fields, as the engine returns it.
    pub fn project(&self, p: &Projection) -> MultimodalRecord {
        let r = &self.record;
        let mut metadata = r.metadata.clone();
        if let Some(keys) = &p.metadata_keys {
            metadata.retain(|k, _| keys.contains(k));
        }
        MultimodalRecord {
            id: r.id.clone(),
            vector: if p.vector {
                r.vector.clone()
            } else {
                Vec::new()
            },
            text: r.text.clone(),
            image: if p.blobs { r.image.clone() } else { None },
            audio: if p.blobs { r.audio.clone() } else { None },
            blobs: if p.blobs { r.blobs.clone() } else { Vec::new() },
            metadata,
        }
    }
}

/// Iterates a view: `top` (newer) over `below` (older, being folded).
pub fn view_iter<'a>(
    top: &'a Overlay,
    below: Option<&'a Overlay>,
) -> impl Iterator<Item = (&'a Arc<str>, &'a Pending)> + 'a {
    top.iter().chain(
        below
            .into_iter()
            .flat_map(move |b| b.iter().filter(move |(id, _)| !top.contains_key(&***id))),
    )
}

/// Looks an id up in a view.
pub fn view_get<'a>(top: &'a Overlay, below: Option<&'a Overlay>, id: &str) -> Option<&'a Pending> {
    top.get(id).or_else(|| below.and_then(|b| b.get(id)))
}

/// A buffered search candidate.
pub struct Candidate {
    /// Its distance to the query.
    pub distance: f32,
    /// The row.
    pub row: Arc<Buffered>,
}

/// The `k` nearest buffered rows matching `filter`, best first.
pub fn nearest<'a>(
    rows: impl Iterator<Item = &'a Arc<Buffered>>,
    query: &[f32],
    metric: DistanceMetric,
    filter: Option<&Filter>,
    k: usize,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for row in rows {
        let d = metric.distance(query, &row.record.vector);
        if out.len() == k && out.last().is_some_and(|c| c.distance <= d) {
            continue;
        }
        if !row.matches(filter) {
            continue;
        }
        let at = out.partition_point(|c| c.distance <= d);
        out.insert(
            at,
            Candidate {
                distance: d,
                row: row.clone(),
            },
        );
        out.truncate(k);
    }
    out
}

/// Merges buffered candidates with engine hits (those whose id the view
/// holds removed), best first, at most `k`.
pub fn merge_hits(
    buffered: Vec<Candidate>,
    engine: Vec<SearchHit>,
    masked: &HashSet<Arc<str>>,
    projection: &Projection,
    k: usize,
) -> Vec<SearchHit> {
    let mut all: Vec<SearchHit> = engine
        .into_iter()
        .filter(|h| !masked.contains(h.record.id.as_str()))
        .collect();
    all.extend(buffered.into_iter().map(|c| SearchHit {
        record: c.row.project(projection),
        distance: Some(c.distance),
        score: None,
    }));
    all.sort_by(|a, b| {
        a.distance
            .unwrap_or(f32::MAX)
            .total_cmp(&b.distance.unwrap_or(f32::MAX))
    });
    all.truncate(k);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        TableSchema::new(2)
            .field("at", FieldType::Timestamp)
            .field("score", FieldType::Float)
    }

    #[test]
    fn normalised_rows_look_like_engine_rows() {
        let rec = MultimodalRecord::new("a", vec![1.0, 2.0])
            .with_metadata("at", "2024-01-02T00:00:00+02:00")
            .with_metadata("score", 3)
            .with_metadata("other", serde_json::json!({"x": 1}));
        let rows = normalise(&schema(), &[rec]);
        let r = &rows[0].record;
        assert_eq!(r.metadata["at"], "2024-01-01T22:00:00Z");
        assert_eq!(r.metadata["score"], 3.0);
        let f = Filter::parse(&serde_json::json!({
            "at": {"$gte": "2024-01-01T21:00:00Z"}, "score": {"$gt": 2}, "other.x": 1, "id": "a"
        }))
        .unwrap();
        assert!(rows[0].matches(Some(&normalise_filter(&schema(), &f))));
        let miss =
            Filter::parse(&serde_json::json!({"at": {"$gt": "2024-01-01T22:00:00Z"}})).unwrap();
        assert!(!rows[0].matches(Some(&normalise_filter(&schema(), &miss))));
    }

    #[test]
    fn nearest_keeps_the_best_k_in_order() {
        let recs: Vec<_> = (0..10)
            .map(|i| MultimodalRecord::new(format!("r{i}"), vec![i as f32, 0.0]))
            .collect();
        let rows = normalise(&TableSchema::new(2), &recs);
        let got = nearest(rows.iter().rev(), &[3.2, 0.0], DistanceMetric::L2, None, 3);
        let ids: Vec<_> = got.iter().map(|c| c.row.record.id.as_str()).collect();
        assert_eq!(ids, ["r3", "r4", "r2"]);
    }
}
