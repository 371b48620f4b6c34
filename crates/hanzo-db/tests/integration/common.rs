//! Shared helpers: databases in temp dirs, seeded data, exact search.

use hanzo_db::{Database, DistanceMetric, connect};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct TempDb {
    pub db: Database,
    pub dir: tempfile::TempDir,
}

pub async fn lance_db() -> TempDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = connect_in(dir.path()).execute().await.expect("open");
    TempDb { db, dir }
}

/// LanceDB without the write buffer: every write is its own version, as
/// tests of versions and fragments expect.
pub async fn lance_db_unbuffered() -> TempDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = hanzo_db::DatabaseConfig::new(dir.path().join("db"));
    cfg.write_buffer.enabled = false;
    let db = connect(dir.path().join("db"))
        .config(cfg)
        .key(hanzo_db::KeyConfig::Default {
            key_dir: Some(dir.path().join("keys")),
        })
        .execute()
        .await
        .expect("open");
    TempDb { db, dir }
}

/// LanceDB with encryption at rest turned off (the explicit opt-out).
pub async fn lance_db_plain() -> TempDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = connect_in(dir.path())
        .encryption(false)
        .execute()
        .await
        .expect("open");
    TempDb { db, dir }
}

/// An embedded SQL engine (SQLite or DuckDB), which hanzo-db does not encrypt.
#[allow(dead_code)]
pub async fn sql_db(backend: hanzo_db::DatabaseBackend) -> TempDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = connect_in(dir.path())
        .backend(backend)
        .encryption(false)
        .execute()
        .await
        .expect("open");
    TempDb { db, dir }
}

/// `connect` to `<dir>/db`, its default key file kept in `<dir>/keys`
/// (outside the database, as in real use, but inside the test's temp dir).
pub fn connect_in(dir: &std::path::Path) -> hanzo_db::ConnectBuilder {
    connect(dir.join("db")).key(hanzo_db::KeyConfig::Default {
        key_dir: Some(dir.join("keys")),
    })
}

pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect()
}

/// Embedding-like data: `clusters` centres, each with a few principal
/// directions, points spread along them plus small noise (low intrinsic
/// dimension, as real embeddings have). Returns `n` data points and
/// `queries` query points drawn from the same model.
pub fn clustered(
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
    seed: u64,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let model: Vec<(Vec<f32>, Vec<Vec<f32>>)> = (0..clusters)
        .map(|_| {
            let centre = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let dirs = (0..4)
                .map(|_| (0..dim).map(|_| rng.gen_range(-0.3..0.3)).collect())
                .collect();
            (centre, dirs)
        })
        .collect();
    let point = |rng: &mut StdRng| -> Vec<f32> {
        let (centre, dirs) = &model[rng.gen_range(0..clusters)];
        let coef: Vec<f32> = (0..dirs.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        (0..dim)
            .map(|j| {
                centre[j]
                    + dirs.iter().zip(&coef).map(|(d, c)| d[j] * c).sum::<f32>()
                    + rng.gen_range(-0.01..0.01)
            })
            .collect()
    };
    let data = (0..n).map(|_| point(&mut rng)).collect();
    let qs = (0..queries).map(|_| point(&mut rng)).collect();
    (data, qs)
}

/// Ids of the exact k nearest, by brute force.
pub fn exact_knn(
    data: &[(String, Vec<f32>)],
    q: &[f32],
    k: usize,
    metric: DistanceMetric,
) -> Vec<String> {
    let mut d: Vec<(f32, &String)> = data
        .iter()
        .map(|(id, v)| (metric.distance(q, v), id))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    d.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

/// The URL of a test server from `var`. When unset: under `CI=true` the
/// run fails (the service had to start); otherwise the caller skips, and
/// this says why.
pub fn service_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "{var} is not set and CI=true: {what} must be running (scripts/test.sh starts it)"
            )
        }
        _ => {
            eprintln!(
                "skipping: {var} is not set, so there is no {what} to test against \
                 (scripts/test.sh starts one)"
            );
            None
        }
    }
}

/// A name no other test (or earlier run) uses: `prefix_<pid>_<n>_<random>`.
pub fn unique_name(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{:08x}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        rand::random::<u32>()
    )
}
