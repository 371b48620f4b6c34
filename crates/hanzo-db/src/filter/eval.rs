//! In-memory evaluation of a leaf condition against a JSON value.

use std::cmp::Ordering;

use serde_json::Value;

use super::{CompareOp, Condition, Scalar};

/// Evaluates a leaf condition on a field's value (`None` when missing),
/// following the semantics in the [module docs](super).
pub fn leaf_matches(cond: &Condition, value: Option<&Value>) -> bool {
    let value = value.filter(|v| !v.is_null());
    match cond {
        Condition::Exists(want) => value.is_some() == *want,
        Condition::Compare(CompareOp::Ne, s) => !equals(value, s),
        Condition::Compare(CompareOp::Eq, s) => equals(value, s),
        Condition::Compare(op, s) => match value.and_then(|v| compare(v, s)) {
            Some(ord) => match op {
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::Gte => ord != Ordering::Less,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::Lte => ord != Ordering::Greater,
                CompareOp::Eq | CompareOp::Ne => unreachable!("handled above"),
            },
            None => false,
        },
        Condition::In { values, negated } => values.iter().any(|s| equals(value, s)) != *negated,
    }
}

fn equals(value: Option<&Value>, s: &Scalar) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|v| compare(v, s) == Some(Ordering::Equal)),
        Some(v) => compare(v, s) == Some(Ordering::Equal),
    }
}

fn compare(v: &Value, s: &Scalar) -> Option<Ordering> {
    match (v, s) {
        (Value::String(a), Scalar::Str(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Scalar::Int(b)) => match a.as_i64() {
            Some(a) => Some(a.cmp(b)),
            None => a.as_f64()?.partial_cmp(&(*b as f64)),
        },
        (Value::Number(a), Scalar::Float(b)) => a.as_f64()?.partial_cmp(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::Filter;
    use serde_json::json;

    fn m(filter: serde_json::Value, doc: serde_json::Value) -> bool {
        Filter::parse(&filter)
            .unwrap()
            .matches(doc.as_object().unwrap())
    }

    #[test]
    fn semantics() {
        let d = json!({"a": 5, "s": "x", "tags": ["p", "q"], "n": {"k": 1.5}, "z": null});
        assert!(m(json!({"a": 5}), d.clone()));
        assert!(m(json!({"a": 5.0}), d.clone()));
        assert!(m(json!({"a": {"$gte": 5, "$lt": 6}}), d.clone()));
        assert!(!m(json!({"a": {"$gt": "4"}}), d.clone()));
        assert!(m(json!({"missing": {"$ne": 1}}), d.clone()));
        assert!(!m(json!({"missing": {"$gt": 1}}), d.clone()));
        assert!(m(json!({"$not": {"missing": {"$gt": 1}}}), d.clone()));
        assert!(m(json!({"tags": "q"}), d.clone()));
        assert!(m(json!({"tags": {"$nin": ["r"]}}), d.clone()));
        assert!(m(json!({"n.k": {"$lt": 2}}), d.clone()));
        assert!(m(json!({"z": {"$exists": false}}), d.clone()));
        assert!(m(
            json!({"$or": [{"a": 1}, {"s": {"$in": ["x", "y"]}}]}),
            d.clone()
        ));
        assert!(!m(json!({"$or": []}), d.clone()));
        assert!(m(json!({"$and": []}), d));
    }
}
