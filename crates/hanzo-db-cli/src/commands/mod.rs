//! One module per group of commands; `run` opens the database and dispatches.

mod access;
mod admin;
mod data;
mod demo;
mod migrate;
mod search;

use anyhow::Context;
use hanzo_db::{Database, DatabaseBackend, DatabaseConfig, DistanceMetric, FieldType, TableSchema};

use crate::args::{Cli, Command, KeyCmd, RoleCmd, SecurityCmd};
use crate::output::Out;

/// Everything a command needs.
pub struct Ctx {
    pub db: Database,
    pub out: Out,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Out {
        json: cli.json,
        quiet: cli.quiet,
    };
    let mut config = match &cli.config {
        Some(p) => DatabaseConfig::from_toml_file(p)?,
        None => DatabaseConfig::default(),
    };
    // --db (or HANZO_DB_PATH) wins over the file unless left at its default.
    if cli.config.is_none() || cli.db.as_os_str() != "./hanzo-data" {
        config.path = cli.db.clone();
    }
    if cli.no_encryption {
        config.security.encryption = false;
    }
    if let Some(var) = &cli.passphrase_env {
        config.security.key = hanzo_db::KeyConfig::Passphrase { env: var.clone() };
    }
    if let Some(path) = &cli.key_file {
        config.security.key = hanzo_db::KeyConfig::KeyFile { path: path.clone() };
    }
    let backend: Option<DatabaseBackend> = cli
        .backend
        .as_deref()
        .map(str::parse::<DatabaseBackend>)
        .transpose()?;
    if let Some(url) = &cli.pg_url {
        config.postgres.url = Some(url.clone());
    }
    // `bench --backend X` measures X in its own databases; the handle it is
    // given only supplies the path and output settings.
    let measured = match &cli.command {
        Command::Bench(_) => backend.unwrap_or(config.workloads.vectors),
        _ => {
            if let Some(b) = backend {
                config.workloads.vectors = b;
            }
            config.workloads.vectors
        }
    };
    if matches!(cli.command, Command::Bench(_)) {
        config.workloads.vectors = DatabaseBackend::LanceDb;
    }
    // The hot in-memory index pays off in a long-lived process; a one-shot
    // command that only writes or reads by id would just start building it.
    if !matches!(
        cli.command,
        Command::Search(_) | Command::Stats { .. } | Command::Demo
    ) {
        config.hot.enabled = false;
    }
    let mut db = hanzo_db::connect(config.path.clone())
        .config(config)
        .execute()
        .await?;
    if let Some(var) = &cli.api_key_env {
        let key = std::env::var(var)
            .with_context(|| format!("--api-key-env {var}: the variable is not set"))?;
        db = db.with_principal(key).await?;
    }
    let ctx = Ctx { db, out };
    match cli.command {
        Command::Demo => demo::run(&ctx).await,
        Command::Tables => admin::tables(&ctx).await,
        Command::CreateTable(a) => admin::create_table(&ctx, a).await,
        Command::DropTable { name } => admin::drop_table(&ctx, &name).await,
        Command::Import(a) => data::import(&ctx, a, false).await,
        Command::Upsert(a) => data::import(&ctx, a, true).await,
        Command::Export(a) => data::export(&ctx, a).await,
        Command::Get(a) => data::get(&ctx, a).await,
        Command::Delete(a) => data::delete(&ctx, a).await,
        Command::Search(a) => search::run(&ctx, a).await,
        Command::Index(a) => admin::index(&ctx, a).await,
        Command::Versions { name } => admin::versions(&ctx, &name).await,
        Command::Restore { name, version } => admin::restore(&ctx, &name, version).await,
        Command::Tag { name, version, tag } => admin::tag(&ctx, &name, version, &tag).await,
        Command::Compact { name } => admin::compact(&ctx, &name).await,
        Command::Stats { name } => admin::stats(&ctx, name.as_deref()).await,
        Command::Bench(a) => crate::bench::run(&ctx, a, measured).await,
        Command::Principal(a) => access::principal(&ctx, a),
        Command::Grant(a) => access::grant(&ctx, a),
        Command::Revoke(a) => access::revoke(&ctx, a),
        Command::Role(RoleCmd::Define { name, ops }) => access::define_role(&ctx, &name, &ops),
        Command::Audit(a) => access::audit(&ctx, a),
        Command::Migrate(a) => migrate::run(&ctx, a).await,
        Command::Security(SecurityCmd::Status) => admin::security_status(&ctx),
        Command::Key(KeyCmd::Rotate {
            data_key,
            new_passphrase_env,
            new_key_file,
        }) => admin::rotate_key(&ctx, data_key, new_passphrase_env, new_key_file),
    }
}

/// Builds a schema from `--dim`, `--metric` and `--field NAME:TYPE` options.
pub fn schema_from_args(
    dim: usize,
    metric: &str,
    fields: &[String],
) -> anyhow::Result<TableSchema> {
    let metric: DistanceMetric = metric.parse()?;
    let mut schema = TableSchema::new(dim).metric(metric);
    for f in fields {
        let (name, kind) = f
            .split_once(':')
            .with_context(|| format!("--field `{f}` must look like NAME:TYPE, e.g. year:int"))?;
        let kind: FieldType = kind.parse()?;
        schema = schema.field(name, kind);
    }
    schema.validate()?;
    Ok(schema)
}
