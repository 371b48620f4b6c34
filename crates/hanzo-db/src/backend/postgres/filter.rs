//! [`Filter`] → a boolean SQL expression with every value bound.
//!
//! Nothing from a filter's values reaches the SQL text: each value is a
//! parameter (`$n`), and field names are typed fields of the schema
//! (validated identifiers) or JSON paths, which are bound too (as `text[]`
//! for `#>`). So a value holding `'); DROP TABLE …` is matched literally.
//!
//! The semantics are those of [`Filter::matches`](crate::Filter::matches):
//! - typed fields, `id` and `text` compare natively; strings order by bytes
//!   (`COLLATE "C"`), as Rust's `str` does;
//! - JSON metadata paths go through `jsonb`: a comparison holds only when
//!   the value has the literal's JSON type (numbers with numbers, strings
//!   with strings, booleans with booleans); `$eq` and `$in` on an array
//!   match when any element does;
//! - every leaf is two-valued (never SQL NULL where it matters), and `$not`
//!   is `IS NOT TRUE`, so a condition on a missing field is false and its
//!   negation true.

use crate::error::{Error, Result};
use crate::filter::{CompareOp, Condition, Filter, Leaf, Scalar};
use crate::record::timestamp_micros;
use crate::schema::{FieldType, TableSchema};

use super::sql::{Params, micros_to_time, quote};

/// Compiles a filter for a table, binding its values into `p`.
pub fn to_sql(filter: &Filter, schema: &TableSchema, p: &mut Params) -> Result<String> {
    Ok(match filter {
        Filter::And(v) if v.is_empty() => "TRUE".into(),
        Filter::Or(v) if v.is_empty() => "FALSE".into(),
        Filter::And(v) => join(v, " AND ", schema, p)?,
        Filter::Or(v) => join(v, " OR ", schema, p)?,
        Filter::Not(f) => format!("(({}) IS NOT TRUE)", to_sql(f, schema, p)?),
        Filter::Leaf(leaf) => leaf_sql(leaf, schema, p)?,
    })
}

fn join(v: &[Filter], sep: &str, schema: &TableSchema, p: &mut Params) -> Result<String> {
    let parts = v
        .iter()
        .map(|f| to_sql(f, schema, p))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("({})", parts.join(sep)))
}

fn bad(leaf: &Leaf, reason: impl Into<String>) -> Error {
    Error::BadFilter {
        path: leaf.path.join("."),
        reason: reason.into(),
    }
}

fn op_sql(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Gte => ">=",
        CompareOp::Lt => "<",
        CompareOp::Lte => "<=",
    }
}

fn leaf_sql(leaf: &Leaf, schema: &TableSchema, p: &mut Params) -> Result<String> {
    let first = leaf.path[0].as_str();
    let kind = match first {
        "id" | "text" => Some(FieldType::String),
        _ => schema.field_type(first),
    };
    let Some(kind) = kind else {
        return Ok(json_leaf(leaf, p));
    };
    if leaf.path.len() > 1 {
        return Err(bad(
            leaf,
            format!("`{first}` is a {kind:?} field and has no nested keys"),
        ));
    }
    let col = quote(first);
    if kind == FieldType::StringList {
        return list_leaf(leaf, &col, p);
    }
    Ok(match &leaf.op {
        Condition::Exists(true) => format!("({col} IS NOT NULL)"),
        Condition::Exists(false) => format!("({col} IS NULL)"),
        Condition::Compare(op, v) => {
            let c = typed_compare(leaf, kind, &col, *op, v, p)?;
            if *op == CompareOp::Ne {
                format!("({col} IS NULL OR {c})")
            } else {
                c
            }
        }
        Condition::In { values, negated } => {
            let eqs = values
                .iter()
                .map(|v| typed_compare(leaf, kind, &col, CompareOp::Eq, v, p))
                .collect::<Result<Vec<_>>>()?;
            match (eqs.is_empty(), negated) {
                (true, false) => "FALSE".into(),
                (true, true) => "TRUE".into(),
                (false, false) => format!("({})", eqs.join(" OR ")),
                (false, true) => format!("({col} IS NULL OR NOT ({}))", eqs.join(" OR ")),
            }
        }
    })
}

/// `col op $n` with the literal cast to the column's type.
fn typed_compare(
    leaf: &Leaf,
    kind: FieldType,
    col: &str,
    op: CompareOp,
    v: &Scalar,
    p: &mut Params,
) -> Result<String> {
    let o = op_sql(op);
    let mismatch = || {
        bad(
            leaf,
            format!("field is {kind:?}, got a {} value", v.type_name()),
        )
    };
    Ok(match (kind, v) {
        (FieldType::String, Scalar::Str(s)) => {
            format!("({col} COLLATE \"C\" {o} {}::text)", p.push(s.clone()))
        }
        (FieldType::Int, Scalar::Int(i)) => format!("({col} {o} {}::bigint)", p.push(*i)),
        (FieldType::Int, Scalar::Float(f)) => {
            format!("({col}::float8 {o} {}::float8)", p.push(*f))
        }
        (FieldType::Float, Scalar::Int(i)) => format!("({col} {o} {}::float8)", p.push(*i as f64)),
        (FieldType::Float, Scalar::Float(f)) => format!("({col} {o} {}::float8)", p.push(*f)),
        (FieldType::Bool, Scalar::Bool(b)) => format!("({col} {o} {}::boolean)", p.push(*b)),
        (FieldType::Timestamp, v) => {
            let micros = timestamp_micros(&v.to_json()).map_err(|e| bad(leaf, e))?;
            format!(
                "({col} {o} {}::timestamptz)",
                p.push(micros_to_time(micros))
            )
        }
        _ => return Err(mismatch()),
    })
}

/// A string-list column: `$eq` is "contains", `$in` is "overlaps".
fn list_leaf(leaf: &Leaf, col: &str, p: &mut Params) -> Result<String> {
    let strings = |values: &[Scalar]| -> Vec<String> {
        values
            .iter()
            .filter_map(|v| match v {
                Scalar::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    };
    Ok(match &leaf.op {
        Condition::Exists(true) => format!("({col} IS NOT NULL)"),
        Condition::Exists(false) => format!("({col} IS NULL)"),
        Condition::Compare(CompareOp::Eq | CompareOp::Ne, Scalar::Str(s)) => {
            let contains = format!("COALESCE({}::text = ANY({col}), FALSE)", p.push(s.clone()));
            if matches!(leaf.op, Condition::Compare(CompareOp::Ne, _)) {
                format!("(NOT {contains})")
            } else {
                contains
            }
        }
        // A non-string never equals a list's strings.
        Condition::Compare(CompareOp::Eq, _) => "FALSE".into(),
        Condition::Compare(CompareOp::Ne, _) => "TRUE".into(),
        Condition::Compare(..) => {
            return Err(bad(
                leaf,
                "a string list supports $eq (contains), $ne, $in, $nin and $exists",
            ));
        }
        Condition::In { values, negated } => {
            let overlaps = format!(
                "COALESCE({col} && {}::text[], FALSE)",
                p.push(strings(values))
            );
            if *negated {
                format!("(NOT {overlaps})")
            } else {
                overlaps
            }
        }
    })
}

/// A condition on a path into the `metadata` JSON.
fn json_leaf(leaf: &Leaf, p: &mut Params) -> String {
    let path = p.push(leaf.path.clone());
    let x = format!("(metadata #> {path}::text[])");
    match &leaf.op {
        Condition::Exists(true) => format!("COALESCE(jsonb_typeof({x}) <> 'null', FALSE)"),
        Condition::Exists(false) => format!("COALESCE(jsonb_typeof({x}) = 'null', TRUE)"),
        Condition::Compare(CompareOp::Eq, s) => eq_any(&x, s, p),
        Condition::Compare(CompareOp::Ne, s) => format!("(NOT {})", eq_any(&x, s, p)),
        Condition::Compare(op, s) => json_compare(&x, *op, s, p),
        Condition::In { values, negated } => {
            let any = if values.is_empty() {
                "FALSE".to_string()
            } else {
                let eqs: Vec<String> = values.iter().map(|s| eq_any(&x, s, p)).collect();
                format!("({})", eqs.join(" OR "))
            };
            if *negated {
                format!("(NOT {any})")
            } else {
                any
            }
        }
    }
}

/// Equality that also matches any element of an array value. Never NULL.
fn eq_any(x: &str, s: &Scalar, p: &mut Params) -> String {
    let elem = json_compare("_e.v", CompareOp::Eq, s, p);
    let scalar = json_compare(x, CompareOp::Eq, s, p);
    format!(
        "(CASE WHEN jsonb_typeof({x}) = 'array' \
         THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) AS _e(v) WHERE {elem}) \
         ELSE {scalar} END)"
    )
}

/// A comparison that holds only when the JSON value has the literal's type
/// (the CASE keeps the cast from running on other types). Never NULL.
fn json_compare(x: &str, op: CompareOp, s: &Scalar, p: &mut Params) -> String {
    let o = op_sql(op);
    let (json_type, lhs, rhs) = match s {
        Scalar::Str(v) => (
            "string",
            format!("({x} #>> '{{}}') COLLATE \"C\""),
            format!("{}::text", p.push(v.clone())),
        ),
        Scalar::Int(v) => (
            "number",
            format!("({x})::numeric"),
            format!("{}::bigint::numeric", p.push(*v)),
        ),
        Scalar::Float(v) => (
            "number",
            format!("({x})::float8"),
            format!("{}::float8", p.push(*v)),
        ),
        Scalar::Bool(v) => (
            "boolean",
            format!("({x})::boolean"),
            format!("{}::boolean", p.push(*v)),
        ),
    };
    format!("(CASE WHEN jsonb_typeof({x}) = '{json_type}' THEN {lhs} {o} {rhs} ELSE FALSE END)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_spliced() {
        let schema = TableSchema::new(2).field("kind", FieldType::String);
        let hostile = "x'); DROP TABLE t; --";
        let f = Filter::parse(&serde_json::json!({
            "kind": hostile, "info.lang": {"$in": [hostile, 3]}, "$not": {"id": hostile}
        }))
        .unwrap();
        let mut p = Params::default();
        let sql = to_sql(&f, &schema, &mut p).unwrap();
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(p.len() >= 5, "every value bound: {sql}");
    }

    #[test]
    fn type_mismatches_are_bad_filters() {
        let schema = TableSchema::new(2)
            .field("year", FieldType::Int)
            .field("tags", FieldType::StringList);
        for doc in [
            serde_json::json!({"year": "2001"}),
            serde_json::json!({"tags": {"$gt": "a"}}),
            serde_json::json!({"year.x": 1}),
        ] {
            let f = Filter::parse(&doc).unwrap();
            assert!(matches!(
                to_sql(&f, &schema, &mut Params::default()),
                Err(Error::BadFilter { .. })
            ));
        }
    }
}
