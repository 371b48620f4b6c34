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
    /// `HANZO_DB_PASSPHRASE_ENV` (name of the variable holding the passphrase)
    /// `HANZO_DB_KEY_FILE` and `HANZO_DB_AUDIT` (on/off) when set.
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
    }
}
