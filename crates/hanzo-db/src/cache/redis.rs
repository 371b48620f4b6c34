//! [`RedisCache`]: a Redis cache of reads in front of any engine.
//!
//! Keys (all under the configured prefix `P`):
//! - `P:gen:<table>` — the table's write generation, `INCR`ed before and
//!   after every write made through the decorator;
//! - `P:c:<table>:<gen>:<hash>` — one cached answer: the JSON of a search's
//!   hits or of the records a `get` returned, for the request whose SHA-256
//!   is `<hash>`, read at generation `<gen>`; it expires after `ttl_secs`;
//! - `P:idx` — a sorted set of cached keys by insertion time, trimmed to
//!   `max_entries` (oldest evicted first).
//!
//! A lookup reads the generation and the entry in one script call, so an
//! answer is only ever served for the generation current at that moment; an
//! answer computed while a write was under way is stored under the older
//! generation, which the write's second bump has already retired.
//!
//! If Redis fails (down, slow, refusing), the call is answered by the engine
//! and the cache stays out of the way for `retry_after_ms` before trying
//! again; [`CacheStats::degraded`] and a `tracing` warning report it. If a
//! write's generation bump fails, the table is marked unsynchronised and its
//! reads bypass the cache until a later bump succeeds, so a write this
//! process made is never hidden by an older cached answer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;

use super::{CacheConfig, CacheStats};
use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{
    CompactionStats, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest, TableStats,
    VersionInfo,
};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

/// Reads a table's generation and, under it, one entry (sent with `EVAL`;
/// the scripts are a few hundred bytes).
/// KEYS[1] = generation key; ARGV[1] = entry key prefix, ARGV[2] = request hash.
const LOOKUP: &str = r"
local gen = redis.call('GET', KEYS[1]) or '0'
local v = redis.call('GET', ARGV[1] .. gen .. ':' .. ARGV[2])
return {gen, v}
";

/// Stores one entry with its TTL and trims the index to the bound.
/// KEYS[1] = entry key, KEYS[2] = index; ARGV = value, ttl, now_ms, max, expired_before_ms.
const STORE: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', old[i]) end
end
return over
";

#[derive(Default)]
struct State {
    stats: CacheStats,
    /// While set, Redis is not tried.
    down_until: Option<Instant>,
    /// Tables whose generation could not be bumped after a write.
    unsynced: HashSet<String>,
}

/// Caches search results and records by id in Redis, around any engine.
pub struct RedisCache {
    inner: Arc<dyn VectorDatabase>,
    redis: ConnectionManager,
    config: CacheConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("inner", &self.inner)
            .field("prefix", &self.config.prefix)
            .finish()
    }
}

impl RedisCache {
    /// Wraps `inner`. Connects lazily: an unreachable Redis is not an error
    /// here (reads go to the engine and the stats say so); a malformed URL is.
    pub fn new(inner: Arc<dyn VectorDatabase>, config: CacheConfig) -> Result<Self> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|e| Error::Config(format!("bad Redis URL: {e}")))?;
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(50));
        let redis = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| Error::Config(format!("Redis cache: {e}")))?;
        Ok(Self {
            inner,
            redis,
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// Hits, misses and health so far.
    pub fn stats(&self) -> CacheStats {
        self.state.lock().expect("lock").stats.clone()
    }

    fn gen_key(&self, table: &str) -> String {
        format!("{}:gen:{table}", self.config.prefix)
    }

    fn entry_prefix(&self, table: &str) -> String {
        format!("{}:c:{table}:", self.config.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}:idx", self.config.prefix)
    }

    /// Runs one Redis call under the timeout; records failure or recovery.
    async fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        let outcome = match tokio::time::timeout(timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        let mut st = self.state.lock().expect("lock");
        match outcome {
            Ok(v) => {
                if st.stats.degraded {
                    tracing::info!(what, "Redis cache reachable again");
                }
                st.stats.degraded = false;
                st.down_until = None;
                Some(v)
            }
            Err(e) => {
                if !st.stats.degraded {
                    tracing::warn!(what, error = %e, "Redis cache unavailable; answering from the engine");
                }
                st.stats.errors += 1;
                st.stats.degraded = true;
                st.stats.last_error = Some(format!("{what}: {e}"));
                st.down_until =
                    Some(Instant::now() + Duration::from_millis(self.config.retry_after_ms));
                None
            }
        }
    }

    fn redis_resting(&self) -> bool {
        let st = self.state.lock().expect("lock");
        st.down_until.is_some_and(|t| Instant::now() < t)
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.state.lock().expect("lock").stats);
    }

    /// Bumps a table's generation. On failure the table's reads bypass the
    /// cache until a bump succeeds.
    async fn bump(&self, table: &str) {
        if !self.redis_resting() {
            let mut conn = self.redis.clone();
            let key = self.gen_key(table);
            let cmd = redis::cmd("INCR").arg(&key).to_owned();
            if self
                .call("bump generation", cmd.query_async::<i64>(&mut conn))
                .await
                .is_some()
            {
                self.state.lock().expect("lock").unsynced.remove(table);
                return;
            }
        }
        self.state
            .lock()
            .expect("lock")
            .unsynced
            .insert(table.to_string());
    }

    /// Whether the cache may serve this table now (retrying a failed bump).
    async fn usable(&self, table: &str) -> bool {
        if self.redis_resting() {
            return false;
        }
        let unsynced = self.state.lock().expect("lock").unsynced.contains(table);
        if unsynced {
            self.bump(table).await;
            return !self.state.lock().expect("lock").unsynced.contains(table);
        }
        true
    }

    /// Serves `kind` for `request` from Redis, or from `fetch` (then stores it).
    async fn cached<T, F>(
        &self,
        table: &str,
        kind: &str,
        request: &impl Serialize,
        fetch: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: std::future::Future<Output = Result<T>>,
    {
        if !self.usable(table).await {
            self.count(|s| s.bypassed += 1);
            return fetch.await;
        }
        let hash = {
            let body = serde_json::to_vec(&(kind, request)).expect("requests serialise");
            hex::encode(sha2::Sha256::digest(&body))
        };
        let mut conn = self.redis.clone();
        let lookup = redis::cmd("EVAL")
            .arg(LOOKUP)
            .arg(1)
            .arg(self.gen_key(table))
            .arg(self.entry_prefix(table))
            .arg(&hash)
            .to_owned();
        let Some((generation, found)) = self
            .call(
                "lookup",
                lookup.query_async::<(String, Option<Vec<u8>>)>(&mut conn),
            )
            .await
        else {
            self.count(|s| s.bypassed += 1);
            return fetch.await;
        };
        if let Some(bytes) = found {
            if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
                self.count(|s| s.hits += 1);
                return Ok(v);
            }
        }
        self.count(|s| s.misses += 1);
        let value = fetch.await?;
        let bytes = serde_json::to_vec(&value).expect("results serialise");
        if bytes.len() > self.config.max_value_bytes {
            self.count(|s| s.too_large += 1);
            return Ok(value);
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let ttl = self.config.ttl_secs.max(1);
        let key = format!("{}{generation}:{hash}", self.entry_prefix(table));
        let store = redis::cmd("EVAL")
            .arg(STORE)
            .arg(2)
            .arg(&key)
            .arg(self.index_key())
            .arg(bytes)
            .arg(ttl)
            .arg(now_ms)
            .arg(self.config.max_entries.max(1))
            .arg(now_ms - (ttl as i64) * 1000)
            .to_owned();
        if self
            .call("store", store.query_async::<i64>(&mut conn))
            .await
            .is_some()
        {
            self.count(|s| s.stored += 1);
        }
        Ok(value)
    }

    /// Runs a write between two generation bumps.
    async fn write<T>(
        &self,
        table: &str,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.bump(table).await;
        let out = f.await;
        self.bump(table).await;
        out
    }
}

#[async_trait]
impl VectorDatabase for RedisCache {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(self.stats())
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        // A table dropped and created again must not see the old one's answers.
        self.write(name, self.inner.create_table(name, schema))
            .await
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        self.inner.table_schema(name).await
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        self.inner.list_tables().await
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        self.write(name, self.inner.drop_table(name)).await
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        self.write(table, self.inner.insert(table, records)).await
    }

    async fn insert_stream(&self, table: &str, batches: RecordStream) -> Result<u64> {
        self.write(table, self.inner.insert_stream(table, batches))
            .await
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        self.write(table, self.inner.upsert(table, records)).await
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        self.write(table, self.inner.delete(table, selector)).await
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        self.cached(
            table,
            "get",
            &(ids, projection, version),
            self.inner.get(table, ids, projection, version),
        )
        .await
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        self.inner.scan(table, projection, version).await
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        self.inner.count(table, filter).await
    }

    async fn vector_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.cached(
            table,
            "vector",
            request,
            self.inner.vector_search(table, request),
        )
        .await
    }

    async fn text_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.cached(
            table,
            "text",
            request,
            self.inner.text_search(table, request),
        )
        .await
    }

    async fn hybrid_search(&self, table: &str, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.cached(
            table,
            "hybrid",
            request,
            self.inner.hybrid_search(table, request),
        )
        .await
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        // A new index can change approximate answers.
        self.write(table, self.inner.create_index(table, spec))
            .await
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.inner.list_indexes(table).await
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        self.inner.table_stats(table).await
    }

    async fn version(&self, table: &str) -> Result<u64> {
        self.inner.version(table).await
    }

    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        self.inner.list_versions(table).await
    }

    async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        self.write(table, self.inner.restore(table, version)).await
    }

    async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        self.inner.tag(table, version, tag).await
    }

    async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        self.inner.tag_version(table, tag).await
    }

    async fn compact(&self, table: &str, keep: Duration) -> Result<CompactionStats> {
        self.write(table, self.inner.compact(table, keep)).await
    }
}
