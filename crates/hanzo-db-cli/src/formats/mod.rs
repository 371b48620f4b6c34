//! File formats for import and export. Readers stream: they hold one record
//! (or one Parquet row group / .npy row) at a time, never the whole file.

pub mod csv;
pub mod jsonl;
pub mod npy;
pub mod parquet;

use std::path::Path;

use hanzo_db::MultimodalRecord;

use crate::args::Format;

/// Why a record could not be read.
pub enum ReadError {
    /// This record is bad (skippable with `--skip-bad`): where and why.
    Bad { at: String, reason: String },
    /// The file cannot be read further.
    Fatal(anyhow::Error),
}

/// A record and where it came from (`line 12`, `row 5`).
pub type Next = Result<(String, MultimodalRecord), ReadError>;

/// A streaming reader of records.
pub trait RecordSource: Send {
    /// The next record, `None` at the end.
    fn next_record(&mut self) -> Option<Next>;
    /// Bytes consumed so far (for the progress bar).
    fn position(&self) -> u64;
}

/// The format named, or the one the extension implies.
pub fn detect(path: &Path, given: Option<Format>) -> anyhow::Result<Format> {
    if let Some(f) = given {
        return Ok(f);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "jsonl" | "ndjson" | "json" => Format::Jsonl,
        "parquet" | "pq" => Format::Parquet,
        "csv" => Format::Csv,
        "npy" => Format::Npy,
        _ => anyhow::bail!(
            "cannot tell the format of {} from its extension; pass --format jsonl|parquet|csv|npy",
            path.display()
        ),
    })
}
