//! Batched appends. Entries of reads wait in an in-memory queue (no I/O on
//! the caller's thread) and are appended together: by the background
//! flusher every `sync_interval_ms`, by the next entry recorded at once
//! (which goes after them, keeping the chain in time order), by anything
//! that reads the log, by a caller that finds the queue full
//! (backpressure: entries are never dropped), and when the log is dropped.
//!
//! One batch is one state lock, one file lock, one catch-up with other
//! processes, and one `write`. If a batch cannot be written, the segment is
//! cut back to its last whole entry, the chain state stays at that entry,
//! and the log fails every later call until it is reopened.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Event;
use super::encode::{Pending, Queued};
use super::format::Head;
use super::log::{AuditLog, Core, Locked, State, io, segment_path};
use crate::error::{Error, Result};

/// Frames buffer capacity kept between batches (a full queue's frames
/// take about 2 MiB).
const KEEP_FRAMES: usize = 4 << 20;

impl Core {
    /// Fails once an append or fsync has failed (see [`AuditLog::check`]).
    pub(super) fn check(&self) -> Result<()> {
        match self.failed.get() {
            None => Ok(()),
            Some((path, reason)) => Err(Error::AuditLogFailed {
                path: path.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Makes the log fail from now on; returns the error callers will see.
    pub(super) fn fail(&self, e: Error) -> Error {
        let (path, reason) = match &e {
            Error::Io { path, source } => (path.clone(), source.to_string()),
            other => (self.dir.display().to_string(), other.to_string()),
        };
        if self.failed.set((path.clone(), reason.clone())).is_ok() {
            tracing::error!(
                path,
                reason,
                "the audit log could not be written: every operation on this database \
                 fails until it is reopened"
            );
        }
        self.check().expect_err("just failed")
    }

    /// Queues a read's entry; appends the queue at once if it is full.
    /// Nothing else happens on the caller's thread: no formatting, no
    /// wake-up of the flusher (it runs on its own tick).
    pub(super) fn enqueue(&self, entry: Queued) -> Result<()> {
        self.check()?;
        let full = {
            let mut q = self.queue.lock().expect("lock");
            // The time is taken under the queue lock, so that queue order
            // is time order.
            q.push(Pending::now(entry));
            q.len() >= self.config.queue_entries.max(1)
        };
        if full {
            self.flush_queue()?;
        }
        Ok(())
    }

    /// Appends the queued entries (if any).
    pub(super) fn flush_queue(&self) -> Result<()> {
        if self.queue.lock().expect("lock").is_empty() {
            return self.check();
        }
        self.with_drained(None, |_, _| Ok(()))
    }

    /// fsyncs every entry written so far.
    pub(super) fn sync_all(&self) -> Result<()> {
        let written = self.state.lock().expect("lock").next_seq;
        if written > self.synced.load(std::sync::atomic::Ordering::Acquire) {
            self.sync_through(written - 1)?;
        }
        Ok(())
    }

    /// Under the state lock and the file lock: catches up with other
    /// processes, appends the queued entries and then `own` (timed now) in
    /// one write, and runs `f` with the `seq` given to `own`. A failure
    /// before `f` makes the log fail from then on.
    pub(super) fn with_drained<T>(
        &self,
        own: Option<Queued>,
        f: impl FnOnce(&mut State, Option<u64>) -> Result<T>,
    ) -> Result<T> {
        let mut st = self.state.lock().expect("lock");
        self.check()?;
        let _g = Locked::new(&self.lock, &self.dir).map_err(|e| self.fail(e))?;
        let seq = self.drain_locked(&mut st, own).map_err(|e| self.fail(e))?;
        f(&mut st, seq)
    }

    fn drain_locked(&self, st: &mut State, own: Option<Queued>) -> Result<Option<u64>> {
        self.catch_up(st)?;
        let has_own = own.is_some();
        // The queue's vector and the spare one change places: neither is
        // allocated or grown again once both have reached the batch size.
        let mut batch = std::mem::take(&mut st.scratch.spare);
        {
            let mut q = self.queue.lock().expect("lock");
            if let Some(entry) = own {
                q.push(Pending::now(entry));
            }
            std::mem::swap(&mut *q, &mut batch);
        }
        let last = self.write_batch(st, &mut batch);
        batch.clear();
        st.scratch.spare = batch;
        let last = last?;
        // Rolled after the batch, not before: the new anchor's time then
        // follows every queued entry's.
        if st.offset >= self.config.segment_bytes {
            self.roll_locked(st, "size")?;
        }
        Ok(last.filter(|_| has_own))
    }

    /// Seals `batch` in order into one buffer and appends it with one
    /// write; returns the last `seq` written. On failure the segment is cut
    /// back to its last whole entry and `st` is left as it was.
    fn write_batch(&self, st: &mut State, batch: &mut Vec<Pending>) -> Result<Option<u64>> {
        if batch.is_empty() {
            return Ok(None);
        }
        let pid = std::process::id();
        let (key_id, k) = self.keys.current();
        let (mut next, mut last) = (st.next_seq, st.last);
        let segment = st.segment;
        let scratch = &mut st.scratch;
        scratch.frames.clear();
        for pending in batch.drain(..) {
            let hash = scratch.seal((&key_id, &k), segment, next, &last.hash, &pending, pid);
            last = Head {
                seq: next,
                segment,
                hash,
            };
            next += 1;
        }
        let written = (&*st.file).write_all(&st.scratch.frames);
        let len = st.scratch.frames.len() as u64;
        if st.scratch.frames.capacity() > KEEP_FRAMES {
            st.scratch.frames = Vec::new();
        }
        if let Err(e) = written {
            // Leave no partial frame behind for the next append to follow.
            let _ = st.file.set_len(st.offset);
            return Err(io(&segment_path(&self.dir, st.segment))(e));
        }
        st.offset += len;
        st.next_seq = next;
        st.last = last;
        Ok(Some(last.seq))
    }

    /// Appends one entry now (caller holds both locks).
    pub(super) fn write_entry(&self, st: &mut State, event: Event) -> Result<u64> {
        let mut one = vec![Pending::now(Queued::Event(event))];
        let seq = self.write_batch(st, &mut one)?;
        Ok(seq.expect("one entry was written"))
    }
}

/// The background thread that appends queued entries and fsyncs every
/// `sync_interval_ms`.
pub(super) struct Flusher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Flusher {
    pub(super) fn spawn(core: &Arc<Core>) -> Option<Flusher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let core = core.clone();
        let every = Duration::from_millis(core.config.sync_interval_ms.max(1));
        let thread = std::thread::Builder::new()
            .name("hanzo-audit-sync".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failure is recorded (and logged) by `fail`.
                    if core.flush_queue().and_then(|()| core.sync_all()).is_err() {
                        return;
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Flusher { stop, thread }),
            Err(e) => {
                tracing::warn!(error = %e, "no audit flusher thread: read entries are appended when the queue fills");
                None
            }
        }
    }
}

impl Drop for AuditLog {
    /// Stops the flusher, then appends the queued entries and fsyncs
    /// (best effort: a failure is logged), so that a closed database has
    /// every entry on disk.
    fn drop(&mut self) {
        if let Some(Flusher { stop, thread }) = self.flusher.take() {
            drop(stop);
            let _ = thread.join();
        }
        if self.core.failed.get().is_none() {
            let _ = self.core.flush_queue().and_then(|()| self.core.sync_all());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::sync::Arc;

    use super::super::encode::Queued;
    use super::super::format::AuditKeys;
    use super::super::log::{AuditLog, segment_path};
    use super::super::{AuditConfig, Event};
    use crate::error::Error;

    fn open(dir: &std::path::Path) -> Arc<AuditLog> {
        open_with(dir, 16 << 20)
    }

    fn open_with(dir: &std::path::Path, segment_bytes: u64) -> Arc<AuditLog> {
        let config = AuditConfig {
            enabled: true,
            sync_interval_ms: 600_000,
            segment_bytes,
            ..AuditConfig::default()
        };
        AuditLog::open(dir, AuditKeys::local(&[7; 32]), config).unwrap()
    }

    fn read() -> Queued {
        Queued::Event(Event::new(None, "search", Some("t")))
    }

    #[test]
    fn a_failed_batch_leaves_the_chain_at_the_last_entry_and_fails_every_later_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        let log = open(dir.path());
        log.core.enqueue(read()).unwrap();
        let written = log.status().next_seq;
        assert_eq!(written, 2, "genesis anchor and the read");
        let len = std::fs::metadata(&path).unwrap().len();
        // A read-only handle in place of the segment's: the next write fails.
        log.core.state.lock().unwrap().file = Arc::new(File::open(&path).unwrap());
        log.core.enqueue(read()).unwrap();
        let mut write = Event::new(None, "insert", Some("t"));
        write.outcome = Some(super::super::Outcome::Begin);
        let err = log.record(write).unwrap_err();
        assert!(
            matches!(&err, Error::AuditLogFailed { path: p, .. } if p.ends_with("00000001.hal")),
            "{err:?}"
        );
        {
            let st = log.core.state.lock().unwrap();
            assert_eq!((st.next_seq, st.offset), (written, len));
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        assert!(matches!(
            log.core.enqueue(read()),
            Err(Error::AuditLogFailed { .. })
        ));
        assert!(log.check().is_err());
        drop(log);
        let log = open(dir.path());
        assert!(log.verify().unwrap().ok);
        assert_eq!(log.status().next_seq, written);
    }

    /// Queues three reads, waits a little, records a grant at once, then
    /// queues `after` more reads; returns the log's ops, space-separated,
    /// checking that times never go back.
    fn reads_around_a_grant(log: &AuditLog, after: usize) -> String {
        for _ in 0..3 {
            log.core.enqueue(read()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let seq = log.record(Event::new(None, "grant", None)).unwrap();
        assert_eq!(seq, 4, "after the anchor and the three queued reads");
        for _ in 0..after {
            log.core.enqueue(read()).unwrap();
        }
        let e = log.entries(None).unwrap();
        assert!(e.windows(2).all(|w| w[0].time <= w[1].time), "{e:?}");
        assert!(log.verify().unwrap().ok);
        let ops: Vec<_> = e.into_iter().map(|e| e.op).collect();
        ops.join(" ")
    }

    #[test]
    fn queued_entries_keep_their_order_and_times_across_a_synchronous_entry() {
        let dir = tempfile::tempdir().unwrap();
        let ops = reads_around_a_grant(&open(dir.path()), 1);
        assert_eq!(ops, "audit.segment search search search grant search");
    }

    #[test]
    fn a_segment_full_after_a_batch_rolls_after_it_so_times_stay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // Every append fills the segment.
        let ops = reads_around_a_grant(&open_with(dir.path(), 1), 0);
        let roll = "audit.segment search search search grant audit.segment";
        assert_eq!(ops, roll);
    }
}
