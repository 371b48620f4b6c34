//! Migration from a real Chroma server (PyPI `chromadb`, started by
//! scripts/test.sh), filled through its own v2 HTTP API.

use hanzo_db::migrate::{ChromaSource, Migration};
use hanzo_db::{DistanceMetric, Error};
use serde_json::{Value, json};

use crate::common::lance_db;
use crate::migrate_support::{chroma_url, dyadic_vector, fast_retry, same_bits, unique};

async fn call(client: &reqwest::Client, url: String, body: Value) -> Value {
    let r = client.post(&url).json(&body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Creates `database` and its collections, returns nothing; every record
/// is `r{i}` with a dyadic vector (exact in any float format).
async fn fill(base: &str, database: &str) {
    let c = reqwest::Client::new();
    let root = format!("{base}/api/v2/tenants/default_tenant/databases");
    call(&c, root.clone(), json!({"name": database})).await;
    let colls = format!("{root}/{database}/collections");
    let docs = call(
        &c,
        colls.clone(),
        json!({"name": "docs", "configuration": {"hnsw": {"space": "cosine"}}}),
    )
    .await;
    let legacy = call(
        &c,
        colls.clone(),
        json!({"name": "legacy", "metadata": {"hnsw:space": "ip", "owner": "x"}}),
    )
    .await;
    call(&c, colls.clone(), json!({"name": "empty"})).await;
    let docs_id = docs["id"].as_str().unwrap();
    for chunk in (0..2500usize).collect::<Vec<_>>().chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|i| format!("r{i}")).collect();
        let embeddings: Vec<Vec<f32>> = chunk.iter().map(|&i| dyadic_vector(i, 8)).collect();
        let documents: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                if i % 10 == 3 {
                    Value::Null
                } else {
                    json!(format!("document {i}"))
                }
            })
            .collect();
        let metadatas: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                if i % 7 == 0 {
                    Value::Null
                } else {
                    json!({"i": i, "score": i as f64 / 4.0, "kind": format!("k{}", i % 3), "even": i % 2 == 0})
                }
            })
            .collect();
        let uris: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                if i % 5 == 0 {
                    json!(format!("s3://bucket/{i}.png"))
                } else {
                    Value::Null
                }
            })
            .collect();
        call(
            &c,
            format!("{colls}/{docs_id}/add"),
            json!({"ids": ids, "embeddings": embeddings, "documents": documents,
                   "metadatas": metadatas, "uris": uris}),
        )
        .await;
    }
    let legacy_id = legacy["id"].as_str().unwrap();
    call(
        &c,
        format!("{colls}/{legacy_id}/add"),
        json!({"ids": ["a", "b", "c"],
               "embeddings": [dyadic_vector(1, 3), dyadic_vector(2, 3), dyadic_vector(3, 3)]}),
    )
    .await;
}

/// Vectors as the Chroma server returns them, parsed as float32.
async fn chroma_vectors(base: &str, database: &str, coll: &str, ids: &[usize]) -> Vec<Vec<f32>> {
    let c = reqwest::Client::new();
    let colls = format!("{base}/api/v2/tenants/default_tenant/databases/{database}/collections");
    let info: Value = c
        .get(format!("{colls}/{coll}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = info["id"].as_str().unwrap();
    let want: Vec<String> = ids.iter().map(|i| format!("r{i}")).collect();
    let got = call(
        &c,
        format!("{colls}/{id}/get"),
        json!({"ids": want, "include": ["embeddings"]}),
    )
    .await;
    want.iter()
        .map(|w| {
            let k = got["ids"]
                .as_array()
                .unwrap()
                .iter()
                .position(|x| x == w)
                .unwrap();
            got["embeddings"][k]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_real_server_documents_metadata_and_distance() {
    let Some(base) = chroma_url() else { return };
    let database = unique("mig");
    fill(&base, &database).await;
    let t = lance_db().await;
    let src = || {
        ChromaSource::new(&base, None)
            .unwrap()
            .database(database.clone())
            .retry(fast_retry())
    };
    let plan = Migration::new(t.db.clone(), Box::new(src()))
        .dry_run(true)
        .execute()
        .await
        .unwrap();
    let docs_plan = plan.plan.iter().find(|p| p.source == "docs").unwrap();
    assert_eq!((docs_plan.dimension, docs_plan.count), (8, Some(2500)));
    assert_eq!(docs_plan.metric, DistanceMetric::Cosine);
    let empty = plan.plan.iter().find(|p| p.source == "empty").unwrap();
    assert!(
        empty.unsupported.is_some(),
        "an empty collection has no dimension"
    );

    let report = Migration::new(t.db.clone(), Box::new(src()))
        .batch_size(300)
        .checkpoint(t.dir.path().join("cp.json"))
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(t.db.list_tables().await.unwrap(), ["docs", "legacy"]);
    assert_eq!(t.db.count("docs", None).await.unwrap(), 2500);
    for (id, i) in [("a", 1usize), ("b", 2), ("c", 3)] {
        let r = t.db.get("legacy", id).await.unwrap().unwrap();
        assert!(
            same_bits(&r.vector, &dyadic_vector(i, 3)),
            "legacy {id}: {:?}",
            r.vector
        );
    }
    assert_eq!(
        t.db.table_schema("legacy").await.unwrap().metric,
        DistanceMetric::Dot,
        "hnsw:space ip read from the collection"
    );
    // Chroma returns some components of a cosine collection one ulp away
    // from what was added (-1.9999999 for -2): the migration must keep
    // exactly what Chroma serves, so compare with Chroma's own `get`.
    let ids = [0usize, 3, 5, 7, 299, 300, 2499];
    let served = chroma_vectors(&base, &database, "docs", &ids).await;
    for (k, &i) in ids.iter().enumerate() {
        let r = t.db.get("docs", &format!("r{i}")).await.unwrap().unwrap();
        assert!(
            same_bits(&r.vector, &served[k]),
            "r{i}: {:?} vs {:?}",
            r.vector,
            served[k]
        );
        let text = (i % 10 != 3).then(|| format!("document {i}"));
        assert_eq!(r.text, text, "r{i}");
        if i % 7 == 0 {
            assert!(!r.metadata.contains_key("kind"));
        } else {
            assert_eq!(r.metadata["score"], json!(i as f64 / 4.0));
            assert_eq!(r.metadata["even"], json!(i % 2 == 0));
        }
        assert_eq!(
            r.metadata.get("uri").cloned(),
            (i % 5 == 0).then(|| json!(format!("s3://bucket/{i}.png")))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_unknown_database_and_unreachable_server() {
    let Some(base) = chroma_url() else { return };
    let t = lance_db().await;
    let err = Migration::new(
        t.db.clone(),
        Box::new(
            ChromaSource::new(&base, None)
                .unwrap()
                .database(unique("missing"))
                .retry(fast_retry()),
        ),
    )
    .execute()
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no collections"), "{err}");
    let err = Migration::new(
        t.db.clone(),
        Box::new(
            ChromaSource::new("http://127.0.0.1:9", None)
                .unwrap()
                .retry(fast_retry()),
        ),
    )
    .execute()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::SourceUnreachable { .. }), "{err}");
}
