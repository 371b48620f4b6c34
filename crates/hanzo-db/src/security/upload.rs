//! [`EncryptingUpload`]: the multipart upload of
//! [`EncryptingObjectStore`](super::store::EncryptingObjectStore), which
//! encrypts parts off the caller's task and forwards them in order.
//!
//! # Pipeline
//!
//! `put_part` only stages the caller's bytes (reference-counted, no copy).
//! Once the staged plaintext holds enough whole chunks for a part of at least
//! `min_part_size` ciphertext bytes, those chunks become a job: their chunk
//! indices are fixed right there (the order of `put_part` calls fixes the byte
//! offsets), and a spawned task encrypts them on Tokio's blocking pool, so
//! several parts can be encrypted at once while the caller keeps producing
//! data. Parts must reach the inner upload in order, so each job waits for the
//! previous one's ticket (sent once that one called the inner `put_part`)
//! before forwarding its ciphertext, then passes the ticket on.
//!
//! The [`UploadPart`] future of a `put_part` resolves once its job has been
//! forwarded and written (immediately when the bytes were only staged). The
//! jobs run as spawned tasks, so they progress whether or not that future is
//! polled. `complete` waits for every job, fails if any of them failed
//! (leaving no completed object), then encrypts the staged tail as the final
//! chunks. `abort` stops jobs that have not forwarded yet, waits for the rest
//! and aborts the inner upload.
//!
//! Without a Tokio runtime (other executors) jobs run inline in `put_part`.
//!
//! The last whole chunk is always held back: only `complete` knows whether it
//! is the final chunk (EVF1 marks the final chunk in its nonce). A fresh file
//! id and salt are drawn for every upload, so retried uploads never reuse
//! nonces.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::FutureExt;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::format::{FileCipher, HEADER_LEN, TAG_LEN};
use super::store::STORE_NAME;

type Inner = Box<dyn MultipartUpload>;

/// State shared by the upload and its jobs.
struct Shared {
    /// The inner upload; `None` once `complete` or `abort` took it.
    inner: Mutex<Option<Inner>>,
    /// First failure of any job, reported again by `complete`.
    failed: Mutex<Option<String>>,
    aborted: AtomicBool,
    location: Path,
}

impl Shared {
    fn record(&self, e: &object_store::Error) {
        let mut f = self.failed.lock().expect("upload failure lock");
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }

    /// Forwards `ciphertext` as the next inner part, unless the upload ended.
    fn forward(&self, ciphertext: Vec<u8>) -> object_store::Result<UploadPart> {
        let mut inner = self.inner.lock().expect("inner upload lock");
        match inner.as_mut() {
            Some(up) if !self.aborted.load(Ordering::SeqCst) => {
                Ok(up.put_part(PutPayload::from(ciphertext)))
            }
            _ => Err(upload_err(&self.location, "was aborted")),
        }
    }
}

fn upload_err(location: &Path, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE_NAME,
        source: format!("multipart upload to {location} {what}").into(),
    }
}

/// Plaintext chunks with fixed chunk indices, ready to encrypt.
struct Job {
    cipher: Arc<FileCipher>,
    first_index: u64,
    with_header: bool,
    pieces: Vec<Bytes>,
    ends_file: bool,
}

impl Job {
    fn encrypt(self) -> Vec<u8> {
        let plain: usize = self.pieces.iter().map(Bytes::len).sum();
        let c = self.cipher.header().chunk_size.bytes() as usize;
        let chunks = plain.div_ceil(c).max(1);
        let mut out = Vec::with_capacity(HEADER_LEN + plain + chunks * TAG_LEN);
        if self.with_header {
            out.extend_from_slice(self.cipher.header_bytes());
        }
        self.cipher
            .encrypt_chunks_into(self.first_index, &self.pieces, self.ends_file, &mut out);
        out
    }
}

/// Multipart upload that encrypts on the fly; see the [module docs](self).
/// Parts forwarded to the inner upload hold whole ciphertext chunks (the first
/// also the header) and are at least `min_part_size` bytes, except the last
/// one sent by `complete`.
pub(super) struct EncryptingUpload {
    shared: Arc<Shared>,
    /// `None` once completed or aborted.
    cipher: Option<Arc<FileCipher>>,
    /// Plaintext not yet assigned to a job (always less than one part).
    staged: Vec<Bytes>,
    staged_len: usize,
    next_index: u64,
    header_sent: bool,
    min_part_size: usize,
    runtime: Option<Handle>,
    /// Ticket of the latest job: resolves once it forwarded its part.
    ticket: Option<oneshot::Receiver<()>>,
    jobs: Vec<JoinHandle<()>>,
    on_complete: Box<dyn FnMut() + Send>,
}

impl fmt::Debug for EncryptingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingUpload")
            .field("location", &self.shared.location)
            .field("staged", &self.staged_len)
            .field("next_index", &self.next_index)
            .field("jobs", &self.jobs.len())
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl EncryptingUpload {
    /// Encrypts with `cipher` (a fresh header) into `inner`; `on_complete`
    /// runs after a successful `complete` (cache invalidation).
    pub(super) fn new(
        inner: Inner,
        cipher: FileCipher,
        min_part_size: usize,
        location: Path,
        on_complete: Box<dyn FnMut() + Send>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Some(inner)),
                failed: Mutex::new(None),
                aborted: AtomicBool::new(false),
                location,
            }),
            cipher: Some(Arc::new(cipher)),
            staged: Vec::new(),
            staged_len: 0,
            next_index: 0,
            header_sent: false,
            min_part_size,
            runtime: Handle::try_current().ok(),
            ticket: None,
            jobs: Vec::new(),
            on_complete,
        }
    }

    fn chunk_len(cipher: &FileCipher) -> usize {
        cipher.header().chunk_size.bytes() as usize
    }

    /// Takes the first `len` staged bytes (splitting a piece if needed).
    fn take_staged(&mut self, len: usize) -> Vec<Bytes> {
        let mut taken = Vec::new();
        let mut need = len;
        let mut rest = std::mem::take(&mut self.staged).into_iter();
        for mut b in rest.by_ref() {
            if b.len() <= need {
                need -= b.len();
                taken.push(b);
            } else {
                taken.push(b.split_to(need));
                need = 0;
                self.staged.push(b);
            }
            if need == 0 {
                break;
            }
        }
        self.staged.extend(rest);
        self.staged_len -= len;
        taken
    }

    /// Builds the job for the first `len` staged bytes (whole chunks unless
    /// `ends_file`), advancing the chunk index.
    fn job(&mut self, cipher: &Arc<FileCipher>, len: usize, ends_file: bool) -> Job {
        let first_index = self.next_index;
        let c = Self::chunk_len(cipher);
        self.next_index += len.div_ceil(c).max(1) as u64;
        let with_header = !std::mem::replace(&mut self.header_sent, true);
        Job {
            cipher: Arc::clone(cipher),
            first_index,
            with_header,
            pieces: self.take_staged(len),
            ends_file,
        }
    }

    /// Encrypts and forwards `job` after the previous job, on the runtime.
    fn spawn(&mut self, rt: &Handle, job: Job) -> UploadPart {
        let prev = self.ticket.take();
        let (ticket_tx, ticket_rx) = oneshot::channel();
        self.ticket = Some(ticket_rx);
        let (done_tx, done_rx) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let blocking = rt.clone();
        self.jobs.retain(|j| !j.is_finished());
        self.jobs.push(rt.spawn(async move {
            let res = async {
                let ciphertext = blocking
                    .spawn_blocking(move || job.encrypt())
                    .await
                    .map_err(|e| {
                        upload_err(&shared.location, &format!("encryption failed: {e}"))
                    })?;
                if let Some(prev) = prev {
                    // A dropped ticket: an earlier part was never forwarded,
                    // so this one must not be either (offsets would shift).
                    prev.await.map_err(|_| {
                        let what = if shared.aborted.load(Ordering::SeqCst) {
                            "was aborted"
                        } else {
                            "lost an earlier part"
                        };
                        upload_err(&shared.location, what)
                    })?;
                }
                let written = shared.forward(ciphertext)?;
                let _ = ticket_tx.send(());
                written.await
            }
            .await;
            if let Err(e) = &res {
                shared.record(e);
            }
            let _ = done_tx.send(res);
        }));
        let location = self.shared.location.clone();
        async move {
            done_rx
                .await
                .unwrap_or_else(|_| Err(upload_err(&location, "part task ended early")))
        }
        .boxed()
    }

    /// Waits for every job (their errors are in `shared.failed`).
    async fn drain(&mut self) -> object_store::Result<()> {
        self.ticket = None;
        for job in self.jobs.drain(..) {
            job.await
                .map_err(|e| upload_err(&self.shared.location, &format!("part task: {e}")))?;
        }
        Ok(())
    }

    fn take_inner(&self) -> object_store::Result<Inner> {
        self.shared
            .inner
            .lock()
            .expect("inner upload lock")
            .take()
            .ok_or_else(|| upload_err(&self.shared.location, "was already completed or aborted"))
    }
}

#[async_trait]
impl MultipartUpload for EncryptingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(cipher) = self.cipher.clone() else {
            let e = upload_err(&self.shared.location, "was already completed or aborted");
            return async move { Err(e) }.boxed();
        };
        for b in data.iter().filter(|b| !b.is_empty()) {
            self.staged_len += b.len();
            self.staged.push(b.clone());
        }
        let c = Self::chunk_len(&cipher);
        // Whole chunks, keeping 1..=C bytes back for the final chunk.
        let chunks = self.staged_len.saturating_sub(1) / c;
        let header = if self.header_sent { 0 } else { HEADER_LEN };
        if chunks == 0 || header + chunks * (c + TAG_LEN) < self.min_part_size {
            return async { Ok(()) }.boxed();
        }
        let job = self.job(&cipher, chunks * c, false);
        match self.runtime.clone() {
            Some(rt) => self.spawn(&rt, job),
            None => match self.shared.forward(job.encrypt()) {
                Ok(written) => written,
                Err(e) => async move { Err(e) }.boxed(),
            },
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let cipher = self
            .cipher
            .take()
            .ok_or_else(|| upload_err(&self.shared.location, "was already completed or aborted"))?;
        self.drain().await?;
        let failed = self
            .shared
            .failed
            .lock()
            .expect("upload failure lock")
            .take();
        if let Some(e) = failed {
            // No completed object: drop the staged upload.
            let mut inner = self.take_inner()?;
            let _ = inner.abort().await;
            return Err(upload_err(
                &self.shared.location,
                &format!("failed, a part could not be written: {e}"),
            ));
        }
        let big = self.staged_len >= 1 << 20;
        let job = self.job(&cipher, self.staged_len, true);
        let tail = match &self.runtime {
            Some(rt) if big => rt
                .spawn_blocking(move || job.encrypt())
                .await
                .map_err(|e| upload_err(&self.shared.location, &format!("encryption: {e}")))?,
            _ => job.encrypt(),
        };
        let mut inner = self.take_inner()?;
        inner.put_part(PutPayload::from(tail)).await?;
        let res = inner.complete().await?;
        (self.on_complete)();
        Ok(res)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.cipher = None;
        self.staged.clear();
        self.staged_len = 0;
        self.shared.aborted.store(true, Ordering::SeqCst);
        self.drain().await?;
        self.take_inner()?.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::format::{self, Algorithm, ChunkSize, DataKey, Header};
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    const C: usize = 4096;
    const F: usize = C + TAG_LEN;

    fn key() -> DataKey {
        DataKey::new([0x5a; 32])
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Odd part sizes, empty parts included (deterministic).
    fn odd_sizes(n: usize) -> Vec<usize> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                match i % 7 {
                    0 => 0,
                    1 => C,
                    2 => (x >> 33) as usize % 5,
                    _ => (x >> 33) as usize % (9 * C),
                }
            })
            .collect()
    }

    /// Records the parts that reach the inner upload; fails part `fail_at`.
    #[derive(Debug)]
    struct Flaky {
        inner: Inner,
        parts: Arc<Mutex<Vec<usize>>>,
        fail_at: Option<usize>,
    }

    #[async_trait]
    impl MultipartUpload for Flaky {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            let i = {
                let mut p = self.parts.lock().unwrap();
                p.push(data.content_length());
                p.len() - 1
            };
            if self.fail_at == Some(i) {
                return async {
                    Err(object_store::Error::Generic {
                        store: "Flaky",
                        source: "disk full".into(),
                    })
                }
                .boxed();
            }
            self.inner.put_part(data)
        }
        async fn complete(&mut self) -> object_store::Result<PutResult> {
            self.inner.complete().await
        }
        async fn abort(&mut self) -> object_store::Result<()> {
            self.inner.abort().await
        }
    }

    struct Fx {
        raw: InMemory,
        path: Path,
        parts: Arc<Mutex<Vec<usize>>>,
        completions: Arc<Mutex<usize>>,
    }

    impl Fx {
        fn new() -> Self {
            Self {
                raw: InMemory::new(),
                path: Path::from("up/obj"),
                parts: Arc::new(Mutex::new(Vec::new())),
                completions: Arc::new(Mutex::new(0)),
            }
        }

        async fn upload(&self, min_part_size: usize, fail_at: Option<usize>) -> EncryptingUpload {
            let inner = self.raw.put_multipart(&self.path).await.unwrap();
            let flaky = Flaky {
                inner,
                parts: Arc::clone(&self.parts),
                fail_at,
            };
            let header = Header::generate(
                [9; 16],
                Algorithm::Aes256Gcm,
                ChunkSize::new(C as u64).unwrap(),
            );
            let done = Arc::clone(&self.completions);
            EncryptingUpload::new(
                Box::new(flaky),
                header.cipher(&key()),
                min_part_size,
                self.path.clone(),
                Box::new(move || *done.lock().unwrap() += 1),
            )
        }

        async fn plaintext(&self) -> object_store::Result<Vec<u8>> {
            let raw = self.raw.get(&self.path).await?.bytes().await?;
            Ok(format::decrypt(&raw, |_| Some(Box::new(key()))).unwrap())
        }

        /// Inner parts: whole chunks (the first with the header), at least
        /// `min` bytes, except the last.
        fn check_parts(&self, min: usize, total: usize) {
            let parts = self.parts.lock().unwrap().clone();
            let n_chunks = total.div_ceil(C).max(1);
            assert_eq!(
                parts.iter().sum::<usize>(),
                HEADER_LEN + total + n_chunks * TAG_LEN
            );
            for (i, &len) in parts.iter().enumerate().take(parts.len() - 1) {
                assert!(len >= min, "part {i} is {len} bytes: {parts:?}");
                let body = if i == 0 { len - HEADER_LEN } else { len };
                assert_eq!(body % F, 0, "part {i} is not whole chunks: {parts:?}");
            }
        }
    }

    /// Feeds `sizes` as parts, awaiting their futures only at the end and in
    /// reverse order (the jobs must progress without being polled).
    async fn feed(
        up: &mut EncryptingUpload,
        pt: &[u8],
        sizes: &[usize],
    ) -> Vec<object_store::Result<()>> {
        let mut futs = Vec::new();
        let mut off = 0;
        for &s in sizes {
            futs.push(up.put_part(pt[off..off + s].to_vec().into()));
            off += s;
        }
        let mut out = Vec::new();
        while let Some(f) = futs.pop() {
            out.push(f.await);
        }
        out.reverse();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_odd_parts_round_trip_byte_exact() {
        let sizes = odd_sizes(300);
        let total: usize = sizes.iter().sum();
        let pt = data(total);
        for min in [1, 3 * F + 1, 64 * F, 5 << 20] {
            let fx = Fx::new();
            let mut up = fx.upload(min, None).await;
            for r in feed(&mut up, &pt, &sizes).await {
                r.unwrap();
            }
            up.complete().await.unwrap();
            assert_eq!(fx.plaintext().await.unwrap(), pt, "min part {min}");
            fx.check_parts(min, total);
            assert_eq!(*fx.completions.lock().unwrap(), 1);
            if min < 64 * F {
                assert!(fx.parts.lock().unwrap().len() > 10);
            }
            assert!(up.put_part(vec![1u8].into()).await.is_err());
            assert!(up.complete().await.is_err());
        }
    }

    #[tokio::test]
    async fn current_thread_runtime_and_one_big_part() {
        // One part of many chunks, then a tail of exactly one chunk.
        let pt = data(40 * C + C);
        let fx = Fx::new();
        let mut up = fx.upload(1, None).await;
        for r in feed(&mut up, &pt, &[40 * C, C]).await {
            r.unwrap();
        }
        up.complete().await.unwrap();
        assert_eq!(fx.plaintext().await.unwrap(), pt);
        fx.check_parts(1, pt.len());
    }

    #[test]
    fn without_a_runtime_parts_are_encrypted_inline() {
        let sizes = odd_sizes(50);
        let total: usize = sizes.iter().sum();
        let pt = data(total);
        let fx = Fx::new();
        futures::executor::block_on(async {
            let mut up = fx.upload(2 * F, None).await;
            assert!(up.runtime.is_none());
            for r in feed(&mut up, &pt, &sizes).await {
                r.unwrap();
            }
            up.complete().await.unwrap();
            assert_eq!(fx.plaintext().await.unwrap(), pt);
        });
        fx.check_parts(2 * F, total);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_inner_part_fails_complete_and_leaves_no_object() {
        let pt = data(30 * C + 7);
        let sizes = [5 * C, 5 * C, 5 * C, 5 * C, 5 * C, 5 * C + 7];
        let fx = Fx::new();
        let mut up = fx.upload(1, Some(2)).await;
        let results = feed(&mut up, &pt, &sizes).await;
        let failed: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].is_err())
            .collect();
        assert_eq!(failed.len(), 1, "{results:?}");
        let msg = results[failed[0]].as_ref().unwrap_err().to_string();
        assert!(msg.contains("disk full"), "{msg}");
        let e = up.complete().await.unwrap_err().to_string();
        assert!(e.contains("up/obj") && e.contains("disk full"), "{e}");
        assert!(matches!(
            fx.raw.head(&fx.path).await.unwrap_err(),
            object_store::Error::NotFound { .. }
        ));
        assert_eq!(*fx.completions.lock().unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abort_midway_leaves_nothing() {
        let pt = data(64 * C);
        let fx = Fx::new();
        let mut up = fx.upload(1, None).await;
        // Parts in flight, none awaited.
        let pending: Vec<_> = pt
            .chunks(8 * C + 3)
            .map(|p| up.put_part(p.to_vec().into()))
            .collect();
        up.abort().await.unwrap();
        // Every part either made it before the abort or reports it.
        for r in futures::future::join_all(pending).await {
            if let Err(e) = r {
                assert!(e.to_string().contains("aborted"), "{e}");
            }
        }
        assert!(matches!(
            fx.raw.head(&fx.path).await.unwrap_err(),
            object_store::Error::NotFound { .. }
        ));
        assert!(up.put_part(vec![1u8].into()).await.is_err());
        assert!(up.complete().await.is_err());
        assert!(up.abort().await.is_err());
    }
}
