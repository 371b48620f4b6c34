//! Shared helpers: databases in temp dirs, seeded data, exact search.

use hanzo_db::{connect, Database, DistanceMetric};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct TempDb {
    pub db: Database,
    pub dir: tempfile::TempDir,
}

pub async fn lance_db() -> TempDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = connect(dir.path().join("db")).execute().await.expect("open");
    TempDb { db, dir }
}

pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect()
}

/// Clustered vectors: `clusters` centres, points spread around them.
pub fn clustered_vectors(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..clusters)];
            c.iter().map(|x| x + rng.gen_range(-0.15..0.15)).collect()
        })
        .collect()
}

/// Ids of the exact k nearest, by brute force.
pub fn exact_knn(data: &[(String, Vec<f32>)], q: &[f32], k: usize, metric: DistanceMetric) -> Vec<String> {
    let mut d: Vec<(f32, &String)> = data.iter().map(|(id, v)| (metric.distance(q, v), id)).collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    d.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}
