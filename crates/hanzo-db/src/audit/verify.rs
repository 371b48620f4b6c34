//! Verification of a whole audit log directory.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::format::{AuditKeys, FrameRead, Head, open_frame};
use super::log::{list_segments, segment_path};
use super::{AuditEntry, Outcome};
use crate::error::{Error, Result};

/// The first entry that failed verification.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadEntry {
    /// Segment file number.
    pub segment: u32,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// The `seq` expected at this position, where known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(
                f,
                "entry {s} (segment {}, offset {}): {}",
                self.segment, self.offset, self.reason
            ),
            None => write!(
                f,
                "segment {}, offset {}: {}",
                self.segment, self.offset, self.reason
            ),
        }
    }
}

/// The result of [`AuditLog::verify`](super::AuditLog::verify).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerifyReport {
    /// No tampering found.
    pub ok: bool,
    /// Entries that verified (up to the first bad one).
    pub entries: u64,
    /// Segment files present.
    pub segments: Vec<u32>,
    /// First and last `seq` verified.
    pub first_seq: Option<u64>,
    /// Last `seq` verified.
    pub last_seq: Option<u64>,
    /// The `seq` the head record names (the last entry known durable).
    pub head_seq: Option<u64>,
    /// The first bad entry.
    pub first_bad: Option<BadEntry>,
    /// Facts that are not tampering: an interrupted append at the end,
    /// writes whose outcome was never recorded (the process died).
    pub notes: Vec<String>,
}

struct Retention {
    dropped_from: u32,
    first_kept_segment: u32,
    first_kept_hash: String,
}

pub(crate) fn verify_dir(dir: &Path, keys: &AuditKeys) -> Result<VerifyReport> {
    let segs = list_segments(dir)?;
    let head_bytes = std::fs::read(dir.join("head")).unwrap_or_default();
    let (head, head_damaged) = Head::read(keys, &head_bytes);
    let mut r = VerifyReport {
        ok: true,
        entries: 0,
        segments: segs.clone(),
        first_seq: None,
        last_seq: None,
        head_seq: head.map(|h| h.seq),
        first_bad: None,
        notes: Vec::new(),
    };
    let fail = |r: &mut VerifyReport, segment, offset, seq, reason: String| {
        if r.first_bad.is_none() {
            r.ok = false;
            r.first_bad = Some(BadEntry {
                segment,
                offset,
                seq,
                reason,
            });
        }
    };
    // A log that starts at segment 1 starts at entry 0.
    let mut expected: Option<u64> = (segs.first() == Some(&1)).then_some(0);
    let mut prev: Option<[u8; 32]> = None;
    let mut first_anchor: Option<(u32, [u8; 32])> = None;
    let mut retentions = Vec::new();
    let mut open_begins = BTreeSet::new();
    let mut head_hash_seen: Option<[u8; 32]> = None;
    let mut torn_at: Option<(u32, u64)> = None;
    'segments: for (i, &seg) in segs.iter().enumerate() {
        if i > 0 && seg != segs[i - 1] + 1 {
            fail(
                &mut r,
                segs[i - 1] + 1,
                0,
                expected,
                "segment file missing (deleted)".into(),
            );
            break;
        }
        let last_segment = i + 1 == segs.len();
        let path = segment_path(dir, seg);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        if bytes.is_empty() {
            fail(&mut r, seg, 0, expected, "empty segment".into());
            break;
        }
        let mut off = 0usize;
        while off < bytes.len() {
            let at = off as u64;
            let (body, hash, len, mac_ok) = match open_frame(keys, seg, &bytes[off..]) {
                FrameRead::Entry {
                    body,
                    hash,
                    len,
                    mac_ok,
                } => (body, hash, len, mac_ok),
                FrameRead::Torn if last_segment => {
                    torn_at = Some((seg, at));
                    break 'segments;
                }
                FrameRead::Torn => {
                    fail(
                        &mut r,
                        seg,
                        at,
                        expected,
                        "segment ends inside an entry (truncated)".into(),
                    );
                    break 'segments;
                }
                FrameRead::Bad(reason) => {
                    fail(&mut r, seg, at, expected, reason);
                    break 'segments;
                }
            };
            if !mac_ok {
                fail(
                    &mut r,
                    seg,
                    at,
                    expected,
                    "MAC does not match (entry edited)".into(),
                );
                break 'segments;
            }
            let Ok(e) = serde_json::from_slice::<AuditEntry>(&body) else {
                fail(&mut r, seg, at, expected, "not an audit entry".into());
                break 'segments;
            };
            if let Some(want) = expected {
                if e.seq != want {
                    fail(
                        &mut r,
                        seg,
                        at,
                        Some(want),
                        format!(
                            "found entry {} where {want} belongs (entries deleted, reordered or inserted)",
                            e.seq
                        ),
                    );
                    break 'segments;
                }
            }
            match prev {
                Some(p) if e.prev != hex::encode(p) => {
                    fail(
                        &mut r,
                        seg,
                        at,
                        Some(e.seq),
                        "does not follow the entry before it (previous-hash mismatch)".into(),
                    );
                    break 'segments;
                }
                Some(_) => {}
                None if seg == 1 => {
                    if e.seq != 0 || e.prev != hex::encode([0u8; 32]) {
                        fail(
                            &mut r,
                            seg,
                            at,
                            Some(0),
                            "the log does not start with its genesis entry".into(),
                        );
                        break 'segments;
                    }
                }
                None => first_anchor = Some((seg, hash)),
            }
            let anchor_ok = e.op == "audit.segment"
                && e.shape.as_ref().and_then(|s| s["segment"].as_u64()) == Some(u64::from(seg));
            if (off == 0) != anchor_ok {
                let reason = if off == 0 {
                    "segment does not start with its anchor entry"
                } else {
                    "an anchor entry in the middle of a segment"
                };
                fail(&mut r, seg, at, Some(e.seq), reason.into());
                break 'segments;
            }
            if e.op == "audit.truncation_detected" {
                let shape = e.shape.clone().unwrap_or_default();
                fail(
                    &mut r,
                    seg,
                    at,
                    Some(e.seq),
                    if shape["head_seq"].is_null() {
                        "the head record was missing when the log was opened (removed)".to_string()
                    } else {
                        format!(
                            "the log was found cut short when it was opened: the head recorded entry {} but the log ended at entry {}",
                            shape["head_seq"], shape["log_last_seq"]
                        )
                    },
                );
                break 'segments;
            }
            if e.op == "audit.retention" {
                if let Some(s) = &e.shape {
                    retentions.push(Retention {
                        dropped_from: s["dropped_from"].as_u64().unwrap_or(0) as u32,
                        first_kept_segment: s["first_kept_segment"].as_u64().unwrap_or(0) as u32,
                        first_kept_hash: s["first_kept_hash"].as_str().unwrap_or("").into(),
                    });
                }
            }
            match e.outcome {
                Outcome::Begin => {
                    open_begins.insert(e.seq);
                }
                _ => {
                    if let Some(b) = e.begin {
                        open_begins.remove(&b);
                    }
                }
            }
            if head.is_some_and(|h| h.seq == e.seq) {
                head_hash_seen = Some(hash);
            }
            r.first_seq.get_or_insert(e.seq);
            r.last_seq = Some(e.seq);
            r.entries += 1;
            expected = Some(e.seq + 1);
            prev = Some(hash);
            off += len;
        }
    }
    if !r.ok {
        return Ok(r);
    }
    // Segments before the first present one must have been dropped by a
    // recorded retention, and the first kept anchor must be the one it named.
    if let Some(&first) = segs.first() {
        if first != 1 {
            let covered = retentions
                .iter()
                .any(|t| t.dropped_from < first && first <= t.first_kept_segment);
            let hash_ok = match first_anchor {
                Some((seg, h)) => retentions
                    .iter()
                    .filter(|t| t.first_kept_segment == seg)
                    .all(|t| t.first_kept_hash == hex::encode(h)),
                None => true,
            };
            if !covered {
                fail(
                    &mut r,
                    first - 1,
                    0,
                    None,
                    format!(
                        "segments before {first} are missing and no retention entry dropped them"
                    ),
                );
            } else if !hash_ok {
                let first_seq = r.first_seq;
                fail(
                    &mut r,
                    first,
                    0,
                    first_seq,
                    "the first kept segment is not the one the retention entry named".into(),
                );
            }
        }
    }
    match head {
        Some(h) => match r.last_seq {
            Some(last) if h.seq > last => fail(
                &mut r,
                segs.last().copied().unwrap_or(h.segment),
                0,
                Some(last + 1),
                format!(
                    "log truncated: the head records entry {} but the log ends at entry {last}",
                    h.seq
                ),
            ),
            None => fail(
                &mut r,
                h.segment,
                0,
                Some(0),
                format!(
                    "log deleted: the head records entry {} but no entry is left",
                    h.seq
                ),
            ),
            Some(_) => {
                if head_hash_seen != Some(h.hash) && r.first_seq.is_some_and(|f| f <= h.seq) {
                    fail(
                        &mut r,
                        h.segment,
                        0,
                        Some(h.seq),
                        "differs from the entry the head recorded (replaced)".into(),
                    );
                }
            }
        },
        None if r.entries > 0 => fail(
            &mut r,
            0,
            0,
            None,
            if head_damaged {
                "the head record is damaged".into()
            } else {
                "the head record is missing".into()
            },
        ),
        None => {}
    }
    if let Some((seg, at)) = torn_at {
        r.notes.push(format!(
            "an interrupted append left a partial entry at the end (segment {seg}, offset {at}); it was never acknowledged"
        ));
    }
    for b in open_begins {
        r.notes.push(format!(
            "write started at entry {b} has no recorded outcome (the process ended during it)"
        ));
    }
    Ok(r)
}
