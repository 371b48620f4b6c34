//! The local file system under the encrypting store, tuned for Lance's reads.
//!
//! `object_store`'s [`LocalFileSystem`] answers a ranged `get` with an open
//! file handle that its stream then reads in 8 KiB pieces, each on a blocking
//! thread: three or more thread hops and copies for one 16 KiB chunk. Lance
//! issues hundreds of small ranged reads per query (index pages, re-ranking
//! takes), so on the encrypted path that overhead dominated search latency.
//!
//! [`LocalFiles`] keeps everything of [`LocalFileSystem`] (writes, atomic
//! renames, conditional puts, listing) and replaces only `get`: one `open` and
//! one positioned read (`pread`) of exactly the requested bytes. Small reads
//! (the usual case, served from the page cache) run inline; large ones on a
//! blocking thread. Metadata and e-tags are computed exactly as
//! [`LocalFileSystem`] computes them, so preconditions and the e-tags that
//! `list` reports stay consistent.

use std::fs::{File, Metadata};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// Reads up to this size run inline on the calling task.
const INLINE_READ_MAX: u64 = 256 * 1024;

/// [`LocalFileSystem`] with single-`pread` ranged reads (see the module docs).
#[derive(Debug, Clone)]
pub struct LocalFiles {
    inner: Arc<LocalFileSystem>,
}

impl Default for LocalFiles {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalFiles {
    /// A store over absolute local paths, like `LocalFileSystem::new()`.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(LocalFileSystem::new()),
        }
    }

    fn read(path: PathBuf, location: Path, options: GetOptions) -> object_store::Result<GetResult> {
        let file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let md = file.metadata().map_err(|e| io_err(&path, e))?;
        if md.is_dir() {
            return Err(object_store::Error::NotFound {
                path: path.display().to_string(),
                source: "is a directory".into(),
            });
        }
        let meta = object_meta(&md, location);
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r.as_range(meta.size).map_err(generic)?,
            None => 0..meta.size,
        };
        let payload = if options.head {
            stream::empty().boxed()
        } else {
            let bytes = pread(&file, &path, range.clone())?;
            stream::once(async move { Ok(bytes) }).boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Attributes::default(),
            extensions: Default::default(),
        })
    }
}

fn pread(file: &File, path: &std::path::Path, range: Range<u64>) -> object_store::Result<Bytes> {
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)
        .map_err(|e| io_err(path, e))?;
    Ok(Bytes::from(buf))
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> object_store::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        object_store::Error::NotFound {
            path: path.display().to_string(),
            source: Box::new(e),
        }
    } else {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("{}: {e}", path.display()).into(),
        }
    }
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    }
}

/// `ObjectMeta` exactly as `LocalFileSystem` builds it (same e-tag scheme).
fn object_meta(md: &Metadata, location: Path) -> ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let last_modified: DateTime<Utc> = md
        .modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    ObjectMeta {
        location,
        last_modified,
        size: md.len(),
        e_tag: Some(format!(
            "\"{:x}-{:x}-{:x}\"",
            md.ino(),
            mtime.as_micros(),
            md.len()
        )),
        version: None,
    }
}

impl std::fmt::Display for LocalFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalFiles")
    }
}

#[async_trait]
impl ObjectStore for LocalFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let path = self.inner.path_to_filesystem(location)?;
        let small = match &options.range {
            _ if options.head => true,
            Some(object_store::GetRange::Bounded(r)) => {
                r.end.saturating_sub(r.start) <= INLINE_READ_MAX
            }
            Some(object_store::GetRange::Suffix(n)) => *n <= INLINE_READ_MAX,
            _ => false,
        };
        let location = location.clone();
        if small {
            return Self::read(path, location, options);
        }
        tokio::task::spawn_blocking(move || Self::read(path, location, options))
            .await
            .map_err(generic)?
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{GetRange, ObjectStoreExt};

    #[tokio::test]
    async fn ranged_reads_and_metadata_match_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFiles::new();
        let plain = LocalFileSystem::new();
        let p = Path::from_absolute_path(dir.path().join("f.bin")).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        fs.put(&p, data.clone().into()).await.unwrap();

        let ours = fs.head(&p).await.unwrap();
        let theirs = plain.head(&p).await.unwrap();
        assert_eq!(ours.e_tag, theirs.e_tag);
        assert_eq!(ours.size, theirs.size);

        for r in [0..1, 10..20_000, 99_990..100_000, 5..300_000] {
            let got = fs.get_range(&p, r.clone()).await;
            let want = plain.get_range(&p, r.clone()).await;
            match (got, want) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "range {r:?}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("range {r:?}: ours {a:?}, LocalFileSystem {b:?}"),
            }
        }
        let suffix = fs
            .get_opts(
                &p,
                GetOptions {
                    range: Some(GetRange::Suffix(10)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&suffix[..], &data[data.len() - 10..]);
        assert_eq!(fs.get(&p).await.unwrap().bytes().await.unwrap(), data);

        // Preconditions use the same e-tag.
        let stale = GetOptions {
            if_match: Some("\"nope\"".into()),
            ..Default::default()
        };
        assert!(fs.get_opts(&p, stale).await.is_err());
        let missing = Path::from_absolute_path(dir.path().join("missing")).unwrap();
        assert!(matches!(
            fs.get(&missing).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
}
