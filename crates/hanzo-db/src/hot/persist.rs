//! Saving and loading a table's hot index, encrypted like everything else.
//!
//! One file per table, `<db>/.hanzo/hot/<table>.idx`: when the database is
//! encrypted, an EVF1 object ([`crate::security::format`]) under the
//! database's current data key; otherwise plain. Its plaintext is
//!
//! ```text
//! "HZHOT1\n" | u32 header length | header (JSON) | rows | usearch buffer
//! row = u64 key | u32 len, id | u32 len + 1 (0: none), text | u32 len, metadata JSON | u32 n, n × f32
//! ```
//!
//! The header records the table version the file reflects; a file for any
//! other version, dimension, metric or quantisation is not used. Files are
//! written to a temporary name and renamed, so a crash leaves the old file
//! or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{HotConfig, HotQuantization};
use crate::error::{Error, Result};
use crate::record::put_f32s_le;
use crate::schema::DistanceMetric;
use crate::security::format::{self, Algorithm, ChunkSize, Encryptor};
use crate::security::store::KeySource;

use super::mem::{Budget, Layout, Mem, search_floor, search_threads, usearch_err};
use super::row::{Meta, Row, RowMap};
use super::vectors::{self, VectorFile};

const MAGIC: &[u8; 7] = b"HZHOT1\n";

/// How files are encrypted (`None`: the database is not encrypted).
#[derive(Debug, Clone)]
pub(crate) struct Sealing {
    pub keys: Option<Arc<dyn KeySource>>,
    pub alg: Algorithm,
    pub chunk: ChunkSize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    version: u64,
    dim: usize,
    metric: DistanceMetric,
    scalar: HotQuantization,
    keep_f32: bool,
    next_key: u64,
    rows: u64,
    index_len: u64,
    /// Keys saved before they reached the graph (files before this field:
    /// found by asking the graph for every key).
    #[serde(default)]
    pending: Option<Vec<u64>>,
    /// Keys in the graph that its search could not reach when they were
    /// added, searched exactly (files before this field: none).
    #[serde(default)]
    unreachable: Vec<u64>,
    /// The file of full-precision vectors for re-ranking, when they are on
    /// disk rather than in the rows (see [`super::vectors`]).
    #[serde(default)]
    vectors: Option<String>,
}

/// The file of a table's index.
pub(crate) fn path_for(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("{table}.idx"))
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes plaintext straight to a file, or through the streaming encryptor.
struct Sink {
    file: std::io::BufWriter<std::fs::File>,
    enc: Option<Encryptor>,
    buf: Vec<u8>,
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.enc {
            None => self.file.write_all(data),
            Some(enc) => {
                enc.update(data, &mut self.buf);
                self.file.write_all(&self.buf)?;
                self.buf.clear();
                Ok(())
            }
        }
    }
    /// Writes what is left; the file is not yet synced.
    fn finish(mut self) -> std::io::Result<std::fs::File> {
        if let Some(enc) = self.enc.take() {
            enc.finish(&mut self.buf);
            self.file.write_all(&self.buf)?;
        }
        self.file.into_inner().map_err(|e| e.into_error())
    }
}

/// A table's state written to a temporary file, not yet durable nor in place.
pub(crate) struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    file: std::fs::File,
    table: String,
    /// The vector file the state names: synced before it is put in place.
    vectors: Option<Arc<VectorFile>>,
    /// Vector files older than this belong to states this one replaces.
    replaces_before: u64,
    /// Bytes of state written.
    pub bytes: u64,
}

impl Staged {
    /// `fsync`s the file, renames it over the saved state and makes the
    /// rename durable. Needs no lock on the table: the caller releases its
    /// locks first, so writes go on during the flush (which takes the
    /// longest, hundreds of ms for a large table).
    pub fn commit(self) -> Result<u64> {
        let result = self
            .vectors
            .as_ref()
            .map_or(Ok(()), |v| v.sync())
            .and_then(|()| self.file.sync_all().map_err(io(&self.tmp)))
            .and_then(|()| std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path)))
            .and_then(|()| match self.path.parent() {
                Some(dir) => crate::buffer::sync_dir(dir),
                None => Ok(()),
            });
        match (&result, self.path.parent()) {
            (Err(_), _) => {
                let _ = std::fs::remove_file(&self.tmp);
            }
            // Files of the states this one replaces.
            (Ok(()), Some(dir)) => {
                vectors::remove_older(dir, &self.table, Some(self.replaces_before))
            }
            (Ok(()), None) => {}
        }
        result.map(|()| self.bytes)
    }
}

/// Writes a table's state to a temporary file beside its saved state;
/// [`Staged::commit`] puts it in place.
pub(crate) fn stage(dir: &Path, table: &str, mem: &Mem, sealing: &Sealing) -> Result<Staged> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let started = vectors::stamp_now();
    let path = path_for(dir, table);
    let tmp = dir.join(format!(
        ".{table}.{}.{}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    match write_file(&tmp, mem, sealing) {
        Ok((file, bytes)) => Ok(Staged {
            tmp,
            path,
            file,
            table: table.to_string(),
            vectors: mem.vectors.clone(),
            // A file made after this started is a newer state's.
            replaces_before: mem.vectors.as_ref().map_or(started, |v| v.stamp()),
            bytes,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Saves a table's state; returns the bytes written.
#[cfg(test)]
pub(crate) fn save(dir: &Path, table: &str, mem: &Mem, sealing: &Sealing) -> Result<u64> {
    stage(dir, table, mem, sealing)?.commit()
}

fn write_file(tmp: &Path, mem: &Mem, sealing: &Sealing) -> Result<(std::fs::File, u64)> {
    let file = std::fs::File::create(tmp).map_err(io(tmp))?;
    let enc = sealing.keys.as_ref().map(|keys| {
        let (id, key) = keys.current();
        Encryptor::new(&key, id, sealing.alg, sealing.chunk)
    });
    let mut sink = Sink {
        file: std::io::BufWriter::with_capacity(1 << 20, file),
        enc,
        buf: Vec::new(),
    };
    let mut index = vec![0u8; mem.index.serialized_length()];
    mem.index.save_to_buffer(&mut index).map_err(usearch_err)?;
    let header = Header {
        version: mem.version,
        dim: mem.layout.dim,
        metric: mem.layout.metric,
        scalar: mem.layout.scalar,
        keep_f32: mem.layout.keep_f32,
        next_key: mem.next_key,
        rows: mem.rows.len() as u64,
        index_len: index.len() as u64,
        pending: Some(
            mem.pending
                .iter()
                .copied()
                .filter(|k| mem.rows.contains_key(k))
                .collect(),
        ),
        unreachable: mem
            .stragglers
            .iter()
            .copied()
            .filter(|k| mem.rows.contains_key(k))
            .collect(),
        vectors: mem.vectors.as_ref().map(|v| v.name().to_string()),
    };
    let header = serde_json::to_vec(&header).expect("header serialises");
    let mut written = 0u64;
    let mut put = |sink: &mut Sink, data: &[u8]| -> Result<()> {
        written += data.len() as u64;
        sink.write(data).map_err(io(tmp))
    };
    put(&mut sink, MAGIC)?;
    put(&mut sink, &(header.len() as u32).to_le_bytes())?;
    put(&mut sink, &header)?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for (key, row) in mem.rows.iter() {
        encode_row(*key, row, &mut chunk);
        if chunk.len() >= 1 << 20 {
            put(&mut sink, &chunk)?;
            chunk.clear();
        }
    }
    put(&mut sink, &chunk)?;
    put(&mut sink, &index)?;
    let file = sink.finish().map_err(io(tmp))?;
    Ok((file, written))
}

fn encode_row(key: u64, row: &Row, out: &mut Vec<u8>) {
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&(row.id.len() as u32).to_le_bytes());
    out.extend_from_slice(row.id.as_bytes());
    match &row.text {
        None => out.extend_from_slice(&0u32.to_le_bytes()),
        Some(t) => {
            out.extend_from_slice(&(t.len() as u32 + 1).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
    }
    let meta = serde_json::to_vec(&row.meta).expect("metadata serialises");
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(row.vector.len() as u32).to_le_bytes());
    put_f32s_le(out, &row.vector);
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| damaged("it ends early"))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| damaged("a string is not UTF-8"))
    }
}

fn damaged(why: &str) -> Error {
    Error::Integrity {
        path: "hot index".into(),
        reason: why.to_string(),
    }
}

/// What a load expects the file to hold.
pub(crate) struct Expect<'a> {
    pub version: u64,
    pub layout: Layout,
    pub cfg: &'a HotConfig,
    pub budget: &'a Arc<Budget>,
}

/// Loads a table's saved state if the file exists and matches. `Ok(None)`:
/// no usable file (absent, another version or layout, or over budget).
pub(crate) fn load(
    dir: &Path,
    table: &str,
    sealing: &Sealing,
    want: Expect<'_>,
) -> Result<Option<Mem>> {
    let path = path_for(dir, table);
    let raw = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let plain = match &sealing.keys {
        Some(keys) => match format::decrypt_owned(raw, |id| keys.get(id)) {
            Ok(plain) => plain,
            Err(first) => {
                // Read again to name the failure (truncated, extended, altered).
                let e = std::fs::read(&path)
                    .ok()
                    .and_then(|raw| format::decrypt(&raw, |id| keys.get(id)).err())
                    .unwrap_or(first);
                return Err(Error::Integrity {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        },
        None if raw.starts_with(&format::MAGIC[..]) => {
            return Err(Error::Security {
                reason: format!("{} is encrypted but the database is not", path.display()),
            });
        }
        None => raw,
    };
    drop_early_if_wrong(&plain)?;
    let mut r = Reader {
        data: &plain,
        at: MAGIC.len(),
    };
    let hlen = r.u32()? as usize;
    let header: Header =
        serde_json::from_slice(r.take(hlen)?).map_err(|_| damaged("bad header"))?;
    let layout = want.layout;
    if header.version != want.version
        || header.dim != layout.dim
        || header.metric != layout.metric
        || header.scalar != layout.scalar
    {
        return Ok(None);
    }
    let layout = Layout {
        keep_f32: header.keep_f32,
        ..layout
    };
    let reserve = header.rows * layout.row_bytes(want.cfg.connectivity) + (1 << 20);
    if !want.budget.try_take(reserve) {
        return Ok(None);
    }
    // The graph is the file's last `index_len` bytes: usearch loads it on
    // one thread while this one decodes the rows (two halves of a reopen).
    let idx_at = plain
        .len()
        .checked_sub(header.index_len as usize)
        .filter(|&at| at >= r.at)
        .ok_or_else(|| damaged("it ends early"))?;
    let index_bytes = &plain[idx_at..];
    r.data = &plain[..idx_at];
    let cfg = want.cfg;
    let (index, rows) = std::thread::scope(|s| {
        let loader = s.spawn(move || -> Result<usearch::Index> {
            let index = layout.new_index(cfg, 0)?;
            index.load_from_buffer(index_bytes).map_err(usearch_err)?;
            let cap = (index.size() + index.size() / 4).max(1024);
            index
                .reserve_capacity_and_threads(cap, search_threads())
                .map_err(usearch_err)?;
            index.change_expansion_add(cfg.expansion_add);
            index.change_expansion_search(search_floor(cfg));
            Ok(index)
        });
        let rows = read_rows(&mut r, header.rows);
        let index = loader
            .join()
            .unwrap_or_else(|_| Err(damaged("the graph could not be loaded")));
        (index, rows)
    });
    let (index, rows) = match (index, rows) {
        (Ok(i), Ok(r)) => (i, r),
        (Err(e), _) | (_, Err(e)) => {
            want.budget.give_back(reserve);
            return Err(e);
        }
    };
    let mut mem = Mem {
        layout,
        index: Arc::new(index),
        rows,
        filters: Default::default(),
        pending: Vec::new(),
        stragglers: Vec::new(),
        next_key: header.next_key,
        version: header.version,
        from_disk: true,
        dirty: 0,
        reserved: reserve,
        budget: want.budget.clone(),
        vectors: None,
    };
    if let Some(name) = header.vectors.as_deref().filter(|_| !layout.keep_f32) {
        match VectorFile::open(dir, table, name, &layout, sealing, header.next_key) {
            Ok(f) => {
                let f = Arc::new(f);
                // Re-ranking reads it at random: bring it into the page
                // cache now, on an idle-priority thread, rather than one
                // disk read per candidate in the first searches.
                let warm = f.clone();
                let _ = super::background::spawn("hanzo-hot-warm", move || warm.warm());
                mem.vectors = Some(f);
            }
            // The graph's distances serve meanwhile (recall a little lower).
            Err(e) => tracing::warn!(%table, error = %e, "re-ranking without vectors on disk"),
        }
    }
    // Rows saved before they reached the graph are pending again.
    let mut pending: Vec<u64> = match header.pending {
        Some(keys) => keys
            .into_iter()
            .filter(|k| mem.rows.contains_key(k) && !mem.index.contains(*k))
            .collect(),
        None => mem
            .rows
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !mem.index.contains(*k))
            .collect(),
    };
    pending.sort_unstable();
    mem.pending = pending;
    mem.stragglers = header
        .unreachable
        .into_iter()
        .filter(|k| mem.rows.contains_key(k) && mem.index.contains(*k))
        .collect();
    // Files saved before unreachable rows kept their vectors: take the
    // graph's copy once here, not at every search.
    for key in mem.stragglers.clone() {
        let dim = mem.layout.dim;
        if mem.rows.get(&key).is_some_and(|r| r.vector.len() != dim) {
            let mut v = vec![0f32; dim];
            if matches!(mem.index.get(key, &mut v), Ok(n) if n > 0) {
                mem.rows.set_vector(key, v.into_boxed_slice());
            }
        }
    }
    Ok(Some(mem))
}

/// Decodes `n` saved rows.
fn read_rows(r: &mut Reader<'_>, n: u64) -> Result<RowMap> {
    let mut rows = RowMap::with_capacity(n as usize);
    for _ in 0..n {
        let key = r.u64()?;
        let len = r.u32()? as usize;
        let id = r.string(len)?;
        let t = r.u32()? as usize;
        let text = if t == 0 { None } else { Some(r.string(t - 1)?) };
        let m = r.u32()? as usize;
        let meta: Meta = serde_json::from_slice(r.take(m)?).map_err(|_| damaged("bad metadata"))?;
        let v = r.u32()? as usize;
        let vector = r
            .take(v * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect::<Box<[f32]>>();
        let row = Row {
            id: id.into(),
            text: text.map(String::into_boxed_str),
            meta,
            vector,
        };
        rows.insert(key, row);
    }
    if r.at != r.data.len() {
        return Err(damaged("rows do not end where the graph starts"));
    }
    Ok(rows)
}

fn drop_early_if_wrong(plain: &[u8]) -> Result<()> {
    if plain.starts_with(MAGIC) {
        Ok(())
    } else {
        Err(damaged("not a hot index file"))
    }
}

/// Removes a table's file, if any.
pub(crate) fn remove(dir: &Path, table: &str) {
    let _ = std::fs::remove_file(path_for(dir, table));
    vectors::remove_older(dir, table, None);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn unreachable_rows_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HotConfig::default();
        let budget = Arc::new(Budget {
            limit: 1 << 30,
            used: AtomicU64::new(0),
        });
        let layout = Layout {
            dim: 4,
            metric: DistanceMetric::L2,
            scalar: HotQuantization::F32,
            keep_f32: true,
        };
        let index = layout.new_index(&cfg, 16).unwrap();
        let mut mem = Mem {
            layout,
            index: Arc::new(index),
            rows: RowMap::with_capacity(4),
            filters: Default::default(),
            pending: Vec::new(),
            stragglers: Vec::new(),
            next_key: 0,
            version: 3,
            from_disk: false,
            dirty: 1,
            reserved: 0,
            budget: budget.clone(),
            vectors: None,
        };
        for i in 0..3 {
            let v = vec![i as f32, 1.0, 0.0, 0.0];
            let row = Row::new(format!("r{i}"), None, Default::default(), v.clone());
            let key = mem.add_built(row);
            super::super::mem::graph_add(&mem.index, false, key, &v).unwrap();
        }
        // Key 1 marked unreachable (its vector dropped, as files before
        // unreachable rows kept theirs had it); key 2's row deleted.
        mem.stragglers = vec![1, 2];
        mem.rows.drop_vector(1);
        mem.rows.remove_id("r2");
        let sealing = Sealing {
            keys: None,
            alg: Algorithm::default(),
            chunk: ChunkSize::default(),
        };
        save(dir.path(), "t", &mem, &sealing).unwrap();
        let want = Expect {
            version: 3,
            layout,
            cfg: &cfg,
            budget: &budget,
        };
        let back = load(dir.path(), "t", &sealing, want)
            .unwrap()
            .expect("loaded");
        assert_eq!(back.stragglers, vec![1]);
        assert_eq!(&*back.rows.get(&1).unwrap().vector, &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(back.unreachable_rows(), 1);
        assert_eq!(back.rows.len(), 2);
    }
}
