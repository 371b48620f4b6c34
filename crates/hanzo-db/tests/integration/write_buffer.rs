//! The write buffer: crash safety (a child process killed at random points),
//! torn and damaged logs, visibility of buffered writes, concurrency, and no
//! plaintext in the log.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use hanzo_db::{
    Database, DatabaseConfig, DistanceMetric, Error, FieldType, Filter, KeyConfig,
    MultimodalRecord, Projection, TableSchema, WriteBufferConfig,
};
use serde_json::json;

use crate::common::{connect_in, exact_knn, random_vectors};

/// A buffer that never folds on its own (only when asked, or on reopen).
fn holding() -> WriteBufferConfig {
    WriteBufferConfig {
        max_rows: 1_000_000,
        max_delay_ms: 3_600_000,
        ..WriteBufferConfig::default()
    }
}

pub(crate) async fn open(
    dir: &Path,
    wb: WriteBufferConfig,
    encrypted: bool,
) -> hanzo_db::Result<Database> {
    let mut cfg = DatabaseConfig::new(dir.join("db"));
    cfg.write_buffer = wb;
    cfg.auto_compact_every = 0;
    connect_in(dir)
        .config(cfg)
        .key(KeyConfig::Default {
            key_dir: Some(dir.join("keys")),
        })
        .encryption(encrypted)
        .execute()
        .await
}

pub(crate) fn wal_dir(dir: &Path, table: &str) -> PathBuf {
    dir.join("db").join(".hanzo").join("wal").join(table)
}

pub(crate) fn segments(dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(wal_dir(dir, table))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "wal"));
    v.sort();
    v
}

/// Byte offsets of the frames of a segment: `(start, total length)`.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 64;
    // Stops at the zeros written ahead of the frames.
    while pos + 16 <= bytes.len() && bytes[pos..pos + 16].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, 16 + len));
        pos += 16 + len;
    }
    out
}

pub(crate) fn schema() -> TableSchema {
    TableSchema::new(4)
        .field("n", FieldType::Int)
        .field("at", FieldType::Timestamp)
}

pub(crate) fn rec(id: &str, n: i64) -> MultimodalRecord {
    MultimodalRecord::new(id, vec![n as f32, 1.0, 0.0, (n % 7) as f32])
        .with_text(format!("record {id} version {n}"))
        .with_metadata("n", n)
        .with_metadata("at", 1_700_000_000_000_000i64 + n)
}

pub(crate) async fn all_ids(db: &Database, table: &str) -> Vec<String> {
    let mut stream = db.scan(table, &Projection::default(), None).await.unwrap();
    let mut ids = Vec::new();
    while let Some(batch) = stream.next().await {
        ids.extend(batch.unwrap().into_iter().map(|r| r.id));
    }
    ids
}

async fn five_buffered(dir: &Path) {
    let db = open(dir, holding(), true).await.unwrap();
    db.create_table("t", schema()).await.unwrap();
    for i in 0..5 {
        db.insert("t", vec![rec(&format!("r{i}"), i)])
            .await
            .unwrap();
    }
    assert_eq!(db.count("t", None).await.unwrap(), 5);
    // Nothing folded: the table's own files hold no rows yet.
    assert_eq!(segments(dir, "t").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reopen_and_the_log_is_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    five_buffered(dir.path()).await;
    // Replaying twice (a crash during the first replay) must not duplicate rows.
    let seg = segments(dir.path(), "t").remove(0);
    let saved = std::fs::read(&seg).unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    assert_eq!(db.count("t", None).await.unwrap(), 5);
    drop(db);
    assert!(
        segments(dir.path(), "t").is_empty(),
        "replayed logs are removed"
    );
    std::fs::write(&seg, &saved).unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    let mut ids = all_ids(&db, "t").await;
    ids.sort();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4"]);
    let r3 = db.get("t", "r3").await.unwrap().unwrap();
    assert_eq!(
        (r3.vector, r3.text),
        (rec("r3", 3).vector, rec("r3", 3).text)
    );
    assert_eq!(r3.metadata["n"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    five_buffered(dir.path()).await;
    let seg = segments(dir.path(), "t").remove(0);
    let bytes = std::fs::read(&seg).unwrap();
    let f = frames(&bytes);
    assert_eq!(f.len(), 5);
    let (start, len) = f[4];
    for cut in [start + 3, start + 16, start + len / 2, start + len - 1] {
        std::fs::write(&seg, &bytes[..cut]).unwrap();
        let db = open(dir.path(), holding(), true).await.unwrap();
        let mut ids = all_ids(&db, "t").await;
        ids.sort();
        assert_eq!(ids, ["r0", "r1", "r2", "r3"], "cut at {cut}");
        assert!(db.get("t", "r4").await.unwrap().is_none());
        db.delete("t", &["r0", "r1", "r2", "r3"]).await.unwrap();
        db.flush().await.unwrap();
        assert_eq!(db.count("t", None).await.unwrap(), 0);
        drop(db);
        // The next round replays the same log again from scratch.
        std::fs::write(&seg, &bytes[..cut]).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_tail_is_cut_but_damage_in_the_middle_is_an_integrity_error() {
    let dir = tempfile::tempdir().unwrap();
    five_buffered(dir.path()).await;
    let seg = segments(dir.path(), "t").remove(0);
    let bytes = std::fs::read(&seg).unwrap();
    let f = frames(&bytes);

    // A flipped byte in the middle: refused, naming the log and the frame.
    for (frame, offset) in [(1usize, 20usize), (2, 2), (0, 40)] {
        let mut bad = bytes.clone();
        bad[f[frame].0 + offset] ^= 0x20;
        std::fs::write(&seg, &bad).unwrap();
        let err = open(dir.path(), holding(), true).await.unwrap_err();
        match &err {
            Error::Integrity { path, reason } => {
                assert!(path.ends_with(".wal"), "{err}");
                assert!(reason.contains(&format!("offset {}", f[frame].0)), "{err}");
            }
            other => panic!("expected an integrity error, got {other}"),
        }
        assert!(!err.is_user_error());
    }
    // Nothing was applied: without the buffer the table is still empty.
    let plain = open(
        dir.path(),
        WriteBufferConfig {
            enabled: false,
            ..WriteBufferConfig::default()
        },
        true,
    )
    .await
    .unwrap();
    assert_eq!(plain.count("t", None).await.unwrap(), 0);
    drop(plain);

    // The same flip in the last frame is a damaged tail: cut.
    let mut bad = bytes.clone();
    bad[f[4].0 + 30] ^= 0x20;
    std::fs::write(&seg, &bad).unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    assert_eq!(db.count("t", None).await.unwrap(), 4);
    assert!(db.get("t", "r4").await.unwrap().is_none());
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn leaks(dir: &Path, needles: &[&[u8]]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap();
            needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == *n))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_holds_no_plaintext() {
    const SECRET: &str = "buffered secret: the vault opens at dawn";
    const META: &str = "operation-quiet-harbour";
    let vector: Vec<f32> = vec![1234.5, 6789.25, 42.125, 7.0625];
    let vbytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    for encrypted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), holding(), encrypted).await.unwrap();
        db.create_table("t", TableSchema::new(4)).await.unwrap();
        db.insert(
            "t",
            vec![
                MultimodalRecord::new("s", vector.clone())
                    .with_text(SECRET)
                    .with_metadata("project", META),
            ],
        )
        .await
        .unwrap();
        db.upsert(
            "t",
            vec![MultimodalRecord::new("s2", vector.clone()).with_text(SECRET)],
        )
        .await
        .unwrap();
        drop(db);
        let seg = segments(dir.path(), "t");
        assert_eq!(seg.len(), 1);
        assert!(
            std::fs::metadata(&seg[0]).unwrap().len() > 200,
            "the writes are in the log"
        );
        let found = leaks(
            &dir.path().join("db"),
            &[
                SECRET.as_bytes(),
                META.as_bytes(),
                &vbytes[..8],
                b"\"project\"",
            ],
        );
        if encrypted {
            assert!(found.is_empty(), "plaintext on disk: {found:?}");
        } else {
            // The same scan finds the unencrypted database's log: it can fail.
            assert_eq!(found, seg);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_upserts_and_deletes_are_visible_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    db.create_table("t", schema()).await.unwrap();
    // 100 rows straight into the engine (a large write bypasses the buffer).
    db.insert("t", (0..100).map(|i| rec(&format!("e{i}"), i)).collect())
        .await
        .unwrap();
    assert!(segments(dir.path(), "t").is_empty());
    let v0 = db.version("t").await.unwrap();

    // Small writes: buffered, visible at once, no new engine version.
    db.upsert("t", vec![rec("e3", 1000)]).await.unwrap();
    assert_eq!(db.delete("t", &["e4", "absent"]).await.unwrap(), 1);
    assert_eq!(db.delete("t", &["e4"]).await.unwrap(), 0);
    db.insert("t", vec![rec("b1", 2000), rec("b2", 2001)])
        .await
        .unwrap();
    assert_eq!(db.delete("t", &["b2"]).await.unwrap(), 1);
    db.upsert("t", vec![rec("b1", 2002)]).await.unwrap();

    let check = async |db: &Database| {
        let got = db.get("t", "e3").await.unwrap().unwrap();
        assert_eq!(got.metadata["n"], 1000);
        assert_eq!(got.text.as_deref(), Some("record e3 version 1000"));
        assert!(db.get("t", "e4").await.unwrap().is_none());
        assert!(db.get("t", "b2").await.unwrap().is_none());
        assert_eq!(
            db.get("t", "b1").await.unwrap().unwrap().metadata["n"],
            2002
        );
        assert_eq!(db.count("t", None).await.unwrap(), 100);
        let big = Filter::parse(&json!({"n": {"$gte": 1000}})).unwrap();
        assert_eq!(db.count("t", Some(big.clone())).await.unwrap(), 2);
        let hits = db
            .search("t")
            .vector(rec("e3", 1000).vector)
            .k(3)
            .execute()
            .await
            .unwrap();
        assert_eq!(hits[0].record.id, "e3");
        assert!(hits[0].distance.unwrap() < 1e-6);
        let hits = db
            .search("t")
            .vector(rec("e4", 4).vector)
            .k(100)
            .execute()
            .await
            .unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.record.id.as_str()).collect();
        assert_eq!(ids.len(), 100);
        assert!(!ids.contains(&"e4") && !ids.contains(&"b2"));
        assert_eq!(ids.iter().filter(|i| **i == "e3").count(), 1);
        let filtered = db
            .search("t")
            .vector(vec![0.0; 4])
            .filter(big)
            .k(10)
            .execute()
            .await
            .unwrap();
        let mut ids: Vec<String> = filtered.into_iter().map(|h| h.record.id).collect();
        ids.sort();
        assert_eq!(ids, ["b1", "e3"]);
        let mut scanned = all_ids(db, "t").await;
        scanned.sort();
        let unique: HashSet<&String> = scanned.iter().collect();
        assert_eq!(unique.len(), 100, "no id twice in a scan");
        assert!(!scanned.contains(&"e4".to_string()));
    };
    check(&db).await;
    assert_eq!(segments(dir.path(), "t").len(), 1);
    // Folding changes nothing a reader sees, and makes a new engine version.
    db.flush().await.unwrap();
    assert!(db.version("t").await.unwrap() > v0);
    check(&db).await;
    // More buffered writes, then a reopen replays them.
    db.upsert("t", vec![rec("e3", 1000)]).await.unwrap();
    drop(db);
    let db = open(dir.path(), holding(), true).await.unwrap();
    check(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_over_buffer_and_engine_equals_exact_search() {
    for metric in [
        DistanceMetric::L2,
        DistanceMetric::Cosine,
        DistanceMetric::Dot,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), holding(), true).await.unwrap();
        db.create_table(
            "x",
            TableSchema::new(8)
                .metric(metric)
                .field("g", FieldType::Int),
        )
        .await
        .unwrap();
        let vs = random_vectors(160, 8, 5);
        let mut model: HashMap<String, (Vec<f32>, i64)> = HashMap::new();
        for (c, chunk) in vs.chunks(20).enumerate() {
            let recs: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let i = c * 20 + j;
                    MultimodalRecord::new(format!("x{i}"), v.clone())
                        .with_metadata("g", (i % 3) as i64)
                })
                .collect();
            for r in &recs {
                model.insert(
                    r.id.clone(),
                    (r.vector.clone(), r.metadata["g"].as_i64().unwrap()),
                );
            }
            db.insert("x", recs).await.unwrap();
            if c == 3 {
                db.flush().await.unwrap(); // half in the engine, half buffered
            }
        }
        let fresh = random_vectors(20, 8, 6);
        for (i, v) in fresh.iter().enumerate() {
            let id = format!("x{}", i * 7); // some engine rows, some buffered rows
            db.upsert(
                "x",
                vec![MultimodalRecord::new(id.clone(), v.clone()).with_metadata("g", 9)],
            )
            .await
            .unwrap();
            model.insert(id, (v.clone(), 9));
        }
        let gone: Vec<String> = (0..20).map(|i| format!("x{}", i * 5 + 1)).collect();
        db.delete("x", &gone).await.unwrap();
        for id in &gone {
            model.remove(id);
        }
        let data: Vec<(String, Vec<f32>)> = model
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let g0: Vec<(String, Vec<f32>)> = model
            .iter()
            .filter(|(_, (_, g))| *g == 0)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        assert_eq!(db.count("x", None).await.unwrap(), model.len() as u64);
        let f = Filter::parse(&json!({"g": 0})).unwrap();
        assert_eq!(
            db.count("x", Some(f.clone())).await.unwrap(),
            g0.len() as u64
        );
        for q in random_vectors(6, 8, 77) {
            let hits = db.vector_search("x", &q, 10).await.unwrap();
            let got: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
            assert_eq!(got, exact_knn(&data, &q, 10, metric), "{metric:?}");
            for h in &hits {
                let want = metric.distance(&q, &model[&h.record.id].0);
                assert!((h.distance.unwrap() - want).abs() < 1e-3 * want.abs().max(1.0));
            }
            let hits = db
                .search("x")
                .vector(q.clone())
                .filter(f.clone())
                .k(10)
                .execute()
                .await
                .unwrap();
            let got: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
            assert_eq!(got, exact_knn(&g0, &q, 10, metric), "filtered {metric:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_and_readers_lose_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let wb = WriteBufferConfig {
        max_rows: 24,
        max_delay_ms: 10,
        ..WriteBufferConfig::default()
    };
    let db = open(dir.path(), wb.clone(), true).await.unwrap();
    db.create_table("c", schema()).await.unwrap();
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let acked: Arc<Vec<AtomicUsize>> =
        Arc::new((0..WRITERS).map(|_| AtomicUsize::new(0)).collect());
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                db.insert("c", vec![rec(&format!("w{w}-{i}"), i as i64)])
                    .await
                    .unwrap();
                acked[w].store(i + 1, Ordering::Release);
            }
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2 {
        let db = db.clone();
        let acked = acked.clone();
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let mut last = 0u64;
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) || rounds == 0 {
                rounds += 1;
                // Every acknowledged row is visible to the next read.
                let seen: Vec<usize> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
                let n = db.count("c", None).await.unwrap();
                assert!(n >= last, "count went back from {last} to {n}");
                assert!(n >= seen.iter().sum::<usize>() as u64);
                last = n;
                for (w, &k) in seen.iter().enumerate() {
                    if k > 0 {
                        let id = format!("w{w}-{}", k - 1);
                        assert!(
                            db.get("c", &id).await.unwrap().is_some(),
                            "{id} acked but not visible"
                        );
                    }
                }
                let hits = db
                    .vector_search("c", &[1.0, 1.0, 0.0, 1.0], 5 + r)
                    .await
                    .unwrap();
                assert!(hits.len() <= 5 + r);
            }
            rounds
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    let total = (WRITERS * EACH) as u64;
    assert_eq!(db.count("c", None).await.unwrap(), total);
    let ids = all_ids(&db, "c").await;
    assert_eq!(ids.len() as u64, total);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len() as u64, total);
    drop(db);
    let db = open(dir.path(), wb, true).await.unwrap();
    assert_eq!(db.count("c", None).await.unwrap(), total);
    assert_eq!(all_ids(&db, "c").await.len() as u64, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_time_travel_see_folded_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    db.create_table("v", schema()).await.unwrap();
    for i in 0..3 {
        db.insert("v", vec![rec(&format!("a{i}"), i)])
            .await
            .unwrap();
    }
    // Listing versions folds first: the newest version holds the three rows.
    let versions = db.list_versions("v").await.unwrap();
    let v1 = versions.last().unwrap().version;
    db.delete("v", &["a0"]).await.unwrap();
    db.insert("v", vec![rec("b", 9)]).await.unwrap();
    let old = db
        .search("v")
        .vector(vec![0.0; 4])
        .k(10)
        .at_version(v1)
        .execute()
        .await
        .unwrap();
    let mut ids: Vec<_> = old.into_iter().map(|h| h.record.id).collect();
    ids.sort();
    assert_eq!(ids, ["a0", "a1", "a2"]);
    let now = db
        .get_many(
            "v",
            &["a0".into(), "b".into()],
            &Projection::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(now.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b"]);
    // Restore folds the buffer first, then brings v1 back.
    db.restore("v", v1).await.unwrap();
    let mut ids = all_ids(&db, "v").await;
    ids.sort();
    assert_eq!(ids, ["a0", "a1", "a2"]);
    assert_eq!(db.count("v", None).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_table_drops_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    db.create_table("d", schema()).await.unwrap();
    db.insert("d", vec![rec("x", 1)]).await.unwrap();
    assert_eq!(segments(dir.path(), "d").len(), 1);
    db.drop_table("d").await.unwrap();
    assert!(!wal_dir(dir.path(), "d").exists());
    db.create_table("d", schema()).await.unwrap();
    assert_eq!(db.count("d", None).await.unwrap(), 0);
    db.insert("d", vec![rec("y", 2)]).await.unwrap();
    drop(db);
    let db = open(dir.path(), holding(), true).await.unwrap();
    assert_eq!(all_ids(&db, "d").await, ["y"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_writes_hiding_the_nearest_engine_rows_still_give_k_results() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), holding(), true).await.unwrap();
    db.create_table("h", TableSchema::new(2)).await.unwrap();
    // 60 engine rows around the origin, then 40 of the nearest moved far away.
    let near: Vec<MultimodalRecord> = (0..60)
        .map(|i| MultimodalRecord::new(format!("n{i}"), vec![i as f32 * 0.01, 0.0]))
        .collect();
    db.insert("h", near).await.unwrap();
    for i in 0..40 {
        db.upsert(
            "h",
            vec![MultimodalRecord::new(
                format!("n{i}"),
                vec![100.0 + i as f32, 0.0],
            )],
        )
        .await
        .unwrap();
    }
    let hits = db.vector_search("h", &[0.0, 0.0], 10).await.unwrap();
    let ids: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
    let want: Vec<String> = (40..50).map(|i| format!("n{i}")).collect();
    assert_eq!(ids, want);
    let far = db.vector_search("h", &[100.0, 0.0], 3).await.unwrap();
    assert_eq!(
        far.iter().map(|h| h.record.id.as_str()).collect::<Vec<_>>(),
        ["n0", "n1", "n2"]
    );
}
