//! `hanzo-db search`.

use std::time::Instant;

use hanzo_db::{Filter, Projection, SearchHit};
use serde_json::{Value, json};

use super::Ctx;
use crate::args::Search;
use crate::output::{clip, table};

fn parse_vector(text: &str, from: &str) -> anyhow::Result<Vec<f32>> {
    let v: Vec<f64> = serde_json::from_str(text.trim())
        .map_err(|e| anyhow::anyhow!("{from} must be a JSON array of numbers: {e}"))?;
    Ok(v.into_iter().map(|x| x as f32).collect())
}

fn read_vector_file(path: &std::path::Path) -> anyhow::Result<Vec<f32>> {
    if path.extension().is_some_and(|e| e == "npy") {
        let mut r = crate::formats::npy::NpyReader::open(path, None)?;
        anyhow::ensure!(r.header().rows >= 1, "{} has no rows", path.display());
        use crate::formats::RecordSource;
        match r.next_record() {
            Some(Ok((_, rec))) => Ok(rec.vector),
            _ => anyhow::bail!("cannot read the first row of {}", path.display()),
        }
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        parse_vector(&text, &path.display().to_string())
    }
}

pub fn hit_json(h: &SearchHit) -> Value {
    let mut v = json!({
        "id": h.record.id,
        "distance": h.distance,
        "score": h.score,
        "text": h.record.text,
        "metadata": h.record.metadata,
    });
    if !h.record.vector.is_empty() {
        v["vector"] = json!(h.record.vector);
    }
    v
}

pub async fn run(ctx: &Ctx, a: Search) -> anyhow::Result<()> {
    let vector = match (&a.vector, &a.vector_file) {
        (Some(_), Some(_)) => anyhow::bail!("give --vector or --vector-file, not both"),
        (Some(v), None) => Some(parse_vector(v, "--vector")?),
        (None, Some(p)) => Some(read_vector_file(p)?),
        (None, None) => None,
    };
    anyhow::ensure!(
        vector.is_some() || a.text.is_some(),
        "give --vector, --vector-file or --text (or a vector and --text for hybrid search)"
    );
    let mut q = ctx.db.search(&a.name).k(a.k);
    if let Some(v) = vector {
        q = q.vector(v);
    }
    if let Some(t) = &a.text {
        q = q.text(t.clone());
    }
    if let Some(f) = &a.filter {
        q = q.filter(Filter::parse_str(f)?);
    }
    if let Some(n) = a.nprobes {
        q = q.nprobes(n);
    }
    if let Some(r) = a.refine {
        q = q.refine_factor(r);
    }
    if let Some(v) = a.version {
        q = q.at_version(v);
    }
    if let Some(sel) = &a.select {
        let keys: Vec<String> = sel
            .iter()
            .filter(|s| *s != "vector" && *s != "blobs")
            .cloned()
            .collect();
        q = q.projection(Projection {
            vector: sel.iter().any(|s| s == "vector"),
            blobs: sel.iter().any(|s| s == "blobs"),
            metadata_keys: Some(keys),
        });
    }
    let start = Instant::now();
    let hits = q.execute().await?;
    let took_ms = start.elapsed().as_secs_f64() * 1000.0;
    let results: Vec<Value> = hits.iter().map(hit_json).collect();
    ctx.out
        .emit(&json!({"results": results, "took_ms": took_ms}), || {
            let rows: Vec<Vec<String>> = hits
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    vec![
                        (i + 1).to_string(),
                        h.record.id.clone(),
                        h.distance.map_or("-".into(), |d| format!("{d:.4}")),
                        h.score.map_or("-".into(), |s| format!("{s:.4}")),
                        clip(h.record.text.as_deref().unwrap_or(""), 40),
                        clip(&Value::Object(h.record.metadata.clone()).to_string(), 50),
                    ]
                })
                .collect();
            format!(
                "{}\n{} results in {took_ms:.1} ms",
                table(&["#", "ID", "DISTANCE", "SCORE", "TEXT", "METADATA"], &rows),
                hits.len()
            )
        });
    Ok(())
}
