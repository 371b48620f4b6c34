//! pgvector (PostgreSQL wire protocol).
//!
//! Vector columns and their dimension come from the catalog (`vector(n)`,
//! `halfvec(n)`, `sparsevec(n)`, the latter made dense), the metric from the
//! operator class of the column's index (`vector_l2_ops`,
//! `vector_cosine_ops`, `vector_ip_ops`, and the `halfvec_`/`sparsevec_`
//! ones). Pages use a keyset on the primary key (`WHERE pk > $1 ORDER BY pk
//! LIMIT n`, never `OFFSET`), and vectors are read in pgvector's binary format,
//! so float32 values arrive bit for bit. The primary key becomes the record
//! id; the first `json`/`jsonb` column is merged into the metadata, every
//! other column lands in the metadata under its own name, and `bytea` columns
//! become the image, the audio or blobs as mapped.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};
use crate::record::{Blob, MultimodalRecord};
use crate::schema::DistanceMetric;

use super::{Cursor, MigrationSource, Page, SourceCollection};

mod wire;
use wire::PgVec;

const STORE: &str = "pgvector";

/// Reads tables with `vector`, `halfvec` or `sparsevec` columns from
/// PostgreSQL. Tables need a single-column primary key (the keyset).
pub struct PgVectorSource {
    url: String,
    schema: String,
    image_column: Option<String>,
    audio_column: Option<String>,
    blob_columns: Vec<(String, String)>,
    client: OnceCell<Client>,
}

impl std::fmt::Debug for PgVectorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgVectorSource")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgVectorSource {
    /// A source reading the `public` schema of the database at `url`
    /// (`postgres://user:password@host:port/db` or `host=… user=…`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "public".into(),
            image_column: None,
            audio_column: None,
            blob_columns: Vec::new(),
            client: OnceCell::new(),
        }
    }

    /// Reads this schema instead of `public`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// A `bytea` column holding each record's image.
    pub fn image_column(mut self, column: impl Into<String>) -> Self {
        self.image_column = Some(column.into());
        self
    }

    /// A `bytea` column holding each record's audio.
    pub fn audio_column(mut self, column: impl Into<String>) -> Self {
        self.audio_column = Some(column.into());
        self
    }

    /// A `bytea` column stored as a blob of this MIME type (other `bytea`
    /// columns become `application/octet-stream` blobs, in column order).
    pub fn blob_column(mut self, column: impl Into<String>, mime: impl Into<String>) -> Self {
        self.blob_columns.push((column.into(), mime.into()));
        self
    }

    async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
                    .await
                    .map_err(|e| self.connect_error(e))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::warn!(error = %e, "pgvector source connection closed");
                    }
                });
                Ok::<_, Error>(client)
            })
            .await
    }

    fn connect_error(&self, e: tokio_postgres::Error) -> Error {
        let url = redact(&self.url);
        match e.as_db_error() {
            Some(db) if db.code().code().starts_with("28") => Error::SourceAuth {
                store: STORE.into(),
                url,
                status: format!("SQLSTATE {}", db.code().code()),
                message: db.message().to_string(),
            },
            Some(db) => Error::SourceRequest {
                store: STORE.into(),
                operation: "connect".into(),
                status: None,
                message: db.message().to_string(),
            },
            None => Error::SourceUnreachable {
                store: STORE.into(),
                url,
                reason: chain(&e),
            },
        }
    }

    fn query_error(op: &str, e: tokio_postgres::Error) -> Error {
        Error::SourceRequest {
            store: STORE.into(),
            operation: op.into(),
            status: None,
            message: e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| chain(&e)),
        }
    }

    fn role_of(&self, name: &str, typname: &str, json_taken: &mut bool) -> Role {
        if typname == "bytea" {
            if self.image_column.as_deref() == Some(name) {
                return Role::Image;
            }
            if self.audio_column.as_deref() == Some(name) {
                return Role::Audio;
            }
            let mime = self
                .blob_columns
                .iter()
                .find(|(c, _)| c == name)
                .map(|(_, m)| m.clone())
                .unwrap_or_else(|| "application/octet-stream".into());
            return Role::Blob(mime);
        }
        match typname {
            "json" | "jsonb" if !*json_taken => {
                *json_taken = true;
                Role::MergeJson
            }
            "json" | "jsonb" => Role::Json,
            "bool" | "int2" | "int4" | "int8" | "oid" | "float4" | "float8" | "text"
            | "varchar" | "bpchar" | "name" => Role::Native(typname.to_string()),
            _ => Role::AsText,
        }
    }
}

/// What a non-key, non-vector column becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Role {
    /// Merged into the metadata (the first `json`/`jsonb` column).
    MergeJson,
    /// Metadata under the column name, parsed JSON.
    Json,
    /// Metadata under the column name, decoded natively (type name).
    Native(String),
    /// Metadata under the column name, as PostgreSQL's text form.
    AsText,
    Image,
    Audio,
    Blob(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Column {
    name: String,
    role: Role,
}

/// How to read one (table, vector column).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Locator {
    schema: String,
    table: String,
    pk: String,
    pk_type: String,
    vector: String,
    columns: Vec<Column>,
}

#[async_trait]
impl MigrationSource for PgVectorSource {
    fn store(&self) -> &'static str {
        STORE
    }

    fn describe(&self) -> String {
        format!("{} schema {}", redact(&self.url), self.schema)
    }

    async fn collections(&self) -> Result<Vec<SourceCollection>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.oid, c.relname::text, a.attname::text, t.typname::text, \
                        format_type(a.atttypid, a.atttypmod), a.atttypmod \
                 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
                 ORDER BY c.relname, a.attnum",
                &[&self.schema],
            )
            .await
            .map_err(|e| Self::query_error("read the catalog", e))?;
        // table -> (oid, [(column, typname, formatted type, typmod)])
        let mut tables: BTreeMap<String, (u32, Vec<(String, String, String, i32)>)> =
            BTreeMap::new();
        for r in &rows {
            let oid: u32 = r.get(0);
            let entry = tables.entry(r.get(1)).or_insert((oid, Vec::new()));
            entry.1.push((r.get(2), r.get(3), r.get(4), r.get(5)));
        }
        let mut out = Vec::new();
        'tables: for (table, (oid, cols)) in tables {
            let vectors: Vec<&(String, String, String, i32)> = cols
                .iter()
                .filter(|c| matches!(c.1.as_str(), "vector" | "halfvec" | "sparsevec"))
                .collect();
            if vectors.is_empty() {
                continue;
            }
            let pk = client
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                     FROM pg_index x JOIN pg_attribute a \
                       ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) \
                     WHERE x.indrelid = $1 AND x.indisprimary",
                    &[&oid],
                )
                .await
                .map_err(|e| Self::query_error("read the primary key", e))?;
            let opclasses = client
                .query(
                    "SELECT a.attname::text, opc.opcname::text \
                     FROM pg_index x \
                     CROSS JOIN LATERAL unnest(x.indkey::int2[], x.indclass::oid[]) AS k(attnum, opcoid) \
                     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum \
                     JOIN pg_opclass opc ON opc.oid = k.opcoid \
                     WHERE x.indrelid = $1 ORDER BY x.indexrelid",
                    &[&oid],
                )
                .await
                .map_err(|e| Self::query_error("read the indexes", e))?;
            let several = vectors.len() > 1;
            for (vname, vtype, vformat, typmod) in vectors {
                let mut coll = SourceCollection::new(table.clone(), 0);
                if several {
                    coll.vector = Some(vname.clone());
                }
                if vtype == "sparsevec" {
                    coll.notes.push(format!(
                        "`{vname}` is {vformat}: stored dense in the target"
                    ));
                }
                let ops: Vec<String> = opclasses
                    .iter()
                    .filter(|r| r.get::<_, String>(0) == *vname)
                    .map(|r| r.get::<_, String>(1))
                    .collect();
                match ops.first().map(|o| metric_of_opclass(o)) {
                    Some(Ok(m)) => coll.metric = Some(m),
                    Some(Err(o)) => coll.notes.push(format!(
                        "the index on `{vname}` uses {o}, which hanzo-db does not offer"
                    )),
                    None => coll.notes.push(format!(
                        "`{vname}` has no vector index to read a metric from"
                    )),
                }
                if pk.len() != 1 {
                    coll.unsupported = Some(format!(
                        "table `{table}` needs a single-column primary key for keyset paging \
                         (it has {} key columns)",
                        pk.len()
                    ));
                    out.push(coll);
                    continue;
                }
                let (pk_name, pk_type): (String, String) = (pk[0].get(0), pk[0].get(1));
                let qt = format!("{}.{}", quote(&self.schema), quote(&table));
                let count: i64 = match client
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM {qt} WHERE {} IS NOT NULL",
                            quote(vname)
                        ),
                        &[],
                    )
                    .await
                {
                    Ok(row) => row.get(0),
                    // Dropped since the catalog was read: not ours to migrate.
                    Err(e) if is_gone(&e) => continue 'tables,
                    Err(e) => return Err(Self::query_error("count rows", e)),
                };
                coll.count = Some(count as u64);
                coll.dimension = if *typmod > 0 {
                    *typmod as usize
                } else {
                    let first = client
                        .query_opt(
                            &format!(
                                "SELECT {v} FROM {qt} WHERE {v} IS NOT NULL LIMIT 1",
                                v = quote(vname)
                            ),
                            &[],
                        )
                        .await
                        .map_err(|e| Self::query_error("read a first vector", e))?;
                    match first {
                        Some(r) => r.try_get::<_, PgVec>(0).map(|v| v.0.len()).unwrap_or(0),
                        None => 0,
                    }
                };
                if coll.dimension == 0 {
                    coll.unsupported = Some(format!(
                        "`{vname}` declares no dimension and holds no vector to read one from"
                    ));
                }
                let mut json_taken = false;
                let columns = cols
                    .iter()
                    .filter(|c| {
                        c.0 != pk_name
                            && !matches!(c.1.as_str(), "vector" | "halfvec" | "sparsevec")
                    })
                    .map(|c| Column {
                        name: c.0.clone(),
                        role: self.role_of(&c.0, &c.1, &mut json_taken),
                    })
                    .collect();
                coll.locator = serde_json::to_value(Locator {
                    schema: self.schema.clone(),
                    table: table.clone(),
                    pk: pk_name,
                    pk_type,
                    vector: vname.clone(),
                    columns,
                })
                .expect("locator serialises");
                out.push(coll);
            }
        }
        Ok(out)
    }

    async fn read_page(
        &self,
        collection: &SourceCollection,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page> {
        let loc: Locator = serde_json::from_value(collection.locator.clone()).map_err(|e| {
            Error::InvalidArgument(format!("not a pgvector collection locator: {e}"))
        })?;
        let client = self.client().await?;
        // Every column is qualified with the table alias `t`: a bare name in
        // ORDER BY would name the `pk::text` output column and sort the
        // keyset as text ("10" before "9").
        let col = |name: &str| format!("t.{}", quote(name));
        let mut select = vec![format!("{}::text", col(&loc.pk)), col(&loc.vector)];
        for c in &loc.columns {
            select.push(match c.role {
                Role::MergeJson | Role::Json | Role::AsText => format!("{}::text", col(&c.name)),
                _ => col(&c.name),
            });
        }
        let qt = format!("{}.{}", quote(&loc.schema), quote(&loc.table));
        let mut sql = format!(
            "SELECT {} FROM {qt} AS t WHERE {} IS NOT NULL",
            select.join(", "),
            col(&loc.vector)
        );
        let after: Option<String> = match cursor {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        if after.is_some() {
            sql.push_str(&format!(
                " AND {} > $1::text::{}",
                col(&loc.pk),
                loc.pk_type
            ));
        }
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            col(&loc.pk),
            limit.max(1)
        ));
        let op = format!("read table `{}`", loc.table);
        let rows = match &after {
            Some(a) => client.query(&sql, &[a]).await,
            None => client.query(&sql, &[]).await,
        }
        .map_err(|e| Self::query_error(&op, e))?;
        let bad = |id: Option<&str>, reason: String| Error::BadSourceRecord {
            store: STORE.into(),
            collection: collection.key(),
            record: id.map(str::to_string),
            reason,
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row
                .try_get(0)
                .map_err(|e| bad(None, format!("the primary key: {e}")))?;
            let vector: PgVec = row
                .try_get(1)
                .map_err(|e| bad(Some(&id), format!("column `{}`: {e}", loc.vector)))?;
            let mut rec = MultimodalRecord::new(id, vector.0);
            for (i, c) in loc.columns.iter().enumerate() {
                read_column(row, i + 2, c, &mut rec)
                    .map_err(|e| bad(Some(&rec.id), format!("column `{}`: {e}", c.name)))?;
            }
            records.push(rec);
        }
        let next = if rows.len() < limit.max(1) {
            None
        } else {
            records.last().map(|r| Value::String(r.id.clone()))
        };
        Ok(Page {
            records,
            skipped: 0,
            next,
        })
    }
}

pub(super) type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn read_column(
    row: &tokio_postgres::Row,
    idx: usize,
    col: &Column,
    rec: &mut MultimodalRecord,
) -> std::result::Result<(), BoxError> {
    let meta = &mut rec.metadata;
    match &col.role {
        Role::MergeJson | Role::Json => {
            let Some(text) = row.try_get::<_, Option<String>>(idx)? else {
                return Ok(());
            };
            let v: Value = serde_json::from_str(&text)?;
            match (v, &col.role) {
                (Value::Object(obj), Role::MergeJson) => {
                    for (k, v) in obj {
                        meta.entry(k).or_insert(v);
                    }
                }
                (v, _) => {
                    meta.insert(col.name.clone(), v);
                }
            }
        }
        Role::AsText => {
            if let Some(s) = row.try_get::<_, Option<String>>(idx)? {
                meta.insert(col.name.clone(), Value::String(s));
            }
        }
        Role::Native(t) => {
            if let Some(v) = native(row, idx, t)? {
                meta.insert(col.name.clone(), v);
            }
        }
        Role::Image => rec.image = row.try_get::<_, Option<Vec<u8>>>(idx)?,
        Role::Audio => rec.audio = row.try_get::<_, Option<Vec<u8>>>(idx)?,
        Role::Blob(mime) => {
            if let Some(data) = row.try_get::<_, Option<Vec<u8>>>(idx)? {
                rec.blobs.push(Blob::new(mime.clone(), data));
            }
        }
    }
    Ok(())
}

fn native(
    row: &tokio_postgres::Row,
    idx: usize,
    t: &str,
) -> std::result::Result<Option<Value>, BoxError> {
    Ok(match t {
        "bool" => row.try_get::<_, Option<bool>>(idx)?.map(Value::from),
        "int2" => row.try_get::<_, Option<i16>>(idx)?.map(Value::from),
        "int4" => row.try_get::<_, Option<i32>>(idx)?.map(Value::from),
        "int8" => row.try_get::<_, Option<i64>>(idx)?.map(Value::from),
        "oid" => row.try_get::<_, Option<u32>>(idx)?.map(Value::from),
        "float4" => row
            .try_get::<_, Option<f32>>(idx)?
            .and_then(|f| serde_json::Number::from_f64(f as f64).map(Value::Number)),
        "float8" => row
            .try_get::<_, Option<f64>>(idx)?
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)),
        _ => row.try_get::<_, Option<String>>(idx)?.map(Value::String),
    })
}

/// The metric of a pgvector operator class, or the class name when hanzo-db
/// has no such metric.
fn metric_of_opclass(opc: &str) -> std::result::Result<DistanceMetric, String> {
    let kind = opc
        .trim_start_matches("vector_")
        .trim_start_matches("halfvec_")
        .trim_start_matches("sparsevec_");
    match kind {
        "l2_ops" => Ok(DistanceMetric::L2),
        "cosine_ops" => Ok(DistanceMetric::Cosine),
        "ip_ops" => Ok(DistanceMetric::Dot),
        _ => Err(opc.to_string()),
    }
}

fn is_gone(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The connection string without its password.
fn redact(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .map(|r| ("postgres://", r))
        .or_else(|| {
            url.strip_prefix("postgresql://")
                .map(|r| ("postgresql://", r))
        })
    {
        let (scheme, rest) = rest;
        if let Some(at) = rest.find('@') {
            let (userinfo, host) = rest.split_at(at);
            let user = userinfo.split(':').next().unwrap_or("");
            let q = host.find('?').unwrap_or(host.len());
            return format!("{scheme}{user}{}", &host[..q]);
        }
        let q = rest.find('?').unwrap_or(rest.len());
        return format!("{scheme}{}", &rest[..q]);
    }
    url.split_whitespace()
        .filter(|kv| !kv.starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_opclasses_and_redacts() {
        assert_eq!(
            metric_of_opclass("vector_cosine_ops"),
            Ok(DistanceMetric::Cosine)
        );
        assert_eq!(metric_of_opclass("halfvec_ip_ops"), Ok(DistanceMetric::Dot));
        assert_eq!(
            metric_of_opclass("sparsevec_l2_ops"),
            Ok(DistanceMetric::L2)
        );
        assert!(metric_of_opclass("vector_l1_ops").is_err());
        assert_eq!(
            redact("postgres://me:s3cret@db:5432/app?sslmode=disable"),
            "postgres://me@db:5432/app"
        );
        assert_eq!(redact("host=db password=x user=me"), "host=db user=me");
    }
}
