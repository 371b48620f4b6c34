//! Group commit: one thread per table runs the log's `fsync`s (started when
//! a write waits, gone after 2 s without one). A writer
//! appends its frame, asks for a sync and waits until the segment's synced
//! mark passes its frame. The thread syncs whenever frames wait, and each
//! `fsync` covers every frame appended before it started; frames appended
//! during one are covered by the next, which starts as soon as it ends.
//!
//! (Before, writers took turns at an async lock and sent each `fsync` to the
//! blocking pool: a chain of wake-ups between one sync and the next, and 8
//! writers reached 14k durable writes/s with one core idle.)

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::segment::Segment;
use crate::error::{Error, Result};

/// A sync thread with nothing to do for this long ends; the next write
/// starts another (a database with many quiet tables holds no threads).
const IDLE: Duration = Duration::from_secs(2);

/// A table's group commit: its sync thread, started on demand.
#[derive(Debug)]
pub(super) struct Syncer {
    name: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Segments with frames someone waits for (a few at most).
    wanted: Vec<Arc<Segment>>,
    /// A thread is running (it empties `wanted`).
    running: bool,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Bumped after every round of syncs.
    rounds: watch::Sender<u64>,
}

impl Syncer {
    /// The group commit of the table `name` (no thread until a write waits).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
                rounds: watch::Sender::new(0),
            }),
        }
    }

    /// Returns once frame `seq` of `segment` is on stable storage.
    pub async fn wait_durable(&self, segment: &Arc<Segment>, seq: u64) -> Result<()> {
        // Subscribed before asking, so the round that covers the frame is seen.
        let mut rounds = self.shared.rounds.subscribe();
        if segment.is_synced(seq) {
            return Ok(());
        }
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if !q.wanted.iter().any(|s| Arc::ptr_eq(s, segment)) {
                q.wanted.push(segment.clone());
            }
            if !q.running {
                let shared = self.shared.clone();
                std::thread::Builder::new()
                    .name(format!("hanzo-wal-{}", self.name))
                    .spawn(move || run(&shared))
                    .map_err(|e| {
                        Error::engine("write buffer", "starting the log's sync thread", e)
                    })?;
                q.running = true;
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
            // The sender lives in `shared`, which `self` holds: never closed.
            let _ = rounds.changed().await;
        }
    }

    /// Whether a sync thread is running now.
    #[cfg(test)]
    fn running(&self) -> bool {
        self.shared.queue.lock().unwrap().running
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

fn run(shared: &Shared) {
    loop {
        let wanted = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.wanted.is_empty() && !q.closed {
                let (next, waited) = shared
                    .ready
                    .wait_timeout(q, IDLE)
                    .unwrap_or_else(|p| p.into_inner());
                q = next;
                if waited.timed_out() && q.wanted.is_empty() {
                    break;
                }
            }
            if q.wanted.is_empty() {
                q.running = false;
                return;
            }
            std::mem::take(&mut q.wanted)
        };
        for s in &wanted {
            // A failure is kept by the segment and reported to its waiters.
            let _ = s.sync();
        }
        shared.rounds.send_modify(|r| *r += 1);
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
        let syncer = Arc::new(Syncer::new("t"));
        assert!(!syncer.running(), "no thread before a write waits");
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
        let rounds = *syncer.shared.rounds.borrow();
        assert!((1..=400).contains(&rounds), "{rounds} rounds");
        assert!(syncer.running());
        // Idle, the thread ends; the next write starts another.
        tokio::time::sleep(IDLE + Duration::from_millis(500)).await;
        assert!(!syncer.running());
        seg.append(400, b"frame").unwrap();
        syncer.wait_durable(&seg, 400).await.unwrap();
        assert!(seg.is_synced(400));
    }
}
