//! The plaintext of one log frame: one write call (insert, upsert or delete
//! by ids), in a small length-prefixed little-endian encoding.
//!
//! ```text
//! op u8 (1 insert, 2 upsert, 3 delete) | count u32 | count × item
//! record item: id str | dim u32 | dim × f32 | text opt-str | image opt-bytes
//!              | audio opt-bytes | blobs u32 × (mime str | data bytes) | metadata str (JSON)
//! delete item: id str
//! str / bytes: len u32 | bytes;  opt-*: 0u8, or 1u8 then the value
//! ```
//!
//! Decoding is bounds-checked: a frame that authenticates but does not decode
//! is reported, never half-applied.

use serde_json::{Map, Value};

use crate::record::{Blob, MultimodalRecord, put_f32s_le};

/// One logged write call.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `insert`: appends records (ids new to the table).
    Insert(Vec<MultimodalRecord>),
    /// `upsert`: inserts or replaces records by id.
    Upsert(Vec<MultimodalRecord>),
    /// `delete` by ids.
    Delete(Vec<String>),
}

const INSERT: u8 = 1;
const UPSERT: u8 = 2;
const DELETE: u8 = 3;

impl Op {
    /// Rows this call touches.
    pub fn len(&self) -> usize {
        match self {
            Op::Insert(r) | Op::Upsert(r) => r.len(),
            Op::Delete(ids) => ids.len(),
        }
    }

    /// The encoded size, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        5 + match self {
            Op::Insert(r) | Op::Upsert(r) => r.iter().map(record_len).sum::<usize>(),
            Op::Delete(ids) => ids.iter().map(|i| 4 + i.len()).sum(),
        }
    }

    /// Encodes the call.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let (tag, n) = match self {
            Op::Insert(r) => (INSERT, r.len()),
            Op::Upsert(r) => (UPSERT, r.len()),
            Op::Delete(ids) => (DELETE, ids.len()),
        };
        out.push(tag);
        put_u32(out, n);
        match self {
            Op::Insert(records) | Op::Upsert(records) => {
                for r in records {
                    encode_record(r, out);
                }
            }
            Op::Delete(ids) => ids.iter().for_each(|id| put_bytes(out, id.as_bytes())),
        }
    }

    /// Decodes a call; `Err` says what is malformed.
    pub fn decode(bytes: &[u8]) -> Result<Op, String> {
        let mut r = Reader { bytes, pos: 0 };
        let tag = r.u8()?;
        let n = r.u32()? as usize;
        // Every item takes at least 4 bytes: a count beyond that is damage, not a huge call.
        if n > bytes.len() / 4 {
            return Err(format!("item count {n} exceeds the frame"));
        }
        let op = match tag {
            INSERT | UPSERT => {
                let mut records = Vec::with_capacity(n);
                for _ in 0..n {
                    records.push(decode_record(&mut r)?);
                }
                if tag == INSERT {
                    Op::Insert(records)
                } else {
                    Op::Upsert(records)
                }
            }
            DELETE => Op::Delete((0..n).map(|_| r.string()).collect::<Result<_, _>>()?),
            other => return Err(format!("unknown operation {other}")),
        };
        if r.pos != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - r.pos));
        }
        Ok(op)
    }
}

/// A record's encoded size in a log frame; also the engine's estimate of
/// a record's bytes when it splits a large insert.
pub(crate) fn record_len(r: &MultimodalRecord) -> usize {
    let opt = |b: Option<usize>| 1 + b.map_or(0, |n| 4 + n);
    4 + r.id.len()
        + 4
        + 4 * r.vector.len()
        + opt(r.text.as_ref().map(String::len))
        + opt(r.image.as_ref().map(Vec::len))
        + opt(r.audio.as_ref().map(Vec::len))
        + 4
        + r.blobs
            .iter()
            .map(|b| 8 + b.mime.len() + b.data.len())
            .sum::<usize>()
        + 4
        + metadata_len_hint(&r.metadata)
}

fn metadata_len_hint(m: &Map<String, Value>) -> usize {
    if m.is_empty() { 2 } else { 64 * m.len() }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

fn encode_record(r: &MultimodalRecord, out: &mut Vec<u8>) {
    put_bytes(out, r.id.as_bytes());
    put_u32(out, r.vector.len());
    put_f32s_le(out, &r.vector);
    put_opt(out, r.text.as_deref().map(str::as_bytes));
    put_opt(out, r.image.as_deref());
    put_opt(out, r.audio.as_deref());
    put_u32(out, r.blobs.len());
    for b in &r.blobs {
        put_bytes(out, b.mime.as_bytes());
        put_bytes(out, &b.data);
    }
    let meta = serde_json::to_vec(&r.metadata).expect("JSON maps serialise");
    put_bytes(out, &meta);
}

fn decode_record(r: &mut Reader<'_>) -> Result<MultimodalRecord, String> {
    let id = r.string()?;
    let dim = r.u32()? as usize;
    let raw = r.take(dim.checked_mul(4).ok_or("vector length overflows")?)?;
    let vector = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let text = r.opt()?.map(|b| utf8(b.to_vec())).transpose()?;
    let image = r.opt()?.map(<[u8]>::to_vec);
    let audio = r.opt()?.map(<[u8]>::to_vec);
    let nblobs = r.u32()? as usize;
    let mut blobs = Vec::with_capacity(nblobs.min(1024));
    for _ in 0..nblobs {
        let mime = r.string()?;
        let data = r.bytes()?.to_vec();
        blobs.push(Blob { mime, data });
    }
    let metadata = match serde_json::from_slice::<Value>(r.bytes()?) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("metadata is not a JSON object".into()),
        Err(e) => return Err(format!("metadata is not JSON: {e}")),
    };
    Ok(MultimodalRecord {
        id,
        vector,
        text,
        image,
        audio,
        blobs,
        metadata,
    })
}

fn utf8(b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|_| "a string is not UTF-8".to_string())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("field of {n} bytes at {} runs past the frame", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, String> {
        utf8(self.bytes()?.to_vec())
    }
    fn opt(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            other => Err(format!("bad option flag {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let rec = MultimodalRecord::new("a", vec![1.5, -2.0, f32::MIN_POSITIVE])
            .with_text("héllo")
            .with_image(vec![0, 255, 7])
            .with_audio(Vec::<u8>::new())
            .with_blob(Blob::new("application/pdf", vec![1, 2, 3]))
            .with_metadata("k", serde_json::json!({"nested": [1, "x"]}));
        for op in [
            Op::Insert(vec![rec.clone(), MultimodalRecord::new("b", vec![0.0; 3])]),
            Op::Upsert(vec![rec]),
            Op::Delete(vec!["a".into(), "".into()]),
        ] {
            let mut buf = Vec::new();
            op.encode(&mut buf);
            assert_eq!(Op::decode(&buf).unwrap(), op);
            // Every strict prefix is rejected, never misread.
            for cut in 0..buf.len() {
                assert!(Op::decode(&buf[..cut]).is_err(), "prefix {cut}");
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(Op::decode(&[9, 0, 0, 0, 0]).is_err());
        assert!(Op::decode(&[1, 255, 255, 255, 255]).is_err());
        let mut buf = Vec::new();
        Op::Delete(vec!["x".into()]).encode(&mut buf);
        buf.push(0);
        assert!(Op::decode(&buf).is_err());
    }
}
