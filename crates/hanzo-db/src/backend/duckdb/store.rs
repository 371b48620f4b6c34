//! The synchronous DuckDB side.
//!
//! Per hanzo-db table `t`, in DuckDB's `main` schema so that plain SQL sees it:
//! `"t"(id VARCHAR, vector FLOAT[dim], text VARCHAR, image BLOB, audio BLOB,
//! blobs BLOB, metadata JSON, <typed fields>)` with typed fields as VARCHAR,
//! BIGINT, DOUBLE, BOOLEAN, TIMESTAMP (UTC) and VARCHAR[]. hanzo-db's own
//! bookkeeping lives in the `_hanzo` schema: `_hanzo.tables` (name, schema
//! JSON, write counter) and one empty staging table per table that writes
//! pass through (the appender cannot write arrays; the staging table holds
//! the vector as text and one `INSERT … SELECT` casts it to `FLOAT[dim]`).

use ::duckdb::types::{TimeUnit, ToSqlOutput, Value as Duck, ValueRef};
use ::duckdb::{Connection, ToSql, appender_params_from_iter, params, params_from_iter};

use crate::backend::sql::filter::{self, Dialect};
use crate::backend::sql::{
    Candidate, RowData, SqlValue, encode_blobs, quote, typed_value, untyped_metadata, vector_text,
};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::Projection;
use crate::record::MultimodalRecord;
use crate::schema::{DistanceMetric, FieldType, TableSchema};

pub(super) const ENGINE: &str = "duckdb";
const CHUNK: usize = 500;

impl ToSql for SqlValue {
    fn to_sql(&self) -> ::duckdb::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(Duck::Null),
            SqlValue::Int(i) => ToSqlOutput::Owned(Duck::BigInt(*i)),
            SqlValue::Real(f) => ToSqlOutput::Owned(Duck::Double(*f)),
            SqlValue::Bool(b) => ToSqlOutput::Owned(Duck::Boolean(*b)),
            SqlValue::Timestamp(t) => {
                ToSqlOutput::Owned(Duck::Timestamp(TimeUnit::Microsecond, *t))
            }
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            SqlValue::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A DuckDB value as one of ours (string lists become JSON text).
fn from_duck(v: Duck) -> SqlValue {
    match v {
        Duck::Null => SqlValue::Null,
        Duck::Boolean(b) => SqlValue::Bool(b),
        Duck::TinyInt(i) => SqlValue::Int(i.into()),
        Duck::SmallInt(i) => SqlValue::Int(i.into()),
        Duck::Int(i) => SqlValue::Int(i.into()),
        Duck::BigInt(i) => SqlValue::Int(i),
        Duck::UTinyInt(i) => SqlValue::Int(i.into()),
        Duck::USmallInt(i) => SqlValue::Int(i.into()),
        Duck::UInt(i) => SqlValue::Int(i.into()),
        Duck::UBigInt(i) => i64::try_from(i).map_or(SqlValue::Real(i as f64), SqlValue::Int),
        Duck::HugeInt(i) => i64::try_from(i).map_or(SqlValue::Real(i as f64), SqlValue::Int),
        Duck::UHugeInt(i) => i64::try_from(i).map_or(SqlValue::Real(i as f64), SqlValue::Int),
        Duck::Float(f) => SqlValue::Real(f.into()),
        Duck::Double(f) => SqlValue::Real(f),
        Duck::Text(s) | Duck::Enum(s) => SqlValue::Text(s),
        Duck::Blob(b) => SqlValue::Blob(b),
        Duck::Timestamp(unit, t) => SqlValue::Timestamp(unit.to_micros(t)),
        list @ (Duck::List(_) | Duck::Array(_)) => SqlValue::Text(duck_json(list).to_string()),
        other => SqlValue::Text(format!("{other:?}")),
    }
}

/// A DuckDB value as JSON (for string lists and [`sql`] results): blobs as
/// base64, timestamps as RFC 3339, lists as arrays.
pub(super) fn duck_json(v: Duck) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Duck::Null => J::Null,
        Duck::List(items) | Duck::Array(items) => {
            J::Array(items.into_iter().map(duck_json).collect())
        }
        other => match from_duck(other) {
            SqlValue::Null => J::Null,
            SqlValue::Int(i) => i.into(),
            SqlValue::Real(f) => f.into(),
            SqlValue::Bool(b) => b.into(),
            SqlValue::Timestamp(t) => crate::record::format_timestamp(t).into(),
            SqlValue::Text(s) => J::String(s),
            SqlValue::Blob(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b).into()
            }
        },
    }
}

pub(super) fn err(op: &str, e: ::duckdb::Error) -> Error {
    Error::engine(ENGINE, op, e)
}

fn table(name: &str) -> String {
    format!("main.{}", quote(name))
}

fn stage(name: &str) -> String {
    format!("_hanzo.{}", quote(&format!("stage_{name}")))
}

fn column_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String => "VARCHAR",
        FieldType::Int => "BIGINT",
        FieldType::Float => "DOUBLE",
        FieldType::Bool => "BOOLEAN",
        FieldType::Timestamp => "TIMESTAMP",
        FieldType::StringList => "VARCHAR[]",
    }
}

fn stage_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Timestamp => "BIGINT",
        FieldType::StringList => "VARCHAR",
        other => column_type(other),
    }
}

/// Creates hanzo-db's schema and catalog.
pub(super) fn prepare_connection(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE SCHEMA IF NOT EXISTS _hanzo;
         CREATE TABLE IF NOT EXISTS _hanzo.tables (
             name VARCHAR PRIMARY KEY,
             schema VARCHAR NOT NULL,
             version BIGINT NOT NULL DEFAULT 1
         );",
    )
    .map_err(|e| err("create the catalog", e))
}

/// Runs `f` inside a transaction: committed when it succeeds, rolled back otherwise.
fn in_tx<T>(conn: &Connection, op: &str, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| err(op, e))?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(|e| err(op, e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

pub(super) fn load_schema(conn: &Connection, name: &str) -> Result<TableSchema> {
    let mut stmt = conn
        .prepare_cached("SELECT schema FROM _hanzo.tables WHERE name = $1")
        .map_err(|e| err("read the catalog", e))?;
    let mut rows = stmt.query([name]).map_err(|e| err("read the catalog", e))?;
    let Some(row) = rows.next().map_err(|e| err("read the catalog", e))? else {
        return Err(Error::TableNotFound {
            name: name.to_string(),
        });
    };
    let text: String = row.get(0).map_err(|e| err("read the catalog", e))?;
    serde_json::from_str(&text).map_err(|e| Error::BadSchema {
        reason: format!("table `{name}` has an unreadable schema in the catalog: {e}"),
    })
}

pub(super) fn list_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM _hanzo.tables ORDER BY name")
        .map_err(|e| err("list tables", e))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| err("list tables", e))?
        .collect::<::duckdb::Result<Vec<_>>>()
        .map_err(|e| err("list tables", e))?;
    Ok(names)
}

pub(super) fn create_table(conn: &Connection, name: &str, schema: &TableSchema) -> Result<()> {
    in_tx(conn, "create table", |c| {
        if load_schema(c, name).is_ok() {
            return Err(Error::TableExists {
                name: name.to_string(),
            });
        }
        let mut cols = format!(
            "id VARCHAR NOT NULL, vector FLOAT[{}] NOT NULL, text VARCHAR, image BLOB, audio BLOB, blobs BLOB, metadata JSON",
            schema.dimension
        );
        let mut stage_cols = String::from(
            "id VARCHAR, vector VARCHAR, text VARCHAR, image BLOB, audio BLOB, blobs BLOB, metadata VARCHAR",
        );
        for f in &schema.fields {
            cols.push_str(&format!(", {} {}", quote(&f.name), column_type(f.kind)));
            stage_cols.push_str(&format!(", {} {}", quote(&f.name), stage_type(f.kind)));
        }
        c.execute_batch(&format!(
            "CREATE TABLE {} ({cols}); CREATE TABLE {} ({stage_cols});",
            table(name),
            stage(name)
        ))
        .map_err(|e| err(&format!("create table `{name}`"), e))?;
        let text = serde_json::to_string(schema).expect("schema serialises");
        c.execute(
            "INSERT INTO _hanzo.tables (name, schema) VALUES ($1, $2)",
            params![name, text],
        )
        .map_err(|e| err("create table", e))?;
        Ok(())
    })
}

pub(super) fn drop_table(conn: &Connection, name: &str) -> Result<()> {
    load_schema(conn, name)?;
    in_tx(conn, "drop table", |c| {
        c.execute_batch(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
            table(name),
            stage(name)
        ))
        .map_err(|e| err(&format!("drop table `{name}`"), e))?;
        c.execute("DELETE FROM _hanzo.tables WHERE name = $1", [name])
            .map_err(|e| err("drop table", e))?;
        Ok(())
    })
}

pub(super) fn version(conn: &Connection, name: &str) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached("SELECT version FROM _hanzo.tables WHERE name = $1")
        .map_err(|e| err("read version", e))?;
    let mut rows = stmt.query([name]).map_err(|e| err("read version", e))?;
    match rows.next().map_err(|e| err("read version", e))? {
        Some(r) => Ok(r.get::<_, i64>(0).map_err(|e| err("read version", e))? as u64),
        None => Err(Error::TableNotFound {
            name: name.to_string(),
        }),
    }
}

fn bump_version(c: &Connection, name: &str) -> Result<u64> {
    c.execute(
        "UPDATE _hanzo.tables SET version = version + 1 WHERE name = $1",
        [name],
    )
    .map_err(|e| err("bump version", e))?;
    version(c, name)
}

fn stage_values(schema: &TableSchema, r: &MultimodalRecord) -> Vec<SqlValue> {
    let opt_text = |s: Option<String>| s.map_or(SqlValue::Null, SqlValue::Text);
    let opt_blob = |b: Option<Vec<u8>>| b.map_or(SqlValue::Null, SqlValue::Blob);
    let mut v = vec![
        SqlValue::Text(r.id.clone()),
        SqlValue::Text(vector_text(&r.vector)),
        opt_text(r.text.clone()),
        opt_blob(r.image.clone()),
        opt_blob(r.audio.clone()),
        opt_blob(encode_blobs(&r.blobs)),
        opt_text(untyped_metadata(schema, r)),
    ];
    for f in &schema.fields {
        v.push(match typed_value(f.kind, r.metadata.get(&f.name)) {
            SqlValue::Timestamp(t) => SqlValue::Int(t),
            other => other,
        });
    }
    v
}

/// Writes records in one transaction through the staging table; with
/// `replace`, records whose id exists are replaced. Returns the new version.
pub(super) fn write(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    records: &[MultimodalRecord],
    replace: bool,
) -> Result<u64> {
    in_tx(conn, "write", |c| {
        {
            let mut app = c
                .appender_to_db(&format!("stage_{name}"), "_hanzo")
                .map_err(|e| err("stage records", e))?;
            for r in records {
                app.append_row(appender_params_from_iter(stage_values(schema, r)))
                    .map_err(|e| err("stage records", e))?;
            }
            app.flush().map_err(|e| err("stage records", e))?;
        }
        let (t, s) = (table(name), stage(name));
        if replace {
            c.execute(
                &format!("DELETE FROM {t} WHERE id IN (SELECT id FROM {s})"),
                [],
            )
            .map_err(|e| err("upsert", e))?;
        } else {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT id FROM {t} WHERE id IN (SELECT id FROM {s}) LIMIT 1"
                ))
                .map_err(|e| err("insert", e))?;
            let mut rows = stmt.query([]).map_err(|e| err("insert", e))?;
            if let Some(row) = rows.next().map_err(|e| err("insert", e))? {
                let id: String = row.get(0).map_err(|e| err("insert", e))?;
                return Err(Error::BadRecord {
                    id: Some(id),
                    reason: format!(
                        "a record with this id already exists in `{name}`; use upsert to replace it"
                    ),
                });
            }
        }
        let mut select = format!(
            "id, CAST(vector AS FLOAT[{}]), text, image, audio, blobs, CAST(metadata AS JSON)",
            schema.dimension
        );
        for f in &schema.fields {
            let c = quote(&f.name);
            select.push_str(&match f.kind {
                FieldType::Timestamp => format!(", make_timestamp({c})"),
                FieldType::StringList => format!(", CAST(CAST({c} AS JSON) AS VARCHAR[])"),
                _ => format!(", {c}"),
            });
        }
        c.execute(&format!("INSERT INTO {t} SELECT {select} FROM {s}"), [])
            .map_err(|e| err("insert", e))?;
        c.execute(&format!("DELETE FROM {s}"), [])
            .map_err(|e| err("clear staging", e))?;
        bump_version(c, name)
    })
}

fn compiled_where(
    filter: Option<&Filter>,
    schema: &TableSchema,
    first_param: usize,
) -> Result<(String, Vec<SqlValue>)> {
    match filter {
        None => Ok(("true".into(), Vec::new())),
        Some(f) => {
            let c = filter::compile(f, schema, Dialect::DuckDb, "", first_param)?;
            Ok((c.sql, c.params))
        }
    }
}

/// Deletes by ids or by filter in one transaction; returns how many went.
pub(super) fn delete(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    ids: Option<&[String]>,
    filter: Option<&Filter>,
) -> Result<u64> {
    in_tx(conn, "delete", |c| {
        let mut removed = 0usize;
        match (ids, filter) {
            (Some(ids), _) => {
                for chunk in ids.chunks(CHUNK) {
                    let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    removed += c
                        .execute(
                            &format!(
                                "DELETE FROM {} WHERE id IN ({})",
                                table(name),
                                marks.join(", ")
                            ),
                            params_from_iter(chunk),
                        )
                        .map_err(|e| err("delete", e))?;
                }
            }
            (None, Some(f)) => {
                let (cond, params) = compiled_where(Some(f), schema, 1)?;
                removed = c
                    .execute(
                        &format!("DELETE FROM {} WHERE {cond}", table(name)),
                        params_from_iter(params),
                    )
                    .map_err(|e| err("delete", e))?;
            }
            (None, None) => {}
        }
        if removed > 0 {
            bump_version(c, name)?;
        }
        Ok(removed as u64)
    })
}

/// Select list with fixed positions: `rowid, id, text, metadata, image,
/// audio, blobs, typed…, vector`.
fn select_list(schema: &TableSchema, p: &Projection, with_vector: bool) -> String {
    let mut cols: Vec<String> = ["rowid", "id", "text", "CAST(metadata AS VARCHAR)"]
        .map(String::from)
        .to_vec();
    if p.blobs {
        cols.extend(["image", "audio", "blobs"].map(String::from));
    } else {
        cols.extend(["NULL::BLOB", "NULL::BLOB", "NULL::BLOB"].map(String::from));
    }
    for f in &schema.fields {
        cols.push(quote(&f.name));
    }
    cols.push(if with_vector { "vector" } else { "NULL" }.into());
    cols.join(", ")
}

fn read_rows(
    schema: &TableSchema,
    rows: &mut ::duckdb::Rows<'_>,
    op: &str,
) -> Result<Vec<(i64, RowData)>> {
    let n = schema.fields.len();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| err(op, e))? {
        let get = |i: usize| -> Result<SqlValue> {
            row.get::<_, Duck>(i).map(from_duck).map_err(|e| err(op, e))
        };
        let text = |v: SqlValue| match v {
            SqlValue::Text(s) => Some(s),
            _ => None,
        };
        let blob = |v: SqlValue| match v {
            SqlValue::Blob(b) => Some(b),
            _ => None,
        };
        let key = match get(0)? {
            SqlValue::Int(k) => k,
            _ => 0,
        };
        let mut d = RowData {
            id: text(get(1)?).unwrap_or_default(),
            text: text(get(2)?),
            metadata: text(get(3)?),
            image: blob(get(4)?),
            audio: blob(get(5)?),
            blobs: blob(get(6)?),
            ..Default::default()
        };
        for i in 0..n {
            d.typed.push(get(7 + i)?);
        }
        if let Duck::Array(items) | Duck::List(items) =
            row.get::<_, Duck>(7 + n).map_err(|e| err(op, e))?
        {
            d.vector = Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        Duck::Float(f) => f,
                        Duck::Double(f) => f as f32,
                        _ => f32::NAN,
                    })
                    .collect(),
            );
        }
        out.push((key, d));
    }
    Ok(out)
}

/// Records by id, in the order asked.
pub(super) fn get(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    ids: &[String],
    p: &Projection,
) -> Result<Vec<MultimodalRecord>> {
    let mut by_id = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {} FROM {} WHERE id IN ({})",
                select_list(schema, p, p.vector),
                table(name),
                marks.join(", ")
            ))
            .map_err(|e| err("get", e))?;
        let mut rows = stmt
            .query(params_from_iter(chunk))
            .map_err(|e| err("get", e))?;
        for (_, d) in read_rows(schema, &mut rows, "get")? {
            by_id.insert(d.id.clone(), d);
        }
    }
    ids.iter()
        .filter_map(|id| by_id.remove(id))
        .map(|d| d.into_record(schema, p))
        .collect()
}

/// One page of a scan: rows with `rowid > after`, in `rowid` order.
pub(super) fn scan_page(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    p: &Projection,
    after: i64,
    limit: usize,
) -> Result<(Vec<MultimodalRecord>, Option<i64>)> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {} FROM {} WHERE rowid > $1 ORDER BY rowid LIMIT $2",
            select_list(schema, p, p.vector),
            table(name)
        ))
        .map_err(|e| err("scan", e))?;
    let mut rows = stmt
        .query(params![after, limit as i64])
        .map_err(|e| err("scan", e))?;
    let rows = read_rows(schema, &mut rows, "scan")?;
    let last = rows.last().map(|(k, _)| *k);
    let records = rows
        .into_iter()
        .map(|(_, d)| d.into_record(schema, p))
        .collect::<Result<Vec<_>>>()?;
    Ok((records, last))
}

pub(super) fn count(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    filter: Option<&Filter>,
) -> Result<u64> {
    let (cond, params) = compiled_where(filter, schema, 1)?;
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {} WHERE {cond}", table(name)),
            params_from_iter(params),
            |r| r.get(0),
        )
        .map_err(|e| err("count", e))?;
    Ok(n as u64)
}

/// Exact search in SQL with DuckDB's array distance functions, filter in
/// the `WHERE` clause (so `k` results come back whenever `k` rows match);
/// the winners' distances are then recomputed with
/// [`DistanceMetric::distance`] and ties broken by id.
#[allow(clippy::too_many_arguments)]
pub(super) fn search(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    query: &[f32],
    k: usize,
    metric: DistanceMetric,
    filter: Option<&Filter>,
    p: &Projection,
) -> Result<Vec<(MultimodalRecord, f32)>> {
    let q = format!("CAST($1 AS FLOAT[{}])", schema.dimension);
    let dist = match metric {
        DistanceMetric::L2 => format!("array_distance(vector, {q})"),
        DistanceMetric::Cosine => format!("array_cosine_distance(vector, {q})"),
        DistanceMetric::Dot => format!("-array_inner_product(vector, {q})"),
    };
    let (cond, mut params) = compiled_where(filter, schema, 2)?;
    params.insert(0, SqlValue::Text(vector_text(query)));
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {} FROM {} WHERE {cond} ORDER BY {dist}, id LIMIT {k}",
            select_list(schema, p, true),
            table(name)
        ))
        .map_err(|e| err("search", e))?;
    let mut rows = stmt
        .query(params_from_iter(params))
        .map_err(|e| err("search", e))?;
    let mut hits: Vec<(Candidate, RowData)> = read_rows(schema, &mut rows, "search")?
        .into_iter()
        .map(|(key, d)| {
            let c = Candidate {
                distance: metric.distance(query, d.vector.as_deref().unwrap_or_default()),
                id: d.id.clone(),
                key,
            };
            (c, d)
        })
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    hits.into_iter()
        .map(|(c, d)| Ok((d.into_record(schema, p)?, c.distance)))
        .collect()
}

/// Writes a table (or any query over it) to a Parquet file with DuckDB's COPY.
pub(super) fn export_parquet(conn: &Connection, name: &str, path: &std::path::Path) -> Result<u64> {
    load_schema(conn, name)?;
    let file = path
        .to_str()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a UTF-8 path", path.display())))?;
    conn.execute(
        &format!(
            "COPY (SELECT * FROM {}) TO '{}' (FORMAT parquet)",
            table(name),
            file.replace('\'', "''")
        ),
        [],
    )
    .map(|n| n as u64)
    .map_err(|e| {
        let msg = e.to_string();
        if msg.to_lowercase().contains("parquet") && msg.contains("extension") {
            Error::Unsupported {
                feature: format!(
                    "Parquet export (this libduckdb lacks the parquet extension: {msg})"
                ),
                backend: ENGINE.into(),
            }
        } else {
            err("export to Parquet", e)
        }
    })
}

/// Runs any SQL and returns its rows as JSON objects keyed by column name.
pub(super) fn sql(
    conn: &Connection,
    query: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut stmt = conn.prepare(query).map_err(|e| err("sql", e))?;
    let mut rows = stmt.query([]).map_err(|e| err("sql", e))?;
    let names = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| err("sql", e))? {
        let mut obj = serde_json::Map::new();
        for (i, n) in names.iter().enumerate() {
            let v = row.get::<_, Duck>(i).map_err(|e| err("sql", e))?;
            obj.insert(n.clone(), duck_json(v));
        }
        out.push(obj);
    }
    Ok(out)
}

/// Bytes of the DuckDB file and its write-ahead log (DuckDB does not report
/// sizes per table).
pub(super) fn file_bytes(file: &std::path::Path) -> u64 {
    let wal = file.with_extension("duckdb.wal");
    [file.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
