//! The queue of read entries: they reach the log in order with the writes,
//! are visible to `audit_entries` at once, are all on disk once the database
//! is dropped, a full queue is appended by the reader (never dropped), and a
//! log that cannot be written refuses every later operation.

use std::path::Path;

use hanzo_db::audit::{AuditEntry, Outcome};
use hanzo_db::{Database, DatabaseConfig, Error, TableSchema};

use super::{config, open, rec, seg};

/// Opens with a flush interval long enough that only the queue's own
/// triggers (a full queue, a synchronous entry, a read of the log, a close)
/// append read entries.
async fn open_slow(dir: &Path, tune: impl FnOnce(&mut DatabaseConfig)) -> Database {
    let mut cfg = config(dir, true);
    cfg.audit.sync_interval_ms = 600_000;
    tune(&mut cfg);
    hanzo_db::connect(dir.join("db"))
        .config(cfg)
        .execute()
        .await
        .expect("open")
}

async fn table_with_rows(db: &Database) {
    db.create_table("t", TableSchema::new(3)).await.unwrap();
    db.insert("t", (0..3).map(rec).collect()).await.unwrap();
}

async fn search(db: &Database) -> hanzo_db::Result<usize> {
    db.vector_search("t", &[0.1, 0.2, 0.3], 2)
        .await
        .map(|h| h.len())
}

fn searches(entries: &[AuditEntry]) -> usize {
    entries.iter().filter(|e| e.op == "search").count()
}

#[tokio::test]
async fn read_entries_reach_the_log_in_order_with_the_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), true).await;
    db.create_table("t", TableSchema::new(3)).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..5 {
        search(&db).await.unwrap();
        db.count("t", None).await.unwrap();
        db.insert("t", vec![rec(i)]).await.unwrap();
        expected.extend([
            ("search", Outcome::Ok),
            ("count", Outcome::Ok),
            ("insert", Outcome::Begin),
            ("insert", Outcome::Ok),
        ]);
    }
    let entries = db.audit_entries(None).unwrap();
    for w in entries.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "{:?} then {:?}", w[0], w[1]);
        // RFC 3339 with milliseconds and `Z`: text order is time order.
        assert!(
            w[1].time >= w[0].time,
            "time went back: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let got: Vec<_> = entries
        .iter()
        .filter(|e| matches!(e.op.as_str(), "search" | "count" | "insert"))
        .map(|e| (e.op.as_str(), e.outcome))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn audit_entries_right_after_a_search_sees_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(dir.path(), |_| {}).await;
    table_with_rows(&db).await;
    assert_eq!(search(&db).await.unwrap(), 2);
    let entries = db.audit_entries(None).unwrap();
    let last_write = entries.iter().rposition(|e| e.op == "insert").unwrap();
    let s = entries.iter().rposition(|e| e.op == "search").unwrap();
    assert!(s > last_write);
    assert_eq!(entries[s].rows, Some(2));
    assert_eq!(entries[s].outcome, Outcome::Ok);
}

#[tokio::test]
async fn dropping_the_database_puts_every_read_entry_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_slow(dir.path(), |_| {}).await;
        table_with_rows(&db).await;
        for _ in 0..50 {
            search(&db).await.unwrap();
        }
        // A clone shares the log: the entries wait for the last handle.
        let clone = db.clone();
        drop(db);
        search(&clone).await.unwrap();
    }
    let db = open(dir.path(), true).await;
    let r = db.audit_verify().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(searches(&db.audit_entries(None).unwrap()), 51);
}

#[tokio::test]
async fn a_full_queue_is_appended_by_the_reader_and_nothing_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_slow(dir.path(), |c| c.audit.queue_entries = 4).await;
    table_with_rows(&a).await;
    for _ in 0..10 {
        search(&a).await.unwrap();
    }
    // A second handle has its own writer (and queue) and reads the files:
    // the two full queues (4 + 4) are there, the last 2 still queued in `a`.
    let b = open(dir.path(), true).await;
    assert_eq!(searches(&b.audit_entries(None).unwrap()), 8);
    drop(a);
    assert_eq!(searches(&b.audit_entries(None).unwrap()), 10);
    let r = b.audit_verify().unwrap();
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn a_log_that_cannot_be_written_refuses_every_operation_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(dir.path(), |_| {}).await;
    table_with_rows(&db).await;
    // Where the next segment belongs, a directory: the next append, which
    // first follows other processes' segments, cannot open it.
    let blocker = seg(dir.path(), 2);
    std::fs::create_dir(&blocker).unwrap();
    // Queued: the read itself does no I/O on the log.
    search(&db).await.unwrap();
    let err = db.insert("t", vec![rec(10)]).await.unwrap_err();
    let Error::AuditLogFailed { path, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(path.ends_with("00000002.hal"), "{path}");
    assert!(err.hint().is_some());
    assert!(!err.is_user_error());
    // Sticky: reads and writes fail too, even with the cause gone.
    std::fs::remove_dir(&blocker).unwrap();
    assert!(matches!(
        search(&db).await,
        Err(Error::AuditLogFailed { .. })
    ));
    assert!(matches!(
        db.count("t", None).await,
        Err(Error::AuditLogFailed { .. })
    ));
    assert!(matches!(
        db.insert("t", vec![rec(11)]).await,
        Err(Error::AuditLogFailed { .. })
    ));
    drop(db);
    // Reopened, the log works again, and the refused insert never happened.
    let db = open(dir.path(), true).await;
    assert_eq!(db.count("t", None).await.unwrap(), 3);
    let r = db.audit_verify().unwrap();
    assert!(r.ok, "{r:?}");
}
