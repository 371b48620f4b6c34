//! Group commit: one thread per table runs the log's `fsync`s. A writer
//! appends its frame, asks for a sync and waits until the segment's synced
//! mark passes its frame. The thread syncs whenever frames wait, and each
//! `fsync` covers every frame appended before it started; frames appended
//! during one are covered by the next, which starts as soon as it ends.
//!
//! (Before, writers took turns at an async lock and sent each `fsync` to the
//! blocking pool: a chain of wake-ups between one sync and the next, and 8
//! writers reached 14k durable writes/s with one core idle.)

use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::watch;

use super::segment::Segment;
use crate::error::{Error, Result};

/// A table's sync thread; it ends when this is dropped.
#[derive(Debug)]
pub(super) struct Syncer {
    shared: Arc<Shared>,
    /// Bumped after every round of syncs.
    rounds: watch::Receiver<u64>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Segments with frames someone waits for (a few at most).
    wanted: Vec<Arc<Segment>>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Syncer {
    /// Starts the thread for the table `name`.
    pub fn start(name: &str) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (tx, rounds) = watch::channel(0u64);
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("hanzo-wal-{name}"))
            .spawn(move || run(&s, &tx))
            .map_err(|e| Error::engine("write buffer", "starting the log's sync thread", e))?;
        Ok(Self { shared, rounds })
    }

    /// Returns once frame `seq` of `segment` is on stable storage.
    pub async fn wait_durable(&self, segment: &Arc<Segment>, seq: u64) -> Result<()> {
        // Subscribed before asking, so the round that covers the frame is seen.
        let mut rounds = self.rounds.clone();
        rounds.mark_unchanged();
        if segment.is_synced(seq) {
            return Ok(());
        }
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if !q.wanted.iter().any(|s| Arc::ptr_eq(s, segment)) {
                q.wanted.push(segment.clone());
            }
        }
        self.shared.ready.notify_one();
        loop {
            if segment.is_synced(seq) {
                return Ok(());
            }
            if let Some(e) = segment.sync_error() {
                return Err(e);
            }
            if rounds.changed().await.is_err() {
                return Err(Error::engine(
                    "write buffer",
                    "log fsync",
                    "the log's sync thread stopped",
                ));
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.ready.notify_one();
    }
}

fn run(shared: &Shared, rounds: &watch::Sender<u64>) {
    loop {
        let wanted = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.wanted.is_empty() && !q.closed {
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.wanted.is_empty() {
                return;
            }
            std::mem::take(&mut q.wanted)
        };
        for s in &wanted {
            // A failure is kept by the segment and reported to its waiters.
            let _ = s.sync();
        }
        rounds.send_modify(|r| *r += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::segment::tests::keys;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_writer_returns_once_its_frame_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Arc::new(Segment::create(dir.path(), "t", 0, 0, &keys(true), true).unwrap());
        let syncer = Arc::new(Syncer::start("t").unwrap());
        let next = Arc::new(Mutex::new(0u64));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (seg, syncer, next) = (seg.clone(), syncer.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let seq = {
                        let mut n = next.lock().unwrap();
                        seg.append(*n, b"frame").unwrap();
                        *n += 1;
                        *n - 1
                    };
                    syncer.wait_durable(&seg, seq).await.unwrap();
                    assert!(seg.is_synced(seq));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(!seg.has_unsynced());
        let rounds = *syncer.rounds.borrow();
        assert!((1..=400).contains(&rounds), "{rounds} rounds");
    }
}
