//! Tables, indexes, versions and upkeep.

use hanzo_db::IndexSpec;
use serde_json::json;

use super::{Ctx, schema_from_args};
use crate::args::{CreateTable, IndexCmd, IndexKind};
use crate::output::table;

pub async fn tables(ctx: &Ctx) -> anyhow::Result<()> {
    let names = ctx.db.list_tables().await?;
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for n in &names {
        let s = ctx.db.table_schema(n).await?;
        let count = ctx.db.count(n, None).await?;
        rows.push(vec![
            n.clone(),
            s.dimension.to_string(),
            s.metric.to_string(),
            count.to_string(),
        ]);
        docs.push(json!({"name": n, "dimension": s.dimension, "metric": s.metric, "rows": count, "fields": s.fields}));
    }
    ctx.out.emit(&json!({"tables": docs}), || {
        if names.is_empty() {
            "no tables".into()
        } else {
            table(&["TABLE", "DIM", "METRIC", "ROWS"], &rows)
        }
    });
    Ok(())
}

pub async fn create_table(ctx: &Ctx, a: CreateTable) -> anyhow::Result<()> {
    let schema = schema_from_args(a.dim, &a.metric, &a.fields)?;
    ctx.db.create_table(&a.name, schema.clone()).await?;
    ctx.out
        .emit(&json!({"created": a.name, "schema": schema}), || {
            format!(
                "created table {} ({} dimensions, {})",
                a.name, schema.dimension, schema.metric
            )
        });
    Ok(())
}

pub async fn drop_table(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    ctx.db.drop_table(name).await?;
    ctx.out.emit(&json!({"dropped": name}), || {
        format!("dropped table {name}")
    });
    Ok(())
}

pub async fn index(ctx: &Ctx, cmd: IndexCmd) -> anyhow::Result<()> {
    match cmd {
        IndexCmd::Create {
            name,
            kind,
            nlist,
            pq_dims,
            column,
        } => {
            let spec = match kind {
                IndexKind::Auto => IndexSpec::Auto,
                IndexKind::IvfPq => IndexSpec::IvfPq { nlist, pq_dims },
                IndexKind::Hnsw => IndexSpec::Hnsw {
                    m: None,
                    ef_construction: None,
                },
                IndexKind::Fts => IndexSpec::FullText,
                IndexKind::Scalar => IndexSpec::Scalar {
                    column: column
                        .ok_or_else(|| anyhow::anyhow!("--type scalar needs --column NAME"))?,
                },
            };
            let bar = ctx
                .out
                .progress(None, &format!("building {kind:?} index on {name}"));
            let start = std::time::Instant::now();
            let res = ctx.db.create_index(&name, spec.clone()).await;
            bar.finish_and_clear();
            res?;
            let secs = start.elapsed().as_secs_f64();
            ctx.out.emit(
                &json!({"table": name, "index": spec, "seconds": secs}),
                || format!("built {kind:?} index on {name} in {secs:.2}s"),
            );
        }
        IndexCmd::List { name } | IndexCmd::Stats { name } => {
            let idx = ctx.db.list_indexes(&name).await?;
            let rows: Vec<Vec<String>> = idx
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        i.kind.clone(),
                        i.columns.join(","),
                        i.indexed_rows.map_or("-".into(), |n| n.to_string()),
                        i.unindexed_rows.map_or("-".into(), |n| n.to_string()),
                    ]
                })
                .collect();
            ctx.out.emit(&json!({"table": name, "indexes": idx}), || {
                if idx.is_empty() {
                    format!("{name} has no indexes")
                } else {
                    table(&["NAME", "TYPE", "COLUMNS", "INDEXED", "UNINDEXED"], &rows)
                }
            });
        }
    }
    Ok(())
}

pub async fn versions(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let vs = ctx.db.list_versions(name).await?;
    let rows: Vec<Vec<String>> = vs
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.timestamp.clone(),
                v.operation.clone().unwrap_or_default(),
                v.tags.join(","),
            ]
        })
        .collect();
    ctx.out.emit(&json!({"table": name, "versions": vs}), || {
        table(&["VERSION", "TIME", "OPERATION", "TAGS"], &rows)
    });
    Ok(())
}

pub async fn restore(ctx: &Ctx, name: &str, version: u64) -> anyhow::Result<()> {
    let v = ctx.db.restore(name, version).await?;
    ctx.out.emit(
        &json!({"table": name, "restored": version, "version": v}),
        || format!("restored {name} to version {version}; it is now version {v}"),
    );
    Ok(())
}

pub async fn tag(ctx: &Ctx, name: &str, version: u64, tag: &str) -> anyhow::Result<()> {
    ctx.db.tag(name, version, tag).await?;
    ctx.out.emit(
        &json!({"table": name, "version": version, "tag": tag}),
        || format!("tagged {name} version {version} as {tag}"),
    );
    Ok(())
}

pub async fn compact(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let bar = ctx.out.progress(None, &format!("compacting {name}"));
    let res = ctx.db.compact(name).await;
    bar.finish_and_clear();
    let s = res?;
    ctx.out.emit(&json!({"table": name, "compaction": s}), || {
        format!(
            "compacted {name}: {} fragments merged into {}, {} old versions pruned, {} bytes freed",
            s.fragments_removed, s.fragments_added, s.versions_pruned, s.bytes_removed
        )
    });
    Ok(())
}

pub async fn stats(ctx: &Ctx, name: Option<&str>) -> anyhow::Result<()> {
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => ctx.db.list_tables().await?,
    };
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for n in &names {
        let s = ctx.db.table_stats(n).await?;
        // Which path serves vector searches: the hot in-memory index (loaded
        // from its saved file when current), still building, or LanceDB.
        let hot = ctx
            .db
            .wait_hot(n, std::time::Duration::from_secs(2))
            .await?;
        let indexed: u64 = s
            .indexes
            .iter()
            .filter_map(|i| i.indexed_rows)
            .max()
            .unwrap_or(0);
        rows.push(vec![
            n.clone(),
            s.rows.to_string(),
            s.disk_bytes.to_string(),
            s.version.to_string(),
            s.versions.to_string(),
            s.fragments.to_string(),
            if s.indexes.is_empty() {
                "-".into()
            } else {
                format!("{indexed}/{}", s.rows)
            },
            hot.as_ref()
                .map_or_else(|| "lance".into(), |h| h.serving.to_string()),
        ]);
        docs.push(json!({"table": n, "stats": s, "hot": hot}));
    }
    ctx.out.emit(&json!({"tables": docs}), || {
        table(
            &[
                "TABLE",
                "ROWS",
                "BYTES",
                "VERSION",
                "VERSIONS",
                "FRAGMENTS",
                "INDEXED",
                "SERVING",
            ],
            &rows,
        )
    });
    Ok(())
}

pub fn security_status(ctx: &Ctx) -> anyhow::Result<()> {
    let s = ctx.db.security_status()?;
    let access = ctx.db.access_status();
    let mut doc = serde_json::to_value(&s)?;
    doc["access"] = serde_json::to_value(&access)?;
    ctx.out.emit(&doc, || {
        let mut out = vec![
            format!(
                "access control:    {}",
                if access.access_control {
                    format!(
                        "on ({} principal(s); the plain handle may do nothing)",
                        access.principals
                    )
                } else {
                    "off (no principal yet)".to_string()
                }
            ),
            format!(
                "audit log:         {}",
                match &access.audit {
                    Some(a) => format!("on ({} entries, {})", a.next_seq, a.dir),
                    None => "off".to_string(),
                }
            ),
            format!(
                "encrypted at rest: {}",
                if s.is_encrypted {
                    "yes"
                } else {
                    "NO (explicit opt-out)"
                }
            ),
            format!("cipher:            {}", s.cipher),
            format!(
                "key provider:      {}{}",
                s.key_provider.kind,
                s.key_provider
                    .location
                    .as_ref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ),
            format!(
                "keys TEE-sealed:   {}",
                if s.keys_tee_sealed { "yes" } else { "no" }
            ),
            format!(
                "keys locked in RAM: {}",
                if s.memory_locked { "yes" } else { "no" }
            ),
            format!(
                "core dumps off:    {}",
                if s.core_dumps_disabled { "yes" } else { "no" }
            ),
            format!(
                "tier: requested {:?}, detected {:?}, effective {:?}",
                s.requested, s.detected, s.effective
            ),
            "evidence:".to_string(),
        ];
        for e in s.evidence.iter().filter(|e| e.found) {
            out.push(format!("  found  {e:?}"));
        }
        out.push(format!(
            "  ({} probes found nothing)",
            s.evidence.iter().filter(|e| !e.found).count()
        ));
        for w in &s.warnings {
            out.push(format!("warning: {w}"));
        }
        out.join("\n")
    });
    Ok(())
}

pub fn rotate_key(
    ctx: &Ctx,
    data_key: bool,
    new_passphrase_env: Option<String>,
    new_key_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use hanzo_db::security::keys::{KeyFileProvider, KeyProvider, PassphraseProvider};
    if data_key {
        anyhow::ensure!(
            new_passphrase_env.is_none() && new_key_file.is_none(),
            "--data-key takes no new key-encryption key"
        );
        let id = ctx.db.rotate_data_key()?;
        ctx.out
            .emit(&json!({"rotated": "data_key", "key_id": id}), || {
                format!("new data key {id}: new writes use it; compaction re-encrypts older files")
            });
        return Ok(());
    }
    let provider: Box<dyn KeyProvider> = match (new_passphrase_env, new_key_file) {
        (Some(var), None) => {
            let pass = std::env::var(&var)
                .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?;
            Box::new(PassphraseProvider::new(pass)?)
        }
        (None, Some(path)) => Box::new(if path.exists() {
            KeyFileProvider::open(&path)?
        } else {
            KeyFileProvider::create_default(&path)?
        }),
        _ => anyhow::bail!("give --new-passphrase-env VAR or --new-key-file FILE (or --data-key)"),
    };
    let info = provider.describe();
    ctx.db.rotate_key_encryption_key(provider)?;
    ctx.out.emit(
        &json!({"rotated": "key_encryption_key", "provider": info}),
        || {
            format!(
                "data keys rewrapped under the new {} key; no data was rewritten",
                info.kind
            )
        },
    );
    Ok(())
}
