//! CSV with a header row: `id`, `vector` (a JSON array, or numbers separated
//! by spaces or `;`), optional `text`, `image_b64`, `audio_b64`; every other
//! column goes into metadata (numbers and booleans typed, empty cells left out).

use std::fs::File;
use std::path::Path;

use serde_json::{Map, Value};

use super::jsonl::record_from_json;
use super::{Next, ReadError, RecordSource};

pub struct CsvReader {
    reader: ::csv::Reader<File>,
    headers: Vec<String>,
    record: ::csv::StringRecord,
}

impl CsvReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut reader = ::csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let headers: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
        anyhow::ensure!(
            headers.iter().any(|h| h == "id") && headers.iter().any(|h| h == "vector"),
            "CSV needs `id` and `vector` columns, found: {}",
            headers.join(", ")
        );
        Ok(Self {
            reader,
            headers,
            record: ::csv::StringRecord::new(),
        })
    }
}

fn cell_value(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return f.into();
        }
    }
    match s {
        "true" => true.into(),
        "false" => false.into(),
        _ => s.into(),
    }
}

fn parse_vector(s: &str) -> Result<Value, String> {
    let t = s.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).map_err(|e| format!("`vector` is not a JSON array: {e}"));
    }
    let parts: Result<Vec<Value>, String> = t
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<f64>()
                .map(Value::from)
                .map_err(|_| format!("`vector` has a non-number `{p}`"))
        })
        .collect();
    parts.map(Value::Array)
}

impl RecordSource for CsvReader {
    fn next_record(&mut self) -> Option<Next> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => return None,
            Ok(true) => {}
            Err(e) => {
                let at = e
                    .position()
                    .map(|p| format!("line {}", p.line()))
                    .unwrap_or_else(|| "unknown line".into());
                return Some(Err(ReadError::Bad {
                    at,
                    reason: e.to_string(),
                }));
            }
        }
        let at = format!(
            "line {}",
            self.record.position().map(|p| p.line()).unwrap_or(0)
        );
        let mut obj = Map::new();
        let mut meta = Map::new();
        for (h, cell) in self.headers.iter().zip(self.record.iter()) {
            match h.as_str() {
                "id" => {
                    obj.insert("id".into(), cell.into());
                }
                "vector" => match parse_vector(cell) {
                    Ok(v) => {
                        obj.insert("vector".into(), v);
                    }
                    Err(reason) => return Some(Err(ReadError::Bad { at, reason })),
                },
                "text" | "image_b64" | "audio_b64" => {
                    if !cell.is_empty() {
                        obj.insert(h.clone(), cell.into());
                    }
                }
                _ if cell.is_empty() => {}
                _ => {
                    meta.insert(h.clone(), cell_value(cell));
                }
            }
        }
        if !meta.is_empty() {
            obj.insert("metadata".into(), Value::Object(meta));
        }
        Some(
            record_from_json(Value::Object(obj))
                .map(|r| (at.clone(), r))
                .map_err(|reason| ReadError::Bad { at, reason }),
        )
    }
    fn position(&self) -> u64 {
        self.reader.position().byte()
    }
}
