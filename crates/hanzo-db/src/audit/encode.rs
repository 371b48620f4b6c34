//! Queued entries and their encoding, on the appending side: an entry's
//! JSON is written straight from its fields (no `AuditEntry`, no
//! `serde_json::Value` but an event's own shape), its time and `prev` are
//! formatted on the stack, and every buffer is kept from one batch to the
//! next. The bytes are those `serde_json` writes for an [`AuditEntry`] with
//! the same fields (see the tests): the format does not change.

use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{EntryKeys, Nonces, seal_into};
use super::json::Obj;
use super::read::Read;
use super::{Event, Outcome};

/// An entry to append: an [`Event`] recorded at once, or a queued read.
#[derive(Debug)]
pub(super) enum Queued {
    Event(Event),
    Read(Read),
}

impl Queued {
    /// Whether the entry must be fsync'd before its operation returns
    /// under [`AuditSync::Changes`](super::AuditSync::Changes).
    pub(super) fn is_change(&self) -> bool {
        match self {
            Queued::Event(e) => e.is_change(),
            Queued::Read(r) => r.is_change(),
        }
    }
}

/// An entry waiting to be appended, with the time it was recorded.
pub(super) struct Pending {
    pub(super) time: SystemTime,
    pub(super) entry: Queued,
}

impl Pending {
    pub(super) fn now(entry: Queued) -> Self {
        Self {
            time: SystemTime::now(),
            entry,
        }
    }
}

/// Writes the JSON of `entry` as entry `seq`: [`AuditEntry`](super::AuditEntry)'s
/// fields in its order, those it skips when empty skipped.
fn write_body(out: &mut Vec<u8>, entry: &Queued, seq: u64, time: &str, prev: &str, pid: u32) {
    let mut o = Obj::new(out);
    o.u64("seq", seq).str("time", time).str("prev", prev);
    let (error, rows, version, begin) = match entry {
        Queued::Event(e) => {
            o.opt_str("principal", e.principal.as_deref())
                .str("op", &e.op)
                .opt_str("table", e.table.as_deref())
                .str("outcome", outcome_name(e.outcome.unwrap_or(Outcome::Ok)));
            (e.error.as_deref(), e.rows, e.version, e.begin)
        }
        Queued::Read(r) => {
            o.opt_str("principal", r.principal.as_deref())
                .str("op", r.op)
                .opt_str("table", r.table.as_deref())
                .str("outcome", outcome_name(r.outcome));
            (r.error.as_deref(), r.rows, None, None)
        }
    };
    if let Some(error) = error {
        o.str("error", error);
    }
    for (key, v) in [("rows", rows), ("version", version), ("begin", begin)] {
        if let Some(v) = v {
            o.u64(key, v);
        }
    }
    match entry {
        Queued::Event(Event {
            shape: Some(shape), ..
        }) => {
            o.with("shape", |out| {
                serde_json::to_writer(out, shape).expect("a JSON value serializes")
            });
        }
        Queued::Read(r) if !r.shape.is_none() => {
            o.with("shape", |out| r.shape.write_json(out));
        }
        _ => {}
    }
    o.u64("pid", u64::from(pid)).end();
}

/// As `serde` writes [`Outcome`].
fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Begin => "begin",
        Outcome::Ok => "ok",
        Outcome::Denied => "denied",
        Outcome::Error => "error",
    }
}

/// What sealing a batch needs, kept from one batch to the next: the
/// frames' buffer, one entry's JSON, the nonce pool, and the other queue
/// vector (swapped with the queue's, so that neither grows again).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) frames: Vec<u8>,
    pub(super) spare: Vec<Pending>,
    body: Vec<u8>,
    time: String,
    nonces: Nonces,
}

impl Scratch {
    /// Appends the frame of `pending` as entry `seq` (following the entry
    /// whose hash is `prev`) to `self.frames`; returns its hash.
    pub(super) fn seal(
        &mut self,
        (key_id, k): (&[u8; 16], &EntryKeys),
        segment: u32,
        seq: u64,
        prev: &[u8; 32],
        Pending { time, entry }: &Pending,
        pid: u32,
    ) -> [u8; 32] {
        let mut hex = [0u8; 64];
        hex::encode_to_slice(prev, &mut hex).expect("64 hex digits");
        let prev = std::str::from_utf8(&hex).expect("hex is ASCII");
        write_time(*time, &mut self.time);
        self.body.clear();
        write_body(&mut self.body, entry, seq, &self.time, prev, pid);
        let nonce = self.nonces.next();
        seal_into(&mut self.frames, key_id, k, segment, nonce, &self.body)
    }
}

/// Writes `t` as `chrono` writes it with `to_rfc3339_opts(Millis, true)`
/// (`2026-01-31T12:00:00.123Z`, milliseconds truncated), without `chrono`'s
/// formatting machinery for the years 1970 to 9999.
fn write_time(t: SystemTime, out: &mut String) {
    out.clear();
    let since = t.duration_since(UNIX_EPOCH).ok();
    let Some(d) = since.filter(|d| d.as_secs() < 253_402_300_800) else {
        let t = chrono::DateTime::<chrono::Utc>::from(t);
        out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        return;
    };
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    let fields = [
        (y, 4, '-'),
        (m, 2, '-'),
        (day, 2, 'T'),
        (s / 3600, 2, ':'),
        (s / 60 % 60, 2, ':'),
        (s % 60, 2, '.'),
        (u64::from(d.subsec_millis()), 3, 'Z'),
    ];
    for (v, width, sep) in fields {
        let mut div = 10u64.pow(width - 1);
        while div > 0 {
            out.push(char::from(b'0' + (v / div % 10) as u8));
            div /= 10;
        }
        out.push(sep);
    }
}

/// Year, month and day of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::audit::AuditEntry;
    use crate::audit::format::{AuditKeys, FrameRead, open_frame};
    use crate::audit::read::ReadShape;
    use crate::audit::read::tests::shape_json;
    use crate::query::SearchRequest;

    fn chrono_time(t: SystemTime) -> String {
        chrono::DateTime::<chrono::Utc>::from(t)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let mut out = String::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut check = |t: SystemTime| {
            write_time(t, &mut out);
            assert_eq!(out, chrono_time(t));
        };
        for _ in 0..20_000 {
            // Any nanosecond from 1970 to past 9999 (the fallback).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let nanos = (x >> 30) as u32 % 1_000_000_000;
            check(UNIX_EPOCH + Duration::new(x % 260_000_000_000, nanos));
        }
        for secs in [
            0,
            951_782_400,
            4_107_542_400,
            253_402_300_799,
            253_402_300_800,
        ] {
            check(UNIX_EPOCH + Duration::new(secs, 999_999_999));
        }
        check(UNIX_EPOCH - Duration::from_millis(1500));
        check(SystemTime::now());
    }

    /// What the log wrote before bodies were written from borrowed fields.
    fn before(e: &Event, seq: u64, time: &str, prev: &[u8; 32], pid: u32) -> Vec<u8> {
        let entry = AuditEntry {
            seq,
            time: time.into(),
            prev: hex::encode(prev),
            principal: e.principal.clone(),
            op: e.op.clone(),
            table: e.table.clone(),
            outcome: e.outcome.unwrap_or(Outcome::Ok),
            error: e.error.clone(),
            rows: e.rows,
            version: e.version,
            begin: e.begin,
            shape: e.shape.clone(),
            pid,
        };
        serde_json::to_vec(&entry).unwrap()
    }

    fn sealed_body(entry: Queued, time: SystemTime, prev: &[u8; 32]) -> Vec<u8> {
        let keys = AuditKeys::local(&[7; 32]);
        let (id, k) = keys.current();
        let mut s = Scratch::default();
        let hash = s.seal((&id, &k), 3, 41, prev, &Pending { time, entry }, 77);
        let FrameRead::Entry {
            body,
            hash: h,
            mac_ok: true,
            ..
        } = open_frame(&keys, 3, &s.frames)
        else {
            panic!("the frame does not open");
        };
        assert_eq!(h, hash);
        body
    }

    #[test]
    fn an_events_body_is_the_bytes_of_its_audit_entry() {
        let time = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        let prev = [0xab; 32];
        let mut e = Event::new(Some("a\"n\n\u{1}é"), "insert", Some("do\\cs"));
        e.outcome = Some(Outcome::Error);
        e.error = Some("TableNotFound".into());
        (e.rows, e.version, e.begin) = (Some(3), Some(9), Some(40));
        e.shape = Some(serde_json::json!({"z": 1, "a": [1, "two"]}));
        let want = before(&e, 41, "2026-01-01T00:00:00.123Z", &prev, 77);
        assert_eq!(sealed_body(Queued::Event(e), time, &prev), want);
        let e = Event::new(None, "open", None);
        let want = before(&e, 41, "2026-01-01T00:00:00.123Z", &prev, 77);
        assert_eq!(sealed_body(Queued::Event(e), time, &prev), want);
    }

    #[test]
    fn a_queued_reads_body_is_the_entry_the_json_shape_gave() {
        let time = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        let prev = [1; 32];
        let req = SearchRequest {
            vector: Some(vec![0.0; 8]),
            filter: Some(
                crate::Filter::parse(&serde_json::json!({"year": {"$lt": 2000}})).unwrap(),
            ),
            ..SearchRequest::default()
        };
        let shape = ReadShape::search("vector", &req);
        let mut read = Read::new(
            Some(&Arc::from("ann")),
            "search",
            Some("docs"),
            shape,
            &Ok(()),
        );
        read.rows = Some(10);
        let got = sealed_body(Queued::Read(read), time, &prev);
        let mut e = Event::new(Some("ann"), "search", Some("docs")).result(&Ok(()));
        e.rows = Some(10);
        e.shape = Some(shape_json(&ReadShape::search("vector", &req)));
        let want: AuditEntry =
            serde_json::from_slice(&before(&e, 41, "2026-01-01T00:00:00.123Z", &prev, 77)).unwrap();
        assert_eq!(serde_json::from_slice::<AuditEntry>(&got).unwrap(), want);
        // A failed read without a shape.
        let err: crate::Result<()> = Err(crate::Error::InvalidArgument("x".into()));
        let read = Read::new(None, "list_tables", None, ReadShape::None, &err);
        let got = sealed_body(Queued::Read(read), time, &prev);
        let e = Event::new(None, "list_tables", None).result(&err);
        assert_eq!(got, before(&e, 41, "2026-01-01T00:00:00.123Z", &prev, 77));
    }
}
