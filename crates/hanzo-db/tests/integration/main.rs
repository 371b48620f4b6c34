//! One integration-test binary, a module per area, all on real engines in
//! temporary directories.

mod access;
mod audit;
mod common;
mod conformance;
mod core_spec;
mod embedded_sql;
mod encryption;
mod hot_index;
mod hot_rerank;
mod indexes;
#[cfg(feature = "migrate")]
mod migrate_chroma;
#[cfg(feature = "migrate")]
mod migrate_pgvector;
#[cfg(feature = "migrate")]
mod migrate_pinecone;
#[cfg(feature = "migrate")]
mod migrate_qdrant;
#[cfg(feature = "migrate")]
mod migrate_support;
#[cfg(feature = "migrate")]
mod migrate_weaviate;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis_cache;
mod search;
mod security_keys;
mod security_tee;
mod time_travel;
mod upkeep;
mod write_buffer;
mod write_buffer_crash;
