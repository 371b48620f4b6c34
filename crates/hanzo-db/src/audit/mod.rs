//! The tamper-evident audit log.
//!
//! Every operation on a database — opens, reads, searches, writes, deletes,
//! schema and index changes, restores, key rotation, principal and grant
//! changes, and every denied attempt — is recorded as an [`AuditEntry`]:
//! time, principal, operation, table, outcome, row counts and the query's
//! shape (k, filter field names and operators). Never vectors, record
//! contents, filter values, ids or key material.
//!
//! [`Audited`] is the decorator that records the operations of the
//! [`VectorDatabase`](crate::VectorDatabase) trait around any backend; the
//! [`Database`](crate::Database) handle records the rest (opens, key
//! rotation, access-control changes) directly through [`AuditLog::record`].
//!
//! The log ([`AuditLog`], format in [`format`] and
//! `docs/audit-log-format.md`) is a chain: each entry names the hash of the
//! one before and carries an HMAC under a key derived from the database's
//! data key, and each entry is its own AEAD frame, appended to a segment
//! file. [`AuditLog::verify`] finds edited, deleted, reordered and truncated
//! entries and names the first bad one.
//!
//! Durability: entries of operations that change something (writes,
//! schema, index and key changes, grants) and of denied attempts are
//! fsync'd before the operation is acknowledged; a write's `begin` entry is
//! appended before the write starts, so an operation that took effect always
//! has an entry even if the process dies before its outcome is recorded.
//! Entries of reads and searches are queued in memory when the result is
//! returned (with the time of the read) and appended and fsync'd by a
//! background thread within [`AuditConfig::sync_interval_ms`], in one batch:
//! a killed process may lose the read entries of the last interval, as a
//! power cut already could. Anything recorded at once appends the queued
//! entries first, so the log stays in time order; reading the log
//! (`entries`, `verify`, `status`) and closing it (dropping the last
//! handle) append them too. With [`AuditSync::Always`] a read's entry is
//! appended and fsync'd before its result is returned.
//!
//! If an append or fsync fails, the log refuses every later operation
//! ([`Error::AuditLogFailed`](crate::Error::AuditLogFailed)) until the
//! database is reopened: nothing is served unrecorded.

mod batch;
#[cfg(test)]
mod compat;
#[cfg(test)]
mod cost;
mod decorator;
mod encode;
pub mod format;
mod json;
mod log;
mod read;
mod recover;
#[cfg(test)]
mod testing;
mod verify;

pub use decorator::Audited;
pub use log::{AuditLog, AuditStatus};
pub use verify::{BadEntry, VerifyReport};

use serde::{Deserialize, Serialize};

/// When entries reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSync {
    /// Entries of changes and denials are fsync'd before the operation
    /// returns; entries of reads are queued and appended and fsync'd
    /// within `sync_interval_ms` (the default).
    #[default]
    Changes,
    /// Every entry, reads' included, is appended and fsync'd before its
    /// operation returns.
    Always,
}

/// Audit log settings (`[audit]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditConfig {
    /// Record every operation. Once a database has an audit log it stays on
    /// (opening without this setting still records); creating the first
    /// principal turns it on too.
    pub enabled: bool,
    /// Drop segments whose entries are all older than this many days
    /// (`None`: keep everything).
    pub retention_days: Option<u32>,
    /// When entries are fsync'd.
    pub sync: AuditSync,
    /// Longest delay before a read's entry is appended and fsync'd, in
    /// milliseconds.
    pub sync_interval_ms: u64,
    /// Start a new segment when the current one reaches this size.
    pub segment_bytes: u64,
    /// Read entries held in memory before the reading caller appends them
    /// itself (backpressure; entries are never dropped).
    pub queue_entries: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            retention_days: None,
            sync: AuditSync::Changes,
            sync_interval_ms: 100,
            segment_bytes: 16 * 1024 * 1024,
            queue_entries: 4096,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A write is about to start (its outcome follows in another entry).
    Begin,
    /// It succeeded.
    Ok,
    /// Access control refused it.
    Denied,
    /// It failed (the `error` field names the kind).
    Error,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// When, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Hex SHA-256 of the previous entry (zeros for the first).
    pub prev: String,
    /// Who: the principal's name; `None` for the database-key holder's handle.
    pub principal: Option<String>,
    /// What: `search`, `insert`, `create_table`, `grant`, `audit.segment`, …
    pub op: String,
    /// The table, where there is one.
    pub table: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error's kind (`TableNotFound`, …) when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rows written, deleted, returned or counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Table version produced by a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// For an outcome entry: the `seq` of its `begin` entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin: Option<u64>,
    /// The request's shape: k, filter fields and operators, search kind, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<serde_json::Value>,
    /// Process id of the writer.
    pub pid: u32,
}

/// An entry to record (the log fills in `seq`, `time`, `prev`, `pid`).
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Who.
    pub principal: Option<String>,
    /// What.
    pub op: String,
    /// The table.
    pub table: Option<String>,
    /// Outcome, `None` meaning [`Outcome::Ok`].
    pub outcome: Option<Outcome>,
    /// Error kind.
    pub error: Option<String>,
    /// Row count.
    pub rows: Option<u64>,
    /// Version produced.
    pub version: Option<u64>,
    /// `seq` of the begin entry.
    pub begin: Option<u64>,
    /// Request shape.
    pub shape: Option<serde_json::Value>,
}

impl Event {
    /// An event for `op` by `principal` on `table`.
    pub fn new(principal: Option<&str>, op: &str, table: Option<&str>) -> Self {
        Self {
            principal: principal.map(str::to_string),
            op: op.to_string(),
            table: table.map(str::to_string),
            ..Self::default()
        }
    }

    /// Sets the outcome from a result: ok, denied, or the error's kind.
    pub fn result<T>(mut self, r: &crate::Result<T>) -> Self {
        let (outcome, error) = outcome_of(r);
        (self.outcome, self.error) = (Some(outcome), error);
        self
    }

    /// Whether this event must be fsync'd before the operation returns
    /// under [`AuditSync::Changes`].
    pub(crate) fn is_change(&self) -> bool {
        !matches!(self.outcome, Some(Outcome::Begin))
            && (matches!(self.outcome, Some(Outcome::Denied)) || is_change_op(&self.op))
    }
}

/// How an operation ended: ok, denied, or failed (with the error's kind).
fn outcome_of<T>(r: &crate::Result<T>) -> (Outcome, Option<String>) {
    match r {
        Ok(_) => (Outcome::Ok, None),
        Err(e @ crate::Error::PermissionDenied { .. }) => (Outcome::Denied, Some(error_kind(e))),
        Err(e) => (Outcome::Error, Some(error_kind(e))),
    }
}

fn is_change_op(op: &str) -> bool {
    !matches!(
        op,
        "open"
            | "authenticate"
            | "describe"
            | "list_tables"
            | "get"
            | "scan"
            | "count"
            | "search"
            | "list_indexes"
            | "stats"
            | "version"
            | "list_versions"
            | "tag_version"
            | "audit.read"
            | "principal.list"
    )
}

/// The variant name of an error, e.g. `TableNotFound`.
pub fn error_kind(e: &crate::Error) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("Error")
        .to_string()
}

/// The shape of a filter: each condition as `field:$op`, never its value.
pub fn filter_shape(f: &crate::Filter) -> Vec<String> {
    read::FilterShape::of(f)
        .iter()
        .map(str::to_string)
        .collect()
}
