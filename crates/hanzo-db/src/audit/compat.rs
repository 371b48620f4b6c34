//! The audit log written by an earlier version stays readable and
//! verifiable, and today's code writes the same entries for the same
//! operations. `tests/fixtures/audit-v1` holds a log written by the code of
//! commit 0d2016c (before read entries were queued as typed facts) through
//! [`write_sample`], under the local key `[7; 32]`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::format::AuditKeys;
use super::testing::Nothing;
use super::{AuditConfig, AuditEntry, AuditLog, Audited, Event, Outcome};
use crate::backend::{DeleteSelector, VectorDatabase};
use crate::filter::Filter;
use crate::query::{FilterMode, Projection, SearchRequest};
use crate::record::MultimodalRecord;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit-v1")
}

fn open(dir: &Path) -> Arc<AuditLog> {
    let config = AuditConfig {
        enabled: true,
        sync_interval_ms: 600_000,
        ..AuditConfig::default()
    };
    AuditLog::open(dir, AuditKeys::local(&[7; 32]), config).unwrap()
}

/// One of each kind of entry: reads of every shape (queued), a read that
/// failed, writes (recorded at once) and management events.
fn write_sample(dir: &Path) {
    let log = open(dir);
    let cell = Arc::new(OnceLock::new());
    let _ = cell.set(log.clone());
    let inner: Arc<dyn VectorDatabase> = Arc::new(Nothing);
    let reader = Audited::new(inner.clone(), cell.clone(), Some("reader".into()));
    let owner = Audited::new(inner, cell, None);
    let filter = Filter::parse(&serde_json::json!({
        "$and": [{"bucket": 3}, {"tag": {"$in": ["a", "b"]}}, {"author.name": {"$exists": true}}]
    }))
    .unwrap();
    let plain = SearchRequest {
        vector: Some(vec![0.5; 3]),
        ..SearchRequest::default()
    };
    let tuned = SearchRequest {
        vector: Some(vec![0.5; 3]),
        text: Some("words".into()),
        filter: Some(filter.clone()),
        k: 7,
        nprobes: Some(4),
        refine_factor: Some(2),
        filter_mode: FilterMode::Postfilter,
        projection: Projection {
            vector: true,
            ..Projection::default()
        },
        version: Some(5),
        ..SearchRequest::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        reader.vector_search("docs", &plain).await.unwrap();
        reader.vector_search("docs", &tuned).await.unwrap();
        // Not supported by the backend: an error entry.
        let _ = reader.text_search("docs", &tuned).await;
        owner.vector_search("docs", &plain).await.unwrap();
        let ids = ["a".to_string(), "b".to_string()];
        reader
            .get("docs", &ids, &Projection::all(), Some(3))
            .await
            .unwrap();
        reader.count("docs", Some(&filter)).await.unwrap();
        reader.count("docs", None).await.unwrap();
        reader.list_tables().await.unwrap();
        let records = vec![MultimodalRecord::new("a", vec![0.5; 3])];
        reader.insert("docs", records).await.unwrap();
        let selector = DeleteSelector::Filter(filter.clone());
        reader.delete("docs", &selector).await.unwrap();
        reader.vector_search("docs", &plain).await.unwrap();
    });
    let mut grant = Event::new(Some("admin"), "grant", None);
    grant.shape = Some(serde_json::json!({"role": "reader", "table": "docs"}));
    log.record(grant).unwrap();
    let mut denied = Event::new(Some("reader"), "search", Some("secret"));
    denied.outcome = Some(Outcome::Denied);
    denied.error = Some("PermissionDenied".into());
    log.record(denied).unwrap();
}

/// What an entry says, less what changes from run to run.
fn facts(e: &AuditEntry) -> String {
    let mut e = e.clone();
    (e.time, e.prev, e.pid) = (String::new(), String::new(), 0);
    serde_json::to_string(&e).unwrap()
}

#[test]
#[ignore = "writes the fixture; run once with the code that defines the format"]
fn write_fixture() {
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    write_sample(&dir);
    std::fs::remove_file(dir.join("lock")).unwrap();
}

#[test]
fn a_log_written_by_the_first_format_verifies_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixture()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    let log = open(dir.path());
    let report = log.verify().unwrap();
    assert!(report.ok, "{report:?}");
    let old = log.entries(None).unwrap();
    assert_eq!(old.len(), 16, "{old:#?}");
    // Appending to it keeps it verifiable.
    log.record(Event::new(None, "open", None)).unwrap();
    assert!(log.verify().unwrap().ok);
    drop(log);

    // Today's code records the same facts for the same operations.
    let fresh = tempfile::tempdir().unwrap();
    write_sample(fresh.path());
    let new = open(fresh.path()).entries(None).unwrap();
    let (old, new): (Vec<_>, Vec<_>) = (
        old.iter().map(facts).collect(),
        new.iter().map(facts).collect(),
    );
    assert_eq!(old, new);
}
