//! PostgreSQL with pgvector behind [`VectorDatabase`] (feature `postgres`).
//!
//! For transactional workloads and for teams whose data already lives in
//! PostgreSQL. A pool of `tokio-postgres` connections (deadpool) talks to the
//! server; each hanzo-db table is one PostgreSQL table (layout in [`sql`]),
//! in the schema (namespace) named by [`PostgresOptions::schema`], beside a
//! small catalog table, `_hanzo$tables`, holding each table's
//! [`TableSchema`], its write version and its vector index.
//!
//! - Every write is one transaction (statements of up to 500 rows), so a
//!   failed batch leaves nothing behind; upserts are `ON CONFLICT (id) DO
//!   UPDATE`. Each write bumps the table's version in the catalog.
//! - Filters compile to parameterised SQL ([`filter`]); search orders by the
//!   pgvector operator of the metric and converts its value to hanzo-db's
//!   distance ([`sql::to_distance`]).
//! - Indexes: HNSW and IVFFlat with the operator class of the metric,
//!   B-tree/GIN scalar indexes, a GIN full-text index ([`index`]).
//! - Time travel, tags, restore and compaction are `Unsupported`: PostgreSQL
//!   keeps only the latest state.

mod filter;
mod index;
mod ops;
mod sql;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio::sync::RwLock;
use tokio_postgres::NoTls;

use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::config::PostgresOptions;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats};
use crate::record::MultimodalRecord;
use crate::schema::{TableSchema, validate_identifier};

pub use index::VectorIndex;
use sql::{Params, quote};

const ENGINE: &str = "postgres";

/// Most rows in one INSERT statement (a batch is several, in one transaction).
const ROWS_PER_STATEMENT: usize = 500;

/// Rows per page of a [`scan`](VectorDatabase::scan).
const SCAN_PAGE: i64 = 1000;

/// pgvector's largest `vector` dimension.
const MAX_DIMENSION: usize = 16_000;

/// What we know about one table.
#[derive(Debug, Clone)]
struct TableInfo {
    schema: TableSchema,
    vector_index: Option<VectorIndex>,
}

/// PostgreSQL + pgvector behind [`VectorDatabase`].
pub struct PostgresBackend {
    pool: Pool,
    /// The PostgreSQL schema, quoted.
    ns: String,
    /// The PostgreSQL schema, as named.
    ns_name: String,
    target: String,
    tables: RwLock<HashMap<String, TableInfo>>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("server", &self.target)
            .field("schema", &self.ns_name)
            .finish()
    }
}

/// Maps a driver error into ours, keeping PostgreSQL's message and detail.
fn map_err(op: &str, table: &str, e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            let msg = format!("{}{detail} [SQLSTATE {}]", db.message(), db.code().code());
            if db.code().code() == "42P01" {
                return Error::TableNotFound { name: table.into() };
            }
            Error::engine(ENGINE, format!("{op} on `{table}`"), msg)
        }
        None => Error::engine(ENGINE, format!("{op} on `{table}`"), e),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl PostgresBackend {
    /// Connects (the URL from `options.url`, else `HANZO_DB_POSTGRES_URL`),
    /// makes sure pgvector, the schema and the catalog exist, and checks the
    /// server answers within `connect_timeout_secs`. An unreachable server is
    /// [`Error::Unavailable`].
    pub async fn connect(options: &PostgresOptions) -> Result<Self> {
        let url = options
            .url
            .clone()
            .or_else(|| std::env::var("HANZO_DB_POSTGRES_URL").ok())
            .ok_or_else(|| {
                Error::Config(
                    "the postgres backend needs a server URL: set DatabaseConfig::postgres.url \
                     (ConnectBuilder::postgres_url) or HANZO_DB_POSTGRES_URL"
                        .into(),
                )
            })?;
        validate_identifier(&options.schema, "field name").map_err(|_| {
            Error::Config(format!(
                "postgres schema `{}`: use 1-64 ASCII letters, digits or `_`",
                options.schema
            ))
        })?;
        let target = redact(&url);
        let mut pg = tokio_postgres::Config::from_str(&url)
            .map_err(|e| Error::Config(format!("bad PostgreSQL URL `{target}`: {e}")))?;
        let timeout = Duration::from_secs(options.connect_timeout_secs.max(1));
        pg.connect_timeout(timeout);
        pg.application_name("hanzo-db");
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| Error::Config(format!("PostgreSQL pool: {e}")))?;
        let backend = Self {
            pool,
            ns: quote(&options.schema),
            ns_name: options.schema.clone(),
            target,
            tables: RwLock::new(HashMap::new()),
        };
        let client = tokio::time::timeout(timeout, backend.client())
            .await
            .map_err(|_| backend.unavailable(format!("no answer within {timeout:?}")))??;
        backend.prepare(&client).await?;
        Ok(backend)
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            backend: ENGINE.into(),
            target: self.target.clone(),
            reason: reason.into(),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => {
                let reason = match e.as_db_error() {
                    Some(db) => db.message().to_string(),
                    None => {
                        use std::error::Error as _;
                        match e.source() {
                            Some(s) => format!("{e}: {s}"),
                            None => e.to_string(),
                        }
                    }
                };
                self.unavailable(reason)
            }
            other => self.unavailable(other.to_string()),
        })
    }

    /// pgvector, the schema and the catalog. Safe to run from several
    /// processes at once (a lost race to create something is not an error).
    async fn prepare(&self, client: &tokio_postgres::Client) -> Result<()> {
        let has_vector = client
            .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'vector'", &[])
            .await
            .map_err(|e| map_err("check pgvector", "*", e))?
            .is_some();
        if !has_vector {
            if let Err(e) = client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .await
            {
                let again = client
                    .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'vector'", &[])
                    .await
                    .map_err(|e| map_err("check pgvector", "*", e))?;
                if again.is_none() {
                    return Err(Error::Engine {
                        engine: ENGINE,
                        operation: "enable pgvector".into(),
                        message: format!(
                            "the `vector` extension (pgvector) is not installed in this database and \
                             could not be created ({}): install pgvector and run \
                             `CREATE EXTENSION vector` as a superuser",
                            e.as_db_error()
                                .map(|d| d.message().to_string())
                                .unwrap_or(e.to_string())
                        ),
                    });
                }
            }
        }
        let ddl = format!(
            "CREATE SCHEMA IF NOT EXISTS {ns}; \
             CREATE TABLE IF NOT EXISTS {catalog} ( \
               name text PRIMARY KEY, \
               schema jsonb NOT NULL, \
               version bigint NOT NULL DEFAULT 0, \
               vector_index jsonb, \
               created_at timestamptz NOT NULL DEFAULT now())",
            ns = self.ns,
            catalog = self.catalog()
        );
        for attempt in 0..3 {
            match client.batch_execute(&ddl).await {
                Ok(()) => return Ok(()),
                // Two processes creating the schema or catalog at once: one wins, retry sees it.
                Err(e)
                    if attempt < 2
                        && e.as_db_error().is_some_and(|d| {
                            matches!(d.code().code(), "23505" | "42P06" | "42P07")
                        }) =>
                {
                    continue;
                }
                Err(e) => return Err(map_err("create catalog", "*", e)),
            }
        }
        Ok(())
    }

    fn catalog(&self) -> String {
        format!("{}.\"_hanzo$tables\"", self.ns)
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", self.ns, quote(&sql::derived_name(table, "")))
    }

    async fn info(&self, name: &str) -> Result<TableInfo> {
        if let Some(i) = self.tables.read().await.get(name) {
            return Ok(i.clone());
        }
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT schema::text, vector_index::text FROM {} WHERE name = $1",
                    self.catalog()
                ),
                &[&name],
            )
            .await
            .map_err(|e| map_err("read catalog", name, e))?
            .ok_or_else(|| Error::TableNotFound { name: name.into() })?;
        let schema: TableSchema =
            serde_json::from_str(row.get::<_, &str>(0)).map_err(|e| Error::BadSchema {
                reason: format!("table `{name}` has an unreadable schema in the catalog: {e}"),
            })?;
        let vector_index = row
            .get::<_, Option<&str>>(1)
            .and_then(|t| serde_json::from_str(t).ok());
        let info = TableInfo {
            schema,
            vector_index,
        };
        self.tables
            .write()
            .await
            .insert(name.to_string(), info.clone());
        Ok(info)
    }

    /// Writes records in one transaction; `upsert` replaces rows with the same id.
    async fn write(&self, table: &str, records: &[MultimodalRecord], upsert: bool) -> Result<u64> {
        let info = self.info(table).await?;
        let qualified = self.qualified(table);
        let cols = sql::write_columns(&info.schema);
        let conflict = if upsert {
            let sets: Vec<String> = cols
                .iter()
                .skip(1)
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            format!(" ON CONFLICT (id) DO UPDATE SET {}", sets.join(", "))
        } else {
            String::new()
        };
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| map_err("begin", table, e))?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::default();
            let rows = chunk
                .iter()
                .map(|r| sql::bind_record(&info.schema, r, &mut p))
                .collect::<Result<Vec<_>>>()?;
            let stmt = format!(
                "INSERT INTO {qualified} ({}) VALUES {}{conflict}",
                cols.join(", "),
                rows.join(", ")
            );
            // Full-size statements are prepared once per connection; the
            // odd-sized last one is not kept.
            let done = if chunk.len() == ROWS_PER_STATEMENT {
                let prepared = tx
                    .prepare_cached(&stmt)
                    .await
                    .map_err(|e| map_err("insert", table, e))?;
                tx.execute(&prepared, &p.refs()).await
            } else {
                tx.execute(&stmt, &p.refs()).await
            };
            done.map_err(|e| write_err(table, e))?;
        }
        let version = bump_version(&tx, &self.catalog(), table).await?;
        tx.commit().await.map_err(|e| map_err("commit", table, e))?;
        Ok(version)
    }

    fn where_clause(
        &self,
        schema: &TableSchema,
        filter: Option<&Filter>,
        p: &mut Params,
    ) -> Result<String> {
        Ok(match filter {
            Some(f) => format!(" WHERE {}", filter::to_sql(f, schema, p)?),
            None => String::new(),
        })
    }

    fn no_time_travel(&self, version: Option<u64>) -> Result<()> {
        match version {
            Some(_) => Err(self.unsupported("reading at a past version (time travel)")),
            None => Ok(()),
        }
    }
}

/// Insert errors: an id already present is the caller's mistake, named.
fn write_err(table: &str, e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        if db.code().code() == "23505" {
            let id = db.detail().and_then(|d| {
                d.strip_prefix("Key (id)=(")
                    .and_then(|rest| rest.strip_suffix(") already exists."))
                    .map(str::to_string)
            });
            return Error::BadRecord {
                id,
                reason: format!(
                    "the id already exists in `{table}`; use upsert to replace it (nothing was written)"
                ),
            };
        }
    }
    map_err("write", table, e)
}

async fn bump_version(
    tx: &deadpool_postgres::Transaction<'_>,
    catalog: &str,
    table: &str,
) -> Result<u64> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE {catalog} SET version = version + 1 WHERE name = $1 RETURNING version"
            ),
            &[&table],
        )
        .await
        .map_err(|e| map_err("bump version", table, e))?;
    Ok(row.get::<_, i64>(0) as u64)
}
