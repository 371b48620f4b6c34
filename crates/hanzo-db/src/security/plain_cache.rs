//! Decrypted chunks of immutable files, shared by every read of a database.
//!
//! On a plain local database the operating system's page cache keeps hot file
//! pages, and Lance's many small reads (index pages, re-ranking takes, result
//! columns) cost a `pread` each. Encrypted, each of those reads would also pay
//! for authenticating and decrypting a whole chunk, again and again for the
//! same hot chunks. This cache keeps recently used plaintext chunks in memory,
//! bounded in bytes (the `security.read_cache_bytes` setting; 0 turns it off).
//!
//! Only files Lance never rewrites are cached: data files (`data/`), index
//! files (`_indices/`) and deletion files (`_deletions/`), all named by fresh
//! UUIDs. Chunks are keyed by the random file id from the EVF1 header, so a
//! chunk can never be served for another file; any write, rename, copy or
//! delete through the store forgets the path. Manifests and other mutable
//! files always go to disk.
//!
//! The plaintext lives in this process's memory, like Lance's own caches of
//! decoded pages and index partitions; nothing of it is ever written out.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream;
use object_store::path::Path;
use object_store::{Attributes, GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta};

use super::format::{Header, plaintext_len};

/// The caches' hasher. Keys are random file ids and chunk numbers, or paths
/// this process wrote: nothing an attacker picks, so FxHash instead of
/// SipHash (which took a sixth of an uncached scan's time).
type Fx = rustc_hash::FxBuildHasher;

/// Plaintext chunk cache (see the module docs).
pub(crate) struct PlainCache {
    chunks: moka::sync::Cache<([u8; 16], u64), Bytes, Fx>,
    files: moka::sync::Cache<Path, (ObjectMeta, Header), Fx>,
}

impl std::fmt::Debug for PlainCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCache")
            .field("chunks", &self.chunks.entry_count())
            .field("bytes", &self.chunks.weighted_size())
            .finish()
    }
}

impl PlainCache {
    /// A cache holding at most `bytes` of plaintext; `None` when 0.
    pub(crate) fn new(bytes: u64) -> Option<Self> {
        (bytes > 0).then(|| Self {
            chunks: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, v: &Bytes| u32::try_from(v.len() + 64).unwrap_or(u32::MAX))
                .build_with_hasher(Fx::default()),
            files: moka::sync::Cache::builder()
                .max_capacity(16_384)
                .build_with_hasher(Fx::default()),
        })
    }

    /// Whether chunks of `path` may be cached (files Lance never rewrites).
    pub(crate) fn cacheable(path: &Path) -> bool {
        path.parts()
            .any(|p| matches!(p.as_ref(), "data" | "_indices" | "_deletions"))
    }

    /// Remembers the (ciphertext) metadata and header of a cacheable file.
    pub(crate) fn remember_file(&self, path: &Path, meta: &ObjectMeta, header: &Header) {
        if Self::cacheable(path) {
            self.files
                .insert(path.clone(), (meta.clone(), header.clone()));
        }
    }

    /// Forgets a path that was written, renamed, copied over or deleted.
    pub(crate) fn forget(&self, path: &Path) {
        self.files.invalidate(path);
    }

    /// Keeps one decrypted chunk (its whole plaintext).
    pub(crate) fn put_chunk(&self, file_id: [u8; 16], index: u64, plaintext: Bytes) {
        self.chunks.insert((file_id, index), plaintext);
    }

    /// A cached decrypted chunk.
    pub(crate) fn chunk(&self, file_id: [u8; 16], index: u64) -> Option<Bytes> {
        self.chunks.get(&(file_id, index))
    }

    /// Bytes of plaintext held now.
    pub(crate) fn bytes(&self) -> u64 {
        self.chunks.run_pending_tasks();
        self.chunks.weighted_size()
    }

    /// Serves a ranged read entirely from memory when every chunk it covers is
    /// cached; `None` sends the read to disk. Reads with preconditions always
    /// go to disk.
    pub(crate) fn serve(
        &self,
        location: &Path,
        options: &GetOptions,
        range: &GetRange,
    ) -> Option<GetResult> {
        if options.head
            || options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some()
        {
            return None;
        }
        let (meta, header) = self.files.get(location)?;
        let cs = header.chunk_size;
        let pt_len = plaintext_len(meta.size, cs).ok()?;
        let r: Range<u64> = range.as_range(pt_len).ok()?;
        if r.start >= r.end {
            return None;
        }
        let c = cs.bytes();
        let (first, last) = (r.start / c, (r.end - 1) / c);
        let bytes = if first == last {
            let chunk = self.chunk(header.file_id, first)?;
            let base = first * c;
            let (s, e) = ((r.start - base) as usize, (r.end - base) as usize);
            if e > chunk.len() {
                return None;
            }
            chunk.slice(s..e)
        } else {
            let mut out = BytesMut::with_capacity((r.end - r.start) as usize);
            for idx in first..=last {
                let chunk = self.chunk(header.file_id, idx)?;
                let base = idx * c;
                let s = r.start.saturating_sub(base) as usize;
                let e = ((r.end - base) as usize).min(chunk.len());
                if s > e {
                    return None;
                }
                out.extend_from_slice(&chunk[s..e]);
            }
            if out.len() as u64 != r.end - r.start {
                return None;
            }
            out.freeze()
        };
        Some(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
            meta: ObjectMeta {
                size: pt_len,
                ..meta
            },
            range: r,
            attributes: Attributes::default(),
            extensions: Default::default(),
        })
    }
}
