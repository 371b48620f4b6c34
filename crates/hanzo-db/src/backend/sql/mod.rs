//! What the two embedded SQL engines (SQLite + sqlite-vec, DuckDB) share:
//! the portable filter compiled to parameterised SQL ([`filter`]), the
//! encoding of typed fields, vectors and blobs into column values, the row →
//! record decoding, exact top-k in Rust, and the catalog rules.
//!
//! Both engines keep one table per hanzo-db table with the same columns:
//! `id`, `text`, `image`, `audio`, `blobs` (encoded, see [`encode_blobs`]),
//! `metadata` (JSON text of the keys that are not typed fields), then one
//! column per typed field. The vector lives in a `vec0` virtual table
//! (SQLite) or a `FLOAT[dim]` column (DuckDB).

pub(crate) mod filter;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::query::Projection;
use crate::record::{Blob, MultimodalRecord, format_timestamp, put_f32s_le, timestamp_micros};
use crate::schema::{DistanceMetric, FieldType, TableSchema};

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

/// Double-quotes an SQL identifier (table and field names are validated
/// identifiers already; quoting also keeps `-` and keywords safe).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Refuses table names the engines keep for themselves.
pub(crate) fn check_table_name(name: &str, backend: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("_hanzo") || lower.starts_with("sqlite_") || name.contains("__") {
        return Err(Error::BadSchema {
            reason: format!(
                "table name `{name}` is reserved on the {backend} backend (names starting with `_hanzo` or `sqlite_`, or holding `__`)"
            ),
        });
    }
    Ok(())
}

/// Little-endian float32 bytes of a vector (sqlite-vec's format).
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    put_f32s_le(&mut out, v);
    out
}

/// The inverse of [`vector_bytes`].
pub(crate) fn vector_from_bytes(b: &[u8]) -> Result<Vec<f32>> {
    if b.len() % 4 != 0 {
        return Err(Error::engine(
            "sqlite",
            "reading a vector",
            format!("{} bytes is not a whole number of float32", b.len()),
        ));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Vector as a DuckDB array literal bound as text (`[0.5, -1.25]`); Rust's
/// float formatting is the shortest that parses back to the same `f32`.
pub(crate) fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{x:?}"));
    }
    s.push(']');
    s
}

/// Blobs in one binary value: for each blob, the MIME type's length (u32 LE),
/// the MIME type, the data's length (u64 LE), the data. `None` when there are none.
pub(crate) fn encode_blobs(blobs: &[Blob]) -> Option<Vec<u8>> {
    if blobs.is_empty() {
        return None;
    }
    let size: usize = blobs.iter().map(|b| 12 + b.mime.len() + b.data.len()).sum();
    let mut out = Vec::with_capacity(size);
    for b in blobs {
        out.extend_from_slice(&(b.mime.len() as u32).to_le_bytes());
        out.extend_from_slice(b.mime.as_bytes());
        out.extend_from_slice(&(b.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&b.data);
    }
    Some(out)
}

/// The inverse of [`encode_blobs`].
pub(crate) fn decode_blobs(mut b: &[u8]) -> Result<Vec<Blob>> {
    let damaged = || Error::engine("sql", "reading blobs", "the blobs column is damaged");
    let mut out = Vec::new();
    while !b.is_empty() {
        let take = |b: &mut &[u8], n: usize| -> Result<Vec<u8>> {
            if b.len() < n {
                return Err(damaged());
            }
            let (head, tail) = b.split_at(n);
            *b = tail;
            Ok(head.to_vec())
        };
        let ml = u32::from_le_bytes(take(&mut b, 4)?.try_into().map_err(|_| damaged())?);
        let mime = String::from_utf8(take(&mut b, ml as usize)?).map_err(|_| damaged())?;
        let dl = u64::from_le_bytes(take(&mut b, 8)?.try_into().map_err(|_| damaged())?);
        let data = take(&mut b, usize::try_from(dl).map_err(|_| damaged())?)?;
        out.push(Blob { mime, data });
    }
    Ok(out)
}

pub(crate) use crate::record::untyped_metadata;

/// The column value of a typed field (records are validated, so types fit).
/// String lists are JSON text.
pub(crate) fn typed_value(kind: FieldType, v: Option<&Value>) -> SqlValue {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return SqlValue::Null;
    };
    match kind {
        FieldType::String => v
            .as_str()
            .map_or(SqlValue::Null, |s| SqlValue::Text(s.to_string())),
        FieldType::Int => v.as_i64().map_or(SqlValue::Null, SqlValue::Int),
        FieldType::Float => v.as_f64().map_or(SqlValue::Null, SqlValue::Real),
        FieldType::Bool => v.as_bool().map_or(SqlValue::Null, SqlValue::Bool),
        FieldType::Timestamp => timestamp_micros(v).map_or(SqlValue::Null, SqlValue::Timestamp),
        FieldType::StringList => match v.as_array() {
            Some(items) => SqlValue::Text(
                Value::Array(items.iter().filter(|i| i.is_string()).cloned().collect()).to_string(),
            ),
            None => SqlValue::Null,
        },
    }
}

/// A typed field read back, as the JSON value the record carries.
pub(crate) fn typed_json(kind: FieldType, v: SqlValue) -> Option<Value> {
    Some(match (kind, v) {
        (_, SqlValue::Null) => return None,
        (FieldType::String, SqlValue::Text(s)) => Value::from(s),
        (FieldType::Int, SqlValue::Int(i)) => Value::from(i),
        (FieldType::Float, SqlValue::Real(f)) => Value::from(f),
        (FieldType::Float, SqlValue::Int(i)) => Value::from(i as f64),
        (FieldType::Bool, SqlValue::Bool(b)) => Value::from(b),
        (FieldType::Bool, SqlValue::Int(i)) => Value::from(i != 0),
        (FieldType::Timestamp, SqlValue::Timestamp(t) | SqlValue::Int(t)) => {
            Value::from(format_timestamp(t))
        }
        (FieldType::StringList, SqlValue::Text(s)) => serde_json::from_str(&s).ok()?,
        _ => return None,
    })
}

/// One row read back from either engine, before it becomes a record.
#[derive(Debug, Default)]
pub(crate) struct RowData {
    pub id: String,
    pub vector: Option<Vec<f32>>,
    pub text: Option<String>,
    pub image: Option<Vec<u8>>,
    pub audio: Option<Vec<u8>>,
    pub blobs: Option<Vec<u8>>,
    pub metadata: Option<String>,
    /// Values of the typed fields, in schema order (`Null` when not selected).
    pub typed: Vec<SqlValue>,
}

impl RowData {
    /// The record, keeping only what the projection asks for.
    pub(crate) fn into_record(
        self,
        schema: &TableSchema,
        projection: &Projection,
    ) -> Result<MultimodalRecord> {
        let mut r = MultimodalRecord {
            id: self.id,
            text: self.text,
            ..Default::default()
        };
        if projection.vector {
            r.vector = self.vector.unwrap_or_default();
        }
        if projection.blobs {
            r.image = self.image;
            r.audio = self.audio;
            if let Some(b) = self.blobs {
                r.blobs = decode_blobs(&b)?;
            }
        }
        if let Some(m) = self.metadata {
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&m) {
                r.metadata = map;
            }
        }
        for (f, v) in schema.fields.iter().zip(self.typed) {
            if let Some(v) = typed_json(f.kind, v) {
                r.metadata.insert(f.name.clone(), v);
            }
        }
        if let Some(keys) = &projection.metadata_keys {
            r.metadata.retain(|k, _| keys.contains(k));
        }
        Ok(r)
    }
}

/// A candidate for exact search: distance, id (ties break by id, as exact
/// search does), and the engine's row key.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub distance: f32,
    pub id: String,
    pub key: i64,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.id.cmp(&other.id))
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// Keeps the `k` best candidates seen (smallest distance, then id).
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers a vector; the distance is computed exactly as the reference does.
    pub(crate) fn offer(
        &mut self,
        metric: DistanceMetric,
        query: &[f32],
        vector: &[f32],
        id: String,
        key: i64,
    ) {
        let c = Candidate {
            distance: metric.distance(query, vector),
            id,
            key,
        };
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if self.heap.peek().is_some_and(|worst| c < *worst) {
            self.heap.pop();
            self.heap.push(c);
        }
    }

    /// Best first.
    pub(crate) fn into_sorted(self) -> Vec<Candidate> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_and_vectors_round_trip() {
        let blobs = vec![
            Blob::new("video/mp4", vec![1, 2, 3, 0, 255]),
            Blob::new("", Vec::<u8>::new()),
        ];
        let enc = encode_blobs(&blobs).unwrap();
        assert_eq!(decode_blobs(&enc).unwrap(), blobs);
        assert!(decode_blobs(&enc[..enc.len() - 1]).is_err());
        assert!(encode_blobs(&[]).is_none());
        let v = vec![0.1f32, -3.5e-8, f32::MAX, 1.0 / 3.0];
        assert_eq!(vector_from_bytes(&vector_bytes(&v)).unwrap(), v);
        let text = vector_text(&v);
        let back: Vec<f32> = text
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(back, v);
    }

    #[test]
    fn top_k_keeps_the_best() {
        let mut t = TopK::new(2);
        for (i, x) in [5.0f32, 1.0, 3.0, 1.0].iter().enumerate() {
            t.offer(
                DistanceMetric::L2,
                &[0.0],
                &[*x],
                format!("id-{i}"),
                i as i64,
            );
        }
        let ids: Vec<_> = t.into_sorted().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, vec!["id-1", "id-3"]);
    }
}
