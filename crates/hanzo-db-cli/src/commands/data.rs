//! Import, export, get, delete.

use std::collections::HashSet;
use std::path::Path;

use futures::StreamExt;
use hanzo_db::{MultimodalRecord, Projection, TableSchema, WriteLimits, validate_records};
use serde_json::json;

use super::{Ctx, schema_from_args};
use crate::args::{Delete, Export, Format, Get, Import};
use crate::formats::jsonl::{JsonlReader, JsonlWriter, record_to_json};
use crate::formats::{ReadError, RecordSource, detect};
use crate::output::DataError;

fn open_source(a: &Import) -> anyhow::Result<Box<dyn RecordSource>> {
    let fmt = detect(&a.file, a.format)?;
    anyhow::ensure!(
        a.ids.is_none() || fmt == Format::Npy,
        "--ids applies to .npy input only"
    );
    Ok(match fmt {
        Format::Jsonl => Box::new(JsonlReader::open(&a.file)?),
        Format::Csv => Box::new(crate::formats::csv::CsvReader::open(&a.file)?),
        Format::Npy => Box::new(crate::formats::npy::NpyReader::open(
            &a.file,
            a.ids.as_deref(),
        )?),
        Format::Parquet => Box::new(crate::formats::parquet::ParquetReader::open(&a.file)?),
    })
}

/// Import (or upsert) a file, streaming, a batch at a time.
pub async fn import(ctx: &Ctx, a: Import, upsert: bool) -> anyhow::Result<()> {
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    let mut src = open_source(&a)?;
    let file = a.file.display().to_string();
    let total = std::fs::metadata(&a.file).map(|m| m.len()).ok();
    let mut first: Option<(String, MultimodalRecord)> = None;
    let schema: TableSchema = if a.create {
        let dim = match a.dim {
            Some(d) => d,
            None => {
                first = next_good(&mut *src, &file, a.skip_bad, &mut Skipped::default())?;
                first
                    .as_ref()
                    .map(|(_, r)| r.vector.len())
                    .ok_or_else(|| anyhow::anyhow!("{file} has no records; pass --dim"))?
            }
        };
        let schema = schema_from_args(dim, &a.metric, &a.fields)?;
        ctx.db.create_table(&a.name, schema.clone()).await?;
        schema
    } else {
        ctx.db.table_schema(&a.name).await?
    };
    let limits = WriteLimits {
        max_blob_bytes: ctx.db.config().max_blob_bytes,
    };
    let bar = ctx.out.progress(total, &format!("importing {}", a.name));
    let mut skipped = Skipped::default();
    let mut written = 0u64;
    let mut pending = first.into_iter();
    loop {
        let mut batch = Vec::with_capacity(a.batch.min(100_000));
        let mut ids = HashSet::new();
        while batch.len() < a.batch {
            let item = match pending.next() {
                Some(x) => Some(x),
                None => next_good(&mut *src, &file, a.skip_bad, &mut skipped)?,
            };
            let Some((at, r)) = item else { break };
            let check = if !ids.insert(r.id.clone()) {
                Err(format!("id `{}` appears twice in one batch", r.id))
            } else {
                validate_records(&a.name, &schema, std::slice::from_ref(&r), limits)
                    .map_err(|e| e.to_string())
            };
            match check {
                Ok(()) => batch.push(r),
                Err(reason) => skipped.bad(&file, &at, &reason, a.skip_bad)?,
            }
        }
        if batch.is_empty() {
            break;
        }
        let n = batch.len() as u64;
        if upsert {
            ctx.db.upsert(&a.name, batch).await?;
        } else {
            ctx.db.insert(&a.name, batch).await?;
        }
        written += n;
        bar.set_position(src.position());
    }
    bar.finish_and_clear();
    let verb = if upsert { "upserted" } else { "imported" };
    ctx.out.emit(
        &json!({"table": a.name, verb: written, "skipped": skipped.count, "skipped_samples": skipped.samples}),
        || {
            let mut s = format!("{verb} {written} records into {}", a.name);
            if skipped.count > 0 {
                s.push_str(&format!("; skipped {} bad records, first: {}", skipped.count, skipped.samples.join("; ")));
            }
            s
        },
    );
    Ok(())
}

#[derive(Default)]
struct Skipped {
    count: u64,
    samples: Vec<String>,
}

impl Skipped {
    fn bad(&mut self, file: &str, at: &str, reason: &str, skip: bool) -> anyhow::Result<()> {
        let msg = format!("{file}: {at}: {reason}");
        if !skip {
            return Err(DataError(format!(
                "{msg} (nothing of this batch was written; --skip-bad skips bad records)"
            ))
            .into());
        }
        self.count += 1;
        if self.samples.len() < 5 {
            self.samples.push(msg);
        }
        Ok(())
    }
}

fn next_good(
    src: &mut dyn RecordSource,
    file: &str,
    skip_bad: bool,
    skipped: &mut Skipped,
) -> anyhow::Result<Option<(String, MultimodalRecord)>> {
    loop {
        match src.next_record() {
            None => return Ok(None),
            Some(Ok(x)) => return Ok(Some(x)),
            Some(Err(ReadError::Fatal(e))) => {
                return Err(DataError(format!("{file}: {e:#}")).into());
            }
            Some(Err(ReadError::Bad { at, reason })) => {
                skipped.bad(file, &at, &reason, skip_bad)?
            }
        }
    }
}

pub async fn export(ctx: &Ctx, a: Export) -> anyhow::Result<()> {
    let fmt = detect(&a.file, a.format)?;
    let schema = ctx.db.table_schema(&a.name).await?;
    let mut stream = ctx.db.scan(&a.name, &Projection::all(), a.version).await?;
    let bar = ctx.out.progress(None, &format!("exporting {}", a.name));
    let mut rows = 0u64;
    match fmt {
        Format::Jsonl => {
            let f = std::fs::File::create(&a.file)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", a.file.display()))?;
            let mut w = JsonlWriter::new(std::io::BufWriter::new(f));
            while let Some(batch) = stream.next().await {
                for r in batch? {
                    w.write(&r)?;
                    rows += 1;
                }
                bar.set_message(format!("exporting {}: {rows} rows", a.name));
            }
            w.finish()?;
        }
        Format::Parquet => {
            let mut w = crate::formats::parquet::ParquetOut::create(&a.file, &schema)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.len() as u64;
                w.write(&batch)?;
                bar.set_message(format!("exporting {}: {rows} rows", a.name));
            }
            w.finish()?;
        }
        other => anyhow::bail!("export writes jsonl or parquet, not {other:?}"),
    }
    bar.finish_and_clear();
    ctx.out.emit(
        &json!({"table": a.name, "exported": rows, "file": a.file}),
        || {
            format!(
                "exported {rows} records from {} to {}",
                a.name,
                a.file.display()
            )
        },
    );
    Ok(())
}

fn extension(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/x-portable-pixmap" => "ppm",
        "audio/wav" | "audio/x-wav" => "wav",
        "application/pdf" => "pdf",
        "model/gltf-binary" => "glb",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

fn write_blobs(dir: &Path, r: &MultimodalRecord) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let safe: String =
        r.id.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
    let mut files = Vec::new();
    let mut put = |name: String, data: &[u8]| -> anyhow::Result<()> {
        let p = dir.join(&name);
        std::fs::write(&p, data)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
        files.push(p.display().to_string());
        Ok(())
    };
    if let Some(i) = &r.image {
        put(format!("{safe}.image"), i)?;
    }
    if let Some(a) = &r.audio {
        put(format!("{safe}.audio"), a)?;
    }
    for (n, b) in r.blobs.iter().enumerate() {
        put(format!("{safe}.blob{n}.{}", extension(&b.mime)), &b.data)?;
    }
    Ok(files)
}

pub async fn get(ctx: &Ctx, a: Get) -> anyhow::Result<()> {
    let blobs = a.with_blobs || a.out_dir.is_some();
    let projection = Projection {
        vector: true,
        blobs,
        metadata_keys: None,
    };
    let r = ctx
        .db
        .get_many(&a.name, std::slice::from_ref(&a.id), &projection, a.version)
        .await?
        .pop()
        .ok_or_else(|| {
            hanzo_db::Error::InvalidArgument(format!("no record `{}` in {}", a.id, a.name))
        })?;
    let files = match &a.out_dir {
        Some(dir) => write_blobs(dir, &r)?,
        None => Vec::new(),
    };
    let mut doc = record_to_json(&r, a.with_blobs && a.out_dir.is_none());
    if !files.is_empty() {
        doc["files"] = json!(files);
    }
    ctx.out.emit(&doc, || {
        let mut s = format!("id: {}\n", r.id);
        if let Some(t) = &r.text {
            s.push_str(&format!("text: {t}\n"));
        }
        s.push_str(&format!("vector: {} dimensions\n", r.vector.len()));
        if let Some(i) = &r.image {
            s.push_str(&format!("image: {} bytes\n", i.len()));
        }
        if let Some(au) = &r.audio {
            s.push_str(&format!("audio: {} bytes\n", au.len()));
        }
        for b in &r.blobs {
            s.push_str(&format!("blob: {} ({} bytes)\n", b.mime, b.data.len()));
        }
        if !r.metadata.is_empty() {
            s.push_str(&format!(
                "metadata: {}\n",
                serde_json::Value::Object(r.metadata.clone())
            ));
        }
        for f in &files {
            s.push_str(&format!("wrote {f}\n"));
        }
        s
    });
    Ok(())
}

pub async fn delete(ctx: &Ctx, a: Delete) -> anyhow::Result<()> {
    let n = match &a.filter {
        Some(f) => ctx.db.delete_where(&a.name, f.as_str()).await?,
        None => ctx.db.delete(&a.name, &a.ids).await?,
    };
    ctx.out.emit(&json!({"table": a.name, "deleted": n}), || {
        format!("deleted {n} records from {}", a.name)
    });
    Ok(())
}
