//! The specification's two tests, as written, plus multimodal round trips.

use hanzo_db::{Blob, MultimodalRecord, TableSchema};

use crate::common::{lance_db, random_vectors};

#[tokio::test]
async fn search_1000_random_384d_returns_10_ordered_by_distance() {
    let t = lance_db().await;
    t.db.create_table("vectors", TableSchema::new(384))
        .await
        .unwrap();
    let vectors = random_vectors(1000, 384, 7);
    let records: Vec<_> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| MultimodalRecord::new(format!("r{i}"), v.clone()))
        .collect();
    t.db.insert("vectors", records).await.unwrap();
    assert_eq!(t.db.count("vectors", None).await.unwrap(), 1000);

    let hits =
        t.db.vector_search("vectors", &vectors[42], 10)
            .await
            .unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(
        hits[0].record.id, "r42",
        "a stored vector is its own nearest neighbour"
    );
    let d: Vec<f32> = hits.iter().map(|h| h.distance.expect("distance")).collect();
    assert!(
        d.windows(2).all(|w| w[0] <= w[1]),
        "ordered by distance: {d:?}"
    );
    assert!(d[0].abs() < 1e-4);
}

#[tokio::test]
async fn record_1536d_with_image_round_trips_through_query_by_id() {
    let t = lance_db().await;
    t.db.create_table("multimodal", TableSchema::new(1536))
        .await
        .unwrap();
    let image: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let rec = MultimodalRecord::new("img-1", random_vectors(1, 1536, 1).remove(0))
        .with_text("a picture")
        .with_image(image.clone());
    t.db.insert("multimodal", vec![rec.clone()]).await.unwrap();
    let got =
        t.db.query_by_id("multimodal", "img-1")
            .await
            .unwrap()
            .expect("found");
    assert_eq!(got.image.as_deref(), Some(image.as_slice()));
    assert_eq!(got, rec);
}

#[tokio::test]
async fn blobs_are_byte_exact_and_not_read_by_plain_search() {
    let t = lance_db().await;
    t.db.create_table("m", TableSchema::new(4)).await.unwrap();
    let audio: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let rec = MultimodalRecord::new("x", vec![1.0, 0.0, 0.0, 0.0])
        .with_audio(audio.clone())
        .with_blob(Blob::new("model/gltf-binary", vec![0u8, 255, 0, 1]))
        .with_blob(Blob::new("application/pdf", b"%PDF-1.7\0\xff".to_vec()))
        .with_metadata("nested", serde_json::json!({"a": {"b": [1, 2, 3]}}));
    t.db.insert("m", vec![rec.clone()]).await.unwrap();
    let hits =
        t.db.vector_search("m", &[1.0, 0.0, 0.0, 0.0], 1)
            .await
            .unwrap();
    assert!(hits[0].record.audio.is_none() && hits[0].record.blobs.is_empty());
    assert!(hits[0].record.vector.is_empty());
    assert_eq!(hits[0].record.metadata, rec.metadata);
    let full =
        t.db.search("m")
            .vector(vec![1.0, 0.0, 0.0, 0.0])
            .with_blobs()
            .with_vector()
            .execute()
            .await
            .unwrap();
    assert_eq!(full[0].record, rec);
}

#[tokio::test]
async fn a_large_insert_is_one_version_written_in_parallel_batches() {
    // 300 rows of 64 KiB text: over the 16 MiB a batch handed to Lance holds,
    // so LanceDB writes two batches (two fragments) in one commit.
    let t = lance_db().await;
    t.db.create_table("big", TableSchema::new(8)).await.unwrap();
    let before = t.db.version("big").await.unwrap();
    let vectors = random_vectors(300, 8, 11);
    let records: Vec<_> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            MultimodalRecord::new(format!("r{i}"), v.clone())
                .with_text(format!("{i}:").repeat(65536 / (format!("{i}:").len())))
        })
        .collect();
    t.db.insert("big", records.clone()).await.unwrap();
    assert_eq!(t.db.version("big").await.unwrap(), before + 1);
    assert_eq!(t.db.count("big", None).await.unwrap(), 300);
    for i in [0, 150, 299] {
        let got =
            t.db.get("big", &format!("r{i}"))
                .await
                .unwrap()
                .expect("stored");
        assert_eq!(got.text, records[i].text);
        assert_eq!(got.vector, records[i].vector);
    }
}
