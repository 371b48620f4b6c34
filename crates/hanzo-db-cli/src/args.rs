//! Command-line arguments (parsed by clap, then validated into library types).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hanzo-db: an embedded, multimodal vector store for local AI agents.
#[derive(Debug, Parser)]
#[command(name = "hanzo-db", version, about)]
pub struct Cli {
    /// Database directory.
    #[arg(
        long,
        global = true,
        env = "HANZO_DB_PATH",
        default_value = "./hanzo-data"
    )]
    pub db: PathBuf,
    /// Configuration file (TOML); command-line options win over it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars or chatter.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Read the passphrase (the key-encryption key) from this environment variable.
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "key_file")]
    pub passphrase_env: Option<String>,
    /// Key file holding the 32-byte key-encryption key (default: a generated
    /// file under ~/.config/hanzo-db/keys, or $HANZO_DB_KEY_DIR).
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Store data unencrypted (an explicit opt-out; `security status` reports it).
    #[arg(long, global = true)]
    pub no_encryption: bool,
    /// Storage engine (default: the config file's `[workloads] vectors`, else
    /// lancedb). sqlite and duckdb keep one unencrypted file: use them with
    /// --no-encryption. For `bench`: the engine measured.
    #[arg(
        long,
        global = true,
        env = "HANZO_DB_BACKEND",
        value_name = "ENGINE",
        value_parser = ["lancedb", "sqlite", "duckdb", "postgres"]
    )]
    pub backend: Option<String>,
    /// PostgreSQL connection URL (for --backend postgres).
    #[arg(long, global = true, env = "HANZO_DB_PG_URL", value_name = "URL")]
    pub pg_url: Option<String>,
    /// Act as the principal whose API key is in this environment variable
    /// (needed for every command once access control is on).
    #[arg(long, global = true, value_name = "VAR")]
    pub api_key_env: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a database, insert sample multimodal records, index them and search.
    Demo,
    /// List tables.
    Tables,
    /// Create a table.
    CreateTable(CreateTable),
    /// Drop a table and its data.
    DropTable {
        /// Table name.
        name: String,
    },
    /// Import records from a file (JSONL, Parquet, CSV or .npy), streaming.
    Import(Import),
    /// Export a table to JSONL or Parquet.
    Export(Export),
    /// Insert or replace records from a file, by id.
    Upsert(Import),
    /// Search by vector, text, or both (hybrid).
    Search(Search),
    /// Fetch a record by id.
    Get(Get),
    /// Delete records by id or filter.
    Delete(Delete),
    /// Build and inspect indexes.
    #[command(subcommand)]
    Index(IndexCmd),
    /// List a table's versions.
    Versions {
        /// Table name.
        name: String,
    },
    /// Make a past version the latest.
    Restore {
        /// Table name.
        name: String,
        /// Version to restore.
        version: u64,
    },
    /// Name a version.
    Tag {
        /// Table name.
        name: String,
        /// Version to tag.
        version: u64,
        /// Tag name.
        tag: String,
    },
    /// Compact files, fold new rows into indexes, prune old versions.
    Compact {
        /// Table name.
        name: String,
    },
    /// Encryption and confidential-computing status.
    #[command(subcommand)]
    Security(SecurityCmd),
    /// Key management.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Measure speed, recall, storage and memory (the project's benchmark).
    Bench(Bench),
    /// Principals (users, services, agents) and their API keys.
    #[command(subcommand)]
    Principal(PrincipalCmd),
    /// Give a principal a role or permissions, on one table or all.
    Grant(GrantArgs),
    /// Take grants away from a principal.
    Revoke(GrantArgs),
    /// Custom roles.
    #[command(subcommand)]
    Role(RoleCmd),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Move a whole store in from pgvector, Qdrant, Pinecone, Weaviate or
    /// Chroma: resumable, verified, with progress.
    Migrate(Migrate),
    /// Rows, size on disk, versions, index coverage, fragments.
    Stats {
        /// Table name (all tables when left out).
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateTable {
    /// Table name.
    pub name: String,
    /// Vector dimension.
    #[arg(long)]
    pub dim: usize,
    /// Distance metric.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// Typed metadata field, NAME:TYPE (string, int, float, bool, timestamp, string_list).
    #[arg(long = "field")]
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Parquet,
    Csv,
    Npy,
}

#[derive(Debug, Args)]
pub struct Import {
    /// Table name.
    pub name: String,
    /// Input file.
    pub file: PathBuf,
    /// Input format (guessed from the extension when left out).
    #[arg(long)]
    pub format: Option<Format>,
    /// Records per committed batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Create the table first (needs --dim).
    #[arg(long)]
    pub create: bool,
    /// Dimension for --create (taken from the first record when left out).
    #[arg(long)]
    pub dim: Option<usize>,
    /// Metric for --create.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// Typed field for --create, NAME:TYPE.
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// Ids for .npy rows, one per line (row numbers otherwise).
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Count and report bad records instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
}

#[derive(Debug, Args)]
pub struct Export {
    /// Table name.
    pub name: String,
    /// Output file.
    pub file: PathBuf,
    /// Output format (from the extension when left out).
    #[arg(long)]
    pub format: Option<Format>,
    /// Export the table as of this version.
    #[arg(long)]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Search {
    /// Table name.
    pub name: String,
    /// Query vector as a JSON array.
    #[arg(long)]
    pub vector: Option<String>,
    /// Query vector from a file (JSON array, or .npy with one row).
    #[arg(long)]
    pub vector_file: Option<PathBuf>,
    /// Full-text query (with a vector too: hybrid search).
    #[arg(long)]
    pub text: Option<String>,
    /// Number of results.
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,
    /// Metadata filter (JSON).
    #[arg(long)]
    pub filter: Option<String>,
    /// IVF partitions to probe.
    #[arg(long)]
    pub nprobes: Option<usize>,
    /// Re-rank factor.
    #[arg(long)]
    pub refine: Option<u32>,
    /// Search at this version.
    #[arg(long)]
    pub version: Option<u64>,
    /// Metadata keys to return (comma-separated); add `vector` or `blobs` to return those.
    #[arg(long, value_delimiter = ',')]
    pub select: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct Get {
    /// Table name.
    pub name: String,
    /// Record id.
    pub id: String,
    /// Include blobs (as base64 in JSON, or as files with --out-dir).
    #[arg(long)]
    pub with_blobs: bool,
    /// Write image, audio and blobs to files in this directory.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Read at this version.
    #[arg(long)]
    pub version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Table name.
    pub name: String,
    /// Ids to delete.
    #[arg(
        long = "id",
        conflicts_with = "filter",
        required_unless_present = "filter"
    )]
    pub ids: Vec<String>,
    /// Delete every record the filter matches (JSON).
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum IndexCmd {
    /// Build an index.
    Create {
        /// Table name.
        name: String,
        /// Index type.
        #[arg(long = "type", default_value = "auto")]
        kind: IndexKind,
        /// IVF partitions.
        #[arg(long)]
        nlist: Option<u32>,
        /// PQ sub-vectors.
        #[arg(long)]
        pq_dims: Option<u32>,
        /// Column for a scalar index.
        #[arg(long)]
        column: Option<String>,
    },
    /// List indexes.
    List {
        /// Table name.
        name: String,
    },
    /// Index coverage (indexed and unindexed rows).
    Stats {
        /// Table name.
        name: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum IndexKind {
    Auto,
    #[value(name = "ivf_pq", alias = "ivf-pq")]
    IvfPq,
    Hnsw,
    Fts,
    Scalar,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BenchIndex {
    Auto,
    #[value(name = "ivf_pq", alias = "ivf-pq")]
    IvfPq,
    Hnsw,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Encrypted {
    On,
    Off,
    Both,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Number of vectors.
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    /// Dimension (synthetic data).
    #[arg(long, default_value_t = 768)]
    pub dim: usize,
    /// Number of queries timed.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Queries whose exact neighbours are computed for recall.
    #[arg(long, default_value_t = 100)]
    pub gt_queries: usize,
    /// Neighbours per query.
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,
    /// Vector index.
    #[arg(long, default_value = "auto")]
    pub index: BenchIndex,
    /// Distance metric of the table (and of the exact ground truth): l2, cosine or dot.
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// IVF partitions (ivf_pq).
    #[arg(long)]
    pub nlist: Option<u32>,
    /// PQ sub-vectors (ivf_pq).
    #[arg(long)]
    pub pq_dims: Option<u32>,
    /// Partitions probed per query.
    #[arg(long)]
    pub nprobes: Option<usize>,
    /// Re-rank factor.
    #[arg(long)]
    pub refine: Option<u32>,
    /// Vectors from a float32 .npy or .fvecs file instead of synthetic data.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Queries from this file (else rows held out of --dataset).
    #[arg(long)]
    pub query_file: Option<PathBuf>,
    /// Bulk-insert batch size.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// How long each single-record insert run lasts, in ms.
    #[arg(long, default_value_t = 3000)]
    pub single_ms: u64,
    /// Encryption at rest: on, off or both.
    #[arg(long, default_value = "on")]
    pub encrypted: Encrypted,
    /// Random seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep the benchmark database afterwards (with its exact ground truth,
    /// for `--reuse`).
    #[arg(long)]
    pub keep: bool,
    /// Reuse the database a `--keep` run with the same data parameters left:
    /// skip the bulk insert, index build and single-record inserts, and time
    /// searches and the reopen again (for sweeps of --nprobes, --refine or
    /// `[hot]` settings). Implies --keep.
    #[arg(long)]
    pub reuse: bool,
    /// Audit log: on, off or both (both runs the whole bench twice).
    #[arg(long, default_value = "off")]
    pub audit: Encrypted,
    /// Turn the hot in-memory index off (measure LanceDB alone).
    #[arg(long)]
    pub no_hot: bool,
    /// Write every timed query's latency, in the order run, to this CSV file
    /// (phase, query, ms since the phase began, latency in ms): to see
    /// whether slow queries cluster in time or are spread out.
    #[arg(long)]
    pub latencies: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SecurityCmd {
    /// Requested, detected and effective tier, evidence, cipher, key provider.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Rotate the key-encryption key (rewraps data keys, no data rewritten),
    /// or with --data-key start a new data key for new writes.
    Rotate {
        /// Start a new data key instead (old files stay readable; compaction re-encrypts them).
        #[arg(long)]
        data_key: bool,
        /// New key-encryption key: a passphrase from this environment variable.
        #[arg(long, value_name = "VAR", conflicts_with = "new_key_file")]
        new_passphrase_env: Option<String>,
        /// New key-encryption key: this key file (created if missing).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCmd {
    /// Create a principal with a role and print its API key (shown once).
    /// The first principal must be an admin on every table; it turns access
    /// control and the audit log on.
    Create {
        /// Name (letters, digits, `_`).
        name: String,
        /// Role: admin, writer, reader or a custom role.
        #[arg(long)]
        role: String,
        /// Limit the role to this table (every table when left out).
        #[arg(long)]
        table: Option<String>,
        /// Row-level scope: a filter (JSON) ANDed into every query and write.
        #[arg(long)]
        scope: Option<String>,
        /// The key expires after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List principals, grants and key ids.
    List,
    /// Revoke a principal (all its keys), or one key with --key.
    Revoke {
        /// Principal name.
        #[arg(required_unless_present = "key")]
        name: Option<String>,
        /// Revoke only this API key id.
        #[arg(long, conflicts_with = "name")]
        key: Option<String>,
    },
    /// Issue another API key for a principal.
    Key {
        /// Principal name.
        name: String,
        /// The key expires after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// Principal name.
    pub principal: String,
    /// Role to grant or revoke.
    #[arg(long)]
    pub role: Option<String>,
    /// Permissions, comma-separated: read, search, write, delete, create,
    /// drop, index, restore, compact, keys, audit, admin.
    #[arg(long)]
    pub ops: Option<String>,
    /// The table (every table when left out).
    #[arg(long)]
    pub table: Option<String>,
    /// Row-level scope (grant only): a filter (JSON).
    #[arg(long)]
    pub scope: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Define (or redefine) a custom role.
    Define {
        /// Role name.
        name: String,
        /// Its permissions, comma-separated.
        #[arg(long)]
        ops: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the whole log; exits with status 3 on any tampering.
    Verify,
    /// The latest entries.
    Tail {
        /// How many.
        #[arg(long, short, default_value_t = 20)]
        n: usize,
        /// Only entries at or after this time (RFC 3339 or a date).
        #[arg(long)]
        since: Option<String>,
    },
    /// Every entry (JSON lines on stdout, or a file).
    Export {
        /// Only entries at or after this time (RFC 3339 or a date).
        #[arg(long)]
        since: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Turn the audit log on for this database (it stays on).
    Enable,
    /// Drop segments older than the given number of days now.
    Retain {
        /// Age in days.
        #[arg(long)]
        days: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum MigrateStore {
    Pgvector,
    Qdrant,
    Pinecone,
    Weaviate,
    Chroma,
}

#[derive(Debug, Args)]
pub struct Migrate {
    /// The store to migrate from.
    pub store: MigrateStore,
    /// Base URL of the store (Qdrant, Weaviate, Chroma; the index host for Pinecone).
    #[arg(long)]
    pub url: Option<String>,
    /// Environment variable holding the source store's API key or token.
    /// (`--api-key-env`, on every command, is hanzo-db's own principal.)
    #[arg(long, value_name = "VAR")]
    pub source_api_key_env: Option<String>,
    /// PostgreSQL connection string (pgvector), e.g. postgres://user:pw@host:5432/db.
    #[arg(long, value_name = "URL")]
    pub pg_url: Option<String>,
    /// PostgreSQL schema to read (pgvector).
    #[arg(long, default_value = "public")]
    pub pg_schema: String,
    /// Chroma tenant; for Weaviate, the one tenant to migrate.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Chroma database.
    #[arg(long)]
    pub database: Option<String>,
    /// The one Pinecone namespace to migrate (`__default__` for the default one).
    #[arg(long)]
    pub namespace: Option<String>,
    /// SRC=DST: migrate source collection SRC into table DST (repeatable;
    /// every collection, each into a table of its name, when left out).
    #[arg(long = "table", value_name = "SRC=DST")]
    pub tables: Vec<String>,
    /// Continue an interrupted migration from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Show the plan (collections, dimensions, metrics, counts, target schemas) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Records per page and per committed batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Checkpoint file (default: beside the database, <db>.migrate-<store>.json).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Metric of the target tables, whatever the source says (l2, cosine, dot).
    #[arg(long)]
    pub metric: Option<String>,
    /// Metadata key (column, payload field, property) moved into the record's text.
    #[arg(long, value_name = "KEY")]
    pub text_field: Option<String>,
    /// bytea column holding the image (pgvector).
    #[arg(long, value_name = "COL")]
    pub image_column: Option<String>,
    /// bytea column holding the audio (pgvector).
    #[arg(long, value_name = "COL")]
    pub audio_column: Option<String>,
    /// bytea column stored as a blob of this MIME type (pgvector; repeatable).
    #[arg(long = "blob-column", value_name = "COL=MIME")]
    pub blob_columns: Vec<String>,
    /// Records compared field by field per table at the end.
    #[arg(long, default_value_t = 100)]
    pub sample: usize,
    /// Skip the end-of-run verification.
    #[arg(long)]
    pub no_verify: bool,
}
