//! The crate's one error type.
//!
//! Every variant carries the context needed to act on it, and [`Error::hint`]
//! says how to fix it where there is a fix. Engine errors (LanceDB's snafu
//! errors, SQL drivers) are mapped into these variants rather than leaked.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hanzo-db.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector's length differs from the table's dimension.
    #[error("wrong vector dimension for table `{table}`: expected {expected}, got {got}{}", record_suffix(.record))]
    WrongVectorDimension {
        /// The table written or searched.
        table: String,
        /// The table's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
        /// The record's id, when the vector belongs to a record.
        record: Option<String>,
    },
    /// A vector holds NaN or an infinite value.
    #[error("vector for table `{table}` holds a non-finite value ({value}) at position {position}{}", record_suffix(.record))]
    NonFiniteVector {
        /// The table written or searched.
        table: String,
        /// Index of the first bad component.
        position: usize,
        /// The bad value, printed.
        value: String,
        /// The record's id, when the vector belongs to a record.
        record: Option<String>,
    },
    /// `create_table` on a name in use.
    #[error("table `{name}` already exists")]
    TableExists {
        /// The table name.
        name: String,
    },
    /// The table does not exist.
    #[error("table `{name}` not found")]
    TableNotFound {
        /// The table name.
        name: String,
    },
    /// A filter could not be parsed or does not fit the table's schema.
    #[error("bad filter at `{path}`: {reason}")]
    BadFilter {
        /// Where in the filter document the problem is (JSON pointer-like).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A table schema or table name is invalid.
    #[error("bad schema: {reason}")]
    BadSchema {
        /// What is wrong.
        reason: String,
    },
    /// A record is malformed (empty id, duplicate id in a batch, metadata of the wrong type).
    #[error("bad record{}: {reason}", record_suffix(.id))]
    BadRecord {
        /// The record's id, if it has one.
        id: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A blob (image, audio or other) is larger than the configured limit.
    #[error("blob `{field}` of record `{id}` is {size} bytes, over the limit of {limit} bytes")]
    BlobTooLarge {
        /// The record id.
        id: String,
        /// Which blob (`image`, `audio` or `blobs[i]`).
        field: String,
        /// Its size.
        size: usize,
        /// The configured limit (`DatabaseConfig::max_blob_bytes`).
        limit: usize,
    },
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A requested table version does not exist.
    #[error("version {version} of table `{table}` not found")]
    VersionNotFound {
        /// The table name.
        table: String,
        /// The version asked for.
        version: u64,
    },
    /// The backend cannot do this.
    #[error("{feature} is not supported by the {backend} backend")]
    Unsupported {
        /// What was asked for.
        feature: String,
        /// Which backend.
        backend: String,
    },
    /// The backend exists but this build leaves it out.
    #[error("the {backend} backend is not compiled in: rebuild with the cargo feature `{feature}`")]
    FeatureDisabled {
        /// The backend asked for.
        backend: String,
        /// The cargo feature that enables it.
        feature: String,
    },
    /// Encryption or key management refused the operation (wrong key, missing
    /// or damaged keyring, unencrypted/encrypted mismatch, tier not available).
    #[error("security: {reason}")]
    Security {
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Stored data failed authentication or is damaged (a flipped byte, a
    /// truncated or extended file).
    #[error("data integrity error in {path}: {reason}")]
    Integrity {
        /// The file.
        path: String,
        /// What failed (names the chunk where known).
        reason: String,
    },
    /// Access control refused the call. Says nothing about the data the
    /// principal may not see (not even whether a table or record exists).
    #[error("permission denied: `{principal}` may not {operation}{}", table_suffix(.table))]
    PermissionDenied {
        /// The principal (`anonymous` for a handle without credentials).
        principal: String,
        /// The permission or operation refused (`read`, `write`, `keys`, `authenticate`, …).
        operation: String,
        /// The table, when the call named one.
        table: Option<String>,
    },
    /// The configuration could not be read.
    #[error("configuration error: {0}")]
    Config(String),
    /// A file-system error outside the engine.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A database server (PostgreSQL, Redis) could not be reached or refused the connection.
    #[error("cannot reach the {backend} server at {target}: {reason}")]
    Unavailable {
        /// Which backend.
        backend: String,
        /// Where we tried to connect (credentials removed).
        target: String,
        /// The cause.
        reason: String,
    },
    /// A migration source could not be reached (connection refused, DNS,
    /// TLS, timeout).
    #[error("cannot reach the {store} source at {url}: {reason}")]
    SourceUnreachable {
        /// Which store (`pgvector`, `qdrant`, …).
        store: String,
        /// Where it was looked for (credentials removed).
        url: String,
        /// The transport's message.
        reason: String,
    },
    /// A migration source refused the credentials.
    #[error("the {store} source at {url} refused the credentials ({status}): {message}")]
    SourceAuth {
        /// Which store.
        store: String,
        /// Where (credentials removed).
        url: String,
        /// HTTP status, or the SQLSTATE for PostgreSQL.
        status: String,
        /// The source's own message.
        message: String,
    },
    /// A migration source answered a request with an error (after retries,
    /// for rate limiting and unavailability).
    #[error("the {store} source failed during {operation}{}: {message}", status_suffix(.status))]
    SourceRequest {
        /// Which store.
        store: String,
        /// What was being done, e.g. `scroll collection "docs"`.
        operation: String,
        /// HTTP status, if the source answered.
        status: Option<u16>,
        /// The source's own message.
        message: String,
    },
    /// A record read from a migration source cannot be migrated (malformed,
    /// wrong dimension, non-finite vector, an unsupported value).
    #[error("bad record in {store} collection `{collection}`{}: {reason}", record_suffix(.record))]
    BadSourceRecord {
        /// Which store.
        store: String,
        /// The source collection or table.
        collection: String,
        /// The record's id, when it could be read.
        record: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A migration checkpoint file is missing, unreadable, or belongs to
    /// another migration.
    #[error("migration checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An append to (or fsync of) the audit log failed. The database then
    /// refuses every read and write rather than serve them unrecorded,
    /// until it is reopened.
    #[error(
        "the audit log could not be written ({path}: {reason}); every operation is refused until the database is reopened"
    )]
    AuditLogFailed {
        /// The file that failed.
        path: String,
        /// Why.
        reason: String,
    },
    /// The storage engine failed.
    #[error("{engine} error during {operation}: {message}")]
    Engine {
        /// Which engine.
        engine: &'static str,
        /// What we were doing.
        operation: String,
        /// The engine's own message.
        message: String,
    },
}

fn table_suffix(table: &Option<String>) -> String {
    table
        .as_ref()
        .map(|t| format!(" on table `{t}`"))
        .unwrap_or_default()
}

fn status_suffix(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

fn record_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" (record `{id}`)"))
        .unwrap_or_default()
}

impl Error {
    /// A short hint on how to fix the error, where there is one.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Error::WrongVectorDimension { .. } => {
                "vectors must have exactly the dimension the table was created with"
            }
            Error::NonFiniteVector { .. } => "replace NaN and infinite values before inserting",
            Error::TableExists { .. } => "pick another name, or drop the table first",
            Error::TableNotFound { .. } => "list the tables, or create this one first",
            Error::BadFilter { .. } => {
                "filters look like {\"field\": value, \"year\": {\"$gte\": 2020}}; \
                 operators: $eq $ne $gt $gte $lt $lte $in $nin $and $or $not $exists"
            }
            Error::BlobTooLarge { .. } => {
                "raise DatabaseConfig::max_blob_bytes or store a smaller blob"
            }
            Error::FeatureDisabled { .. } => "enable the cargo feature named in the message",
            Error::VersionNotFound { .. } => "list the table's versions to see which exist",
            Error::Unavailable { .. } => {
                "check that the server is running and reachable at this address, and the URL's user, password and database"
            }
            Error::PermissionDenied { .. } => {
                "use an API key whose principal holds this permission (--api-key-env VAR), or ask an admin for a grant"
            }
            Error::SourceUnreachable { .. } => {
                "check the source URL (--url, --pg-url) and that the server is running and reachable from here"
            }
            Error::SourceAuth { .. } => {
                "check the credentials: --source-api-key-env names the environment variable holding the API key \
                 (for pgvector, the user and password in --pg-url)"
            }
            Error::SourceRequest { .. } => {
                "the checkpoint is intact: run the migration again with --resume to continue where it stopped"
            }
            Error::BadSourceRecord { .. } => {
                "fix or remove that record in the source, then run again with --resume (the checkpoint is intact)"
            }
            Error::Checkpoint { .. } => {
                "pass --resume to continue the interrupted migration, or delete the checkpoint file to start over"
            }
            Error::AuditLogFailed { .. } => {
                "free disk space or fix the permissions of the audit directory (.hanzo/audit), \
                 then reopen the database; `hanzo-db audit verify` checks the log"
            }
            _ => return None,
        })
    }

    /// True for errors caused by the caller's input rather than the engine or the environment.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Error::Engine { .. }
                | Error::Io { .. }
                | Error::AuditLogFailed { .. }
                | Error::Integrity { .. }
                | Error::Unavailable { .. }
                | Error::SourceRequest { .. }
                | Error::BadSourceRecord { .. }
        )
    }

    pub(crate) fn engine(
        engine: &'static str,
        operation: impl Into<String>,
        err: impl std::fmt::Display,
    ) -> Self {
        Error::Engine {
            engine,
            operation: operation.into(),
            message: err.to_string(),
        }
    }
}
