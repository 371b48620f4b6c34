//! # hanzo-db
//!
//! An embedded, multimodal vector store for local AI agents. It runs inside
//! your process (no server), keeps data on your disk, and stores records of
//! vectors, text, images, audio, other blobs and JSON metadata. The default
//! engine is [LanceDB](https://lancedb.com): durable, columnar and versioned.
//!
//! ```
//! use hanzo_db::{connect, MultimodalRecord, TableSchema, DistanceMetric, FieldType};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = connect(dir.path().join("db")).execute().await?;
//! db.create_table(
//!     "memories",
//!     TableSchema::new(3).metric(DistanceMetric::Cosine).field("kind", FieldType::String),
//! )
//! .await?;
//! db.insert(
//!     "memories",
//!     vec![
//!         MultimodalRecord::new("a", vec![1.0, 0.0, 0.0]).with_text("a cat").with_metadata("kind", "pet"),
//!         MultimodalRecord::new("b", vec![0.0, 1.0, 0.0]).with_text("a car").with_metadata("kind", "vehicle"),
//!     ],
//! )
//! .await?;
//! let hits = db
//!     .search("memories")
//!     .vector(vec![0.9, 0.1, 0.0])
//!     .filter(serde_json::json!({"kind": "pet"}))
//!     .k(1)
//!     .execute()
//!     .await?;
//! assert_eq!(hits[0].record.id, "a");
//! # Ok::<(), hanzo_db::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## Shape
//! - [`connect`] → [`ConnectBuilder`] → [`Database`], a handle over an
//!   `Arc<dyn` [`VectorDatabase`]`>` that validates every input.
//! - [`TableSchema`]: dimension, [`DistanceMetric`], typed metadata fields.
//! - [`MultimodalRecord`]: id, vector, text, image, audio, [`Blob`]s, metadata.
//! - [`Filter`]: the portable JSON filter language.
//! - [`Database::search`] → [`SearchBuilder`]: vector, full-text or hybrid
//!   (reciprocal rank fusion), with filters, k, nprobes, refine, time travel.
//! - [`buffer::WriteBuffer`]: small writes acknowledged from an encrypted log
//!   and folded into the engine in batches (on by default, [`WriteBufferConfig`]).
//!
//! ## Allocator
//! Set jemalloc (`tikv-jemallocator`) as your application's global
//! allocator, as the `hanzo-db` CLI does. Under glibc's malloc a process that
//! has bulk-loaded and indexed a large table keeps a fragmented heap, and
//! LanceDB searches in it run slower and hold more memory (see the README).
//!
//! ## Crate features
//! - `lancedb` (default): the LanceDB engine.
//! - `postgres`: PostgreSQL with pgvector ([`backend::postgres`]), selected
//!   with [`DatabaseBackend::Postgres`] and a URL ([`ConnectBuilder::postgres_url`]).
//! - `redis`: a Redis cache of search results and records in front of any
//!   engine ([`cache`]), turned on with [`ConnectBuilder::redis_cache`].
//! - `sqlite`: SQLite + sqlite-vec, one file, lightweight embedded use
//!   ([`backend::sqlite::SqliteBackend`]).
//! - `duckdb`: DuckDB, analytics over the same tables, Parquet export
//!   ([`backend::duckdb::DuckDbBackend`]).
//! - `hot`: the in-memory HNSW index in front of LanceDB ([`hot`]).
//! - `migrate`: [`migrate`], moving whole stores in from pgvector, Qdrant,
//!   Pinecone, Weaviate and Chroma (resumable, verified).
//!
//! Choosing a backend whose feature is off returns [`Error::FeatureDisabled`]
//! naming the feature.

#![deny(missing_docs)]

pub mod access;
pub mod arrow;
pub mod audit;
pub mod backend;
pub mod buffer;
pub mod cache;
mod config;
mod database;
mod error;
pub mod filter;
#[cfg(feature = "hot")]
pub mod hot;
#[cfg(feature = "migrate")]
pub mod migrate;
pub mod query;
mod record;
mod schema;
pub mod security;

pub use access::{
    AccessStatus, Authorizer, Credential, Grant, NewApiKey, Permission, Principal, PrincipalSpec,
};
pub use audit::{AuditConfig, AuditEntry, AuditSync, VerifyReport};
pub use backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
pub use cache::{CacheConfig, CacheStats};
pub use config::{
    DatabaseBackend, DatabaseConfig, HotConfig, HotQuantization, LanceOptions, PostgresOptions,
    Workload, Workloads, WriteBufferConfig,
};
pub use database::{ConnectBuilder, Database, IntoFilter, MAX_K, SearchBuilder, connect};
pub use error::{Error, Result};
pub use filter::Filter;
pub use query::{
    CompactionStats, FilterMode, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest,
    TableStats, VersionInfo, reciprocal_rank_fusion,
};
pub use record::{Blob, MultimodalRecord, WriteLimits, validate_records, validate_vector};
pub use schema::{DistanceMetric, FieldDef, FieldType, TableSchema};
pub use security::{Cipher, KeyConfig, SecurityConfig, SecurityStatus, SecurityTier};
