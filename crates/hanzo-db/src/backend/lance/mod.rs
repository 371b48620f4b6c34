//! The LanceDB engine: hanzo-db's default, durable and versioned store.
//!
//! One Lance table per hanzo-db table, laid out by [`crate::arrow`]; filters compile
//! to DataFusion expressions in [`filter`]; index choices live in [`index`].
//! One `lancedb::Table` handle per table is cached and shared by every task,
//! so a write made through this backend is visible to its next read.
//! Time-travel reads open a separate handle pinned to the version.

mod filter;
mod index;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use lancedb::datafusion::prelude::{ident, lit};
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::table::{NaNVectorBehavior, OptimizeAction};
use lancedb::{Connection, DistanceType, Table};
use tokio::sync::RwLock;

use crate::arrow::{
    Row, arrow_schema, batch_to_rows, projected_columns, records_to_batch, table_schema_from_arrow,
};
use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::{
    CompactionStats, FilterMode, IndexInfo, IndexSpec, Projection, SearchHit, SearchRequest,
    TableStats, VersionInfo,
};
use crate::record::MultimodalRecord;
use crate::schema::{DistanceMetric, TableSchema};
use crate::security::Security;
use crate::security::lance_store::{self, EncryptedLocalProvider};

const ENGINE: &str = "lancedb";

/// A table handle and what we know about it.
#[derive(Clone)]
struct Entry {
    table: Table,
    schema: TableSchema,
    /// Whether the vector index is product-quantised (sets the default re-ranking).
    pq_index: Arc<std::sync::atomic::AtomicBool>,
}

async fn has_pq_index(table: &Table) -> bool {
    table
        .list_indices()
        .await
        .map(|ix| ix.iter().any(|i| i.index_type.to_string().contains("PQ")))
        .unwrap_or(false)
}

/// Plaintext bytes per Arrow batch handed to Lance by one append.
const APPEND_CHUNK_BYTES: usize = 16 << 20;

/// Appends `records` as one new version. A large append goes to Lance as
/// batches of about [`APPEND_CHUNK_BYTES`], written by up to one Lance writer
/// per core (one fragment each, one commit): one 50,000 x 768 batch took one
/// writer 0.75 s here, most of it encoding and copying on one core. Smaller
/// buffers are also reused by the allocator instead of being mapped afresh.
///
/// Lance's own NaN check (a DataFusion pass over every vector) is skipped:
/// [`Database`](crate::Database) rejects NaN and infinities before any
/// backend sees a record.
async fn append(e: &Entry, table: &str, records: &[MultimodalRecord]) -> Result<u64> {
    let sample = &records[..records.len().min(64)];
    let payload: usize = sample.iter().map(crate::buffer::record_len).sum();
    let row_bytes = payload / sample.len().max(1);
    let chunk_rows = (APPEND_CHUNK_BYTES / row_bytes.max(1)).max(1);
    let batches = records
        .chunks(chunk_rows)
        .map(|c| records_to_batch(&e.schema, c))
        .collect::<Result<Vec<_>>>()?;
    let writers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batches.len())
        .max(1);
    let res = e
        .table
        .add(batches)
        .on_nan_vectors(NaNVectorBehavior::Keep)
        .write_parallelism(writers)
        .execute()
        .await
        .map_err(|err| map_err("insert", table, err))?;
    Ok(res.version)
}

/// LanceDB behind [`VectorDatabase`].
pub struct LanceBackend {
    conn: Connection,
    root: std::path::PathBuf,
    tables: RwLock<HashMap<String, Entry>>,
}

impl std::fmt::Debug for LanceBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanceBackend")
            .field("root", &self.root)
            .finish()
    }
}

/// Maps a LanceDB error into ours, keeping its message. Failed
/// authentication of encrypted data becomes [`Error::Integrity`].
fn map_err(op: &str, table: &str, e: lancedb::Error) -> Error {
    let text = format!("{e}");
    if text.contains("EncryptingObjectStore") {
        let path = text
            .split_whitespace()
            .find(|w| w.contains(".lance/") || w.ends_with(".lance") || w.contains('/'))
            .unwrap_or(table)
            .trim_matches(|c: char| c == '`' || c == ':' || c == ',' || c == '\'' || c == '"')
            .to_string();
        return Error::Integrity {
            path,
            reason: format!("{op} on `{table}`: {text}"),
        };
    }
    match e {
        lancedb::Error::TableNotFound { .. } => Error::TableNotFound {
            name: table.to_string(),
        },
        lancedb::Error::TableAlreadyExists { .. } => Error::TableExists {
            name: table.to_string(),
        },
        other => {
            let msg = other.to_string();
            if msg.contains("Version") && msg.contains("not found")
                || msg.contains("version not found")
            {
                Error::Engine {
                    engine: ENGINE,
                    operation: op.to_string(),
                    message: msg,
                }
            } else {
                Error::engine(ENGINE, format!("{op} on `{table}`"), msg)
            }
        }
    }
}

fn distance_type(m: DistanceMetric) -> DistanceType {
    match m {
        DistanceMetric::L2 => DistanceType::L2,
        DistanceMetric::Cosine => DistanceType::Cosine,
        DistanceMetric::Dot => DistanceType::Dot,
    }
}

impl LanceBackend {
    /// Opens (creating if missing) the database directory; with encryption on,
    /// every file goes through the encrypting store.
    pub async fn open(config: &DatabaseConfig, security: &Security) -> Result<Self> {
        let root = config.path.clone();
        std::fs::create_dir_all(&root).map_err(|source| Error::Io {
            path: root.display().to_string(),
            source,
        })?;
        let abs = root.canonicalize().map_err(|source| Error::Io {
            path: root.display().to_string(),
            source,
        })?;
        let mut builder = match security.key_source() {
            Some(keys) => {
                let (alg, chunk) = security.write_params()?;
                let provider = EncryptedLocalProvider::new(keys, alg, chunk)
                    .with_read_cache_bytes(security.read_cache_bytes());
                lancedb::connect(&lance_store::uri_for(&abs)?)
                    .session(lance_store::session(provider))
            }
            None => lancedb::connect(&abs.to_string_lossy()),
        };
        if let Some(ms) = config.lance.read_consistency_ms {
            builder = builder.read_consistency_interval(Duration::from_millis(ms));
        }
        let conn = builder
            .execute()
            .await
            .map_err(|e| map_err("connect", &root.display().to_string(), e))?;
        Ok(Self {
            conn,
            root,
            tables: RwLock::new(HashMap::new()),
        })
    }

    async fn entry(&self, name: &str) -> Result<Entry> {
        if let Some(e) = self.tables.read().await.get(name) {
            return Ok(e.clone());
        }
        let mut tables = self.tables.write().await;
        if let Some(e) = tables.get(name) {
            return Ok(e.clone());
        }
        let table = self
            .conn
            .open_table(name)
            .execute()
            .await
            .map_err(|e| map_err("open", name, e))?;
        let arrow = table
            .schema()
            .await
            .map_err(|e| map_err("read schema", name, e))?;
        let schema = table_schema_from_arrow(name, &arrow)?;
        let pq = has_pq_index(&table).await;
        let entry = Entry {
            table,
            schema,
            pq_index: Arc::new(pq.into()),
        };
        tables.insert(name.to_string(), entry.clone());
        Ok(entry)
    }

    /// A handle pinned to `version`, or the shared handle when `None`.
    async fn at_version(&self, name: &str, version: Option<u64>) -> Result<Entry> {
        let entry = self.entry(name).await?;
        let Some(v) = version else { return Ok(entry) };
        let table = self
            .conn
            .open_table(name)
            .execute()
            .await
            .map_err(|e| map_err("open", name, e))?;
        table
            .checkout(v)
            .await
            .map_err(|_| Error::VersionNotFound {
                table: name.to_string(),
                version: v,
            })?;
        let pq = has_pq_index(&table).await;
        Ok(Entry {
            table,
            schema: entry.schema,
            pq_index: Arc::new(pq.into()),
        })
    }

    async fn collect_rows(
        &self,
        name: &str,
        schema: &TableSchema,
        stream: lancedb::arrow::SendableRecordBatchStream,
        keys: Option<&[String]>,
    ) -> Result<Vec<Row>> {
        let batches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| map_err("read", name, e))?;
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(batch_to_rows(schema, b, keys)?);
        }
        Ok(rows)
    }

    fn select(schema: &TableSchema, p: &Projection) -> Select {
        Select::columns(&projected_columns(schema, p))
    }
}

fn ids_expr(ids: &[String]) -> lancedb::datafusion::logical_expr::Expr {
    ident("id").in_list(ids.iter().map(|s| lit(s.clone())).collect(), false)
}

fn hits(rows: Vec<Row>) -> Vec<SearchHit> {
    rows.into_iter()
        .map(|r| SearchHit {
            record: r.record,
            distance: r.distance,
            score: r.score,
        })
        .collect()
}

#[async_trait]
impl VectorDatabase for LanceBackend {
    fn backend_name(&self) -> &'static str {
        ENGINE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            full_text: true,
            vector_indexes: vec!["ivf_pq".into(), "hnsw".into(), "ivf_flat".into()],
            time_travel: true,
            compaction: true,
            scalar_indexes: true,
            max_dimension: Some(crate::schema::MAX_DIMENSION),
        }
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        let mut tables = self.tables.write().await;
        let table = self
            .conn
            .create_empty_table(name, arrow_schema(schema))
            .execute()
            .await
            .map_err(|e| map_err("create table", name, e))?;
        tables.insert(
            name.to_string(),
            Entry {
                table,
                schema: schema.clone(),
                pq_index: Arc::default(),
            },
        );
        Ok(())
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        Ok(self.entry(name).await?.schema)
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        let mut names = self
            .conn
            .table_names()
            .execute()
            .await
            .map_err(|e| map_err("list tables", "*", e))?;
        names.sort();
        Ok(names)
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        let mut tables = self.tables.write().await;
        if !self.list_tables().await?.iter().any(|n| n == name) {
            return Err(Error::TableNotFound {
                name: name.to_string(),
            });
        }
        tables.remove(name);
        self.conn
            .drop_table(name, &[])
            .await
            .map_err(|e| map_err("drop table", name, e))?;
        // Through the object-store API (encrypted databases) Lance deletes the
        // files but leaves the emptied directories, which would still list.
        let dir = self.root.join(format!("{name}.lance"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| Error::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let e = self.entry(table).await?;
        append(&e, table, &records).await
    }

    async fn insert_stream(&self, table: &str, mut batches: RecordStream) -> Result<u64> {
        let e = self.entry(table).await?;
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if batch.is_empty() {
                continue;
            }
            rows += batch.len() as u64;
            append(&e, table, &batch).await?;
        }
        Ok(rows)
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        let e = self.entry(table).await?;
        let batch = records_to_batch(&e.schema, &records)?;
        let schema = batch.schema();
        let reader = arrow_array::RecordBatchIterator::new(vec![Ok(batch)], schema);
        let mut merge = e.table.merge_insert(&["id"]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        let res = merge
            .execute(Box::new(reader))
            .await
            .map_err(|err| map_err("upsert", table, err))?;
        Ok(res.version)
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        let e = self.entry(table).await?;
        let expr = match selector {
            DeleteSelector::Ids(ids) => ids_expr(ids),
            DeleteSelector::Filter(f) => filter::to_expr(f, &e.schema)?,
        };
        let res = e
            .table
            .delete(&expr)
            .await
            .map_err(|err| map_err("delete", table, err))?;
        Ok(res.num_deleted_rows)
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        let e = self.at_version(table, version).await?;
        let stream = e
            .table
            .query()
            .only_if_expr(ids_expr(ids))
            .select(Self::select(&e.schema, projection))
            .execute()
            .await
            .map_err(|err| map_err("get", table, err))?;
        let rows = self
            .collect_rows(
                table,
                &e.schema,
                stream,
                projection.metadata_keys.as_deref(),
            )
            .await?;
        let mut by_id: HashMap<String, MultimodalRecord> = rows
            .into_iter()
            .map(|r| (r.record.id.clone(), r.record))
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        let e = self.at_version(table, version).await?;
        let stream = e
            .table
            .query()
            .select(Self::select(&e.schema, projection))
            .execute()
            .await
            .map_err(|err| map_err("scan", table, err))?;
        let schema = e.schema.clone();
        let keys = projection.metadata_keys.clone();
        let name = table.to_string();
        Ok(stream
            .map(move |batch| {
                let batch = batch.map_err(|err| map_err("scan", &name, err))?;
                Ok(batch_to_rows(&schema, &batch, keys.as_deref())?
                    .into_iter()
                    .map(|r| r.record)
                    .collect())
            })
            .boxed())
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        let e = self.entry(table).await?;
        match filter {
            None => Ok(e
                .table
                .count_rows(None)
                .await
                .map_err(|err| map_err("count", table, err))? as u64),
            Some(f) => {
                let stream = e
                    .table
                    .query()
                    .only_if_expr(filter::to_expr(f, &e.schema)?)
                    .select(Select::columns(&["id"]))
                    .execute()
                    .await
                    .map_err(|err| map_err("count", table, err))?;
                let batches: Vec<_> = stream
                    .try_collect()
                    .await
                    .map_err(|err| map_err("count", table, err))?;
                Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
            }
        }
    }

    async fn vector_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        let e = self.at_version(table, req.version).await?;
        let vector = req
            .vector
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("vector search needs a vector".into()))?;
        let metric = req.metric.unwrap_or(e.schema.metric);
        let mut q = e
            .table
            .query()
            .nearest_to(vector.as_slice())
            .map_err(|err| map_err("search", table, err))?
            .column("vector")
            .distance_type(distance_type(metric))
            .limit(req.k)
            .select(Self::select(&e.schema, &req.projection));
        if let Some(f) = &req.filter {
            q = q.only_if_expr(filter::to_expr(f, &e.schema)?);
            if req.filter_mode == FilterMode::Postfilter {
                q = q.postfilter();
            }
        }
        if let Some(n) = req.nprobes {
            q = q.nprobes(n).map_err(|err| map_err("search", table, err))?;
        }
        let pq = e.pq_index.load(std::sync::atomic::Ordering::Relaxed);
        q = q.refine_factor(req.refine_factor.unwrap_or_else(|| index::refine_for(pq)));
        if let Some(ef) = req.ef {
            q = q.ef(ef);
        }
        let stream = q
            .execute()
            .await
            .map_err(|err| map_err("search", table, err))?;
        let mut rows = self
            .collect_rows(
                table,
                &e.schema,
                stream,
                req.projection.metadata_keys.as_deref(),
            )
            .await?;
        rows.sort_by(|a, b| {
            a.distance
                .unwrap_or(f32::MAX)
                .total_cmp(&b.distance.unwrap_or(f32::MAX))
        });
        rows.truncate(req.k);
        Ok(hits(rows))
    }

    async fn text_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        let e = self.at_version(table, req.version).await?;
        let text = req
            .text
            .clone()
            .ok_or_else(|| Error::InvalidArgument("text search needs a query".into()))?;
        let fts = FullTextSearchQuery::new(text)
            .with_column("text".into())
            .map_err(|err| Error::engine(ENGINE, "full-text query", err))?;
        let mut q = e
            .table
            .query()
            .full_text_search(fts)
            .limit(req.k)
            .select(Self::select(&e.schema, &req.projection));
        if let Some(f) = &req.filter {
            q = q.only_if_expr(filter::to_expr(f, &e.schema)?);
        }
        let stream = q.execute().await.map_err(|err| {
            let msg = err.to_string();
            if msg.contains("INVERTED") || msg.to_lowercase().contains("no inverted index") || msg.contains("full text search") {
                Error::InvalidArgument(format!(
                    "full-text search on `{table}` needs a full-text index: create one with IndexSpec::FullText ({msg})"
                ))
            } else {
                map_err("text search", table, err)
            }
        })?;
        let mut rows = self
            .collect_rows(
                table,
                &e.schema,
                stream,
                req.projection.metadata_keys.as_deref(),
            )
            .await?;
        rows.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        rows.truncate(req.k);
        Ok(hits(rows))
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        let e = self.entry(table).await?;
        let rows = e
            .table
            .count_rows(None)
            .await
            .map_err(|err| map_err("count", table, err))?;
        let (columns, idx) = index::lance_index(&e.schema, spec, rows)?;
        e.table
            .create_index(&columns, idx)
            .replace(true)
            .execute()
            .await
            .map_err(|err| map_err("create index", table, err))?;
        e.pq_index.store(
            has_pq_index(&e.table).await,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        let e = self.entry(table).await?;
        let configs = e
            .table
            .list_indices()
            .await
            .map_err(|err| map_err("list indexes", table, err))?;
        let mut out = Vec::with_capacity(configs.len());
        for c in configs {
            let stats = e
                .table
                .index_stats(&c.name)
                .await
                .map_err(|err| map_err("index stats", table, err))?;
            out.push(IndexInfo {
                kind: c.index_type.to_string(),
                columns: c.columns,
                indexed_rows: stats.as_ref().map(|s| s.num_indexed_rows as u64),
                unindexed_rows: stats.as_ref().map(|s| s.num_unindexed_rows as u64),
                name: c.name,
            });
        }
        Ok(out)
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        let e = self.entry(table).await?;
        let stats = e
            .table
            .stats()
            .await
            .map_err(|err| map_err("stats", table, err))?;
        let versions = e
            .table
            .list_versions()
            .await
            .map_err(|err| map_err("versions", table, err))?;
        let version = e
            .table
            .version()
            .await
            .map_err(|err| map_err("version", table, err))?;
        let dir = self.root.join(format!("{table}.lance"));
        Ok(TableStats {
            rows: stats.num_rows as u64,
            version,
            versions: versions.len() as u64,
            disk_bytes: dir_size(&dir),
            fragments: stats.fragment_stats.num_fragments as u64,
            indexes: self.list_indexes(table).await?,
        })
    }

    async fn version(&self, table: &str) -> Result<u64> {
        let e = self.entry(table).await?;
        e.table
            .version()
            .await
            .map_err(|err| map_err("version", table, err))
    }

    async fn list_versions(&self, table: &str) -> Result<Vec<VersionInfo>> {
        let e = self.entry(table).await?;
        let versions = e
            .table
            .list_versions()
            .await
            .map_err(|err| map_err("versions", table, err))?;
        let tags = e
            .table
            .tags()
            .await
            .map_err(|err| map_err("tags", table, err))?;
        let tag_map = tags
            .list()
            .await
            .map_err(|err| map_err("tags", table, err))?;
        Ok(versions
            .into_iter()
            .map(|v| {
                let mut tags: Vec<String> = tag_map
                    .iter()
                    .filter(|(_, t)| t.version == v.version)
                    .map(|(name, _)| name.clone())
                    .collect();
                tags.sort();
                VersionInfo {
                    version: v.version,
                    timestamp: v
                        .timestamp
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    operation: v.metadata.get("operation").cloned(),
                    tags,
                }
            })
            .collect())
    }

    async fn restore(&self, table: &str, version: u64) -> Result<u64> {
        let e = self.entry(table).await?;
        let pinned = self
            .conn
            .open_table(table)
            .execute()
            .await
            .map_err(|err| map_err("open", table, err))?;
        pinned
            .checkout(version)
            .await
            .map_err(|_| Error::VersionNotFound {
                table: table.to_string(),
                version,
            })?;
        pinned
            .restore()
            .await
            .map_err(|err| map_err("restore", table, err))?;
        e.table
            .checkout_latest()
            .await
            .map_err(|err| map_err("restore", table, err))?;
        e.table
            .version()
            .await
            .map_err(|err| map_err("version", table, err))
    }

    async fn tag(&self, table: &str, version: u64, tag: &str) -> Result<()> {
        let e = self.entry(table).await?;
        let mut tags = e
            .table
            .tags()
            .await
            .map_err(|err| map_err("tags", table, err))?;
        tags.create(tag, version).await.map_err(|err| {
            let msg = err.to_string();
            if msg.contains("not found") || msg.contains("does not exist") {
                Error::VersionNotFound {
                    table: table.to_string(),
                    version,
                }
            } else {
                map_err("tag", table, err)
            }
        })
    }

    async fn tag_version(&self, table: &str, tag: &str) -> Result<u64> {
        let e = self.entry(table).await?;
        let tags = e
            .table
            .tags()
            .await
            .map_err(|err| map_err("tags", table, err))?;
        tags.get_version(tag)
            .await
            .map_err(|_| Error::InvalidArgument(format!("table `{table}` has no tag `{tag}`")))
    }

    async fn compact(&self, table: &str, keep: Duration) -> Result<CompactionStats> {
        let e = self.entry(table).await?;
        let mut out = CompactionStats::default();
        let c = e
            .table
            .optimize(OptimizeAction::Compact {
                options: Default::default(),
                remap_options: None,
            })
            .await
            .map_err(|err| map_err("compact", table, err))?;
        if let Some(m) = c.compaction {
            out.fragments_removed = m.fragments_removed as u64;
            out.fragments_added = m.fragments_added as u64;
        }
        if !e
            .table
            .list_indices()
            .await
            .map_err(|err| map_err("list indexes", table, err))?
            .is_empty()
        {
            e.table
                .optimize(OptimizeAction::Index(Default::default()))
                .await
                .map_err(|err| map_err("optimize indexes", table, err))?;
        }
        let older_than = lancedb::table::Duration::from_std(keep)
            .map_err(|err| Error::InvalidArgument(format!("retention: {err}")))?;
        let p = e
            .table
            .optimize(OptimizeAction::Prune {
                older_than: Some(older_than),
                delete_unverified: None,
                error_if_tagged_old_versions: None,
            })
            .await
            .map_err(|err| map_err("prune", table, err))?;
        if let Some(r) = p.prune {
            out.versions_pruned = r.old_versions;
            out.bytes_removed = r.bytes_removed;
        }
        Ok(out)
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
