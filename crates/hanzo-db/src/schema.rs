//! Table schemas: the vector's dimension and metric, and typed metadata fields.
//!
//! A [`TableSchema`] is backend-neutral. Typed fields become real columns in
//! every engine so they can be filtered and indexed; any other metadata key is
//! kept in the record's JSON metadata.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Column names every table has; a typed field may not use them.
pub const RESERVED_COLUMNS: &[&str] = &[
    "id", "vector", "text", "image", "audio", "blobs", "metadata",
];

/// How distance between vectors is measured. Results are ordered best first:
/// smallest distance for all three (for `Dot` the distance is `1 - a·b`, as in LanceDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistanceMetric {
    /// Squared Euclidean distance.
    #[default]
    L2,
    /// Cosine distance, `1 - cos(a, b)`.
    Cosine,
    /// Dot-product distance, `1 - a·b`.
    Dot,
}

impl DistanceMetric {
    /// The metric's distance between two vectors, as the engines compute it.
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        use numkong::{Angular, Dot, Euclidean};
        // numkong's kernels are chosen by the CPU at run time (AVX-512,
        // AVX2, NEON, ...) and accumulate in f64; the scalar loops they
        // replace ran about ten times slower at 768 dimensions.
        let d = match self {
            DistanceMetric::L2 => f32::sqeuclidean(a, b),
            DistanceMetric::Dot => f32::dot(a, b).map(|d| 1.0 - d),
            DistanceMetric::Cosine => {
                if a.iter().all(|x| *x == 0.0) || b.iter().all(|x| *x == 0.0) {
                    // Undefined; the engines rank a zero vector last.
                    return 1.0;
                }
                f32::angular(a, b)
            }
        };
        d.map_or(f32::INFINITY, |d| d as f32)
    }
}

impl std::str::FromStr for DistanceMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Self::L2),
            "cosine" => Ok(Self::Cosine),
            "dot" | "ip" => Ok(Self::Dot),
            other => Err(Error::InvalidArgument(format!(
                "unknown metric `{other}`: use l2, cosine or dot"
            ))),
        }
    }
}

impl std::fmt::Display for DistanceMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::L2 => "l2",
            Self::Cosine => "cosine",
            Self::Dot => "dot",
        })
    }
}

/// The type of a typed metadata field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// UTF-8 string.
    String,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// Boolean.
    Bool,
    /// Instant in UTC, microsecond precision; written as RFC 3339 text or integer microseconds.
    Timestamp,
    /// List of strings (tags).
    StringList,
}

impl std::str::FromStr for FieldType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "string" | "str" | "text" => Self::String,
            "int" | "integer" | "i64" => Self::Int,
            "float" | "f64" | "double" => Self::Float,
            "bool" | "boolean" => Self::Bool,
            "timestamp" | "time" => Self::Timestamp,
            "string_list" | "tags" | "list" => Self::StringList,
            other => {
                return Err(Error::BadSchema {
                    reason: format!(
                        "unknown field type `{other}`: use string, int, float, bool, timestamp or string_list"
                    ),
                });
            }
        })
    }
}

/// One typed metadata field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Column name: ASCII letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: FieldType,
}

/// The shape of a table.
///
/// ```
/// use hanzo_db::{TableSchema, DistanceMetric, FieldType};
/// let schema = TableSchema::new(384)
///     .metric(DistanceMetric::Cosine)
///     .field("type", FieldType::String)
///     .field("year", FieldType::Int);
/// assert!(schema.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Vector dimension.
    pub dimension: usize,
    /// Distance metric used by default for searches and indexes.
    #[serde(default)]
    pub metric: DistanceMetric,
    /// Typed metadata fields stored as real columns.
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

/// Largest vector dimension accepted (LanceDB's own limit is higher; this guards typos).
pub const MAX_DIMENSION: usize = 65_536;

impl TableSchema {
    /// A schema with this dimension, L2 metric and no typed fields.
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            metric: DistanceMetric::L2,
            fields: Vec::new(),
        }
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: DistanceMetric) -> Self {
        self.metric = metric;
        self
    }

    /// Adds a typed metadata field.
    pub fn field(mut self, name: impl Into<String>, kind: FieldType) -> Self {
        self.fields.push(FieldDef {
            name: name.into(),
            kind,
        });
        self
    }

    /// The typed field of this name, if any.
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.kind)
    }

    /// Checks the dimension and field names.
    pub fn validate(&self) -> Result<()> {
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return Err(Error::BadSchema {
                reason: format!(
                    "dimension must be between 1 and {MAX_DIMENSION}, got {}",
                    self.dimension
                ),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            validate_identifier(&f.name, "field name")?;
            if RESERVED_COLUMNS.contains(&f.name.as_str()) || f.name.starts_with('_') {
                return Err(Error::BadSchema {
                    reason: format!(
                        "field name `{}` is reserved (reserved: {}, and names starting with `_`)",
                        f.name,
                        RESERVED_COLUMNS.join(", ")
                    ),
                });
            }
            if !seen.insert(f.name.as_str()) {
                return Err(Error::BadSchema {
                    reason: format!("field `{}` is declared twice", f.name),
                });
            }
        }
        Ok(())
    }
}

/// Checks a table or field name: 1–64 ASCII letters, digits, `_` or `-`
/// (`-` only in table names), not starting with a digit or `-`.
pub(crate) fn validate_identifier(name: &str, what: &str) -> Result<()> {
    let dash_ok = what == "table name";
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash_ok && c == '-'))
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadSchema {
            reason: format!(
                "invalid {what} `{name}`: use 1-64 ASCII letters, digits or `_`{}, not starting with a digit",
                if dash_ok { " or `-`" } else { "" }
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_reserved_and_duplicate_fields() {
        assert!(
            TableSchema::new(4)
                .field("id", FieldType::Int)
                .validate()
                .is_err()
        );
        assert!(
            TableSchema::new(4)
                .field("_x", FieldType::Int)
                .validate()
                .is_err()
        );
        assert!(
            TableSchema::new(4)
                .field("a", FieldType::Int)
                .field("a", FieldType::Bool)
                .validate()
                .is_err()
        );
        assert!(TableSchema::new(0).validate().is_err());
        assert!(
            TableSchema::new(4)
                .field("a b", FieldType::Int)
                .validate()
                .is_err()
        );
        assert!(
            TableSchema::new(4)
                .field("ok_1", FieldType::Int)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn metric_distances() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        assert_eq!(DistanceMetric::L2.distance(&a, &b), 2.0);
        assert_eq!(DistanceMetric::Cosine.distance(&a, &b), 1.0);
        assert_eq!(DistanceMetric::Dot.distance(&a, &a), 0.0);
        // A zero vector has no direction: cosine ranks it last, as LanceDB does.
        assert_eq!(DistanceMetric::Cosine.distance(&a, &[0.0, 0.0]), 1.0);
        assert_eq!(DistanceMetric::L2.distance(&a, &[1.0]), f32::INFINITY);
    }

    #[test]
    fn simd_distances_match_the_definitions() {
        // Long enough for every vector width, with an odd tail.
        let a: Vec<f32> = (0..771)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0)
            .collect();
        let b: Vec<f32> = (0..771)
            .map(|i| ((i * 17 % 89) as f32 - 44.0) / 40.0)
            .collect();
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let l2: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum();
        let close = |got: f32, want: f64| {
            assert!(
                (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{got} vs {want}"
            )
        };
        close(DistanceMetric::L2.distance(&a, &b), l2);
        close(DistanceMetric::Dot.distance(&a, &b), 1.0 - dot);
        close(
            DistanceMetric::Cosine.distance(&a, &b),
            1.0 - dot / (na * nb),
        );
    }
}
