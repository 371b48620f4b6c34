//! `hanzo-db bench`: the project's own measure of speed, recall, storage and
//! memory. Prints a table, or one JSON document with `--json` whose top-level
//! keys scripts can rely on (see `FIGURES`). Never used as a timed test.

mod data;
mod load;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hanzo_db::{Database, DatabaseBackend, FieldType, MultimodalRecord, TableSchema};
use serde_json::{Value, json};

use crate::args::{Bench, Encrypted};
use crate::commands::Ctx;
use crate::output::table;
use data::{Synthetic, TopK, read_matrix};
use load::{Kept, build_index, load};

/// The figures every report carries, in print order.
pub const FIGURES: &[(&str, &str)] = &[
    ("insert_vps", "bulk insert, vectors/s"),
    (
        "single_insert_ps",
        "single-record durable inserts/s, 1 writer",
    ),
    (
        "single_insert_8w_ps",
        "single-record durable inserts/s, 8 writers",
    ),
    (
        "single_insert_nosync_ps",
        "single-record inserts/s acked before fsync, 1 writer",
    ),
    (
        "single_insert_8w_nosync_ps",
        "single-record inserts/s acked before fsync, 8 writers",
    ),
    ("index_build_s", "index build, s"),
    ("query_p50_ms", "query p50, ms"),
    ("query_p95_ms", "query p95, ms"),
    ("query_p99_ms", "query p99, ms"),
    ("qps_8", "queries/s, 8 concurrent"),
    ("recall_at_k", "recall@k"),
    ("filtered_p50_ms", "filtered (10%) query p50, ms"),
    ("filtered_recall_at_k", "filtered recall@k"),
    ("cold_start_ms", "open to first result, ms"),
    ("disk_bytes", "bytes on disk"),
    ("raw_bytes", "raw float32 + payload bytes"),
    ("peak_rss_bytes", "peak resident memory, bytes"),
];

/// Whether hanzo-db encrypts this engine's files at rest.
fn encrypts(backend: DatabaseBackend) -> bool {
    backend == DatabaseBackend::LanceDb
}

pub async fn run(ctx: &Ctx, a: Bench, backend: DatabaseBackend) -> anyhow::Result<()> {
    let mut modes: Vec<bool> = match a.encrypted {
        Encrypted::Off => vec![false],
        Encrypted::On => vec![true],
        Encrypted::Both => vec![true, false],
    };
    let mut notes = Vec::new();
    if !encrypts(backend) && modes.contains(&true) {
        notes.push(format!(
            "encryption at rest: hanzo-db does not encrypt {backend} files; measured unencrypted"
        ));
        modes = vec![false];
    }
    let audits: Vec<bool> = match a.audit {
        Encrypted::Off => vec![false],
        Encrypted::On => vec![true],
        Encrypted::Both => vec![false, true],
    };
    let root = ctx.db.config().path.join("bench");
    let mut docs = Vec::new();
    for encrypted in modes {
        for &audit in &audits {
            ctx.out.note(format!(
                "bench: {backend}, encryption {}, audit log {}",
                if encrypted { "on" } else { "off" },
                if audit { "on" } else { "off" }
            ));
            let mut name = if encrypted { "encrypted" } else { "plain" }.to_string();
            if audits.len() > 1 {
                name.push_str(if audit { "+audit" } else { "-audit" });
            }
            let mut doc = run_one(ctx, &a, &root, encrypted, backend, audit).await?;
            if let Some(list) = doc["notes"].as_array_mut() {
                list.extend(notes.iter().map(|n| Value::from(n.as_str())));
            }
            docs.push((name, doc));
        }
    }
    let doc = if docs.len() == 1 {
        docs.pop().expect("one").1
    } else {
        Value::Object(docs.into_iter().collect())
    };
    ctx.out.emit(&doc, || render(&doc));
    Ok(())
}

fn render(doc: &Value) -> String {
    let cols: Vec<(&str, &Value)> = if doc.get("insert_vps").is_some() {
        vec![("value", doc)]
    } else {
        doc.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default()
    };
    let mut headers = vec!["figure"];
    headers.extend(cols.iter().map(|(k, _)| *k));
    let rows: Vec<Vec<String>> = FIGURES
        .iter()
        .map(|(key, label)| {
            let mut row = vec![label.to_string()];
            for (_, d) in &cols {
                row.push(match &d[*key] {
                    Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or(0.0)),
                    Value::Null => "-".into(),
                    v => v.to_string(),
                });
            }
            row
        })
        .collect();
    let params = cols
        .first()
        .map(|(_, d)| d["params"].to_string())
        .unwrap_or_default();
    let notes: Vec<String> = cols
        .first()
        .and_then(|(_, d)| d["notes"].as_array())
        .map(|n| {
            n.iter()
                .filter_map(Value::as_str)
                .map(|s| format!("\nnote: {s}"))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{}\nparams: {params}{}",
        table(&headers, &rows),
        notes.concat()
    )
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn recall(got: &[String], want: &[u64]) -> f64 {
    if want.is_empty() {
        return 1.0;
    }
    let hits = got
        .iter()
        .filter(|id| id.parse::<u64>().is_ok_and(|n| want.contains(&n)))
        .count();
    hits as f64 / want.len() as f64
}

/// `VmHWM` (peak resident set) of this process, in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib * 1024)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn machine() -> Value {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
    });
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_bytes": mem,
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

struct Source {
    synthetic: Option<Synthetic>,
    file_rows: Option<std::vec::IntoIter<Vec<f32>>>,
}

impl Source {
    fn next(&mut self) -> Option<Vec<f32>> {
        match (&mut self.synthetic, &mut self.file_rows) {
            (Some(s), _) => Some(s.next_vec()),
            (None, Some(rows)) => rows.next(),
            (None, None) => None,
        }
    }
}

async fn run_one(
    ctx: &Ctx,
    a: &Bench,
    root: &Path,
    encrypted: bool,
    backend: DatabaseBackend,
    audit: bool,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        a.k > 0 && a.queries > 0,
        "--k and --queries must be at least 1"
    );
    let mode = if encrypted { "encrypted" } else { "plain" };
    let dir: PathBuf = if backend == DatabaseBackend::LanceDb {
        root.join(mode)
    } else {
        root.join(format!("{mode}-{backend}"))
    };
    let mut notes: Vec<String> = Vec::new();
    let kept_path = dir.with_extension("kept.json");
    let kept_key = json!({
        "n": a.n, "dim": a.dim, "seed": a.seed, "metric": a.metric, "k": a.k,
        "queries": a.queries, "gt_queries": a.gt_queries, "index": format!("{:?}", a.index),
        "nlist": a.nlist, "pq_dims": a.pq_dims, "batch": a.batch,
        "dataset": a.dataset, "query_file": a.query_file,
    });
    let reused: Option<Kept> = if a.reuse {
        let kept: Kept = std::fs::read(&kept_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|k: &Kept| k.key == kept_key && dir.exists())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--reuse: no database kept with these parameters at {} (run once with --keep and the same --n, --dim, --seed, --metric, --k, --queries, --index, --batch, --dataset)",
                    dir.display()
                )
            })?;
        notes.push(format!(
            "reused the database kept at {}: bulk insert, index build and single-record inserts not measured",
            dir.display()
        ));
        Some(kept)
    } else {
        for d in [dir.clone(), root.join("keys")] {
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
        }
        let _ = std::fs::remove_file(&kept_path);
        None
    };
    // Data and queries.
    let (mut source, queries, n, dim) = match &a.dataset {
        Some(path) => {
            let mut rows = read_matrix(path)?;
            let queries = match &a.query_file {
                Some(q) => read_matrix(q)?.into_iter().take(a.queries).collect(),
                None => {
                    anyhow::ensure!(
                        rows.len() > a.queries,
                        "{} has too few rows to hold out {} queries",
                        path.display(),
                        a.queries
                    );
                    rows.split_off(rows.len() - a.queries)
                }
            };
            let dim = rows.first().map_or(0, Vec::len);
            let n = rows.len().min(a.n);
            rows.truncate(n);
            (
                Source {
                    synthetic: None,
                    file_rows: Some(rows.into_iter()),
                },
                queries,
                n,
                dim,
            )
        }
        None => {
            let mut qgen = Synthetic::new(a.dim, a.seed, 2);
            let queries = (0..a.queries).map(|_| qgen.next_vec()).collect();
            (
                Source {
                    synthetic: Some(Synthetic::new(a.dim, a.seed, 1)),
                    file_rows: None,
                },
                queries,
                a.n,
                a.dim,
            )
        }
    };
    anyhow::ensure!(dim > 0 && n > 0, "no data to benchmark");
    let gt_n = a.gt_queries.min(queries.len());
    let metric: hanzo_db::DistanceMetric = a.metric.parse()?;
    let mut truth = TopK::new(queries[..gt_n].to_vec(), a.k, metric);
    let mut truth_filtered = TopK::new(queries[..gt_n].to_vec(), a.k, metric);

    let db = hanzo_db::connect(dir.clone())
        .config(bench_config(
            ctx, &dir, root, encrypted, backend, audit, !a.no_hot,
        ))
        .execute()
        .await?;
    let schema = TableSchema::new(dim)
        .metric(metric)
        .field("bucket", FieldType::Int);
    let (n, insert_vps, index_build_s, spec, payload_bytes, truths, ftruth) = match reused {
        Some(kept) => (
            kept.n,
            None,
            None,
            kept.index,
            kept.payload_bytes,
            kept.truth,
            kept.truth_filtered,
        ),
        None => {
            db.create_table("bench", schema.clone()).await?;
            let (insert_vps, payload_bytes, n) =
                load(ctx, a, &db, &mut source, &mut truth, &mut truth_filtered, n).await?;
            let (spec, index_build_s) = build_index(ctx, a, &db, backend, &mut notes).await?;
            let (truths, ftruth) = (truth.results(), truth_filtered.results());
            if a.keep {
                let kept = Kept {
                    key: kept_key.clone(),
                    n,
                    payload_bytes,
                    truth: truths.clone(),
                    truth_filtered: ftruth.clone(),
                    index: spec.clone(),
                };
                std::fs::write(&kept_path, serde_json::to_vec(&kept)?)?;
            }
            (
                n,
                Some(insert_vps),
                index_build_s,
                spec,
                payload_bytes,
                truths,
                ftruth,
            )
        }
    };
    // The hot in-memory index folds the bulk-inserted rows into its graph in
    // the background; queries are timed once it holds them all.
    let t = Instant::now();
    let hot = db.wait_hot("bench", Duration::from_secs(3600)).await?;
    let hot_ready_s = hot.as_ref().map(|_| t.elapsed().as_secs_f64());
    if let Some(s) = hot
        .as_ref()
        .map(|s| json!(s))
        .filter(|s| s["serving"] != "hot")
    {
        let why = format!(
            "the hot index is not serving ({}: {}); searches below are LanceDB's",
            s["serving"], s["reason"]
        );
        ctx.out.note(format!("bench: {why}"));
        notes.push(why);
    }

    // Queries one at a time.
    reset_peak_rss();
    ctx.out
        .note(format!("bench: {} queries, k={}", queries.len(), a.k));
    let search = |db: &Database, q: &[f32], filtered: bool| {
        let mut s = db.search("bench").vector(q.to_vec()).k(a.k);
        if filtered {
            s = s.filter(json!({"bucket": 3}));
        }
        if let Some(n) = a.nprobes {
            s = s.nprobes(n);
        }
        if let Some(r) = a.refine {
            s = s.refine_factor(r);
        }
        s.execute()
    };
    let mut lat = Vec::with_capacity(queries.len());
    let mut trace = Trace::new(a.latencies.is_some());
    let mut recall_sum = 0.0;
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let hits = search(&db, q, false).await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        trace.push("query", t, lat[i]);
        if i < gt_n {
            let ids: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
            recall_sum += recall(&ids, &truths[i]);
        }
    }
    lat.sort_by(f64::total_cmp);

    // Eight concurrent clients over the same queries.
    let shared = Arc::new(queries.clone());
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let db = db.clone();
        let qs = shared.clone();
        let k = a.k;
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < qs.len() {
                db.search("bench")
                    .vector(qs[i].clone())
                    .k(k)
                    .execute()
                    .await?;
                i += 8;
            }
            Ok::<_, hanzo_db::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let qps_8 = queries.len() as f64 / t.elapsed().as_secs_f64();

    // Filtered (10%).
    let mut flat = Vec::with_capacity(queries.len());
    let mut frecall = 0.0;
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let hits = search(&db, q, true).await?;
        flat.push(t.elapsed().as_secs_f64() * 1000.0);
        trace.push("filtered", t, flat[i]);
        if i < gt_n {
            let ids: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
            frecall += recall(&ids, &ftruth[i]);
        }
    }
    flat.sort_by(f64::total_cmp);
    let peak_search = peak_rss_bytes();
    if let Some(path) = &a.latencies {
        trace.write(path)?;
    }

    // Single-record inserts through the write buffer (not with --reuse).
    let singles = if a.reuse {
        None
    } else {
        Some(single_runs(ctx, a, &db, root, encrypted, backend, audit, dim, metric).await?)
    };
    let single = |i: usize| singles.map(|s: [f64; 4]| s[i]);

    // Storage, then cold start: a fresh handle, open to first result.
    let disk_bytes = db.table_stats("bench").await?.disk_bytes;
    drop(db);
    let t = Instant::now();
    let db = hanzo_db::connect(dir.clone())
        .config(bench_config(
            ctx, &dir, root, encrypted, backend, audit, !a.no_hot,
        ))
        .execute()
        .await?;
    search(&db, &queries[0], false).await?;
    let cold_start_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Open to the hot index serving (loaded from its saved file, not rebuilt).
    let reopened = db.wait_hot("bench", Duration::from_secs(3600)).await?;
    let cold_start_hot_ms = reopened
        .as_ref()
        .map(|_| t.elapsed().as_secs_f64() * 1000.0);

    let raw_bytes = (n * dim * 4) as u64 + payload_bytes;
    let doc = json!({
        "insert_vps": insert_vps,
        "single_insert_ps": single(0),
        "single_insert_8w_ps": single(1),
        "single_insert_nosync_ps": single(2),
        "single_insert_8w_nosync_ps": single(3),
        "index_build_s": index_build_s,
        "query_p50_ms": percentile(&lat, 0.50),
        "query_p95_ms": percentile(&lat, 0.95),
        "query_p99_ms": percentile(&lat, 0.99),
        "qps_8": qps_8,
        "recall_at_k": recall_sum / gt_n.max(1) as f64,
        "filtered_p50_ms": percentile(&flat, 0.50),
        "filtered_recall_at_k": frecall / gt_n.max(1) as f64,
        "cold_start_ms": cold_start_ms,
        "disk_bytes": disk_bytes,
        "raw_bytes": raw_bytes,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_search_bytes": peak_search,
        "hot_ready_s": hot_ready_s,
        "hot": hot,
        "cold_start_hot_ms": cold_start_hot_ms,
        "hot_reopened_from_disk": reopened.map(|s| s.loaded_from_disk),
        "params": {
            "n": n, "dim": dim, "queries": queries.len(), "ground_truth_queries": gt_n, "k": a.k,
            "index": spec, "metric": metric, "nprobes": a.nprobes, "refine": a.refine, "batch": a.batch,
            "dataset": a.dataset.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("synthetic(seed={})", a.seed)),
            "encrypted": encrypted, "audit": audit, "backend": backend.to_string(), "hot": !a.no_hot, "single_insert_window_ms": a.single_ms,
            "filter": {"bucket": 3}, "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        },
        "notes": notes,
        "machine": machine(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if !a.keep && !a.reuse {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(root.join("keys"));
    }
    Ok(doc)
}

/// Per-query latencies in the order run, for `--latencies`.
struct Trace {
    on: bool,
    phase: &'static str,
    began: Instant,
    count: usize,
    lines: Vec<String>,
}

impl Trace {
    fn new(on: bool) -> Self {
        Self {
            on,
            phase: "",
            began: Instant::now(),
            count: 0,
            lines: vec!["phase,query,at_ms,latency_ms".into()],
        }
    }

    /// Records a query of `phase` that started at `start` and took `ms`.
    fn push(&mut self, phase: &'static str, start: Instant, ms: f64) {
        if !self.on {
            return;
        }
        if self.phase != phase {
            (self.phase, self.began, self.count) = (phase, start, 0);
        }
        let at = start.duration_since(self.began).as_secs_f64() * 1000.0;
        self.lines
            .push(format!("{phase},{},{at:.3},{ms:.4}", self.count));
        self.count += 1;
    }

    fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.lines.join("\n") + "\n")
            .map_err(|e| anyhow::anyhow!("--latencies {}: {e}", path.display()))
    }
}

/// Single-record inserts through the write buffer: 1 writer, then 8;
/// acknowledged after fsync (the default), then before it (a second
/// database). Distinct vectors, like an agent's memories (one vector repeated
/// would make every graph insert a worst case of ties).
#[allow(clippy::too_many_arguments)]
async fn single_runs(
    ctx: &Ctx,
    a: &Bench,
    db: &Database,
    root: &Path,
    encrypted: bool,
    backend: DatabaseBackend,
    audit: bool,
    dim: usize,
    metric: hanzo_db::DistanceMetric,
) -> anyhow::Result<[f64; 4]> {
    let mut single_gen = Synthetic::new(dim, a.seed, 3);
    let single_vec: Arc<Vec<Vec<f32>>> =
        Arc::new((0..SINGLE_POOL).map(|_| single_gen.next_vec()).collect());
    let window = Duration::from_millis(a.single_ms);
    ctx.out.note(format!(
        "bench: single-record inserts, 1 then 8 writers, {} ms each",
        a.single_ms
    ));
    let (single_insert_ps, single_insert_8w_ps) =
        single_inserts(db, dim, metric, &single_vec, window).await?;
    let nosync_dir = root.join(if encrypted {
        "encrypted-nosync"
    } else {
        "plain-nosync"
    });
    if nosync_dir.exists() {
        std::fs::remove_dir_all(&nosync_dir)?;
    }
    let mut nosync_cfg = bench_config(ctx, &nosync_dir, root, encrypted, backend, audit, !a.no_hot);
    nosync_cfg.write_buffer.sync = false;
    let nosync = hanzo_db::connect(nosync_dir.clone())
        .config(nosync_cfg)
        .execute()
        .await?;
    let (single_insert_nosync_ps, single_insert_8w_nosync_ps) =
        single_inserts(&nosync, dim, metric, &single_vec, window).await?;
    drop(nosync);
    let _ = std::fs::remove_dir_all(&nosync_dir);
    Ok([
        single_insert_ps,
        single_insert_8w_ps,
        single_insert_nosync_ps,
        single_insert_8w_nosync_ps,
    ])
}

/// Single-record inserts for `window`, one writer then eight, each checked
/// visible (counted) when its run ends. Returns inserts per second.
/// Distinct vectors cycled through by the single-insert runs.
const SINGLE_POOL: usize = 65_536;

async fn single_inserts(
    db: &Database,
    dim: usize,
    metric: hanzo_db::DistanceMetric,
    pool: &Arc<Vec<Vec<f32>>>,
    window: Duration,
) -> anyhow::Result<(f64, f64)> {
    db.create_table("single", TableSchema::new(dim).metric(metric))
        .await?;
    let t = Instant::now();
    let mut count = 0u64;
    while t.elapsed() < window {
        let v = pool[count as usize % pool.len()].clone();
        db.insert(
            "single",
            vec![MultimodalRecord::new(format!("s{count}"), v)],
        )
        .await?;
        count += 1;
    }
    let one = count as f64 / t.elapsed().as_secs_f64();
    let base = count as usize;
    anyhow::ensure!(
        db.count("single", None).await? == count,
        "acknowledged single inserts are not all visible"
    );
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let db = db.clone();
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = 0u64;
            while t.elapsed() < window {
                let v = pool[(base + w + 8 * c as usize) % pool.len()].clone();
                db.insert(
                    "single",
                    vec![MultimodalRecord::new(format!("w{w}-{c}"), v)],
                )
                .await?;
                c += 1;
            }
            Ok::<_, hanzo_db::Error>(c)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let eight = total as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(
        db.count("single", None).await? == count + total,
        "acknowledged single inserts are not all visible"
    );
    db.drop_table("single").await?;
    Ok((one, eight))
}

fn bench_config(
    ctx: &Ctx,
    dir: &Path,
    root: &Path,
    encrypted: bool,
    backend: DatabaseBackend,
    audit: bool,
    hot: bool,
) -> hanzo_db::DatabaseConfig {
    let mut cfg = hanzo_db::DatabaseConfig::new(dir);
    cfg.workloads.vectors = backend;
    cfg.postgres = ctx.db.config().postgres.clone();
    // Tuning from `--config` applies: the hot index, write buffer, caches.
    cfg.hot = ctx.db.config().hot.clone();
    cfg.write_buffer = ctx.db.config().write_buffer.clone();
    cfg.security.read_cache_bytes = ctx.db.config().security.read_cache_bytes;
    cfg.security.encryption = encrypted;
    cfg.audit.enabled = audit;
    cfg.hot.enabled = hot;
    // The benchmark's key file lives beside (not inside) its database and goes with it.
    cfg.security.key = hanzo_db::KeyConfig::Default {
        key_dir: Some(root.join("keys")),
    };
    // Upkeep would run in the middle of measurements; the bench measures it separately.
    cfg.auto_compact_every = 0;
    cfg
}
