//! Compaction, pruning, configuration and feature errors.

use std::time::Duration;

use hanzo_db::{DatabaseBackend, DatabaseConfig, Error, KeyConfig, MultimodalRecord, TableSchema};

use crate::common::{connect_in, lance_db};

#[tokio::test]
async fn compaction_merges_fragments_and_prunes_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DatabaseConfig::new(dir.path().join("db"));
    cfg.keep_versions_secs = 0;
    cfg.auto_compact_every = 0;
    // One fragment per insert: without the write buffer, which batches small writes.
    cfg.write_buffer.enabled = false;
    let db = connect_in(dir.path())
        .config(cfg)
        .key(KeyConfig::Default {
            key_dir: Some(dir.path().join("keys")),
        })
        .execute()
        .await
        .unwrap();
    db.create_table("k", TableSchema::new(2)).await.unwrap();
    for i in 0..20 {
        db.insert(
            "k",
            vec![MultimodalRecord::new(format!("r{i}"), vec![i as f32, 0.0])],
        )
        .await
        .unwrap();
    }
    let before = db.table_stats("k").await.unwrap();
    assert_eq!(before.fragments, 20);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = db.compact("k").await.unwrap();
    assert_eq!(stats.fragments_removed, 20);
    let after = db.table_stats("k").await.unwrap();
    assert_eq!(after.rows, 20);
    assert_eq!(after.fragments, 1);
    assert!(
        after.versions < before.versions,
        "{} !< {}",
        after.versions,
        before.versions
    );
    assert!(stats.versions_pruned > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_after_n_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DatabaseConfig::new(dir.path().join("db"));
    cfg.auto_compact_every = 10;
    let db = connect_in(dir.path())
        .config(cfg)
        .key(KeyConfig::Default {
            key_dir: Some(dir.path().join("keys")),
        })
        .execute()
        .await
        .unwrap();
    db.create_table("a", TableSchema::new(2)).await.unwrap();
    for i in 0..10 {
        db.insert(
            "a",
            vec![MultimodalRecord::new(format!("r{i}"), vec![0.0, i as f32])],
        )
        .await
        .unwrap();
    }
    let mut fragments = u64::MAX;
    for _ in 0..100 {
        fragments = db.table_stats("a").await.unwrap().fragments;
        if fragments == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fragments, 1, "background compaction ran");
    assert_eq!(db.count("a", None).await.unwrap(), 10);
}

#[tokio::test]
async fn disabled_backend_names_its_feature() {
    let dir = tempfile::tempdir().unwrap();
    for backend in [
        DatabaseBackend::DuckDb,
        DatabaseBackend::Postgres,
        DatabaseBackend::Sqlite,
        DatabaseBackend::Redis,
    ] {
        let compiled = match backend {
            DatabaseBackend::Postgres => cfg!(feature = "postgres"),
            DatabaseBackend::Redis => cfg!(feature = "redis"),
            DatabaseBackend::DuckDb => cfg!(feature = "duckdb"),
            DatabaseBackend::Sqlite => cfg!(feature = "sqlite"),
            DatabaseBackend::LanceDb => true,
        };
        if compiled {
            continue; // covered by that engine's own tests
        }
        let err = connect_in(dir.path())
            .backend(backend)
            .execute()
            .await
            .unwrap_err();
        match err {
            Error::FeatureDisabled { feature, .. } => assert_eq!(feature, backend.feature()),
            e => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn misconfigured_server_engines_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    if cfg!(feature = "redis") {
        // Redis caches; it does not store tables.
        let err = connect_in(dir.path())
            .backend(DatabaseBackend::Redis)
            .execute()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("redis_cache")),
            "{err}"
        );
    }
    if cfg!(feature = "postgres") && std::env::var("HANZO_DB_POSTGRES_URL").is_err() {
        let err = connect_in(dir.path())
            .backend(DatabaseBackend::Postgres)
            .execute()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("HANZO_DB_POSTGRES_URL")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn blob_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let db = connect_in(dir.path())
        .max_blob_bytes(1000)
        .execute()
        .await
        .unwrap();
    db.create_table("b", TableSchema::new(2)).await.unwrap();
    let err = db
        .insert(
            "b",
            vec![MultimodalRecord::new("x", vec![0.0, 0.0]).with_image(vec![0; 1001])],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::BlobTooLarge {
            size: 1001,
            limit: 1000,
            ..
        }
    ));
    assert!(err.hint().is_some());
    assert_eq!(db.count("b", None).await.unwrap(), 0);
}

#[tokio::test]
async fn stats_report_rows_and_disk() {
    let t = lance_db().await;
    t.db.create_table("s", TableSchema::new(4)).await.unwrap();
    t.db.insert(
        "s",
        (0..50)
            .map(|i| MultimodalRecord::new(format!("r{i}"), vec![i as f32; 4]))
            .collect(),
    )
    .await
    .unwrap();
    let s = t.db.table_stats("s").await.unwrap();
    assert_eq!(s.rows, 50);
    assert!(s.disk_bytes > 50 * 16);
    assert_eq!(t.db.version("s").await.unwrap(), s.version);
}
