//! The Lance side of encryption at rest: an object-store provider for a
//! scheme of our own, registered in the Lance session, whose stores write
//! local files through [`EncryptingObjectStore`].
//!
//! Lance reads and writes `file://` paths directly (pread, temp file +
//! rename), bypassing any object-store wrapper. Paths under [`SCHEME`] are not
//! "local" to Lance (it only treats `file` and `file+uring` so), so every
//! read, write, list, copy, rename and delete goes through the object-store
//! API, and so through encryption. The plaintext-scan test proves it.

use std::sync::Arc;

use lance_io::object_store::{ObjectStore, ObjectStoreParams, ObjectStoreProvider};
use object_store::path::Path;
use url::Url;

use super::format::{Algorithm, ChunkSize};
use super::plain_cache::PlainCache;
use super::store::{EncryptingObjectStore, KeySource};

/// URI scheme of encrypted local databases: `file-object-store:///abs/path`.
///
/// This is Lance's own name for "local files through the object-store API";
/// our session registers [`EncryptedLocalProvider`] under it, replacing
/// Lance's plain provider for this database only. Reusing the name matters:
/// Lance picks the commit protocol by scheme, and for this one it uses
/// conditional puts (`PutMode::Create`), so concurrent writers cannot lose
/// each other's commits. An unknown scheme would get Lance's unsafe commit
/// handler (found by the conformance suite's concurrency test).
pub const SCHEME: &str = "file-object-store";

/// Smallest part forwarded to the local files' multipart upload.
const LOCAL_MIN_PART_SIZE: usize = 1 << 20;

/// Builds encrypting stores over the local file system.
#[derive(Debug)]
pub struct EncryptedLocalProvider {
    keys: Arc<dyn KeySource>,
    alg: Algorithm,
    chunk: ChunkSize,
    /// One read cache for every store of this database.
    read_cache: Option<Arc<PlainCache>>,
}

impl EncryptedLocalProvider {
    /// A provider using these keys, cipher and chunk size for new files.
    pub fn new(keys: Arc<dyn KeySource>, alg: Algorithm, chunk: ChunkSize) -> Self {
        Self {
            keys,
            alg,
            chunk,
            read_cache: PlainCache::new(super::store::DEFAULT_READ_CACHE_BYTES).map(Arc::new),
        }
    }

    /// Bytes of decrypted chunks kept in memory, shared by all of this
    /// database's stores (0 turns the cache off).
    pub fn with_read_cache_bytes(mut self, bytes: u64) -> Self {
        self.read_cache = PlainCache::new(bytes).map(Arc::new);
        self
    }
}

#[async_trait::async_trait]
impl ObjectStoreProvider for EncryptedLocalProvider {
    async fn new_store(
        &self,
        base_path: Url,
        params: &ObjectStoreParams,
    ) -> lance_core::Result<ObjectStore> {
        let inner: Arc<dyn object_store::ObjectStore> =
            Arc::new(super::local_files::LocalFiles::new());
        let enc = EncryptingObjectStore::new(inner, self.keys.clone())
            .with_algorithm(self.alg)
            .with_chunk_size(self.chunk)
            // Local files take parts of any size: forward each of Lance's
            // parts (5 MiB and up) as soon as it is encrypted.
            .with_min_part_size(LOCAL_MIN_PART_SIZE)
            .with_shared_read_cache(self.read_cache.clone());
        Ok(ObjectStore::new(
            Arc::new(enc),
            base_path,
            Some(params.block_size.unwrap_or(self.chunk.bytes() as usize)),
            params.object_store_wrapper.clone(),
            false,
            false,
            8,
            3,
            params.storage_options(),
        ))
    }

    fn extract_path(&self, url: &Url) -> lance_core::Result<Path> {
        Path::from_url_path(url.path())
            .map_err(|e| lance_core::Error::invalid_input(format!("bad path in `{url}`: {e}")))
    }

    fn calculate_object_store_prefix(
        &self,
        _url: &Url,
        _storage_options: Option<&std::collections::HashMap<String, String>>,
    ) -> lance_core::Result<String> {
        Ok(SCHEME.to_string())
    }
}

/// The URI of a local directory under [`SCHEME`].
pub fn uri_for(dir: &std::path::Path) -> crate::Result<String> {
    let url = Url::from_directory_path(dir)
        .map_err(|_| crate::Error::Config(format!("{} is not an absolute path", dir.display())))?;
    Ok(format!("{SCHEME}://{}", url.path().trim_end_matches('/')))
}

/// A Lance session whose registry knows [`SCHEME`].
pub fn session(provider: EncryptedLocalProvider) -> Arc<lancedb::Session> {
    let registry = Arc::new(lancedb::ObjectStoreRegistry::default());
    registry.insert(SCHEME, Arc::new(provider));
    Arc::new(lancedb::Session::new(
        lance_index_cache_bytes(),
        1024 * 1024 * 1024, // Lance's default metadata cache
        registry,
    ))
}

fn lance_index_cache_bytes() -> usize {
    // Lance's own default for the index cache.
    6 * 1024 * 1024 * 1024
}
