//! [`Filter`] → DataFusion expression for LanceDB.
//!
//! Values are bound as literals inside the expression tree; nothing is
//! spliced into SQL text, so a value holding quotes, `;` or `--` is matched
//! literally. Typed fields, `id` and `text` compile to native comparisons
//! (which Lance's scalar indexes can serve). JSON metadata paths and
//! string-list fields compile to `hanzo_match(column, leaf)`, a scalar UDF
//! that evaluates the leaf with [`leaf_matches`], the same code as
//! [`Filter::matches`], so every engine agrees on semantics.

use std::sync::{Arc, OnceLock};

use arrow_array::{Array, BooleanArray, ListArray, StringArray};
use arrow_schema::DataType;
use lancedb::datafusion::common::{DataFusionError, ScalarValue};
use lancedb::datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use lancedb::datafusion::prelude::{ident, lit};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::{CompareOp, Condition, Filter, Leaf, Scalar, leaf_matches};
use crate::record::timestamp_micros;
use crate::schema::{FieldType, TableSchema};

/// Compiles a filter for a table.
pub fn to_expr(filter: &Filter, schema: &TableSchema) -> Result<Expr> {
    Ok(match filter {
        Filter::And(v) => v
            .iter()
            .map(|f| to_expr(f, schema))
            .try_fold(lit(true), |acc, e| e.map(|e| acc.and(e)))?,
        Filter::Or(v) => v
            .iter()
            .map(|f| to_expr(f, schema))
            .try_fold(lit(false), |acc, e| e.map(|e| acc.or(e)))?,
        Filter::Not(f) => to_expr(f, schema)?.is_not_true(),
        Filter::Leaf(leaf) => leaf_expr(leaf, schema)?,
    })
}

fn bad(leaf: &Leaf, reason: impl Into<String>) -> Error {
    Error::BadFilter {
        path: leaf.path.join("."),
        reason: reason.into(),
    }
}

fn leaf_expr(leaf: &Leaf, schema: &TableSchema) -> Result<Expr> {
    let first = leaf.path[0].as_str();
    let kind = match first {
        "id" | "text" => Some(FieldType::String),
        _ => schema.field_type(first),
    };
    let Some(kind) = kind else {
        return Ok(udf_call("metadata", leaf.path.clone(), &leaf.op));
    };
    if leaf.path.len() > 1 {
        return Err(bad(
            leaf,
            format!("`{first}` is a {kind:?} field and has no nested keys"),
        ));
    }
    if kind == FieldType::StringList {
        if matches!(leaf.op, Condition::Compare(op, _) if !matches!(op, CompareOp::Eq | CompareOp::Ne))
        {
            return Err(bad(
                leaf,
                "a string list supports $eq (contains), $ne, $in, $nin and $exists",
            ));
        }
        return Ok(udf_call(first, Vec::new(), &leaf.op));
    }
    let c = ident(first);
    Ok(match &leaf.op {
        Condition::Exists(true) => c.is_not_null(),
        Condition::Exists(false) => c.is_null(),
        Condition::Compare(op, v) => {
            let v = literal(leaf, kind, v)?;
            match op {
                CompareOp::Eq => c.eq(v),
                CompareOp::Ne => c.clone().is_null().or(c.not_eq(v)),
                CompareOp::Gt => c.gt(v),
                CompareOp::Gte => c.gt_eq(v),
                CompareOp::Lt => c.lt(v),
                CompareOp::Lte => c.lt_eq(v),
            }
        }
        Condition::In { values, negated } => {
            let lits = values
                .iter()
                .map(|v| literal(leaf, kind, v))
                .collect::<Result<Vec<_>>>()?;
            match (lits.is_empty(), negated) {
                (true, false) => lit(false),
                (true, true) => lit(true),
                (false, false) => c.in_list(lits, false),
                (false, true) => c.clone().is_null().or(c.in_list(lits, true)),
            }
        }
    })
}

fn literal(leaf: &Leaf, kind: FieldType, v: &Scalar) -> Result<Expr> {
    let mismatch = || {
        bad(
            leaf,
            format!("field is {kind:?}, got a {} value", v.type_name()),
        )
    };
    Ok(match (kind, v) {
        (FieldType::String, Scalar::Str(s)) => lit(s.clone()),
        (FieldType::Int | FieldType::Float, Scalar::Int(i)) => lit(*i),
        (FieldType::Int | FieldType::Float, Scalar::Float(f)) => lit(*f),
        (FieldType::Bool, Scalar::Bool(b)) => lit(*b),
        (FieldType::Timestamp, v) => lit(timestamp_micros(&v.to_json()).map_err(|e| bad(leaf, e))?),
        _ => return Err(mismatch()),
    })
}

fn udf_call(column: &str, path: Vec<String>, op: &Condition) -> Expr {
    let spec = serde_json::to_string(&Leaf {
        path,
        op: op.clone(),
    })
    .expect("leaf serialises");
    json_match_udf().call(vec![ident(column), lit(spec)])
}

fn json_match_udf() -> &'static ScalarUDF {
    static UDF: OnceLock<ScalarUDF> = OnceLock::new();
    UDF.get_or_init(|| {
        ScalarUDF::new_from_impl(JsonMatch {
            signature: Signature::any(2, Volatility::Immutable),
        })
    })
}

/// `hanzo_match(column, leaf_json)`: evaluates a leaf condition on a JSON text
/// column (path into it) or a string-list column (the list itself).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonMatch {
    signature: Signature,
}

impl ScalarUDFImpl for JsonMatch {
    fn name(&self) -> &str {
        "hanzo_match"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> lancedb::datafusion::common::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> lancedb::datafusion::common::Result<ColumnarValue> {
        let leaf: Leaf = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) => serde_json::from_str(s)
                .map_err(|e| DataFusionError::Execution(format!("hanzo_match spec: {e}")))?,
            other => {
                return Err(DataFusionError::Execution(format!(
                    "hanzo_match expects a literal spec, got {other:?}"
                )));
            }
        };
        let array = args.args[0].clone().into_array(args.number_rows)?;
        let out: BooleanArray = if let Some(text) = array.as_any().downcast_ref::<StringArray>() {
            (0..text.len())
                .map(|i| {
                    let doc = text
                        .is_valid(i)
                        .then(|| serde_json::from_str::<Value>(text.value(i)).ok())
                        .flatten();
                    let mut cur = doc.as_ref();
                    for key in &leaf.path {
                        cur = cur.and_then(|v| v.get(key));
                    }
                    Some(leaf_matches(&leaf.op, cur))
                })
                .collect()
        } else if let Some(list) = array.as_any().downcast_ref::<ListArray>() {
            (0..list.len())
                .map(|i| {
                    let value = list.is_valid(i).then(|| {
                        let inner = list.value(i);
                        let s = inner.as_any().downcast_ref::<StringArray>();
                        Value::Array(
                            s.map(|s| {
                                (0..s.len())
                                    .filter(|&j| s.is_valid(j))
                                    .map(|j| Value::from(s.value(j)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        )
                    });
                    Some(leaf_matches(&leaf.op, value.as_ref()))
                })
                .collect()
        } else {
            return Err(DataFusionError::Execution(format!(
                "hanzo_match cannot read a {} column",
                array.data_type()
            )));
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
