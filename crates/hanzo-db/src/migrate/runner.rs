//! [`Migration`]: plans, copies page by page with a checkpoint after every
//! committed batch, resumes, and verifies.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::record::MultimodalRecord;
use crate::schema::{DistanceMetric, TableSchema};

use super::checkpoint::{Checkpoint, TableProgress};
use super::report::{MigrationReport, PlannedTable, Progress, TableReport};
use super::verify::{Reservoir, verify_table};
use super::{MigrationSource, SourceCollection};

/// Default records per page and per committed batch.
pub const DEFAULT_BATCH: usize = 1000;
/// Default number of records compared field by field at the end.
pub const DEFAULT_SAMPLE: usize = 100;

/// A callback told about progress after every committed batch.
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// A migration from a [`MigrationSource`] into a database. Configure, then
/// `.execute().await`.
#[must_use = "call .execute().await to run the migration"]
pub struct Migration {
    db: Database,
    source: Box<dyn MigrationSource>,
    mappings: Vec<(String, String)>,
    batch: usize,
    checkpoint: Option<PathBuf>,
    resume: bool,
    dry_run: bool,
    verify: bool,
    sample: usize,
    metric: Option<DistanceMetric>,
    text_field: Option<String>,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("source", &self.source)
            .field("mappings", &self.mappings)
            .field("batch", &self.batch)
            .field("checkpoint", &self.checkpoint)
            .field("resume", &self.resume)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// A migration of every collection of `source` into `db`, each into a
    /// table named after it.
    pub fn new(db: Database, source: Box<dyn MigrationSource>) -> Self {
        Self {
            db,
            source,
            mappings: Vec::new(),
            batch: DEFAULT_BATCH,
            checkpoint: None,
            resume: false,
            dry_run: false,
            verify: true,
            sample: DEFAULT_SAMPLE,
            metric: None,
            text_field: None,
            progress: None,
        }
    }

    /// Migrates source collection `source` (its key, see
    /// [`SourceCollection::key`]) into table `target`. Once any mapping is
    /// given, only mapped collections are migrated.
    pub fn table(mut self, source: impl Into<String>, target: impl Into<String>) -> Self {
        self.mappings.push((source.into(), target.into()));
        self
    }

    /// Records per page and per committed batch (default 1000).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Where the checkpoint is kept (default: beside the database directory,
    /// `<db>.migrate-<store>.json`).
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.checkpoint = Some(path.into());
        self
    }

    /// Continues an interrupted migration from its checkpoint.
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Only plans: lists collections, dimensions, metrics, counts and the
    /// target schemas, and writes nothing.
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// Turns the end-of-run verification on (default) or off.
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Records compared field by field per collection at the end (default 100).
    pub fn sample_size(mut self, n: usize) -> Self {
        self.sample = n;
        self
    }

    /// The metric for every target table, whatever the source says.
    pub fn metric(mut self, metric: DistanceMetric) -> Self {
        self.metric = Some(metric);
        self
    }

    /// Moves this metadata key (a string) into the record's text, e.g. a
    /// `body` column or a `text` payload field.
    pub fn text_field(mut self, key: impl Into<String>) -> Self {
        self.text_field = Some(key.into());
        self
    }

    /// Called after every committed batch.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// The default checkpoint path for this database and store.
    pub fn default_checkpoint(db_path: &Path, store: &str) -> PathBuf {
        let name = db_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "hanzo-data".into());
        db_path.with_file_name(format!("{name}.migrate-{store}.json"))
    }

    /// Runs it: plan, then (unless a dry run) copy, checkpoint, verify.
    pub async fn execute(self) -> Result<MigrationReport> {
        let store = self.source.store();
        let described = self.source.describe();
        let collections = self.source.collections().await?;
        if collections.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "nothing to migrate: the {store} source {described} has no collections \
                 (check the tenant, database, namespace or schema)"
            )));
        }
        let selected = self.select(&collections)?;
        let existing = self.db.list_tables().await?;
        let mut plan = Vec::new();
        for (coll, target) in &selected {
            plan.push(self.plan_one(coll, target, &existing).await?);
        }
        for coll in collections.iter().filter(|c| c.unsupported.is_some()) {
            if self.mappings.is_empty() {
                plan.push(
                    self.plan_one(coll, &coll.default_target(), &existing)
                        .await?,
                );
            }
        }
        let cp_path = self
            .checkpoint
            .clone()
            .unwrap_or_else(|| Self::default_checkpoint(&self.db.config().path, store));
        let mut report = MigrationReport {
            store: store.into(),
            source: described.clone(),
            dry_run: self.dry_run,
            plan,
            tables: Vec::new(),
            migrated: 0,
            copy_secs: 0.0,
            verify_secs: 0.0,
            rows_per_sec: 0.0,
            checkpoint: None,
        };
        if self.dry_run {
            return Ok(report);
        }
        report.checkpoint = Some(cp_path.clone());
        let mut cp = self.open_checkpoint(&cp_path, store, &described, &selected)?;

        let total = selected.iter().map(|(c, _)| c.count).sum::<Option<u64>>();
        let mut migrated_all: u64 = cp.tables.values().map(|t| t.migrated).sum();
        let started = Instant::now();
        let mut reservoirs = HashMap::new();
        for (i, (coll, target)) in selected.iter().enumerate() {
            let key = coll.key();
            let before = cp.tables.get(&key).cloned().unwrap_or_default();
            let resumed = self.resume && (before.migrated > 0 || before.cursor.is_some());
            let mut reservoir = Reservoir::new(self.sample, i as u64);
            let n = self
                .copy_table(
                    coll,
                    &report.plan[i],
                    &mut cp,
                    &cp_path,
                    &mut reservoir,
                    &mut migrated_all,
                    total,
                )
                .await?;
            reservoirs.insert(key.clone(), reservoir);
            let after = cp.tables.get(&key).cloned().unwrap_or_default();
            report.migrated += n;
            report.tables.push(TableReport {
                source: key,
                target: target.clone(),
                migrated: n,
                total_migrated: after.migrated,
                skipped: after.skipped,
                resumed,
                verification: None,
            });
        }
        report.copy_secs = started.elapsed().as_secs_f64();
        report.rows_per_sec = if report.copy_secs > 0.0 {
            report.migrated as f64 / report.copy_secs
        } else {
            0.0
        };

        if self.verify {
            let started = Instant::now();
            let fresh: BTreeMap<String, Option<u64>> = self
                .source
                .collections()
                .await?
                .into_iter()
                .map(|c| (c.key(), c.count))
                .collect();
            for (t, (coll, target)) in report.tables.iter_mut().zip(&selected) {
                let source_count = fresh.get(&t.source).copied().flatten().or(coll.count);
                let sample = reservoirs
                    .remove(&t.source)
                    .map(Reservoir::into_records)
                    .unwrap_or_default();
                let v = verify_table(
                    &self.db,
                    self.source.as_ref(),
                    coll,
                    target,
                    source_count,
                    t.skipped,
                    sample,
                    self.sample,
                    &|r: &mut MultimodalRecord| self.transform(r),
                )
                .await?;
                t.verification = Some(v);
            }
            report.verify_secs = started.elapsed().as_secs_f64();
        }
        Ok(report)
    }

    /// The collections to migrate and their targets.
    fn select(&self, all: &[SourceCollection]) -> Result<Vec<(SourceCollection, String)>> {
        if self.mappings.is_empty() {
            return Ok(all
                .iter()
                .filter(|c| c.unsupported.is_none())
                .map(|c| (c.clone(), c.default_target()))
                .collect());
        }
        let mut out = Vec::new();
        for (src, dst) in &self.mappings {
            let found: Vec<&SourceCollection> = match all.iter().find(|c| &c.key() == src) {
                Some(c) => vec![c],
                // A bare name stands for every vector/partition of that collection.
                None => all.iter().filter(|c| &c.name == src).collect(),
            };
            if found.is_empty() {
                let keys: Vec<String> = all.iter().map(SourceCollection::key).collect();
                return Err(Error::InvalidArgument(format!(
                    "the {} source has no collection `{src}`; it has: {}",
                    self.source.store(),
                    if keys.is_empty() {
                        "none".into()
                    } else {
                        keys.join(", ")
                    }
                )));
            }
            for c in &found {
                if let Some(why) = &c.unsupported {
                    return Err(Error::InvalidArgument(format!(
                        "`{}` cannot be migrated: {why}",
                        c.key()
                    )));
                }
                let target = if found.len() == 1 {
                    dst.clone()
                } else {
                    let suffix = c.key()[src.len()..].to_string();
                    let mut t = (*c).clone();
                    t.name = format!("{dst}{suffix}");
                    t.partition = None;
                    t.vector = None;
                    t.default_target()
                };
                out.push(((*c).clone(), target));
            }
        }
        Ok(out)
    }

    async fn plan_one(
        &self,
        coll: &SourceCollection,
        target: &str,
        existing: &[String],
    ) -> Result<PlannedTable> {
        let (metric, metric_from) = match (self.metric, coll.metric) {
            (Some(m), _) => (m, "override"),
            (None, Some(m)) => (m, "source"),
            (None, None) => (DistanceMetric::L2, "default"),
        };
        let mut notes = coll.notes.clone();
        if metric_from == "default" && coll.unsupported.is_none() {
            notes.push(
                "the source does not say which metric it uses: l2 assumed (set it with --metric)"
                    .into(),
            );
        }
        let target_exists = existing.iter().any(|t| t == target);
        let target_schema = if target_exists {
            let s = self.db.table_schema(target).await?;
            if coll.unsupported.is_none() && s.dimension != coll.dimension {
                return Err(Error::BadSchema {
                    reason: format!(
                        "target table `{target}` has dimension {}, but source `{}` has {}",
                        s.dimension,
                        coll.key(),
                        coll.dimension
                    ),
                });
            }
            s
        } else {
            TableSchema::new(coll.dimension.max(1)).metric(metric)
        };
        Ok(PlannedTable {
            source: coll.key(),
            target: target.to_string(),
            dimension: coll.dimension,
            metric,
            metric_from: metric_from.into(),
            count: coll.count,
            target_exists,
            target_schema,
            unsupported: coll.unsupported.clone(),
            notes,
        })
    }

    fn open_checkpoint(
        &self,
        path: &Path,
        store: &str,
        described: &str,
        selected: &[(SourceCollection, String)],
    ) -> Result<Checkpoint> {
        let err = |reason: String| Error::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let existing = Checkpoint::load(path)?;
        let mut cp = match (existing, self.resume) {
            (None, true) => {
                return Err(err(
                    "there is no checkpoint to resume from (start without --resume)".into(),
                ));
            }
            (Some(cp), true) => {
                if cp.store != store || cp.source != described {
                    return Err(err(format!(
                        "it belongs to a migration from {} {}, not {store} {described}",
                        cp.store, cp.source
                    )));
                }
                cp
            }
            (Some(cp), false) if !cp.complete() => {
                return Err(err(format!(
                    "an interrupted migration from {} {} left it (updated {})",
                    cp.store, cp.source, cp.updated
                )));
            }
            _ => Checkpoint::new(store, described),
        };
        for (coll, target) in selected {
            let key = coll.key();
            match cp.tables.get(&key) {
                Some(p) if &p.target != target => {
                    return Err(err(format!(
                        "`{key}` was being migrated into `{}`, not `{target}`",
                        p.target
                    )));
                }
                Some(_) => {}
                None => {
                    cp.tables.insert(
                        key,
                        TableProgress {
                            target: target.clone(),
                            ..TableProgress::default()
                        },
                    );
                }
            }
        }
        cp.save(path)?;
        Ok(cp)
    }

    /// Copies one collection; returns the records committed in this run.
    #[allow(clippy::too_many_arguments)]
    async fn copy_table(
        &self,
        coll: &SourceCollection,
        plan: &PlannedTable,
        cp: &mut Checkpoint,
        cp_path: &Path,
        reservoir: &mut Reservoir,
        migrated_all: &mut u64,
        total: Option<u64>,
    ) -> Result<u64> {
        let key = coll.key();
        let mut prog = cp.tables.get(&key).cloned().unwrap_or_default();
        if prog.done {
            return Ok(0);
        }
        let target = prog.target.clone();
        // Upsert whenever a page may already be in the target: a table that
        // existed before this migration, and the first page after a resume.
        let fresh_start = prog.cursor.is_none() && prog.migrated == 0 && !self.resume;
        let merge = plan.target_exists && fresh_start;
        if !self.db.list_tables().await?.contains(&target) {
            self.db
                .create_table(&target, plan.target_schema.clone())
                .await?;
        }
        let mut upsert_next = merge || !fresh_start;
        let mut copied = 0u64;
        let mut page = self
            .source
            .read_page(coll, prog.cursor.as_ref(), self.batch)
            .await?;
        loop {
            let next = page.next.take();
            if next.is_some() && next == prog.cursor && page.records.is_empty() {
                return Err(Error::SourceRequest {
                    store: self.source.store().into(),
                    operation: format!("read `{key}`"),
                    status: None,
                    message: "the source returned the same cursor twice without records".into(),
                });
            }
            let records = self.prepare(coll, std::mem::take(&mut page.records))?;
            reservoir.offer(&records);
            let n = records.len() as u64;
            let db = &self.db;
            let target_ref = target.as_str();
            let write = async move {
                if records.is_empty() {
                    Ok(0)
                } else if upsert_next {
                    db.upsert(target_ref, records).await
                } else {
                    db.insert(target_ref, records).await
                }
            };
            let read = async {
                match &next {
                    Some(c) => Some(self.source.read_page(coll, Some(c), self.batch).await),
                    None => None,
                }
            };
            let (written, read) = tokio::join!(write, read);
            written?;
            upsert_next = merge;
            prog.cursor = next.clone();
            prog.migrated += n;
            prog.skipped += page.skipped;
            prog.done = next.is_none();
            cp.tables.insert(key.clone(), prog.clone());
            cp.save(cp_path)?;
            copied += n;
            *migrated_all += n;
            if let Some(f) = &self.progress {
                f(&Progress {
                    table: key.clone(),
                    target: target.clone(),
                    table_migrated: prog.migrated,
                    table_total: coll.count,
                    migrated: *migrated_all,
                    total,
                });
            }
            match read {
                None => break,
                Some(r) => page = r?,
            }
        }
        Ok(copied)
    }

    /// Applies the record mapping options (e.g. `text_field`).
    fn transform(&self, r: &mut MultimodalRecord) {
        if let Some(f) = &self.text_field {
            if r.text.is_none() && matches!(r.metadata.get(f), Some(Value::String(_))) {
                if let Some(Value::String(s)) = r.metadata.remove(f) {
                    r.text = Some(s);
                }
            }
        }
    }

    /// Maps and checks a page before it is written; a bad record fails the
    /// page with its id and the reason, before anything of it is written.
    fn prepare(
        &self,
        coll: &SourceCollection,
        mut records: Vec<MultimodalRecord>,
    ) -> Result<Vec<MultimodalRecord>> {
        let bad = |id: Option<&str>, reason: String| Error::BadSourceRecord {
            store: self.source.store().into(),
            collection: coll.key(),
            record: id.map(str::to_string),
            reason,
        };
        for r in &mut records {
            self.transform(r);
            if r.id.is_empty() {
                return Err(bad(None, "the record has an empty id".into()));
            }
            if r.vector.len() != coll.dimension {
                return Err(bad(
                    Some(&r.id),
                    format!(
                        "the vector has {} dimensions, the collection {}",
                        r.vector.len(),
                        coll.dimension
                    ),
                ));
            }
            if let Some((i, v)) = r.vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(bad(
                    Some(&r.id),
                    format!("vector component {i} is not finite ({v})"),
                ));
            }
        }
        Ok(records)
    }
}

/// The specification's one-call migration from PostgreSQL + pgvector: opens
/// (or creates) the database at `lance_path` with the default settings and
/// migrates the mapped tables (`[("items", "items")]`; empty: every table
/// with a vector column in the `public` schema).
#[cfg(feature = "lancedb")]
pub async fn migrate_from_postgres<I, S, T>(
    pg_url: &str,
    lance_path: impl Into<PathBuf>,
    table_mappings: I,
) -> Result<MigrationReport>
where
    I: IntoIterator<Item = (S, T)>,
    S: Into<String>,
    T: Into<String>,
{
    let db = crate::connect(lance_path).execute().await?;
    let mut m = Migration::new(db, Box::new(super::PgVectorSource::new(pg_url)));
    for (s, t) in table_mappings {
        m = m.table(s, t);
    }
    m.execute().await
}
