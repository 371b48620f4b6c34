//! Caching in front of any engine.
//!
//! [`RedisCache`](redis::RedisCache) (feature `redis`) is a decorator: it
//! implements [`VectorDatabase`] around another `Arc<dyn VectorDatabase>` and
//! keeps search results and records fetched by id in Redis. Entries are keyed
//! by table, the table's write generation (a counter in Redis that every write
//! through the decorator bumps, before and after the write) and a hash of the
//! request, so a write never lets an older result be served. A TTL and an
//! entry bound keep the cache small. When Redis is down or slow, every call
//! is answered by the engine underneath and the degradation is reported
//! ([`CacheStats`], a `tracing` warning); no call fails because of the cache.
//!
//! Turned on by [`DatabaseConfig::cache`](crate::DatabaseConfig::cache) or
//! [`ConnectBuilder::redis_cache`](crate::ConnectBuilder::redis_cache).

#[cfg(feature = "redis")]
pub mod redis;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::VectorDatabase;
use crate::error::Result;

/// Settings of the Redis cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// `redis://[user:password@]host:port/[db]`.
    pub redis_url: String,
    /// Seconds an entry lives (it bounds staleness from writes made around
    /// the cache, e.g. by another process without it).
    pub ttl_secs: u64,
    /// Most entries kept; the oldest are evicted first.
    pub max_entries: u64,
    /// Key prefix, so several databases can share one Redis.
    pub prefix: String,
    /// Largest serialised result cached, in bytes (bigger ones are served
    /// but not stored: records with large blobs).
    pub max_value_bytes: usize,
    /// Milliseconds a Redis call may take before the cache is bypassed.
    pub timeout_ms: u64,
    /// After a Redis failure, milliseconds before the cache tries Redis again.
    pub retry_after_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379/".into(),
            ttl_secs: 300,
            max_entries: 10_000,
            prefix: "hanzo-db".into(),
            max_value_bytes: 1024 * 1024,
            timeout_ms: 250,
            retry_after_ms: 1000,
        }
    }
}

impl CacheConfig {
    /// Defaults with this Redis URL.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            ..Self::default()
        }
    }
}

/// What the cache has done, and whether Redis is reachable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Answers served from Redis.
    pub hits: u64,
    /// Lookups that found nothing (answered by the engine, then stored).
    pub misses: u64,
    /// Results stored.
    pub stored: u64,
    /// Results not stored because they exceed `max_value_bytes`.
    pub too_large: u64,
    /// Calls answered by the engine without the cache because Redis was
    /// unreachable or a table's generation could not be bumped.
    pub bypassed: u64,
    /// Redis errors and timeouts seen.
    pub errors: u64,
    /// True while Redis is failing: calls go straight to the engine.
    pub degraded: bool,
    /// The last Redis error, if any.
    pub last_error: Option<String>,
}

/// Wraps `engine` in the cache the configuration asks for (none when
/// `config.cache` is `None`). Fails with `FeatureDisabled` when a cache is
/// asked for in a build without the `redis` feature, and with `Config` on a
/// malformed Redis URL; an unreachable Redis is not an error (the cache starts
/// degraded).
pub fn wrap(
    engine: Arc<dyn VectorDatabase>,
    config: Option<&CacheConfig>,
) -> Result<Arc<dyn VectorDatabase>> {
    let Some(config) = config else {
        return Ok(engine);
    };
    #[cfg(feature = "redis")]
    {
        Ok(Arc::new(redis::RedisCache::new(engine, config.clone())?))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (engine, config);
        Err(crate::error::Error::FeatureDisabled {
            backend: "redis".into(),
            feature: "redis".into(),
        })
    }
}
