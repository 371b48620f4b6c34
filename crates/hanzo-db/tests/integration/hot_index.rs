//! The hot in-memory index in front of LanceDB: equal to exact search,
//! writes visible at once, filters during the walk, persisted encrypted,
//! concurrent use, and the paths it leaves to LanceDB.
#![cfg(feature = "hot")]

use std::time::Duration;

use hanzo_db::hot::HotPath;
use hanzo_db::{Database, DistanceMetric, FieldType, HotConfig, MultimodalRecord, TableSchema};
use serde_json::json;

use crate::common::{TempDb, connect_in, exact_knn, random_vectors};

const WAIT: Duration = Duration::from_secs(60);

/// Hot settings that put every row in the graph (no brute-force shortcut
/// for small tables), so the tests exercise the HNSW path.
pub(crate) fn graph_always() -> HotConfig {
    HotConfig {
        exact_below: 0,
        ..HotConfig::default()
    }
}

pub(crate) async fn open(dir: &std::path::Path, hot: HotConfig) -> Database {
    connect_in(dir).hot(hot).execute().await.expect("open")
}

pub(crate) async fn temp(hot: HotConfig) -> TempDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), hot).await;
    TempDb { db, dir }
}

pub(crate) async fn ready(db: &Database, table: &str) -> hanzo_db::hot::HotStatus {
    // Small writes wait in the write buffer above the hot index until folded.
    db.flush().await.expect("flush");
    db.wait_hot(table, WAIT)
        .await
        .expect("wait")
        .expect("hot index on")
}

/// Records `r0, r1, …` of these vectors, nothing else.
pub(crate) fn bare(vs: &[Vec<f32>]) -> Vec<MultimodalRecord> {
    vs.iter()
        .enumerate()
        .map(|(i, v)| MultimodalRecord::new(format!("r{i}"), v.clone()))
        .collect()
}

fn rec(i: usize, v: Vec<f32>) -> MultimodalRecord {
    MultimodalRecord::new(format!("r{i}"), v)
        .with_text(format!("row {i}"))
        .with_metadata("bucket", (i % 100) as i64)
        .with_metadata("info", json!({"even": i % 2 == 0}))
}

fn schema(dim: usize, metric: DistanceMetric) -> TableSchema {
    TableSchema::new(dim)
        .metric(metric)
        .field("bucket", FieldType::Int)
        .field("at", FieldType::Timestamp)
}

/// A table of `n` records `rec(i)` over seeded random vectors; returns the vectors.
async fn table_of(
    db: &Database,
    name: &str,
    n: usize,
    (dim, metric): (usize, DistanceMetric),
    seed: u64,
) -> Vec<Vec<f32>> {
    db.create_table(name, schema(dim, metric)).await.unwrap();
    let vs = random_vectors(n, dim, seed);
    let recs = vs.iter().enumerate().map(|(i, v)| rec(i, v.clone()));
    db.insert(name, recs.collect()).await.unwrap();
    vs
}

/// Small tables (under `exact_below` rows) are searched exactly in memory:
/// the hot path must equal exact search, and LanceDB's own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_equals_exact_search_in_every_metric() {
    let t = temp(HotConfig::default()).await;
    check_against_exact(&t.db, true).await;
}

/// With every row in the HNSW graph (quantised, then re-ranked), recall on
/// small data stays near 1 and every distance returned is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_path_is_near_exact_in_every_metric() {
    let t = temp(graph_always()).await;
    check_against_exact(&t.db, false).await;
}

async fn check_against_exact(db: &Database, exact: bool) {
    for (name, metric) in [
        ("l2", DistanceMetric::L2),
        ("cos", DistanceMetric::Cosine),
        ("dot", DistanceMetric::Dot),
    ] {
        db.create_table(name, schema(16, metric)).await.unwrap();
        let vs = random_vectors(600, 16, 5);
        let data: Vec<(String, Vec<f32>)> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("r{i}"), v.clone()))
            .collect();
        db.insert(
            name,
            vs.iter()
                .enumerate()
                .map(|(i, v)| rec(i, v.clone()))
                .collect(),
        )
        .await
        .unwrap();
        let s = ready(db, name).await;
        assert_eq!(s.serving, HotPath::Hot, "{name}: {s:?}");
        assert_eq!((s.rows, s.pending_rows), (600, 0), "{name}: {s:?}");
        assert!(s.rerank, "small tables keep full-precision vectors");
        let mut found = 0;
        for q in random_vectors(25, 16, 99) {
            let hits = db.vector_search(name, &q, 10).await.unwrap();
            let got: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
            let want = exact_knn(&data, &q, 10, metric);
            found += got.iter().filter(|id| want.contains(id)).count();
            for h in &hits {
                let i: usize = h.record.id[1..].parse().unwrap();
                let want = metric.distance(&q, &vs[i]);
                assert!((h.distance.unwrap() - want).abs() < 1e-4, "{name}");
                assert_eq!(h.record.text.as_deref(), Some(format!("row {i}").as_str()));
                assert_eq!(h.record.metadata["bucket"], json!((i % 100) as i64));
            }
            if exact {
                assert_eq!(got, want, "{name}");
                // The same as LanceDB's own answer (a search at the current
                // version is served by LanceDB).
                let v = db.version(name).await.unwrap();
                let lance = db.search(name).vector(q.clone()).k(10).at_version(v);
                let lance: Vec<String> = lance
                    .execute()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| h.record.id)
                    .collect();
                assert_eq!(got, lance, "{name}");
            }
        }
        let recall = found as f64 / 250.0;
        assert!(recall >= 0.97, "{name}: recall@10 {recall}");
        let s = db.hot_status(name).unwrap();
        let lance = if exact { 25 } else { 0 };
        assert_eq!((s.hot_searches, s.lance_searches), (25, lance), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_upserts_and_inserts_are_visible_at_once() {
    let t = temp(graph_always()).await;
    let vs = table_of(&t.db, "w", 300, (8, DistanceMetric::L2), 1).await;
    ready(&t.db, "w").await;
    let top = |q: Vec<f32>| {
        let db = t.db.clone();
        async move {
            db.vector_search("w", &q, 1).await.unwrap()[0]
                .record
                .clone()
        }
    };
    assert_eq!(top(vs[7].clone()).await.id, "r7");
    t.db.delete("w", &["r7"]).await.unwrap();
    assert_ne!(top(vs[7].clone()).await.id, "r7", "deleted row still found");
    // An upsert moves a row: found at its new place, with its new text, not at the old.
    let far = vec![50.0; 8];
    t.db.upsert("w", vec![rec(8, far.clone()).with_text("moved")])
        .await
        .unwrap();
    let moved = top(far).await;
    assert_eq!(
        (moved.id.as_str(), moved.text.as_deref()),
        ("r8", Some("moved"))
    );
    assert_ne!(top(vs[8].clone()).await.id, "r8");
    // A new row is found by the very next search.
    t.db.insert("w", vec![rec(1000, vec![-50.0; 8])])
        .await
        .unwrap();
    assert_eq!(top(vec![-50.0; 8]).await.id, "r1000");
    // A delete by filter the hot index evaluates in memory.
    t.db.delete_where("w", json!({"bucket": 9})).await.unwrap();
    assert_ne!(top(vs[9].clone()).await.id, "r9");
    let s = ready(&t.db, "w").await;
    assert_eq!(s.serving, HotPath::Hot);
    assert_eq!(s.rows, t.db.count("w", None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_filter_still_returns_k() {
    let t = temp(graph_always()).await;
    let vs = table_of(&t.db, "f", 3000, (16, DistanceMetric::Cosine), 2).await;
    assert_eq!(ready(&t.db, "f").await.serving, HotPath::Hot);
    // 1% of rows match.
    let matching: Vec<(String, Vec<f32>)> = vs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 == 42)
        .map(|(i, v)| (format!("r{i}"), v.clone()))
        .collect();
    for q in random_vectors(10, 16, 3) {
        let hits =
            t.db.hybrid_search("f", &q, json!({"bucket": 42}), 10)
                .await
                .unwrap();
        let got: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
        assert_eq!(got, exact_knn(&matching, &q, 10, DistanceMetric::Cosine));
    }
    // A JSON metadata path and `$or`, evaluated in memory.
    let q = vs[10].clone();
    let hits =
        t.db.hybrid_search(
            "f",
            &q,
            json!({"$or": [{"info.even": true}, {"id": "r11"}]}),
            5,
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].record.id, "r10");
    // A timestamp filter is left to LanceDB, and still answers.
    t.db.upsert(
        "f",
        vec![rec(5, vs[5].clone()).with_metadata("at", "2024-05-01T00:00:00Z")],
    )
    .await
    .unwrap();
    let hits =
        t.db.hybrid_search("f", &q, json!({"at": {"$gte": "2024-01-01T00:00:00Z"}}), 5)
            .await
            .unwrap();
    assert_eq!(
        hits.iter()
            .map(|h| h.record.id.as_str())
            .collect::<Vec<_>>(),
        vec!["r5"]
    );
}

/// A filter searches repeat becomes a bit per row (on tables of 10,000 rows
/// and more); inserts, upserts and deletes after that are honoured at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_filter_follows_every_write() {
    let t = temp(graph_always()).await;
    let vs = table_of(&t.db, "f", 12_000, (8, DistanceMetric::L2), 21).await;
    assert_eq!(ready(&t.db, "f").await.serving, HotPath::Hot);
    let q = vs[7].clone();
    let search = |k| t.db.hybrid_search("f", &q, json!({"bucket": 7}), k);
    let ids = |hits: Vec<hanzo_db::SearchHit>| -> Vec<String> {
        hits.into_iter().map(|h| h.record.id).collect()
    };
    // First and second use (the second makes the bits): same answer.
    let first = ids(search(5).await.unwrap());
    assert_eq!(first[0], "r7");
    assert_eq!(ids(search(5).await.unwrap()), first);
    // A new matching row, the best row moved out of the bucket, another deleted.
    t.db.insert("f", vec![rec(12_007, q.clone())])
        .await
        .unwrap();
    t.db.upsert("f", vec![rec(7, q.clone()).with_metadata("bucket", 8i64)])
        .await
        .unwrap();
    t.db.delete("f", &[first[1].clone()]).await.unwrap();
    // Once in the graph, the new row is found through its bit.
    ready(&t.db, "f").await;
    let hits = search(5).await.unwrap();
    assert!(
        hits.iter().all(|h| h.record.metadata["bucket"] == json!(7)),
        "{hits:?}"
    );
    let got = ids(hits);
    assert_eq!(got[0], "r12007");
    assert!(!got.contains(&"r7".to_string()) && !got.contains(&first[1]));
    assert_eq!(got[1..4], first[2..5], "the rest are unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_loads_the_saved_encrypted_index() {
    let dir = tempfile::tempdir().unwrap();
    let vs = random_vectors(800, 12, 4);
    {
        let db = open(dir.path(), graph_always()).await;
        db.create_table("p", schema(12, DistanceMetric::L2))
            .await
            .unwrap();
        db.insert(
            "p",
            vs.iter()
                .enumerate()
                .map(|(i, v)| rec(i, v.clone()))
                .collect(),
        )
        .await
        .unwrap();
        db.insert(
            "p",
            vec![MultimodalRecord::new("needle-id", vec![9.0; 12]).with_text("needle text")],
        )
        .await
        .unwrap();
        // A new version with the same rows (an index build) is saved too.
        db.create_index(
            "p",
            hanzo_db::IndexSpec::Scalar {
                column: "bucket".into(),
            },
        )
        .await
        .unwrap();
        let s = ready(&db, "p").await;
        assert!(!s.loaded_from_disk);
    }
    // Closing saved it, sealed: no id or text in the clear.
    let file = dir.path().join("db/.hanzo/hot/p.idx");
    let bytes = std::fs::read(&file).expect("saved index");
    assert_eq!(&bytes[..4], b"EVF1");
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b"needle-id") && !has(b"needle text") && !has(b"HZHOT1"));

    let db = open(dir.path(), graph_always()).await;
    // The first search waits for the saved index to load: LanceDB has no
    // vector index here and would scan every row meanwhile.
    let hit = &db.vector_search("p", &[9.0; 12], 1).await.unwrap()[0];
    assert_eq!(hit.record.id, "needle-id");
    let s = ready(&db, "p").await;
    assert_eq!((s.hot_searches, s.lance_searches), (1, 0), "{s:?}");
    assert_eq!(s.serving, HotPath::Hot);
    assert!(
        s.loaded_from_disk,
        "reopen rebuilt instead of loading: {s:?}"
    );
    assert_eq!(s.rows, 801);
    let hit = &db.vector_search("p", &[9.0; 12], 1).await.unwrap()[0];
    assert_eq!(hit.record.id, "needle-id");
    assert_eq!(
        db.vector_search("p", &vs[3], 1).await.unwrap()[0].record.id,
        "r3"
    );
    // Writes after the load are seen, and a damaged file is rebuilt, not trusted.
    db.delete("p", &["needle-id"]).await.unwrap();
    assert_ne!(
        db.vector_search("p", &[9.0; 12], 1).await.unwrap()[0]
            .record
            .id,
        "needle-id"
    );
    drop(db);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let db = open(dir.path(), graph_always()).await;
    let s = ready(&db, "p").await;
    assert_eq!(
        (s.serving, s.loaded_from_disk, s.rows),
        (HotPath::Hot, false, 800)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_and_writers_together_lose_no_rows() {
    let t = temp(graph_always()).await;
    t.db.create_table("c", TableSchema::new(8)).await.unwrap();
    let seed = random_vectors(200, 8, 6);
    t.db.insert(
        "c",
        seed.iter()
            .enumerate()
            .map(|(i, v)| MultimodalRecord::new(format!("s{i}"), v.clone()))
            .collect(),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            let vs = random_vectors(30, 8, 100 + w);
            for (i, v) in vs.into_iter().enumerate() {
                let id = format!("w{w}-{i}");
                db.insert("c", vec![MultimodalRecord::new(id.clone(), v.clone())])
                    .await
                    .unwrap();
                // Visible to the writer's very next search.
                let hit = &db.vector_search("c", &v, 1).await.unwrap()[0];
                assert_eq!(hit.record.id, id);
            }
        }));
    }
    for r in 0..4u64 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            for q in random_vectors(60, 8, 200 + r) {
                let hits = db.vector_search("c", &q, 5).await.unwrap();
                assert_eq!(hits.len(), 5);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let s = ready(&t.db, "c").await;
    assert_eq!((s.serving, s.rows), (HotPath::Hot, 320));
    assert_eq!(t.db.count("c", None).await.unwrap(), 320);
    for w in 0..4u64 {
        for (i, v) in random_vectors(30, 8, 100 + w).into_iter().enumerate() {
            let hit = &t.db.vector_search("c", &v, 1).await.unwrap()[0];
            assert_eq!(hit.record.id, format!("w{w}-{i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_is_served_by_lance_with_the_old_data() {
    // Unbuffered, so that every write returns the version it made.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = connect_in(dir.path())
        .hot(graph_always())
        .write_buffer(hanzo_db::WriteBufferConfig {
            enabled: false,
            ..Default::default()
        })
        .execute()
        .await
        .expect("open");
    let t = TempDb { db, dir };
    t.db.create_table("tt", TableSchema::new(2)).await.unwrap();
    let v1 =
        t.db.insert("tt", vec![MultimodalRecord::new("a", vec![1.0, 0.0])])
            .await
            .unwrap();
    t.db.upsert(
        "tt",
        vec![MultimodalRecord::new("a", vec![0.0, 1.0]).with_text("new")],
    )
    .await
    .unwrap();
    t.db.insert("tt", vec![MultimodalRecord::new("b", vec![1.0, 0.1])])
        .await
        .unwrap();
    let now =
        t.db.search("tt")
            .vector(vec![1.0, 0.0])
            .k(10)
            .execute()
            .await
            .unwrap();
    assert_eq!(now.len(), 2);
    assert_eq!(now[0].record.id, "b");
    let old =
        t.db.search("tt")
            .vector(vec![1.0, 0.0])
            .k(10)
            .at_version(v1)
            .execute();
    let old = old.await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        (old[0].record.id.as_str(), old[0].record.text.as_deref()),
        ("a", None)
    );
    assert_eq!(old[0].distance, Some(0.0));
    let s = t.db.hot_status("tt").unwrap();
    assert_eq!((s.hot_searches, s.lance_searches), (1, 1));
    // Restoring the old version rebuilds the hot index from it.
    t.db.restore("tt", v1).await.unwrap();
    let s = ready(&t.db, "tt").await;
    assert_eq!((s.serving, s.rows), (HotPath::Hot, 1));
    let hits =
        t.db.search("tt")
            .vector(vec![1.0, 0.0])
            .k(10)
            .execute()
            .await
            .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].record.text, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_over_the_budget_is_served_by_lance() {
    let t = temp(HotConfig {
        memory_budget_bytes: 64 * 1024,
        ..graph_always()
    })
    .await;
    t.db.create_table("big", TableSchema::new(32))
        .await
        .unwrap();
    let vs = random_vectors(2000, 32, 8);
    t.db.insert("big", bare(&vs)).await.unwrap();
    let s = ready(&t.db, "big").await;
    assert_eq!(s.serving, HotPath::Lance, "{s:?}");
    assert!(s.reason.unwrap().contains("budget"));
    assert_eq!(
        t.db.vector_search("big", &vs[17], 1).await.unwrap()[0]
            .record
            .id,
        "r17"
    );
}

/// Full precision does not fit, quantised alone does: the table stays hot
/// without re-ranking (its slack is the quantised layout's, not the full one's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_fits_only_quantised_stays_hot() {
    let t = temp(HotConfig {
        memory_budget_bytes: 6_000_000,
        ..graph_always()
    })
    .await;
    let schema = TableSchema::new(256).metric(DistanceMetric::Cosine);
    t.db.create_table("q", schema).await.unwrap();
    let vs = random_vectors(5000, 256, 9);
    t.db.insert("q", bare(&vs)).await.unwrap();
    let s = ready(&t.db, "q").await;
    assert_eq!(s.serving, HotPath::Hot, "{s:?}");
    assert!(!s.rerank, "{s:?}");
    assert_eq!(s.quantization.as_deref(), Some("i8"));
    let hits = t.db.vector_search("q", &vs[17], 3).await.unwrap();
    assert_eq!(hits[0].record.id, "r17");
}

/// A hot table that outgrows its budget with full-precision copies drops
/// them in place and goes on serving (no rebuild, which would hand its
/// searches to LanceDB meanwhile and re-add every row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_outgrowing_full_precision_drops_it_in_place() {
    let t = temp(HotConfig {
        memory_budget_bytes: 5_000_000,
        ..graph_always()
    })
    .await;
    let schema = TableSchema::new(256).metric(DistanceMetric::Cosine);
    t.db.create_table("g", schema).await.unwrap();
    let vs = random_vectors(3000, 256, 11);
    let recs = bare(&vs);
    t.db.insert("g", recs[..1000].to_vec()).await.unwrap();
    let s = ready(&t.db, "g").await;
    assert_eq!(s.serving, HotPath::Hot, "{s:?}");
    assert!(s.rerank, "1,000 rows fit with full precision: {s:?}");
    // Large enough to go past the write buffer, straight to the index.
    t.db.insert("g", recs[1000..].to_vec()).await.unwrap();
    let s = t.db.hot_status("g").unwrap();
    assert_eq!(
        s.serving,
        HotPath::Hot,
        "served at once, not rebuilt: {s:?}"
    );
    assert!(!s.rerank && s.rerank_on_disk, "{s:?}");
    assert_eq!(s.rows, 3000);
    assert!(s.memory_bytes <= 5_000_000, "{s:?}");
    let s = ready(&t.db, "g").await;
    assert_eq!((s.serving, s.rows), (HotPath::Hot, 3000), "{s:?}");
    for i in [17, 2017] {
        let hits = t.db.vector_search("g", &vs[i], 1).await.unwrap();
        assert_eq!(hits[0].record.id, format!("r{i}"));
    }
    // Rows of both inserts are re-ranked from disk: their exact distances.
    for q in random_vectors(5, 256, 12) {
        for h in t.db.vector_search("g", &q, 10).await.unwrap() {
            let i: usize = h.record.id[1..].parse().unwrap();
            let exact = DistanceMetric::Cosine.distance(&q, &vs[i]);
            assert!(
                (h.distance.unwrap() - exact).abs() < 2e-4,
                "{h:?} vs {exact}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_index_can_be_turned_off() {
    let t = temp(HotConfig {
        enabled: false,
        ..HotConfig::default()
    })
    .await;
    t.db.create_table("o", TableSchema::new(2)).await.unwrap();
    t.db.insert("o", vec![MultimodalRecord::new("a", vec![1.0, 0.0])])
        .await
        .unwrap();
    assert!(t.db.hot_status("o").is_none());
    assert!(t.db.wait_hot("o", WAIT).await.unwrap().is_none());
    assert_eq!(
        t.db.vector_search("o", &[1.0, 0.0], 1).await.unwrap()[0]
            .record
            .id,
        "a"
    );
    assert!(!t.dir.path().join("db/.hanzo/hot").exists());
}
