//! Migration into hanzo-db from other vector stores: pgvector, Qdrant,
//! Pinecone, Weaviate and Chroma (cargo feature `migrate`).
//!
//! The seam is [`MigrationSource`]: a source lists its collections with their
//! configuration ([`SourceCollection`]: dimension, metric, count when known),
//! then yields [`Page`]s of [`MultimodalRecord`]s, each page carrying the
//! resumable [`Cursor`] of the next one. One file per store implements it:
//! [`PgVectorSource`] (PostgreSQL wire, keyset paging on the primary key),
//! [`QdrantSource`], [`PineconeSource`], [`WeaviateSource`] and
//! [`ChromaSource`] (their REST export APIs, through one HTTP client that
//! retries 429/503 honouring `Retry-After`).
//!
//! [`Migration`] drives any source into a [`Database`](crate::Database):
//!
//! ```no_run
//! # async fn run() -> hanzo_db::Result<()> {
//! use hanzo_db::migrate::{Migration, PgVectorSource};
//! let db = hanzo_db::connect("./my-data").execute().await?;
//! let source = PgVectorSource::new("postgres://me@localhost/app");
//! let report = Migration::new(db, Box::new(source))
//!     .table("items", "items")
//!     .checkpoint("./items.migrate.json")
//!     .execute()
//!     .await?;
//! assert!(report.verified());
//! # Ok(()) }
//! ```
//!
//! Every migration streams (one page in memory, the next one being read while
//! the current one is written), writes a checkpoint (the source cursor and
//! the counts) after each committed batch, resumes from it, and verifies at
//! the end: counts on both sides and a sample compared field by field,
//! vectors bit for bit.

mod checkpoint;
mod chroma;
mod http;
mod pgvector;
mod pinecone;
mod qdrant;
mod report;
mod runner;
mod verify;
mod weaviate;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::record::MultimodalRecord;
use crate::schema::DistanceMetric;

pub use checkpoint::{Checkpoint, TableProgress};
pub use chroma::ChromaSource;
pub use http::RetryPolicy;
pub use pgvector::PgVectorSource;
pub use pinecone::PineconeSource;
pub use qdrant::QdrantSource;
pub use report::{MigrationReport, PlannedTable, Progress, TableReport};
pub use runner::Migration;
#[cfg(feature = "lancedb")]
pub use runner::migrate_from_postgres;
pub use verify::Verification;
pub use weaviate::WeaviateSource;

/// Where a source stopped: an opaque, JSON-serialisable position (a primary
/// key, a point id, a page token, an offset) stored in the checkpoint.
pub type Cursor = serde_json::Value;

/// One migratable unit of a source: a collection (table, index namespace,
/// class, tenant) and, when it has several, one of its vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCollection {
    /// The collection, table or class name.
    pub name: String,
    /// The partition inside it, when the store has them (a Pinecone
    /// namespace is its own collection; a Weaviate tenant is a partition).
    pub partition: Option<String>,
    /// The vector's name when the collection has several (a named vector, a
    /// second vector column); each becomes its own target table.
    pub vector: Option<String>,
    /// Vector dimension (0 when it could not be found; such a collection is
    /// `unsupported`).
    pub dimension: usize,
    /// Distance metric, when the source says.
    pub metric: Option<DistanceMetric>,
    /// Number of records, when the source can count them.
    pub count: Option<u64>,
    /// Why this collection cannot be migrated, if it cannot.
    pub unsupported: Option<String>,
    /// Remarks for the plan (what is left out, what was assumed).
    pub notes: Vec<String>,
    /// Source-specific details it needs to read the collection back.
    pub locator: serde_json::Value,
}

impl SourceCollection {
    /// A collection with a name and a dimension, nothing else known yet.
    pub fn new(name: impl Into<String>, dimension: usize) -> Self {
        Self {
            name: name.into(),
            partition: None,
            vector: None,
            dimension,
            metric: None,
            count: None,
            unsupported: None,
            notes: Vec::new(),
            locator: serde_json::Value::Null,
        }
    }

    /// The key users name it by: `name`, then `@partition`, then `:vector`.
    pub fn key(&self) -> String {
        let mut k = self.name.clone();
        if let Some(p) = &self.partition {
            k.push('@');
            k.push_str(p);
        }
        if let Some(v) = &self.vector {
            k.push(':');
            k.push_str(v);
        }
        k
    }

    /// The default target table name: the key with every character that a
    /// table name cannot hold replaced by `_`.
    pub fn default_target(&self) -> String {
        let mut t: String = self
            .key()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if t.starts_with(|c: char| c.is_ascii_digit() || c == '-') || t.is_empty() {
            t.insert_str(0, "t_");
        }
        t.truncate(64);
        t
    }
}

/// One page of records read from a source.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records, in source order.
    pub records: Vec<MultimodalRecord>,
    /// Records the source holds but that cannot be migrated (e.g. a point
    /// without the chosen named vector): counted, not written.
    pub skipped: u64,
    /// Where the next page starts; `None` when this was the last page.
    pub next: Option<Cursor>,
}

/// A store to migrate from.
///
/// Contract:
/// - [`collections`](Self::collections) lists every collection with its
///   configuration; it reads no records beyond what it needs to find a
///   dimension.
/// - [`read_page`](Self::read_page) returns the page that starts at `cursor`
///   (`None`: the beginning), at most `limit` records, and the cursor of the
///   next page. The same cursor returns the same page while the source is not
///   written to, so a checkpointed cursor resumes exactly.
/// - Errors are [`Error`](crate::Error) variants: `SourceUnreachable`,
///   `SourceAuth`, `SourceRequest` (after retries), and `BadSourceRecord`
///   naming the record and the reason when a record cannot be read.
#[async_trait]
pub trait MigrationSource: Send + Sync + std::fmt::Debug {
    /// The store's short name: `pgvector`, `qdrant`, `pinecone`, `weaviate`, `chroma`.
    fn store(&self) -> &'static str;

    /// Where the data comes from, without credentials (recorded in the
    /// checkpoint so that a resume against another source is refused).
    fn describe(&self) -> String;

    /// Every collection with its configuration.
    async fn collections(&self) -> Result<Vec<SourceCollection>>;

    /// The page of `collection` that starts at `cursor`.
    async fn read_page(
        &self,
        collection: &SourceCollection,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page>;
}

/// Reads a JSON number array as float32 (the sources' vectors), naming the
/// record on failure.
pub(crate) fn json_vector(value: &serde_json::Value) -> std::result::Result<Vec<f32>, String> {
    let arr = value
        .as_array()
        .ok_or_else(|| format!("the vector is not an array of numbers: {}", clip(value)))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        match v.as_f64() {
            Some(x) => out.push(x as f32),
            None if v.is_array() => {
                return Err(
                    "a multi-vector (an array of arrays) cannot be stored in one vector column"
                        .into(),
                );
            }
            None => return Err(format!("vector component {i} is not a number: {}", clip(v))),
        }
    }
    Ok(out)
}

/// A short printable form of a JSON value for error messages.
pub(crate) fn clip(value: &serde_json::Value) -> String {
    let s = value.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_default_targets() {
        let mut c = SourceCollection::new("Article", 3);
        assert_eq!(
            (c.key(), c.default_target()),
            ("Article".into(), "Article".into())
        );
        c.partition = Some("tenant a".into());
        c.vector = Some("title".into());
        assert_eq!(c.key(), "Article@tenant a:title");
        assert_eq!(c.default_target(), "Article_tenant_a_title");
        let d = SourceCollection::new("2024.docs", 3);
        assert_eq!(d.default_target(), "t_2024_docs");
    }

    #[test]
    fn json_vectors_name_what_is_wrong() {
        assert_eq!(
            json_vector(&serde_json::json!([1, 0.5, -2])).unwrap(),
            vec![1.0, 0.5, -2.0]
        );
        assert!(
            json_vector(&serde_json::json!([[1], [2]]))
                .unwrap_err()
                .contains("multi-vector")
        );
        assert!(
            json_vector(&serde_json::json!([1, "x"]))
                .unwrap_err()
                .contains("component 1")
        );
        assert!(json_vector(&serde_json::json!({"a": 1})).is_err());
    }
}
