//! `hanzo-db migrate <store>`: moves a whole store in, with a progress bar
//! (rate and ETA), a checkpoint, `--resume`, `--dry-run` and verification.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use hanzo_db::DistanceMetric;
use hanzo_db::migrate::{
    ChromaSource, Migration, MigrationReport, MigrationSource, PgVectorSource, PineconeSource,
    QdrantSource, WeaviateSource,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::args::{Migrate, MigrateStore};
use crate::output::{DataError, table};

fn source(a: &Migrate) -> anyhow::Result<Box<dyn MigrationSource>> {
    let key = match &a.source_api_key_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--source-api-key-env {var}: the environment variable {var} is not set")
        })?),
        None => None,
    };
    let url = |what: &str| -> anyhow::Result<String> {
        a.url.clone().with_context(|| format!("{what} needs --url"))
    };
    Ok(match a.store {
        MigrateStore::Pgvector => {
            let pg =
                a.pg_url.clone().or_else(|| a.url.clone()).context(
                    "pgvector needs --pg-url, e.g. postgres://user:password@host:5432/db",
                )?;
            let mut s = PgVectorSource::new(pg).schema(a.pg_schema.clone());
            if let Some(c) = &a.image_column {
                s = s.image_column(c.clone());
            }
            if let Some(c) = &a.audio_column {
                s = s.audio_column(c.clone());
            }
            for b in &a.blob_columns {
                let (col, mime) = b
                    .split_once('=')
                    .with_context(|| format!("--blob-column `{b}` must look like COL=MIME"))?;
                s = s.blob_column(col, mime);
            }
            Box::new(s)
        }
        MigrateStore::Qdrant => Box::new(QdrantSource::new(&url("qdrant")?, key)?),
        MigrateStore::Pinecone => {
            let mut s = PineconeSource::new(&url("pinecone (the index host)")?, key)?;
            if let Some(ns) = &a.namespace {
                s = s.namespace(ns.clone());
            }
            Box::new(s)
        }
        MigrateStore::Weaviate => {
            let mut s = WeaviateSource::new(&url("weaviate")?, key)?;
            if let Some(t) = &a.tenant {
                s = s.tenant(t.clone());
            }
            Box::new(s)
        }
        MigrateStore::Chroma => {
            let mut s = ChromaSource::new(&url("chroma")?, key)?;
            if let Some(t) = &a.tenant {
                s = s.tenant(t.clone());
            }
            if let Some(d) = &a.database {
                s = s.database(d.clone());
            }
            Box::new(s)
        }
    })
}

fn bar(ctx: &Ctx) -> ProgressBar {
    if ctx.out.quiet || ctx.out.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta} ({elapsed})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar
}

pub async fn run(ctx: &Ctx, a: Migrate) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    let mut m = Migration::new(ctx.db.clone(), source(&a)?)
        .batch_size(a.batch)
        .resume(a.resume)
        .dry_run(a.dry_run)
        .sample_size(a.sample)
        .verify(!a.no_verify);
    for t in &a.tables {
        m = match t.split_once('=') {
            Some((src, dst)) => m.table(src, dst),
            None => m.table(t.clone(), t.clone()),
        };
    }
    if let Some(metric) = &a.metric {
        m = m.metric(metric.parse::<DistanceMetric>()?);
    }
    if let Some(f) = &a.text_field {
        m = m.text_field(f.clone());
    }
    if let Some(p) = &a.checkpoint {
        m = m.checkpoint(p.clone());
    }
    let bar = bar(ctx);
    let started = AtomicBool::new(false);
    let pb = bar.clone();
    m = m.on_progress(move |p| {
        pb.set_message(format!("{} → {}", p.table, p.target));
        if let Some(t) = p.total {
            pb.set_length(t);
        }
        pb.set_position(p.migrated);
        if !started.swap(true, Ordering::Relaxed) {
            // A resumed run starts part-way: measure the rate from here.
            pb.reset_eta();
        }
    });
    let report = m.execute().await;
    bar.finish_and_clear();
    let report = report?;
    let doc = serde_json::to_value(&report)?;
    ctx.out.emit(&doc, || human(&report));
    if !report.dry_run && !a.no_verify && !report.verified() {
        return Err(DataError(
            "verification found differences between the source and the target (see the report)"
                .into(),
        )
        .into());
    }
    Ok(())
}

fn human(r: &MigrationReport) -> String {
    let mut out = format!(
        "{} {}{}\n",
        r.store,
        r.source,
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    let rows: Vec<Vec<String>> = r
        .plan
        .iter()
        .map(|p| {
            vec![
                p.source.clone(),
                p.target.clone(),
                p.dimension.to_string(),
                format!("{} ({})", p.metric, p.metric_from),
                p.count.map_or("?".into(), |c| c.to_string()),
                if p.target_exists {
                    "exists (upsert)"
                } else {
                    "new"
                }
                .into(),
                match &p.unsupported {
                    Some(why) => format!("skipped: {why}"),
                    None => p.notes.join("; "),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "source", "target", "dim", "metric", "count", "table", "notes",
        ],
        &rows,
    ));
    out.push('\n');
    if r.dry_run {
        return out;
    }
    out.push_str(&format!(
        "migrated {} records in {:.1} s ({:.0} records/s); verified in {:.1} s\n",
        r.migrated, r.copy_secs, r.rows_per_sec, r.verify_secs
    ));
    for t in &r.tables {
        let Some(v) = &t.verification else {
            out.push_str(&format!(
                "{} → {}: {} records (not verified)\n",
                t.source, t.target, t.total_migrated
            ));
            continue;
        };
        out.push_str(&format!(
            "{} → {}: source {}, target {}{}, {} sampled, {} differing — {}\n",
            t.source,
            t.target,
            v.source_count.map_or("?".into(), |c| c.to_string()),
            v.target_count,
            if t.skipped > 0 {
                format!(" (+{} skipped)", t.skipped)
            } else {
                String::new()
            },
            v.sampled,
            v.differing,
            if v.ok() { "ok" } else { "DIFFERS" }
        ));
        for d in &v.differences {
            out.push_str(&format!("  {d}\n"));
        }
    }
    if let Some(cp) = &r.checkpoint {
        out.push_str(&format!("checkpoint: {}\n", cp.display()));
    }
    out
}
