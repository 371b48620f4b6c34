//! WAL1: the byte layout of a write-buffer log segment (documented in
//! `docs/write-buffer-format.md`).
//!
//! ```text
//! segment = header (64 bytes) || frame || frame || ...
//! header:  0 magic "HZW1" | 4 version 1 | 5 alg (0 none, 1 AES-256-GCM, 2 ChaCha20-Poly1305)
//!          | 6 reserved (2) | 8 key_id (16) | 24 salt (16) | 40 segment number u64 LE
//!          | 48 reserved (12) | 60 check: SHA-256(bytes 0..60)[..4]
//! frame:   0 len u32 LE (sealed length, tag included) | 4 seq u64 LE
//!          | 12 check: SHA-256("hanzo-db/wal1/frame" || bytes 0..12)[..4] | 16 sealed
//! sealed:  AEAD(K_seg, nonce = 0u32 || BE64(seq), payload, aad = header || frame bytes 0..12) || tag16
//! K_seg:   HKDF-SHA256(ikm = data key, salt = header salt, info = "hanzo-db/wal1/segment" || alg || table)
//! ```
//!
//! With encryption off (alg 0) the payload is stored as is and the tag is
//! `SHA-256("hanzo-db/wal1/plain" || aad || payload)[..16]`: a checksum, not
//! a secret.

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::security::format::DataKey;
use crate::security::record::RecordAead;

/// Magic bytes opening every segment.
pub const MAGIC: [u8; 4] = *b"HZW1";
/// Format version written here.
pub const VERSION: u8 = 1;
/// Segment header size.
pub const HEADER_LEN: usize = 64;
/// Frame header size.
pub const FRAME_HEADER_LEN: usize = 16;
/// AEAD tag (or checksum) size.
pub const TAG_LEN: usize = 16;
/// Largest sealed frame accepted (a guard against reading a damaged length).
pub const MAX_FRAME: usize = 1 << 30;

const KDF_INFO: &[u8] = b"hanzo-db/wal1/segment";
const FRAME_CHECK: &[u8] = b"hanzo-db/wal1/frame";
const PLAIN_TAG: &[u8] = b"hanzo-db/wal1/plain";

/// The parsed segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 0 for unencrypted databases, else an [`Algorithm`](crate::security::format::Algorithm) id.
    pub alg: u8,
    /// Data key that sealed the frames (zero when unencrypted).
    pub key_id: [u8; 16],
    /// Random per segment: makes the segment key unique.
    pub salt: [u8; 16],
    /// The segment's number (segments of a table are numbered in creation order).
    pub segment: u64,
}

impl Header {
    /// A fresh header with a random salt.
    pub fn generate(alg: u8, key_id: [u8; 16], segment: u64) -> Self {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        Self {
            alg,
            key_id,
            salt,
            segment,
        }
    }

    /// The 64 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.alg;
        b[8..24].copy_from_slice(&self.key_id);
        b[24..40].copy_from_slice(&self.salt);
        b[40..48].copy_from_slice(&self.segment.to_le_bytes());
        let check = Sha256::digest(&b[..60]);
        b[60..64].copy_from_slice(&check[..4]);
        b
    }

    /// Parses and checks a header.
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than a segment header", b.len()));
        }
        if b[0..4] != MAGIC {
            return Err("not a write-buffer log segment (no \"HZW1\" magic)".into());
        }
        if Sha256::digest(&b[..60])[..4] != b[60..64] {
            return Err("segment header checksum mismatch".into());
        }
        if b[4] != VERSION {
            return Err(format!(
                "log format version {} is not supported (this build reads version {VERSION})",
                b[4]
            ));
        }
        if b[5] > 2 {
            return Err(format!("unknown log cipher id {}", b[5]));
        }
        Ok(Self {
            alg: b[5],
            key_id: b[8..24].try_into().expect("16 bytes"),
            salt: b[24..40].try_into().expect("16 bytes"),
            segment: u64::from_le_bytes(b[40..48].try_into().expect("8 bytes")),
        })
    }
}

/// The 16-byte frame header for a sealed frame of `sealed_len` bytes.
pub fn frame_header(sealed_len: usize, seq: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&(sealed_len as u32).to_le_bytes());
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    let check = frame_check(&h[..12]);
    h[12..16].copy_from_slice(&check);
    h
}

fn frame_check(first12: &[u8]) -> [u8; 4] {
    let mut d = Sha256::new();
    d.update(FRAME_CHECK);
    d.update(first12);
    d.finalize()[..4].try_into().expect("4 bytes")
}

/// Parses a frame header: `(sealed_len, seq)`, or `None` when its check fails.
pub fn parse_frame_header(h: &[u8]) -> Option<(usize, u64)> {
    if h.len() < FRAME_HEADER_LEN || frame_check(&h[..12]) != h[12..16] {
        return None;
    }
    let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
    let seq = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
    Some((len, seq))
}

/// Seals and opens the frames of one segment.
pub struct Sealer {
    header: [u8; HEADER_LEN],
    aead: RecordAead,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..12].copy_from_slice(&seq.to_be_bytes());
    n
}

impl Sealer {
    /// The sealer for a segment of `table`; `key` is required unless `header.alg` is 0.
    pub fn new(header: &Header, table: &str, key: Option<&DataKey>) -> Result<Self, String> {
        let aead = match (header.alg, key) {
            (0, _) => RecordAead::plain(PLAIN_TAG),
            (_, None) => return Err("the log is encrypted but no key is available".into()),
            (alg, Some(key)) => {
                let mut info = Vec::with_capacity(KDF_INFO.len() + 1 + table.len());
                info.extend_from_slice(KDF_INFO);
                info.push(alg);
                info.extend_from_slice(table.as_bytes());
                RecordAead::derive(alg, key.expose_secret(), &header.salt, &info)
            }
        };
        Ok(Self {
            header: header.to_bytes(),
            aead,
        })
    }

    /// The segment header bytes this sealer binds.
    pub fn header_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    fn aad(&self, frame_head: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(HEADER_LEN + 12);
        aad.extend_from_slice(&self.header);
        aad.extend_from_slice(&frame_head[..12]);
        aad
    }

    /// Seals `payload` as frame `seq` and returns the whole frame (header included).
    pub fn seal(&self, seq: u64, payload: &[u8]) -> Vec<u8> {
        let sealed_len = payload.len() + TAG_LEN;
        let head = frame_header(sealed_len, seq);
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + sealed_len);
        out.extend_from_slice(&head);
        out.extend_from_slice(payload);
        let aad = self.aad(&head);
        let tag = self
            .aead
            .seal(nonce(seq), &aad, &mut out[FRAME_HEADER_LEN..]);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens the sealed part of frame `seq` (`frame_head` is its 16-byte header);
    /// `None` when it fails authentication.
    pub fn open(&self, seq: u64, frame_head: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < TAG_LEN {
            return None;
        }
        let (body, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let aad = self.aad(frame_head);
        let mut buf = body.to_vec();
        let ok = self.aead.open(nonce(seq), &aad, &mut buf, tag);
        ok.then_some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::new([7u8; 32])
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = Header::generate(1, [3u8; 16], 42);
        let b = h.to_bytes();
        assert_eq!(Header::parse(&b).unwrap(), h);
        for i in 0..HEADER_LEN {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert!(Header::parse(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn frames_seal_open_and_fail_on_any_change() {
        for alg in [0u8, 1, 2] {
            let h = Header::generate(alg, [1u8; 16], 0);
            let s = Sealer::new(&h, "t", Some(&key())).unwrap();
            let frame = s.seal(5, b"secret payload");
            assert_eq!(frame.len(), FRAME_HEADER_LEN + 14 + TAG_LEN);
            if alg != 0 {
                assert!(!frame.windows(6).any(|w| w == b"secret"));
            }
            let (len, seq) = parse_frame_header(&frame).unwrap();
            assert_eq!((len, seq), (14 + TAG_LEN, 5));
            let open = s.open(5, &frame[..16], &frame[16..]).unwrap();
            assert_eq!(open, b"secret payload");
            for i in FRAME_HEADER_LEN..frame.len() {
                let mut bad = frame.clone();
                bad[i] ^= 1;
                assert!(
                    s.open(5, &bad[..16], &bad[16..]).is_none(),
                    "alg {alg} byte {i}"
                );
            }
            if alg != 0 {
                // The sequence number is the nonce: a frame moved to another position fails.
                assert!(s.open(6, &frame[..16], &frame[16..]).is_none());
            }
            for i in 0..FRAME_HEADER_LEN {
                let mut bad = frame.clone();
                bad[i] ^= 1;
                assert!(parse_frame_header(&bad).is_none(), "header byte {i}");
            }
        }
    }

    #[test]
    fn segment_key_depends_on_table_and_key() {
        let h = Header::generate(1, [1u8; 16], 0);
        let frame = Sealer::new(&h, "a", Some(&key())).unwrap().seal(0, b"x");
        let other_table = Sealer::new(&h, "b", Some(&key())).unwrap();
        assert!(other_table.open(0, &frame[..16], &frame[16..]).is_none());
        let other_key = Sealer::new(&h, "a", Some(&DataKey::new([8u8; 32]))).unwrap();
        assert!(other_key.open(0, &frame[..16], &frame[16..]).is_none());
        assert!(Sealer::new(&h, "a", None).is_err());
    }
}
