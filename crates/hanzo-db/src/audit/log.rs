//! The audit log writer: appends sealed entries to segment files, keeps the
//! hash chain, fsyncs, rolls segments, applies retention.
//!
//! Several processes may append to one log: every append holds an exclusive
//! lock on `lock` in the log directory and first catches up with entries
//! other processes appended.
//!
//! Entries of reads are queued in memory and appended in batches (see
//! `batch.rs`); every other entry is appended at once, after the queued
//! ones, so the chain stays in time order.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::batch::Flusher;
use super::encode::{Pending, Queued, Scratch};
use super::format::{AuditKeys, FrameRead, HEAD_SLOT, Head, open_frame};
use super::recover::{recover, scan_segment};
use super::verify::{self, VerifyReport};
use super::{AuditConfig, AuditEntry, AuditSync, Event, Outcome};
use crate::error::{Error, Result};

/// Non-secret facts about an open audit log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditStatus {
    /// The log directory.
    pub dir: String,
    /// Segment files present.
    pub segments: Vec<u32>,
    /// Entries written so far (the next entry's `seq`).
    pub next_seq: u64,
    /// Sync policy.
    pub sync: AuditSync,
    /// Retention in days, if set.
    pub retention_days: Option<u32>,
}

/// The writer's position: current segment, end offset, and the chain's end.
pub(super) struct State {
    pub(super) segment: u32,
    pub(super) file: Arc<File>,
    pub(super) offset: u64,
    pub(super) next_seq: u64,
    pub(super) last: Head,
    pub(super) anchor_time: Option<String>,
    /// Buffers of the appends, kept between batches.
    pub(super) scratch: Scratch,
}

/// The log's files and state, shared with the background flusher.
pub(super) struct Core {
    pub(super) dir: PathBuf,
    pub(super) keys: AuditKeys,
    pub(super) config: AuditConfig,
    pub(super) state: Mutex<State>,
    pub(super) lock: File,
    head: File,
    /// Entries known durable (`seq + 1` of the last synced entry).
    pub(super) synced: AtomicU64,
    sync_lock: Mutex<()>,
    /// Read entries not yet appended, oldest first.
    pub(super) queue: Mutex<Vec<Pending>>,
    /// The first append that failed: (path, reason). Once set, the log
    /// refuses every operation until it is reopened.
    pub(super) failed: OnceLock<(String, String)>,
}

/// An open audit log. Share it through `Arc`; dropping the last handle
/// appends the queued read entries and fsyncs.
pub struct AuditLog {
    pub(super) core: Arc<Core>,
    pub(super) flusher: Option<Flusher>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.core.dir)
            .finish()
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Segment file name.
pub(crate) fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.hal"))
}

/// Segment numbers present, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(dir)(e)),
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".hal").and_then(|s| s.parse().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Holds the cross-process lock until dropped.
pub(super) struct Locked<'a>(&'a File);
impl<'a> Locked<'a> {
    pub(super) fn new(f: &'a File, path: &Path) -> Result<Self> {
        f.lock().map_err(io(path))?;
        Ok(Self(f))
    }
}
impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

pub(super) fn open_append(path: &Path, create_new: bool) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .read(true)
        .create_new(create_new)
        .open(path)
        .map_err(io(path))
}

impl AuditLog {
    /// Opens (creating if missing) the log in `dir`, recovering from an
    /// interrupted append, and applies the retention setting.
    pub fn open(dir: &Path, keys: AuditKeys, config: AuditConfig) -> Result<Arc<AuditLog>> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let head_path = dir.join("head");
        let head = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&head_path)
            .map_err(io(&head_path))?;
        let guard = Locked::new(&lock, &lock_path)?;
        let mut head_bytes = vec![0u8; 2 * HEAD_SLOT];
        let n = head.read_at(&mut head_bytes, 0).unwrap_or(0);
        head_bytes.truncate(n);
        let (old_head, _) = Head::read(&keys, &head_bytes);
        let (state, damaged, cut) = recover(dir, &keys, old_head)?;
        drop(guard);
        let log = Core {
            dir: dir.to_path_buf(),
            keys,
            config,
            state: Mutex::new(state),
            lock,
            head,
            synced: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            queue: Mutex::new(Vec::new()),
            failed: OnceLock::new(),
        };
        {
            let mut st = log.state.lock().expect("lock");
            let _g = Locked::new(&log.lock, &lock_path)?;
            if damaged {
                // Never append after a damaged entry: start a new segment
                // (verify still reports the damage).
                log.roll_locked(&mut st, "after-damage")?;
            } else if st.next_seq == 0 {
                // A new log: the genesis anchor of segment 1.
                log.write_anchor(&mut st, "genesis")?;
                log.sync_locked(&st)?;
            } else if st.anchor_time.as_deref().is_some_and(older_than_a_day) {
                log.roll_locked(&mut st, "daily")?;
            }
            if cut {
                // Entries the head vouched for are gone: say so in the log
                // itself, where verify will find it, before going on.
                let mut ev = Event::new(None, "audit.truncation_detected", None);
                ev.outcome = Some(Outcome::Error);
                ev.shape = Some(serde_json::json!({
                    "head_seq": old_head.map(|h| h.seq),
                    "log_last_seq": st.next_seq.checked_sub(1),
                }));
                log.write_entry(&mut st, ev)?;
                log.sync_locked(&st)?;
            }
        }
        let core = Arc::new(log);
        let log = AuditLog {
            flusher: Flusher::spawn(&core),
            core,
        };
        if let Some(days) = log.core.config.retention_days {
            log.apply_retention(Duration::from_secs(u64::from(days) * 86_400))?;
        }
        Ok(Arc::new(log))
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.core.dir
    }

    /// Status for `security status` and `audit` commands (queued entries
    /// are appended first, so `next_seq` counts them).
    pub fn status(&self) -> AuditStatus {
        // Best effort: a failed log still reports where it stands.
        let _ = self.core.flush_queue();
        let st = self.core.state.lock().expect("lock");
        AuditStatus {
            dir: self.core.dir.display().to_string(),
            segments: list_segments(&self.core.dir).unwrap_or_default(),
            next_seq: st.next_seq,
            sync: self.core.config.sync,
            retention_days: self.core.config.retention_days,
        }
    }

    /// Records an event at once (after the queued read entries); returns
    /// its `seq`. The entry is on disk (in the operating system's hands)
    /// when this returns, and fsync'd as the sync policy says.
    pub fn record(&self, event: Event) -> Result<u64> {
        let (seq, durable) = self.append(Queued::Event(event))?;
        if durable {
            self.core.sync_through(seq)?;
        }
        Ok(seq)
    }

    /// [`AuditLog::record`] for async callers: the fsync runs on a blocking
    /// thread, so the runtime's workers go on with other tasks meanwhile
    /// (and concurrent writers share one fsync). Returns once the entry is
    /// as durable as `record` would have made it.
    pub async fn record_async(&self, event: Event) -> Result<u64> {
        self.append_async(Queued::Event(event)).await
    }

    async fn append_async(&self, entry: Queued) -> Result<u64> {
        let (seq, durable) = self.append(entry)?;
        if durable && self.core.synced.load(Ordering::Acquire) <= seq {
            let core = self.core.clone();
            match tokio::task::spawn_blocking(move || core.sync_through(seq)).await {
                Ok(r) => r?,
                Err(e) => return Err(self.core.fail(Error::engine("audit log", "fsync", e))),
            }
        }
        Ok(seq)
    }

    /// Appends `entry` after the queued entries; returns its `seq` and
    /// whether the sync policy wants it fsync'd before the operation returns.
    fn append(&self, entry: Queued) -> Result<(u64, bool)> {
        let durable = match self.core.config.sync {
            AuditSync::Always => true,
            AuditSync::Changes => entry.is_change(),
        };
        let seq = self.core.with_drained(Some(entry), |_, seq| {
            Ok(seq.expect("the event was appended"))
        })?;
        Ok((seq, durable))
    }

    /// Records the entry of a read. Under [`AuditSync::Changes`] a read's
    /// entry (unless it was denied) is queued and appended by the
    /// background flusher within `sync_interval_ms`, with the time of this
    /// call; otherwise it is recorded at once like
    /// [`AuditLog::record_async`]. Fails once an append has failed.
    pub async fn record_read(&self, event: Event) -> Result<()> {
        self.read_entry(Queued::Event(event)).await
    }

    /// [`AuditLog::record_read`] of a read's typed facts: what the
    /// [`Audited`](super::Audited) decorator records, at the cost of one
    /// push onto the queue (the entry's JSON is written when it is appended).
    pub(crate) async fn record_read_facts(&self, read: super::read::Read) -> Result<()> {
        self.read_entry(Queued::Read(read)).await
    }

    async fn read_entry(&self, entry: Queued) -> Result<()> {
        if self.core.config.sync == AuditSync::Always || entry.is_change() {
            return self.append_async(entry).await.map(drop);
        }
        self.core.enqueue(entry)
    }

    /// Fails, naming the file and the cause, once an append has failed:
    /// from then on nothing may be served unrecorded until the database is
    /// reopened.
    pub fn check(&self) -> Result<()> {
        self.core.check()
    }

    /// Makes every entry up to `seq` durable (group commit: one fsync covers
    /// every entry appended before it).
    pub fn sync_through(&self, seq: u64) -> Result<()> {
        self.core.sync_through(seq)
    }

    /// Starts a new segment now.
    pub fn roll(&self, reason: &str) -> Result<()> {
        self.core
            .with_drained(None, |st, _| self.core.roll_locked(st, reason))
    }

    /// Drops whole segments (never the current one) last written more than
    /// `max_age` ago. First records an `audit.retention` entry naming the
    /// dropped segments and the hash of the first kept segment's anchor, so
    /// that verify can tell retention from deletion. Returns the dropped
    /// segment numbers.
    pub fn apply_retention(&self, max_age: Duration) -> Result<Vec<u32>> {
        self.core
            .with_drained(None, |st, _| self.core.retention_locked(st, max_age))
    }

    /// Checks the whole log: every frame authenticates, every MAC matches,
    /// the chain has no gap, swap or fork, segments are all there (or were
    /// dropped by a recorded retention), and nothing after the head record
    /// is missing.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.core.with_drained(None, |_, _| {
            verify::verify_dir(&self.core.dir, &self.core.keys)
        })
    }

    /// Entries at or after `since` (RFC 3339), oldest first, queued read
    /// entries included. Frames that do not authenticate are skipped
    /// (`verify` reports them).
    pub fn entries(&self, since: Option<&str>) -> Result<Vec<AuditEntry>> {
        let since = since.map(parse_time).transpose()?;
        self.core.flush_queue()?;
        let (dir, keys) = (&self.core.dir, &self.core.keys);
        let mut out = Vec::new();
        for seg in list_segments(dir)? {
            let p = segment_path(dir, seg);
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            let mut off = 0;
            while off < bytes.len() {
                let FrameRead::Entry { body, len, .. } = open_frame(keys, seg, &bytes[off..])
                else {
                    break;
                };
                off += len;
                if let Ok(e) = serde_json::from_slice::<AuditEntry>(&body) {
                    let keep = match (&since, parse_time(&e.time)) {
                        (Some(s), Ok(t)) => t >= *s,
                        _ => true,
                    };
                    if keep {
                        out.push(e);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Core {
    /// Follows entries other processes appended since our last write.
    pub(super) fn catch_up(&self, st: &mut State) -> Result<()> {
        loop {
            let len = st.file.metadata().map_err(io(&self.dir))?.len();
            if len != st.offset {
                let path = segment_path(&self.dir, st.segment);
                let mut bytes = Vec::new();
                File::open(&path)
                    .and_then(|mut f| f.read_to_end(&mut bytes))
                    .map_err(io(&path))?;
                let tail = scan_segment(&self.keys, st.segment, &bytes, st.offset as usize, None);
                if let (Some(n), Some(last)) = (tail.next_seq, tail.last) {
                    st.next_seq = n;
                    st.last = last;
                }
                if tail.torn && !tail.bad {
                    // Another process died mid-append.
                    let _ = st.file.set_len(tail.end);
                }
                st.offset = tail.end;
                if tail.bad {
                    return self.roll_locked(st, "after-damage");
                }
            }
            let next = segment_path(&self.dir, st.segment + 1);
            if !next.exists() {
                return Ok(());
            }
            st.segment += 1;
            st.file = Arc::new(open_append(&next, false)?);
            st.offset = 0;
        }
    }

    fn write_anchor(&self, st: &mut State, reason: &str) -> Result<u64> {
        let mut ev = Event::new(None, "audit.segment", None);
        ev.shape = Some(serde_json::json!({"segment": st.segment, "reason": reason}));
        let seq = self.write_entry(st, ev)?;
        st.anchor_time = Some(now());
        Ok(seq)
    }

    /// Starts a new segment whose first entry (the anchor) continues the chain.
    pub(super) fn roll_locked(&self, st: &mut State, reason: &str) -> Result<()> {
        st.file.sync_data().map_err(io(&self.dir))?;
        let seg = st.segment + 1;
        let path = segment_path(&self.dir, seg);
        let file = open_append(&path, true)?;
        sync_dir(&self.dir);
        st.segment = seg;
        st.file = Arc::new(file);
        st.offset = 0;
        self.write_anchor(st, reason)?;
        self.sync_locked(st)
    }

    /// fsyncs the current segment and records the head (caller holds the
    /// state lock and the file lock).
    fn sync_locked(&self, st: &State) -> Result<()> {
        st.file.sync_data().map_err(io(&self.dir))?;
        self.write_head(st.last)?;
        self.synced.fetch_max(st.last.seq + 1, Ordering::AcqRel);
        Ok(())
    }

    /// See [`AuditLog::sync_through`].
    pub(super) fn sync_through(&self, seq: u64) -> Result<()> {
        if self.synced.load(Ordering::Acquire) > seq {
            return Ok(());
        }
        let _s = self.sync_lock.lock().expect("lock");
        if self.synced.load(Ordering::Acquire) > seq {
            return Ok(());
        }
        let (file, last) = {
            let st = self.state.lock().expect("lock");
            (st.file.clone(), st.last)
        };
        // Older segments were synced when they were rolled. A failed fsync
        // may have lost entries: the log fails from then on.
        file.sync_data()
            .map_err(io(&segment_path(&self.dir, last.segment)))
            .and_then(|()| {
                let _st = self.state.lock().expect("lock");
                let _g = Locked::new(&self.lock, &self.dir)?;
                self.write_head(last)
            })
            .map_err(|e| self.fail(e))?;
        self.synced.fetch_max(last.seq + 1, Ordering::AcqRel);
        Ok(())
    }

    /// Writes the head into the older slot, unless another process already
    /// recorded a later one (caller holds the file lock).
    fn write_head(&self, head: Head) -> Result<()> {
        let mut bytes = vec![0u8; 2 * HEAD_SLOT];
        let n = self.head.read_at(&mut bytes, 0).unwrap_or(0);
        bytes.truncate(n);
        let mut slots: [Option<Head>; 2] = [None, None];
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(s) = bytes.get(i * HEAD_SLOT..(i + 1) * HEAD_SLOT) {
                *slot = Head::decode(&self.keys, s);
            }
        }
        if slots.iter().flatten().any(|h| h.seq >= head.seq) {
            return Ok(());
        }
        let target = match slots {
            [Some(a), Some(b)] => usize::from(a.seq > b.seq),
            [Some(_), None] => 1,
            _ => 0,
        };
        self.head
            .write_all_at(&head.encode(&self.keys), (target * HEAD_SLOT) as u64)
            .map_err(io(&self.dir))
    }

    /// See [`AuditLog::apply_retention`] (caller holds both locks).
    fn retention_locked(&self, st: &mut State, max_age: Duration) -> Result<Vec<u32>> {
        let cutoff = SystemTime::now()
            .checked_sub(max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let segs = list_segments(&self.dir)?;
        let mut drop = Vec::new();
        for &s in &segs {
            if s >= st.segment {
                break;
            }
            let p = segment_path(&self.dir, s);
            let mtime = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .map_err(io(&p))?;
            if mtime > cutoff {
                break;
            }
            drop.push(s);
        }
        let (Some(&from), Some(&through)) = (drop.first(), drop.last()) else {
            return Ok(drop);
        };
        let kept = through + 1;
        let kp = segment_path(&self.dir, kept);
        let bytes = std::fs::read(&kp).map_err(io(&kp))?;
        let FrameRead::Entry { body, hash, .. } = open_frame(&self.keys, kept, &bytes) else {
            return Err(Error::Integrity {
                path: kp.display().to_string(),
                reason: "the anchor of the first kept segment does not authenticate".into(),
            });
        };
        let anchor: AuditEntry = serde_json::from_slice(&body).map_err(|e| Error::Integrity {
            path: kp.display().to_string(),
            reason: format!("bad anchor: {e}"),
        })?;
        let mut ev = Event::new(None, "audit.retention", None);
        ev.shape = Some(serde_json::json!({
            "dropped_from": from,
            "dropped_through": through,
            "first_kept_segment": kept,
            "first_kept_seq": anchor.seq,
            "first_kept_hash": hex::encode(hash),
            "max_age_secs": max_age.as_secs(),
        }));
        self.write_entry(st, ev)?;
        self.sync_locked(st)?;
        for s in &drop {
            let p = segment_path(&self.dir, *s);
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
        sync_dir(&self.dir);
        Ok(drop)
    }
}

/// Parses RFC 3339 or a bare date (`2026-01-31`, midnight UTC).
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| {
            Error::InvalidArgument(format!(
                "`{s}` is not a time: use RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)"
            ))
        })
}

fn older_than_a_day(time: &str) -> bool {
    parse_time(time).is_ok_and(|t| chrono::Utc::now() - t > chrono::Duration::days(1))
}
