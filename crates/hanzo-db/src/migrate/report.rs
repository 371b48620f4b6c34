//! What a migration reports: the plan, progress, and per-table outcomes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schema::{DistanceMetric, TableSchema};

use super::verify::Verification;

/// Where a running migration stands (given to the progress callback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The source collection key being copied.
    pub table: String,
    /// Its target table.
    pub target: String,
    /// Records of this collection committed, including earlier runs.
    pub table_migrated: u64,
    /// Records of this collection, when the source counts them.
    pub table_total: Option<u64>,
    /// Records committed over all collections, including earlier runs.
    pub migrated: u64,
    /// Records over all collections, when every source count is known.
    pub total: Option<u64>,
}

/// What the migration will do for one source collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTable {
    /// The source collection key (`name[@partition][:vector]`).
    pub source: String,
    /// The target table.
    pub target: String,
    /// Vector dimension.
    pub dimension: usize,
    /// The metric the target table gets.
    pub metric: DistanceMetric,
    /// Where the metric comes from: `source`, `override` or `default`.
    pub metric_from: String,
    /// Records in the source, when known.
    pub count: Option<u64>,
    /// Whether the target table exists already (records are then upserted).
    pub target_exists: bool,
    /// The target table's schema.
    pub target_schema: TableSchema,
    /// Why it cannot be migrated, if it cannot (it is then left out).
    pub unsupported: Option<String>,
    /// Remarks: what is left out, what was assumed.
    pub notes: Vec<String>,
}

/// What happened to one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    /// The source collection key.
    pub source: String,
    /// The target table.
    pub target: String,
    /// Records committed in this run.
    pub migrated: u64,
    /// Records committed over all runs (from the checkpoint).
    pub total_migrated: u64,
    /// Source records that could not be migrated (counted, not written).
    pub skipped: u64,
    /// True when this run continued from a checkpoint.
    pub resumed: bool,
    /// The end-of-run check; `None` when verification was turned off.
    pub verification: Option<Verification>,
}

/// The outcome of [`Migration::execute`](super::Migration::execute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// The source store.
    pub store: String,
    /// The source, without credentials.
    pub source: String,
    /// True for a dry run (nothing written).
    pub dry_run: bool,
    /// The plan.
    pub plan: Vec<PlannedTable>,
    /// One report per migrated collection (empty for a dry run).
    pub tables: Vec<TableReport>,
    /// Records committed in this run.
    pub migrated: u64,
    /// Seconds spent copying.
    pub copy_secs: f64,
    /// Seconds spent verifying.
    pub verify_secs: f64,
    /// Copy rate of this run, records per second.
    pub rows_per_sec: f64,
    /// The checkpoint file (none for a dry run).
    pub checkpoint: Option<PathBuf>,
}

impl MigrationReport {
    /// True when every collection was verified and nothing differed.
    pub fn verified(&self) -> bool {
        !self.dry_run
            && self
                .tables
                .iter()
                .all(|t| t.verification.as_ref().is_some_and(Verification::ok))
    }
}
