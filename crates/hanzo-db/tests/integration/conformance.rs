//! The conformance suite: written once, run against every backend.
//! Adding a backend means adding one `conformance!` line at the bottom.

use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use hanzo_db::{
    Database, DistanceMetric, Error, FieldType, Filter, MultimodalRecord, Projection, TableSchema,
};
use serde_json::json;

use crate::common::{exact_knn, random_vectors};

/// A backend under test: a database, and a way to reopen it from disk.
pub trait Harness: Send + Sync {
    fn db(&self) -> &Database;
    fn reopen(&self) -> Pin<Box<dyn Future<Output = Database> + Send + '_>>;
}

impl Harness for crate::common::TempDb {
    fn db(&self) -> &Database {
        &self.db
    }
    fn reopen(&self) -> Pin<Box<dyn Future<Output = Database> + Send + '_>> {
        Box::pin(async move {
            let encrypted = self.db.security_status().expect("status").is_encrypted;
            let backend: hanzo_db::DatabaseBackend =
                self.db.backend().backend_name().parse().expect("backend");
            crate::common::connect_in(self.dir.path())
                .backend(backend)
                .encryption(encrypted)
                .execute()
                .await
                .expect("reopen")
        })
    }
}

/// What a `conformance!` line opens: a harness, or `None` when the server it
/// needs is not running (the harness has printed why; under `CI=true` it panics instead).
pub trait Opened {
    type H: Harness;
    fn harness(self) -> Option<Self::H>;
}

impl<H: Harness> Opened for H {
    type H = H;
    fn harness(self) -> Option<H> {
        Some(self)
    }
}

impl<H: Harness> Opened for Option<H> {
    type H = H;
    fn harness(self) -> Option<H> {
        self
    }
}

fn schema(dim: usize, metric: DistanceMetric) -> TableSchema {
    TableSchema::new(dim)
        .metric(metric)
        .field("kind", FieldType::String)
        .field("year", FieldType::Int)
        .field("score", FieldType::Float)
        .field("ok", FieldType::Bool)
        .field("at", FieldType::Timestamp)
        .field("tags", FieldType::StringList)
}

fn rec(i: usize, v: Vec<f32>) -> MultimodalRecord {
    MultimodalRecord::new(format!("id-{i}"), v)
        .with_text(format!("document number {i}"))
        .with_metadata("kind", if i % 2 == 0 { "even" } else { "odd" })
        .with_metadata("year", 2000 + i as i64)
        .with_metadata("score", i as f64 / 10.0)
        .with_metadata("ok", i % 3 == 0)
        .with_metadata("at", format!("2024-01-{:02}T00:00:00Z", 1 + i % 28))
        .with_metadata("tags", json!([format!("t{}", i % 4), "all"]))
        .with_metadata(
            "info",
            json!({"lang": if i < 10 { "en" } else { "fr" }, "n": i, "deep": {"x": i % 5}}),
        )
}

pub async fn create_list_drop(h: &dyn Harness) {
    let db = h.db();
    db.create_table("a", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    db.create_table("b", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    assert_eq!(db.list_tables().await.unwrap(), vec!["a", "b"]);
    assert!(matches!(
        db.create_table("a", schema(4, DistanceMetric::L2)).await,
        Err(Error::TableExists { .. })
    ));
    db.drop_table("a").await.unwrap();
    assert_eq!(db.list_tables().await.unwrap(), vec!["b"]);
    assert!(matches!(
        db.drop_table("a").await,
        Err(Error::TableNotFound { .. })
    ));
    assert!(matches!(
        db.count("a", None).await,
        Err(Error::TableNotFound { .. })
    ));
    assert!(matches!(
        db.create_table("bad name", schema(4, DistanceMetric::L2))
            .await,
        Err(Error::BadSchema { .. })
    ));
}

pub async fn insert_get_blobs_byte_exact(h: &dyn Harness) {
    let db = h.db();
    db.create_table("t", schema(8, DistanceMetric::L2))
        .await
        .unwrap();
    let image: Vec<u8> = (0..=255u8).rev().cycle().take(10_000).collect();
    let r = rec(1, random_vectors(1, 8, 3).remove(0))
        .with_image(image)
        .with_audio(vec![0u8; 17])
        .with_blob(hanzo_db::Blob::new("video/mp4", vec![1, 2, 3, 0, 255]));
    db.insert("t", vec![r.clone(), rec(2, vec![0.5; 8])])
        .await
        .unwrap();
    assert_eq!(db.get("t", "id-1").await.unwrap(), Some(r));
    assert_eq!(db.get("t", "missing").await.unwrap(), None);
    let many = db
        .get_many(
            "t",
            &["id-2".into(), "nope".into(), "id-1".into()],
            &Projection::default(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        many.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["id-2", "id-1"]
    );
    assert!(
        many[1].image.is_none(),
        "default projection leaves blobs out"
    );
}

pub async fn stream_insert(h: &dyn Harness) {
    let db = h.db();
    db.create_table("s", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    let batches = futures::stream::iter(0..25).map(|b| {
        Ok((0..40)
            .map(|i| rec(b * 40 + i, vec![b as f32, i as f32, 0.0, 1.0]))
            .collect())
    });
    let n = db.insert_stream("s", batches.boxed()).await.unwrap();
    assert_eq!(n, 1000);
    assert_eq!(db.count("s", None).await.unwrap(), 1000);
    // A bad batch stops the stream with its error; earlier batches stay.
    let bad = futures::stream::iter(vec![
        Ok(vec![rec(5000, vec![0.0; 4])]),
        Ok(vec![rec(5001, vec![0.0; 3])]),
    ]);
    assert!(matches!(
        db.insert_stream("s", bad.boxed()).await,
        Err(Error::WrongVectorDimension { .. })
    ));
    assert_eq!(db.count("s", None).await.unwrap(), 1001);
}

pub async fn upsert_replaces_by_id(h: &dyn Harness) {
    let db = h.db();
    db.create_table("u", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    db.insert("u", (0..10).map(|i| rec(i, vec![i as f32; 4])).collect())
        .await
        .unwrap();
    let changed = rec(3, vec![9.0; 4]).with_text("changed");
    db.upsert("u", vec![changed.clone(), rec(10, vec![10.0; 4])])
        .await
        .unwrap();
    assert_eq!(db.count("u", None).await.unwrap(), 11);
    assert_eq!(db.get("u", "id-3").await.unwrap(), Some(changed));
}

pub async fn delete_by_id_and_filter(h: &dyn Harness) {
    let db = h.db();
    db.create_table("d", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    db.insert("d", (0..20).map(|i| rec(i, vec![i as f32; 4])).collect())
        .await
        .unwrap();
    assert_eq!(
        db.delete("d", &["id-1", "id-2", "absent"]).await.unwrap(),
        2
    );
    assert_eq!(
        db.delete_where("d", json!({"kind": "even"})).await.unwrap(),
        10 - 1
    );
    assert_eq!(db.count("d", None).await.unwrap(), 9);
    assert!(db.get("d", "id-4").await.unwrap().is_none());
    assert!(db.get("d", "id-3").await.unwrap().is_some());
}

pub async fn search_equals_exact_in_every_metric(h: &dyn Harness) {
    let db = h.db();
    for (name, metric) in [
        ("l2", DistanceMetric::L2),
        ("cos", DistanceMetric::Cosine),
        ("dot", DistanceMetric::Dot),
    ] {
        db.create_table(name, schema(16, metric)).await.unwrap();
        let vs = random_vectors(300, 16, 11);
        let data: Vec<(String, Vec<f32>)> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("id-{i}"), v.clone()))
            .collect();
        db.insert(
            name,
            data.iter()
                .enumerate()
                .map(|(i, (_, v))| rec(i, v.clone()))
                .collect(),
        )
        .await
        .unwrap();
        for q in random_vectors(5, 16, 99) {
            let hits = db.vector_search(name, &q, 10).await.unwrap();
            let got: Vec<String> = hits.iter().map(|h| h.record.id.clone()).collect();
            assert_eq!(got, exact_knn(&data, &q, 10, metric), "metric {metric}");
            for h in &hits {
                let v = &data.iter().find(|(id, _)| *id == h.record.id).unwrap().1;
                let want = metric.distance(&q, v);
                assert!(
                    (h.distance.unwrap() - want).abs() < 1e-3 * want.abs().max(1.0),
                    "{metric}: {} vs {want}",
                    h.distance.unwrap()
                );
            }
        }
    }
}

pub async fn filters_every_operator(h: &dyn Harness) {
    let db = h.db();
    db.create_table("f", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    let mut records: Vec<_> = (0..20).map(|i| rec(i, vec![i as f32; 4])).collect();
    let hostile = "x'); DROP TABLE f; -- \" \\ ' OR 1=1 --";
    records.push(
        rec(20, vec![0.0; 4])
            .with_metadata("kind", hostile)
            .with_metadata("info", json!({"lang": hostile})),
    );
    db.insert("f", records.clone()).await.unwrap();
    let cases = vec![
        json!({"kind": "even"}),
        json!({"kind": {"$ne": "even"}}),
        json!({"year": {"$gt": 2010}}),
        json!({"year": {"$gte": 2010, "$lt": 2015}}),
        json!({"score": {"$lte": 0.5}}),
        json!({"ok": true}),
        json!({"at": {"$gte": "2024-01-10T00:00:00Z"}}),
        json!({"tags": "t1"}),
        json!({"tags": {"$in": ["t2", "t3"]}}),
        json!({"tags": {"$nin": ["t0"]}}),
        json!({"year": {"$in": [2001, 2003, 1999]}}),
        json!({"kind": {"$nin": ["odd"]}}),
        json!({"info.lang": "fr"}),
        json!({"info": {"deep": {"x": {"$gte": 3}}}}),
        json!({"info.n": {"$lt": 4}}),
        json!({"info.missing": {"$exists": false}}),
        json!({"info.deep.x": {"$exists": true}}),
        json!({"$or": [{"kind": "odd"}, {"year": 2000}]}),
        json!({"$and": [{"kind": "odd"}, {"$not": {"year": {"$gt": 2005}}}]}),
        json!({"year": {"$not": {"$in": [2000, 2001]}}}),
        json!({"id": {"$in": ["id-3", "id-4"]}}),
        json!({"text": "document number 7"}),
        json!({"kind": hostile}),
        json!({"info.lang": hostile}),
        json!({"kind": {"$in": []}}),
        json!({"nothere": {"$ne": 1}}),
    ];
    for doc in cases {
        let f = Filter::parse(&doc).unwrap();
        let expected: Vec<String> = records
            .iter()
            .filter(|r| {
                let mut fields = r.metadata.clone();
                fields.insert("id".into(), r.id.clone().into());
                fields.insert("text".into(), r.text.clone().into());
                f.matches(&fields)
            })
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(
            db.count("f", Some(f.clone())).await.unwrap(),
            expected.len() as u64,
            "count {doc}"
        );
        let hits = db
            .search("f")
            .vector(vec![0.0; 4])
            .filter(f.clone())
            .k(50)
            .execute()
            .await
            .unwrap();
        let mut got: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "search {doc}");
    }
    assert_eq!(
        db.count("f", None).await.unwrap(),
        21,
        "hostile strings executed nothing"
    );
    assert!(matches!(
        db.search("f")
            .vector(vec![0.0; 4])
            .filter(json!({"year": "2001"}))
            .execute()
            .await,
        Err(Error::BadFilter { .. })
    ));
    assert!(matches!(
        db.search("f")
            .vector(vec![0.0; 4])
            .filter("{not json")
            .execute()
            .await,
        Err(Error::BadFilter { .. })
    ));
}

pub async fn bad_input_changes_nothing(h: &dyn Harness) {
    let db = h.db();
    db.create_table("e", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    db.insert("e", vec![rec(0, vec![0.0; 4])]).await.unwrap();
    let before = db.count("e", None).await.unwrap();
    let cases: Vec<(Vec<MultimodalRecord>, &str)> = vec![
        (
            vec![rec(1, vec![1.0; 4]), rec(2, vec![1.0; 5])],
            "dimension",
        ),
        (vec![rec(3, vec![1.0, f32::NAN, 0.0, 0.0])], "nan"),
        (vec![rec(4, vec![f32::INFINITY, 0.0, 0.0, 0.0])], "inf"),
        (
            vec![rec(5, vec![0.0; 4]).with_metadata("year", "old")],
            "typed",
        ),
        (
            vec![rec(6, vec![0.0; 4]), rec(6, vec![0.0; 4])],
            "duplicate",
        ),
        (vec![MultimodalRecord::new("", vec![0.0; 4])], "empty id"),
    ];
    for (records, what) in cases {
        assert!(db.insert("e", records.clone()).await.is_err(), "{what}");
        assert!(db.upsert("e", records).await.is_err(), "{what}");
        assert_eq!(
            db.count("e", None).await.unwrap(),
            before,
            "{what} changed the table"
        );
    }
    assert!(matches!(
        db.vector_search("e", &[0.0; 3], 1).await,
        Err(Error::WrongVectorDimension {
            expected: 4,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        db.vector_search("e", &[f32::NAN; 4], 1).await,
        Err(Error::NonFiniteVector { .. })
    ));
    assert!(matches!(
        db.vector_search("e", &[0.0; 4], 0).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.insert("nope", vec![rec(1, vec![0.0; 4])]).await,
        Err(Error::TableNotFound { .. })
    ));
}

pub async fn concurrent_readers_and_writers(h: &dyn Harness) {
    let db = h.db().clone();
    db.create_table("c", schema(8, DistanceMetric::L2))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..5 {
                let batch = (0..10)
                    .map(|i| rec(w * 1000 + b * 10 + i, vec![w as f32; 8]))
                    .collect();
                db.insert("c", batch).await.unwrap();
            }
        }));
    }
    for _ in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                db.vector_search("c", &[0.0; 8], 5).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.count("c", None).await.unwrap(), 200, "no lost rows");
}

pub async fn persists_across_reopen(h: &dyn Harness) {
    let db = h.db();
    db.create_table("p", schema(4, DistanceMetric::Cosine))
        .await
        .unwrap();
    let r = rec(1, vec![0.1, 0.2, 0.3, 0.4]).with_image(vec![7; 100]);
    db.insert("p", vec![r.clone()]).await.unwrap();
    let again = h.reopen().await;
    assert_eq!(again.list_tables().await.unwrap(), vec!["p"]);
    assert_eq!(
        again.table_schema("p").await.unwrap(),
        schema(4, DistanceMetric::Cosine)
    );
    assert_eq!(again.get("p", "id-1").await.unwrap(), Some(r));
}

macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(h) = super::Opened::harness($open.await) else {
                            return;
                        };
                        super::$name(&h).await;
                    }
                };
            }
            case!(create_list_drop);
            case!(insert_get_blobs_byte_exact);
            case!(stream_insert);
            case!(upsert_replaces_by_id);
            case!(delete_by_id_and_filter);
            case!(search_equals_exact_in_every_metric);
            case!(filters_every_operator);
            case!(bad_input_changes_nothing);
            case!(concurrent_readers_and_writers);
            case!(persists_across_reopen);
        }
    };
}

conformance!(lancedb, crate::common::lance_db());
conformance!(lancedb_unencrypted, crate::common::lance_db_plain());
#[cfg(feature = "postgres")]
conformance!(postgres, crate::postgres::pg_db());
#[cfg(feature = "redis")]
conformance!(redis_cache_over_lancedb, crate::redis_cache::cached_lance());
#[cfg(feature = "sqlite")]
conformance!(
    sqlite,
    crate::common::sql_db(hanzo_db::DatabaseBackend::Sqlite)
);
#[cfg(feature = "duckdb")]
conformance!(
    duckdb,
    crate::common::sql_db(hanzo_db::DatabaseBackend::DuckDb)
);
