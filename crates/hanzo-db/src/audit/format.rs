//! The on-disk format of the audit log (documented in `docs/audit-log-format.md`).
//!
//! A segment file is a sequence of frames, one per entry:
//!
//! ```text
//! magic "HZA1" | len: u32 LE | key_id: [u8; 16] | nonce: [u8; 12] | ciphertext (len bytes, tag included)
//! ```
//!
//! The ciphertext is AES-256-GCM over `body || mac` with associated data
//! `"HZA1" || key_id || segment (u32 LE)`, so a frame cannot be moved to
//! another segment. `body` is the entry's JSON; `mac` is
//! HMAC-SHA256(`K_mac`, body). The entry's hash, which the next entry names
//! in `prev`, is SHA-256(`body || mac`). Keys come from the data key named
//! by `key_id` through HKDF-SHA256 (salt `hanzo-db/audit/v1`, info
//! `encrypt` / `mac`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use ring::{digest, hmac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::security::format::RingAes;
use crate::security::store::KeySource;

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"HZA1";
/// Bytes before the ciphertext.
pub const FRAME_HEADER_LEN: usize = 4 + 4 + 16 + 12;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// MAC length at the end of the plaintext.
pub const MAC_LEN: usize = 32;
/// Largest frame accepted when reading (an entry is a few hundred bytes).
pub const MAX_FRAME: u32 = 1 << 20;
const SALT: &[u8] = b"hanzo-db/audit/v1";

/// The two keys of one data key: encryption and MAC.
pub struct EntryKeys {
    aead: RingAes,
    mac: RingHmac,
}

impl std::fmt::Debug for EntryKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntryKeys(<redacted>)")
    }
}

impl EntryKeys {
    /// Derives both keys from a 32-byte data key.
    pub fn derive(data_key: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(SALT), data_key);
        let mut enc = Zeroizing::new([0u8; 32]);
        let mut mac = Zeroizing::new([0u8; 32]);
        hk.expand(b"encrypt", enc.as_mut()).expect("32 bytes");
        hk.expand(b"mac", mac.as_mut()).expect("32 bytes");
        Self {
            aead: RingAes::new(&enc),
            mac: RingHmac::new(&mac),
        }
    }

    /// HMAC-SHA256 of `data` under the MAC key.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.mac.0, data);
        tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
    }

    /// Constant-time check of a MAC.
    pub fn mac_ok(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.mac.0, data, tag).is_ok()
    }
}

/// A `ring` HMAC-SHA256 key: the key's inner and outer pad states,
/// computed once (an entry's MAC then costs its own blocks only), in one
/// heap allocation overwritten on drop like [`RingAes`]'s.
struct RingHmac(Box<hmac::Key>);

impl RingHmac {
    fn new(key: &[u8; 32]) -> Self {
        Self(Box::new(hmac::Key::new(hmac::HMAC_SHA256, key)))
    }
}

impl Drop for RingHmac {
    fn drop(&mut self) {
        *self.0 = hmac::Key::new(hmac::HMAC_SHA256, &[0u8; 32]);
        std::hint::black_box(&*self.0);
    }
}

/// Where the audit keys come from: the database's keyring, or (for a
/// database with encryption off) one local key.
#[derive(Debug)]
pub struct AuditKeys {
    ring: Option<Arc<dyn KeySource>>,
    local: Option<Arc<EntryKeys>>,
    cache: RwLock<HashMap<[u8; 16], Arc<EntryKeys>>>,
}

impl AuditKeys {
    /// Keys derived from the database's data keys.
    pub fn from_keyring(ring: Arc<dyn KeySource>) -> Self {
        Self {
            ring: Some(ring),
            local: None,
            cache: RwLock::default(),
        }
    }

    /// One local 32-byte key (key id all zeros).
    pub fn local(key: &[u8; 32]) -> Self {
        Self {
            ring: None,
            local: Some(Arc::new(EntryKeys::derive(key))),
            cache: RwLock::default(),
        }
    }

    /// The key id and keys for new entries.
    pub fn current(&self) -> ([u8; 16], Arc<EntryKeys>) {
        match &self.ring {
            Some(ring) => {
                let (id, _) = ring.current();
                let keys = self.get(&id).expect("the current key is in the keyring");
                (id, keys)
            }
            None => ([0; 16], self.local.clone().expect("local key")),
        }
    }

    /// The keys for `key_id`, if that data key is still in the keyring.
    pub fn get(&self, key_id: &[u8; 16]) -> Option<Arc<EntryKeys>> {
        let Some(ring) = &self.ring else {
            return (*key_id == [0; 16]).then(|| self.local.clone()).flatten();
        };
        if let Some(k) = self.cache.read().expect("lock").get(key_id) {
            return Some(k.clone());
        }
        let dek = ring.get(key_id)?;
        let keys = Arc::new(EntryKeys::derive(dek.expose_secret()));
        self.cache
            .write()
            .expect("lock")
            .insert(*key_id, keys.clone());
        Some(keys)
    }
}

fn aad(key_id: &[u8; 16], segment: u32) -> [u8; 24] {
    let mut a = [0u8; 24];
    a[..4].copy_from_slice(&MAGIC);
    a[4..20].copy_from_slice(key_id);
    a[20..].copy_from_slice(&segment.to_le_bytes());
    a
}

/// SHA-256 of an entry's plaintext (`body || mac`): what the next entry's `prev` names.
pub fn entry_hash(plaintext: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, plaintext);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Seals `body` (the entry's JSON) into a frame of `segment`. Returns the
/// frame and the entry's hash.
pub fn seal(keys: &AuditKeys, segment: u32, body: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let (key_id, k) = keys.current();
    seal_with(&key_id, &k, segment, body)
}

/// [`seal`] with explicit keys.
pub fn seal_with(
    key_id: &[u8; 16],
    k: &EntryKeys,
    segment: u32,
    body: &[u8],
) -> (Vec<u8>, [u8; 32]) {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let mut frame = Vec::new();
    let hash = seal_into(&mut frame, key_id, k, segment, nonce, body);
    (frame, hash)
}

/// Appends the frame of `body` to `out`, sealed under `nonce` (which must
/// be random: see [`Nonces`]); returns the entry's hash. What [`seal_with`]
/// writes, without a buffer of its own.
pub fn seal_into(
    out: &mut Vec<u8>,
    key_id: &[u8; 16],
    k: &EntryKeys,
    segment: u32,
    nonce: [u8; 12],
    body: &[u8],
) -> [u8; 32] {
    let len = body.len() + MAC_LEN + TAG_LEN;
    out.reserve(FRAME_HEADER_LEN + len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(key_id);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(body);
    out.extend_from_slice(&k.mac(body));
    let hash = entry_hash(&out[start..]);
    let tag = k
        .aead
        .seal_detached(nonce, &aad(key_id, segment), &mut out[start..]);
    out.extend_from_slice(&tag);
    hash
}

/// Random nonces for a batch of frames, drawn from the operating system
/// 64 at a time (one `getrandom` call instead of one per entry).
pub struct Nonces {
    pool: [u8; 12 * 64],
    used: usize,
}

impl Default for Nonces {
    fn default() -> Self {
        Self {
            pool: [0; 12 * 64],
            used: 12 * 64,
        }
    }
}

impl Nonces {
    /// The next nonce (never handed out twice).
    pub fn next(&mut self) -> [u8; 12] {
        if self.used == self.pool.len() {
            OsRng.fill_bytes(&mut self.pool);
            self.used = 0;
        }
        let n: [u8; 12] = self.pool[self.used..self.used + 12].try_into().expect("12");
        // Not left in memory once handed out.
        self.pool[self.used..self.used + 12].fill(0);
        self.used += 12;
        n
    }
}

/// Encrypts a frame's plaintext (`body || mac`) as given. [`seal_with`]
/// computes the MAC first; this is the lower layer, public so that the
/// format can be checked independently (and tampering simulated).
pub fn encrypt_frame(
    key_id: &[u8; 16],
    k: &EntryKeys,
    segment: u32,
    mut plain: Vec<u8>,
) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let tag = k
        .aead
        .seal_detached(nonce, &aad(key_id, segment), &mut plain);
    plain.extend_from_slice(&tag);
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + plain.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    frame.extend_from_slice(key_id);
    frame.extend_from_slice(&nonce);
    frame.extend_from_slice(&plain);
    frame
}

/// What reading one frame found.
#[derive(Debug)]
pub enum FrameRead {
    /// A frame that authenticated: its body (JSON), hash, length on disk,
    /// and whether its MAC is right.
    Entry {
        /// The entry's JSON.
        body: Vec<u8>,
        /// SHA-256 of `body || mac`.
        hash: [u8; 32],
        /// Bytes the frame takes.
        len: usize,
        /// The MAC matched.
        mac_ok: bool,
    },
    /// The bytes end inside a frame (an interrupted append, or a truncation).
    Torn,
    /// The frame is damaged: wrong magic, impossible length, failed
    /// authentication or an unknown key.
    Bad(String),
}

/// Reads the frame at the start of `bytes` (of segment `segment`).
pub fn open_frame(keys: &AuditKeys, segment: u32, bytes: &[u8]) -> FrameRead {
    if bytes.len() < FRAME_HEADER_LEN {
        return if MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
            FrameRead::Torn
        } else {
            FrameRead::Bad("not a frame (bad magic)".into())
        };
    }
    if bytes[..4] != MAGIC {
        return FrameRead::Bad("not a frame (bad magic)".into());
    }
    let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4"));
    if len > MAX_FRAME || (len as usize) < TAG_LEN + MAC_LEN + 2 {
        return FrameRead::Bad(format!("impossible frame length {len}"));
    }
    let total = FRAME_HEADER_LEN + len as usize;
    if bytes.len() < total {
        return FrameRead::Torn;
    }
    let key_id: [u8; 16] = bytes[8..24].try_into().expect("16");
    let nonce: [u8; 12] = bytes[24..36].try_into().expect("12");
    let Some(k) = keys.get(&key_id) else {
        return FrameRead::Bad(format!(
            "sealed with data key {} which is not in the keyring",
            hex::encode(key_id)
        ));
    };
    let mut buf = bytes[FRAME_HEADER_LEN..total - TAG_LEN].to_vec();
    let tag = &bytes[total - TAG_LEN..total];
    if !k
        .aead
        .open_detached(nonce, &aad(&key_id, segment), &mut buf, tag)
    {
        return FrameRead::Bad("fails authentication (edited, damaged or moved)".into());
    }
    let hash = entry_hash(&buf);
    let split = buf.len() - MAC_LEN;
    let mac_ok = k.mac_ok(&buf[..split], &buf[split..]);
    buf.truncate(split);
    FrameRead::Entry {
        body: buf,
        hash,
        len: total,
        mac_ok,
    }
}

/// Size of one head slot.
pub const HEAD_SLOT: usize = 128;
const HEAD_MAGIC: [u8; 4] = *b"HZH1";

/// The head record: the last entry known durable, kept in two alternating
/// MAC'd slots of the `head` file so that a torn write loses only the older.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the entry.
    pub seq: u64,
    /// Its segment.
    pub segment: u32,
    /// Its hash.
    pub hash: [u8; 32],
}

impl Head {
    /// Encodes a slot: magic, seq, segment, hash, key id, MAC.
    pub fn encode(&self, keys: &AuditKeys) -> [u8; HEAD_SLOT] {
        let (key_id, k) = keys.current();
        let mut s = [0u8; HEAD_SLOT];
        s[..4].copy_from_slice(&HEAD_MAGIC);
        s[4..12].copy_from_slice(&self.seq.to_le_bytes());
        s[12..16].copy_from_slice(&self.segment.to_le_bytes());
        s[16..48].copy_from_slice(&self.hash);
        s[48..64].copy_from_slice(&key_id);
        let mut msg = b"head".to_vec();
        msg.extend_from_slice(&s[..64]);
        let mac = k.mac(&msg);
        s[64..96].copy_from_slice(&mac);
        s
    }

    /// Decodes a slot; `None` if empty, damaged or forged.
    pub fn decode(keys: &AuditKeys, s: &[u8]) -> Option<Head> {
        if s.len() < 96 || s[..4] != HEAD_MAGIC {
            return None;
        }
        let key_id: [u8; 16] = s[48..64].try_into().ok()?;
        let k = keys.get(&key_id)?;
        let mut msg = b"head".to_vec();
        msg.extend_from_slice(&s[..64]);
        if !k.mac_ok(&msg, &s[64..96]) {
            return None;
        }
        Some(Head {
            seq: u64::from_le_bytes(s[4..12].try_into().ok()?),
            segment: u32::from_le_bytes(s[12..16].try_into().ok()?),
            hash: s[16..48].try_into().ok()?,
        })
    }

    /// The newer of the two slots of a head file's bytes, and whether any
    /// slot held data that did not authenticate.
    pub fn read(keys: &AuditKeys, bytes: &[u8]) -> (Option<Head>, bool) {
        let mut best: Option<Head> = None;
        let mut damaged = false;
        for slot in 0..2 {
            let s = bytes.get(slot * HEAD_SLOT..(slot + 1) * HEAD_SLOT);
            match s {
                Some(s) if s.iter().any(|b| *b != 0) => match Head::decode(keys, s) {
                    Some(h) => {
                        if best.is_none_or(|b| h.seq > b.seq) {
                            best = Some(h);
                        }
                    }
                    None => damaged = true,
                },
                _ => {}
            }
        }
        (best, damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry `open_frame` reads: body, hash, length, MAC verified.
    fn entry(keys: &AuditKeys, segment: u32, frame: &[u8]) -> (Vec<u8>, [u8; 32], usize, bool) {
        match open_frame(keys, segment, frame) {
            FrameRead::Entry {
                body,
                hash,
                len,
                mac_ok,
            } => (body, hash, len, mac_ok),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let keys = AuditKeys::local(&[7u8; 32]);
        let (frame, hash) = seal(&keys, 3, br#"{"seq":1}"#);
        let (body, h, len, mac_ok) = entry(&keys, 3, &frame);
        assert_eq!(body, br#"{"seq":1}"#);
        assert_eq!(h, hash);
        assert_eq!(len, frame.len());
        assert!(mac_ok);
        // Another segment: the associated data differs.
        assert!(matches!(open_frame(&keys, 4, &frame), FrameRead::Bad(_)));
        assert!(matches!(
            open_frame(&keys, 3, &frame[..frame.len() - 1]),
            FrameRead::Torn
        ));
        let other = AuditKeys::local(&[8u8; 32]);
        assert!(matches!(open_frame(&other, 3, &frame), FrameRead::Bad(_)));
        let head = Head {
            seq: 9,
            segment: 2,
            hash,
        };
        let slot = head.encode(&keys);
        assert_eq!(Head::decode(&keys, &slot), Some(head));
        assert_eq!(Head::decode(&other, &slot), None);
    }

    /// The MAC and hash are computed with `ring`; logs written when they
    /// were computed with the `hmac` and `sha2` crates must still verify.
    #[test]
    fn mac_and_hash_match_the_rustcrypto_ones_the_format_was_written_with() {
        use ::hmac::{Hmac, Mac};
        use sha2::Digest;
        let k = EntryKeys::derive(&[7u8; 32]);
        let hk = Hkdf::<Sha256>::new(Some(SALT), &[7u8; 32]);
        let mut mac_key = [0u8; 32];
        hk.expand(b"mac", &mut mac_key).unwrap();
        for len in [0, 1, 55, 56, 64, 300, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key).unwrap();
            m.update(&data);
            let want: [u8; 32] = m.finalize().into_bytes().into();
            assert_eq!(k.mac(&data), want);
            assert!(k.mac_ok(&data, &want));
            assert!(!k.mac_ok(&data, &[0; 32]));
            let hash: [u8; 32] = Sha256::digest(&data).into();
            assert_eq!(entry_hash(&data), hash);
        }
    }

    #[test]
    fn seal_into_writes_what_seal_with_does() {
        let keys = AuditKeys::local(&[7u8; 32]);
        let (id, k) = keys.current();
        let mut nonces = Nonces::default();
        let mut out = b"before".to_vec();
        let hash = seal_into(&mut out, &id, &k, 2, nonces.next(), br#"{"seq":1}"#);
        let (_, want) = seal_with(&id, &k, 2, br#"{"seq":1}"#);
        assert_eq!(hash, want);
        let (body, h, len, mac_ok) = entry(&keys, 2, &out[6..]);
        assert_eq!(
            (body.as_slice(), h, len, mac_ok),
            (&br#"{"seq":1}"#[..], hash, out.len() - 6, true)
        );
        let all: Vec<[u8; 12]> = (0..200).map(|_| nonces.next()).collect();
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }
}
