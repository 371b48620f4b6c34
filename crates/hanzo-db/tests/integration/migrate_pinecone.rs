//! Migration from Pinecone, against the Pinecone data-plane test double
//! (tests/doubles/pinecone_double.py).

use hanzo_db::migrate::{Migration, PineconeSource, RetryPolicy};
use hanzo_db::{DistanceMetric, Error};
use serde_json::{Value, json};

use crate::common::lance_db;
use crate::migrate_support::{Double, dyadic_vector, fast_retry, same_bits};

const KEY: &str = "pc-test-key";

fn record(ns: &str, i: usize) -> Value {
    json!({"id": format!("{ns}doc{i:04}#chunk"), "values": dyadic_vector(i, 6),
           "metadata": {"i": i, "genre": if i % 2 == 0 { "drama" } else { "comedy" }, "tags": ["a", "b"]}})
}

fn fixture(snake_case: bool, metric: Option<&str>) -> Value {
    let default: Vec<Value> = (0..250).map(|i| record("", i)).collect();
    let mut books: Vec<Value> = (0..30).map(|i| record("b-", i)).collect();
    // A sparse-only record: no dense values to migrate.
    books.push(json!({"id": "b-sparse", "sparseValues": {"indices": [3], "values": [0.5]}}));
    let mut fx = json!({
        "api_key": KEY,
        "dimension": 6,
        "snake_case": snake_case,
        "namespaces": {"": default, "books": books},
        "faults": [{"path": "/vectors/fetch", "status": 429, "first": 1, "retry_after": "1",
                    "body": {"code": 8, "message": "Request rate limit exceeded", "details": []}}],
    });
    if let Some(m) = metric {
        fx["metric"] = json!(m);
    }
    fx
}

fn source(d: &Double, key: &str) -> PineconeSource {
    PineconeSource::new(&d.url, Some(key.into()))
        .unwrap()
        .retry(fast_retry())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinecone_every_namespace_list_then_fetch_camel_case() {
    let Some(d) = Double::start("pinecone_double.py", &fixture(false, None)) else {
        return;
    };
    let t = lance_db().await;
    let report = Migration::new(t.db.clone(), Box::new(source(&d, KEY)))
        .batch_size(120) // two list calls (100 + 20) per page
        .checkpoint(t.dir.path().join("cp.json"))
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    let keys: Vec<&str> = report.plan.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(keys, ["__default__", "books"]);
    assert!(report.plan[0].notes.iter().any(|n| n.contains("cosine")));
    assert_eq!(t.db.count("__default__", None).await.unwrap(), 250);
    assert_eq!(t.db.count("books", None).await.unwrap(), 30);
    let books = report.tables.iter().find(|r| r.source == "books").unwrap();
    assert_eq!(
        books.skipped, 1,
        "the sparse-only record is counted, not written"
    );
    assert_eq!(
        t.db.table_schema("books").await.unwrap().metric,
        DistanceMetric::Cosine
    );
    for i in [0usize, 99, 100, 249] {
        let r =
            t.db.get("__default__", &format!("doc{i:04}#chunk"))
                .await
                .unwrap()
                .unwrap();
        assert!(same_bits(&r.vector, &dyadic_vector(i, 6)), "doc {i}");
        assert_eq!(r.metadata["tags"], json!(["a", "b"]));
        assert_eq!(r.metadata["i"], json!(i));
    }
    let stats = d.stats().await;
    assert_eq!(stats["faults"], 1, "{stats}");
    // 250 ids at 120 a page: list calls of 100+20, 100+20, 10 — never more than 100 at once.
    assert!(
        stats["requests"]["/vectors/list"].as_u64().unwrap() >= 5,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinecone_snake_case_fields_one_namespace_and_metric() {
    let Some(d) = Double::start("pinecone_double.py", &fixture(true, Some("euclidean"))) else {
        return;
    };
    let t = lance_db().await;
    let report = Migration::new(t.db.clone(), Box::new(source(&d, KEY).namespace("books")))
        .batch_size(8)
        .checkpoint(t.dir.path().join("cp.json"))
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(t.db.list_tables().await.unwrap(), ["books"]);
    assert_eq!(
        report.plan[0].count,
        Some(31),
        "vector_count read in snake_case"
    );
    assert_eq!(
        report.tables[0].skipped, 1,
        "sparse_values-only record skipped"
    );
    assert_eq!(
        t.db.table_schema("books").await.unwrap().metric,
        DistanceMetric::L2
    );

    let err = Migration::new(t.db.clone(), Box::new(source(&d, KEY).namespace("nope")))
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no namespace `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinecone_unauthorized_and_persistent_unavailability_are_clear_errors() {
    let mut fx = fixture(false, Some("dotproduct"));
    let Some(d) = Double::start("pinecone_double.py", &fx) else {
        return;
    };
    let t = lance_db().await;
    let err = Migration::new(t.db.clone(), Box::new(source(&d, "bad")))
        .execute()
        .await
        .unwrap_err();
    match &err {
        Error::SourceAuth { message, .. } => assert_eq!(message, "Unauthorized"),
        other => panic!("expected SourceAuth, got {other}"),
    }

    fx["faults"] = json!([{"path": "/vectors/fetch", "status": 503, "first": 1000,
                           "body": {"code": 14, "message": "Service unavailable", "details": []}}]);
    d.set_fixture(&fx).await;
    let cp = t.dir.path().join("cp.json");
    let err = Migration::new(
        t.db.clone(),
        Box::new(
            PineconeSource::new(&d.url, Some(KEY.into()))
                .unwrap()
                .retry(RetryPolicy {
                    max_retries: 2,
                    ..fast_retry()
                }),
        ),
    )
    .checkpoint(&cp)
    .execute()
    .await
    .unwrap_err();
    match &err {
        Error::SourceRequest {
            status, message, ..
        } => {
            assert_eq!(*status, Some(503));
            assert!(
                message.contains("Service unavailable") && message.contains("2 retries"),
                "{message}"
            );
        }
        other => panic!("expected SourceRequest, got {other}"),
    }
    assert!(err.hint().unwrap().contains("--resume"));
    let saved = hanzo_db::migrate::Checkpoint::load(&cp).unwrap().unwrap();
    assert!(saved.tables.values().all(|p| p.migrated == 0 && !p.done));
}
