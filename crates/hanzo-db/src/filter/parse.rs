//! JSON document → [`Filter`] tree.

use serde_json::{Map, Value};

use super::{CompareOp, Condition, Filter, Leaf, Scalar};
use crate::error::{Error, Result};

/// Deepest nesting accepted, so a hostile document cannot overflow the stack.
const MAX_DEPTH: usize = 32;

pub(super) fn parse(doc: &Value) -> Result<Filter> {
    parse_object(doc, "", &[], 0)
}

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::BadFilter {
        path: if path.is_empty() {
            "$".into()
        } else {
            path.to_string()
        },
        reason: reason.into(),
    }
}

fn join(pos: &str, key: &str) -> String {
    if pos.is_empty() {
        key.to_string()
    } else {
        format!("{pos}.{key}")
    }
}

fn parse_object(doc: &Value, pos: &str, prefix: &[String], depth: usize) -> Result<Filter> {
    if depth > MAX_DEPTH {
        return Err(bad(pos, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let obj = doc
        .as_object()
        .ok_or_else(|| bad(pos, format!("expected an object, got {}", kind(doc))))?;
    let mut parts = Vec::with_capacity(obj.len());
    for (key, value) in obj {
        let here = join(pos, key);
        match key.as_str() {
            "$and" | "$or" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| bad(&here, format!("{key} takes an array of filters")))?;
                let subs = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| parse_object(v, &format!("{here}[{i}]"), prefix, depth + 1))
                    .collect::<Result<Vec<_>>>()?;
                parts.push(if key == "$and" {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                });
            }
            "$not" => parts.push(Filter::Not(Box::new(parse_object(
                value,
                &here,
                prefix,
                depth + 1,
            )?))),
            k if k.starts_with('$') => {
                return Err(bad(
                    &here,
                    format!("unknown operator `{k}` (top-level operators: $and, $or, $not)"),
                ));
            }
            _ => {
                let mut path = prefix.to_vec();
                for seg in key.split('.') {
                    if seg.is_empty() {
                        return Err(bad(&here, "empty segment in field path"));
                    }
                    path.push(seg.to_string());
                }
                if path.first().map(String::as_str) == Some("metadata") && path.len() > 1 {
                    path.remove(0);
                }
                parts.push(parse_field(value, &here, path, depth + 1)?);
            }
        }
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

fn parse_field(value: &Value, pos: &str, path: Vec<String>, depth: usize) -> Result<Filter> {
    match value {
        Value::Object(map) if map.keys().all(|k| k.starts_with('$')) && !map.is_empty() => {
            parse_operators(map, pos, path, depth)
        }
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => Err(bad(
            pos,
            "an object mixes operators ($…) with field names; split it with $and",
        )),
        Value::Object(map) if map.is_empty() => Err(bad(pos, "empty condition object")),
        Value::Object(_) => parse_object(value, pos, &path, depth),
        v => Ok(leaf(
            path,
            Condition::Compare(CompareOp::Eq, scalar(v, pos)?),
        )),
    }
}

fn parse_operators(
    map: &Map<String, Value>,
    pos: &str,
    path: Vec<String>,
    depth: usize,
) -> Result<Filter> {
    let mut parts = Vec::with_capacity(map.len());
    for (op, v) in map {
        let here = join(pos, op);
        let cmp = |o| -> Result<Filter> {
            Ok(leaf(path.clone(), Condition::Compare(o, scalar(v, &here)?)))
        };
        parts.push(match op.as_str() {
            "$eq" => cmp(CompareOp::Eq)?,
            "$ne" => cmp(CompareOp::Ne)?,
            "$gt" => cmp(CompareOp::Gt)?,
            "$gte" => cmp(CompareOp::Gte)?,
            "$lt" => cmp(CompareOp::Lt)?,
            "$lte" => cmp(CompareOp::Lte)?,
            "$in" | "$nin" => {
                let items = v
                    .as_array()
                    .ok_or_else(|| bad(&here, format!("{op} takes an array, got {}", kind(v))))?;
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| scalar(x, &format!("{here}[{i}]")))
                    .collect::<Result<Vec<_>>>()?;
                leaf(
                    path.clone(),
                    Condition::In {
                        values,
                        negated: op == "$nin",
                    },
                )
            }
            "$exists" => match v {
                Value::Bool(b) => leaf(path.clone(), Condition::Exists(*b)),
                other => return Err(bad(&here, format!("$exists takes true or false, got {}", kind(other)))),
            },
            "$not" => match v {
                Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')) => {
                    if depth > MAX_DEPTH {
                        return Err(bad(&here, format!("nested deeper than {MAX_DEPTH} levels")));
                    }
                    Filter::Not(Box::new(parse_operators(m, &here, path.clone(), depth + 1)?))
                }
                _ => return Err(bad(&here, "$not on a field takes an operator object, e.g. {\"$not\": {\"$gt\": 5}}")),
            },
            other => {
                return Err(bad(
                    &here,
                    format!("unknown operator `{other}` (use $eq $ne $gt $gte $lt $lte $in $nin $exists $not)"),
                ))
            }
        });
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

fn leaf(path: Vec<String>, op: Condition) -> Filter {
    Filter::Leaf(Leaf { path, op })
}

fn scalar(v: &Value, pos: &str) -> Result<Scalar> {
    match v {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => Ok(match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().ok_or_else(|| bad(pos, "number out of range"))?),
        }),
        Value::Null => Err(bad(pos, "null is not comparable; use {\"$exists\": false}")),
        other => Err(bad(
            pos,
            format!("expected a string, number or boolean, got {}", kind(other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_operators_and_paths() {
        let f = parse(&json!({"a.b": {"$gt": 1, "$lt": 5}, "t": "x"})).unwrap();
        let leaves = f.leaves();
        assert_eq!(leaves.len(), 3);
        assert_eq!(leaves[0].path, vec!["a", "b"]);
        let nested = parse(&json!({"a": {"b": 1}})).unwrap();
        assert_eq!(nested.leaves()[0].path, vec!["a", "b"]);
        let meta = parse(&json!({"metadata.a": 1})).unwrap();
        assert_eq!(meta.leaves()[0].path, vec!["a"]);
    }

    #[test]
    fn errors_name_the_position() {
        let err = parse(&json!({"$and": [{"x": 1}, {"y": {"$gt": [1]}}]})).unwrap_err();
        match err {
            Error::BadFilter { path, reason } => {
                assert_eq!(path, "$and[1].y.$gt");
                assert!(reason.contains("array"), "{reason}");
            }
            e => panic!("{e}"),
        }
        assert!(parse(&json!([1])).is_err());
        assert!(parse(&json!({"x": {"$regex": "a"}})).is_err());
        assert!(parse(&json!({"x": {"$gt": 1, "y": 2}})).is_err());
        assert!(parse(&json!({"x": null})).is_err());
        assert!(parse(&json!({"$foo": 1})).is_err());
        assert!(parse(&json!({"a..b": 1})).is_err());
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut doc = json!({"x": 1});
        for _ in 0..100 {
            doc = json!({ "$not": doc });
        }
        assert!(parse(&doc).is_err());
    }
}
