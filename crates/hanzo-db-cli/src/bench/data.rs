//! Benchmark data: an embedding-like synthetic set (a mixture of Gaussians in
//! a 32-dimensional latent space, mapped linearly into `dim` dimensions plus
//! small noise — i.i.d. Gaussian data in high dimension has no meaningful
//! neighbours), or vectors from an `.npy` / `.fvecs` file.

use std::path::Path;

use hanzo_db::DistanceMetric;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LATENT: usize = 32;
const CLUSTERS: usize = 256;

/// A seeded generator of embedding-like vectors.
pub struct Synthetic {
    dim: usize,
    centres: Vec<[f32; LATENT]>,
    proj: Vec<f32>, // LATENT x dim
    rng: StdRng,
}

fn gauss(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.r#gen::<f32>().max(1e-12);
    let u2: f32 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

impl Synthetic {
    /// The model (centres, projection) comes from `seed`; the stream of points from `stream`.
    pub fn new(dim: usize, seed: u64, stream: u64) -> Self {
        let mut model = StdRng::seed_from_u64(seed);
        let centres = (0..CLUSTERS)
            .map(|_| {
                let mut c = [0f32; LATENT];
                c.iter_mut().for_each(|x| *x = gauss(&mut model) * 2.0);
                c
            })
            .collect();
        let scale = 1.0 / (LATENT as f32).sqrt();
        let proj = (0..LATENT * dim)
            .map(|_| gauss(&mut model) * scale)
            .collect();
        Self {
            dim,
            centres,
            proj,
            rng: StdRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        }
    }

    /// The next point.
    pub fn next_vec(&mut self) -> Vec<f32> {
        let c = &self.centres[self.rng.gen_range(0..CLUSTERS)];
        let mut z = [0f32; LATENT];
        for (zi, ci) in z.iter_mut().zip(c) {
            *zi = ci + gauss(&mut self.rng) * 0.5;
        }
        let mut out = vec![0f32; self.dim];
        for (l, zl) in z.iter().enumerate() {
            let row = &self.proj[l * self.dim..(l + 1) * self.dim];
            for (o, w) in out.iter_mut().zip(row) {
                *o += zl * w;
            }
        }
        for o in out.iter_mut() {
            *o += gauss(&mut self.rng) * 0.05;
        }
        out
    }
}

/// Reads a float matrix from `.npy` (float32/float64) or `.fvecs`.
pub fn read_matrix(path: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext == "fvecs" {
        let bytes = std::fs::read(path)?;
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            anyhow::ensure!(
                pos + 4 <= bytes.len(),
                "{}: truncated .fvecs",
                path.display()
            );
            let d = u32::from_le_bytes(bytes[pos..pos + 4].try_into()?) as usize;
            pos += 4;
            anyhow::ensure!(
                pos + 4 * d <= bytes.len(),
                "{}: truncated .fvecs row",
                path.display()
            );
            out.push(
                bytes[pos..pos + 4 * d]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                    .collect(),
            );
            pos += 4 * d;
        }
        return Ok(out);
    }
    use crate::formats::RecordSource;
    let mut r = crate::formats::npy::NpyReader::open(path, None)?;
    let mut out = Vec::with_capacity(r.header().rows);
    while let Some(next) = r.next_record() {
        match next {
            Ok((_, rec)) => out.push(rec.vector),
            Err(crate::formats::ReadError::Fatal(e)) => return Err(e),
            Err(crate::formats::ReadError::Bad { at, reason }) => anyhow::bail!("{at}: {reason}"),
        }
    }
    Ok(out)
}

/// Streaming exact top-k for a fixed set of queries.
pub struct TopK {
    pub queries: Vec<Vec<f32>>,
    metric: DistanceMetric,
    /// Unit-length queries (cosine).
    unit: Vec<Vec<f32>>,
    k: usize,
    heaps: Vec<std::collections::BinaryHeap<(OrdF32, u64)>>,
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
#[allow(clippy::derive_ord_xor_partial_ord)]
impl Ord for OrdF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl TopK {
    pub fn new(queries: Vec<Vec<f32>>, k: usize, metric: DistanceMetric) -> Self {
        let heaps = queries.iter().map(|_| Default::default()).collect();
        let unit = queries
            .iter()
            .map(|q| {
                let n = dot(q, q).sqrt().max(f32::MIN_POSITIVE);
                q.iter().map(|x| x / n).collect()
            })
            .collect();
        Self {
            queries,
            metric,
            unit,
            k,
            heaps,
        }
    }
    /// Offers row `id`, scored by the table's metric as the engines score it.
    pub fn offer(&mut self, id: u64, v: &[f32]) {
        let norm = match self.metric {
            DistanceMetric::Cosine => dot(v, v).sqrt(),
            _ => 0.0,
        };
        for i in 0..self.queries.len() {
            let d = match self.metric {
                DistanceMetric::L2 => self.queries[i]
                    .iter()
                    .zip(v)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum(),
                DistanceMetric::Dot => 1.0 - dot(&self.queries[i], v),
                DistanceMetric::Cosine if norm == 0.0 => 1.0,
                DistanceMetric::Cosine => 1.0 - dot(&self.unit[i], v) / norm,
            };
            let heap = &mut self.heaps[i];
            if heap.len() < self.k {
                heap.push((OrdF32(d), id));
            } else if d < heap.peek().expect("k>0").0.0 {
                heap.pop();
                heap.push((OrdF32(d), id));
            }
        }
    }
    /// The exact neighbour ids per query.
    pub fn results(&self) -> Vec<Vec<u64>> {
        self.heaps
            .iter()
            .map(|h| h.iter().map(|(_, id)| *id).collect())
            .collect()
    }
}
