//! What only the embedded SQL engines promise: SQLite keeps one file in WAL
//! mode; DuckDB answers SQL aggregates over the same table and exports
//! Parquet; both select by workload, refuse to pretend to encrypt, answer a
//! selective filter with `k` exact results, and say what they cannot do.

#![cfg(any(feature = "sqlite", feature = "duckdb"))]

use hanzo_db::{
    DatabaseBackend, DistanceMetric, Error, FieldType, IndexSpec, MultimodalRecord, TableSchema,
    Workload,
};
use serde_json::json;

use crate::common::{connect_in, exact_knn, random_vectors, sql_db};

fn schema() -> TableSchema {
    TableSchema::new(8)
        .metric(DistanceMetric::L2)
        .field("kind", FieldType::String)
        .field("year", FieldType::Int)
}

fn records(n: usize) -> Vec<MultimodalRecord> {
    random_vectors(n, 8, 5)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            MultimodalRecord::new(format!("r{i}"), v)
                .with_metadata("kind", ["a", "b", "c", "d"][i % 4])
                .with_metadata("year", 2000 + (i % 20) as i64)
                .with_metadata("rare", i % 40 == 7)
        })
        .collect()
}

async fn selective_filter_returns_k_exact(backend: DatabaseBackend) {
    let t = sql_db(backend).await;
    t.db.create_table("s", schema()).await.unwrap();
    let recs = records(800);
    t.db.insert("s", recs.clone()).await.unwrap();
    // 20 of 800 rows match: a KNN-then-filter engine would return fewer than k.
    let matching: Vec<(String, Vec<f32>)> = recs
        .iter()
        .filter(|r| r.metadata["rare"] == json!(true))
        .map(|r| (r.id.clone(), r.vector.clone()))
        .collect();
    assert_eq!(matching.len(), 20);
    for (metric, q) in [
        DistanceMetric::L2,
        DistanceMetric::Cosine,
        DistanceMetric::Dot,
    ]
    .into_iter()
    .zip(random_vectors(3, 8, 77))
    {
        let hits =
            t.db.search("s")
                .vector(q.clone())
                .metric(metric)
                .filter(json!({"rare": true}))
                .k(10)
                .execute()
                .await
                .unwrap();
        let got: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
        assert_eq!(
            got,
            exact_knn(&matching, &q, 10, metric),
            "{backend} {metric}"
        );
    }
    // Unsupported features say so, naming the backend.
    for spec in [
        IndexSpec::IvfPq {
            nlist: None,
            pq_dims: None,
        },
        IndexSpec::FullText,
    ] {
        match t.db.create_index("s", spec).await {
            Err(Error::Unsupported { backend: b, .. }) => assert_eq!(b, backend.to_string()),
            other => panic!("{backend}: expected Unsupported, got {other:?}"),
        }
    }
    assert!(!t.db.capabilities().time_travel);
    let v = t.db.version("s").await.unwrap();
    assert!(matches!(
        t.db.get_many("s", &["r1".into()], &Default::default(), Some(v - 1))
            .await,
        Err(Error::Unsupported { .. })
    ));
    assert_eq!(
        t.db.get_many("s", &["r1".into()], &Default::default(), Some(v))
            .await
            .unwrap()
            .len(),
        1,
        "the current version is readable"
    );
    // Inserting an id twice is refused and changes nothing; upsert replaces.
    assert!(matches!(
        t.db.insert("s", vec![recs[3].clone()]).await,
        Err(Error::BadRecord { .. })
    ));
    assert_eq!(t.db.count("s", None).await.unwrap(), 800);
    assert_eq!(t.db.version("s").await.unwrap(), v);
    // Scan returns every record once.
    let mut seen = std::collections::HashSet::new();
    let mut stream = t.db.scan("s", &Default::default(), None).await.unwrap();
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        for r in batch.unwrap() {
            assert!(seen.insert(r.id));
        }
    }
    assert_eq!(seen.len(), 800);
}

async fn refuses_encryption_and_opens_by_workload(backend: DatabaseBackend) {
    let dir = tempfile::tempdir().unwrap();
    match connect_in(dir.path()).backend(backend).execute().await {
        Err(Error::Unsupported {
            feature,
            backend: b,
        }) => {
            assert!(feature.contains("encryption"), "{feature}");
            assert_eq!(b, backend.to_string());
        }
        other => panic!("{backend} with encryption on: {other:?}"),
    }
    let mut cfg = hanzo_db::DatabaseConfig::from_toml_str(&format!(
        "[backends]\nvectors = \"lancedb\"\nanalytics = \"{backend}\"\n[security]\nencryption = false\n"
    ))
    .unwrap();
    cfg.path = dir.path().join("db");
    let db = hanzo_db::connect(dir.path().join("db"))
        .config(cfg)
        .workload(Workload::Analytics)
        .execute()
        .await
        .unwrap();
    assert_eq!(db.backend().backend_name(), backend.to_string());
    assert!(!db.security_status().unwrap().is_encrypted);
}

/// Every handle closed, then the file opened again: schema, records, blobs,
/// deletions and the write counter are all still there.
async fn survives_close_and_reopen(backend: DatabaseBackend) {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        connect_in(dir.path())
            .backend(backend)
            .encryption(false)
            .execute()
    };
    let recs: Vec<MultimodalRecord> = records(30)
        .into_iter()
        .map(|r| r.with_image(vec![0u8, 1, 2, 255]).with_text("t"))
        .collect();
    let version = {
        let db = open().await.unwrap();
        db.create_table("k", schema()).await.unwrap();
        db.insert("k", recs.clone()).await.unwrap();
        db.delete("k", &["r0"]).await.unwrap();
        db.upsert("k", vec![recs[1].clone().with_text("changed")])
            .await
            .unwrap();
        db.version("k").await.unwrap()
    };
    let db = open().await.unwrap();
    assert_eq!(db.list_tables().await.unwrap(), vec!["k"]);
    assert_eq!(db.table_schema("k").await.unwrap(), schema());
    assert_eq!(db.count("k", None).await.unwrap(), 29);
    assert_eq!(db.version("k").await.unwrap(), version);
    assert!(db.get("k", "r0").await.unwrap().is_none());
    assert_eq!(
        db.get("k", "r1").await.unwrap(),
        Some(recs[1].clone().with_text("changed"))
    );
    assert_eq!(db.get("k", "r2").await.unwrap(), Some(recs[2].clone()));
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn selective_filter_and_unsupported() {
        selective_filter_returns_k_exact(DatabaseBackend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workload_and_encryption() {
        refuses_encryption_and_opens_by_workload(DatabaseBackend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_and_reopen() {
        survives_close_and_reopen(DatabaseBackend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_file_in_wal_mode() {
        let t = sql_db(DatabaseBackend::Sqlite).await;
        t.db.create_table("w", schema()).await.unwrap();
        t.db.create_table("x", schema()).await.unwrap();
        t.db.insert("w", records(50)).await.unwrap();
        let dir = t.dir.path().join("db");
        let file = dir.join(hanzo_db::backend::sqlite::FILE_NAME);
        assert!(file.is_file());
        // Every table lives in that one file (plus SQLite's WAL and shared-memory
        // companions); the only other entry is hanzo-db's encryption marker.
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name.starts_with(hanzo_db::backend::sqlite::FILE_NAME) || name == ".hanzo",
                "unexpected {name} in {}",
                dir.display()
            );
        }
        let conn = rusqlite::Connection::open(&file).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM \"w\" WHERE kind = 'a'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 13, "the records table is plain SQL");
        assert!(t.db.table_stats("w").await.unwrap().disk_bytes > 0);
    }
}

#[cfg(feature = "duckdb")]
mod duckdb {
    use super::*;
    use hanzo_db::backend::duckdb::DuckDbBackend;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn selective_filter_and_unsupported() {
        selective_filter_returns_k_exact(DatabaseBackend::DuckDb).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workload_and_encryption() {
        refuses_encryption_and_opens_by_workload(DatabaseBackend::DuckDb).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_and_reopen() {
        survives_close_and_reopen(DatabaseBackend::DuckDb).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_aggregates_and_parquet_export() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = hanzo_db::DatabaseConfig::new(dir.path().join("db"));
        cfg.security.encryption = false;
        let duck = DuckDbBackend::open(&cfg).await.unwrap();
        let db = hanzo_db::Database::from_backend(Arc::new(duck.clone()), cfg);
        db.create_table("docs", schema()).await.unwrap();
        let recs = records(200);
        db.insert("docs", recs.clone()).await.unwrap();
        db.delete("docs", &["r0", "r1"]).await.unwrap();
        let live = &recs[2..];

        let rows = duck
            .sql(
                "SELECT kind, count(*) AS n, sum(year) AS years, \
                 avg(array_cosine_distance(vector, vector)) AS self_dist \
                 FROM main.docs GROUP BY kind ORDER BY kind",
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 4);
        for row in &rows {
            let kind = row["kind"].as_str().unwrap();
            let mine: Vec<_> = live
                .iter()
                .filter(|r| r.metadata["kind"] == json!(kind))
                .collect();
            assert_eq!(row["n"].as_i64().unwrap(), mine.len() as i64, "{kind}");
            let years: i64 = mine
                .iter()
                .map(|r| r.metadata["year"].as_i64().unwrap())
                .sum();
            assert_eq!(row["years"].as_f64().unwrap() as i64, years, "{kind}");
            assert!(row["self_dist"].as_f64().unwrap().abs() < 1e-5);
        }
        let rare = duck
            .sql("SELECT count(*) AS n FROM main.docs WHERE metadata->>'$.rare' = 'true'")
            .await
            .unwrap();
        assert_eq!(
            rare[0]["n"].as_i64().unwrap(),
            live.iter()
                .filter(|r| r.metadata["rare"] == json!(true))
                .count() as i64
        );

        let out = dir.path().join("docs.parquet");
        assert_eq!(duck.export_parquet("docs", &out).await.unwrap(), 198);
        let back = duck
            .sql(&format!(
                "SELECT id, year, vector::VARCHAR AS v FROM read_parquet('{}') ORDER BY id",
                out.display()
            ))
            .await
            .unwrap();
        assert_eq!(back.len(), 198);
        let mut want: Vec<&MultimodalRecord> = live.iter().collect();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        for (row, r) in back.iter().zip(want) {
            assert_eq!(row["id"], json!(r.id));
            assert_eq!(row["year"], r.metadata["year"]);
            let v: Vec<f32> = serde_json::from_str(row["v"].as_str().unwrap()).unwrap();
            assert_eq!(v, r.vector, "vectors survive the Parquet round trip");
        }
        assert!(matches!(
            duck.export_parquet("nope", &out).await,
            Err(Error::TableNotFound { .. })
        ));
    }
}
