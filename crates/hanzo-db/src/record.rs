//! Multimodal records and their validation.
//!
//! A record is an id, a vector, optional text, optional image and audio bytes,
//! any number of other blobs (3D models, video, PDFs…) each with a MIME type,
//! and JSON metadata. Bytes are stored raw (never base64) and read back byte-exact.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schema::{FieldType, TableSchema};

/// A binary attachment with its MIME type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// MIME type, e.g. `model/gltf-binary` or `application/pdf`.
    pub mime: String,
    /// The raw bytes.
    pub data: Vec<u8>,
}

impl Blob {
    /// A blob of this MIME type.
    pub fn new(mime: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            mime: mime.into(),
            data: data.into(),
        }
    }
}

/// One stored item: a vector plus any of text, image, audio, other blobs and metadata.
///
/// ```
/// use hanzo_db::MultimodalRecord;
/// let r = MultimodalRecord::new("doc-1", vec![0.1, 0.2, 0.3])
///     .with_text("a red bicycle")
///     .with_image(vec![0x89, b'P', b'N', b'G'])
///     .with_metadata("year", 2024);
/// assert_eq!(r.metadata["year"], 2024);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultimodalRecord {
    /// Unique id within the table.
    pub id: String,
    /// The embedding. Empty in results that did not select it.
    pub vector: Vec<f32>,
    /// Text, searchable with the full-text index.
    pub text: Option<String>,
    /// Image bytes (any format).
    pub image: Option<Vec<u8>>,
    /// Audio bytes (any format).
    pub audio: Option<Vec<u8>>,
    /// Other binary modalities.
    pub blobs: Vec<Blob>,
    /// Metadata. Keys named in the table's typed fields are stored as columns;
    /// the rest is kept as JSON.
    pub metadata: Map<String, Value>,
}

impl MultimodalRecord {
    /// A record with an id and a vector.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Self {
        Self {
            id: id.into(),
            vector,
            ..Self::default()
        }
    }
    /// Sets the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// Sets the image bytes.
    pub fn with_image(mut self, image: impl Into<Vec<u8>>) -> Self {
        self.image = Some(image.into());
        self
    }
    /// Sets the audio bytes.
    pub fn with_audio(mut self, audio: impl Into<Vec<u8>>) -> Self {
        self.audio = Some(audio.into());
        self
    }
    /// Adds a blob.
    pub fn with_blob(mut self, blob: Blob) -> Self {
        self.blobs.push(blob);
        self
    }
    /// Sets one metadata key.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Limits applied to every write.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Largest image, audio or other blob accepted, in bytes.
    pub max_blob_bytes: usize,
}

/// Checks a vector against a table's dimension; rejects NaN and infinities.
pub fn validate_vector(
    table: &str,
    dimension: usize,
    vector: &[f32],
    record: Option<&str>,
) -> Result<()> {
    if vector.len() != dimension {
        return Err(Error::WrongVectorDimension {
            table: table.to_string(),
            expected: dimension,
            got: vector.len(),
            record: record.map(str::to_string),
        });
    }
    if let Some((position, v)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFiniteVector {
            table: table.to_string(),
            position,
            value: v.to_string(),
            record: record.map(str::to_string),
        });
    }
    Ok(())
}

/// Checks a batch of records before anything is written: ids, vectors, blob
/// sizes, typed metadata, and no id twice in the batch.
pub fn validate_records(
    table: &str,
    schema: &TableSchema,
    records: &[MultimodalRecord],
    limits: WriteLimits,
) -> Result<()> {
    let mut ids = std::collections::HashSet::with_capacity(records.len());
    for r in records {
        if r.id.is_empty() {
            return Err(Error::BadRecord {
                id: None,
                reason: "the id is empty".into(),
            });
        }
        if !ids.insert(r.id.as_str()) {
            return Err(Error::BadRecord {
                id: Some(r.id.clone()),
                reason: "the id appears twice in one batch".into(),
            });
        }
        validate_vector(table, schema.dimension, &r.vector, Some(&r.id))?;
        let blobs = [
            ("image".to_string(), r.image.as_deref()),
            ("audio".to_string(), r.audio.as_deref()),
        ]
        .into_iter()
        .chain(
            r.blobs
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("blobs[{i}]"), Some(b.data.as_slice()))),
        );
        for (field, data) in blobs {
            if let Some(data) = data {
                if data.len() > limits.max_blob_bytes {
                    return Err(Error::BlobTooLarge {
                        id: r.id.clone(),
                        field,
                        size: data.len(),
                        limit: limits.max_blob_bytes,
                    });
                }
            }
        }
        for f in &schema.fields {
            if let Some(v) = r.metadata.get(&f.name) {
                check_typed_value(f.kind, v).map_err(|reason| Error::BadRecord {
                    id: Some(r.id.clone()),
                    reason: format!("metadata `{}`: {reason}", f.name),
                })?;
            }
        }
    }
    Ok(())
}

fn check_typed_value(kind: FieldType, v: &Value) -> std::result::Result<(), String> {
    let ok = match (kind, v) {
        (_, Value::Null) => true,
        (FieldType::String, Value::String(_)) => true,
        (FieldType::Int, Value::Number(n)) => n.is_i64(),
        (FieldType::Float, Value::Number(_)) => true,
        (FieldType::Bool, Value::Bool(_)) => true,
        (FieldType::Timestamp, v) => return timestamp_micros(v).map(|_| ()),
        (FieldType::StringList, Value::Array(items)) => items.iter().all(Value::is_string),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {kind:?}, got {v}"))
    }
}

/// Reads a timestamp written as RFC 3339 text or integer microseconds since the epoch.
pub fn timestamp_micros(v: &Value) -> std::result::Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("timestamp {n} is not an integer number of microseconds")),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| format!("timestamp `{s}` is not RFC 3339 ({e})")),
        other => Err(format!("expected a timestamp, got {other}")),
    }
}

/// JSON text of the metadata keys that are not typed fields (`None` when
/// empty): what the engines store in their metadata column.
pub(crate) fn untyped_metadata(schema: &TableSchema, r: &MultimodalRecord) -> Option<String> {
    let rest: Map<String, Value> = r
        .metadata
        .iter()
        .filter(|(k, _)| schema.field_type(k).is_none())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!rest.is_empty()).then(|| Value::Object(rest).to_string())
}

/// Appends a vector's float32s, little-endian: one copy where that is the
/// machine's order (a loop of 4-byte appends was a sixth of a single-record
/// write's CPU at 768 dimensions).
pub(crate) fn put_f32s_le(out: &mut Vec<u8>, v: &[f32]) {
    #[cfg(target_endian = "little")]
    out.extend_from_slice(bytemuck::cast_slice(v));
    #[cfg(not(target_endian = "little"))]
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Formats microseconds since the epoch as RFC 3339 in UTC.
pub fn format_timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WriteLimits = WriteLimits { max_blob_bytes: 8 };

    #[test]
    fn catches_bad_records() {
        let schema = TableSchema::new(2).field("year", FieldType::Int);
        let ok = MultimodalRecord::new("a", vec![1.0, 2.0]).with_metadata("year", 2020);
        assert!(validate_records("t", &schema, &[ok.clone()], LIMITS).is_ok());
        let dim = MultimodalRecord::new("a", vec![1.0]);
        assert!(matches!(
            validate_records("t", &schema, &[dim], LIMITS),
            Err(Error::WrongVectorDimension {
                expected: 2,
                got: 1,
                ..
            })
        ));
        let nan = MultimodalRecord::new("a", vec![1.0, f32::NAN]);
        assert!(matches!(
            validate_records("t", &schema, &[nan], LIMITS),
            Err(Error::NonFiniteVector { position: 1, .. })
        ));
        let big = ok.clone().with_image(vec![0u8; 9]);
        assert!(matches!(
            validate_records("t", &schema, &[big], LIMITS),
            Err(Error::BlobTooLarge { size: 9, .. })
        ));
        let typed = ok.clone().with_metadata("year", "twenty");
        assert!(matches!(
            validate_records("t", &schema, &[typed], LIMITS),
            Err(Error::BadRecord { .. })
        ));
        assert!(validate_records("t", &schema, &[ok.clone(), ok], LIMITS).is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let v = Value::from("2024-05-01T12:00:00Z");
        let micros = timestamp_micros(&v).unwrap();
        assert_eq!(format_timestamp(micros), "2024-05-01T12:00:00Z");
        assert!(timestamp_micros(&Value::from("yesterday")).is_err());
    }
}
