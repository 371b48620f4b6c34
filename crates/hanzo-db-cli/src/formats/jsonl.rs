//! JSON Lines: `{"id", "vector", "text", "image_b64", "audio_b64",
//! "blobs": [{"mime", "data_b64"}], "metadata": {...}}` per line.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hanzo_db::{Blob, MultimodalRecord};
use serde_json::{Map, Value, json};

use super::{Next, ReadError, RecordSource};

/// The JSON form of a record (blobs base64-encoded).
pub fn record_to_json(r: &MultimodalRecord, with_blobs: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), r.id.clone().into());
    if !r.vector.is_empty() {
        m.insert("vector".into(), json!(r.vector));
    }
    if let Some(t) = &r.text {
        m.insert("text".into(), t.clone().into());
    }
    if with_blobs {
        if let Some(i) = &r.image {
            m.insert("image_b64".into(), B64.encode(i).into());
        }
        if let Some(a) = &r.audio {
            m.insert("audio_b64".into(), B64.encode(a).into());
        }
        if !r.blobs.is_empty() {
            let blobs: Vec<Value> = r
                .blobs
                .iter()
                .map(|b| json!({"mime": b.mime, "data_b64": B64.encode(&b.data)}))
                .collect();
            m.insert("blobs".into(), blobs.into());
        }
    }
    if !r.metadata.is_empty() {
        m.insert("metadata".into(), Value::Object(r.metadata.clone()));
    }
    Value::Object(m)
}

/// Parses one record from its JSON form.
pub fn record_from_json(v: Value) -> Result<MultimodalRecord, String> {
    let Value::Object(mut m) = v else {
        return Err("expected a JSON object".into());
    };
    let id = match m.remove("id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("`id` must be a string or number, got {other}")),
        None => return Err("missing `id`".into()),
    };
    let vector = match m.remove("vector") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| format!("`vector[{i}]` is not a number: {x}"))
            })
            .collect::<Result<Vec<f32>, _>>()?,
        Some(other) => return Err(format!("`vector` must be an array of numbers, got {other}")),
        None => return Err("missing `vector`".into()),
    };
    let mut r = MultimodalRecord::new(id, vector);
    let b64 = |key: &str, v: Value| -> Result<Vec<u8>, String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("`{key}` must be a base64 string"))?;
        B64.decode(s)
            .map_err(|e| format!("`{key}` is not valid base64: {e}"))
    };
    match m.remove("text") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => r.text = Some(s),
        Some(other) => return Err(format!("`text` must be a string, got {other}")),
    }
    if let Some(v) = m.remove("image_b64").filter(|v| !v.is_null()) {
        r.image = Some(b64("image_b64", v)?);
    }
    if let Some(v) = m.remove("audio_b64").filter(|v| !v.is_null()) {
        r.audio = Some(b64("audio_b64", v)?);
    }
    match m.remove("blobs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, b) in items.into_iter().enumerate() {
                let mime = b
                    .get("mime")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`blobs[{i}].mime` missing"))?;
                let data = b
                    .get("data_b64")
                    .cloned()
                    .ok_or_else(|| format!("`blobs[{i}].data_b64` missing"))?;
                r.blobs
                    .push(Blob::new(mime, b64(&format!("blobs[{i}].data_b64"), data)?));
            }
        }
        Some(_) => return Err("`blobs` must be an array".into()),
    }
    match m.remove("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => r.metadata = meta,
        Some(other) => return Err(format!("`metadata` must be an object, got {other}")),
    }
    if let Some(k) = m.keys().next() {
        return Err(format!(
            "unknown key `{k}` (put extra fields under `metadata`)"
        ));
    }
    Ok(r)
}

/// Streams records from a JSONL file.
pub struct JsonlReader {
    lines: std::io::Lines<BufReader<File>>,
    line: u64,
    pos: u64,
}

impl JsonlReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let f =
            File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        Ok(Self {
            lines: BufReader::with_capacity(1 << 20, f).lines(),
            line: 0,
            pos: 0,
        })
    }
}

impl RecordSource for JsonlReader {
    fn next_record(&mut self) -> Option<Next> {
        loop {
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(e) => {
                    return Some(Err(ReadError::Fatal(anyhow::anyhow!(
                        "read error after line {}: {e}",
                        self.line
                    ))));
                }
            };
            self.line += 1;
            self.pos += text.len() as u64 + 1;
            if text.trim().is_empty() {
                continue;
            }
            let at = format!("line {}", self.line);
            let parsed = serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("invalid JSON: {e}"))
                .and_then(record_from_json);
            return Some(
                parsed
                    .map(|r| (at.clone(), r))
                    .map_err(|reason| ReadError::Bad { at, reason }),
            );
        }
    }
    fn position(&self) -> u64 {
        self.pos
    }
}

/// Writes records as JSONL.
pub struct JsonlWriter<W: Write> {
    out: W,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
    pub fn write(&mut self, r: &MultimodalRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &record_to_json(r, true))?;
        self.out.write_all(b"\n")
    }
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
