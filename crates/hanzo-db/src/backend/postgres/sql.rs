//! The table layout in PostgreSQL, and records to and from SQL values.
//!
//! One PostgreSQL table per hanzo-db table:
//!
//! | column       | type            | holds                                  |
//! |--------------|-----------------|----------------------------------------|
//! | `id`         | `text` PK       | the record id                          |
//! | `vector`     | `vector(dim)`   | the embedding (pgvector)               |
//! | `text`       | `text`          | the text                               |
//! | `image`      | `bytea`         | image bytes                            |
//! | `audio`      | `bytea`         | audio bytes                            |
//! | `blob_mimes` | `text[]`        | MIME types of the other blobs          |
//! | `blob_data`  | `bytea[]`       | their bytes, in the same order         |
//! | `metadata`   | `jsonb`         | metadata keys that are not typed fields|
//! | one per typed field | `text`, `bigint`, `double precision`, `boolean`, `timestamptz`, `text[]` |
//!
//! Identifiers are validated names (ASCII letters, digits, `_`, `-`) and are
//! always double-quoted; values are always bound parameters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{Error, Result};
use crate::query::Projection;
use crate::record::{Blob, MultimodalRecord, format_timestamp, timestamp_micros, untyped_metadata};
use crate::schema::{DistanceMetric, FieldType, TableSchema};

/// A bound value.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// Bound values of one statement, numbered `$1`, `$2`, … in push order.
#[derive(Default)]
pub struct Params {
    values: Vec<Param>,
}

impl Params {
    /// Binds a value; returns its placeholder (`$n`).
    pub fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(v));
        format!("${}", self.values.len())
    }

    /// The values, as the driver takes them.
    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    /// How many are bound.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.values.len()
    }
}

/// PostgreSQL's limit on identifier length, in bytes.
const MAX_IDENT: usize = 63;

/// A double-quoted identifier. Names reaching here are validated
/// (no quotes); the check keeps it that way.
pub fn quote(name: &str) -> String {
    assert!(
        !name.contains('"') && !name.contains('\0'),
        "identifiers are validated before they reach SQL"
    );
    format!("\"{name}\"")
}

/// A relation name derived from `base`, at most 63 bytes: `base_suffix`,
/// or a shortened base plus a hash when that is too long.
pub fn derived_name(base: &str, suffix: &str) -> String {
    let full = if suffix.is_empty() {
        base.to_string()
    } else {
        format!("{base}_{suffix}")
    };
    if full.len() <= MAX_IDENT {
        return full;
    }
    use sha2::Digest;
    let hash = hex::encode(&sha2::Sha256::digest(full.as_bytes())[..4]);
    let keep = MAX_IDENT - suffix.len() - hash.len() - 2;
    format!("{}_{hash}_{suffix}", &base[..keep])
}

/// The SQL type of a typed field.
pub fn sql_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String => "text",
        FieldType::Int => "bigint",
        FieldType::Float => "double precision",
        FieldType::Bool => "boolean",
        FieldType::Timestamp => "timestamptz",
        FieldType::StringList => "text[]",
    }
}

/// `CREATE TABLE` for a schema.
pub fn create_table_sql(qualified: &str, schema: &TableSchema) -> String {
    let mut cols = vec![
        "id text PRIMARY KEY".to_string(),
        format!("vector vector({}) NOT NULL", schema.dimension),
        "text text".into(),
        "image bytea".into(),
        "audio bytea".into(),
        "blob_mimes text[]".into(),
        "blob_data bytea[]".into(),
        "metadata jsonb".into(),
    ];
    for f in &schema.fields {
        cols.push(format!("{} {}", quote(&f.name), sql_type(f.kind)));
    }
    format!("CREATE TABLE {qualified} ({})", cols.join(", "))
}

/// Columns written for every record, in the order [`bind_record`] binds them.
pub fn write_columns(schema: &TableSchema) -> Vec<String> {
    let mut cols: Vec<String> = [
        "id",
        "vector",
        "text",
        "image",
        "audio",
        "blob_mimes",
        "blob_data",
        "metadata",
    ]
    .map(String::from)
    .to_vec();
    cols.extend(schema.fields.iter().map(|f| quote(&f.name)));
    cols
}

/// Binds one record's values; returns the `( … )` row of placeholders.
pub fn bind_record(schema: &TableSchema, r: &MultimodalRecord, p: &mut Params) -> Result<String> {
    let mut ph = vec![
        format!("{}::text", p.push(r.id.clone())),
        format!(
            "{}::vector",
            p.push(pgvector::Vector::from(r.vector.clone()))
        ),
        format!("{}::text", p.push(r.text.clone())),
        format!("{}::bytea", p.push(r.image.clone())),
        format!("{}::bytea", p.push(r.audio.clone())),
    ];
    let (mimes, data): (Option<Vec<String>>, Option<Vec<Vec<u8>>>) = if r.blobs.is_empty() {
        (None, None)
    } else {
        (
            Some(r.blobs.iter().map(|b| b.mime.clone()).collect()),
            Some(r.blobs.iter().map(|b| b.data.clone()).collect()),
        )
    };
    ph.push(format!("{}::text[]", p.push(mimes)));
    ph.push(format!("{}::bytea[]", p.push(data)));
    let meta = untyped_metadata(schema, r);
    ph.push(format!("{}::text::jsonb", p.push(meta)));
    for f in &schema.fields {
        let v = r.metadata.get(&f.name).filter(|v| !v.is_null());
        let bad = |reason: String| Error::BadRecord {
            id: Some(r.id.clone()),
            reason: format!("metadata `{}`: {reason}", f.name),
        };
        let placeholder = match f.kind {
            FieldType::String => p.push(v.and_then(Value::as_str).map(str::to_string)),
            FieldType::Int => p.push(v.and_then(Value::as_i64)),
            FieldType::Float => p.push(v.and_then(Value::as_f64)),
            FieldType::Bool => p.push(v.and_then(Value::as_bool)),
            FieldType::Timestamp => {
                let t = v
                    .map(|v| timestamp_micros(v).map(micros_to_time))
                    .transpose()
                    .map_err(bad)?;
                p.push(t)
            }
            FieldType::StringList => p.push(v.and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })),
        };
        ph.push(format!("{placeholder}::{}", sql_type(f.kind)));
    }
    Ok(format!("({})", ph.join(", ")))
}

/// Microseconds since the epoch as a `SystemTime` (bound as `timestamptz`).
pub fn micros_to_time(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

fn time_to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// The select list for a projection (never blobs or vectors unless asked).
pub fn select_list(schema: &TableSchema, p: &Projection) -> String {
    let mut cols = vec![
        "id".to_string(),
        "text".into(),
        "metadata::text AS metadata".into(),
    ];
    if p.vector {
        cols.push("vector".into());
    }
    if p.blobs {
        cols.extend(["image", "audio", "blob_mimes", "blob_data"].map(String::from));
    }
    for f in &schema.fields {
        if p.metadata_keys
            .as_ref()
            .is_none_or(|keys| keys.contains(&f.name))
        {
            cols.push(quote(&f.name));
        }
    }
    cols.join(", ")
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, col: &str) -> Result<Option<T>> {
    match row.columns().iter().position(|c| c.name() == col) {
        None => Ok(None),
        Some(i) => row
            .try_get::<_, Option<T>>(i)
            .map_err(|e| Error::engine("postgres", format!("reading column `{col}`"), e)),
    }
}

/// Decodes a row selected with [`select_list`].
pub fn decode_row(schema: &TableSchema, row: &Row, p: &Projection) -> Result<MultimodalRecord> {
    let mut r = MultimodalRecord {
        id: get::<String>(row, "id")?.unwrap_or_default(),
        text: get::<String>(row, "text")?,
        ..Default::default()
    };
    if let Some(v) = get::<pgvector::Vector>(row, "vector")? {
        r.vector = v.to_vec();
    }
    if p.blobs {
        r.image = get::<Vec<u8>>(row, "image")?;
        r.audio = get::<Vec<u8>>(row, "audio")?;
        let mimes = get::<Vec<String>>(row, "blob_mimes")?.unwrap_or_default();
        let data = get::<Vec<Vec<u8>>>(row, "blob_data")?.unwrap_or_default();
        r.blobs = mimes
            .into_iter()
            .zip(data)
            .map(|(m, d)| Blob::new(m, d))
            .collect();
    }
    if let Some(text) = get::<String>(row, "metadata")? {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) {
            r.metadata = map;
        }
    }
    for f in &schema.fields {
        let value = match f.kind {
            FieldType::String => get::<String>(row, &f.name)?.map(Value::from),
            FieldType::Int => get::<i64>(row, &f.name)?.map(Value::from),
            FieldType::Float => get::<f64>(row, &f.name)?.map(Value::from),
            FieldType::Bool => get::<bool>(row, &f.name)?.map(Value::from),
            FieldType::Timestamp => get::<SystemTime>(row, &f.name)?
                .map(|t| Value::from(format_timestamp(time_to_micros(t)))),
            FieldType::StringList => get::<Vec<String>>(row, &f.name)?
                .map(|v| Value::Array(v.into_iter().map(Value::from).collect())),
        };
        if let Some(v) = value {
            r.metadata.insert(f.name.clone(), v);
        }
    }
    if let Some(keys) = &p.metadata_keys {
        r.metadata.retain(|k, _| keys.contains(k));
    }
    Ok(r)
}

/// The pgvector distance operator for a metric.
pub fn distance_op(m: DistanceMetric) -> &'static str {
    match m {
        DistanceMetric::L2 => "<->",
        DistanceMetric::Cosine => "<=>",
        DistanceMetric::Dot => "<#>",
    }
}

/// pgvector's value for a metric → hanzo-db's distance: L2 is squared,
/// dot is `1 - a·b` (pgvector's `<#>` gives `-a·b`), cosine is the same
/// (`1 - cos`, and 1 for a zero vector, where pgvector gives NaN).
pub fn to_distance(m: DistanceMetric, raw: f64) -> f32 {
    (match m {
        DistanceMetric::L2 => raw * raw,
        DistanceMetric::Cosine if raw.is_nan() => 1.0,
        DistanceMetric::Cosine => raw,
        DistanceMetric::Dot => 1.0 + raw,
    }) as f32
}

/// The operator class an index needs to serve a metric's searches.
pub fn opclass(m: DistanceMetric) -> &'static str {
    match m {
        DistanceMetric::L2 => "vector_l2_ops",
        DistanceMetric::Cosine => "vector_cosine_ops",
        DistanceMetric::Dot => "vector_ip_ops",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_postgres() {
        assert_eq!(derived_name("docs", "vec"), "docs_vec");
        let long = "a".repeat(64);
        let n = derived_name(&long, "vec");
        assert!(n.len() <= 63 && n.ends_with("_vec"), "{n}");
        assert_ne!(n, derived_name(&"a".repeat(63), "vec"));
        assert_eq!(derived_name(&long, "").len(), 63);
    }

    #[test]
    fn distances_follow_our_convention() {
        assert_eq!(to_distance(DistanceMetric::L2, 2.0), 4.0);
        assert_eq!(to_distance(DistanceMetric::Dot, -0.25), 0.75);
        assert_eq!(to_distance(DistanceMetric::Cosine, f64::NAN), 1.0);
    }

    #[test]
    fn times_round_trip() {
        for m in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_001] {
            assert_eq!(time_to_micros(micros_to_time(m)), m);
        }
    }
}
