//! Migration from Weaviate, against the Weaviate REST test double
//! (tests/doubles/weaviate_double.py).

use hanzo_db::migrate::{Migration, WeaviateSource};
use hanzo_db::{DistanceMetric, Error};
use serde_json::{Value, json};

use crate::common::lance_db;
use crate::migrate_support::{Double, dyadic_vector, fast_retry, same_bits};

const KEY: &str = "wv-test-key";

fn uuid(class: u32, i: usize) -> String {
    format!("{class:08x}-{:04x}-4000-8000-{:012x}", (i * 37) % 65536, i)
}

fn fixture() -> Value {
    let articles: Vec<Value> = (0..60)
        .map(|i| {
            json!({"id": uuid(1, i), "vector": dyadic_vector(i, 5),
                   "properties": {"title": format!("article {i}"), "wordCount": i * 10,
                                  "published": "2024-01-02T03:04:05Z",
                                  "location": {"latitude": 52.5, "longitude": 13.4}}})
        })
        .collect();
    let docs: Vec<Value> = (0..9)
        .map(|i| {
            json!({"id": uuid(2, i),
                   "vectors": {"title_vec": dyadic_vector(i + 50, 3), "body_vec": dyadic_vector(i + 80, 2)},
                   "properties": {"title": format!("doc {i}")}})
        })
        .collect();
    let notes = |tenant: &str, n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| {
                json!({"id": uuid(3, i), "vector": dyadic_vector(i + 300, 4),
                       "properties": {"owner": tenant, "text": format!("{tenant} note {i}")}})
            })
            .collect()
    };
    json!({
        "api_key": KEY,
        "classes": [
            {"class": "Article", "properties": [{"name": "title", "dataType": ["text"]}],
             "vectorizer": "none", "vectorIndexType": "hnsw",
             "vectorIndexConfig": {"distance": "l2-squared", "ef": -1},
             "multiTenancyConfig": {"enabled": false}},
            {"class": "Doc", "properties": [{"name": "title", "dataType": ["text"]}],
             "vectorConfig": {
                 "title_vec": {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw",
                               "vectorIndexConfig": {"distance": "cosine"}},
                 "body_vec": {"vectorizer": {"none": {}}, "vectorIndexType": "flat",
                              "vectorIndexConfig": {"distance": "dot"}}},
             "multiTenancyConfig": {"enabled": false}},
            {"class": "Note", "properties": [{"name": "text", "dataType": ["text"]}],
             "vectorizer": "none", "vectorIndexConfig": {},
             "multiTenancyConfig": {"enabled": true}},
        ],
        "tenants": {"Note": [{"name": "alice", "activityStatus": "HOT"},
                             {"name": "bob", "activityStatus": "HOT"},
                             {"name": "carol", "activityStatus": "COLD"}]},
        "objects": {"Article": articles, "Doc": docs,
                    "Note": {"alice": notes("alice", 10), "bob": notes("bob", 5), "carol": []}},
        "faults": [{"path": "/v1/objects", "status": 503, "every": 4, "retry_after": "0"}],
    })
}

fn source(d: &Double, key: &str) -> WeaviateSource {
    WeaviateSource::new(&d.url, Some(key.into()))
        .unwrap()
        .retry(fast_retry())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_cursor_legacy_and_named_vectors_and_tenants() {
    let Some(d) = Double::start("weaviate_double.py", &fixture()) else {
        return;
    };
    let t = lance_db().await;
    let report = Migration::new(t.db.clone(), Box::new(source(&d, KEY)))
        .batch_size(25)
        .text_field("text")
        .checkpoint(t.dir.path().join("cp.json"))
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    let keys: Vec<&str> = report.plan.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Article",
            "Doc:body_vec",
            "Doc:title_vec",
            "Note@alice",
            "Note@bob",
            "Note@carol"
        ]
    );
    let carol = report
        .plan
        .iter()
        .find(|p| p.source == "Note@carol")
        .unwrap();
    assert!(carol.unsupported.as_deref().unwrap().contains("COLD"));
    assert_eq!(
        t.db.list_tables().await.unwrap(),
        [
            "Article",
            "Doc_body_vec",
            "Doc_title_vec",
            "Note_alice",
            "Note_bob"
        ]
    );
    for (table, metric, n) in [
        ("Article", DistanceMetric::L2, 60),
        ("Doc_title_vec", DistanceMetric::Cosine, 9),
        ("Doc_body_vec", DistanceMetric::Dot, 9),
        ("Note_alice", DistanceMetric::Cosine, 10),
        ("Note_bob", DistanceMetric::Cosine, 5),
    ] {
        assert_eq!(
            t.db.table_schema(table).await.unwrap().metric,
            metric,
            "{table}"
        );
        assert_eq!(t.db.count(table, None).await.unwrap(), n, "{table}");
    }
    let a = t.db.get("Article", &uuid(1, 42)).await.unwrap().unwrap();
    assert!(same_bits(&a.vector, &dyadic_vector(42, 5)));
    assert_eq!(
        a.metadata["location"],
        json!({"latitude": 52.5, "longitude": 13.4})
    );
    assert_eq!(a.metadata["wordCount"], 420);
    let doc =
        t.db.get("Doc_body_vec", &uuid(2, 3))
            .await
            .unwrap()
            .unwrap();
    assert!(same_bits(&doc.vector, &dyadic_vector(83, 2)));
    // Same UUID in two tenants: each tenant's own object, text moved out of the metadata.
    let n = t.db.get("Note_bob", &uuid(3, 1)).await.unwrap().unwrap();
    assert_eq!(n.text.as_deref(), Some("bob note 1"));
    assert!(!n.metadata.contains_key("text"));
    assert_eq!(n.metadata["owner"], "bob");
    assert!(d.stats().await["faults"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_one_tenant_and_bad_token() {
    let Some(d) = Double::start("weaviate_double.py", &fixture()) else {
        return;
    };
    let t = lance_db().await;
    let report = Migration::new(t.db.clone(), Box::new(source(&d, KEY).tenant("alice")))
        .table("Note", "notes")
        .checkpoint(t.dir.path().join("cp.json"))
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(t.db.list_tables().await.unwrap(), ["notes"]);
    assert_eq!(t.db.count("notes", None).await.unwrap(), 10);

    let err = Migration::new(t.db.clone(), Box::new(source(&d, "nope")))
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceAuth { .. }), "{err}");
    assert!(err.to_string().contains("anonymous access"), "{err}");
}
