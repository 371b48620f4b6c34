//! Filters that repeat (an agent's namespace, a user, a kind of memory) are
//! remembered as one bit per key and kept in step with every write. A
//! filtered walk then tests a bit per node it reaches, instead of looking the
//! row up and evaluating the filter on its metadata (at 1M rows, most of a
//! filtered search's time).

use std::sync::{Arc, Mutex};

use crate::filter::Filter;

use super::row::{Row, RowMap};
use super::search::row_matches;

/// Tables smaller than this evaluate filters row by row (a walk is short).
const MIN_ROWS: usize = 10_000;
/// Filters remembered with their bits, and filters counted before they are.
const MAX_BITS: usize = 8;
const MAX_SEEN: usize = 64;

/// One bit per row key: set when the row matches the filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bits {
    words: Vec<u64>,
    /// Bits set: the rows that match.
    ones: usize,
}

impl Bits {
    pub fn get(&self, key: u64) -> bool {
        self.words
            .get((key / 64) as usize)
            .is_some_and(|w| w & (1 << (key % 64)) != 0)
    }

    /// Rows that match.
    pub fn ones(&self) -> usize {
        self.ones
    }

    fn set(&mut self, key: u64, on: bool) {
        let at = (key / 64) as usize;
        if at >= self.words.len() {
            if !on {
                return;
            }
            self.words.resize(at + 1, 0);
        }
        let bit = 1 << (key % 64);
        let was = self.words[at] & bit != 0;
        match (was, on) {
            (false, true) => {
                self.words[at] |= bit;
                self.ones += 1;
            }
            (true, false) => {
                self.words[at] &= !bit;
                self.ones -= 1;
            }
            _ => {}
        }
    }
}

#[derive(Debug)]
struct Entry {
    filter: Filter,
    /// Searches that used this filter since it was first seen.
    uses: u64,
    /// Tick of the last use (the least recently used is dropped first).
    last: u64,
    bits: Option<Arc<Bits>>,
}

/// The filters of one table's searches, and the bits of those that repeat.
#[derive(Debug, Default)]
pub(crate) struct FilterBits {
    entries: Mutex<(u64, Vec<Entry>)>,
}

impl FilterBits {
    /// The bits of `filter` over `rows`: made on its second use on a table of
    /// at least [`MIN_ROWS`] rows, `None` until then (evaluate row by row).
    /// The caller holds the table's state, so `rows` cannot change meanwhile.
    pub fn lookup(&self, filter: &Filter, rows: &RowMap) -> Option<Arc<Bits>> {
        if rows.len() < MIN_ROWS {
            return None;
        }
        {
            let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let (tick, entries) = &mut *guard;
            *tick += 1;
            let now = *tick;
            match entries.iter_mut().find(|e| e.filter == *filter) {
                Some(e) => {
                    e.uses += 1;
                    e.last = now;
                    if e.bits.is_some() || e.uses < 2 {
                        return e.bits.clone();
                    }
                }
                None => {
                    if entries.len() >= MAX_SEEN {
                        drop_oldest(entries, |_| true);
                    }
                    entries.push(Entry {
                        filter: filter.clone(),
                        uses: 1,
                        last: now,
                        bits: None,
                    });
                    return None;
                }
            }
        }
        // Second use: evaluate every row once, outside the lock.
        let mut bits = Bits::default();
        for (key, row) in rows.iter() {
            if row_matches(filter, row) {
                bits.set(*key, true);
            }
        }
        let bits = Arc::new(bits);
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entries = &mut guard.1;
        if entries.iter().filter(|e| e.bits.is_some()).count() >= MAX_BITS {
            drop_oldest(entries, |e| e.bits.is_some());
        }
        if let Some(e) = entries.iter_mut().find(|e| e.filter == *filter) {
            e.bits.get_or_insert_with(|| bits.clone());
        }
        Some(bits)
    }

    /// Keeps every remembered filter in step with a row added under `key`.
    pub fn added(&mut self, key: u64, row: &Row) {
        self.each(|filter, bits| bits.set(key, row_matches(filter, row)));
    }

    /// Keeps every remembered filter in step with a row removed.
    pub fn removed(&mut self, key: u64) {
        self.each(|_, bits| bits.set(key, false));
    }

    fn each(&mut self, mut f: impl FnMut(&Filter, &mut Bits)) {
        let entries = &mut self.entries.get_mut().unwrap_or_else(|p| p.into_inner()).1;
        for e in entries {
            if let Some(bits) = &mut e.bits {
                // No search holds a copy while the state is written.
                f(&e.filter, Arc::make_mut(bits));
            }
        }
    }

    /// Bytes the bits take.
    pub fn bytes(&self) -> u64 {
        let guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .1
            .iter()
            .filter_map(|e| e.bits.as_ref())
            .map(|b| b.words.capacity() as u64 * 8)
            .sum()
    }
}

fn drop_oldest(entries: &mut Vec<Entry>, which: impl Fn(&Entry) -> bool) {
    if let Some(at) = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| which(e))
        .min_by_key(|(_, e)| e.last)
        .map(|(i, _)| i)
    {
        entries.swap_remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(bucket: u64) -> Row {
        let meta = json!({ "bucket": bucket }).as_object().unwrap().clone();
        Row::new(format!("r{bucket}"), None, meta, vec![])
    }

    #[test]
    fn bits_are_made_on_second_use_and_follow_writes() {
        let mut rows = RowMap::with_capacity(MIN_ROWS);
        for k in 0..MIN_ROWS as u64 {
            rows.insert(k, row(k % 10));
        }
        let mut fb = FilterBits::default();
        let f = Filter::parse(&json!({"bucket": 3})).unwrap();
        assert!(fb.lookup(&f, &rows).is_none(), "first use: row by row");
        let bits = fb.lookup(&f, &rows).expect("second use: bits");
        let matching = (0..MIN_ROWS as u64).filter(|k| bits.get(*k)).count();
        assert_eq!(matching, MIN_ROWS / 10);
        assert_eq!(bits.ones(), matching);
        assert!(bits.get(3) && !bits.get(4));
        drop(bits);
        let key = MIN_ROWS as u64 + 100;
        fb.added(key, &row(3));
        fb.added(key + 1, &row(4));
        fb.removed(13);
        let bits = fb.lookup(&f, &rows).unwrap();
        assert!(bits.get(key) && !bits.get(key + 1) && !bits.get(13));
        assert_eq!(bits.ones(), MIN_ROWS / 10, "one in, one out");
        assert!(fb.bytes() >= MIN_ROWS as u64 / 8);
        // A small table evaluates row by row.
        assert!(fb.lookup(&f, &RowMap::default()).is_none());
    }

    #[test]
    fn only_a_few_filters_keep_bits() {
        let mut rows = RowMap::with_capacity(MIN_ROWS);
        for k in 0..MIN_ROWS as u64 {
            rows.insert(k, row(k % 100));
        }
        let fb = FilterBits::default();
        for b in 0..(MAX_BITS as u64 + 3) {
            let f = Filter::parse(&json!({ "bucket": b })).unwrap();
            fb.lookup(&f, &rows);
            assert!(fb.lookup(&f, &rows).is_some());
        }
        let kept = fb
            .entries
            .lock()
            .unwrap()
            .1
            .iter()
            .filter(|e| e.bits.is_some())
            .count();
        assert_eq!(kept, MAX_BITS);
    }
}
