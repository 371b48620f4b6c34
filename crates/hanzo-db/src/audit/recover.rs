//! Reading a log back: scanning a segment's frames, and recovering the
//! writer's state at open (truncating an interrupted append, noticing a
//! damaged segment or entries cut from the end).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use super::AuditEntry;
use super::format::{AuditKeys, FrameRead, Head, open_frame};
use super::log::{State, io, list_segments, open_append, segment_path};
use crate::error::Result;

/// What scanning one segment from an offset found.
pub(super) struct Tail {
    pub(super) end: u64,
    /// Hash of the entry asked for by `want`.
    pub(super) wanted: Option<[u8; 32]>,
    pub(super) next_seq: Option<u64>,
    pub(super) last: Option<Head>,
    pub(super) anchor_time: Option<String>,
    pub(super) torn: bool,
    pub(super) bad: bool,
}

pub(super) fn scan_segment(
    keys: &AuditKeys,
    segment: u32,
    bytes: &[u8],
    from: usize,
    want: Option<u64>,
) -> Tail {
    let mut t = Tail {
        end: from as u64,
        wanted: None,
        next_seq: None,
        last: None,
        anchor_time: None,
        torn: false,
        bad: false,
    };
    let mut off = from;
    while off < bytes.len() {
        match open_frame(keys, segment, &bytes[off..]) {
            FrameRead::Entry {
                body, hash, len, ..
            } => {
                let Ok(e) = serde_json::from_slice::<AuditEntry>(&body) else {
                    t.bad = true;
                    break;
                };
                if off == 0 {
                    t.anchor_time = Some(e.time.clone());
                }
                if want == Some(e.seq) {
                    t.wanted = Some(hash);
                }
                t.next_seq = Some(e.seq + 1);
                t.last = Some(Head {
                    seq: e.seq,
                    segment,
                    hash,
                });
                off += len;
                t.end = off as u64;
            }
            FrameRead::Torn => {
                t.torn = true;
                break;
            }
            FrameRead::Bad(_) => {
                t.bad = true;
                break;
            }
        }
    }
    t
}

/// Reads the last segment back, truncating a partial final frame (an
/// append that was interrupted and never acknowledged).
pub(super) fn recover(
    dir: &Path,
    keys: &AuditKeys,
    head: Option<Head>,
) -> Result<(State, bool, bool)> {
    let mut segs = list_segments(dir)?;
    // The highest segment whose first entry is damaged: the writer goes
    // on in the segment after it, from the last good entry before it.
    let mut damaged_top: Option<u32> = None;
    loop {
        let Some(&seg) = segs.last() else {
            let top = damaged_top.unwrap_or(1);
            let path = segment_path(dir, top);
            let file = open_append(&path, false).or_else(|_| open_append(&path, true))?;
            let empty = Head {
                seq: 0,
                segment: top,
                hash: [0; 32],
            };
            return Ok((
                State {
                    segment: top,
                    file: Arc::new(file),
                    offset: 0,
                    next_seq: 0,
                    last: empty,
                    anchor_time: None,
                    scratch: Default::default(),
                },
                damaged_top.is_some(),
                head.is_some(),
            ));
        };
        let path = segment_path(dir, seg);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let want = head.filter(|h| h.segment == seg).map(|h| h.seq);
        let tail = scan_segment(keys, seg, &bytes, 0, want);
        let Some(last) = tail.last else {
            if tail.bad {
                // Keep it as evidence (verify reports it).
                damaged_top = Some(damaged_top.unwrap_or(seg));
            } else if damaged_top.is_none() {
                // A segment whose creation was interrupted: no entry in it.
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
            segs.pop();
            continue;
        };
        // A partial frame past the last durable entry is an interrupted
        // append; one before it means acknowledged entries were cut.
        let lost = head.is_some_and(|h| h.seq > last.seq);
        if tail.torn && !tail.bad && !lost {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io(&path))?;
            f.set_len(tail.end).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
        }
        if let Some(top) = damaged_top {
            let file = open_append(&segment_path(dir, top), false)?;
            return Ok((
                State {
                    segment: top,
                    file: Arc::new(file),
                    offset: 0,
                    next_seq: last.seq + 1,
                    last,
                    anchor_time: None,
                    scratch: Default::default(),
                },
                true,
                false,
            ));
        }
        let file = open_append(&path, false)?;
        // The head names the last entry known durable: the log must
        // still reach it, with the same entry.
        // A log past its genesis always has a head: a missing one was removed.
        let cut = match head {
            Some(h) => {
                h.seq > last.seq || (h.segment == seg && tail.wanted.is_some_and(|w| w != h.hash))
            }
            None => last.seq > 0,
        };
        return Ok((
            State {
                segment: seg,
                file: Arc::new(file),
                offset: tail.end,
                next_seq: tail.next_seq.unwrap_or(0),
                last,
                anchor_time: tail.anchor_time,
                scratch: Default::default(),
            },
            tail.bad || (tail.torn && lost),
            cut,
        ));
    }
}
