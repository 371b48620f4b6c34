//! Versions, search and get at a version, restore, tags.

use hanzo_db::{Error, MultimodalRecord, Projection, TableSchema};

use crate::common::lance_db_unbuffered;

#[tokio::test]
async fn search_at_old_version_and_restore() {
    // One version per write: without the write buffer, which folds small writes into batches.
    let t = lance_db_unbuffered().await;
    t.db.create_table("tt", TableSchema::new(2)).await.unwrap();
    let v1 =
        t.db.insert("tt", vec![MultimodalRecord::new("a", vec![1.0, 0.0])])
            .await
            .unwrap();
    let v2 =
        t.db.insert("tt", vec![MultimodalRecord::new("b", vec![0.0, 1.0])])
            .await
            .unwrap();
    assert!(v2 > v1);
    t.db.delete("tt", &["a"]).await.unwrap();
    t.db.upsert(
        "tt",
        vec![MultimodalRecord::new("b", vec![0.5, 0.5]).with_text("new")],
    )
    .await
    .unwrap();

    // At v1 only "a" existed.
    let old =
        t.db.search("tt")
            .vector(vec![1.0, 0.0])
            .k(10)
            .at_version(v1)
            .execute()
            .await
            .unwrap();
    assert_eq!(
        old.iter().map(|h| h.record.id.as_str()).collect::<Vec<_>>(),
        vec!["a"]
    );
    let at_v2 =
        t.db.get_many(
            "tt",
            &["a".into(), "b".into()],
            &Projection::all(),
            Some(v2),
        )
        .await
        .unwrap();
    assert_eq!(at_v2.len(), 2);
    assert_eq!(at_v2[1].vector, vec![0.0, 1.0]);
    // The latest state is untouched by reading the past.
    assert_eq!(t.db.count("tt", None).await.unwrap(), 1);

    let versions = t.db.list_versions("tt").await.unwrap();
    assert!(versions.len() >= 5, "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0].version < w[1].version));

    t.db.tag("tt", v2, "before_cleanup").await.unwrap();
    assert_eq!(t.db.tag_version("tt", "before_cleanup").await.unwrap(), v2);
    assert!(
        t.db.list_versions("tt")
            .await
            .unwrap()
            .iter()
            .any(|v| v.tags == vec!["before_cleanup".to_string()])
    );

    let restored = t.db.restore("tt", v2).await.unwrap();
    assert!(restored > v2);
    assert_eq!(t.db.count("tt", None).await.unwrap(), 2);
    assert_eq!(
        t.db.get("tt", "b").await.unwrap().unwrap().vector,
        vec![0.0, 1.0]
    );
    // Writes continue after a restore.
    t.db.insert("tt", vec![MultimodalRecord::new("c", vec![1.0, 1.0])])
        .await
        .unwrap();
    assert_eq!(t.db.count("tt", None).await.unwrap(), 3);

    assert!(matches!(
        t.db.search("tt")
            .vector(vec![1.0, 0.0])
            .at_version(999)
            .execute()
            .await,
        Err(Error::VersionNotFound { version: 999, .. })
    ));
    assert!(t.db.restore("tt", 999).await.is_err());
}
