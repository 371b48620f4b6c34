//! The synchronous SQLite side: every function takes the connection, runs
//! inside one transaction where it writes, and maps SQLite errors into ours.
//!
//! Per hanzo-db table `t`:
//! - `"t"`: `_row INTEGER PRIMARY KEY`, `id TEXT UNIQUE`, `text`, `image`,
//!   `audio`, `blobs` (encoded), `metadata` (JSON text), one column per typed
//!   field (timestamps as integer microseconds, string lists as JSON arrays);
//! - `"t__vec"`: a sqlite-vec `vec0` table, `embedding float[dim]` with the
//!   table's metric (`l2`, or `cosine`), its `rowid` equal to `_row`;
//! - a row in `_hanzo_tables` (name, schema JSON, write counter).

use rusqlite::types::{ToSqlOutput, Value as Sqlite};
use rusqlite::{Connection, ErrorCode, OptionalExtension, ToSql, params, params_from_iter};

use crate::backend::sql::filter::{self, Dialect};
use crate::backend::sql::{
    Candidate, RowData, SqlValue, TopK, encode_blobs, quote, typed_value, untyped_metadata,
    vector_bytes, vector_from_bytes,
};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::query::Projection;
use crate::record::MultimodalRecord;
use crate::schema::{DistanceMetric, FieldType, TableSchema};

pub(super) const ENGINE: &str = "sqlite";
/// Largest `k` sqlite-vec's KNN query accepts; larger searches scan exactly.
const VEC0_K_MAX: usize = 4096;
/// Ids bound per `IN (...)` list.
const CHUNK: usize = 500;

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(Sqlite::Null),
            SqlValue::Int(i) | SqlValue::Timestamp(i) => ToSqlOutput::Owned(Sqlite::Integer(*i)),
            SqlValue::Bool(b) => ToSqlOutput::Owned(Sqlite::Integer(i64::from(*b))),
            SqlValue::Real(f) => ToSqlOutput::Owned(Sqlite::Real(*f)),
            SqlValue::Text(s) => {
                ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(s.as_bytes()))
            }
            SqlValue::Blob(b) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(b)),
        })
    }
}

fn from_sqlite(v: Sqlite) -> SqlValue {
    match v {
        Sqlite::Null => SqlValue::Null,
        Sqlite::Integer(i) => SqlValue::Int(i),
        Sqlite::Real(f) => SqlValue::Real(f),
        Sqlite::Text(s) => SqlValue::Text(s),
        Sqlite::Blob(b) => SqlValue::Blob(b),
    }
}

/// Maps a SQLite error, naming what we were doing.
pub(super) fn err(op: &str, e: rusqlite::Error) -> Error {
    Error::engine(ENGINE, op, e)
}

fn vec_table(name: &str) -> String {
    quote(&format!("{name}__vec"))
}

fn column_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String | FieldType::StringList => "TEXT",
        FieldType::Int | FieldType::Bool | FieldType::Timestamp => "INTEGER",
        FieldType::Float => "REAL",
    }
}

/// Sets up a fresh connection: WAL, full sync (a write is durable when it
/// returns), a busy timeout, and the catalog.
pub(super) fn prepare_connection(conn: &Connection) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| err("enable WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::engine(
            ENGINE,
            "enable WAL",
            format!("journal mode is `{mode}`"),
        ));
    }
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| err("set busy timeout", e))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS _hanzo_tables (
             name TEXT PRIMARY KEY,
             schema TEXT NOT NULL,
             version INTEGER NOT NULL DEFAULT 1
         );",
    )
    .map_err(|e| err("create the catalog", e))
}

/// The schema of `name` from the catalog.
pub(super) fn load_schema(conn: &Connection, name: &str) -> Result<TableSchema> {
    let text: Option<String> = conn
        .query_row(
            "SELECT schema FROM _hanzo_tables WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| err("read the catalog", e))?;
    let text = text.ok_or_else(|| Error::TableNotFound {
        name: name.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::BadSchema {
        reason: format!("table `{name}` has an unreadable schema in the catalog: {e}"),
    })
}

pub(super) fn list_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM _hanzo_tables ORDER BY name")
        .map_err(|e| err("list tables", e))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| err("list tables", e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| err("list tables", e))?;
    Ok(names)
}

pub(super) fn create_table(conn: &mut Connection, name: &str, schema: &TableSchema) -> Result<()> {
    let tx = conn.transaction().map_err(|e| err("create table", e))?;
    let exists: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM _hanzo_tables WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )
        .map_err(|e| err("create table", e))?;
    if exists {
        return Err(Error::TableExists {
            name: name.to_string(),
        });
    }
    let mut cols = String::from(
        "_row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT, image BLOB, audio BLOB, blobs BLOB, metadata TEXT",
    );
    for f in &schema.fields {
        cols.push_str(&format!(", {} {}", quote(&f.name), column_type(f.kind)));
    }
    // vec0 knows l2 and cosine; dot-product searches scan exactly (see `search`).
    let metric = match schema.metric {
        DistanceMetric::Cosine => "cosine",
        DistanceMetric::L2 | DistanceMetric::Dot => "l2",
    };
    tx.execute_batch(&format!(
        "CREATE TABLE {t} ({cols});
         CREATE VIRTUAL TABLE {v} USING vec0(embedding float[{dim}] distance_metric={metric});",
        t = quote(name),
        v = vec_table(name),
        dim = schema.dimension,
    ))
    .map_err(|e| err(&format!("create table `{name}`"), e))?;
    let text = serde_json::to_string(schema).expect("schema serialises");
    tx.execute(
        "INSERT INTO _hanzo_tables (name, schema) VALUES (?1, ?2)",
        params![name, text],
    )
    .map_err(|e| err("create table", e))?;
    tx.commit().map_err(|e| err("create table", e))
}

pub(super) fn drop_table(conn: &mut Connection, name: &str) -> Result<()> {
    load_schema(conn, name)?;
    let tx = conn.transaction().map_err(|e| err("drop table", e))?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {v}; DROP TABLE IF EXISTS {t};",
        v = vec_table(name),
        t = quote(name)
    ))
    .map_err(|e| err(&format!("drop table `{name}`"), e))?;
    tx.execute("DELETE FROM _hanzo_tables WHERE name = ?1", [name])
        .map_err(|e| err("drop table", e))?;
    tx.commit().map_err(|e| err("drop table", e))
}

/// The table's write counter (its "version": it grows with every write).
pub(super) fn version(conn: &Connection, name: &str) -> Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT version FROM _hanzo_tables WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| err("read version", e))?;
    v.map(|v| v as u64).ok_or_else(|| Error::TableNotFound {
        name: name.to_string(),
    })
}

fn bump_version(tx: &Connection, name: &str) -> Result<u64> {
    tx.query_row(
        "UPDATE _hanzo_tables SET version = version + 1 WHERE name = ?1 RETURNING version",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u64)
    .map_err(|e| err("bump version", e))
}

fn insert_sql(name: &str, schema: &TableSchema) -> String {
    let mut cols = vec!["id", "text", "image", "audio", "blobs", "metadata"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    cols.extend(schema.fields.iter().map(|f| quote(&f.name)));
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(name),
        cols.join(", "),
        marks.join(", ")
    )
}

fn record_values(schema: &TableSchema, r: &MultimodalRecord) -> Vec<SqlValue> {
    let opt_text = |s: &Option<String>| s.clone().map_or(SqlValue::Null, SqlValue::Text);
    let opt_blob = |b: Option<Vec<u8>>| b.map_or(SqlValue::Null, SqlValue::Blob);
    let mut v = vec![
        SqlValue::Text(r.id.clone()),
        opt_text(&r.text),
        opt_blob(r.image.clone()),
        opt_blob(r.audio.clone()),
        opt_blob(encode_blobs(&r.blobs)),
        opt_text(&untyped_metadata(schema, r)),
    ];
    for f in &schema.fields {
        v.push(typed_value(f.kind, r.metadata.get(&f.name)));
    }
    v
}

/// Writes records in one transaction; with `replace`, records whose id
/// exists are replaced. Returns the new version.
pub(super) fn write(
    conn: &mut Connection,
    name: &str,
    schema: &TableSchema,
    records: &[MultimodalRecord],
    replace: bool,
) -> Result<u64> {
    let tx = conn.transaction().map_err(|e| err("write", e))?;
    {
        let vt = vec_table(name);
        let mut find = tx
            .prepare_cached(&format!("SELECT _row FROM {} WHERE id = ?1", quote(name)))
            .map_err(|e| err("write", e))?;
        let mut del_row = tx
            .prepare_cached(&format!("DELETE FROM {} WHERE _row = ?1", quote(name)))
            .map_err(|e| err("write", e))?;
        let mut del_vec = tx
            .prepare_cached(&format!("DELETE FROM {vt} WHERE rowid = ?1"))
            .map_err(|e| err("write", e))?;
        let mut ins = tx
            .prepare_cached(&insert_sql(name, schema))
            .map_err(|e| err("write", e))?;
        let mut ins_vec = tx
            .prepare_cached(&format!(
                "INSERT INTO {vt} (rowid, embedding) VALUES (?1, ?2)"
            ))
            .map_err(|e| err("write", e))?;
        for r in records {
            if replace {
                let old: Option<i64> = find
                    .query_row([&r.id], |row| row.get(0))
                    .optional()
                    .map_err(|e| err("upsert", e))?;
                if let Some(old) = old {
                    del_vec.execute([old]).map_err(|e| err("upsert", e))?;
                    del_row.execute([old]).map_err(|e| err("upsert", e))?;
                }
            }
            ins.execute(params_from_iter(record_values(schema, r)))
                .map_err(|e| {
                    if let rusqlite::Error::SqliteFailure(f, _) = &e {
                        if f.code == ErrorCode::ConstraintViolation {
                            return Error::BadRecord {
                                id: Some(r.id.clone()),
                                reason: format!(
                                    "a record with this id already exists in `{name}`; use upsert to replace it"
                                ),
                            };
                        }
                    }
                    err("insert", e)
                })?;
            let row = tx.last_insert_rowid();
            ins_vec
                .execute(params![row, vector_bytes(&r.vector)])
                .map_err(|e| err("insert vector", e))?;
        }
    }
    let v = bump_version(&tx, name)?;
    tx.commit().map_err(|e| err("commit", e))?;
    Ok(v)
}

fn compiled_where(
    filter: Option<&Filter>,
    schema: &TableSchema,
    first_param: usize,
) -> Result<(String, Vec<SqlValue>)> {
    match filter {
        None => Ok(("1".into(), Vec::new())),
        Some(f) => {
            let c = filter::compile(f, schema, Dialect::Sqlite, "r.", first_param)?;
            Ok((c.sql, c.params))
        }
    }
}

/// Row keys (`_row`) of the records a filter matches.
fn matching_rows(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    f: &Filter,
) -> Result<Vec<i64>> {
    let (cond, params) = compiled_where(Some(f), schema, 1)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT r._row FROM {} AS r WHERE {cond}",
            quote(name)
        ))
        .map_err(|e| err("filter", e))?;
    let rows = stmt
        .query_map(params_from_iter(params), |r| r.get::<_, i64>(0))
        .map_err(|e| err("filter", e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| err("filter", e))?;
    Ok(rows)
}

/// Deletes by ids or by filter in one transaction; returns how many went.
pub(super) fn delete(
    conn: &mut Connection,
    name: &str,
    schema: &TableSchema,
    ids: Option<&[String]>,
    filter: Option<&Filter>,
) -> Result<(u64, u64)> {
    let tx = conn.transaction().map_err(|e| err("delete", e))?;
    let rows: Vec<i64> = match (ids, filter) {
        (Some(ids), _) => {
            let mut out = Vec::new();
            let mut find = tx
                .prepare_cached(&format!("SELECT _row FROM {} WHERE id = ?1", quote(name)))
                .map_err(|e| err("delete", e))?;
            for id in ids {
                if let Some(r) = find
                    .query_row([id], |row| row.get::<_, i64>(0))
                    .optional()
                    .map_err(|e| err("delete", e))?
                {
                    out.push(r);
                }
            }
            out
        }
        (None, Some(f)) => matching_rows(&tx, name, schema, f)?,
        (None, None) => Vec::new(),
    };
    {
        let mut del_row = tx
            .prepare_cached(&format!("DELETE FROM {} WHERE _row = ?1", quote(name)))
            .map_err(|e| err("delete", e))?;
        let mut del_vec = tx
            .prepare_cached(&format!("DELETE FROM {} WHERE rowid = ?1", vec_table(name)))
            .map_err(|e| err("delete", e))?;
        for r in &rows {
            del_vec.execute([r]).map_err(|e| err("delete", e))?;
            del_row.execute([r]).map_err(|e| err("delete", e))?;
        }
    }
    let v = if rows.is_empty() {
        version(&tx, name)?
    } else {
        bump_version(&tx, name)?
    };
    tx.commit().map_err(|e| err("delete", e))?;
    Ok((rows.len() as u64, v))
}

/// The select list for records aliased `r` (and `v` for vectors): fixed
/// positions `_row, id, text, metadata, image, audio, blobs, typed…, embedding`.
fn select_list(schema: &TableSchema, p: &Projection, with_vector: bool) -> String {
    let mut cols = vec!["r._row", "r.id", "r.text", "r.metadata"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    if p.blobs {
        cols.extend(["r.image", "r.audio", "r.blobs"].map(String::from));
    } else {
        cols.extend(["NULL", "NULL", "NULL"].map(String::from));
    }
    for f in &schema.fields {
        cols.push(format!("r.{}", quote(&f.name)));
    }
    cols.push(if with_vector { "v.embedding" } else { "NULL" }.into());
    cols.join(", ")
}

fn from_clause(name: &str, with_vector: bool) -> String {
    if with_vector {
        format!(
            "{} AS r JOIN {} AS v ON v.rowid = r._row",
            quote(name),
            vec_table(name)
        )
    } else {
        format!("{} AS r", quote(name))
    }
}

fn read_row(schema: &TableSchema, row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, RowData)> {
    let n = schema.fields.len();
    let key: i64 = row.get(0)?;
    let mut d = RowData {
        id: row.get(1)?,
        text: row.get(2)?,
        metadata: row.get(3)?,
        image: row.get(4)?,
        audio: row.get(5)?,
        blobs: row.get(6)?,
        ..Default::default()
    };
    for i in 0..n {
        d.typed.push(from_sqlite(row.get(7 + i)?));
    }
    let emb: Option<Vec<u8>> = row.get(7 + n)?;
    if let Some(b) = emb {
        d.vector = Some(vector_from_bytes(&b).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7 + n, rusqlite::types::Type::Blob, e.into())
        })?);
    }
    Ok((key, d))
}

/// Rows by a key column (`id` or `_row`), in no particular order.
fn rows_by<K: ToSql>(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    p: &Projection,
    key_col: &str,
    keys: &[K],
) -> Result<Vec<(i64, RowData)>> {
    let with_vector = p.vector;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE r.{key_col} IN ({})",
            select_list(schema, p, with_vector),
            from_clause(name, with_vector),
            marks.join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| err("get", e))?;
        let rows = stmt
            .query_map(params_from_iter(chunk), |row| read_row(schema, row))
            .map_err(|e| err("get", e))?;
        for r in rows {
            out.push(r.map_err(|e| err("get", e))?);
        }
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
    let mut by_id: std::collections::HashMap<String, RowData> =
        rows_by(conn, name, schema, p, "id", ids)?
            .into_iter()
            .map(|(_, d)| (d.id.clone(), d))
            .collect();
    ids.iter()
        .filter_map(|id| by_id.remove(id))
        .map(|d| d.into_record(schema, p))
        .collect()
}

/// One page of a scan: rows with `_row > after`, in `_row` order.
pub(super) fn scan_page(
    conn: &Connection,
    name: &str,
    schema: &TableSchema,
    p: &Projection,
    after: i64,
    limit: usize,
) -> Result<(Vec<MultimodalRecord>, Option<i64>)> {
    let sql = format!(
        "SELECT {} FROM {} WHERE r._row > ?1 ORDER BY r._row LIMIT ?2",
        select_list(schema, p, p.vector),
        from_clause(name, p.vector)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(|e| err("scan", e))?;
    let rows = stmt
        .query_map(params![after, limit as i64], |row| read_row(schema, row))
        .map_err(|e| err("scan", e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| err("scan", e))?;
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
    conn.query_row(
        &format!("SELECT count(*) FROM {} AS r WHERE {cond}", quote(name)),
        params_from_iter(params),
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(|e| err("count", e))
}

/// A vector search, best first, with exact distances.
///
/// Unfiltered searches in the table's own metric (l2 or cosine) with
/// `k <= 4096` use sqlite-vec's KNN (`embedding MATCH ? AND k = ?`).
/// Everything else is an exact scan in Rust: filtered searches over the
/// rows the filter matches (so `k` results come back whenever `k` rows
/// match), dot product (which vec0 does not offer), another metric than the
/// table's, and larger `k`. Distances are then computed with
/// [`DistanceMetric::distance`], so they equal the reference exactly.
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
    let vec0_ok = filter.is_none()
        && metric == schema.metric
        && metric != DistanceMetric::Dot
        && k <= VEC0_K_MAX;
    let keys: Vec<i64> = if vec0_ok {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT rowid FROM {} WHERE embedding MATCH ?1 AND k = ?2",
                vec_table(name)
            ))
            .map_err(|e| err("search", e))?;
        stmt.query_map(params![vector_bytes(query), k as i64], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| err("search", e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| err("search", e))?
    } else {
        let mut top = TopK::new(k);
        let (sql, params) = match filter {
            Some(f) => {
                let (cond, params) = compiled_where(Some(f), schema, 1)?;
                (
                    format!(
                        "SELECT r._row, r.id, v.embedding FROM {} WHERE {cond}",
                        from_clause(name, true)
                    ),
                    params,
                )
            }
            None => (
                format!("SELECT rowid, '', embedding FROM {}", vec_table(name)),
                Vec::new(),
            ),
        };
        let mut stmt = conn.prepare(&sql).map_err(|e| err("search", e))?;
        let mut rows = stmt
            .query(params_from_iter(params))
            .map_err(|e| err("search", e))?;
        while let Some(row) = rows.next().map_err(|e| err("search", e))? {
            let key: i64 = row.get(0).map_err(|e| err("search", e))?;
            let id: String = row.get(1).map_err(|e| err("search", e))?;
            let bytes = row
                .get_ref(2)
                .map_err(|e| err("search", e))?
                .as_blob()
                .map_err(|e| err("search", rusqlite::Error::from(e)))?;
            top.offer(metric, query, &vector_from_bytes(bytes)?, id, key);
        }
        top.into_sorted().into_iter().map(|c| c.key).collect()
    };
    // Fetch the winners with their vectors; rank by the exact distance, then id.
    let mut fetch = p.clone();
    fetch.vector = true;
    let mut hits: Vec<Candidate> = Vec::with_capacity(keys.len());
    let mut data = std::collections::HashMap::with_capacity(keys.len());
    for (key, d) in rows_by(conn, name, schema, &fetch, "_row", &keys)? {
        let v = d.vector.as_deref().unwrap_or_default();
        hits.push(Candidate {
            distance: metric.distance(query, v),
            id: d.id.clone(),
            key,
        });
        data.insert(key, d);
    }
    hits.sort();
    hits.into_iter()
        .filter_map(|c| data.remove(&c.key).map(|d| (d, c.distance)))
        .map(|(d, dist)| Ok((d.into_record(schema, p)?, dist)))
        .collect()
}

/// Bytes of the pages the table, its id index and its vector tables use.
pub(super) fn disk_bytes(conn: &Connection, name: &str) -> Result<u64> {
    conn.query_row(
        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat
         WHERE name = ?1 OR substr(name, 1, length(?2)) = ?2 OR substr(name, 1, length(?3)) = ?3",
        params![
            name,
            format!("{name}__vec"),
            format!("sqlite_autoindex_{name}_")
        ],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(|e| err("table size", e))
}
