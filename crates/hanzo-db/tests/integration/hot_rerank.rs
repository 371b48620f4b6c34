//! Re-ranking from disk: a table whose full-precision vectors do not fit the
//! hot index's budget keeps them in an encrypted file beside the graph and
//! re-scores each search's best candidates with them.
#![cfg(feature = "hot")]

use std::path::Path;

use hanzo_db::hot::HotPath;
use hanzo_db::{Database, DistanceMetric, HotConfig, TableSchema};

use crate::common::clustered;
use crate::hot_index::{bare, graph_always, open, ready};

/// Room for 5,000 × 256 quantised rows, not for their float32 copies.
fn tight() -> HotConfig {
    HotConfig {
        memory_budget_bytes: 6_000_000,
        ..graph_always()
    }
}

fn vector_files(dir: &Path, table: &str) -> Vec<std::path::PathBuf> {
    let hot = dir.join("db/.hanzo/hot");
    let mut found: Vec<_> = std::fs::read_dir(&hot)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        name.starts_with(&format!("{table}.")) && name.ends_with(".vec")
    });
    found
}

/// The largest gap between a hit's distance and the exact cosine distance of
/// its vector, over the top 10 of each query; and the share of the exact top
/// 10 found (recall@10).
async fn distance_error(db: &Database, vs: &[Vec<f32>], queries: &[Vec<f32>]) -> (f32, f64) {
    let (mut worst, mut found) = (0f32, 0usize);
    for q in queries {
        let hits = db.vector_search("q", q, 10).await.unwrap();
        assert_eq!(hits.len(), 10);
        let mut exact: Vec<(f32, usize)> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (DistanceMetric::Cosine.distance(q, v), i))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        for h in &hits {
            let i: usize = h.record.id[1..].parse().unwrap();
            let d = DistanceMetric::Cosine.distance(q, &vs[i]);
            worst = worst.max((h.distance.unwrap() - d).abs());
            found += exact[..10].iter().any(|(_, j)| *j == i) as usize;
        }
    }
    (worst, found as f64 / 100.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_precision_over_the_budget_reranks_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (vs, qs) = clustered(5000, 10, 256, 20, 9);
    {
        let db = open(dir.path(), tight()).await;
        let schema = TableSchema::new(256).metric(DistanceMetric::Cosine);
        db.create_table("q", schema).await.unwrap();
        db.insert("q", bare(&vs)).await.unwrap();
        let s = ready(&db, "q").await;
        assert_eq!(s.serving, HotPath::Hot, "{s:?}");
        assert_eq!(s.quantization.as_deref(), Some("i8"));
        assert!(!s.rerank && s.rerank_on_disk, "{s:?}");
        // Distances are the float32 vectors' (stored as f16), not the graph's i8.
        let (worst, recall) = distance_error(&db, &vs, &qs).await;
        assert!(worst < 2e-4, "largest distance error {worst}");
        assert!(recall >= 0.95, "recall@10 {recall}");
        eprintln!("recall@10 re-ranked from disk: {recall}");
        let files = vector_files(dir.path(), "q");
        assert_eq!(files.len(), 1, "{files:?}");
        // Sealed: no vector's float32 or f16 bytes in the clear.
        let bytes = std::fs::read(&files[0]).unwrap();
        assert!(bytes.len() > 5000 * 512, "{} bytes", bytes.len());
        let f16: Vec<u8> = vs[1][..4]
            .iter()
            .flat_map(|x| half_bits(*x).to_le_bytes())
            .collect();
        assert!(!bytes.windows(8).any(|w| w == &f16[..]));
    }
    // Reopened: the saved graph names the file, and it is used again.
    {
        let db = open(dir.path(), tight()).await;
        let s = ready(&db, "q").await;
        assert!(s.loaded_from_disk && s.rerank_on_disk, "{s:?}");
        let (worst, _) = distance_error(&db, &vs, &qs).await;
        assert!(worst < 2e-4, "largest distance error {worst}");
    }
    // A damaged file is not trusted: its slots fail their checks and the
    // graph's distances serve (coarser), with the same rows found.
    let file = &vector_files(dir.path(), "q")[0];
    let mut bytes = std::fs::read(file).unwrap();
    for b in &mut bytes[64..] {
        *b ^= 0x5a;
    }
    std::fs::write(file, bytes).unwrap();
    let db = open(dir.path(), tight()).await;
    let s = ready(&db, "q").await;
    assert_eq!(s.serving, HotPath::Hot, "{s:?}");
    let (worst, recall) = distance_error(&db, &vs, &qs).await;
    assert!(worst > 2e-4, "damaged slots were used: error {worst}");
    assert!(recall >= 0.5, "recall@10 {recall}");
    eprintln!("recall@10 from the graph alone: {recall}");
    assert_eq!(
        db.vector_search("q", &vs[17], 1).await.unwrap()[0]
            .record
            .id,
        "r17"
    );
    // Dropping the table removes its vectors.
    db.drop_table("q").await.unwrap();
    assert!(vector_files(dir.path(), "q").is_empty());
}

/// IEEE half-precision bits of `x` (round to nearest), for the test's own check.
fn half_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    let mant = b & 0x7f_ffff;
    let mut h = ((exp as u32) << 10) | (mant >> 13);
    if mant & 0x1000 != 0 {
        h += 1;
    }
    sign | h as u16
}

/// Turned off, a table that fits only quantised is ranked by the graph
/// alone and writes no vector file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reranking_from_disk_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let (vs, qs) = clustered(5000, 10, 256, 20, 9);
    let db = open(
        dir.path(),
        HotConfig {
            rerank_on_disk: false,
            ..tight()
        },
    )
    .await;
    let schema = TableSchema::new(256).metric(DistanceMetric::Cosine);
    db.create_table("q", schema).await.unwrap();
    db.insert("q", bare(&vs)).await.unwrap();
    let s = ready(&db, "q").await;
    assert_eq!(s.serving, HotPath::Hot, "{s:?}");
    assert!(!s.rerank && !s.rerank_on_disk, "{s:?}");
    assert!(vector_files(dir.path(), "q").is_empty());
    let (worst, _) = distance_error(&db, &vs, &qs).await;
    assert!(worst > 2e-4, "graph distances expected: error {worst}");
}
