//! [`EncryptingObjectStore`]: an `object_store::ObjectStore` (0.14) wrapper
//! that stores every object as an EVF1 file (see [`super::format`]).
//!
//! Callers see plaintext bytes, plaintext sizes and plaintext ranges; the inner
//! store only ever sees EVF1 ciphertext. Range reads fetch and decrypt only the
//! chunks that cover the requested range.
//!
//! # Behaviour notes
//!
//! * **Sizes without reads.** `list*` converts ciphertext sizes to plaintext
//!   sizes arithmetically using the store's configured chunk size, so every
//!   object under one store must use the same chunk size (the default is fine;
//!   do not change it for existing data). `head` and `get*` read the header and
//!   use the chunk size stored there.
//! * **Header cache.** Parsed headers are cached per path, keyed by the
//!   object's e-tag/version, size and modification time (only when the inner
//!   store reports an e-tag or version). With a warm cache a bounded range read
//!   is a single inner request; otherwise the header costs one extra 64-byte
//!   read. The cache holds no key material; keys are looked up in the
//!   [`KeySource`] on every read, so revoking a key takes effect immediately.
//! * **ETags / versions / preconditions** are those of the ciphertext objects
//!   and are passed through unchanged; they are opaque to callers.
//! * **Integrity.** Every decrypted chunk is authenticated. Reads that reach
//!   the end of the object (`Suffix`, `Offset`, full reads, or bounded ranges
//!   touching the last chunk) also authenticate the final-chunk flag, which
//!   detects truncation and extension. A whole object replaced by another
//!   valid EVF1 object under the same key is not detected at this layer.
//! * **Errors.** Format errors are returned as `object_store::Error::Generic`
//!   with store `"EncryptingObjectStore"` and an [`EncryptedObjectError`]
//!   source naming the path (and chunk, for authentication failures). Errors of
//!   the inner store (`NotFound`, `AlreadyExists`, `Precondition`, ...) are
//!   returned unchanged.
//! * **Lance.** Lance bypasses `object_store` for plain `file://` paths; use a
//!   scheme whose store does not report direct local paths (e.g.
//!   `file-object-store://` or a custom registered scheme) so every read and
//!   write goes through this wrapper.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, OBJECT_STORE_COALESCE_DEFAULT, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions,
};

use super::format::{
    self, Algorithm, ChunkSize, DataKey, FileCipher, HEADER_LEN, Header, TAG_LEN, chunk_count,
    ciphertext_range, plaintext_len,
};
use super::plain_cache::PlainCache;
use super::upload::EncryptingUpload;

/// The `store` name used in `object_store::Error::Generic` errors.
pub const STORE_NAME: &str = "EncryptingObjectStore";

/// Default minimum size of a part forwarded to the inner multipart upload
/// (S3-like stores require at least 5 MiB for all parts but the last).
pub const DEFAULT_MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Default number of cached headers.
pub const DEFAULT_HEADER_CACHE_CAPACITY: usize = 4096;

/// Payloads larger than this are encrypted on a blocking thread when a Tokio
/// runtime is available.
/// Default size of the decrypted-chunk read cache.
pub const DEFAULT_READ_CACHE_BYTES: u64 = 128 * 1024 * 1024;

const BLOCKING_THRESHOLD: usize = 1024 * 1024;

/// Concurrent inner requests issued by `get_ranges`.
const GET_RANGES_CONCURRENCY: usize = 8;

const H: u64 = HEADER_LEN as u64;

/// Supplies data keys: the one to encrypt new objects with, and any key by id
/// for reading existing objects (key rotation keeps old ids readable).
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The key id and key used for new writes.
    fn current(&self) -> ([u8; 16], Arc<DataKey>);
    /// The key with this id, if available.
    fn get(&self, key_id: &[u8; 16]) -> Option<Arc<DataKey>>;
}

/// A fixed in-memory set of keys (tests, or keys unwrapped once at startup).
#[derive(Clone)]
pub struct StaticKeys {
    current: [u8; 16],
    keys: HashMap<[u8; 16], Arc<DataKey>>,
}

impl StaticKeys {
    /// One key, used for writing and reading.
    pub fn new(key_id: [u8; 16], key: DataKey) -> Self {
        let mut keys = HashMap::new();
        keys.insert(key_id, Arc::new(key));
        Self {
            current: key_id,
            keys,
        }
    }

    /// Adds a read-only key (for example a rotated-out key).
    pub fn with_key(mut self, key_id: [u8; 16], key: DataKey) -> Self {
        self.keys.insert(key_id, Arc::new(key));
        self
    }

    /// Adds a key and makes it the current write key.
    pub fn with_current(mut self, key_id: [u8; 16], key: DataKey) -> Self {
        self.keys.insert(key_id, Arc::new(key));
        self.current = key_id;
        self
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<String> = self.keys.keys().map(|k| format::hex(k)).collect();
        ids.sort();
        f.debug_struct("StaticKeys")
            .field("current", &format::hex(&self.current))
            .field("key_ids", &ids)
            .finish()
    }
}

impl KeySource for StaticKeys {
    fn current(&self) -> ([u8; 16], Arc<DataKey>) {
        (self.current, Arc::clone(&self.keys[&self.current]))
    }

    fn get(&self, key_id: &[u8; 16]) -> Option<Arc<DataKey>> {
        self.keys.get(key_id).cloned()
    }
}

/// An EVF format error for a specific object. Found as the `source` of
/// `object_store::Error::Generic { store: "EncryptingObjectStore", .. }`.
#[derive(Debug, thiserror::Error)]
#[error("encrypted object {path}: {source}")]
pub struct EncryptedObjectError {
    /// The object path.
    pub path: String,
    /// What went wrong.
    #[source]
    pub source: format::Error,
}

fn obj_err(path: &Path, source: format::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE_NAME,
        source: Box::new(EncryptedObjectError {
            path: path.to_string(),
            source,
        }),
    }
}

fn generic(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE_NAME,
        source: Box::new(source),
    }
}

fn plain_range_err(path: &Path, range: &GetRange, len: u64) -> object_store::Error {
    let (start, end) = match range {
        GetRange::Bounded(r) => (r.start, r.end),
        GetRange::Offset(o) => (*o, u64::MAX),
        GetRange::Suffix(n) => (len.saturating_sub(*n), len),
    };
    obj_err(path, format::Error::InvalidRange { start, end, len })
}

/// Identity of one version of an object, for the header cache.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ident {
    e_tag: Option<String>,
    version: Option<String>,
    size: u64,
    modified: i64,
}

impl Ident {
    fn of(meta: &ObjectMeta) -> Option<Self> {
        (meta.e_tag.is_some() || meta.version.is_some()).then(|| Self {
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
            size: meta.size,
            modified: meta.last_modified.timestamp_micros(),
        })
    }
}

#[derive(Debug)]
struct HeaderCache {
    map: HashMap<Path, (Ident, Header)>,
    capacity: usize,
}

impl HeaderCache {
    fn get(&self, path: &Path, meta: &ObjectMeta) -> Option<Header> {
        let ident = Ident::of(meta)?;
        match self.map.get(path) {
            Some((i, h)) if *i == ident => Some(h.clone()),
            _ => None,
        }
    }

    fn put(&mut self, path: &Path, meta: &ObjectMeta, header: &Header) {
        let Some(ident) = Ident::of(meta) else { return };
        if self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(path) {
            // Bounded and simple: start over when full.
            self.map.clear();
        }
        self.map.insert(path.clone(), (ident, header.clone()));
    }
}

/// An `ObjectStore` that encrypts everything written through it (EVF1) and
/// decrypts on read. See the [module docs](self) for the details.
pub struct EncryptingObjectStore {
    inner: Arc<dyn ObjectStore>,
    keys: Arc<dyn KeySource>,
    chunk_size: ChunkSize,
    alg: Algorithm,
    min_part_size: usize,
    cache: Arc<Mutex<HeaderCache>>,
    plain: Option<Arc<PlainCache>>,
}

impl fmt::Debug for EncryptingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingObjectStore")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .field("chunk_size", &self.chunk_size.bytes())
            .field("alg", &self.alg)
            .field("min_part_size", &self.min_part_size)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for EncryptingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptingObjectStore({})", self.inner)
    }
}

impl EncryptingObjectStore {
    /// Wraps `inner`; new objects use 64 KiB chunks and AES-256-GCM.
    pub fn new(inner: Arc<dyn ObjectStore>, keys: Arc<dyn KeySource>) -> Self {
        Self {
            inner,
            keys,
            chunk_size: ChunkSize::DEFAULT,
            alg: Algorithm::Aes256Gcm,
            min_part_size: DEFAULT_MIN_PART_SIZE,
            cache: Arc::new(Mutex::new(HeaderCache {
                map: HashMap::new(),
                capacity: DEFAULT_HEADER_CACHE_CAPACITY,
            })),
            plain: PlainCache::new(DEFAULT_READ_CACHE_BYTES).map(Arc::new),
        }
    }

    /// Bytes of decrypted chunks of immutable files kept in memory for reuse
    /// (default 128 MiB; 0 disables). See [`super::plain_cache`].
    pub fn with_read_cache_bytes(mut self, bytes: u64) -> Self {
        self.plain = PlainCache::new(bytes).map(Arc::new);
        self
    }

    /// Uses a read cache shared with other stores (`None`: no cache).
    pub(crate) fn with_shared_read_cache(mut self, cache: Option<Arc<PlainCache>>) -> Self {
        self.plain = cache;
        self
    }

    /// Plaintext bytes held by the read cache now.
    pub fn read_cache_bytes(&self) -> u64 {
        self.plain.as_ref().map_or(0, |p| p.bytes())
    }

    /// Where decrypted chunks of `location` go: the read cache, for files it keeps.
    fn sink(&self, location: &Path, meta: &ObjectMeta, header: &Header) -> Option<Sink> {
        let pc = self.plain.as_ref()?;
        if !PlainCache::cacheable(location) {
            return None;
        }
        pc.remember_file(location, meta, header);
        Some((Arc::clone(pc), header.file_id))
    }

    /// Chunk size for new objects, also used by `list*` to compute plaintext
    /// sizes. Keep it constant for a given dataset.
    pub fn with_chunk_size(mut self, chunk_size: ChunkSize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// AEAD for new objects (reads accept both).
    pub fn with_algorithm(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Minimum size of parts forwarded to the inner multipart upload
    /// (default 5 MiB). Parts always contain whole ciphertext chunks.
    pub fn with_min_part_size(mut self, bytes: usize) -> Self {
        self.min_part_size = bytes.max(1);
        self
    }

    /// Maximum number of cached headers (0 disables the cache).
    pub fn with_header_cache_capacity(self, capacity: usize) -> Self {
        {
            let mut c = self.cache.lock().expect("header cache lock");
            c.capacity = capacity;
            c.map.clear();
        }
        self
    }

    /// The wrapped store (sees ciphertext only).
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Chunk size used for new objects and for `list` sizes.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// AEAD used for new objects.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Drops all cached headers.
    pub fn clear_header_cache(&self) {
        self.cache.lock().expect("header cache lock").map.clear();
    }

    fn cache_get(&self, path: &Path, meta: &ObjectMeta) -> Option<Header> {
        self.cache
            .lock()
            .expect("header cache lock")
            .get(path, meta)
    }

    fn cache_put(&self, path: &Path, meta: &ObjectMeta, header: &Header) {
        self.cache
            .lock()
            .expect("header cache lock")
            .put(path, meta, header);
    }

    fn cache_forget(&self, path: &Path) {
        if let Some(pc) = &self.plain {
            pc.forget(path);
        }
        self.cache
            .lock()
            .expect("header cache lock")
            .map
            .remove(path);
    }

    fn cipher_for(&self, path: &Path, header: &Header) -> object_store::Result<Arc<FileCipher>> {
        let key = self
            .keys
            .get(&header.key_id)
            .ok_or_else(|| obj_err(path, format::Error::UnknownKeyId(header.key_id)))?;
        Ok(Arc::new(header.cipher(&key)))
    }

    fn plain_meta(mut meta: ObjectMeta, chunk_size: ChunkSize) -> object_store::Result<ObjectMeta> {
        meta.size = plaintext_len(meta.size, chunk_size).map_err(|e| obj_err(&meta.location, e))?;
        Ok(meta)
    }

    /// The cipher of a new object: fresh file id and salt, current key.
    fn new_cipher(&self) -> FileCipher {
        let (key_id, key) = self.keys.current();
        Header::generate(key_id, self.alg, self.chunk_size).cipher(&key)
    }

    /// Reads and parses the header (first 64 bytes) with `opts`' preconditions.
    async fn read_header(
        &self,
        location: &Path,
        opts: &GetOptions,
    ) -> object_store::Result<(ObjectMeta, Header, Attributes)> {
        let req = GetOptions {
            range: Some(GetRange::Bounded(0..H)),
            head: false,
            ..opts.clone()
        };
        let res = match self.inner.get_opts(location, req).await {
            Ok(r) => r,
            Err(e @ object_store::Error::Generic { .. }) => {
                // Possibly an object shorter than a header (an empty object
                // makes the range itself invalid): report that precisely.
                let head = GetOptions {
                    range: None,
                    head: true,
                    ..opts.clone()
                };
                return match self.inner.get_opts(location, head).await {
                    Ok(r) if r.meta.size < (HEADER_LEN + TAG_LEN) as u64 => Err(obj_err(
                        location,
                        format::Error::Truncated(format!(
                            "object is {} bytes, too short for an EVF1 file",
                            r.meta.size
                        )),
                    )),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let meta = res.meta.clone();
        let attributes = res.attributes.clone();
        let bytes = res.bytes().await?;
        let header = Header::parse(&bytes).map_err(|e| obj_err(location, e))?;
        self.cache_put(location, &meta, &header);
        Ok((meta, header, attributes))
    }

    async fn get_full(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let res = self.inner.get_opts(location, options).await?;
        let meta = res.meta.clone();
        let attributes = res.attributes.clone();
        let extensions = res.extensions.clone();
        let mut stream = res.into_stream();
        let mut buf = BytesMut::new();
        fill(&mut stream, &mut buf, HEADER_LEN).await?;
        let header = Header::parse(&buf).map_err(|e| obj_err(location, e))?;
        let _ = buf.split_to(HEADER_LEN.min(buf.len()));
        self.cache_put(location, &meta, &header);
        let cs = header.chunk_size;
        let pt_len = plaintext_len(meta.size, cs).map_err(|e| obj_err(location, e))?;
        let cipher = self.cipher_for(location, &header)?;
        let total = chunk_count(pt_len, cs);
        let sink = self.sink(location, &meta, &header);
        let payload = decrypt_stream(DecryptState {
            inner: stream,
            buf,
            discard: 0,
            cipher,
            next: 0,
            end: total,
            total,
            final_len: final_chunk_len(meta.size, cs),
            full_len: cs.ciphertext_chunk_len() as usize,
            skip: 0,
            remaining: pt_len,
            path: location.clone(),
            sink,
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta: ObjectMeta {
                size: pt_len,
                ..meta
            },
            range: 0..pt_len,
            attributes,
            extensions,
        })
    }

    /// Bounded / Offset reads: guess the ciphertext range from the configured
    /// chunk size and issue a single request. Returns `Ok(None)` when the guess
    /// cannot be used (header has another chunk size, or the inner store
    /// rejected the guessed range) and the exact path must be taken.
    async fn get_speculative(
        &self,
        location: &Path,
        options: &GetOptions,
        range: &GetRange,
    ) -> object_store::Result<Option<GetResult>> {
        let cs = self.chunk_size;
        let c = cs.bytes();
        let full = cs.ciphertext_chunk_len();
        let (first, ct) = match range {
            GetRange::Bounded(r) => {
                let first = r.start / c;
                let end_chunk = (r.end - 1) / c + 1;
                let end = end_chunk.saturating_mul(full).saturating_add(H);
                (first, first.saturating_mul(full).saturating_add(H)..end)
            }
            GetRange::Offset(o) => {
                let first = o / c;
                (
                    first,
                    first.saturating_mul(full).saturating_add(H)..u64::MAX,
                )
            }
            GetRange::Suffix(_) => return Ok(None),
        };
        // Reading from 0 brings the header along for free.
        let start = if first == 0 { 0 } else { ct.start };
        let inner_range = if ct.end == u64::MAX {
            GetRange::Offset(start)
        } else {
            GetRange::Bounded(start..ct.end)
        };
        let req = GetOptions {
            range: Some(inner_range),
            ..options.clone()
        };
        let res = match self.inner.get_opts(location, req).await {
            Ok(r) => r,
            // Most likely the guessed range starts past the end; redo exactly.
            Err(object_store::Error::Generic { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = res.meta.clone();
        let got = res.range.clone();
        let attributes = res.attributes.clone();
        let extensions = res.extensions.clone();
        let mut stream = res.into_stream();
        let mut buf = BytesMut::new();
        let header = if got.start == 0 {
            fill(&mut stream, &mut buf, HEADER_LEN).await?;
            let h = Header::parse(&buf).map_err(|e| obj_err(location, e))?;
            let _ = buf.split_to(HEADER_LEN);
            self.cache_put(location, &meta, &h);
            h
        } else if let Some(h) = self.cache_get(location, &meta) {
            h
        } else {
            self.read_header(location, &pinned(&meta, options)).await?.1
        };
        if header.chunk_size != cs {
            return Ok(None);
        }
        let pt_len = plaintext_len(meta.size, cs).map_err(|e| obj_err(location, e))?;
        let pt_range = range
            .as_range(pt_len)
            .map_err(|_| plain_range_err(location, range, pt_len))?;
        let span =
            ciphertext_range(pt_range.clone(), pt_len, cs).map_err(|e| obj_err(location, e))?;
        let have_start = got.start.max(H);
        if span.ciphertext.start < have_start || span.ciphertext.end > got.end {
            return Ok(None);
        }
        let cipher = self.cipher_for(location, &header)?;
        let sink = self.sink(location, &meta, &header);
        let payload = decrypt_stream(DecryptState {
            inner: stream,
            buf,
            discard: span.ciphertext.start - have_start,
            cipher,
            next: span.first_chunk,
            end: span.first_chunk + span.chunks,
            total: span.total_chunks,
            final_len: final_chunk_len(meta.size, cs),
            full_len: full as usize,
            skip: span.skip as usize,
            remaining: pt_range.end - pt_range.start,
            path: location.clone(),
            sink,
        });
        Ok(Some(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta: ObjectMeta {
                size: pt_len,
                ..meta
            },
            range: pt_range,
            attributes,
            extensions,
        }))
    }

    /// Any range form: read the header first, then exactly the covering chunks.
    async fn get_exact(
        &self,
        location: &Path,
        options: &GetOptions,
        range: &GetRange,
    ) -> object_store::Result<GetResult> {
        let (meta, header, _) = self.read_header(location, options).await?;
        let cs = header.chunk_size;
        let pt_len = plaintext_len(meta.size, cs).map_err(|e| obj_err(location, e))?;
        let pt_range = range
            .as_range(pt_len)
            .map_err(|_| plain_range_err(location, range, pt_len))?;
        let span =
            ciphertext_range(pt_range.clone(), pt_len, cs).map_err(|e| obj_err(location, e))?;
        let cipher = self.cipher_for(location, &header)?;
        let req = GetOptions {
            range: Some(GetRange::Bounded(span.ciphertext.clone())),
            ..pinned(&meta, options)
        };
        let res = self.inner.get_opts(location, req).await?;
        let attributes = res.attributes.clone();
        let extensions = res.extensions.clone();
        let res_meta = res.meta.clone();
        let sink = self.sink(location, &meta, &header);
        let payload = decrypt_stream(DecryptState {
            inner: res.into_stream(),
            buf: BytesMut::new(),
            discard: 0,
            cipher,
            next: span.first_chunk,
            end: span.first_chunk + span.chunks,
            total: span.total_chunks,
            final_len: final_chunk_len(meta.size, cs),
            full_len: cs.ciphertext_chunk_len() as usize,
            skip: span.skip as usize,
            remaining: pt_range.end - pt_range.start,
            path: location.clone(),
            sink,
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta: ObjectMeta {
                size: pt_len,
                ..res_meta
            },
            range: pt_range,
            attributes,
            extensions,
        })
    }
}

/// Options for follow-up reads of the same object version: pin the e-tag
/// when there is one (preconditions were already checked by the first read).
fn pinned(meta: &ObjectMeta, original: &GetOptions) -> GetOptions {
    match &meta.e_tag {
        Some(tag) => GetOptions {
            if_match: Some(tag.clone()),
            version: original.version.clone().or_else(|| meta.version.clone()),
            extensions: original.extensions.clone(),
            ..GetOptions::default()
        },
        None => GetOptions {
            range: None,
            head: false,
            version: original.version.clone().or_else(|| meta.version.clone()),
            ..original.clone()
        },
    }
}

/// Ciphertext length of the final chunk of an object of `size` bytes (whose
/// size has already been validated by `plaintext_len`).
fn final_chunk_len(size: u64, cs: ChunkSize) -> usize {
    let full = cs.ciphertext_chunk_len();
    let body = size.saturating_sub(H);
    let rem = body % full;
    (if rem == 0 { full } else { rem }) as usize
}

/// Reads from `stream` until `buf` holds at least `n` bytes or the stream ends.
async fn fill(
    stream: &mut BoxStream<'static, object_store::Result<Bytes>>,
    buf: &mut BytesMut,
    n: usize,
) -> object_store::Result<()> {
    while buf.len() < n {
        match stream.next().await {
            Some(Ok(b)) => buf.extend_from_slice(&b),
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok(())
}

struct DecryptState {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    /// Ciphertext received but not yet consumed.
    buf: BytesMut,
    /// Ciphertext bytes to drop before the first chunk.
    discard: u64,
    cipher: Arc<FileCipher>,
    /// Next chunk index to decrypt.
    next: u64,
    /// One past the last chunk index to decrypt.
    end: u64,
    /// Chunks in the whole object.
    total: u64,
    /// Ciphertext length of the object's final chunk.
    final_len: usize,
    /// Ciphertext length of a full chunk.
    full_len: usize,
    /// Plaintext bytes to drop from the first decrypted chunk.
    skip: usize,
    /// Plaintext bytes still to emit.
    remaining: u64,
    path: Path,
    /// Where to keep decrypted chunks for reuse, if anywhere.
    sink: Option<Sink>,
}

/// The read cache and the file id its chunks are keyed by.
type Sink = (Arc<PlainCache>, [u8; 16]);

/// Decrypts chunks `next..end` from a ciphertext stream, one chunk per item.
fn decrypt_stream(state: DecryptState) -> BoxStream<'static, object_store::Result<Bytes>> {
    stream::try_unfold(state, |mut st| async move {
        loop {
            if st.next >= st.end {
                return Ok(None);
            }
            let last = st.next + 1 == st.total;
            let need = if last { st.final_len } else { st.full_len };
            let want = st.discard as usize + need;
            fill(&mut st.inner, &mut st.buf, want).await?;
            if st.buf.len() < want {
                return Err(obj_err(
                    &st.path,
                    format::Error::Truncated(format!(
                        "object ended inside chunk {} (object changed or truncated during the read)",
                        st.next
                    )),
                ));
            }
            let _ = st.buf.split_to(st.discard as usize);
            st.discard = 0;
            let chunk = st
                .cipher
                .decrypt_chunk_from(st.next, last, &st.buf.split_to(need))
                .map_err(|e| obj_err(&st.path, e))?;
            let mut pt = Bytes::from(chunk);
            if let Some((pc, file_id)) = &st.sink {
                pc.put_chunk(*file_id, st.next, pt.clone());
            }
            st.next += 1;
            if st.skip > 0 {
                pt = pt.slice(st.skip.min(pt.len())..);
                st.skip = 0;
            }
            let take = (pt.len() as u64).min(st.remaining) as usize;
            pt.truncate(take);
            st.remaining -= take as u64;
            if !pt.is_empty() {
                return Ok(Some((pt, st)));
            }
        }
    })
    .boxed()
}

/// A whole EVF1 object: header, then `payload` as chunks `0..` (one copy).
fn encrypt_payload(cipher: &FileCipher, payload: &PutPayload) -> Bytes {
    let len = payload.content_length() as u64;
    let mut out =
        Vec::with_capacity(format::ciphertext_len(len, cipher.header().chunk_size) as usize);
    out.extend_from_slice(cipher.header_bytes());
    let pieces: Vec<&[u8]> = payload.iter().map(|b| &b[..]).collect();
    cipher.encrypt_chunks_into(0, &pieces, true, &mut out);
    Bytes::from(out)
}

#[async_trait]
impl ObjectStore for EncryptingObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let cipher = self.new_cipher();
        let ciphertext = match tokio::runtime::Handle::try_current() {
            Ok(handle) if payload.content_length() > BLOCKING_THRESHOLD => handle
                .spawn_blocking(move || encrypt_payload(&cipher, &payload))
                .await
                .map_err(generic)?,
            _ => encrypt_payload(&cipher, &payload),
        };
        self.cache_forget(location);
        self.inner
            .put_opts(location, PutPayload::from_bytes(ciphertext), opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let (cache, plain, path) = (
            Arc::clone(&self.cache),
            self.plain.clone(),
            location.clone(),
        );
        let forget = move || {
            cache.lock().expect("header cache lock").map.remove(&path);
            if let Some(pc) = &plain {
                pc.forget(&path);
            }
        };
        Ok(Box::new(EncryptingUpload::new(
            inner,
            self.new_cipher(),
            self.min_part_size,
            location.clone(),
            Box::new(forget),
        )))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            let (meta, header, attributes) = self.read_header(location, &options).await?;
            let size =
                plaintext_len(meta.size, header.chunk_size).map_err(|e| obj_err(location, e))?;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                meta: ObjectMeta { size, ..meta },
                range: 0..size,
                attributes,
                extensions: Default::default(),
            });
        }
        let Some(range) = options.range.clone() else {
            return self.get_full(location, options).await;
        };
        range.is_valid().map_err(generic)?;
        if let Some(res) = self
            .plain
            .as_ref()
            .and_then(|pc| pc.serve(location, &options, &range))
        {
            return Ok(res);
        }
        if let Some(res) = self.get_speculative(location, &options, &range).await? {
            return Ok(res);
        }
        self.get_exact(location, &options, &range).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let (meta, header, _) = self.read_header(location, &GetOptions::default()).await?;
        let cs = header.chunk_size;
        let c = cs.bytes();
        let full = cs.ciphertext_chunk_len();
        let pt_len = plaintext_len(meta.size, cs).map_err(|e| obj_err(location, e))?;
        let total = chunk_count(pt_len, cs);
        let final_len = final_chunk_len(meta.size, cs);

        // Resolve like GetRange::Bounded (clamp the end, reject bad starts).
        let mut resolved = Vec::with_capacity(ranges.len());
        for r in ranges {
            let g = GetRange::Bounded(r.clone());
            g.is_valid().map_err(generic)?;
            resolved.push(
                g.as_range(pt_len)
                    .map_err(|_| plain_range_err(location, &g, pt_len))?,
            );
        }
        // Chunk intervals, coalesced on ciphertext.
        let spans: Vec<(u64, u64)> = resolved
            .iter()
            .map(|r| (r.start / c, (r.end - 1) / c))
            .collect();
        let needed: HashSet<u64> = spans.iter().flat_map(|&(a, b)| a..=b).collect();
        // Chunks the read cache holds need no I/O.
        let sink = self.sink(location, &meta, &header);
        let mut plain: HashMap<u64, Bytes> = HashMap::with_capacity(needed.len());
        if let Some((pc, file_id)) = &sink {
            for &idx in &needed {
                if let Some(b) = pc.chunk(*file_id, idx) {
                    plain.insert(idx, b);
                }
            }
        }
        let mut missing: Vec<u64> = needed
            .iter()
            .copied()
            .filter(|i| !plain.contains_key(i))
            .collect();
        missing.sort_unstable();
        let gap = OBJECT_STORE_COALESCE_DEFAULT / full;
        let mut groups: Vec<(u64, u64)> = Vec::new();
        for idx in missing {
            match groups.last_mut() {
                Some(g) if idx <= g.1 + 1 + gap => g.1 = idx,
                _ => groups.push((idx, idx)),
            }
        }
        let cipher = self.cipher_for(location, &header)?;
        let base = pinned(&meta, &GetOptions::default());
        let inner = &self.inner;
        let requests: Vec<_> = groups
            .iter()
            .copied()
            .map(|(a, b)| {
                let range = (H + a * full)..(H + (b + 1) * full).min(meta.size);
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(range)),
                    ..base.clone()
                };
                async move { inner.get_opts(location, opts).await?.bytes().await }
            })
            .collect();
        let fetched: Vec<Bytes> = stream::iter(requests)
            .buffered(GET_RANGES_CONCURRENCY)
            .try_collect()
            .await?;

        // Decrypt every needed chunk exactly once.
        for (&(a, b), bytes) in groups.iter().zip(&fetched) {
            for idx in a..=b {
                if !needed.contains(&idx) || plain.contains_key(&idx) {
                    continue;
                }
                let last = idx + 1 == total;
                let off = ((idx - a) * full) as usize;
                let len = if last { final_len } else { full as usize };
                let piece = bytes.get(off..off + len).ok_or_else(|| {
                    obj_err(
                        location,
                        format::Error::Truncated(format!(
                            "object ended inside chunk {idx} (object changed or truncated during the read)"
                        )),
                    )
                })?;
                let v = cipher
                    .decrypt_chunk_from(idx, last, piece)
                    .map_err(|e| obj_err(location, e))?;
                let v = Bytes::from(v);
                if let Some((pc, file_id)) = &sink {
                    pc.put_chunk(*file_id, idx, v.clone());
                }
                plain.insert(idx, v);
            }
        }
        Ok(resolved
            .iter()
            .map(|r| {
                let (first, last) = (r.start / c, (r.end - 1) / c);
                if first == last {
                    let base = first * c;
                    return plain[&first].slice((r.start - base) as usize..(r.end - base) as usize);
                }
                let mut out = BytesMut::with_capacity((r.end - r.start) as usize);
                for idx in first..=last {
                    let p = &plain[&idx];
                    let base = idx * c;
                    let s = r.start.saturating_sub(base) as usize;
                    let e = ((r.end - base) as usize).min(p.len());
                    out.extend_from_slice(&p[s..e]);
                }
                out.freeze()
            })
            .collect())
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let cache = Arc::clone(&self.cache);
        let plain = self.plain.clone();
        self.inner
            .delete_stream(locations)
            .inspect_ok(move |p| {
                cache.lock().expect("header cache lock").map.remove(p);
                if let Some(pc) = &plain {
                    pc.forget(p);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let cs = self.chunk_size;
        self.inner
            .list(prefix)
            .map(move |r| r.and_then(|m| Self::plain_meta(m, cs)))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let cs = self.chunk_size;
        self.inner
            .list_with_offset(prefix, offset)
            .map(move |r| r.and_then(|m| Self::plain_meta(m, cs)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut res = self.inner.list_with_delimiter(prefix).await?;
        res.objects = res
            .objects
            .into_iter()
            .map(|m| Self::plain_meta(m, self.chunk_size))
            .collect::<object_store::Result<_>>()?;
        Ok(res)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        // The file id lives inside the object, so a byte copy stays valid.
        self.cache_forget(to);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.cache_forget(from);
        self.cache_forget(to);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::format::{HEADER_LEN, TAG_LEN};
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;
    use object_store::{
        Attribute, Attributes, ObjectStoreExt, PutMode, UpdateVersion, UploadPart, WriteMultipart,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};

    const KID: [u8; 16] = *b"key-id-000000001";
    const MARKER: &[u8] = b"PLAINTEXT-MARKER:hanzo-db";
    const C: usize = 4096;
    const F: usize = C + TAG_LEN;

    // ---------------------------------------------------------------- fixtures

    /// Delegating store that counts inner reads and records multipart parts.
    #[derive(Debug)]
    struct Counting {
        inner: Arc<dyn ObjectStore>,
        gets: Arc<AtomicUsize>,
        parts: Arc<Mutex<Vec<usize>>>,
    }

    impl fmt::Display for Counting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Counting({})", self.inner)
        }
    }

    #[derive(Debug)]
    struct RecordingUpload {
        inner: Box<dyn MultipartUpload>,
        parts: Arc<Mutex<Vec<usize>>>,
    }

    #[async_trait]
    impl MultipartUpload for RecordingUpload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            self.parts.lock().unwrap().push(data.content_length());
            self.inner.put_part(data)
        }
        async fn complete(&mut self) -> object_store::Result<PutResult> {
            self.inner.complete().await
        }
        async fn abort(&mut self) -> object_store::Result<()> {
            self.inner.abort().await
        }
    }

    #[async_trait]
    impl ObjectStore for Counting {
        async fn put_opts(
            &self,
            l: &Path,
            p: PutPayload,
            o: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(l, p, o).await
        }
        async fn put_multipart_opts(
            &self,
            l: &Path,
            o: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.parts.lock().unwrap().clear();
            Ok(Box::new(RecordingUpload {
                inner: self.inner.put_multipart_opts(l, o).await?,
                parts: Arc::clone(&self.parts),
            }))
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get_opts(l, o).await
        }
        fn delete_stream(
            &self,
            s: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(s)
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(f, t, o).await
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Backend {
        Memory,
        Local,
    }

    const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Local];

    struct Fx {
        store: EncryptingObjectStore,
        /// The raw (ciphertext) store, without counting.
        raw: Arc<dyn ObjectStore>,
        gets: Arc<AtomicUsize>,
        parts: Arc<Mutex<Vec<usize>>>,
        dir: Option<tempfile::TempDir>,
    }

    impl Fx {
        fn new(b: Backend) -> Self {
            Self::with(b, |s| s.with_chunk_size(ChunkSize::new(C as u64).unwrap()))
        }

        fn with(
            b: Backend,
            f: impl FnOnce(EncryptingObjectStore) -> EncryptingObjectStore,
        ) -> Self {
            let (raw, dir): (Arc<dyn ObjectStore>, _) = match b {
                Backend::Memory => (Arc::new(InMemory::new()), None),
                Backend::Local => {
                    let dir = tempfile::tempdir().unwrap();
                    (
                        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
                        Some(dir),
                    )
                }
            };
            let gets = Arc::new(AtomicUsize::new(0));
            let parts = Arc::new(Mutex::new(Vec::new()));
            let counting = Arc::new(Counting {
                inner: Arc::clone(&raw),
                gets: Arc::clone(&gets),
                parts: Arc::clone(&parts),
            });
            let store = f(EncryptingObjectStore::new(counting, keys()));
            Self {
                store,
                raw,
                gets,
                parts,
                dir,
            }
        }

        /// A second wrapper over the same raw store.
        fn sibling(
            &self,
            f: impl FnOnce(EncryptingObjectStore) -> EncryptingObjectStore,
        ) -> EncryptingObjectStore {
            f(EncryptingObjectStore::new(Arc::clone(&self.raw), keys()))
        }

        fn gets(&self) -> usize {
            self.gets.load(Ordering::SeqCst)
        }

        async fn raw_bytes(&self, p: &Path) -> Bytes {
            self.raw.get(p).await.unwrap().bytes().await.unwrap()
        }

        /// Replaces the raw object bytes (bypassing the wrapper).
        async fn set_raw(&self, p: &Path, bytes: Vec<u8>) {
            match &self.dir {
                // Write the file directly, as an attacker with disk access would.
                Some(d) => std::fs::write(d.path().join(p.to_string()), bytes).unwrap(),
                None => {
                    self.raw.put(p, bytes.into()).await.unwrap();
                }
            }
        }

        /// Every byte the inner store holds (for Local: every file on disk).
        async fn all_raw(&self) -> Vec<(String, Vec<u8>)> {
            match &self.dir {
                Some(d) => {
                    let mut out = Vec::new();
                    let mut todo = vec![d.path().to_path_buf()];
                    while let Some(p) = todo.pop() {
                        for e in std::fs::read_dir(&p).unwrap() {
                            let e = e.unwrap();
                            if e.file_type().unwrap().is_dir() {
                                todo.push(e.path());
                            } else {
                                out.push((
                                    e.path().display().to_string(),
                                    std::fs::read(e.path()).unwrap(),
                                ));
                            }
                        }
                    }
                    out
                }
                None => {
                    let metas: Vec<ObjectMeta> = self.raw.list(None).try_collect().await.unwrap();
                    let mut out = Vec::new();
                    for m in metas {
                        out.push((
                            m.location.to_string(),
                            self.raw_bytes(&m.location).await.to_vec(),
                        ));
                    }
                    out
                }
            }
        }
    }

    fn key_a() -> DataKey {
        DataKey::new([0x11; 32])
    }

    fn keys() -> Arc<dyn KeySource> {
        Arc::new(StaticKeys::new(KID, key_a()))
    }

    /// Deterministic data with the plaintext marker every 256 bytes.
    fn data(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut x: u32 = 0x1234_5678;
        while v.len() < n {
            if v.len() % 256 == 0 {
                v.extend_from_slice(MARKER);
            } else {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                v.push((x >> 24) as u8);
            }
        }
        v.truncate(n);
        v
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) % n
        }
    }

    fn sizes() -> Vec<usize> {
        vec![0, 1, C - 1, C, C + 1, 5 * C + 7]
    }

    fn expected(pt: &[u8], r: &GetRange) -> Option<Range<u64>> {
        r.as_range(pt.len() as u64).ok()
    }

    async fn read(
        store: &dyn ObjectStore,
        p: &Path,
        r: Option<GetRange>,
    ) -> object_store::Result<(Range<u64>, u64, Bytes)> {
        let res = store.get_opts(p, GetOptions::new().with_range(r)).await?;
        let (range, size) = (res.range.clone(), res.meta.size);
        Ok((range, size, res.bytes().await?))
    }

    fn evf_err(e: &object_store::Error) -> Option<&EncryptedObjectError> {
        match e {
            object_store::Error::Generic { store, source } if *store == STORE_NAME => {
                source.downcast_ref::<EncryptedObjectError>()
            }
            _ => None,
        }
    }

    // ---------------------------------------------------------------- tests

    #[tokio::test]
    async fn put_get_round_trip_both_algorithms() {
        for b in BACKENDS {
            for alg in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
                let fx = Fx::with(b, |s| {
                    s.with_chunk_size(ChunkSize::new(C as u64).unwrap())
                        .with_algorithm(alg)
                });
                for n in sizes() {
                    let p = Path::from(format!("dir/obj-{n}"));
                    let pt = data(n);
                    fx.store.put(&p, pt.clone().into()).await.unwrap();
                    let res = fx.store.get(&p).await.unwrap();
                    assert_eq!(res.meta.size, n as u64);
                    assert_eq!(res.range, 0..n as u64);
                    assert_eq!(res.bytes().await.unwrap(), pt, "{b:?} {alg:?} {n}");
                    assert_eq!(fx.store.head(&p).await.unwrap().size, n as u64);
                    let raw = fx.raw_bytes(&p).await;
                    assert_eq!(
                        raw.len() as u64,
                        format::ciphertext_len(n as u64, fx.store.chunk_size())
                    );
                    let h = Header::parse(&raw).unwrap();
                    assert_eq!((h.alg, h.key_id), (alg, KID));
                    // The raw object is a plain EVF1 file.
                    assert_eq!(
                        format::decrypt(&raw, |_| Some(Arc::new(key_a()))).unwrap(),
                        pt
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn every_range_form() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let no_cache = fx.sibling(|s| {
                s.with_chunk_size(ChunkSize::new(C as u64).unwrap())
                    .with_header_cache_capacity(0)
            });
            // Default 64 KiB configuration reading 4 KiB-chunk files: the
            // speculative path must notice and fall back.
            let other_cs = fx.sibling(|s| s);
            let mut rng = Lcg(7);
            for n in sizes() {
                let p = Path::from(format!("r/{n}"));
                let pt = data(n);
                fx.store.put(&p, pt.clone().into()).await.unwrap();
                let len = n as u64;
                let mut forms = vec![
                    None,
                    Some(GetRange::Suffix(0)),
                    Some(GetRange::Suffix(1)),
                    Some(GetRange::Suffix(len + 10)),
                    Some(GetRange::Offset(0)),
                    Some(GetRange::Offset(len)),
                    Some(GetRange::Offset(len + 5)),
                    Some(GetRange::Bounded(0..len + 1)),
                    Some(GetRange::Bounded(len..len + 1)),
                    Some(GetRange::Bounded(len + 4096 * 3..len + 4096 * 4)),
                    Some(GetRange::Bounded(u64::MAX - 10..u64::MAX)),
                ];
                for _ in 0..25 {
                    let a = rng.below(len + 1);
                    let z = a + 1 + rng.below(len + 2 - a);
                    forms.push(Some(GetRange::Bounded(a..z)));
                    forms.push(Some(GetRange::Offset(rng.below(len + 1))));
                    forms.push(Some(GetRange::Suffix(rng.below(len + 2))));
                }
                for r in forms {
                    for store in [&fx.store, &no_cache, &other_cs] {
                        let got = read(store, &p, r.clone()).await;
                        let want = match &r {
                            None => Some(0..len),
                            Some(r) => expected(&pt, r),
                        };
                        match (got, want) {
                            (Ok((range, size, bytes)), Some(w)) => {
                                assert_eq!(range, w, "{b:?} n={n} {r:?}");
                                assert_eq!(size, len);
                                assert_eq!(
                                    &bytes[..],
                                    &pt[w.start as usize..w.end as usize],
                                    "{b:?} n={n} {r:?}"
                                );
                            }
                            (Err(e), None) => {
                                assert!(!matches!(e, object_store::Error::NotFound { .. }), "{e}")
                            }
                            (got, want) => panic!("{b:?} n={n} {r:?}: got {got:?}, want {want:?}"),
                        }
                    }
                }
                // Inverted range is rejected.
                #[allow(clippy::reversed_empty_ranges)]
                let inv = GetRange::Bounded(5..3);
                assert!(read(&fx.store, &p, Some(inv)).await.is_err());
                // get_range (ObjectStoreExt) too.
                if n > 10 {
                    let bytes = fx.store.get_range(&p, 3..9).await.unwrap();
                    assert_eq!(&bytes[..], &pt[3..9]);
                }
            }
        }
    }

    #[tokio::test]
    async fn warm_bounded_read_is_one_inner_request() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let p = Path::from("hot");
            let pt = data(20 * C);
            fx.store.put(&p, pt.clone().into()).await.unwrap();
            let before = fx.gets();
            fx.store.head(&p).await.unwrap(); // populates the header cache
            assert_eq!(fx.gets() - before, 1);
            let before = fx.gets();
            let got = fx
                .store
                .get_range(&p, (7 * C as u64 + 5)..(9 * C as u64 + 1))
                .await
                .unwrap();
            assert_eq!(&got[..], &pt[7 * C + 5..9 * C + 1]);
            assert_eq!(fx.gets() - before, 1, "{b:?}");
            // A cold read starting in chunk 0 also needs one request (header comes along).
            fx.store.clear_header_cache();
            let before = fx.gets();
            let got = fx.store.get_range(&p, 10..20).await.unwrap();
            assert_eq!(&got[..], &pt[10..20]);
            assert_eq!(fx.gets() - before, 1);
            // A full get is a single request.
            let before = fx.gets();
            fx.store.get(&p).await.unwrap().bytes().await.unwrap();
            assert_eq!(fx.gets() - before, 1);
        }
    }

    #[tokio::test]
    async fn get_ranges_coalesces_and_matches() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let n = 400 * C + 123; // > 1 MiB, so far-apart ranges are not coalesced
            let p = Path::from("ranges");
            let pt = data(n);
            fx.store.put(&p, pt.clone().into()).await.unwrap();
            let mut rng = Lcg(99);
            for round in 0..20 {
                let k = 1 + rng.below(12) as usize;
                let mut ranges = Vec::new();
                for _ in 0..k {
                    let a = rng.below(n as u64);
                    let len = 1 + rng.below(if round % 2 == 0 { 100 } else { 3 * C as u64 });
                    ranges.push(a..(a + len).min(n as u64 + 5));
                }
                if round == 0 {
                    ranges.push(ranges[0].clone()); // duplicates
                    ranges.push(0..n as u64);
                }
                let got = fx.store.get_ranges(&p, &ranges).await.unwrap();
                for (r, g) in ranges.iter().zip(&got) {
                    let e = r.end.min(n as u64);
                    assert_eq!(&g[..], &pt[r.start as usize..e as usize], "{b:?} {r:?}");
                }
            }
            // Close ranges: header + one coalesced read.
            let before = fx.gets();
            let got = fx
                .store
                .get_ranges(&p, &[0..10, 5 * C as u64..5 * C as u64 + 10, 8..3000])
                .await
                .unwrap();
            assert_eq!(&got[2][..], &pt[8..3000]);
            assert_eq!(fx.gets() - before, 2);
            // Far apart ranges: header + two reads.
            let before = fx.gets();
            let far = 350 * C as u64;
            fx.store
                .get_ranges(&p, &[0..10, far..far + 1])
                .await
                .unwrap();
            assert_eq!(fx.gets() - before, 3);
            assert!(
                fx.store
                    .get_ranges(&p, &[0..1, n as u64..n as u64 + 1])
                    .await
                    .is_err()
            );
            assert!(fx.store.get_ranges(&p, &[]).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn head_and_list_report_plaintext_sizes() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let mut want = Vec::new();
            for (i, n) in sizes().into_iter().enumerate() {
                let p = Path::from(format!("ls/{i}"));
                fx.store.put(&p, data(n).into()).await.unwrap();
                want.push((p, n as u64));
            }
            fx.store
                .put(&Path::from("ls/sub/x"), data(77).into())
                .await
                .unwrap();
            for (p, n) in &want {
                assert_eq!(fx.store.head(p).await.unwrap().size, *n);
            }
            let mut listed: Vec<(Path, u64)> = fx
                .store
                .list(Some(&Path::from("ls")))
                .map_ok(|m| (m.location, m.size))
                .try_collect()
                .await
                .unwrap();
            listed.sort();
            let mut all = want.clone();
            all.push((Path::from("ls/sub/x"), 77));
            all.sort();
            assert_eq!(listed, all);
            let lwd = fx
                .store
                .list_with_delimiter(Some(&Path::from("ls")))
                .await
                .unwrap();
            let mut objs: Vec<(Path, u64)> = lwd
                .objects
                .into_iter()
                .map(|m| (m.location, m.size))
                .collect();
            objs.sort();
            assert_eq!(objs, want);
            assert_eq!(lwd.common_prefixes, vec![Path::from("ls/sub")]);
            let off: Vec<(Path, u64)> = fx
                .store
                .list_with_offset(Some(&Path::from("ls")), &Path::from("ls/3"))
                .map_ok(|m| (m.location, m.size))
                .try_collect::<Vec<_>>()
                .await
                .unwrap();
            let mut off = off;
            off.sort();
            let expect: Vec<_> = all
                .iter()
                .filter(|(p, _)| p > &Path::from("ls/3"))
                .cloned()
                .collect();
            assert_eq!(off, expect);
        }
    }

    #[tokio::test]
    async fn put_mode_create_and_update() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let p = Path::from("_versions/1.manifest");
            let r1 = fx
                .store
                .put_opts(&p, "one".into(), PutMode::Create.into())
                .await
                .unwrap();
            let err = fx
                .store
                .put_opts(&p, "two".into(), PutMode::Create.into())
                .await
                .unwrap_err();
            assert!(
                matches!(err, object_store::Error::AlreadyExists { .. }),
                "{err}"
            );
            assert_eq!(
                fx.store.get(&p).await.unwrap().bytes().await.unwrap(),
                "one"
            );
            if b == Backend::Memory {
                let up = PutMode::Update(UpdateVersion::from(r1.clone()));
                fx.store
                    .put_opts(&p, "three".into(), up.clone().into())
                    .await
                    .unwrap();
                let err = fx
                    .store
                    .put_opts(&p, "four".into(), up.into())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, object_store::Error::Precondition { .. }),
                    "{err}"
                );
                assert_eq!(
                    fx.store.get(&p).await.unwrap().bytes().await.unwrap(),
                    "three"
                );
            }
        }
    }

    #[tokio::test]
    async fn attributes_and_preconditions_pass_through() {
        let fx = Fx::new(Backend::Memory);
        let p = Path::from("attrs");
        let attrs = Attributes::from_iter([(Attribute::ContentType, "application/x-lance")]);
        let put = PutOptions {
            attributes: attrs.clone(),
            ..Default::default()
        };
        let r = fx.store.put_opts(&p, data(5000).into(), put).await.unwrap();
        let g = fx.store.get(&p).await.unwrap();
        assert_eq!(g.attributes, attrs);
        assert_eq!(g.meta.e_tag, r.e_tag);
        let tag = r.e_tag.unwrap();
        for range in [
            None,
            Some(GetRange::Bounded(1..2)),
            Some(GetRange::Suffix(3)),
        ] {
            let ok = GetOptions::new()
                .with_if_match(Some(tag.clone()))
                .with_range(range.clone());
            fx.store
                .get_opts(&p, ok)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let bad = GetOptions::new()
                .with_if_match(Some("nope"))
                .with_range(range.clone());
            let e = fx.store.get_opts(&p, bad).await.unwrap_err();
            assert!(matches!(e, object_store::Error::Precondition { .. }), "{e}");
            let nm = GetOptions::new()
                .with_if_none_match(Some(tag.clone()))
                .with_range(range);
            let e = fx.store.get_opts(&p, nm).await.unwrap_err();
            assert!(matches!(e, object_store::Error::NotModified { .. }), "{e}");
        }
        let e = fx
            .store
            .get_opts(
                &p,
                GetOptions::new()
                    .with_head(true)
                    .with_if_match(Some("nope")),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, object_store::Error::Precondition { .. }), "{e}");
    }

    #[tokio::test]
    async fn multipart_odd_parts_equal_single_put() {
        for b in BACKENDS {
            for min_part in [DEFAULT_MIN_PART_SIZE, 3 * F + 1] {
                let fx = Fx::with(b, |s| {
                    s.with_chunk_size(ChunkSize::new(C as u64).unwrap())
                        .with_min_part_size(min_part)
                });
                let sizes = [1usize, C - 1, C + 1, 3, 10_000, 70_001, 0, 2 * C, 17];
                let total: usize = sizes.iter().sum();
                let pt = data(total);
                let p = Path::from("mp/obj");
                let mut up = fx.store.put_multipart(&p).await.unwrap();
                let mut off = 0;
                let mut futs = Vec::new();
                for s in sizes {
                    futs.push(up.put_part(pt[off..off + s].to_vec().into()));
                    off += s;
                }
                futures::future::try_join_all(futs).await.unwrap();
                up.complete().await.unwrap();
                // A completed upload refuses more work.
                assert!(up.put_part(vec![1u8].into()).await.is_err());
                assert!(up.complete().await.is_err());

                assert_eq!(fx.store.get(&p).await.unwrap().bytes().await.unwrap(), pt);
                assert_eq!(fx.store.head(&p).await.unwrap().size, total as u64);
                let single = Path::from("mp/single");
                fx.store.put(&single, pt.clone().into()).await.unwrap();
                assert_eq!(
                    fx.raw_bytes(&p).await.len(),
                    fx.raw_bytes(&single).await.len()
                );

                let parts = fx.parts.lock().unwrap().clone();
                let raw_len: usize = parts.iter().sum();
                assert_eq!(raw_len, fx.raw_bytes(&p).await.len());
                for (i, &len) in parts.iter().enumerate() {
                    if i + 1 < parts.len() {
                        assert!(len >= min_part, "part {i} is {len} bytes");
                        let body = if i == 0 { len - HEADER_LEN } else { len };
                        assert_eq!(body % F, 0, "part {i} is not whole chunks");
                    }
                }
                if min_part == DEFAULT_MIN_PART_SIZE {
                    assert_eq!(parts.len(), 1, "small uploads are a single part");
                } else {
                    assert!(parts.len() >= 3, "{parts:?}");
                }
            }
        }
    }

    #[tokio::test]
    async fn multipart_write_multipart_and_abort() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let p = Path::from("wm/obj");
            let pt = data(6 * 1024 * 1024 + 333);
            let mut w = WriteMultipart::new_with_chunk_size(
                fx.store.put_multipart(&p).await.unwrap(),
                1_000_003,
            );
            for piece in pt.chunks(77_777) {
                w.write(piece);
            }
            w.finish().await.unwrap();
            assert_eq!(fx.store.get(&p).await.unwrap().bytes().await.unwrap(), pt);
            let parts = fx.parts.lock().unwrap().clone();
            assert!(
                parts.len() >= 2 && parts[0] >= DEFAULT_MIN_PART_SIZE,
                "{parts:?}"
            );

            // Empty multipart upload = empty object.
            let e = Path::from("wm/empty");
            let mut up = fx.store.put_multipart(&e).await.unwrap();
            up.complete().await.unwrap();
            assert_eq!(fx.store.head(&e).await.unwrap().size, 0);
            assert!(
                fx.store
                    .get(&e)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .is_empty()
            );

            // Abort leaves nothing behind.
            let a = Path::from("wm/aborted");
            let mut up = fx.store.put_multipart(&a).await.unwrap();
            up.put_part(data(100).into()).await.unwrap();
            up.abort().await.unwrap();
            let err = fx.store.get(&a).await.unwrap_err();
            assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
            assert!(up.put_part(data(1).into()).await.is_err());
        }
    }

    #[tokio::test]
    async fn copy_and_rename_stay_readable() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let (a, c1, c2, r) = (
                Path::from("cp/a"),
                Path::from("cp/b"),
                Path::from("cp/c"),
                Path::from("cp/renamed"),
            );
            let pt = data(3 * C + 11);
            fx.store.put(&a, pt.clone().into()).await.unwrap();
            fx.store.copy(&a, &c1).await.unwrap();
            assert_eq!(fx.store.get(&c1).await.unwrap().bytes().await.unwrap(), pt);
            fx.store.copy_if_not_exists(&a, &c2).await.unwrap();
            let e = fx.store.copy_if_not_exists(&a, &c2).await.unwrap_err();
            assert!(
                matches!(e, object_store::Error::AlreadyExists { .. }),
                "{e}"
            );
            // Warm the cache for the target, then overwrite it by copy: the
            // new content must be read, not stale cached state.
            let other = data(10);
            fx.store.put(&r, other.clone().into()).await.unwrap();
            assert_eq!(fx.store.get_range(&r, 0..5).await.unwrap(), other[..5]);
            fx.store.rename(&c1, &r).await.unwrap();
            assert_eq!(
                fx.store.get_range(&r, 1..C as u64 + 2).await.unwrap(),
                pt[1..C + 2]
            );
            assert_eq!(fx.store.get(&r).await.unwrap().bytes().await.unwrap(), pt);
            assert!(matches!(
                fx.store.head(&c1).await.unwrap_err(),
                object_store::Error::NotFound { .. }
            ));
            let e = fx.store.rename_if_not_exists(&c2, &r).await.unwrap_err();
            assert!(
                matches!(e, object_store::Error::AlreadyExists { .. }),
                "{e}"
            );
            fx.store.delete(&r).await.unwrap();
            assert!(matches!(
                fx.store.get(&r).await.unwrap_err(),
                object_store::Error::NotFound { .. }
            ));
        }
    }

    #[tokio::test]
    async fn no_plaintext_reaches_the_inner_store() {
        for b in BACKENDS {
            let fx = Fx::with(b, |s| {
                s.with_chunk_size(ChunkSize::new(C as u64).unwrap())
                    .with_min_part_size(2 * F)
            });
            let pt = data(9 * C + 5);
            assert!(contains(&pt, MARKER));
            fx.store
                .put(&Path::from("m/put"), pt.clone().into())
                .await
                .unwrap();
            fx.store
                .put_opts(
                    &Path::from("m/create"),
                    MARKER.to_vec().into(),
                    PutMode::Create.into(),
                )
                .await
                .unwrap();
            let mut up = fx
                .store
                .put_multipart(&Path::from("m/multi"))
                .await
                .unwrap();
            for piece in pt.chunks(1000) {
                up.put_part(piece.to_vec().into()).await.unwrap();
            }
            up.complete().await.unwrap();
            fx.store
                .copy(&Path::from("m/put"), &Path::from("m/copy"))
                .await
                .unwrap();
            fx.store
                .rename(&Path::from("m/copy"), &Path::from("m/renamed"))
                .await
                .unwrap();

            let all = fx.all_raw().await;
            assert_eq!(
                all.len(),
                4,
                "{b:?}: {:?}",
                all.iter().map(|x| &x.0).collect::<Vec<_>>()
            );
            for (name, bytes) in &all {
                assert!(
                    !contains(bytes, MARKER),
                    "{b:?}: plaintext marker found in {name}"
                );
                assert!(
                    !contains(bytes, &MARKER[..12]),
                    "{b:?}: partial marker found in {name}"
                );
                assert_eq!(&bytes[..4], b"EVF1", "{name}");
            }
        }
    }

    #[tokio::test]
    async fn flipped_byte_fails_naming_path_and_chunk() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let p = Path::from("t/flip");
            let pt = data(5 * C + 7);
            fx.store.put(&p, pt.clone().into()).await.unwrap();
            fx.store.head(&p).await.unwrap();
            let mut raw = fx.raw_bytes(&p).await.to_vec();
            raw[HEADER_LEN + 2 * F + 100] ^= 0x04;
            fx.set_raw(&p, raw).await;

            let err = fx.store.get(&p).await.unwrap().bytes().await.unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("t/flip") && msg.contains("chunk 2"),
                "{b:?}: {msg}"
            );
            let inner = evf_err(&err).expect("EncryptedObjectError");
            assert_eq!(inner.path, "t/flip");
            assert_eq!(inner.source, format::Error::Decrypt { index: 2 });
            // Ranged reads touching chunk 2 fail; others still work (random access).
            let e = fx
                .store
                .get_range(&p, 2 * C as u64..2 * C as u64 + 1)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("chunk 2"), "{e}");
            assert!(
                fx.store
                    .get_ranges(&p, &[0..1, 2 * C as u64 + 5..2 * C as u64 + 6])
                    .await
                    .is_err()
            );
            assert_eq!(fx.store.get_range(&p, 0..10).await.unwrap(), pt[..10]);
            assert_eq!(
                fx.store
                    .get_range(&p, 4 * C as u64..4 * C as u64 + 10)
                    .await
                    .unwrap(),
                pt[4 * C..4 * C + 10]
            );

            // Header tamper: every read fails.
            let mut raw = fx.raw_bytes(&p).await.to_vec();
            raw[HEADER_LEN + 2 * F + 100] ^= 0x04; // restore
            raw[30] ^= 0x01; // file id
            fx.set_raw(&p, raw).await;
            let e = fx
                .store
                .get_range(&p, 4 * C as u64..4 * C as u64 + 10)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("chunk 4"), "{e}");
            let e = fx.store.get(&p).await.unwrap().bytes().await.unwrap_err();
            assert!(e.to_string().contains("chunk 0"), "{e}");

            // Version byte: a clear unknown-version error.
            let mut raw = fx.raw_bytes(&p).await.to_vec();
            raw[30] ^= 0x01;
            raw[4] = 2;
            fx.set_raw(&p, raw).await;
            let e = fx.store.get(&p).await.unwrap_err();
            assert!(
                e.to_string().contains("unsupported EVF format version 2"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn truncated_or_extended_object_fails() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let p = Path::from("t/trunc");
            let pt = data(5 * C + 7);
            fx.store.put(&p, pt.clone().into()).await.unwrap();
            let raw = fx.raw_bytes(&p).await.to_vec();

            // Final chunk removed: plausible size, flag check fails.
            fx.set_raw(&p, raw[..raw.len() - (7 + TAG_LEN)].to_vec())
                .await;
            assert_eq!(fx.store.head(&p).await.unwrap().size, 5 * C as u64);
            for r in [
                None,
                Some(GetRange::Suffix(10)),
                Some(GetRange::Offset(3)),
                Some(GetRange::Bounded(5 * C as u64 - 1..5 * C as u64)),
            ] {
                let e = read(&fx.store, &p, r.clone()).await.unwrap_err();
                let msg = e.to_string();
                assert!(
                    msg.contains("truncated") && msg.contains("t/trunc"),
                    "{b:?} {r:?}: {msg}"
                );
            }
            let last_byte = 5 * C as u64 - 1..5 * C as u64;
            assert!(fx.store.get_ranges(&p, &[last_byte]).await.is_err());

            // A few bytes cut off: impossible size or failing final chunk.
            fx.set_raw(&p, raw[..raw.len() - 3].to_vec()).await;
            assert!(fx.store.get(&p).await.unwrap().bytes().await.is_err());
            fx.set_raw(&p, raw[..raw.len() - 20].to_vec()).await; // final chunk < tag
            let e = fx.store.head(&p).await.unwrap_err();
            assert!(
                matches!(
                    evf_err(&e).map(|x| &x.source),
                    Some(format::Error::Truncated(_))
                ),
                "{e}"
            );
            let e = fx
                .store
                .list(None)
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err();
            assert!(e.to_string().contains("t/trunc"), "{e}");

            // Appended data.
            let mut ext = raw.clone();
            ext.extend_from_slice(&raw[HEADER_LEN..HEADER_LEN + F]);
            fx.set_raw(&p, ext).await;
            assert!(fx.store.get(&p).await.unwrap().bytes().await.is_err());
            assert!(
                read(&fx.store, &p, Some(GetRange::Suffix(5)))
                    .await
                    .is_err()
            );

            // Too short to be EVF at all.
            fx.set_raw(&p, raw[..40].to_vec()).await;
            let e = fx.store.head(&p).await.unwrap_err();
            assert!(evf_err(&e).is_some(), "{e}");
            fx.set_raw(&p, Vec::new()).await;
            let e = fx.store.head(&p).await.unwrap_err();
            assert!(e.to_string().contains("too short"), "{e}");
            let e = fx.store.get_range(&p, 0..1).await.unwrap_err();
            assert!(evf_err(&e).is_some(), "{e}");
        }
    }

    #[tokio::test]
    async fn unencrypted_object_is_rejected() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let p = Path::from("plain.txt");
            fx.raw.put(&p, data(500).into()).await.unwrap();
            let e = fx.store.get(&p).await.unwrap_err();
            assert!(
                matches!(
                    evf_err(&e).map(|x| &x.source),
                    Some(format::Error::NotEncrypted)
                ),
                "{e}"
            );
            assert!(fx.store.head(&p).await.is_err());
            assert!(fx.store.get_range(&p, 1..2).await.is_err());
        }
    }

    #[tokio::test]
    async fn key_rotation_and_unknown_key() {
        for b in BACKENDS {
            let fx = Fx::new(b);
            let old = Path::from("k/old");
            fx.store.put(&old, data(C + 1).into()).await.unwrap();
            let kid_b = *b"key-id-000000002";
            let rotated = Arc::new(
                StaticKeys::new(KID, key_a()).with_current(kid_b, DataKey::new([0x22; 32])),
            );
            let s2 = EncryptingObjectStore::new(Arc::clone(&fx.raw), rotated)
                .with_chunk_size(ChunkSize::new(C as u64).unwrap());
            let new = Path::from("k/new");
            s2.put(&new, data(10).into()).await.unwrap();
            assert_eq!(
                Header::parse(&fx.raw_bytes(&new).await).unwrap().key_id,
                kid_b
            );
            assert_eq!(
                s2.get(&old).await.unwrap().bytes().await.unwrap(),
                data(C + 1)
            );
            assert_eq!(s2.get(&new).await.unwrap().bytes().await.unwrap(), data(10));
            // The original store does not know key B.
            let e = fx.store.get(&new).await.unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("unknown EVF key id") && msg.contains(&format::hex(&kid_b)),
                "{msg}"
            );
            // Same key id, wrong key material: authentication fails.
            let wrong = EncryptingObjectStore::new(
                Arc::clone(&fx.raw),
                Arc::new(StaticKeys::new(KID, DataKey::new([0x33; 32]))),
            );
            let e = wrong.get(&old).await.unwrap().bytes().await.unwrap_err();
            assert!(e.to_string().contains("chunk 0"), "{e}");
        }
    }

    #[test]
    fn header_cache_is_bounded_and_keyed_by_version() {
        let mut c = HeaderCache {
            map: HashMap::new(),
            capacity: 3,
        };
        let h = Header::generate(KID, Algorithm::Aes256Gcm, ChunkSize::DEFAULT);
        let meta = |p: &str, tag: Option<&str>| ObjectMeta {
            location: Path::from(p),
            last_modified: Default::default(),
            size: 100,
            e_tag: tag.map(String::from),
            version: None,
        };
        for i in 0..10 {
            let m = meta(&format!("p{i}"), Some("t1"));
            c.put(&m.location, &m, &h);
            assert!(c.map.len() <= 3);
            assert_eq!(c.get(&m.location, &m), Some(h.clone()));
        }
        let m = meta("p9", Some("t2"));
        assert_eq!(c.get(&m.location, &m), None, "other e-tag must miss");
        // Without an e-tag or version nothing is cached.
        let m = meta("x", None);
        c.put(&m.location, &m, &h);
        assert_eq!(c.get(&m.location, &m), None);
    }

    #[test]
    fn debug_and_display_do_not_leak_keys() {
        let store = EncryptingObjectStore::new(Arc::new(InMemory::new()), keys());
        let dbg = format!("{store:?}");
        assert!(
            dbg.contains("StaticKeys") && dbg.contains(&format::hex(&KID)),
            "{dbg}"
        );
        assert!(
            !dbg.contains("17, 17") && !dbg.contains("1111111111"),
            "{dbg}"
        );
        assert_eq!(store.to_string(), "EncryptingObjectStore(InMemory)");
    }

    // ------------------------------------------- object_store conformance suite

    // object_store's own conformance suite; needs its `integration` feature,
    // which would rebuild Lance with other features, so it runs on demand:
    // `cargo test --workspace --features hanzo-db/object-store-conformance`.
    #[cfg(feature = "object-store-conformance")]
    #[tokio::test]
    async fn object_store_integration_suite_in_memory() {
        use object_store::integration::*;
        let s = EncryptingObjectStore::new(Arc::new(InMemory::new()), keys());
        put_get_delete_list(&s).await;
        list_with_offset_exclusivity(&s).await;
        get_opts(&s).await;
        list_uses_directories_correctly(&s).await;
        list_with_delimiter(&s).await;
        rename_and_copy(&s).await;
        copy_if_not_exists(&s).await;
        copy_rename_nonexistent_object(&s).await;
        stream_get(&s).await;
        put_opts(&s, true).await;
        put_get_attributes(&s).await;
        multipart_out_of_order(&s).await;
        let e = get_nonexistent_object(&s, None).await.unwrap_err();
        assert!(matches!(e, object_store::Error::NotFound { .. }), "{e}");
    }

    #[cfg(feature = "object-store-conformance")]
    #[tokio::test]
    async fn object_store_integration_suite_local() {
        use object_store::integration::*;
        let dir = tempfile::tempdir().unwrap();
        let s = EncryptingObjectStore::new(
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
            keys(),
        )
        .with_chunk_size(ChunkSize::new(C as u64).unwrap());
        put_get_delete_list(&s).await;
        list_with_offset_exclusivity(&s).await;
        get_opts(&s).await;
        list_uses_directories_correctly(&s).await;
        list_with_delimiter(&s).await;
        rename_and_copy(&s).await;
        copy_if_not_exists(&s).await;
        copy_rename_nonexistent_object(&s).await;
        stream_get(&s).await;
        put_opts(&s, false).await;
        multipart_out_of_order(&s).await;
        let e = get_nonexistent_object(&s, None).await.unwrap_err();
        assert!(matches!(e, object_store::Error::NotFound { .. }), "{e}");
    }
}
