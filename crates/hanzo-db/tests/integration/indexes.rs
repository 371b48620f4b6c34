//! Vector, scalar and full-text indexes on real data.

use hanzo_db::{DistanceMetric, FieldType, IndexSpec, MultimodalRecord, TableSchema};

use crate::common::{clustered, exact_knn, lance_db};

fn recall(got: &[String], want: &[String]) -> f64 {
    got.iter().filter(|id| want.contains(id)).count() as f64 / want.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ivf_pq_on_clustered_data_has_recall_above_095() {
    let t = lance_db().await;
    let dim = 64;
    t.db.create_table("v", TableSchema::new(dim).metric(DistanceMetric::L2))
        .await
        .unwrap();
    let (vs, queries) = clustered(12_000, 50, dim, 40, 5);
    let data: Vec<(String, Vec<f32>)> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("r{i}"), v.clone()))
        .collect();
    t.db.insert(
        "v",
        data.iter()
            .map(|(id, v)| MultimodalRecord::new(id, v.clone()))
            .collect(),
    )
    .await
    .unwrap();
    t.db.create_ivf_pq_index("v", "vector", 16, 16)
        .await
        .unwrap();
    let idx = t.db.list_indexes("v").await.unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0].indexed_rows, Some(12_000));

    let mut total = 0.0;
    for q in &queries {
        let hits = t.db.vector_search("v", q, 10).await.unwrap();
        let got: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
        total += recall(&got, &exact_knn(&data, q, 10, DistanceMetric::L2));
    }
    let r = total / queries.len() as f64;
    assert!(r >= 0.95, "recall@10 = {r}");

    // Rows added after the index are still found, and compaction folds them in.
    let fresh = MultimodalRecord::new("fresh", vec![5.0; dim]);
    t.db.insert("v", vec![fresh]).await.unwrap();
    let hits = t.db.vector_search("v", &[5.0; 64], 1).await.unwrap();
    assert_eq!(hits[0].record.id, "fresh");
    t.db.compact("v").await.unwrap();
    let idx = t.db.list_indexes("v").await.unwrap();
    assert_eq!(idx[0].unindexed_rows, Some(0));
    assert_eq!(
        t.db.vector_search("v", &[5.0; 64], 1).await.unwrap()[0]
            .record
            .id,
        "fresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_hnsw_and_scalar_indexes() {
    let t = lance_db().await;
    let dim = 32;
    t.db.create_table(
        "h",
        TableSchema::new(dim)
            .metric(DistanceMetric::Cosine)
            .field("n", FieldType::Int),
    )
    .await
    .unwrap();
    let (vs, queries) = clustered(3000, 20, dim, 20, 9);
    let data: Vec<(String, Vec<f32>)> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("r{i}"), v.clone()))
        .collect();
    t.db.insert(
        "h",
        data.iter()
            .enumerate()
            .map(|(i, (id, v))| MultimodalRecord::new(id, v.clone()).with_metadata("n", i as i64))
            .collect(),
    )
    .await
    .unwrap();
    for spec in [
        IndexSpec::Auto,
        IndexSpec::Hnsw {
            m: None,
            ef_construction: None,
        },
    ] {
        t.db.create_index("h", spec.clone()).await.unwrap();
        let mut total = 0.0;
        for q in &queries {
            let got: Vec<String> =
                t.db.vector_search("h", q, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| h.record.id)
                    .collect();
            total += recall(&got, &exact_knn(&data, q, 10, DistanceMetric::Cosine));
        }
        let r = total / queries.len() as f64;
        assert!(r >= 0.95, "{spec:?}: recall@10 = {r}");
    }
    t.db.create_index("h", IndexSpec::Scalar { column: "n".into() })
        .await
        .unwrap();
    let kinds: Vec<String> =
        t.db.list_indexes("h")
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.kind)
            .collect();
    assert!(
        kinds
            .iter()
            .any(|k| k.contains("BTree") || k.to_uppercase().contains("BTREE")),
        "{kinds:?}"
    );
    let n =
        t.db.count(
            "h",
            Some(hanzo_db::Filter::parse(&serde_json::json!({"n": {"$lt": 100}})).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(n, 100);
}

#[tokio::test]
async fn index_errors_are_clear() {
    let t = lance_db().await;
    t.db.create_table("small", TableSchema::new(8))
        .await
        .unwrap();
    t.db.insert("small", vec![MultimodalRecord::new("a", vec![0.0; 8])])
        .await
        .unwrap();
    let e =
        t.db.create_ivf_pq_index("small", "vector", 4, 2)
            .await
            .unwrap_err();
    assert!(e.to_string().contains("at least"), "{e}");
    assert!(
        t.db.create_ivf_pq_index("small", "vector", 4, 3)
            .await
            .is_err(),
        "pq_dims must divide dim"
    );
    assert!(
        t.db.create_ivf_pq_index("small", "text", 4, 2)
            .await
            .is_err()
    );
    assert!(
        t.db.create_index(
            "small",
            IndexSpec::Scalar {
                column: "nope".into()
            }
        )
        .await
        .is_err()
    );
}
