//! Configuration: where the database lives, which engine serves each
//! workload, and the engine's options. Loadable from TOML and from
//! `HANZO_DB_*` environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The storage engines hanzo-db can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    /// LanceDB: the default, for vectors. Feature `lancedb`.
    #[default]
    LanceDb,
    /// DuckDB: analytics. Feature `duckdb`.
    DuckDb,
    /// PostgreSQL with pgvector: transactional. Feature `postgres`.
    Postgres,
    /// Redis: caching. Feature `redis`.
    Redis,
    /// SQLite with sqlite-vec: lightweight embedded. Feature `sqlite`.
    Sqlite,
}

impl DatabaseBackend {
    /// The cargo feature that compiles this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Self::LanceDb => "lancedb",
            Self::DuckDb => "duckdb",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Sqlite => "sqlite",
        }
    }
}

impl std::str::FromStr for DatabaseBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "lancedb" | "lance" => Self::LanceDb,
            "duckdb" => Self::DuckDb,
            "postgres" | "postgresql" | "pgvector" => Self::Postgres,
            "redis" => Self::Redis,
            "sqlite" => Self::Sqlite,
            other => {
                return Err(Error::Config(format!(
                    "unknown backend `{other}`: use lancedb, duckdb, postgres, redis or sqlite"
                )));
            }
        })
    }
}

impl std::fmt::Display for DatabaseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.feature())
    }
}

/// A kind of work the configuration assigns an engine to (see [`Workloads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Vector storage and search (the default).
    #[default]
    Vectors,
    /// Analytics: SQL aggregates over the stored records.
    Analytics,
    /// Transactional workloads.
    Transactional,
}

impl std::str::FromStr for Workload {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "vectors" | "vector" => Self::Vectors,
            "analytics" => Self::Analytics,
            "transactional" | "oltp" => Self::Transactional,
            other => {
                return Err(Error::Config(format!(
                    "unknown workload `{other}`: use vectors, analytics or transactional"
                )));
            }
        })
    }
}

/// Which engine serves each workload. In TOML, the `[workloads]` table
/// (also accepted as `[backends]`):
///
/// ```
/// let cfg = hanzo_db::DatabaseConfig::from_toml_str(
///     "[backends]\nvectors = \"sqlite\"\nanalytics = \"duckdb\"\n",
/// ).unwrap();
/// assert_eq!(cfg.workloads.backend_for(hanzo_db::Workload::Vectors), hanzo_db::DatabaseBackend::Sqlite);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Workloads {
    /// Vector storage and search (what [`connect`](crate::connect) opens).
    pub vectors: DatabaseBackend,
    /// Analytics.
    pub analytics: DatabaseBackend,
    /// Transactional workloads.
    pub transactional: DatabaseBackend,
}

impl Workloads {
    /// The engine configured for a workload.
    pub fn backend_for(&self, workload: Workload) -> DatabaseBackend {
        match workload {
            Workload::Vectors => self.vectors,
            Workload::Analytics => self.analytics,
            Workload::Transactional => self.transactional,
        }
    }
}

impl Default for Workloads {
    fn default() -> Self {
        Self {
            vectors: DatabaseBackend::LanceDb,
            analytics: DatabaseBackend::DuckDb,
            transactional: DatabaseBackend::Postgres,
        }
    }
}

/// LanceDB engine options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LanceOptions {
    /// How often a handle re-checks for writes made by other processes, in
    /// milliseconds. `None`: never (writes in this process are always seen).
    pub read_consistency_ms: Option<u64>,
    /// Index cache size in entries.
    pub index_cache_entries: Option<u32>,
}

impl Default for LanceOptions {
    fn default() -> Self {
        Self {
            read_consistency_ms: None,
            index_cache_entries: None,
        }
    }
}

/// PostgreSQL (with pgvector) options, used when the engine is
/// [`DatabaseBackend::Postgres`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresOptions {
    /// Connection URL, `postgres://user:password@host:port/database`
    /// (`HANZO_DB_POSTGRES_URL` when unset). TLS is not offered: use a
    /// loopback or Unix-socket address, or a trusted network.
    pub url: Option<String>,
    /// The PostgreSQL schema (namespace) holding the tables and hanzo-db's
    /// catalog; created if missing.
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Seconds to wait for a connection before reporting the server unreachable.
    pub connect_timeout_secs: u64,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            url: None,
            schema: "public".into(),
            pool_size: 16,
            connect_timeout_secs: 10,
        }
    }
}

/// How the in-memory index stores vectors (see [`HotConfig::quantization`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HotQuantization {
    /// `i8` for cosine tables (vectors are normalised, so 8 bits keep the
    /// angle well), `f16` for L2 and dot (whose distances depend on length).
    #[default]
    Auto,
    /// Full precision.
    F32,
    /// IEEE half precision.
    F16,
    /// 8-bit integers (cosine only: each vector is scaled by its length).
    I8,
}

/// The hot in-memory index over each table (cargo feature `hot`): an HNSW
/// graph of quantised vectors, kept in step with the table, with re-ranking
/// by full-precision vectors while they fit the memory budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HotConfig {
    /// Serve vector searches from memory (on by default).
    pub enabled: bool,
    /// Memory all hot tables together may use, in bytes. A table that does
    /// not fit is served by LanceDB's own index.
    pub memory_budget_bytes: u64,
    /// How vectors are stored in the graph.
    pub quantization: HotQuantization,
    /// Graph degree (HNSW `M`). 1M × 768 cosine, re-ranked from disk: two
    /// graphs at 24 gave recall@10 0.977 and 0.978 at `ef` 40; three at 16,
    /// 0.952–0.970 at `ef` 48, in about the same time (24 costs 64 bytes
    /// more per row).
    pub connectivity: usize,
    /// Search breadth while building (HNSW `ef_construction`).
    pub expansion_add: usize,
    /// Search breadth while querying (HNSW `ef`). 1M × 768 cosine, one
    /// graph of connectivity 24 re-ranked from disk: recall@10 0.960 at 32
    /// (p50 0.65–0.71 ms), 0.977 at 40 (0.80–0.88 ms), 0.983 at 48
    /// (0.86–0.87 ms).
    pub expansion_search: usize,
    /// Least search breadth of a filtered query. A filtered walk goes on
    /// until it holds `ef` *matching* rows, so with a fraction `s` of rows
    /// matching it visits about `1/s` times the nodes of an unfiltered walk.
    /// Once a filter's selectivity is known (it repeats), its breadth is
    /// `expansion_search × s`, at least this (1M × 768, 10 % matching:
    /// recall@10 0.98 at 16, as at 64, in half the time).
    pub filtered_expansion_search: usize,
    /// Candidates re-ranked with full-precision vectors, as a multiple of
    /// `k`. In memory, every candidate the search's breadth finds is
    /// re-ranked (at least this many). A table whose full-precision vectors
    /// do not fit the budget keeps them on disk, encrypted, and re-ranks the
    /// best `k × rerank_factor` with one read each (1M × 768 at `ef` 64:
    /// recall@10 0.960 → 0.983 at 2, the same at 4).
    pub rerank_factor: usize,
    /// Keep full-precision vectors on disk (encrypted) to re-rank from,
    /// for a table whose full-precision vectors do not fit the budget. Off:
    /// such a table is ranked by the graph's quantised distances (lower
    /// recall), and its searches never wait on the page cache.
    pub rerank_on_disk: bool,
    /// Tables with fewer rows than this are searched exactly (brute force).
    pub exact_below: usize,
    /// Save the index (encrypted) so that reopening does not rebuild it.
    pub persist: bool,
    /// Save again after this many writes, once they are also an eighth of
    /// the table's rows (a save rewrites the whole table), and when the
    /// database is closed. 0: only when it is closed.
    pub persist_every_writes: u64,
    /// Once a graph is built or loaded, move its memory onto 2 MiB pages
    /// (Linux `MADV_COLLAPSE`; nothing elsewhere): a search's scattered
    /// reads then miss the TLB far less often. Only memory already resident
    /// is moved, so the resident size does not grow.
    pub huge_pages: bool,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            memory_budget_bytes: 1536 * 1024 * 1024,
            quantization: HotQuantization::Auto,
            connectivity: 24,
            expansion_add: 128,
            expansion_search: 40,
            filtered_expansion_search: 16,
            rerank_factor: 2,
            rerank_on_disk: true,
            exact_below: 2048,
            persist: true,
            persist_every_writes: 1000,
            huge_pages: true,
        }
    }
}

/// The write buffer in front of the engine (see [`crate::buffer`]): small
/// writes are acknowledged from an encrypted, checksummed log and folded into
/// the engine in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteBufferConfig {
    /// Buffer small writes (on by default).
    pub enabled: bool,
    /// Fold a table's buffered rows into the engine once this many are buffered.
    pub max_rows: usize,
    /// Fold buffered rows at the latest this many milliseconds after they were written.
    pub max_delay_ms: u64,
    /// `fsync` the log before acknowledging a write (on by default). Off, a
    /// write is acknowledged once the operating system holds it — it
    /// survives the process crashing, not the machine — and the log is
    /// `fsync`ed every `max_delay_ms / 2`.
    pub sync: bool,
    /// Write calls of more rows than this go straight to the engine.
    pub max_write_rows: usize,
}

impl Default for WriteBufferConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_rows: 1024,
            max_delay_ms: 500,
            sync: true,
            max_write_rows: 32,
        }
    }
}

impl WriteBufferConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.max_rows == 0 || self.max_write_rows == 0 || self.max_delay_ms == 0 {
            return Err(Error::Config(
                "write_buffer: max_rows, max_write_rows and max_delay_ms must be at least 1 (set enabled = false to turn the buffer off)".into(),
            ));
        }
        Ok(())
    }
}

/// Everything needed to open a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// Directory of the database (created if missing).
    pub path: PathBuf,
    /// Engine per workload (`[workloads]`, or `[backends]`, in TOML).
    #[serde(alias = "backends")]
    pub workloads: Workloads,
    /// Largest image, audio or other blob accepted, in bytes.
    pub max_blob_bytes: usize,
    /// Compact and prune old versions automatically after this many writes
    /// to a table (0 turns it off).
    pub auto_compact_every: u64,
    /// How long old versions are kept for time travel before pruning, in seconds.
    pub keep_versions_secs: u64,
    /// LanceDB options.
    pub lance: LanceOptions,
    /// Encryption at rest, keys and confidential-computing tier.
    pub security: crate::security::SecurityConfig,
    /// PostgreSQL options (engine `postgres`).
    pub postgres: PostgresOptions,
    /// A Redis cache in front of the engine (feature `redis`); off when `None`.
    pub cache: Option<crate::cache::CacheConfig>,
    /// The hot in-memory index (feature `hot`).
    pub hot: HotConfig,
    /// The write buffer for small writes.
    pub write_buffer: WriteBufferConfig,
    /// The audit log.
    pub audit: crate::audit::AuditConfig,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("hanzo-data"),
            workloads: Workloads::default(),
            max_blob_bytes: 64 * 1024 * 1024,
            auto_compact_every: 256,
            keep_versions_secs: 7 * 24 * 3600,
            lance: LanceOptions::default(),
            security: crate::security::SecurityConfig::default(),
            postgres: PostgresOptions::default(),
            cache: None,
            hot: HotConfig::default(),
            write_buffer: WriteBufferConfig::default(),
            audit: crate::audit::AuditConfig::default(),
        }
    }
}

impl DatabaseConfig {
    /// Defaults with this path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Reads a TOML file; keys left out keep their defaults.
    ///
    /// ```
    /// let cfg: hanzo_db::DatabaseConfig = hanzo_db::DatabaseConfig::from_toml_str(
    ///     "path = \"/tmp/db\"\nmax_blob_bytes = 1024\n[workloads]\nanalytics = \"duckdb\"\n",
    /// ).unwrap();
    /// assert_eq!(cfg.max_blob_bytes, 1024);
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(format!("bad TOML: {e}")))
    }

    /// Reads a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Overrides fields from `HANZO_DB_PATH`, `HANZO_DB_BACKEND`,
    /// `HANZO_DB_MAX_BLOB_BYTES`, `HANZO_DB_AUTO_COMPACT_EVERY`,
    /// `HANZO_DB_KEEP_VERSIONS_SECS`, `HANZO_DB_ENCRYPTION` (on/off),
    /// `HANZO_DB_PASSPHRASE_ENV` (name of the variable holding the passphrase),
    /// `HANZO_DB_KEY_FILE`, `HANZO_DB_POSTGRES_URL` (or `HANZO_DB_PG_URL`),
    /// `HANZO_DB_POSTGRES_SCHEMA` and `HANZO_DB_REDIS_URL` (turns the Redis cache on)
    /// and `HANZO_DB_HOT` (on/off),
    /// `HANZO_DB_WRITE_BUFFER` (on/off) and
    /// `HANZO_DB_WRITE_BUFFER_SYNC` (on/off),
    /// and `HANZO_DB_AUDIT` (on/off) when set.
    pub fn with_env(self) -> Result<Self> {
        self.with_vars(|k| std::env::var(k).ok())
    }

    fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        fn num<T: std::str::FromStr>(key: &str, v: String) -> Result<T> {
            v.parse()
                .map_err(|_| Error::Config(format!("{key}={v} is not a number")))
        }
        if let Some(v) = var("HANZO_DB_PATH") {
            self.path = v.into();
        }
        if let Some(v) = var("HANZO_DB_BACKEND") {
            self.workloads.vectors = v.parse()?;
        }
        if let Some(v) = var("HANZO_DB_PG_URL") {
            self.postgres.url = Some(v);
        }
        if let Some(v) = var("HANZO_DB_MAX_BLOB_BYTES") {
            self.max_blob_bytes = num("HANZO_DB_MAX_BLOB_BYTES", v)?;
        }
        if let Some(v) = var("HANZO_DB_AUTO_COMPACT_EVERY") {
            self.auto_compact_every = num("HANZO_DB_AUTO_COMPACT_EVERY", v)?;
        }
        if let Some(v) = var("HANZO_DB_ENCRYPTION") {
            self.security.encryption = match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(Error::Config(format!(
                        "HANZO_DB_ENCRYPTION={v}: use on or off"
                    )));
                }
            };
        }
        if let Some(v) = var("HANZO_DB_PASSPHRASE_ENV") {
            self.security.key = crate::security::KeyConfig::Passphrase { env: v };
        }
        if let Some(v) = var("HANZO_DB_KEY_FILE") {
            self.security.key = crate::security::KeyConfig::KeyFile { path: v.into() };
        }
        if let Some(v) = var("HANZO_DB_POSTGRES_URL") {
            self.postgres.url = Some(v);
        }
        if let Some(v) = var("HANZO_DB_POSTGRES_SCHEMA") {
            self.postgres.schema = v;
        }
        if let Some(v) = var("HANZO_DB_REDIS_URL") {
            let mut cache = self.cache.take().unwrap_or_default();
            cache.redis_url = v;
            self.cache = Some(cache);
        }
        if let Some(v) = var("HANZO_DB_HOT") {
            self.hot.enabled = match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(Error::Config(format!("HANZO_DB_HOT={v}: use on or off"))),
            };
        }
        for (key, slot) in [
            ("HANZO_DB_WRITE_BUFFER", &mut self.write_buffer.enabled),
            ("HANZO_DB_WRITE_BUFFER_SYNC", &mut self.write_buffer.sync),
        ] {
            if let Some(v) = var(key) {
                *slot = on_off(key, &v)?;
            }
        }
        if let Some(v) = var("HANZO_DB_AUDIT") {
            self.audit.enabled = match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(Error::Config(format!("HANZO_DB_AUDIT={v}: use on or off"))),
            };
        }
        if let Some(v) = var("HANZO_DB_KEEP_VERSIONS_SECS") {
            self.keep_versions_secs = num("HANZO_DB_KEEP_VERSIONS_SECS", v)?;
        }
        Ok(self)
    }

    /// How long old versions are kept.
    pub fn keep_versions_for(&self) -> Duration {
        Duration::from_secs(self.keep_versions_secs)
    }
}

fn on_off(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(Error::Config(format!("{key}={v}: use on or off"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_errors() {
        let cfg = DatabaseConfig::default()
            .with_vars(|k| match k {
                "HANZO_DB_PATH" => Some("/x".into()),
                "HANZO_DB_BACKEND" => Some("sqlite".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(cfg.path, PathBuf::from("/x"));
        assert_eq!(cfg.workloads.vectors, DatabaseBackend::Sqlite);
        let bad = DatabaseConfig::default()
            .with_vars(|k| (k == "HANZO_DB_MAX_BLOB_BYTES").then(|| "lots".into()));
        assert!(bad.is_err());
        assert!(DatabaseConfig::from_toml_str("path = 3").is_err());
        let wb = DatabaseConfig::default()
            .with_vars(|k| (k == "HANZO_DB_WRITE_BUFFER_SYNC").then(|| "off".into()))
            .unwrap();
        assert!(wb.write_buffer.enabled && !wb.write_buffer.sync);
        assert!(
            DatabaseConfig::default()
                .with_vars(|k| (k == "HANZO_DB_WRITE_BUFFER").then(|| "maybe".into()))
                .is_err()
        );
        let toml = DatabaseConfig::from_toml_str("[write_buffer]\nmax_rows = 10\n").unwrap();
        assert_eq!(toml.write_buffer.max_rows, 10);
        assert!(toml.write_buffer.enabled);
    }

    #[test]
    fn postgres_and_cache_from_toml_and_env() {
        let cfg = DatabaseConfig::from_toml_str(
            "[postgres]\nurl = \"postgres://u@h/db\"\nschema = \"agents\"\n\
             [cache]\nredis_url = \"redis://127.0.0.1/\"\nttl_secs = 5\n",
        )
        .unwrap();
        assert_eq!(cfg.postgres.url.as_deref(), Some("postgres://u@h/db"));
        assert_eq!(cfg.postgres.schema, "agents");
        assert_eq!(cfg.postgres.pool_size, 16);
        let cache = cfg.cache.clone().unwrap();
        assert_eq!((cache.ttl_secs, cache.max_entries), (5, 10_000));
        let env = DatabaseConfig::default()
            .with_vars(|k| (k == "HANZO_DB_REDIS_URL").then(|| "redis://x/".into()))
            .unwrap();
        assert_eq!(env.cache.unwrap().redis_url, "redis://x/");
        assert!(DatabaseConfig::default().cache.is_none());
    }
}
