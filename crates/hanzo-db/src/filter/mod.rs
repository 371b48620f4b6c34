//! The portable filter language.
//!
//! A filter is a JSON document in the style of MongoDB:
//! `{"type": "test", "year": {"$gte": 2020}, "$or": [{"a.b": 1}, {"tags": "x"}]}`.
//! Operators: `$eq $ne $gt $gte $lt $lte $in $nin $and $or $not $exists`.
//! Keys name a typed field, `id`, `text`, or a path into the JSON metadata
//! (dotted, `"author.name"`, or nested objects, `{"author": {"name": …}}`).
//!
//! [`Filter::parse`] turns the document into a small tree; each backend
//! compiles the tree for its engine with every value bound, never spliced
//! into query text. [`Filter::matches`] evaluates it in memory, with the same
//! semantics every engine follows:
//! - a comparison on a missing or null field is false; `$ne` and `$nin` are
//!   true there (they are the negation of `$eq` and `$in`);
//! - `$not` is two-valued: it matches exactly what its operand does not;
//! - on an array value, `$eq` and `$in` match when any element matches;
//! - `$gt`-style comparisons need both sides numbers or both strings.

mod eval;
mod parse;

use serde::{Deserialize, Serialize};

pub use eval::leaf_matches;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// All must match (an empty list matches everything).
    And(Vec<Filter>),
    /// Any must match (an empty list matches nothing).
    Or(Vec<Filter>),
    /// Matches what the operand does not.
    Not(Box<Filter>),
    /// A condition on one field.
    Leaf(Leaf),
}

/// A condition on one field path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// Field path: `["year"]`, `["id"]`, or a JSON path `["author", "name"]`.
    pub path: Vec<String>,
    /// The condition.
    pub op: Condition,
}

/// The condition of a [`Leaf`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// `$eq $ne $gt $gte $lt $lte`.
    Compare(CompareOp, Scalar),
    /// `$in` (`negated: false`) or `$nin`.
    In {
        /// Candidate values.
        values: Vec<Scalar>,
        /// True for `$nin`.
        negated: bool,
    },
    /// `$exists`.
    Exists(bool),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `$eq`
    Eq,
    /// `$ne`
    Ne,
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
}

/// A literal value in a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Str(s) => s.clone().into(),
            Scalar::Int(i) => (*i).into(),
            Scalar::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Scalar::Bool(b) => (*b).into(),
        }
    }
    /// The type's name, for errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "string",
            Scalar::Int(_) => "integer",
            Scalar::Float(_) => "float",
            Scalar::Bool(_) => "boolean",
        }
    }
}

impl Filter {
    /// Parses a filter document. Errors name the position (`$and[1].year.$gt`) and the reason.
    ///
    /// ```
    /// use hanzo_db::Filter;
    /// let f = Filter::parse(&serde_json::json!({"type": "test", "year": {"$gte": 2020}})).unwrap();
    /// let meta = serde_json::json!({"type": "test", "year": 2021});
    /// assert!(f.matches(meta.as_object().unwrap()));
    /// assert!(Filter::parse(&serde_json::json!({"year": {"$between": 1}})).is_err());
    /// ```
    pub fn parse(doc: &serde_json::Value) -> crate::Result<Filter> {
        parse::parse(doc)
    }

    /// Parses a filter from JSON text.
    pub fn parse_str(text: &str) -> crate::Result<Filter> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| crate::Error::BadFilter {
                path: format!("line {} column {}", e.line(), e.column()),
                reason: format!("not valid JSON: {e}"),
            })?;
        Self::parse(&doc)
    }

    /// ANDs two filters.
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }

    /// Evaluates the filter against a record's fields, given as one JSON object
    /// (typed fields, `id`, `text` and metadata keys side by side).
    pub fn matches(&self, fields: &serde_json::Map<String, serde_json::Value>) -> bool {
        match self {
            Filter::And(v) => v.iter().all(|f| f.matches(fields)),
            Filter::Or(v) => v.iter().any(|f| f.matches(fields)),
            Filter::Not(f) => !f.matches(fields),
            Filter::Leaf(leaf) => {
                let mut cur = fields.get(&leaf.path[0]);
                for key in &leaf.path[1..] {
                    cur = cur.and_then(|v| v.get(key));
                }
                leaf_matches(&leaf.op, cur)
            }
        }
    }

    /// Visits every leaf.
    pub fn leaves(&self) -> Vec<&Leaf> {
        let mut out = Vec::new();
        fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a Leaf>) {
            match f {
                Filter::And(v) | Filter::Or(v) => v.iter().for_each(|f| walk(f, out)),
                Filter::Not(f) => walk(f, out),
                Filter::Leaf(l) => out.push(l),
            }
        }
        walk(self, &mut out);
        out
    }
}
