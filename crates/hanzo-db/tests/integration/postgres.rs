//! PostgreSQL + pgvector: the harness the conformance suite runs on (each
//! test in its own fresh PostgreSQL schema, reopen = a new connection pool),
//! and what only this engine has: transactions, pgvector indexes and their
//! operator classes, SQL injection attempts, an unreachable server.

use std::future::Future;
use std::pin::Pin;

use hanzo_db::backend::postgres::PostgresBackend;
use hanzo_db::{
    Database, DatabaseBackend, DistanceMetric, Error, FieldType, Filter, IndexSpec,
    MultimodalRecord, PostgresOptions, TableSchema, VectorDatabase, connect,
};
use serde_json::json;

use crate::common::{exact_knn, random_vectors, service_url, unique_name};
use crate::conformance::Harness;

/// A database in its own PostgreSQL schema, dropped with everything in it at the end.
pub struct PgHarness {
    pub db: Database,
    pub url: String,
    pub schema: String,
}

pub async fn open_pg(url: &str, schema: &str) -> Database {
    connect("unused-by-postgres")
        .backend(DatabaseBackend::Postgres)
        .postgres_url(url)
        .postgres_schema(schema)
        .execute()
        .await
        .expect("connect to PostgreSQL")
}

/// `None` (skipped, reason printed) when `HANZO_DB_TEST_PG_URL` is unset outside CI.
pub async fn pg_db() -> Option<PgHarness> {
    let url = service_url("HANZO_DB_TEST_PG_URL", "PostgreSQL + pgvector server")?;
    let schema = unique_name("hz");
    let db = open_pg(&url, &schema).await;
    Some(PgHarness { db, url, schema })
}

impl PgHarness {
    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            url: Some(self.url.clone()),
            schema: self.schema.clone(),
            ..PostgresOptions::default()
        }
    }

    /// A raw SQL connection, to look at what the engine did.
    async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("raw connection");
        tokio::spawn(conn);
        client
    }
}

impl Harness for PgHarness {
    fn db(&self) -> &Database {
        &self.db
    }
    fn reopen(&self) -> Pin<Box<dyn Future<Output = Database> + Send + '_>> {
        Box::pin(open_pg(&self.url, &self.schema))
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

fn schema(dim: usize, metric: DistanceMetric) -> TableSchema {
    TableSchema::new(dim)
        .metric(metric)
        .field("kind", FieldType::String)
        .field("year", FieldType::Int)
}

fn rec(i: usize, v: Vec<f32>) -> MultimodalRecord {
    MultimodalRecord::new(format!("id-{i}"), v)
        .with_text(format!("document number {i}"))
        .with_metadata("kind", if i % 2 == 0 { "even" } else { "odd" })
        .with_metadata("year", 2000 + i as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_batch_leaves_nothing_behind() {
    let Some(h) = pg_db().await else { return };
    h.db.create_table("t", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    h.db.insert("t", (0..10).map(|i| rec(i, vec![i as f32; 4])).collect())
        .await
        .unwrap();
    let version = h.db.version("t").await.unwrap();

    // The engine itself, without the handle's validation: the database
    // refuses row 1,100 of a 1,200-row batch (three INSERT statements), and
    // the transaction takes the first thousand back with it.
    let engine = PostgresBackend::connect(&h.options()).await.unwrap();
    let mut batch: Vec<_> = (100..1300).map(|i| rec(i, vec![0.5; 4])).collect();
    batch[1100] = rec(3, vec![0.5; 4]); // id-3 already exists
    let err = engine.insert("t", batch).await.unwrap_err();
    assert!(
        matches!(&err, Error::BadRecord { id: Some(id), .. } if id == "id-3"),
        "{err:?}"
    );
    let mut wrong_dim: Vec<_> = (2000..2600).map(|i| rec(i, vec![0.5; 4])).collect();
    wrong_dim.push(rec(2600, vec![0.5; 3]));
    assert!(engine.insert("t", wrong_dim.clone()).await.is_err());
    assert!(engine.upsert("t", wrong_dim).await.is_err());

    assert_eq!(h.db.count("t", None).await.unwrap(), 10, "nothing written");
    assert_eq!(
        h.db.version("t").await.unwrap(),
        version,
        "version unchanged"
    );
    assert!(h.db.get("t", "id-100").await.unwrap().is_none());
    // Through the handle: a duplicate of an existing id is named, nothing written.
    let err =
        h.db.insert("t", vec![rec(50, vec![0.0; 4]), rec(7, vec![0.0; 4])])
            .await
            .unwrap_err();
    assert!(matches!(err, Error::BadRecord { .. }), "{err:?}");
    assert_eq!(h.db.count("t", None).await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_indexes_use_the_metrics_operator_class() {
    let Some(h) = pg_db().await else { return };
    let sql = h.sql().await;
    for (name, metric, ops) in [
        ("l2", DistanceMetric::L2, "vector_l2_ops"),
        ("cos", DistanceMetric::Cosine, "vector_cosine_ops"),
        ("dot", DistanceMetric::Dot, "vector_ip_ops"),
    ] {
        h.db.create_table(name, schema(16, metric)).await.unwrap();
        let vs = random_vectors(2000, 16, 5);
        let data: Vec<(String, Vec<f32>)> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("id-{i}"), v.clone()))
            .collect();
        h.db.insert(
            name,
            vs.iter()
                .enumerate()
                .map(|(i, v)| rec(i, v.clone()))
                .collect(),
        )
        .await
        .unwrap();
        for (spec, method) in [
            (
                IndexSpec::Hnsw {
                    m: Some(16),
                    ef_construction: Some(64),
                },
                "hnsw",
            ),
            (IndexSpec::IvfFlat { nlist: Some(8) }, "ivfflat"),
        ] {
            h.db.create_index(name, spec.clone()).await.unwrap();
            // The index's access method and operator class, from PostgreSQL's catalog.
            let found: Vec<(String, String)> = sql
                .query(
                    "SELECT am.amname::text, opc.opcname::text FROM pg_index x \
                     JOIN pg_class i ON i.oid = x.indexrelid \
                     JOIN pg_class t ON t.oid = x.indrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     JOIN pg_am am ON am.oid = i.relam \
                     JOIN pg_opclass opc ON opc.oid = x.indclass[0] \
                     WHERE n.nspname = $1 AND t.relname = $2 AND am.amname IN ('hnsw', 'ivfflat')",
                    &[&h.schema, &name],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            assert_eq!(
                found,
                vec![(method.to_string(), ops.to_string())],
                "{spec:?} on {metric}: one vector index (it replaces the other), with the metric's operator class"
            );
            let listed = h.db.list_indexes(name).await.unwrap();
            assert_eq!(listed[0].kind, method.to_uppercase());
            assert_eq!(listed[0].columns, vec!["vector"]);
            // Approximate but close to exact, and a selective filter still yields k.
            let mut found = 0;
            for q in random_vectors(10, 16, 77) {
                // All lists probed for IVFFlat (HNSW ignores nprobes).
                let hits =
                    h.db.search(name)
                        .vector(q.clone())
                        .nprobes(8)
                        .k(10)
                        .execute()
                        .await
                        .unwrap();
                let want = exact_knn(&data, &q, 10, metric);
                found += hits.iter().filter(|x| want.contains(&x.record.id)).count();
                let filtered =
                    h.db.search(name)
                        .vector(q.clone())
                        .filter(json!({"year": {"$lt": 2100}}))
                        .nprobes(8)
                        .k(10)
                        .execute()
                        .await
                        .unwrap();
                assert_eq!(filtered.len(), 10, "{spec:?}: prefilter returns k");
                assert!(
                    filtered
                        .iter()
                        .all(|x| x.record.metadata["year"].as_i64() < Some(2100))
                );
            }
            assert!(found >= 90, "{spec:?} on {metric}: recall {found}/100");
        }
    }
    // IVF_PQ does not exist in pgvector: refused, not replaced by something else.
    let err =
        h.db.create_index(
            "l2",
            IndexSpec::IvfPq {
                nlist: None,
                pq_dims: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    h.db.create_index("l2", IndexSpec::Auto).await.unwrap();
    h.db.create_index(
        "l2",
        IndexSpec::Scalar {
            column: "kind".into(),
        },
    )
    .await
    .unwrap();
    let kinds: Vec<String> =
        h.db.list_indexes("l2")
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.kind)
            .collect();
    assert!(
        kinds.contains(&"HNSW".into()) && kinds.contains(&"BTREE".into()),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_filter_strings_are_only_data() {
    let Some(h) = pg_db().await else { return };
    h.db.create_table("victim", schema(4, DistanceMetric::L2))
        .await
        .unwrap();
    let hostile = [
        "'; DROP TABLE victim; --",
        "\"); DELETE FROM victim; --",
        "' OR '1'='1",
        "$1; $$ DROP SCHEMA x $$",
        "%_\\' \\\\ \u{202e}é😀",
        "') IS NOT TRUE OR (TRUE",
    ];
    let mut records: Vec<_> = (0..10).map(|i| rec(i, vec![i as f32; 4])).collect();
    for (i, s) in hostile.iter().enumerate() {
        records.push(
            rec(100 + i, vec![0.0; 4])
                .with_metadata("kind", *s)
                .with_metadata(*s, json!({"k": *s}))
                .with_text(*s),
        );
    }
    h.db.insert("victim", records.clone()).await.unwrap();
    for s in hostile {
        let mut docs = vec![
            json!({"kind": s}),
            json!({"kind": {"$in": [s, "x"]}}),
            json!({"kind": {"$gt": s}}),
            json!({"text": s}),
            json!({"id": {"$nin": [s]}}),
            json!({"$not": {"kind": {"$ne": s}}}),
        ];
        if !s.starts_with('$') {
            // The string as a JSON path into the metadata, too.
            docs.push(obj(s, json!({"k": s})));
            docs.push(obj(&format!("{s}.k"), json!({"$exists": true})));
        }
        for doc in docs {
            let f = Filter::parse(&doc).unwrap();
            let want = records
                .iter()
                .filter(|r| {
                    let mut fields = r.metadata.clone();
                    fields.insert("id".into(), r.id.clone().into());
                    fields.insert("text".into(), r.text.clone().into());
                    f.matches(&fields)
                })
                .count() as u64;
            assert!(
                want > 0 || doc.get("kind").is_some(),
                "{doc} matches something"
            );
            assert_eq!(
                h.db.count("victim", Some(f.clone())).await.unwrap(),
                want,
                "{doc}"
            );
            let none = json!({"$and": [doc.clone(), {"year": -1}]});
            assert_eq!(h.db.delete_where("victim", none).await.unwrap(), 0, "{doc}");
        }
    }
    assert_eq!(
        h.db.count("victim", None).await.unwrap(),
        16,
        "nothing executed"
    );
    let sql = h.sql().await;
    let tables: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&h.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2, "the table and the catalog are both still there");
}

fn obj(key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(key.to_string(), value);
    serde_json::Value::Object(m)
}

#[tokio::test]
async fn unreachable_server_and_missing_url_are_clear_errors() {
    let err = connect("unused")
        .backend(DatabaseBackend::Postgres)
        .postgres_url("postgres://postgres@127.0.0.1:1/nothing")
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.hint().is_some() && !err.is_user_error());
    let err = connect("unused")
        .backend(DatabaseBackend::Postgres)
        .postgres_url("postgres://user:secret@127.0.0.1:1/nothing")
        .execute()
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("secret"),
        "password redacted: {err}"
    );
    if std::env::var("HANZO_DB_POSTGRES_URL").is_err() {
        let err = connect("unused")
            .backend(DatabaseBackend::Postgres)
            .execute()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_and_what_postgres_lacks() {
    let Some(h) = pg_db().await else { return };
    let caps = h.db.capabilities();
    assert_eq!(h.db.backend_name(), "postgres");
    assert!(!caps.time_travel && !caps.compaction && caps.full_text);
    assert_eq!(caps.vector_indexes, vec!["hnsw", "ivf_flat"]);
    h.db.create_table("c", schema(4, DistanceMetric::Cosine))
        .await
        .unwrap();
    h.db.insert(
        "c",
        (0..5)
            .map(|i| rec(i, vec![1.0, i as f32, 0.0, 0.0]))
            .collect(),
    )
    .await
    .unwrap();
    for err in [
        h.db.list_versions("c").await.map(|_| ()).unwrap_err(),
        h.db.restore("c", 1).await.map(|_| ()).unwrap_err(),
        h.db.tag("c", 1, "v1").await.unwrap_err(),
        h.db.compact("c").await.map(|_| ()).unwrap_err(),
        h.db.search("c")
            .vector(vec![1.0; 4])
            .at_version(1)
            .execute()
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Unsupported { backend, .. } if backend == "postgres"),
            "{err:?}"
        );
    }
    // Full-text and hybrid search over PostgreSQL's text search.
    h.db.create_index("c", IndexSpec::FullText).await.unwrap();
    let hits =
        h.db.search("c")
            .text("number 3")
            .k(3)
            .execute()
            .await
            .unwrap();
    assert_eq!(hits[0].record.id, "id-3");
    let hybrid =
        h.db.search("c")
            .vector(vec![1.0, 3.0, 0.0, 0.0])
            .text("number 3")
            .k(2)
            .execute()
            .await
            .unwrap();
    assert_eq!(hybrid[0].record.id, "id-3");
    let stats = h.db.table_stats("c").await.unwrap();
    assert_eq!(stats.rows, 5);
    assert!(stats.disk_bytes > 0 && stats.version >= 1);
}
