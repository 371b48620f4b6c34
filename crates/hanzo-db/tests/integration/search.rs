//! Full-text, hybrid and filtered search.

use hanzo_db::{Error, FieldType, IndexSpec, MultimodalRecord, TableSchema};
use serde_json::json;

use crate::common::lance_db;

async fn docs() -> crate::common::TempDb {
    let t = lance_db().await;
    t.db.create_table(
        "docs",
        TableSchema::new(3).field("topic", FieldType::String),
    )
    .await
    .unwrap();
    let rows = [
        ("cat", [1.0, 0.0, 0.0], "the cat sat on the mat", "pets"),
        ("dog", [0.9, 0.1, 0.0], "a dog chased the cat", "pets"),
        ("car", [0.0, 1.0, 0.0], "a fast red car", "vehicles"),
        (
            "bike",
            [0.0, 0.9, 0.1],
            "a red bicycle with a bell",
            "vehicles",
        ),
        ("tree", [0.0, 0.0, 1.0], "an old oak tree", "nature"),
    ];
    let records = rows
        .iter()
        .map(|(id, v, text, topic)| {
            MultimodalRecord::new(*id, v.to_vec())
                .with_text(*text)
                .with_metadata("topic", *topic)
        })
        .collect();
    t.db.insert("docs", records).await.unwrap();
    t
}

#[tokio::test]
async fn full_text_search_ranks_by_bm25() {
    let t = docs().await;
    t.db.create_index("docs", IndexSpec::FullText)
        .await
        .unwrap();
    let hits =
        t.db.search("docs")
            .text("cat")
            .k(5)
            .execute()
            .await
            .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.record.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"cat") && ids.contains(&"dog"));
    let scores: Vec<f32> = hits.iter().map(|h| h.score.unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn hybrid_search_fuses_vector_and_text() {
    let t = docs().await;
    t.db.create_index("docs", IndexSpec::FullText)
        .await
        .unwrap();
    // The vector is nearest to "car"; the text matches "bike" only ("bicycle").
    let hits =
        t.db.search("docs")
            .vector(vec![0.0, 1.0, 0.0])
            .text("bicycle bell")
            .k(3)
            .execute()
            .await
            .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.record.id.as_str()).collect();
    assert_eq!(ids[0], "bike", "in both lists, so ranked first: {ids:?}");
    assert!(ids.contains(&"car"));
    assert!(hits.iter().all(|h| h.score.is_some()));
    // Hybrid with a filter.
    let hits =
        t.db.search("docs")
            .vector(vec![0.0, 1.0, 0.0])
            .text("cat")
            .filter(json!({"topic": "pets"}))
            .k(5)
            .execute()
            .await
            .unwrap();
    assert!(hits.iter().all(|h| h.record.metadata["topic"] == "pets"));
}

#[tokio::test]
async fn vector_plus_metadata_filter() {
    let t = docs().await;
    let hits =
        t.db.hybrid_search("docs", &[1.0, 0.0, 0.0], json!({"topic": "vehicles"}), 5)
            .await
            .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.record.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| *id == "car" || *id == "bike"));
    // A selective prefilter still returns every match; a postfilter may return fewer.
    let post =
        t.db.search("docs")
            .vector(vec![1.0, 0.0, 0.0])
            .filter(json!({"topic": "nature"}))
            .k(1)
            .postfilter()
            .execute()
            .await
            .unwrap();
    assert!(post.len() <= 1);
    let pre =
        t.db.search("docs")
            .vector(vec![1.0, 0.0, 0.0])
            .filter(json!({"topic": "nature"}))
            .k(1)
            .execute()
            .await
            .unwrap();
    assert_eq!(pre[0].record.id, "tree");
}

#[tokio::test]
async fn empty_search_is_an_error() {
    let t = docs().await;
    assert!(matches!(
        t.db.search("docs").execute().await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        t.db.search("docs").text("  ").execute().await,
        Err(Error::InvalidArgument(_))
    ));
}
