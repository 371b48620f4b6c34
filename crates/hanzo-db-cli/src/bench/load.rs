//! The timed set-up of a bench run: the bulk insert (exact ground truth
//! computed alongside, outside the timed calls) and the index build.

use std::time::{Duration, Instant};

use hanzo_db::{Database, DatabaseBackend, IndexSpec, MultimodalRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Source;
use super::data::TopK;
use crate::args::{Bench, BenchIndex};
use crate::commands::Ctx;

/// What a `--keep` run leaves beside its database for `--reuse`.
#[derive(Serialize, Deserialize)]
pub(super) struct Kept {
    /// The parameters that shaped the data; a reuse must match them.
    pub key: Value,
    pub n: usize,
    pub payload_bytes: u64,
    pub truth: Vec<Vec<u64>>,
    pub truth_filtered: Vec<Vec<u64>>,
    /// The index the kept run built (absent in files kept before it was recorded).
    #[serde(default)]
    pub index: Option<IndexSpec>,
}

/// Inserts `n` rows in batches of `--batch`; returns (vectors/s, payload bytes, rows).
pub(super) async fn load(
    ctx: &Ctx,
    a: &Bench,
    db: &Database,
    source: &mut Source,
    truth: &mut TopK,
    truth_filtered: &mut TopK,
    n: usize,
) -> anyhow::Result<(f64, u64, usize)> {
    ctx.out.note(format!("bench: inserting {n} vectors"));
    let mut insert_time = Duration::ZERO;
    let mut payload_bytes = 0u64;
    let mut next_id = 0u64;
    let bar = ctx.out.progress(None, "bulk insert");
    while (next_id as usize) < n {
        let take = a.batch.min(n - next_id as usize);
        let mut batch = Vec::with_capacity(take);
        for _ in 0..take {
            let Some(v) = source.next() else { break };
            let id = next_id;
            next_id += 1;
            let bucket = (id % 10) as i64;
            truth.offer(id, &v);
            if bucket == 3 {
                truth_filtered.offer(id, &v);
            }
            payload_bytes += id.to_string().len() as u64 + 8;
            batch.push(MultimodalRecord::new(id.to_string(), v).with_metadata("bucket", bucket));
        }
        if batch.is_empty() {
            break;
        }
        let t = Instant::now();
        db.insert("bench", batch).await?;
        insert_time += t.elapsed();
        bar.set_message(format!("bulk insert: {next_id}/{n}"));
    }
    bar.finish_and_clear();
    let n = next_id as usize;
    let insert_vps = n as f64 / insert_time.as_secs_f64();
    Ok((insert_vps, payload_bytes, n))
}

/// Builds the `--index` (and a scalar index on `bucket`); returns the spec and seconds.
pub(super) async fn build_index(
    ctx: &Ctx,
    a: &Bench,
    db: &Database,
    backend: DatabaseBackend,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Option<IndexSpec>, Option<f64>)> {
    let spec = match a.index {
        BenchIndex::None => None,
        BenchIndex::Auto => Some(IndexSpec::Auto),
        BenchIndex::IvfPq => Some(IndexSpec::IvfPq {
            nlist: a.nlist,
            pq_dims: a.pq_dims,
        }),
        BenchIndex::Hnsw => Some(IndexSpec::Hnsw {
            m: None,
            ef_construction: None,
        }),
    };
    let mut index_build_s = None;
    if let Some(spec) = &spec {
        ctx.out.note(format!("bench: building {spec:?}"));
        let t = Instant::now();
        let built = match db.create_index("bench", spec.clone()).await {
            Err(hanzo_db::Error::Unsupported { feature, .. }) => {
                notes.push(format!(
                    "index {spec:?} skipped: {feature} not supported by {backend}; searches are exact"
                ));
                false
            }
            other => other.map(|()| true)?,
        };
        match db
            .create_index(
                "bench",
                IndexSpec::Scalar {
                    column: "bucket".into(),
                },
            )
            .await
        {
            Err(hanzo_db::Error::Unsupported { feature, .. }) => notes.push(format!(
                "scalar index on `bucket` skipped: {feature} not supported by {backend}"
            )),
            other => other?,
        }
        if built {
            index_build_s = Some(t.elapsed().as_secs_f64());
        }
    }

    Ok((spec, index_build_s))
}
