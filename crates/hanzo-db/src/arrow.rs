//! Records ⇄ Arrow record batches: the one Arrow layout of a hanzo-db table,
//! used by the LanceDB engine and by Parquet import and export.
//!
//! Layout: `id` Utf8, `vector` FixedSizeList<Float32>, `text` Utf8,
//! `image`/`audio` LargeBinary, `blobs` List<Struct{mime, data}>,
//! `metadata` Utf8 (JSON of the keys that are not typed fields), then one
//! column per typed field. The [`TableSchema`] itself is kept as JSON in the
//! Arrow schema's metadata under [`SCHEMA_KEY`].

use std::sync::Arc;

use arrow_array::builder::{LargeBinaryBuilder, ListBuilder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
    LargeBinaryArray, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::query::Projection;
use crate::record::{Blob, MultimodalRecord, format_timestamp, timestamp_micros, untyped_metadata};
use crate::schema::{FieldType, TableSchema};

/// Arrow schema metadata key holding the [`TableSchema`] as JSON.
pub const SCHEMA_KEY: &str = "hanzo.schema";
/// Arrow schema metadata key holding the layout version.
pub const FORMAT_KEY: &str = "hanzo.format";
/// Current layout version.
pub const FORMAT_VERSION: &str = "1";

fn blob_struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("mime", DataType::Utf8, false),
        Field::new("data", DataType::LargeBinary, false),
    ])
}

fn typed_arrow(kind: FieldType) -> DataType {
    match kind {
        FieldType::String => DataType::Utf8,
        FieldType::Int | FieldType::Timestamp => DataType::Int64,
        FieldType::Float => DataType::Float64,
        FieldType::Bool => DataType::Boolean,
        FieldType::StringList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    }
}

/// The Arrow schema for a table.
pub fn arrow_schema(schema: &TableSchema) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                schema.dimension as i32,
            ),
            false,
        ),
        Field::new("text", DataType::Utf8, true),
        Field::new("image", DataType::LargeBinary, true),
        Field::new("audio", DataType::LargeBinary, true),
        Field::new(
            "blobs",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(blob_struct_fields()),
                true,
            ))),
            true,
        ),
        Field::new("metadata", DataType::Utf8, true),
    ];
    for f in &schema.fields {
        fields.push(Field::new(&f.name, typed_arrow(f.kind), true));
    }
    let meta = [
        (
            SCHEMA_KEY.to_string(),
            serde_json::to_string(schema).expect("schema serialises"),
        ),
        (FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
    ]
    .into_iter()
    .collect();
    Arc::new(Schema::new_with_metadata(fields, meta))
}

/// Reads the [`TableSchema`] back from an Arrow schema.
pub fn table_schema_from_arrow(table: &str, schema: &Schema) -> Result<TableSchema> {
    match schema.metadata().get(FORMAT_KEY).map(String::as_str) {
        Some(FORMAT_VERSION) => {}
        Some(other) => {
            return Err(Error::BadSchema {
                reason: format!(
                    "table `{table}` has layout version {other}; this build reads version {FORMAT_VERSION}: upgrade hanzo-db"
                ),
            });
        }
        None => {
            return Err(Error::BadSchema {
                reason: format!(
                    "table `{table}` was not created by hanzo-db (no `{FORMAT_KEY}` in its schema)"
                ),
            });
        }
    }
    let text = schema
        .metadata()
        .get(SCHEMA_KEY)
        .ok_or_else(|| Error::BadSchema {
            reason: format!("table `{table}` lacks its `{SCHEMA_KEY}` metadata"),
        })?;
    serde_json::from_str(text).map_err(|e| Error::BadSchema {
        reason: format!("table `{table}` has an unreadable schema: {e}"),
    })
}

/// Columns to read for a projection (never blobs unless asked).
pub fn projected_columns(schema: &TableSchema, p: &Projection) -> Vec<String> {
    let mut cols = vec!["id".to_string(), "text".to_string(), "metadata".to_string()];
    if p.vector {
        cols.push("vector".into());
    }
    if p.blobs {
        cols.extend(["image", "audio", "blobs"].map(String::from));
    }
    for f in &schema.fields {
        if p.metadata_keys
            .as_ref()
            .is_none_or(|keys| keys.contains(&f.name))
        {
            cols.push(f.name.clone());
        }
    }
    cols
}

/// Builds one record batch from validated records.
pub fn records_to_batch(schema: &TableSchema, records: &[MultimodalRecord]) -> Result<RecordBatch> {
    let arrow = arrow_schema(schema);
    let n = records.len();
    let dim = schema.dimension;
    let ids = StringArray::from_iter_values(records.iter().map(|r| r.id.as_str()));
    let mut flat = Vec::with_capacity(n * dim);
    for r in records {
        flat.extend_from_slice(&r.vector);
    }
    let vectors = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::from(flat)),
        None,
    )
    .map_err(|e| Error::engine("arrow", "building vectors", e))?;
    let texts = StringArray::from_iter(records.iter().map(|r| r.text.as_deref()));
    let images = LargeBinaryArray::from_iter(records.iter().map(|r| r.image.as_deref()));
    let audios = LargeBinaryArray::from_iter(records.iter().map(|r| r.audio.as_deref()));

    let mut blobs = ListBuilder::new(arrow_array::builder::StructBuilder::new(
        blob_struct_fields(),
        vec![
            Box::new(StringBuilder::new()) as Box<dyn arrow_array::builder::ArrayBuilder>,
            Box::new(LargeBinaryBuilder::new()),
        ],
    ));
    for r in records {
        if r.blobs.is_empty() {
            blobs.append(false);
            continue;
        }
        let sb = blobs.values();
        for b in &r.blobs {
            sb.field_builder::<StringBuilder>(0)
                .expect("mime")
                .append_value(&b.mime);
            sb.field_builder::<LargeBinaryBuilder>(1)
                .expect("data")
                .append_value(&b.data);
            sb.append(true);
        }
        blobs.append(true);
    }

    let metadata = StringArray::from_iter(records.iter().map(|r| untyped_metadata(schema, r)));

    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(vectors),
        Arc::new(texts),
        Arc::new(images),
        Arc::new(audios),
        Arc::new(blobs.finish()),
        Arc::new(metadata),
    ];
    for f in &schema.fields {
        let values = records
            .iter()
            .map(|r| r.metadata.get(&f.name).filter(|v| !v.is_null()));
        let col: ArrayRef = match f.kind {
            FieldType::String => Arc::new(StringArray::from_iter(
                values.map(|v| v.and_then(Value::as_str)),
            )),
            FieldType::Int => Arc::new(Int64Array::from_iter(
                values.map(|v| v.and_then(Value::as_i64)),
            )),
            FieldType::Float => Arc::new(Float64Array::from_iter(
                values.map(|v| v.and_then(Value::as_f64)),
            )),
            FieldType::Bool => Arc::new(BooleanArray::from_iter(
                values.map(|v| v.and_then(Value::as_bool)),
            )),
            FieldType::Timestamp => Arc::new(Int64Array::from_iter(
                values.map(|v| v.and_then(|v| timestamp_micros(v).ok())),
            )),
            FieldType::StringList => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for v in values {
                    match v.and_then(Value::as_array) {
                        Some(items) => {
                            for s in items.iter().filter_map(Value::as_str) {
                                b.values().append_value(s);
                            }
                            b.append(true);
                        }
                        None => b.append(false),
                    }
                }
                Arc::new(b.finish())
            }
        };
        columns.push(col);
    }
    RecordBatch::try_new(arrow, columns).map_err(|e| Error::engine("arrow", "building a batch", e))
}

/// A record as the engine returns it once stored, without building a batch:
/// the same as [`batch_to_rows`] of [`records_to_batch`] for this one record
/// (typed fields converted to their column's type, or dropped where they do
/// not convert; the other metadata keys through JSON text). Single-record
/// writes take this path (the batch round trip was a fifth of their CPU).
pub fn normalise_record(schema: &TableSchema, r: &MultimodalRecord) -> MultimodalRecord {
    // Through the text the metadata column holds, as a read does.
    let mut metadata = match untyped_metadata(schema, r).map(|t| serde_json::from_str(&t)) {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    };
    for f in &schema.fields {
        let Some(v) = r.metadata.get(&f.name).filter(|v| !v.is_null()) else {
            continue;
        };
        let typed = match f.kind {
            FieldType::String => v.as_str().map(Value::from),
            FieldType::Int => v.as_i64().map(Value::from),
            FieldType::Float => v.as_f64().map(Value::from),
            FieldType::Bool => v.as_bool().map(Value::from),
            FieldType::Timestamp => timestamp_micros(v)
                .ok()
                .map(|m| Value::from(format_timestamp(m))),
            FieldType::StringList => v.as_array().map(|items| {
                Value::Array(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(Value::from)
                        .collect(),
                )
            }),
        };
        if let Some(t) = typed {
            metadata.insert(f.name.clone(), t);
        }
    }
    MultimodalRecord {
        id: r.id.clone(),
        vector: r.vector.clone(),
        text: r.text.clone(),
        image: r.image.clone(),
        audio: r.audio.clone(),
        blobs: r.blobs.clone(),
        metadata,
    }
}

/// One row read back: the record and the engine's `_distance` / `_score`.
pub struct Row {
    /// The record.
    pub record: MultimodalRecord,
    /// `_distance`, when the batch came from a vector search.
    pub distance: Option<f32>,
    /// `_score`, when the batch came from a text search.
    pub score: Option<f32>,
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
}

/// Decodes rows from a result batch (any subset of the table's columns).
pub fn batch_to_rows(
    schema: &TableSchema,
    batch: &RecordBatch,
    keys: Option<&[String]>,
) -> Result<Vec<Row>> {
    let ids = col::<StringArray>(batch, "id")
        .ok_or_else(|| Error::engine("lancedb", "reading results", "result has no id column"))?;
    let vectors = col::<FixedSizeListArray>(batch, "vector");
    let texts = col::<StringArray>(batch, "text");
    let images = col::<LargeBinaryArray>(batch, "image");
    let audios = col::<LargeBinaryArray>(batch, "audio");
    let blobs = col::<ListArray>(batch, "blobs");
    let metas = col::<StringArray>(batch, "metadata");
    let dist = col::<Float32Array>(batch, "_distance");
    let score = col::<Float32Array>(batch, "_score");
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut r = MultimodalRecord {
            id: ids.value(i).to_string(),
            ..Default::default()
        };
        if let Some(v) = vectors {
            let inner = v.value(i);
            let floats = inner
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| Error::engine("lancedb", "reading vectors", "not float32"))?;
            r.vector = floats.values().to_vec();
        }
        r.text = texts
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i).to_string());
        r.image = images
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i).to_vec());
        r.audio = audios
            .filter(|a| a.is_valid(i))
            .map(|a| a.value(i).to_vec());
        if let Some(list) = blobs.filter(|a| a.is_valid(i)) {
            let items = list.value(i);
            let st = items
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| Error::engine("lancedb", "reading blobs", "not a struct list"))?;
            let mimes = st.column(0).as_any().downcast_ref::<StringArray>();
            let datas = st.column(1).as_any().downcast_ref::<LargeBinaryArray>();
            if let (Some(m), Some(d)) = (mimes, datas) {
                for j in 0..st.len() {
                    r.blobs.push(Blob::new(m.value(j), d.value(j)));
                }
            }
        }
        if let Some(m) = metas.filter(|a| a.is_valid(i)) {
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(m.value(i)) {
                r.metadata = map;
            }
        }
        for f in &schema.fields {
            let Some(array) = batch.column_by_name(&f.name) else {
                continue;
            };
            if !array.is_valid(i) {
                continue;
            }
            let value = match f.kind {
                FieldType::String => array
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|a| Value::from(a.value(i))),
                FieldType::Int => array
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| Value::from(a.value(i))),
                FieldType::Timestamp => array
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| Value::from(format_timestamp(a.value(i)))),
                FieldType::Float => array
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .map(|a| Value::from(a.value(i))),
                FieldType::Bool => array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .map(|a| Value::from(a.value(i))),
                FieldType::StringList => array.as_any().downcast_ref::<ListArray>().and_then(|a| {
                    let inner = a.value(i);
                    inner.as_any().downcast_ref::<StringArray>().map(|s| {
                        Value::Array(
                            (0..s.len())
                                .filter(|&j| s.is_valid(j))
                                .map(|j| Value::from(s.value(j)))
                                .collect(),
                        )
                    })
                }),
            };
            if let Some(v) = value {
                r.metadata.insert(f.name.clone(), v);
            }
        }
        if let Some(keys) = keys {
            r.metadata.retain(|k, _| keys.contains(k));
        }
        rows.push(Row {
            record: r,
            distance: dist.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
            score: score.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldType;

    #[test]
    fn round_trip_every_field() {
        let schema = TableSchema::new(3)
            .field("year", FieldType::Int)
            .field("at", FieldType::Timestamp)
            .field("tags", FieldType::StringList);
        let rec = MultimodalRecord::new("a", vec![1.0, 2.0, 3.0])
            .with_text("hello")
            .with_image(vec![0, 1, 255])
            .with_audio(Vec::<u8>::new())
            .with_blob(Blob::new("model/gltf-binary", vec![9, 9]))
            .with_metadata("year", 2024)
            .with_metadata("at", "2024-01-02T03:04:05Z")
            .with_metadata("tags", serde_json::json!(["x", "y"]))
            .with_metadata("nested", serde_json::json!({"k": [1, 2]}));
        let plain = MultimodalRecord::new("b", vec![0.0; 3]);
        let batch = records_to_batch(&schema, &[rec.clone(), plain.clone()]).unwrap();
        let rows = batch_to_rows(&schema, &batch, None).unwrap();
        assert_eq!(rows[0].record, rec);
        assert_eq!(rows[1].record, plain);
        let back = table_schema_from_arrow("t", &arrow_schema(&schema)).unwrap();
        assert_eq!(back, schema);
    }

    #[test]
    fn normalise_record_equals_the_batch_round_trip() {
        use serde_json::json;
        let schema = TableSchema::new(2)
            .field("s", FieldType::String)
            .field("i", FieldType::Int)
            .field("f", FieldType::Float)
            .field("b", FieldType::Bool)
            .field("at", FieldType::Timestamp)
            .field("tags", FieldType::StringList);
        // Typed fields of the right type, of a convertible or a wrong one,
        // null, absent; untyped keys of every JSON kind; every optional part.
        let values = [
            json!("x"),
            json!(3),
            json!(-7.25),
            json!(1e300),
            json!(0.1),
            json!(true),
            json!(null),
            json!("2024-01-02T03:04:05+02:00"),
            json!(1_700_000_000_000_000_i64),
            json!(["a", 1, "b", null]),
            json!({"k": [1, 2.5, "z"]}),
            json!(u64::MAX),
        ];
        let names = ["s", "i", "f", "b", "at", "tags", "other", "id"];
        let mut records = vec![MultimodalRecord::new("empty", vec![0.0, -0.0])];
        for (n, v) in values.iter().enumerate() {
            let mut r = MultimodalRecord::new(format!("r{n}"), vec![n as f32, 0.5])
                .with_metadata(names[n % names.len()], v.clone())
                .with_metadata(names[(n + 3) % names.len()], v.clone());
            if n % 2 == 0 {
                r = r.with_text(if n % 4 == 0 { "" } else { "text" });
            }
            if n % 3 == 0 {
                r = r
                    .with_image(vec![n as u8; n])
                    .with_audio(Vec::<u8>::new())
                    .with_blob(Blob::new("model/gltf-binary", vec![7; n]));
            }
            records.push(r);
        }
        let batch = records_to_batch(&schema, &records).unwrap();
        let rows = batch_to_rows(&schema, &batch, None).unwrap();
        for (r, row) in records.iter().zip(&rows) {
            assert_eq!(normalise_record(&schema, r), row.record, "record {}", r.id);
        }
        // A schema without typed fields.
        let bare = TableSchema::new(2);
        let rows = batch_to_rows(&bare, &records_to_batch(&bare, &records).unwrap(), None).unwrap();
        for (r, row) in records.iter().zip(&rows) {
            assert_eq!(normalise_record(&bare, r), row.record, "record {}", r.id);
        }
    }
}
