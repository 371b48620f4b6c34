//! The checkpoint file: where each collection's migration stands.
//!
//! JSON, rewritten atomically (temporary file, fsync, rename) after every
//! committed batch, so a crash leaves either the previous or the new state,
//! never a torn one. A batch committed just before a crash but after the last
//! checkpoint is read again on resume and upserted, which is harmless.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::Cursor;

/// Format version written in the file.
const FORMAT: u32 = 1;

/// The saved state of a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// File format version.
    pub format: u32,
    /// The source store, e.g. `pgvector`.
    pub store: String,
    /// The source, without credentials ([`MigrationSource::describe`](super::MigrationSource::describe)).
    pub source: String,
    /// When it was last written (RFC 3339).
    pub updated: String,
    /// Progress per source collection key.
    pub tables: BTreeMap<String, TableProgress>,
}

/// Where one collection stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    /// The target table.
    pub target: String,
    /// The cursor of the next page to read (`None` before the first page and
    /// after the last).
    pub cursor: Option<Cursor>,
    /// Records committed to the target so far.
    pub migrated: u64,
    /// Records the source holds that could not be migrated (counted, not written).
    pub skipped: u64,
    /// Whether the last page has been committed.
    pub done: bool,
}

impl Checkpoint {
    /// An empty checkpoint for this source.
    pub fn new(store: &str, source: &str) -> Self {
        Self {
            format: FORMAT,
            store: store.into(),
            source: source.into(),
            updated: now(),
            tables: BTreeMap::new(),
        }
    }

    /// Reads the checkpoint at `path`; `None` when there is no file.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let cp: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
            path: path.display().to_string(),
            reason: format!("not a readable checkpoint: {e}"),
        })?;
        if cp.format != FORMAT {
            return Err(Error::Checkpoint {
                path: path.display().to_string(),
                reason: format!("format {} is not supported (expected {FORMAT})", cp.format),
            });
        }
        Ok(Some(cp))
    }

    /// Writes the checkpoint atomically.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.updated = now();
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = tmp_path(path);
        let bytes = serde_json::to_vec_pretty(self).expect("checkpoint serialises");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// True when every collection it lists is done.
    pub fn complete(&self) -> bool {
        self.tables.values().all(|t| t.done)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cp.json");
        assert!(Checkpoint::load(&path).unwrap().is_none());
        let mut cp = Checkpoint::new("qdrant", "http://h");
        cp.tables.insert(
            "docs".into(),
            TableProgress {
                target: "docs".into(),
                cursor: Some(serde_json::json!(42)),
                migrated: 10,
                skipped: 1,
                done: false,
            },
        );
        cp.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap().unwrap();
        assert_eq!(back, cp);
        assert!(!back.complete());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            Checkpoint::load(&path),
            Err(Error::Checkpoint { .. })
        ));
    }
}
