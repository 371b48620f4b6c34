//! Migration from a real PostgreSQL with pgvector (started by
//! scripts/test.sh), with tables in every supported shape. The large
//! kill-and-resume run is in the CLI tests (crates/hanzo-db-cli/tests/cli/migrate.rs).

use hanzo_db::migrate::{Migration, PgVectorSource};
use hanzo_db::{DistanceMetric, Error};
use serde_json::json;
use tokio_postgres::{Client, NoTls};

use crate::common::lance_db;
use crate::migrate_support::{pg_url, same_bits, unique};

async fn pg() -> Option<(Client, String)> {
    let url = pg_url()?;
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("HANZO_DB_TEST_PG_URL is set but {url} refuses: {e}"));
    tokio::spawn(conn);
    Some((client, url))
}

/// The vector as PostgreSQL prints it (shortest round-trip decimals), parsed:
/// an independent path from the binary format the migration reads.
async fn text_vector(c: &Client, sql: &str) -> Vec<f32> {
    let s: String = c.query_one(sql, &[]).await.unwrap().get(0);
    s.trim_matches(|ch| ch == '[' || ch == ']')
        .split(',')
        .map(|x| x.trim().parse::<f32>().unwrap())
        .collect()
}

fn shapes_sql(s: &str) -> String {
    format!(
        r#"
CREATE SCHEMA {s};
CREATE TABLE {s}.items (
  id bigint PRIMARY KEY, embedding vector(4), meta jsonb, title text, score float8, n int4,
  flag bool, created timestamptz, img bytea, doc bytea, price numeric, extra json);
INSERT INTO {s}.items
SELECT g,
  ARRAY[g * 0.25, -g * 0.5, 1.0 / (g + 1), g % 7]::real[]::vector,
  jsonb_build_object('g', g, 'parity', CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, 'title', 'from json'),
  'title ' || g, g / 8.0, g * 3, g % 2 = 0,
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
  CASE WHEN g % 3 = 0 THEN decode(lpad(to_hex(g), 8, '0'), 'hex') END,
  decode('25504446' || lpad(to_hex(g), 4, '0'), 'hex'),
  g * 1.5, '[1, 2]'::json
FROM generate_series(1, 1000) g;
INSERT INTO {s}.items (id, title) VALUES (5000, 'a row without a vector');
CREATE INDEX ON {s}.items USING hnsw (embedding vector_cosine_ops);
CREATE TABLE {s}.halves (id text PRIMARY KEY, v halfvec(3));
INSERT INTO {s}.halves SELECT 'h' || lpad(g::text, 4, '0'), ARRAY[g * 0.5, 1.25, -2.0]::real[]::halfvec
FROM generate_series(1, 50) g;
CREATE INDEX ON {s}.halves USING hnsw (v halfvec_ip_ops);
CREATE TABLE {s}.sparse (id uuid PRIMARY KEY, s sparsevec(5));
INSERT INTO {s}.sparse SELECT md5(g::text)::uuid, ('{{1:' || g || ',3:2.5}}/5')::sparsevec
FROM generate_series(1, 20) g;
CREATE TABLE {s}.two_vec (id int PRIMARY KEY, a vector(2), b vector(3));
INSERT INTO {s}.two_vec SELECT g, ARRAY[g, -g]::real[]::vector, ARRAY[g, 0, 1]::real[]::vector
FROM generate_series(1, 30) g;
CREATE INDEX ON {s}.two_vec USING hnsw (a vector_l2_ops);
CREATE TABLE {s}.nopk (v vector(2));
INSERT INTO {s}.nopk VALUES ('[1,2]');
CREATE TABLE {s}.no_vectors (id int PRIMARY KEY, x text);
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_tables_in_every_shape() {
    let Some((c, url)) = pg().await else { return };
    let s = unique("mig_shapes");
    c.batch_execute(&shapes_sql(&s)).await.unwrap();
    let t = lance_db().await;
    let source = || {
        PgVectorSource::new(url.clone())
            .schema(s.clone())
            .image_column("img")
            .blob_column("doc", "application/pdf")
    };
    let report = Migration::new(t.db.clone(), Box::new(source()))
        .batch_size(128)
        .text_field("title")
        .checkpoint(t.dir.path().join("cp.json"))
        .execute()
        .await
        .unwrap();
    assert!(report.verified(), "{report:#?}");
    let plan: Vec<(&str, DistanceMetric, &str)> = report
        .plan
        .iter()
        .map(|p| (p.source.as_str(), p.metric, p.metric_from.as_str()))
        .collect();
    assert_eq!(
        plan,
        [
            ("halves", DistanceMetric::Dot, "source"),
            ("items", DistanceMetric::Cosine, "source"),
            ("sparse", DistanceMetric::L2, "default"),
            ("two_vec:a", DistanceMetric::L2, "source"),
            ("two_vec:b", DistanceMetric::L2, "default"),
            ("nopk", DistanceMetric::L2, "default"),
        ]
    );
    let nopk = &report.plan[5];
    assert!(nopk.unsupported.as_deref().unwrap().contains("primary key"));
    assert_eq!(
        report.plan[1].count,
        Some(1000),
        "the row without a vector is not counted"
    );
    assert!(
        report.plan[2]
            .notes
            .iter()
            .any(|n| n.contains("sparsevec(5)"))
    );
    assert_eq!(
        t.db.list_tables().await.unwrap(),
        ["halves", "items", "sparse", "two_vec_a", "two_vec_b"]
    );
    assert_eq!(t.db.count("items", None).await.unwrap(), 1000);

    for g in [1i64, 3, 500, 999, 1000] {
        let r = t.db.get("items", &g.to_string()).await.unwrap().unwrap();
        let want = text_vector(
            &c,
            &format!("SELECT embedding::text FROM {s}.items WHERE id = {g}"),
        )
        .await;
        assert!(
            same_bits(&r.vector, &want),
            "items {g}: {:?} vs {want:?}",
            r.vector
        );
        assert_eq!(
            r.text.as_deref(),
            Some(format!("title {g}").as_str()),
            "column wins over jsonb"
        );
        assert_eq!(r.metadata["g"], json!(g), "jsonb merged into the metadata");
        assert_eq!(
            r.metadata["parity"],
            if g % 2 == 0 { "even" } else { "odd" }
        );
        assert_eq!(r.metadata["score"], json!(g as f64 / 8.0));
        assert_eq!(r.metadata["n"], json!(g * 3));
        assert_eq!(r.metadata["flag"], json!(g % 2 == 0));
        assert_eq!(
            r.metadata["extra"],
            json!([1, 2]),
            "a second json column under its name"
        );
        assert!(
            r.metadata["created"]
                .as_str()
                .unwrap()
                .starts_with("2024-01-01")
        );
        let price: f64 = r.metadata["price"].as_str().unwrap().parse().unwrap();
        assert_eq!(price, g as f64 * 1.5, "numeric kept exact, as text");
        assert!(!r.metadata.contains_key("img") && !r.metadata.contains_key("doc"));
        assert_eq!(
            r.image,
            (g % 3 == 0).then(|| (g as u32).to_be_bytes().to_vec()),
            "bytea image column"
        );
        assert_eq!(r.blobs.len(), 1);
        assert_eq!(r.blobs[0].mime, "application/pdf");
        assert_eq!(&r.blobs[0].data[..4], b"%PDF");
    }
    assert!(t.db.get("items", "5000").await.unwrap().is_none());
    let h = t.db.get("halves", "h0003").await.unwrap().unwrap();
    assert_eq!(h.vector, vec![1.5, 1.25, -2.0], "halfvec decoded exactly");
    let id: String = c
        .query_one("SELECT md5('7')::uuid::text", &[])
        .await
        .unwrap()
        .get(0);
    let sp = t.db.get("sparse", &id).await.unwrap().unwrap();
    assert_eq!(
        sp.vector,
        vec![7.0, 0.0, 2.5, 0.0, 0.0],
        "1-based sparse indices, densified"
    );
    let b = t.db.get("two_vec_b", "12").await.unwrap().unwrap();
    assert_eq!(b.vector, vec![12.0, 0.0, 1.0]);
    assert!(
        !b.metadata.contains_key("a"),
        "the other vector column is its own table"
    );

    // A second run over a complete checkpoint starts afresh and upserts: no duplicates.
    let again = Migration::new(t.db.clone(), Box::new(source()))
        .table("items", "items")
        .checkpoint(t.dir.path().join("cp.json"))
        .text_field("title")
        .execute()
        .await
        .unwrap();
    assert!(again.verified(), "{again:#?}");
    assert!(again.plan[0].target_exists);
    assert_eq!(t.db.count("items", None).await.unwrap(), 1000);
    c.batch_execute(&format!("DROP SCHEMA {s} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_migrate_from_postgres_convenience() {
    let Some((c, url)) = pg().await else { return };
    let table = unique("mig_conv");
    c.batch_execute(&format!(
        "CREATE TABLE public.{table} (id int PRIMARY KEY, embedding vector(3), body text);
         INSERT INTO public.{table} SELECT g, ARRAY[g, g * 2, -g]::real[]::vector, 'body ' || g
           FROM generate_series(1, 40) g;
         CREATE INDEX ON public.{table} USING hnsw (embedding vector_ip_ops);"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = hanzo_db::migrate::migrate_from_postgres(
        &url,
        dir.path().join("db"),
        [(table.as_str(), "conv")],
    )
    .await
    .unwrap();
    assert!(report.verified(), "{report:#?}");
    assert_eq!(report.migrated, 40);
    assert_eq!(report.plan[0].metric, DistanceMetric::Dot);
    c.batch_execute(&format!("DROP TABLE public.{table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_unreachable_server_and_unknown_role_are_clear_errors() {
    let Some((_c, url)) = pg().await else { return };
    let t = lance_db().await;
    let err = Migration::new(
        t.db.clone(),
        Box::new(PgVectorSource::new("postgres://postgres@127.0.0.1:9/x")),
    )
    .execute()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::SourceUnreachable { .. }), "{err}");
    assert!(err.hint().unwrap().contains("--pg-url"));

    let bad = url.replacen("postgres@", "no_such_role_for_migration:pw@", 1);
    let err = Migration::new(t.db.clone(), Box::new(PgVectorSource::new(bad)))
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SourceAuth { .. }), "{err}");
    assert!(
        !err.to_string().contains(":pw@"),
        "the password is never printed: {err}"
    );

    let err = Migration::new(
        t.db.clone(),
        Box::new(PgVectorSource::new(url).schema(unique("no_schema"))),
    )
    .execute()
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no collections"), "{err}");
}
