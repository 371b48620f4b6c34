//! Migration from Qdrant, against the Qdrant REST test double
//! (tests/doubles/qdrant_double.py).

use std::time::Instant;

use hanzo_db::migrate::{Checkpoint, Migration, QdrantSource};
use hanzo_db::{DistanceMetric, Error};
use serde_json::{Value, json};

use crate::common::lance_db;
use crate::migrate_support::{Double, dyadic_vector, fast_retry, same_bits};

const KEY: &str = "qdrant-test-key";

fn uuid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i * 7919, i)
}

fn fixture() -> Value {
    // Integer ids, stored out of order; one point without payload.
    let mut plain: Vec<Value> = (1..=25usize)
        .rev()
        .map(|i| {
            json!({"id": i, "vector": dyadic_vector(i, 4),
            "payload": if i == 7 { Value::Null } else {
                json!({"n": i, "tag": format!("t{}", i % 3), "nested": {"x": i, "l": [1, 2]}})
            }})
        })
        .collect();
    plain.swap(3, 17);
    // UUID ids, two named dense vectors and a sparse one; every 4th point lacks `text`.
    let multi: Vec<Value> = (0..12usize)
        .map(|i| {
            let mut v = json!({"image": dyadic_vector(i + 100, 3),
                               "bm25": {"indices": [1, 5], "values": [0.5, 0.25]}});
            if i % 4 != 0 {
                v["text"] = json!(dyadic_vector(i + 200, 2));
            }
            json!({"id": uuid(i), "vector": v, "payload": {"i": i, "title": format!("doc {i}")}})
        })
        .collect();
    json!({
        "api_key": KEY,
        "collections": {
            "plain": {"vectors": {"size": 4, "distance": "Dot"}, "points": plain},
            "multi": {"vectors": {"image": {"size": 3, "distance": "Cosine"},
                                  "text": {"size": 2, "distance": "Euclid", "datatype": "float16"}},
                      "sparse_vectors": {"bm25": {"index": {"on_disk": true}, "modifier": "idf"}},
                      "points": multi},
        },
        "faults": [{"path": "/collections/plain/points/scroll", "status": 429, "every": 3,
                    "retry_after": "1", "body": {"status": {"error": "Too many requests"}, "time": 0.0}}],
    })
}

fn source(d: &Double, key: &str) -> QdrantSource {
    QdrantSource::new(&d.url, Some(key.into()))
        .unwrap()
        .retry(fast_retry())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_named_and_unnamed_vectors_int_and_uuid_ids_paged_through_rate_limits() {
    let fx = fixture();
    let Some(d) = Double::start("qdrant_double.py", &fx) else {
        return;
    };
    let t = lance_db().await;
    let cp = t.dir.path().join("qdrant.checkpoint.json");

    let plan = Migration::new(t.db.clone(), Box::new(source(&d, KEY)))
        .dry_run(true)
        .execute()
        .await
        .unwrap();
    let keys: Vec<&str> = plan.plan.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(keys, ["multi:image", "multi:text", "plain"]);
    assert!(
        t.db.list_tables().await.unwrap().is_empty(),
        "a dry run writes nothing"
    );
    assert!(
        plan.plan[0].notes.iter().any(|n| n.contains("bm25")),
        "{:?}",
        plan.plan[0].notes
    );

    let started = Instant::now();
    let report = Migration::new(t.db.clone(), Box::new(source(&d, KEY)))
        .batch_size(7)
        .checkpoint(&cp)
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    let stats = d.stats().await;
    assert!(stats["faults"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        started.elapsed().as_millis() >= 1000,
        "Retry-After: 1 was not waited for"
    );

    let tables = t.db.list_tables().await.unwrap();
    assert_eq!(tables, ["multi_image", "multi_text", "plain"]);
    for (table, metric) in [
        ("plain", DistanceMetric::Dot),
        ("multi_image", DistanceMetric::Cosine),
        ("multi_text", DistanceMetric::L2),
    ] {
        assert_eq!(
            t.db.table_schema(table).await.unwrap().metric,
            metric,
            "{table}"
        );
    }
    assert_eq!(t.db.count("plain", None).await.unwrap(), 25);
    assert_eq!(t.db.count("multi_image", None).await.unwrap(), 12);
    assert_eq!(t.db.count("multi_text", None).await.unwrap(), 9);
    let text = report
        .tables
        .iter()
        .find(|r| r.source == "multi:text")
        .unwrap();
    assert_eq!(
        text.skipped, 3,
        "points without the `text` vector are counted as skipped"
    );

    // Field by field against the fixture: ids, vectors bit for bit, payloads.
    for i in 1..=25usize {
        let r = t.db.get("plain", &i.to_string()).await.unwrap().unwrap();
        assert!(same_bits(&r.vector, &dyadic_vector(i, 4)), "point {i}");
        if i == 7 {
            assert!(r.metadata.is_empty());
        } else {
            assert_eq!(r.metadata["nested"], json!({"x": i, "l": [1, 2]}));
            assert_eq!(r.metadata["tag"], json!(format!("t{}", i % 3)));
        }
    }
    let r = t.db.get("multi_text", &uuid(5)).await.unwrap().unwrap();
    assert!(same_bits(&r.vector, &dyadic_vector(205, 2)));
    assert_eq!(r.metadata["title"], "doc 5");
    assert!(t.db.get("multi_text", &uuid(4)).await.unwrap().is_none());

    let saved = Checkpoint::load(&cp).unwrap().unwrap();
    assert!(saved.complete());
    assert_eq!(saved.tables["plain"].migrated, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_bad_key_unreachable_server_and_missing_collection_are_clear_errors() {
    let Some(d) = Double::start("qdrant_double.py", &fixture()) else {
        return;
    };
    let t = lance_db().await;
    let err = Migration::new(t.db.clone(), Box::new(source(&d, "wrong")))
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceAuth { .. }), "{err}");
    assert!(err.hint().unwrap().contains("--source-api-key-env"));

    let gone = QdrantSource::new("http://127.0.0.1:9", None)
        .unwrap()
        .retry(fast_retry());
    let err = Migration::new(t.db.clone(), Box::new(gone))
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceUnreachable { .. }), "{err}");

    let err = Migration::new(t.db.clone(), Box::new(source(&d, KEY)))
        .table("nope", "x")
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no collection `nope`"), "{err}");
    assert!(t.db.list_tables().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_bad_point_names_the_record_keeps_the_checkpoint_and_resumes() {
    let mut fx = fixture();
    fx["faults"] = json!([]);
    let points = fx["collections"]["plain"]["points"].as_array_mut().unwrap();
    let bad = points.iter_mut().find(|p| p["id"] == 15).unwrap();
    bad["vector"][2] = json!("oops");
    let Some(d) = Double::start("qdrant_double.py", &fx) else {
        return;
    };
    let t = lance_db().await;
    let cp = t.dir.path().join("cp.json");
    let run = |resume: bool| {
        Migration::new(t.db.clone(), Box::new(source(&d, KEY)))
            .table("plain", "plain")
            .batch_size(5)
            .checkpoint(&cp)
            .resume(resume)
            .execute()
    };
    let err = run(false).await.unwrap_err();
    match &err {
        Error::BadSourceRecord {
            record,
            reason,
            collection,
            ..
        } => {
            assert_eq!(record.as_deref(), Some("15"));
            assert_eq!(collection, "plain");
            assert!(reason.contains("component 2"), "{reason}");
        }
        other => panic!("expected BadSourceRecord, got {other}"),
    }
    let saved = Checkpoint::load(&cp).unwrap().unwrap();
    let p = &saved.tables["plain"];
    assert_eq!((p.migrated, p.done), (10, false));
    assert_eq!(p.cursor, Some(json!(11)));
    assert_eq!(t.db.count("plain", None).await.unwrap(), 10);

    // Without --resume an interrupted checkpoint is refused, not overwritten.
    let err = run(false).await.unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");

    d.set_fixture(&fixture()).await;
    let report = run(true).await.unwrap();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(report.tables[0].migrated, 15);
    assert!(report.tables[0].resumed);
    assert_eq!(t.db.count("plain", None).await.unwrap(), 25);
}
