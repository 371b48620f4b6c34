//! One record as the hot index holds it, kept small: at 1M rows every byte
//! of a row is a megabyte. Ids are shared with the id map, metadata is a
//! short list of pairs with interned keys (not a map per row), and the byte
//! counts are what the allocator really hands out.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One record: id, text, metadata and (while it is kept) the full-precision vector.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Shared with the id map's key.
    pub id: Arc<str>,
    pub text: Option<Box<str>>,
    /// Metadata exactly as LanceDB returns it (typed fields and JSON keys).
    pub meta: Meta,
    /// Full precision: kept for re-ranking, or only until the row is in the graph.
    pub vector: Box<[f32]>,
}

impl Row {
    pub fn new(
        id: String,
        text: Option<String>,
        meta: Map<String, Value>,
        vector: Vec<f32>,
    ) -> Self {
        Self {
            id: id.into(),
            text: text.map(String::into_boxed_str),
            meta: Meta::from_map(meta),
            vector: vector.into_boxed_slice(),
        }
    }

    /// Heap bytes this row owns (the id's too), as the allocator hands them out.
    pub fn bytes(&self) -> u64 {
        self.payload_bytes() + heap(self.vector.len() * 4)
    }

    /// Heap bytes besides the full-precision vector.
    pub fn payload_bytes(&self) -> u64 {
        heap(16 + self.id.len())
            + self.text.as_ref().map_or(0, |t| heap(t.len()))
            + self.meta.bytes()
    }
}

/// What `malloc` reserves for `n` bytes: 8 bytes of header, rounded up to
/// 16, at least 32 (glibc); nothing for an empty allocation.
pub(crate) fn heap(n: usize) -> u64 {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32) as u64
    }
}

/// Bytes of a hash table with room for `capacity` entries of `entry` bytes
/// (power-of-two buckets at most 7/8 full, one control byte each).
pub(crate) fn table_bytes(capacity: usize, entry: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        8
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    (buckets * (entry + 1) + 16) as u64
}

/// A row's metadata: `(key, value)` pairs in LanceDB's order, keys interned.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Meta(Box<[(Arc<str>, Value)]>);

impl Meta {
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map.into_iter().map(|(k, v)| (intern(&k), v)).collect())
    }

    #[cfg(test)]
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The value of a top-level key (compared, not hashed: rows hold a few).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find_map(|(k, v)| (&**k == key).then_some(v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    fn bytes(&self) -> u64 {
        heap(self.0.len() * size_of::<(Arc<str>, Value)>())
            + self.0.iter().map(|(_, v)| value_bytes(v)).sum::<u64>()
    }
}

/// Heap bytes a JSON value owns (serde_json's map is an `IndexMap`).
fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => heap(s.len()),
        Value::Array(a) => {
            heap(a.capacity() * size_of::<Value>()) + a.iter().map(value_bytes).sum::<u64>()
        }
        Value::Object(o) => {
            let entry = size_of::<(u64, String, Value)>();
            heap(o.len() * entry)
                + table_bytes(o.len(), size_of::<usize>())
                + o.iter()
                    .map(|(k, v)| heap(k.len()) + value_bytes(v))
                    .sum::<u64>()
        }
        _ => 0,
    }
}

/// Metadata keys repeat across rows: one shared copy of each. Bounded, so
/// that tables with ever-new keys do not grow it without end.
fn intern(key: &str) -> Arc<str> {
    const MAX_KEYS: usize = 16_384;
    static KEYS: LazyLock<Mutex<FxHashSet<Arc<str>>>> = LazyLock::new(Default::default);
    let mut keys = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = keys.get(key) {
        return k.clone();
    }
    let k: Arc<str> = key.into();
    if keys.len() < MAX_KEYS {
        keys.insert(k.clone());
    }
    k
}

impl Serialize for Meta {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Meta {
    /// Straight into pairs (no map built on the way: a reopen decodes 1M of these).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Meta;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Meta, A::Error> {
                let mut pairs: Vec<(Arc<str>, Value)> =
                    Vec::with_capacity(m.size_hint().unwrap_or(2));
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    let v: Value = m.next_value()?;
                    // A repeated key: the last one wins, as in a map.
                    match pairs.iter_mut().find(|(have, _)| **have == *k) {
                        Some(slot) => slot.1 = v,
                        None => pairs.push((intern(&k), v)),
                    }
                }
                Ok(Meta(pairs.into_boxed_slice()))
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// Keys a string id maps to (more than one only if an id was inserted twice).
#[derive(Debug, Clone)]
pub(crate) enum Keys {
    One(u64),
    Many(Box<[u64]>),
}

impl Keys {
    pub fn as_slice(&self) -> &[u64] {
        match self {
            Keys::One(k) => std::slice::from_ref(k),
            Keys::Many(v) => v,
        }
    }
}

/// Rows by key and keys by id: one table's rows, or a load's before its graph is there.
#[derive(Debug, Default)]
pub(crate) struct RowMap {
    ids: HashMap<Arc<str>, Keys>,
    /// Keys are ours (sequential), so a fast non-keyed hash is safe here.
    rows: FxHashMap<u64, Row>,
    /// Heap bytes of the rows (see [`Row::bytes`]).
    heap: u64,
}

impl RowMap {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ids: HashMap::with_capacity(n),
            rows: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            heap: 0,
        }
    }

    /// Records a row under a known key (no graph change).
    pub fn insert(&mut self, key: u64, row: Row) {
        self.heap += row.bytes();
        match self.ids.get_mut(&*row.id) {
            None => {
                self.ids.insert(row.id.clone(), Keys::One(key));
            }
            Some(slot) => {
                let mut keys = slot.as_slice().to_vec();
                keys.push(key);
                *slot = Keys::Many(keys.into());
            }
        }
        self.rows.insert(key, row);
    }

    /// Removes every row with this id; returns their keys.
    pub fn remove_id(&mut self, id: &str) -> Option<Keys> {
        let keys = self.ids.remove(id)?;
        for key in keys.as_slice() {
            if let Some(row) = self.rows.remove(key) {
                self.heap = self.heap.saturating_sub(row.bytes());
            }
        }
        Some(keys)
    }

    /// Drops a row's full-precision vector (it is in the graph now).
    pub fn drop_vector(&mut self, key: u64) {
        if let Some(row) = self.rows.get_mut(&key) {
            self.heap = self.heap.saturating_sub(heap(row.vector.len() * 4));
            row.vector = Box::default();
        }
    }

    /// Gives a row whose vector was dropped a vector again.
    pub fn set_vector(&mut self, key: u64, vector: Box<[f32]>) {
        if let Some(row) = self.rows.get_mut(&key) {
            if !row.vector.is_empty() {
                self.heap = self.heap.saturating_sub(heap(row.vector.len() * 4));
            }
            self.heap += heap(vector.len() * 4);
            row.vector = vector;
        }
    }

    pub fn get(&self, key: &u64) -> Option<&Row> {
        self.rows.get(key)
    }

    pub fn contains_key(&self, key: &u64) -> bool {
        self.rows.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Row)> {
        self.rows.iter()
    }

    /// Bytes in use: both tables and the rows' heap.
    pub fn bytes(&self) -> u64 {
        table_bytes(self.rows.capacity(), size_of::<(u64, Row)>())
            + table_bytes(self.ids.capacity(), size_of::<(Arc<str>, Keys)>())
            + self.heap
    }
}

impl std::ops::Index<&u64> for RowMap {
    type Output = Row;
    fn index(&self, key: &u64) -> &Row {
        &self.rows[key]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_round_trips_through_json_in_order() {
        let map = json!({"z": 1, "a": {"b": [1, "x"]}, "k": "v"})
            .as_object()
            .unwrap()
            .clone();
        let meta = Meta::from_map(map.clone());
        assert_eq!(meta.to_map(), map);
        assert_eq!(meta.get("a"), map.get("a"));
        assert_eq!(meta.get("nope"), None);
        let text = serde_json::to_string(&meta).unwrap();
        assert_eq!(text, serde_json::to_string(&map).unwrap());
        let back: Meta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, meta);
        let last: Meta = serde_json::from_str(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(last.get("a"), Some(&json!(2)));
        assert!(serde_json::from_str::<Meta>("[1]").is_err());
        // Keys are shared between rows.
        let other = Meta::from_map(map);
        assert!(Arc::ptr_eq(&meta.0[0].0, &other.0[0].0));
    }

    #[test]
    fn row_map_counts_bytes_back_to_zero() {
        let mut m = RowMap::with_capacity(4);
        let row = |id: &str| Row::new(id.into(), Some("t".into()), Map::new(), vec![1.0; 8]);
        m.insert(0, row("a"));
        m.insert(1, row("a"));
        m.insert(2, row("b"));
        assert_eq!(m.ids["a"].as_slice(), [0, 1]);
        assert!(m.heap > 0);
        m.drop_vector(0);
        assert!(m.rows[&0].vector.is_empty());
        assert_eq!(m.remove_id("a").unwrap().as_slice(), [0, 1]);
        assert_eq!(m.remove_id("b").unwrap().as_slice(), [2]);
        assert!(m.remove_id("a").is_none() && m.len() == 0);
        assert_eq!(m.heap, 0);
        assert!(m.bytes() > 0, "the tables keep their capacity");
        assert_eq!(heap(0), 0);
        assert_eq!(heap(1), 32);
        assert_eq!(heap(40), 48);
    }
}
