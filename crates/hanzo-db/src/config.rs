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

/// Which engine serves each workload.
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
    /// Engine per workload.
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
    /// The write buffer for small writes.
    pub write_buffer: WriteBufferConfig,
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
            write_buffer: WriteBufferConfig::default(),
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
    /// `HANZO_DB_KEY_FILE`, `HANZO_DB_WRITE_BUFFER` (on/off) and
    /// `HANZO_DB_WRITE_BUFFER_SYNC` (on/off) when set.
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
        for (key, slot) in [
            ("HANZO_DB_WRITE_BUFFER", &mut self.write_buffer.enabled),
            ("HANZO_DB_WRITE_BUFFER_SYNC", &mut self.write_buffer.sync),
        ] {
            if let Some(v) = var(key) {
                *slot = on_off(key, &v)?;
            }
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
}
