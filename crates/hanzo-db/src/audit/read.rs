//! The entry of a read as the caller queues it: typed facts, nothing
//! formatted. A search answered in a tenth of a millisecond must not pay for
//! building JSON; the flusher thread writes the entry's JSON from these
//! facts (the same JSON the shapes of `decorator.rs` once built as
//! `serde_json::Value`s, field for field: see the tests).

use std::sync::Arc;

use super::json::{self, Obj};
use super::{Outcome, is_change_op};
use crate::filter::{CompareOp, Condition, Filter};
use crate::query::{FilterMode, Projection, SearchRequest};

/// A read to record: who, what, on which table, how it ended, the rows it
/// returned, and the request's shape.
#[derive(Debug)]
pub(crate) struct Read {
    pub(super) principal: Option<Arc<str>>,
    pub(super) op: &'static str,
    pub(super) table: Option<Box<str>>,
    pub(super) outcome: Outcome,
    pub(super) error: Option<String>,
    pub(super) rows: Option<u64>,
    pub(super) shape: ReadShape,
}

impl Read {
    /// The read `op` by `principal` on `table`, with how it ended.
    pub(super) fn new<T>(
        principal: Option<&Arc<str>>,
        op: &'static str,
        table: Option<&str>,
        shape: ReadShape,
        r: &crate::Result<T>,
    ) -> Self {
        let (outcome, error) = super::outcome_of(r);
        Self {
            principal: principal.cloned(),
            op,
            table: table.map(Box::from),
            outcome,
            error,
            rows: None,
            shape,
        }
    }

    /// See [`Event::is_change`](super::Event::is_change).
    pub(super) fn is_change(&self) -> bool {
        self.outcome == Outcome::Denied || is_change_op(self.op)
    }
}

/// The shape of a read request (in the entry's `shape` field).
#[derive(Debug)]
pub(crate) enum ReadShape {
    /// No `shape` field.
    None,
    /// `vector_search`, `text_search`, `hybrid_search`.
    Search {
        kind: &'static str,
        k: usize,
        vector_dim: Option<usize>,
        text: bool,
        filter: Option<FilterShape>,
        filter_mode: FilterMode,
        nprobes: Option<usize>,
        refine_factor: Option<u32>,
        version: Option<u64>,
        vector_returned: bool,
        blobs_returned: bool,
    },
    /// `get`.
    Get {
        ids: usize,
        version: Option<u64>,
        vector_returned: bool,
        blobs_returned: bool,
    },
    /// `scan`.
    Scan {
        version: Option<u64>,
        vector_returned: bool,
        blobs_returned: bool,
    },
    /// `count`.
    Count { filter: Option<FilterShape> },
}

impl ReadShape {
    pub(super) fn is_none(&self) -> bool {
        matches!(self, ReadShape::None)
    }

    /// Writes the shape's JSON object (not called for [`ReadShape::None`],
    /// which has none).
    pub(super) fn write_json(&self, out: &mut Vec<u8>) {
        let filter = |f: &Option<FilterShape>, out: &mut Vec<u8>| match f {
            Some(f) => f.write_json(out),
            None => out.extend_from_slice(b"null"),
        };
        let u = |v: Option<usize>| v.map(|v| v as u64);
        match self {
            ReadShape::None => out.extend_from_slice(b"null"),
            ReadShape::Search {
                kind,
                k,
                vector_dim,
                text,
                filter: f,
                filter_mode,
                nprobes,
                refine_factor,
                version,
                vector_returned,
                blobs_returned,
            } => {
                let mode = match filter_mode {
                    FilterMode::Prefilter => "prefilter",
                    FilterMode::Postfilter => "postfilter",
                };
                Obj::new(out)
                    .str("kind", kind)
                    .u64("k", *k as u64)
                    .opt_u64("vector_dim", u(*vector_dim))
                    .bool("text", *text)
                    .with("filter", |out| filter(f, out))
                    .str("filter_mode", mode)
                    .opt_u64("nprobes", u(*nprobes))
                    .opt_u64("refine_factor", refine_factor.map(u64::from))
                    .opt_u64("version", *version)
                    .bool("vector_returned", *vector_returned)
                    .bool("blobs_returned", *blobs_returned)
                    .end();
            }
            ReadShape::Get {
                ids,
                version,
                vector_returned,
                blobs_returned,
            } => Obj::new(out)
                .u64("ids", *ids as u64)
                .opt_u64("version", *version)
                .bool("vector_returned", *vector_returned)
                .bool("blobs_returned", *blobs_returned)
                .end(),
            ReadShape::Scan {
                version,
                vector_returned,
                blobs_returned,
            } => Obj::new(out)
                .opt_u64("version", *version)
                .bool("vector_returned", *vector_returned)
                .bool("blobs_returned", *blobs_returned)
                .end(),
            ReadShape::Count { filter: f } => {
                Obj::new(out).with("filter", |out| filter(f, out)).end()
            }
        }
    }

    pub(super) fn search(kind: &'static str, r: &SearchRequest) -> Self {
        ReadShape::Search {
            kind,
            k: r.k,
            vector_dim: r.vector.as_ref().map(Vec::len),
            text: r.text.is_some(),
            filter: r.filter.as_ref().map(FilterShape::of),
            filter_mode: r.filter_mode,
            nprobes: r.nprobes,
            refine_factor: r.refine_factor,
            version: r.version,
            vector_returned: r.projection.vector,
            blobs_returned: r.projection.blobs,
        }
    }

    pub(super) fn get(ids: usize, projection: &Projection, version: Option<u64>) -> Self {
        ReadShape::Get {
            ids,
            version,
            vector_returned: projection.vector,
            blobs_returned: projection.blobs,
        }
    }

    pub(super) fn scan(projection: &Projection, version: Option<u64>) -> Self {
        ReadShape::Scan {
            version,
            vector_returned: projection.vector,
            blobs_returned: projection.blobs,
        }
    }

    pub(super) fn count(filter: Option<&Filter>) -> Self {
        ReadShape::Count {
            filter: filter.map(FilterShape::of),
        }
    }
}

/// [`filter_shape`](super::filter_shape) kept as one string and the end of
/// each condition in it (two allocations, whatever the filter), written
/// out as the same JSON array of `field:$op` strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterShape {
    text: String,
    ends: Vec<usize>,
}

impl FilterShape {
    pub(super) fn of(f: &Filter) -> Self {
        let mut s = FilterShape {
            text: String::new(),
            ends: Vec::new(),
        };
        s.walk(f);
        s
    }

    fn walk(&mut self, f: &Filter) {
        match f {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|f| self.walk(f)),
            Filter::Not(f) => self.walk(f),
            Filter::Leaf(l) => {
                for (i, part) in l.path.iter().enumerate() {
                    if i > 0 {
                        self.text.push('.');
                    }
                    self.text.push_str(part);
                }
                self.text.push(':');
                self.text.push_str(op_name(&l.op));
                self.ends.push(self.text.len());
            }
        }
    }

    /// The conditions, in filter order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.text[a..b])
    }
}

/// A condition's operator as written in filters (`$eq`, `$in`, …).
fn op_name(c: &Condition) -> &'static str {
    match c {
        Condition::Compare(op, _) => match op {
            CompareOp::Eq => "$eq",
            CompareOp::Ne => "$ne",
            CompareOp::Gt => "$gt",
            CompareOp::Gte => "$gte",
            CompareOp::Lt => "$lt",
            CompareOp::Lte => "$lte",
        },
        Condition::In { negated: false, .. } => "$in",
        Condition::In { negated: true, .. } => "$nin",
        Condition::Exists(_) => "$exists",
    }
}

impl FilterShape {
    /// Writes the JSON array of the conditions.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, c) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(out, c);
        }
        out.push(b']');
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::filter_shape;

    /// The shapes as `decorator.rs` built them before reads were queued as
    /// typed facts: the reference the typed shapes must equal.
    fn search_shape_before(kind: &str, r: &SearchRequest) -> serde_json::Value {
        json!({
            "kind": kind,
            "k": r.k,
            "vector_dim": r.vector.as_ref().map(Vec::len),
            "text": r.text.is_some(),
            "filter": r.filter.as_ref().map(filter_shape),
            "filter_mode": r.filter_mode,
            "nprobes": r.nprobes,
            "refine_factor": r.refine_factor,
            "version": r.version,
            "vector_returned": r.projection.vector,
            "blobs_returned": r.projection.blobs,
        })
    }

    /// The shape's JSON, as the entry holds it.
    pub(crate) fn shape_json(shape: &ReadShape) -> serde_json::Value {
        let mut out = Vec::new();
        shape.write_json(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    fn same(typed: &ReadShape, before: serde_json::Value) {
        let mut text = Vec::new();
        typed.write_json(&mut text);
        let text = String::from_utf8(text).unwrap();
        assert_eq!(shape_json(typed), before, "{text}");
        // Byte for byte where serde_json keeps the order of `json!` (its
        // `preserve_order` feature, on in this workspace).
        if serde_json::to_string(&json!({"b": 1, "a": 2})).unwrap() == r#"{"b":1,"a":2}"# {
            assert_eq!(text, serde_json::to_string(&before).unwrap());
        }
    }

    fn filter() -> Filter {
        Filter::parse(&json!({
            "$or": [
                {"$and": [{"bucket": {"$gte": 3}}, {"author.name": {"$nin": ["x"]}}]},
                {"$not": {"tag": {"$exists": false}}},
                {"a:b.c": {"$ne": "q\"uote"}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_typed_search_shape_is_the_json_one() {
        let plain = SearchRequest {
            vector: Some(vec![0.0; 384]),
            ..SearchRequest::default()
        };
        same(
            &ReadShape::search("vector", &plain),
            search_shape_before("vector", &plain),
        );
        let tuned = SearchRequest {
            text: Some("words".into()),
            filter: Some(filter()),
            k: 3,
            nprobes: Some(9),
            refine_factor: Some(4),
            filter_mode: FilterMode::Postfilter,
            version: Some(12),
            projection: Projection::all(),
            ..plain
        };
        same(
            &ReadShape::search("hybrid", &tuned),
            search_shape_before("hybrid", &tuned),
        );
    }

    #[test]
    fn the_typed_get_scan_and_count_shapes_are_the_json_ones() {
        let p = Projection::all();
        let ids = ["a".to_string(), "b".to_string()];
        same(
            &ReadShape::get(ids.len(), &p, Some(4)),
            json!({"ids": ids.len(), "version": Some(4), "vector_returned": p.vector, "blobs_returned": p.blobs}),
        );
        let p = Projection::default();
        same(
            &ReadShape::scan(&p, None),
            json!({"version": None::<u64>, "vector_returned": p.vector, "blobs_returned": p.blobs}),
        );
        let f = filter();
        same(
            &ReadShape::count(Some(&f)),
            json!({"filter": Some(&f).map(filter_shape)}),
        );
        same(
            &ReadShape::count(None),
            json!({"filter": None::<&Filter>.map(filter_shape)}),
        );
    }

    #[test]
    fn a_filter_shape_lists_each_condition_as_field_and_operator() {
        let f = filter();
        let shape = FilterShape::of(&f);
        let typed: Vec<&str> = shape.iter().collect();
        assert_eq!(typed, filter_shape(&f));
        assert_eq!(
            typed,
            [
                "bucket:$gte",
                "author.name:$nin",
                "tag:$exists",
                "a:b.c:$ne"
            ]
        );
    }
}
