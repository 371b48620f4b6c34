//! The Redis cache decorator: the harness the conformance suite runs on
//! (LanceDB behind the cache, each test under its own key prefix), hits and
//! misses, invalidation by writes, and a Redis that is unreachable, paused
//! in the middle of a write, or killed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hanzo_db::{CacheConfig, CacheStats, Database, DistanceMetric, MultimodalRecord, TableSchema};

use crate::common::{TempDb, connect_in, service_url, unique_name};
use crate::conformance::Harness;

/// LanceDB (in a temp dir) behind a Redis cache.
pub struct CachedLance {
    pub tmp: TempDb,
    pub cache: CacheConfig,
}

pub async fn open_cached(dir: &std::path::Path, cache: &CacheConfig) -> Database {
    connect_in(dir)
        .encryption(false)
        .redis_cache(cache.clone())
        .execute()
        .await
        .expect("open LanceDB behind the Redis cache")
}

fn test_cache(url: &str) -> CacheConfig {
    CacheConfig {
        prefix: unique_name("hzt"),
        ttl_secs: 120,
        ..CacheConfig::new(url)
    }
}

/// `None` (skipped, reason printed) when `HANZO_DB_TEST_REDIS_URL` is unset outside CI.
pub async fn cached_lance() -> Option<CachedLance> {
    let url = service_url("HANZO_DB_TEST_REDIS_URL", "Redis server")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = test_cache(&url);
    let db = open_cached(dir.path(), &cache).await;
    Some(CachedLance {
        tmp: TempDb { db, dir },
        cache,
    })
}

impl Harness for CachedLance {
    fn db(&self) -> &Database {
        &self.tmp.db
    }
    fn reopen(&self) -> Pin<Box<dyn Future<Output = Database> + Send + '_>> {
        Box::pin(open_cached(self.tmp.dir.path(), &self.cache))
    }
}

async fn table(db: &Database) {
    db.create_table("t", TableSchema::new(3).metric(DistanceMetric::L2))
        .await
        .unwrap();
    db.insert(
        "t",
        (0..20)
            .map(|i| {
                MultimodalRecord::new(format!("r{i}"), vec![i as f32, 0.0, 0.0]).with_text("x")
            })
            .collect(),
    )
    .await
    .unwrap();
}

async fn nearest(db: &Database, q: [f32; 3]) -> Vec<String> {
    db.vector_search("t", &q, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.record.id)
        .collect()
}

fn stats(db: &Database) -> CacheStats {
    db.cache_stats().expect("a cache is configured")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_after_miss_for_searches_and_gets() {
    let Some(h) = cached_lance().await else {
        return;
    };
    let db = &h.tmp.db;
    table(db).await;
    let before = stats(db);
    let first = nearest(db, [5.2, 0.0, 0.0]).await;
    let after_miss = stats(db);
    assert_eq!(after_miss.misses, before.misses + 1);
    assert_eq!(after_miss.stored, before.stored + 1);
    let second = nearest(db, [5.2, 0.0, 0.0]).await;
    assert_eq!(first, second);
    assert_eq!(first, vec!["r5", "r6", "r4"]);
    assert_eq!(
        stats(db).hits,
        after_miss.hits + 1,
        "second search is a hit"
    );
    // Another query is another entry.
    nearest(db, [9.0, 0.0, 0.0]).await;
    assert_eq!(stats(db).misses, after_miss.misses + 1);
    // Records by id.
    let a = db.get("t", "r7").await.unwrap();
    let hits = stats(db).hits;
    let b = db.get("t", "r7").await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a.unwrap().vector, vec![7.0, 0.0, 0.0]);
    assert_eq!(stats(db).hits, hits + 1);
    assert!(!stats(db).degraded);
    // A second handle on the same Redis sees the first one's entries.
    let again = open_cached(h.tmp.dir.path(), &h.cache).await;
    assert_eq!(nearest(&again, [5.2, 0.0, 0.0]).await, first);
    assert_eq!(stats(&again).hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_invalidates() {
    let Some(h) = cached_lance().await else {
        return;
    };
    let db = &h.tmp.db;
    table(db).await;
    let q = [5.2, 0.0, 0.0];
    assert_eq!(nearest(db, q).await[0], "r5");
    assert_eq!(nearest(db, q).await[0], "r5"); // cached now
    db.insert("t", vec![MultimodalRecord::new("new", vec![5.2, 0.0, 0.0])])
        .await
        .unwrap();
    assert_eq!(nearest(db, q).await[0], "new", "insert seen");
    db.upsert(
        "t",
        vec![MultimodalRecord::new("new", vec![50.0, 0.0, 0.0])],
    )
    .await
    .unwrap();
    assert_eq!(nearest(db, q).await[0], "r5", "upsert seen");
    assert_eq!(db.get("t", "new").await.unwrap().unwrap().vector[0], 50.0);
    db.delete("t", &["r5"]).await.unwrap();
    assert_ne!(nearest(db, q).await[0], "r5", "delete seen");
    assert!(db.get("t", "r5").await.unwrap().is_none());
    // A dropped and re-created table does not see the old table's answers.
    db.drop_table("t").await.unwrap();
    db.create_table("t", TableSchema::new(3)).await.unwrap();
    assert!(nearest(db, q).await.is_empty());
    assert!(db.get("t", "r6").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_answers_from_the_engine_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheConfig {
        retry_after_ms: 60_000,
        ..test_cache("redis://127.0.0.1:1/")
    };
    let db = open_cached(dir.path(), &cache).await;
    table(&db).await;
    assert_eq!(nearest(&db, [5.2, 0.0, 0.0]).await, vec!["r5", "r6", "r4"]);
    assert_eq!(db.get("t", "r3").await.unwrap().unwrap().id, "r3");
    let s = stats(&db);
    assert!(s.degraded && s.errors >= 1 && s.bypassed >= 2, "{s:?}");
    assert!(s.last_error.is_some());
    assert_eq!((s.hits, s.stored), (0, 0));
    // A malformed URL is a configuration error, not a degraded cache.
    let bad = connect_in(dir.path())
        .encryption(false)
        .redis_cache(CacheConfig::new("not a url"))
        .execute()
        .await;
    assert!(matches!(bad, Err(hanzo_db::Error::Config(_))), "{bad:?}");
}

/// A private redis-server on a free port, so the test can pause and kill it.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: Option<u16>) -> Option<Self> {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port")
        });
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("redis-server could not start and CI=true: {e}")
            }
            Err(e) => {
                eprintln!("skipping: redis-server could not start ({e}); install redis-server");
                return None;
            }
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self { child, port });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}");
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.signal_quiet("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OwnRedis {
    fn signal_quiet(&self, sig: &str) -> std::io::Result<std::process::ExitStatus> {
        std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_then_killed_redis_never_serves_stale_answers() {
    if service_url("HANZO_DB_TEST_REDIS_URL", "Redis server").is_none() {
        return; // the same skip rule as the other Redis tests
    }
    let Some(mut redis) = OwnRedis::start(None) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheConfig {
        timeout_ms: 200,
        retry_after_ms: 300,
        ..test_cache(&format!("redis://127.0.0.1:{}/", redis.port))
    };
    let db = open_cached(dir.path(), &cache).await;
    table(&db).await;
    let q = [5.2, 0.0, 0.0];
    assert_eq!(nearest(&db, q).await[0], "r5");
    assert_eq!(nearest(&db, q).await[0], "r5");
    assert_eq!(stats(&db).hits, 1);

    // Redis stops answering (its entries stay): a write made now cannot bump
    // the generation, yet neither now nor after Redis returns is the old
    // answer served.
    redis.signal("-STOP");
    db.insert("t", vec![MultimodalRecord::new("new", vec![5.2, 0.0, 0.0])])
        .await
        .unwrap();
    assert_eq!(nearest(&db, q).await[0], "new", "answered by the engine");
    let s = stats(&db);
    assert!(s.degraded && s.errors >= 1, "{s:?}");
    redis.signal("-CONT");
    let hits = stats(&db).hits;
    recover(&db, q, "new").await;
    let s = stats(&db);
    assert!(s.hits > hits, "cache in use again: {s:?}");

    // Killed outright: every call still answers.
    redis.child.kill().unwrap();
    redis.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.delete("t", &["new"]).await.unwrap();
    assert_eq!(nearest(&db, q).await[0], "r5");
    assert_eq!(db.get("t", "r1").await.unwrap().unwrap().id, "r1");
    assert!(stats(&db).degraded);
    // Restarted (empty): back in use after the retry delay.
    let port = redis.port;
    let _restarted = OwnRedis::start(Some(port)).expect("restart");
    recover(&db, q, "r5").await;
}

/// Searches until the cache serves again (a hit), checking every answer on the way.
async fn recover(db: &Database, q: [f32; 3], want: &str) {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let hits = stats(db).hits;
        assert_eq!(nearest(db, q).await[0], want, "never a stale answer");
        if !stats(db).degraded && stats(db).hits > hits {
            return;
        }
    }
    panic!("the cache did not recover: {:?}", stats(db));
}
