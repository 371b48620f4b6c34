//! Recovery on open: every table's log is replayed into the engine, then
//! removed (see "Recovery" in `docs/write-buffer-format.md`).

use std::path::{Path, PathBuf};

use super::codec::Op;
use super::engine_sync::EngineSync;
use super::segment::{list_segments, read_segment, sync_dir};
use super::table::{apply_to_engine, replay_apply};
use super::view::{Overlay, normalise};
use super::{Core, io_err};
use crate::error::Result;

impl Core {
    /// Replays every table's log into the engine and removes it.
    pub(super) async fn recover(&self) -> Result<()> {
        let rd = match std::fs::read_dir(&self.wal) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&self.wal)(e)),
        };
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        if dirs.is_empty() {
            return Ok(());
        }
        dirs.sort();
        let tables = self.inner.list_tables().await?;
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !tables.contains(&name) {
                // The table was dropped after its log was written.
                std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                continue;
            }
            self.replay_table(&name, &dir).await?;
        }
        if self.config.sync {
            sync_dir(&self.wal)?;
        }
        Ok(())
    }

    pub(super) async fn replay_table(&self, name: &str, dir: &Path) -> Result<()> {
        let segments = list_segments(dir)?;
        if segments.is_empty() {
            return Ok(());
        }
        let schema = self.inner.table_schema(name).await?;
        let mut overlay = Overlay::new();
        let mut expect = None;
        let mut frames = 0usize;
        for path in &segments {
            let read = read_segment(path, name, &self.keys, expect)?;
            if let Some(why) = &read.cut {
                tracing::warn!(table = name, segment = %path.display(), "write-buffer log tail cut on replay: {why}");
            }
            expect = match (&read.cut, read.frames.last()) {
                (Some(_), _) => None,
                (None, Some((seq, _))) => Some(seq + 1),
                (None, None) => expect,
            };
            frames += read.frames.len();
            for (seq, op) in read.frames {
                let rows = match &op {
                    Op::Insert(r) | Op::Upsert(r) => normalise(&schema, r),
                    Op::Delete(_) => Vec::new(),
                };
                replay_apply(&mut overlay, op, rows, seq);
            }
        }
        if !overlay.is_empty() {
            tracing::info!(
                table = name,
                frames,
                rows = overlay.len(),
                "replaying the write-buffer log"
            );
            let started = std::time::SystemTime::now();
            apply_to_engine(&self.inner, name, &overlay, true).await?;
            if let (true, Some(dir)) = (self.config.sync, self.engine_dir(name)) {
                EngineSync::new().sync(dir, started).await?;
            }
        }
        for path in &segments {
            std::fs::remove_file(path).map_err(io_err(path))?;
        }
        if self.config.sync {
            sync_dir(dir)?;
        }
        Ok(())
    }
}
