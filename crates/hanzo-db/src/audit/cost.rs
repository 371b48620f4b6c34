//! What auditing costs per read, measured around a backend that does
//! nothing: the caller's share (the decorator, up to the queued entry) and
//! the flusher's share (sealing and appending one queued entry). Prints
//! figures; asserts nothing about time. Run it with
//! `cargo test --workspace --lib audit::cost -- --ignored --nocapture`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::format::AuditKeys;
use super::testing::Nothing;
use super::{AuditConfig, AuditLog, Audited};
use crate::backend::VectorDatabase;
use crate::filter::Filter;
use crate::query::SearchRequest;
use crate::security::format::DataKey;
use crate::security::store::StaticKeys;

const BATCH: usize = 1000;
const ROUNDS: usize = 100;

#[test]
#[ignore = "prints figures; run with --ignored --nocapture"]
fn cost_per_audited_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        enabled: true,
        // No background flusher in the way: the test appends each batch.
        sync_interval_ms: 3_600_000,
        segment_bytes: 1 << 30,
        queue_entries: 1 << 20,
        ..AuditConfig::default()
    };
    let ring = StaticKeys::new([1; 16], DataKey::new([9; 32]));
    let keys = AuditKeys::from_keyring(Arc::new(ring));
    let log = AuditLog::open(dir.path(), keys, config).unwrap();
    let cell = Arc::new(OnceLock::new());
    let _ = cell.set(log.clone());
    let bare: Arc<dyn VectorDatabase> = Arc::new(Nothing);
    let audited = Audited::new(bare.clone(), cell, Some("reader".into()));
    let plain = SearchRequest {
        vector: Some(vec![0.5; 384]),
        ..SearchRequest::default()
    };
    let filtered = SearchRequest {
        filter: Some(Filter::parse(&serde_json::json!({"bucket": 3})).unwrap()),
        ..plain.clone()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (name, req) in [("search", &plain), ("filtered search", &filtered)] {
        let (mut bare_t, mut read_t, mut flush_t) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for round in 0..ROUNDS + 5 {
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..BATCH {
                    bare.vector_search("bench", req).await.unwrap();
                }
            });
            let b = t.elapsed();
            let t = Instant::now();
            rt.block_on(async {
                for _ in 0..BATCH {
                    audited.vector_search("bench", req).await.unwrap();
                }
            });
            let r = t.elapsed();
            let t = Instant::now();
            log.core.flush_queue().unwrap();
            let f = t.elapsed();
            // The first rounds warm caches and the allocator.
            if round >= 5 {
                (bare_t, read_t, flush_t) = (bare_t + b, read_t + r, flush_t + f);
            }
        }
        let per = |d: Duration| d.as_nanos() as f64 / (BATCH * ROUNDS) as f64;
        println!(
            "{name}: caller {:.0} ns per read ({:.0} ns with audit, {:.0} ns bare); flusher {:.0} ns per entry",
            per(read_t) - per(bare_t),
            per(read_t),
            per(bare_t),
            per(flush_t),
        );
    }
    let n = log.status().next_seq;
    assert!(log.verify().unwrap().ok, "{n} entries");
}
