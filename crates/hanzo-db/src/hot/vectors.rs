//! Full-precision copies of the graph's vectors on disk, read per candidate
//! to re-rank a search when they do not fit the memory budget (DiskANN's
//! split: the graph and its quantised vectors in memory, exact vectors on
//! disk). At 1M × 768 the graph alone fills most of the default budget;
//! re-ranking its top `k × rerank_factor` from here costs a few dozen
//! `pread`s of 1.5 KB from the page cache, and where the kernel has evicted
//! some, one wait for the disk ([`VectorFile::read_many`]).
//!
//! One file per table state, `<db>/.hanzo/hot/<table>.<stamp>.vec` (`stamp`:
//! 16 hex digits of the creation time in ns; a newer state's file has a
//! larger stamp, and a save removes the older ones):
//!
//! ```text
//! file   = header (64 bytes) || slot(key 0) || slot(key 1) || ...
//! header:  0 magic "HZVEC1\n\0" | 8 alg (0 none, 1 AES-256-GCM, 2 ChaCha20-Poly1305)
//!          | 9 element bytes (2: f16, 4: f32) | 10 reserved (2) | 12 dim u32 LE
//!          | 16 key_id (16) | 32 salt (16) | 48 reserved (12) | 60 check: SHA-256(bytes 0..60)[..4]
//! slot:    at 64 + key × stride: nonce (12) || sealed(key u64 LE || dim elements LE) || tag (16)
//! K_file:  HKDF-SHA256(ikm = data key, salt = header salt, info = "hanzo-db/hvec1" || alg)
//! aad:     the 64 header bytes
//! ```
//!
//! Nonces are random (96 bits) per write: a slot is written again after a
//! crash (keys past the saved state's are handed out again), so a nonce
//! derived from the key would repeat. Unencrypted, the nonce is zero and the
//! tag is `SHA-256("hanzo-db/hvec1/plain" || aad || body)[..16]`, a checksum.
//! A slot never written (a hole reads as zeros), torn, altered or holding
//! another key fails its check: the candidate keeps the graph's distance.
//!
//! The file is a cache of what LanceDB holds: it is `fsync`ed before a save
//! that names it, and a load cuts it back to the saved state's keys.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::HotQuantization;
use crate::error::{Error, Result};
use crate::security::record::{NONCE_LEN, RecordAead, TAG_LEN};

use super::mem::Layout;
use super::persist::{Sealing, io};

const MAGIC: &[u8; 8] = b"HZVEC1\n\0";
const HEADER_LEN: u64 = 64;
const KDF_INFO: &[u8] = b"hanzo-db/hvec1";
const PLAIN_TAG: &[u8] = b"hanzo-db/hvec1/plain";

/// A table state's on-disk full-precision vectors (see the module docs).
pub(crate) struct VectorFile {
    file: File,
    path: PathBuf,
    name: String,
    /// When it was made (see [`remove_older`]).
    stamp: u64,
    header: [u8; HEADER_LEN as usize],
    aead: RecordAead,
    dim: usize,
    /// Bytes per element: 2 (f16) or 4 (f32).
    elem: usize,
    stride: usize,
}

impl std::fmt::Debug for VectorFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorFile")
            .field("name", &self.name)
            .field("dim", &self.dim)
            .field("elem", &self.elem)
            .finish_non_exhaustive()
    }
}

fn damaged(path: &Path, why: &str) -> Error {
    Error::Integrity {
        path: path.display().to_string(),
        reason: format!("{why}; the hot index re-ranks without it"),
    }
}

/// Bytes per stored element for a graph layout: one step finer than the
/// graph (`i8` → f16, `f16` → f32); `None` for an `f32` graph, which is
/// exact already.
pub(crate) fn element_bytes(layout: &Layout) -> Option<usize> {
    match layout.scalar {
        HotQuantization::I8 | HotQuantization::Auto => Some(2),
        HotQuantization::F16 => Some(4),
        HotQuantization::F32 => None,
    }
}

/// A stamp for a file made now: nanoseconds since the epoch.
pub(crate) fn stamp_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether `file` is one of `table`'s vector files; its stamp if so.
fn stamp_of(table: &str, file: &str) -> Option<u64> {
    let rest = file.strip_prefix(table)?.strip_prefix('.')?;
    let hex = rest.strip_suffix(".vec")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Removes `table`'s vector files older than `stamp` (all with `None`).
pub(crate) fn remove_older(dir: &Path, table: &str, stamp: Option<u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(s) = name.to_str().and_then(|n| stamp_of(table, n)) else {
            continue;
        };
        if stamp.is_none_or(|keep| s < keep) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl VectorFile {
    /// A new, empty file for a table state of this layout.
    pub fn create(dir: &Path, table: &str, layout: &Layout, sealing: &Sealing) -> Result<Self> {
        let elem = element_bytes(layout).ok_or_else(|| {
            Error::InvalidArgument("an f32 graph needs no vectors on disk".into())
        })?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let stamp = stamp_now();
        let name = format!("{table}.{stamp:016x}.vec");
        let path = dir.join(&name);
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[9] = elem as u8;
        header[12..16].copy_from_slice(&(layout.dim as u32).to_le_bytes());
        rand::thread_rng().fill_bytes(&mut header[32..48]);
        let aead = match &sealing.keys {
            None => RecordAead::plain(PLAIN_TAG),
            Some(keys) => {
                let (id, key) = keys.current();
                header[8] = sealing.alg.id();
                header[16..32].copy_from_slice(&id);
                cipher(&header, key.expose_secret())
            }
        };
        let check = Sha256::digest(&header[..60]);
        header[60..].copy_from_slice(&check[..4]);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all_at(&header, 0).map_err(io(&path))?;
        Ok(Self::with(
            file, path, name, stamp, header, aead, layout.dim, elem,
        ))
    }

    /// Opens a saved state's file, cut back to its `next_key` slots.
    pub fn open(
        dir: &Path,
        table: &str,
        name: &str,
        layout: &Layout,
        sealing: &Sealing,
        next_key: u64,
    ) -> Result<Self> {
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| damaged(&path, "the vector file has no header"))?;
        if &header[..8] != MAGIC || Sha256::digest(&header[..60])[..4] != header[60..] {
            return Err(damaged(
                &path,
                "not a vector file, or its header is damaged",
            ));
        }
        let elem = header[9] as usize;
        let dim = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
        if Some(elem) != element_bytes(layout) || dim != layout.dim {
            return Err(damaged(&path, "its layout is not the saved index's"));
        }
        let aead = match (header[8], &sealing.keys) {
            (0, None) => RecordAead::plain(PLAIN_TAG),
            (0, Some(_)) | (_, None) => {
                return Err(damaged(&path, "its encryption is not the database's"));
            }
            (_, Some(keys)) => {
                let id: [u8; 16] = header[16..32].try_into().expect("16 bytes");
                let key = keys.get(&id).ok_or_else(|| {
                    damaged(&path, "the data key that sealed it is not available")
                })?;
                cipher(&header, key.expose_secret())
            }
        };
        let stamp = stamp_of(table, name).unwrap_or(0);
        let me = Self::with(file, path, name.to_string(), stamp, header, aead, dim, elem);
        let end = me.offset(next_key);
        let len = me.file.metadata().map_err(io(&me.path))?.len();
        if len > end {
            // Slots past the saved state are handed out again.
            me.file.set_len(end).map_err(io(&me.path))?;
        }
        Ok(me)
    }

    fn with(
        file: File,
        path: PathBuf,
        name: String,
        stamp: u64,
        header: [u8; 64],
        aead: RecordAead,
        dim: usize,
        elem: usize,
    ) -> Self {
        Self {
            file,
            path,
            name,
            stamp,
            header,
            aead,
            dim,
            elem,
            stride: NONCE_LEN + 8 + dim * elem + TAG_LEN,
        }
    }

    /// The file's name in the hot index's directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's stamp (see [`remove_older`]).
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    fn offset(&self, key: u64) -> u64 {
        HEADER_LEN + key * self.stride as u64
    }

    /// Writes rows' vectors to their slots (runs of consecutive keys in one
    /// write each). Not synced: see [`sync`](Self::sync).
    pub fn write<'a>(&self, rows: impl IntoIterator<Item = (u64, &'a [f32])>) -> Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        let mut halves = Vec::new();
        let mut first = 0u64;
        let mut next = 0u64;
        for (key, v) in rows {
            if v.len() != self.dim {
                continue;
            }
            if !buf.is_empty() && (key != next || buf.len() >= 4 << 20) {
                self.file
                    .write_all_at(&buf, self.offset(first))
                    .map_err(io(&self.path))?;
                buf.clear();
            }
            if buf.is_empty() {
                first = key;
            }
            self.seal_into(key, v, &mut buf, &mut halves);
            next = key + 1;
        }
        if !buf.is_empty() {
            self.file
                .write_all_at(&buf, self.offset(first))
                .map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// [`write`](Self::write), logging a failure instead (those rows keep
    /// the graph's distances); returns whether it succeeded.
    pub fn write_or_warn<'a>(&self, rows: impl IntoIterator<Item = (u64, &'a [f32])>) -> bool {
        match self.write(rows) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "vectors for re-ranking not written");
                false
            }
        }
    }

    fn seal_into(&self, key: u64, v: &[f32], out: &mut Vec<u8>, halves: &mut Vec<half::f16>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(&key.to_le_bytes());
        if self.elem == 2 {
            // The slice conversion uses the CPU's F16C where it has one.
            halves.resize(v.len(), half::f16::ZERO);
            halves.convert_from_f32_slice(v);
            let bits: &[u16] = halves.reinterpret_cast();
            #[cfg(target_endian = "little")]
            out.extend_from_slice(bytemuck::cast_slice(bits));
            #[cfg(not(target_endian = "little"))]
            for b in bits {
                out.extend_from_slice(&b.to_le_bytes());
            }
        } else {
            crate::record::put_f32s_le(out, v);
        }
        let (nonce, body) = out[start..].split_at_mut(NONCE_LEN);
        if !self.aead.is_plain() {
            rand::thread_rng().fill_bytes(nonce);
        }
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().expect("12 bytes");
        let tag = self.aead.seal(nonce, &self.header, body);
        out.extend_from_slice(&tag);
    }

    /// Reads the vector of `key` into `out` (`dim` floats); false when its
    /// slot is missing or fails its check. `scratch` is reused between calls.
    pub fn read(&self, key: u64, out: &mut [f32], scratch: &mut Vec<u64>) -> bool {
        let buf = slot_buf(scratch, self.stride);
        out.len() == self.dim
            && self.file.read_exact_at(buf, self.offset(key)).is_ok()
            && self.open_slot(key, buf, out)
    }

    /// Reads the vectors of `keys`, calling `each(i, vector)` for each `i`
    /// whose slot reads back intact. Slots in the page cache are read at
    /// once; the rest are asked of the disk together (`POSIX_FADV_WILLNEED`)
    /// before any is waited on, so a search whose candidates were evicted
    /// waits for about one disk read rather than one per candidate. Returns
    /// how many slots were not in the cache.
    pub fn read_many(&self, keys: &[u64], mut each: impl FnMut(usize, &[f32])) -> usize {
        let mut v = vec![0f32; self.dim];
        let mut scratch = Vec::new();
        let mut missed = Vec::new();
        for (i, &key) in keys.iter().enumerate() {
            let buf = slot_buf(&mut scratch, self.stride);
            if !page_cache::read_cached(&self.file, buf, self.offset(key)) {
                missed.push(i);
            } else if self.open_slot(key, buf, &mut v) {
                each(i, &v);
            }
        }
        for &i in &missed {
            page_cache::will_need(&self.file, self.offset(keys[i]), self.stride);
        }
        for &i in &missed {
            if self.read(keys[i], &mut v, &mut scratch) {
                each(i, &v);
            }
        }
        missed.len()
    }

    /// Checks and decodes a slot read into `buf` into `out`.
    fn open_slot(&self, key: u64, buf: &mut [u8], out: &mut [f32]) -> bool {
        let (nonce, rest) = buf.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().expect("12 bytes");
        let ok = self.aead.open(nonce, &self.header, body, tag);
        if !ok || body[..8] != key.to_le_bytes() {
            return false;
        }
        // Elements start 20 bytes into an 8-aligned buffer: 4-aligned.
        let elems = &body[8..];
        if self.elem == 2 {
            let bits: &[u16] = bytemuck::cast_slice(elems);
            if cfg!(target_endian = "little") {
                bits.reinterpret_cast::<half::f16>()
                    .convert_to_f32_slice(out);
            } else {
                for (o, b) in out.iter_mut().zip(bits) {
                    *o = half::f16::from_bits(u16::from_le(*b)).to_f32();
                }
            }
        } else {
            for (o, b) in out.iter_mut().zip(elems.chunks_exact(4)) {
                *o = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
        }
        true
    }

    /// Reads the whole file once, in order, to bring it into the page cache.
    pub fn warm(&self) {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while let Ok(n) = self.file.read_at(&mut buf, at) {
            if n == 0 {
                break;
            }
            at += n as u64;
        }
    }

    /// Removes the file (a build that was replaced); reads and writes
    /// through this handle go on working until it is dropped.
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Makes what was written durable (before a save names the file).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io(&self.path))
    }
}

/// An 8-aligned buffer of `stride` bytes in `scratch`.
fn slot_buf(scratch: &mut Vec<u64>, stride: usize) -> &mut [u8] {
    scratch.resize(stride.div_ceil(8), 0);
    &mut bytemuck::cast_slice_mut::<u64, u8>(scratch)[..stride]
}

/// Reads that do not wait for the disk, and read-ahead requests.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod page_cache {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    use nix::libc;

    /// Fills `buf` from `at` if the page cache holds all of it (`preadv2`
    /// with `RWF_NOWAIT`); false when part of it is on disk only. Where the
    /// kernel or file system cannot tell, reads it the usual way.
    pub fn read_cached(file: &File, buf: &mut [u8], at: u64) -> bool {
        use std::os::unix::fs::FileExt;
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `iov` describes `buf`, which outlives the call; the
        // kernel writes at most `buf.len()` bytes into it.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                at as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e == Some(libc::EOPNOTSUPP) || e == Some(libc::EINVAL) {
                return file.read_exact_at(buf, at).is_ok();
            }
        }
        n == buf.len() as isize
    }

    /// Asks the kernel to start reading `len` bytes at `at` into the cache.
    pub fn will_need(file: &File, at: u64, len: usize) {
        advise(file, at, len, libc::POSIX_FADV_WILLNEED);
    }

    /// Drops a file's clean pages from the cache (tests of the disk path).
    #[cfg(test)]
    pub fn forget(file: &File) {
        advise(file, 0, 0, libc::POSIX_FADV_DONTNEED);
    }

    fn advise(file: &File, at: u64, len: usize, advice: libc::c_int) {
        // SAFETY: plain integers; a failure only loses the hint.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                at as libc::off_t,
                len as libc::off_t,
                advice,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod page_cache {
    pub fn read_cached(_: &std::fs::File, _: &mut [u8], _: u64) -> bool {
        false
    }
    pub fn will_need(_: &std::fs::File, _: u64, _: usize) {}
    #[cfg(test)]
    pub fn forget(_: &std::fs::File) {}
}

fn cipher(header: &[u8; 64], key: &[u8; 32]) -> RecordAead {
    let mut info = Vec::with_capacity(KDF_INFO.len() + 1);
    info.extend_from_slice(KDF_INFO);
    info.push(header[8]);
    RecordAead::derive(header[8], key, &header[32..48], &info)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::schema::DistanceMetric;
    use crate::security::format::{Algorithm, ChunkSize, DataKey};
    use crate::security::store::{KeySource, StaticKeys};

    fn sealing(key: Option<u8>, alg: Algorithm) -> Sealing {
        Sealing {
            keys: key.map(|k| {
                Arc::new(StaticKeys::new([k; 16], DataKey::new([k; 32]))) as Arc<dyn KeySource>
            }),
            alg,
            chunk: ChunkSize::default(),
        }
    }

    fn layout(scalar: HotQuantization) -> Layout {
        Layout {
            dim: 5,
            metric: DistanceMetric::Cosine,
            scalar,
            keep_f32: false,
        }
    }

    fn vector(i: u64) -> Vec<f32> {
        (0..5).map(|j| (i * 5 + j) as f32 * 0.37 - 3.0).collect()
    }

    fn read(f: &VectorFile, key: u64) -> Option<Vec<f32>> {
        let mut out = vec![0f32; 5];
        f.read(key, &mut out, &mut Vec::new()).then_some(out)
    }

    #[test]
    fn vectors_come_back_at_the_layouts_precision() {
        let dir = tempfile::tempdir().unwrap();
        for (key, alg) in [
            (Some(1), Algorithm::Aes256Gcm),
            (Some(2), Algorithm::ChaCha20Poly1305),
            (None, Algorithm::Aes256Gcm),
        ] {
            let s = sealing(key, alg);
            for scalar in [HotQuantization::I8, HotQuantization::F16] {
                let l = layout(scalar);
                let f = VectorFile::create(dir.path(), "t", &l, &s).unwrap();
                let vs: Vec<Vec<f32>> = (0..6).map(vector).collect();
                // Keys 0..3 and 5 (a gap at 4, written in two runs).
                let rows = [0u64, 1, 2, 3, 5].map(|k| (k, &vs[k as usize][..]));
                f.write(rows).unwrap();
                for k in [0u64, 1, 2, 3, 5] {
                    let got = read(&f, k).unwrap_or_else(|| panic!("key {k}"));
                    for (a, b) in got.iter().zip(&vs[k as usize]) {
                        let tol = if scalar == HotQuantization::I8 {
                            2e-3
                        } else {
                            0.0
                        };
                        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
                    }
                }
                assert_eq!(read(&f, 4), None, "a hole is not a vector");
                assert_eq!(read(&f, 9), None, "past the end");
                if key.is_some() {
                    let raw = std::fs::read(dir.path().join(f.name())).unwrap();
                    let plain: Vec<u8> = vs[1].iter().flat_map(|x| x.to_le_bytes()).collect();
                    assert!(!raw.windows(8).any(|w| w == &plain[..8]), "stored sealed");
                }
            }
        }
        assert!(element_bytes(&layout(HotQuantization::F32)).is_none());
    }

    #[test]
    fn damaged_moved_or_foreign_slots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for key in [Some(3), None] {
            let s = sealing(key, Algorithm::Aes256Gcm);
            let l = layout(HotQuantization::I8);
            let f = VectorFile::create(dir.path(), "d", &l, &s).unwrap();
            let vs: Vec<Vec<f32>> = (0..3).map(vector).collect();
            f.write((0..3).map(|k| (k, &vs[k as usize][..]))).unwrap();
            let path = dir.path().join(f.name());
            let mut raw = std::fs::read(&path).unwrap();
            // Flip a bit in slot 1; copy slot 0 over slot 2 (another key's vector).
            let at = |k: usize| HEADER_LEN as usize + k * f.stride;
            raw[at(1) + 30] ^= 1;
            let slot0 = raw[at(0)..at(1)].to_vec();
            raw[at(2)..at(3)].copy_from_slice(&slot0);
            std::fs::write(&path, &raw).unwrap();
            assert!(read(&f, 0).is_some());
            assert_eq!(read(&f, 1), None, "altered");
            assert_eq!(read(&f, 2), None, "moved from slot 0");
        }
        // Another database's key cannot open it; nor can an unencrypted one.
        let l = layout(HotQuantization::I8);
        let f = VectorFile::create(dir.path(), "k", &l, &sealing(Some(4), Algorithm::Aes256Gcm))
            .unwrap();
        for other in [Some(5), None] {
            let s = sealing(other, Algorithm::Aes256Gcm);
            let e = VectorFile::open(dir.path(), "k", f.name(), &l, &s, 0).unwrap_err();
            assert!(e.to_string().contains("re-ranks without it"), "{e}");
        }
        let e = VectorFile::open(
            dir.path(),
            "k",
            f.name(),
            &layout(HotQuantization::F16),
            &sealing(Some(4), Algorithm::Aes256Gcm),
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("layout"), "{e}");
    }

    #[test]
    fn opening_cuts_slots_past_the_saved_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = sealing(Some(6), Algorithm::Aes256Gcm);
        let l = layout(HotQuantization::I8);
        let f = VectorFile::create(dir.path(), "c", &l, &s).unwrap();
        let vs: Vec<Vec<f32>> = (0..4).map(vector).collect();
        f.write((0..4).map(|k| (k, &vs[k as usize][..]))).unwrap();
        f.sync().unwrap();
        let g = VectorFile::open(dir.path(), "c", f.name(), &l, &s, 2).unwrap();
        assert!(read(&g, 1).is_some());
        assert_eq!(
            read(&g, 2),
            None,
            "key 2 is handed out again after the saved state"
        );
        // Written again with another vector: read back as the new one.
        g.write([(2u64, &vs[3][..])]).unwrap();
        let got = read(&g, 2).unwrap();
        assert!((got[0] - vs[3][0]).abs() < 1e-2);
    }

    #[test]
    fn batched_reads_agree_with_single_ones_in_and_out_of_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let s = sealing(Some(7), Algorithm::Aes256Gcm);
        let f = VectorFile::create(dir.path(), "m", &layout(HotQuantization::I8), &s).unwrap();
        let vs: Vec<Vec<f32>> = (0..3000).map(vector).collect();
        f.write(vs.iter().enumerate().map(|(k, v)| (k as u64, &v[..])))
            .unwrap();
        // Key 5000 is past the end of the file: never read.
        let keys = [2999u64, 3, 5000, 1700, 1200];
        let check = || {
            let mut got = vec![None; keys.len()];
            let missed = f.read_many(&keys, |i, v| got[i] = Some(v.to_vec()));
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(got[i], read(&f, *k), "key {k}");
            }
            assert!(got[2].is_none() && got.iter().filter(|g| g.is_some()).count() == 4);
            missed
        };
        assert_eq!(check(), 1, "only the key past the end misses the cache");
        f.sync().unwrap();
        page_cache::forget(&f.file);
        // (Read-ahead started by one miss may bring in another's page.)
        if check() == 1 {
            println!("skipped the disk path: the kernel kept the file's pages");
        }
    }

    #[test]
    fn older_files_of_a_table_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = sealing(None, Algorithm::Aes256Gcm);
        let l = layout(HotQuantization::I8);
        let a = VectorFile::create(dir.path(), "t", &l, &s).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = VectorFile::create(dir.path(), "t", &l, &s).unwrap();
        let other = VectorFile::create(dir.path(), "t.x", &l, &s).unwrap();
        assert!(a.stamp() < b.stamp());
        remove_older(dir.path(), "t", Some(b.stamp()));
        let exists = |f: &VectorFile| dir.path().join(f.name()).exists();
        assert!(!exists(&a) && exists(&b) && exists(&other));
        remove_older(dir.path(), "t", None);
        assert!(!exists(&b) && exists(&other), "only table t's files go");
    }
}
