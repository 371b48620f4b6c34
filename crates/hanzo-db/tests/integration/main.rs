//! One integration-test binary, a module per area, all on real engines in
//! temporary directories.

mod common;
mod conformance;
mod core_spec;
mod encryption;
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
mod search;
mod security_keys;
mod security_tee;
mod time_travel;
mod upkeep;
