//! End-of-migration verification: counts on both sides, and a sample of
//! records compared field by field (vectors bit for bit).
//!
//! The sample is the source's first page read afresh plus a uniform
//! reservoir sample of the records this run copied, each looked up in the
//! target by id.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::database::Database;
use crate::error::Result;
use crate::query::Projection;
use crate::record::MultimodalRecord;

use super::{MigrationSource, SourceCollection};

/// Most differences listed in a report (the count says how many there were).
const MAX_LISTED: usize = 50;

/// The outcome of verifying one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Records in the source after the copy, when it can count them.
    pub source_count: Option<u64>,
    /// Source records that were skipped (not migratable).
    pub skipped: u64,
    /// Records in the target table.
    pub target_count: u64,
    /// Whether `target_count + skipped == source_count` (`None`: the source
    /// cannot count).
    pub counts_match: Option<bool>,
    /// Records compared field by field.
    pub sampled: usize,
    /// Number of sampled records that differed or were missing.
    pub differing: usize,
    /// What differed, one line per field (at most 50 lines).
    pub differences: Vec<String>,
}

impl Verification {
    /// True when the counts agree (or cannot be known) and no sampled record differed.
    pub fn ok(&self) -> bool {
        self.counts_match != Some(false) && self.differing == 0
    }
}

/// A uniform sample of the records seen (Algorithm R), bounded in size.
#[derive(Debug)]
pub(crate) struct Reservoir {
    cap: usize,
    seen: u64,
    items: Vec<MultimodalRecord>,
    rng: StdRng,
}

impl Reservoir {
    pub fn new(cap: usize, seed: u64) -> Self {
        Self {
            cap,
            seen: 0,
            items: Vec::with_capacity(cap.min(1024)),
            rng: StdRng::seed_from_u64(0x6d69_6772_6174_65 ^ seed),
        }
    }

    pub fn offer(&mut self, records: &[MultimodalRecord]) {
        for r in records {
            self.seen += 1;
            if self.items.len() < self.cap {
                self.items.push(r.clone());
            } else if self.cap > 0 {
                let j = self.rng.gen_range(0..self.seen);
                if (j as usize) < self.cap {
                    self.items[j as usize] = r.clone();
                }
            }
        }
    }

    pub fn into_records(self) -> Vec<MultimodalRecord> {
        self.items
    }
}

/// Verifies one migrated collection.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn verify_table(
    db: &Database,
    source: &dyn MigrationSource,
    coll: &SourceCollection,
    target: &str,
    source_count: Option<u64>,
    skipped: u64,
    copied_sample: Vec<MultimodalRecord>,
    sample_size: usize,
    transform: &(dyn Fn(&mut MultimodalRecord) + Sync),
) -> Result<Verification> {
    let target_count = db.count(target, None).await?;
    let counts_match = source_count.map(|c| c == target_count + skipped);
    let mut expected: BTreeMap<String, MultimodalRecord> = BTreeMap::new();
    for r in copied_sample {
        expected.insert(r.id.clone(), r);
    }
    if sample_size > 0 {
        // The source's current state wins over what this run saw.
        for mut r in source.read_page(coll, None, sample_size).await?.records {
            transform(&mut r);
            if r.vector.len() == coll.dimension {
                expected.insert(r.id.clone(), r);
            }
        }
    }
    let ids: Vec<String> = expected.keys().cloned().collect();
    let mut got: BTreeMap<String, MultimodalRecord> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        for r in db.get_many(target, chunk, &Projection::all(), None).await? {
            got.insert(r.id.clone(), r);
        }
    }
    let mut differences = Vec::new();
    let mut differing = 0;
    for (id, want) in &expected {
        let before = differences.len();
        match got.get(id) {
            None => differences.push(format!("record `{id}` is missing from the target")),
            Some(have) => compare(want, have, &mut differences),
        }
        if differences.len() > before {
            differing += 1;
        }
    }
    let total = differences.len();
    if total > MAX_LISTED {
        differences.truncate(MAX_LISTED);
        differences.push(format!("… and {} more", total - MAX_LISTED));
    }
    Ok(Verification {
        source_count,
        skipped,
        target_count,
        counts_match,
        sampled: expected.len(),
        differing,
        differences,
    })
}

/// Field-by-field comparison of a source record and its migrated copy.
pub(crate) fn compare(want: &MultimodalRecord, have: &MultimodalRecord, out: &mut Vec<String>) {
    let id = &want.id;
    if want.vector.len() != have.vector.len() {
        out.push(format!(
            "record `{id}`: vector has {} components in the source, {} in the target",
            want.vector.len(),
            have.vector.len()
        ));
    } else if let Some(i) =
        (0..want.vector.len()).find(|&i| want.vector[i].to_bits() != have.vector[i].to_bits())
    {
        out.push(format!(
            "record `{id}`: vector component {i} differs (source {:?}, target {:?})",
            want.vector[i], have.vector[i]
        ));
    }
    if want.text != have.text {
        out.push(format!(
            "record `{id}`: text differs (source {:?}, target {:?})",
            want.text.as_deref().map(short),
            have.text.as_deref().map(short)
        ));
    }
    bytes_field(
        id,
        "image",
        want.image.as_deref(),
        have.image.as_deref(),
        out,
    );
    bytes_field(
        id,
        "audio",
        want.audio.as_deref(),
        have.audio.as_deref(),
        out,
    );
    if want.blobs.len() != have.blobs.len() {
        out.push(format!(
            "record `{id}`: {} blobs in the source, {} in the target",
            want.blobs.len(),
            have.blobs.len()
        ));
    } else {
        for (i, (a, b)) in want.blobs.iter().zip(&have.blobs).enumerate() {
            if a.mime != b.mime {
                out.push(format!(
                    "record `{id}`: blobs[{i}] MIME type differs ({} vs {})",
                    a.mime, b.mime
                ));
            }
            bytes_field(
                id,
                &format!("blobs[{i}]"),
                Some(a.data.as_slice()),
                Some(b.data.as_slice()),
                out,
            );
        }
    }
    metadata(id, &want.metadata, &have.metadata, out);
}

fn bytes_field(id: &str, name: &str, a: Option<&[u8]>, b: Option<&[u8]>, out: &mut Vec<String>) {
    match (a, b) {
        (None, None) => {}
        (Some(_), None) => out.push(format!("record `{id}`: {name} is missing from the target")),
        (None, Some(_)) => out.push(format!("record `{id}`: {name} is in the target only")),
        (Some(a), Some(b)) if a != b => {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            out.push(format!(
                "record `{id}`: {name} differs ({} bytes vs {}, first difference at byte {at})",
                a.len(),
                b.len()
            ));
        }
        _ => {}
    }
}

fn metadata(id: &str, want: &Map<String, Value>, have: &Map<String, Value>, out: &mut Vec<String>) {
    for (k, v) in want {
        match have.get(k) {
            None => out.push(format!(
                "record `{id}`: metadata `{k}` is missing from the target"
            )),
            Some(h) if !same_json(v, h) => out.push(format!(
                "record `{id}`: metadata `{k}` differs (source {}, target {})",
                super::clip(v),
                super::clip(h)
            )),
            _ => {}
        }
    }
    for k in have.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!(
            "record `{id}`: metadata `{k}` is in the target only"
        ));
    }
}

/// JSON equality where numbers compare by value (1 and 1.0 are equal).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Blob;

    #[test]
    fn names_each_differing_field() {
        let a = MultimodalRecord::new("x", vec![1.0, 2.0, 3.0])
            .with_text("hello")
            .with_image(vec![1, 2, 3])
            .with_blob(Blob::new("application/pdf", vec![9]))
            .with_metadata("k", 1);
        let mut out = Vec::new();
        compare(&a, &a.clone(), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut b = a.clone();
        b.vector[1] = f32::from_bits(2.0f32.to_bits() + 1);
        b.text = Some("hell".into());
        b.image = Some(vec![1, 2, 4]);
        b.metadata.insert("k".into(), 2.into());
        b.metadata.insert("extra".into(), true.into());
        compare(&a, &b, &mut out);
        let all = out.join("\n");
        for needle in [
            "component 1",
            "text differs",
            "image differs",
            "`k` differs",
            "`extra` is in the target only",
        ] {
            assert!(all.contains(needle), "{needle} not in {all}");
        }
        assert!(same_json(&serde_json::json!(1), &serde_json::json!(1.0)));
    }

    #[test]
    fn reservoir_is_bounded_and_keeps_early_items_when_small() {
        let mut r = Reservoir::new(10, 1);
        let recs: Vec<_> = (0..1000)
            .map(|i| MultimodalRecord::new(i.to_string(), vec![0.0]))
            .collect();
        r.offer(&recs[..5]);
        assert_eq!(r.items.len(), 5);
        r.offer(&recs[5..]);
        let items = r.into_records();
        assert_eq!(items.len(), 10);
        // Uniform: some item from past the first ten was taken.
        assert!(items.iter().any(|x| x.id.parse::<usize>().unwrap() >= 10));
    }
}
