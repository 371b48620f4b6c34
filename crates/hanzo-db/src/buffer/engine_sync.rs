//! Making a fold's engine files durable before the log that could rebuild
//! them is removed.
//!
//! The engine (LanceDB through our object store) writes whole new files and
//! never changes one in place: data files, manifests, transaction files. A
//! fold therefore `fsync`s the files under the table's directory modified
//! since it started (less a slack for coarse file-system clocks), then the
//! directories holding them.
//!
//! Each `fsync` is a flush of the disk's write cache, and the log's own
//! `fsync`s queue behind them. With a 2 s slack and a fold every ~50 ms under
//! single-record writes, every fold re-synced the files of the last ~40 folds
//! (about 2,000 `fsync`s per second, measured): [`EngineSync`] remembers what
//! it made durable, by modification time and length, and syncs each file once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::io_err;
use super::segment::sync_dir;
use super::table::off_worker;
use crate::error::Result;

/// Files changed this long before a fold started are synced by it too: file
/// times come from a coarse clock, and may run behind [`SystemTime::now`].
const SLACK: Duration = Duration::from_secs(2);

/// A file as it was when made durable.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
}

/// The engine files one table's folds have made durable (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct EngineSync {
    synced: Arc<Mutex<HashMap<PathBuf, Stamp>>>,
}

impl EngineSync {
    /// Nothing remembered: the first sync covers every recent file.
    pub fn new() -> Self {
        Self::default()
    }

    /// `fsync`s the files under `dir` changed since `since` and not already
    /// synced unchanged, then the directories holding them (off the async
    /// threads). Returns how many files it synced.
    pub async fn sync(&self, dir: PathBuf, since: SystemTime) -> Result<usize> {
        let synced = self.synced.clone();
        off_worker("engine fsync", move || {
            let mut synced = synced.lock().unwrap_or_else(|p| p.into_inner());
            let cutoff = since.checked_sub(SLACK).unwrap_or(SystemTime::UNIX_EPOCH);
            let mut seen = HashMap::new();
            let mut count = 0;
            sync_tree(&dir, cutoff, &synced, &mut seen, &mut count)?;
            // Keep only what a later fold could still look at.
            *synced = seen;
            Ok(count)
        })
        .await
    }
}

/// Syncs under `dir` (see [`EngineSync::sync`]); `seen` collects the recent
/// files as now durable. Returns whether anything under `dir` was synced.
fn sync_tree(
    dir: &Path,
    cutoff: SystemTime,
    before: &HashMap<PathBuf, Stamp>,
    seen: &mut HashMap<PathBuf, Stamp>,
    count: &mut usize,
) -> Result<bool> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(io_err(dir)(source)),
    };
    let mut dirty = false;
    for e in rd.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let path = e.path();
        if meta.is_dir() {
            dirty |= sync_tree(&path, cutoff, before, seen, count)?;
            continue;
        }
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if modified < cutoff {
            continue;
        }
        let stamp = Stamp {
            modified,
            len: meta.len(),
        };
        if before.get(&path) != Some(&stamp) {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&path))?;
            dirty = true;
            *count += 1;
        }
        seen.insert(path, stamp);
    }
    if dirty {
        sync_dir(dir)?;
    }
    Ok(dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_changed_file_is_synced_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/a.lance"), b"a").unwrap();
        std::fs::write(root.join("_latest.manifest"), b"m").unwrap();
        let s = EngineSync::new();
        let since = SystemTime::now();
        assert_eq!(s.sync(root.clone(), since).await.unwrap(), 2);
        // Nothing changed: nothing to sync again.
        assert_eq!(s.sync(root.clone(), since).await.unwrap(), 0);
        // A new file and a rewritten one (another length) are synced; the rest not.
        std::fs::write(root.join("data/b.lance"), b"b").unwrap();
        std::fs::write(root.join("_latest.manifest"), b"m2").unwrap();
        assert_eq!(s.sync(root.clone(), since).await.unwrap(), 2);
        assert_eq!(s.sync(root.clone(), since).await.unwrap(), 0);
        // A fresh tracker (recovery) syncs every recent file.
        assert_eq!(
            EngineSync::new().sync(root.clone(), since).await.unwrap(),
            3
        );
        // Files older than the slack are left alone, and forgotten.
        let later = SystemTime::now() + SLACK + Duration::from_secs(1);
        assert_eq!(s.sync(root.clone(), later).await.unwrap(), 0);
        assert!(s.synced.lock().unwrap().is_empty());
        // A missing directory is nothing to sync.
        assert_eq!(s.sync(root.join("gone"), since).await.unwrap(), 0);
    }
}
