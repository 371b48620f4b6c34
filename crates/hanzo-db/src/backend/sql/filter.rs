//! [`Filter`] → a parameterised SQL condition for SQLite or DuckDB.
//!
//! Every value is a bound parameter (`?N` in SQLite, `$N` in DuckDB); nothing
//! the caller wrote is spliced into the SQL text except JSON path keys, which
//! are bound too (as the path argument of the JSON functions). Each leaf
//! compiles to a two-valued expression (never SQL `NULL`), so `$not` and the
//! missing-field rules match [`Filter::matches`] exactly:
//! - comparisons on a missing or null field are false, `$ne`/`$nin` true;
//! - `$eq`/`$in` on a JSON array match when any element matches;
//! - ordering needs both sides numbers, both strings or both booleans.
//!
//! Typed fields, `id` and `text` compare their columns directly (type-checked
//! against the schema: `{"year": "2001"}` on an int field is a `BadFilter`).

use crate::error::{Error, Result};
use crate::filter::{CompareOp, Condition, Filter, Leaf, Scalar};
use crate::record::timestamp_micros;
use crate::schema::{FieldType, TableSchema};

use super::{SqlValue, quote};

/// Which SQL engine the condition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    DuckDb,
}

/// A compiled condition and its parameters (numbered from `first_param`).
#[derive(Debug)]
pub(crate) struct Compiled {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

struct Ctx<'a> {
    dialect: Dialect,
    schema: &'a TableSchema,
    /// Column prefix, e.g. `r.` when the records table is aliased.
    prefix: &'a str,
    first: usize,
    params: Vec<SqlValue>,
}

/// Compiles `filter` for `schema`; parameters start at `first_param` (1-based).
pub(crate) fn compile(
    filter: &Filter,
    schema: &TableSchema,
    dialect: Dialect,
    prefix: &str,
    first_param: usize,
) -> Result<Compiled> {
    let mut cx = Ctx {
        dialect,
        schema,
        prefix,
        first: first_param,
        params: Vec::new(),
    };
    let sql = cx.node(filter)?;
    Ok(Compiled {
        sql,
        params: cx.params,
    })
}

fn bad(leaf: &Leaf, reason: impl Into<String>) -> Error {
    Error::BadFilter {
        path: leaf.path.join("."),
        reason: reason.into(),
    }
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Gte => ">=",
        CompareOp::Lt => "<",
        CompareOp::Lte => "<=",
    }
}

impl Ctx<'_> {
    fn falsy(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "0",
            Dialect::DuckDb => "false",
        }
    }
    fn truthy(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "1",
            Dialect::DuckDb => "true",
        }
    }

    /// Binds a value; returns its placeholder.
    fn bind(&mut self, v: SqlValue) -> String {
        self.params.push(v);
        let n = self.first + self.params.len() - 1;
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::DuckDb => format!("${n}"),
        }
    }

    fn two_valued(&self, e: String) -> String {
        format!("COALESCE(({e}), {})", self.falsy())
    }

    fn col(&self, name: &str) -> String {
        format!("{}{}", self.prefix, quote(name))
    }

    fn node(&mut self, f: &Filter) -> Result<String> {
        Ok(match f {
            Filter::And(v) if v.is_empty() => self.truthy().into(),
            Filter::Or(v) if v.is_empty() => self.falsy().into(),
            Filter::And(v) | Filter::Or(v) => {
                let joiner = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = v.iter().map(|f| self.node(f)).collect::<Result<Vec<_>>>()?;
                format!("({})", parts.join(joiner))
            }
            Filter::Not(f) => format!("(NOT {})", self.node(f)?),
            Filter::Leaf(leaf) => self.leaf(leaf)?,
        })
    }

    fn leaf(&mut self, leaf: &Leaf) -> Result<String> {
        let first = leaf.path[0].as_str();
        let kind = match first {
            "id" | "text" => Some(FieldType::String),
            _ => self.schema.field_type(first),
        };
        let Some(kind) = kind else {
            return self.json_leaf(leaf);
        };
        if leaf.path.len() > 1 {
            return Err(bad(
                leaf,
                format!("`{first}` is a {kind:?} field and has no nested keys"),
            ));
        }
        if kind == FieldType::StringList {
            return self.list_leaf(leaf, first);
        }
        let c = self.col(first);
        Ok(match &leaf.op {
            Condition::Exists(true) => format!("({c} IS NOT NULL)"),
            Condition::Exists(false) => format!("({c} IS NULL)"),
            Condition::Compare(CompareOp::Ne, v) => {
                let p = self.typed_param(leaf, kind, v)?;
                format!("(NOT {})", self.two_valued(format!("{c} = {p}")))
            }
            Condition::Compare(op, v) => {
                let p = self.typed_param(leaf, kind, v)?;
                self.two_valued(format!("{c} {} {p}", sql_op(*op)))
            }
            Condition::In { values, negated } => {
                if values.is_empty() {
                    return Ok(if *negated {
                        self.truthy()
                    } else {
                        self.falsy()
                    }
                    .into());
                }
                let ps = values
                    .iter()
                    .map(|v| self.typed_param(leaf, kind, v))
                    .collect::<Result<Vec<_>>>()?;
                let inside = self.two_valued(format!("{c} IN ({})", ps.join(", ")));
                if *negated {
                    format!("(NOT {inside})")
                } else {
                    inside
                }
            }
        })
    }

    fn typed_param(&mut self, leaf: &Leaf, kind: FieldType, v: &Scalar) -> Result<String> {
        let value = match (kind, v) {
            (FieldType::String, Scalar::Str(s)) => SqlValue::Text(s.clone()),
            (FieldType::Int | FieldType::Float, Scalar::Int(i)) => SqlValue::Int(*i),
            (FieldType::Int | FieldType::Float, Scalar::Float(f)) => SqlValue::Real(*f),
            (FieldType::Bool, Scalar::Bool(b)) => match self.dialect {
                Dialect::Sqlite => SqlValue::Int(i64::from(*b)),
                Dialect::DuckDb => SqlValue::Bool(*b),
            },
            (FieldType::Timestamp, v) => {
                let micros = timestamp_micros(&v.to_json()).map_err(|e| bad(leaf, e))?;
                match self.dialect {
                    Dialect::Sqlite => SqlValue::Int(micros),
                    Dialect::DuckDb => SqlValue::Timestamp(micros),
                }
            }
            _ => {
                return Err(bad(
                    leaf,
                    format!("field is {kind:?}, got a {} value", v.type_name()),
                ));
            }
        };
        Ok(self.bind(value))
    }

    /// A string-list field: `$eq` means "contains".
    fn list_leaf(&mut self, leaf: &Leaf, name: &str) -> Result<String> {
        let c = self.col(name);
        let (values, negated) = match &leaf.op {
            Condition::Exists(true) => return Ok(format!("({c} IS NOT NULL)")),
            Condition::Exists(false) => return Ok(format!("({c} IS NULL)")),
            Condition::Compare(CompareOp::Eq, v) => (vec![v.clone()], false),
            Condition::Compare(CompareOp::Ne, v) => (vec![v.clone()], true),
            Condition::Compare(..) => {
                return Err(bad(
                    leaf,
                    "a string list supports $eq (contains), $ne, $in, $nin and $exists",
                ));
            }
            Condition::In { values, negated } => (values.clone(), *negated),
        };
        // Only strings can be elements of a string list.
        let strings: Vec<String> = values
            .into_iter()
            .filter_map(|v| match v {
                Scalar::Str(s) => Some(s),
                _ => None,
            })
            .collect();
        let any = if strings.is_empty() {
            self.falsy().to_string()
        } else {
            let ps: Vec<String> = strings
                .into_iter()
                .map(|s| self.bind(SqlValue::Text(s)))
                .collect();
            match self.dialect {
                Dialect::Sqlite => self.two_valued(format!(
                    "EXISTS (SELECT 1 FROM json_each({c}) AS je WHERE je.type = 'text' AND je.value IN ({}))",
                    ps.join(", ")
                )),
                Dialect::DuckDb => self.two_valued(
                    ps.iter()
                        .map(|p| format!("list_contains({c}, {p})"))
                        .collect::<Vec<_>>()
                        .join(" OR "),
                ),
            }
        };
        Ok(if negated { format!("(NOT {any})") } else { any })
    }

    /// A path into the JSON metadata column.
    fn json_leaf(&mut self, leaf: &Leaf) -> Result<String> {
        let mut path = String::from("$");
        for seg in &leaf.path {
            if seg.contains('"') || seg.contains('\\') {
                return Err(bad(
                    leaf,
                    "metadata keys holding `\"` or `\\` cannot be filtered on by the SQL backends",
                ));
            }
            path.push_str(&format!(".\"{seg}\""));
        }
        let m = self.col("metadata");
        let p = self.bind(SqlValue::Text(path));
        Ok(match &leaf.op {
            Condition::Exists(want) => {
                let present = match self.dialect {
                    Dialect::Sqlite => format!("json_type({m}, {p}) <> 'null'"),
                    Dialect::DuckDb => format!("json_type({m}, {p}) <> 'NULL'"),
                };
                let e = self.two_valued(present);
                if *want { e } else { format!("(NOT {e})") }
            }
            Condition::Compare(CompareOp::Ne, s) => {
                format!(
                    "(NOT {})",
                    self.json_any_eq(&m, &p, std::slice::from_ref(s))
                )
            }
            Condition::Compare(CompareOp::Eq, s) => {
                self.json_any_eq(&m, &p, std::slice::from_ref(s))
            }
            Condition::Compare(op, s) => {
                let (t, v) = self.json_tv(&m, &p);
                let e = self.scalar_cond(&t, &v, *op, s);
                self.two_valued(e)
            }
            Condition::In { values, negated } => {
                if values.is_empty() {
                    return Ok(if *negated {
                        self.truthy()
                    } else {
                        self.falsy()
                    }
                    .into());
                }
                let e = self.json_any_eq(&m, &p, values);
                if *negated { format!("(NOT {e})") } else { e }
            }
        })
    }

    /// Type and value expressions of the JSON value at path `p` of column `m`.
    fn json_tv(&self, m: &str, p: &str) -> (String, String) {
        match self.dialect {
            Dialect::Sqlite => (
                format!("json_type({m}, {p})"),
                format!("json_extract({m}, {p})"),
            ),
            Dialect::DuckDb => (
                format!("json_type({m}, {p})"),
                format!("json_extract_string({m}, {p})"),
            ),
        }
    }

    /// `value op scalar`, true only when the JSON type fits the scalar's.
    fn scalar_cond(&mut self, t: &str, v: &str, op: CompareOp, s: &Scalar) -> String {
        let op = sql_op(op);
        match (self.dialect, s) {
            (Dialect::Sqlite, Scalar::Str(x)) => {
                let p = self.bind(SqlValue::Text(x.clone()));
                format!("({t} = 'text' AND {v} {op} {p})")
            }
            (Dialect::Sqlite, Scalar::Int(i)) => {
                let p = self.bind(SqlValue::Int(*i));
                format!("({t} IN ('integer', 'real') AND {v} {op} {p})")
            }
            (Dialect::Sqlite, Scalar::Float(f)) => {
                let p = self.bind(SqlValue::Real(*f));
                format!("({t} IN ('integer', 'real') AND {v} {op} {p})")
            }
            (Dialect::Sqlite, Scalar::Bool(b)) => {
                let p = self.bind(SqlValue::Int(i64::from(*b)));
                format!("({t} IN ('true', 'false') AND {v} {op} {p})")
            }
            (Dialect::DuckDb, Scalar::Str(x)) => {
                let p = self.bind(SqlValue::Text(x.clone()));
                format!("({t} = 'VARCHAR' AND {v} {op} {p})")
            }
            (Dialect::DuckDb, Scalar::Int(i)) => {
                let p = self.bind(SqlValue::Real(*i as f64));
                format!(
                    "({t} IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE') AND TRY_CAST({v} AS DOUBLE) {op} {p})"
                )
            }
            (Dialect::DuckDb, Scalar::Float(f)) => {
                let p = self.bind(SqlValue::Real(*f));
                format!(
                    "({t} IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE') AND TRY_CAST({v} AS DOUBLE) {op} {p})"
                )
            }
            (Dialect::DuckDb, Scalar::Bool(b)) => {
                let p = self.bind(SqlValue::Bool(*b));
                format!("({t} = 'BOOLEAN' AND TRY_CAST({v} AS BOOLEAN) {op} {p})")
            }
        }
    }

    /// The value equals one of `values`, or is an array with an element that does.
    fn json_any_eq(&mut self, m: &str, p: &str, values: &[Scalar]) -> String {
        let (t, v) = self.json_tv(m, p);
        let direct: Vec<String> = values
            .iter()
            .map(|s| self.scalar_cond(&t, &v, CompareOp::Eq, s))
            .collect();
        let (et, ev) = match self.dialect {
            Dialect::Sqlite => ("je.type".to_string(), "je.value".to_string()),
            Dialect::DuckDb => (
                "json_type(je.e)".to_string(),
                "json_extract_string(je.e, '$')".to_string(),
            ),
        };
        let elems: Vec<String> = values
            .iter()
            .map(|s| self.scalar_cond(&et, &ev, CompareOp::Eq, s))
            .collect();
        let array = match self.dialect {
            Dialect::Sqlite => format!(
                "({t} = 'array' AND EXISTS (SELECT 1 FROM json_each({m}, {p}) AS je WHERE {}))",
                elems.join(" OR ")
            ),
            Dialect::DuckDb => format!(
                "({t} = 'ARRAY' AND EXISTS (SELECT 1 FROM (SELECT unnest(TRY_CAST(json_extract({m}, {p}) AS JSON[])) AS e) AS je WHERE {}))",
                elems.join(" OR ")
            ),
        };
        self.two_valued(format!("{} OR {array}", direct.join(" OR ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_every_value_and_checks_types() {
        let schema = TableSchema::new(2).field("year", FieldType::Int);
        let f =
            Filter::parse(&json!({"year": {"$gt": 2000}, "a.b": "x'); DROP TABLE t; --"})).unwrap();
        let c = compile(&f, &schema, Dialect::Sqlite, "", 1).unwrap();
        assert!(!c.sql.contains("DROP"), "{}", c.sql);
        assert!(
            c.params
                .contains(&SqlValue::Text("x'); DROP TABLE t; --".into()))
        );
        let d = compile(&f, &schema, Dialect::DuckDb, "r.", 3).unwrap();
        assert!(
            d.sql.contains("$3") && d.sql.contains("r.\"year\""),
            "{}",
            d.sql
        );
        let wrong = Filter::parse(&json!({"year": "2001"})).unwrap();
        assert!(matches!(
            compile(&wrong, &schema, Dialect::Sqlite, "", 1),
            Err(Error::BadFilter { .. })
        ));
        let quoted = Filter::parse(&json!({"k\"q": 1})).unwrap();
        assert!(compile(&quoted, &schema, Dialect::DuckDb, "", 1).is_err());
    }
}
