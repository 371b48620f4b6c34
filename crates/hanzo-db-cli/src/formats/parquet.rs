//! Parquet in hanzo-db's own Arrow layout (see `hanzo_db::arrow`), so an
//! export imports back byte-exact. Foreign Parquet files are read when they
//! have `id` and `vector` columns; `text`, `image`, `audio` and a JSON
//! `metadata` column are used when present, and other scalar columns go
//! into metadata.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use hanzo_db::arrow::{arrow_schema, batch_to_rows, records_to_batch, table_schema_from_arrow};
use hanzo_db::{MultimodalRecord, TableSchema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use super::{Next, ReadError, RecordSource};

pub struct ParquetReader {
    batches: ParquetRecordBatchReader,
    layout: Option<TableSchema>,
    pending: std::vec::IntoIter<MultimodalRecord>,
    row: u64,
    rows_total: u64,
    bytes_total: u64,
}

impl ParquetReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let f =
            File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let bytes_total = f.metadata()?.len();
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
            anyhow::anyhow!("{} is not a readable Parquet file: {e}", path.display())
        })?;
        let rows_total = builder.metadata().file_metadata().num_rows() as u64;
        let schema = builder.schema().clone();
        let layout = table_schema_from_arrow("parquet", &schema).ok();
        if layout.is_none() {
            anyhow::ensure!(
                schema.field_with_name("id").is_ok() && schema.field_with_name("vector").is_ok(),
                "Parquet file needs `id` and `vector` columns"
            );
        }
        let batches = builder.with_batch_size(1024).build()?;
        Ok(Self {
            batches,
            layout,
            pending: Vec::new().into_iter(),
            row: 0,
            rows_total,
            bytes_total,
        })
    }
}

fn foreign_rows(batch: &RecordBatch) -> Result<Vec<MultimodalRecord>, String> {
    let ids = arrow_cast::cast(
        batch.column_by_name("id").expect("checked"),
        &DataType::Utf8,
    )
    .map_err(|e| format!("`id` column: {e}"))?;
    let ids = ids
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .expect("utf8");
    let vec_col = batch.column_by_name("vector").expect("checked");
    let list_f32 = DataType::List(Arc::new(arrow_schema::Field::new(
        "item",
        DataType::Float32,
        true,
    )));
    let vectors =
        arrow_cast::cast(vec_col, &list_f32).map_err(|e| format!("`vector` column: {e}"))?;
    let vectors = vectors
        .as_any()
        .downcast_ref::<arrow_array::ListArray>()
        .expect("list");
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        if ids.is_null(i) || vectors.is_null(i) {
            return Err(format!("row {i} of this batch has a null id or vector"));
        }
        let v = vectors.value(i);
        let v = v
            .as_any()
            .downcast_ref::<arrow_array::Float32Array>()
            .expect("f32");
        let mut r = MultimodalRecord::new(ids.value(i), v.values().to_vec());
        let mut meta = Map::new();
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            if col.is_null(i) {
                continue;
            }
            let name = field.name().as_str();
            match name {
                "id" | "vector" => {}
                "image" | "audio" => {
                    let bytes = arrow_cast::cast(col, &DataType::LargeBinary)
                        .map_err(|e| format!("`{name}`: {e}"))?;
                    let b = bytes
                        .as_any()
                        .downcast_ref::<arrow_array::LargeBinaryArray>()
                        .expect("bin")
                        .value(i)
                        .to_vec();
                    if name == "image" {
                        r.image = Some(b)
                    } else {
                        r.audio = Some(b)
                    }
                }
                _ => {
                    let s = arrow_cast::display::ArrayFormatter::try_new(
                        col.as_ref(),
                        &Default::default(),
                    )
                    .map_err(|e| format!("`{name}`: {e}"))?
                    .value(i)
                    .to_string();
                    match name {
                        "text" => r.text = Some(s),
                        "metadata" => match serde_json::from_str::<Value>(&s) {
                            Ok(Value::Object(m)) => meta.extend(m),
                            _ => return Err(format!("`metadata` is not a JSON object: {s}")),
                        },
                        _ => {
                            let v = match col.data_type() {
                                DataType::Boolean => Value::from(s == "true"),
                                t if t.is_integer() => {
                                    s.parse::<i64>().map(Value::from).unwrap_or(Value::from(s))
                                }
                                t if t.is_floating() => {
                                    s.parse::<f64>().map(Value::from).unwrap_or(Value::from(s))
                                }
                                _ => Value::from(s),
                            };
                            meta.insert(name.to_string(), v);
                        }
                    }
                }
            }
        }
        r.metadata = meta;
        out.push(r);
    }
    Ok(out)
}

impl RecordSource for ParquetReader {
    fn next_record(&mut self) -> Option<Next> {
        loop {
            if let Some(r) = self.pending.next() {
                self.row += 1;
                return Some(Ok((format!("row {}", self.row - 1), r)));
            }
            let batch = match self.batches.next()? {
                Ok(b) => b,
                Err(e) => {
                    return Some(Err(ReadError::Fatal(anyhow::anyhow!(
                        "Parquet read error near row {}: {e}",
                        self.row
                    ))));
                }
            };
            let rows = match &self.layout {
                Some(schema) => batch_to_rows(schema, &batch, None)
                    .map(|rows| rows.into_iter().map(|r| r.record).collect())
                    .map_err(|e| e.to_string()),
                None => foreign_rows(&batch),
            };
            match rows {
                Ok(rows) => self.pending = rows.into_iter(),
                Err(reason) => {
                    let at = format!("rows {}..{}", self.row, self.row + batch.num_rows() as u64);
                    self.row += batch.num_rows() as u64;
                    return Some(Err(ReadError::Bad { at, reason }));
                }
            }
        }
    }
    fn position(&self) -> u64 {
        if self.rows_total == 0 {
            0
        } else {
            self.bytes_total * self.row / self.rows_total
        }
    }
}

/// Writes records in the table's Arrow layout.
pub struct ParquetOut {
    writer: ArrowWriter<File>,
    schema: TableSchema,
}

impl ParquetOut {
    pub fn create(path: &Path, schema: &TableSchema) -> anyhow::Result<Self> {
        let f = File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        let writer = ArrowWriter::try_new(f, arrow_schema(schema), None)?;
        Ok(Self {
            writer,
            schema: schema.clone(),
        })
    }
    pub fn write(&mut self, records: &[MultimodalRecord]) -> anyhow::Result<()> {
        if !records.is_empty() {
            self.writer
                .write(&records_to_batch(&self.schema, records)?)?;
        }
        Ok(())
    }
    pub fn finish(self) -> anyhow::Result<()> {
        self.writer.close()?;
        Ok(())
    }
}
