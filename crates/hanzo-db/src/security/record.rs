//! Sealing small records one at a time, each under a caller-chosen nonce:
//! the write-buffer log's frames and the hot index's vector slots.
//!
//! The key is derived per file (`HKDF-SHA256(ikm = data key, salt, info)`),
//! so each file's nonces only need to be unique within it. An unencrypted
//! database gets a checksum instead of a tag: `SHA-256(label || aad ||
//! body)[..16]`, which detects damage but is not a secret.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::format::{Algorithm, RingAes};

/// Tag (or checksum) length.
pub const TAG_LEN: usize = 16;
/// Nonce length.
pub const NONCE_LEN: usize = 12;

enum Aead {
    Plain(&'static [u8]),
    Aes(RingAes),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// One file's record sealer (see the module docs).
pub(crate) struct RecordAead(Aead);

impl std::fmt::Debug for RecordAead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Aead::Plain(_) => "RecordAead(plain)",
            Aead::Aes(_) => "RecordAead(AES-256-GCM)",
            Aead::ChaCha(_) => "RecordAead(ChaCha20-Poly1305)",
        })
    }
}

impl RecordAead {
    /// No encryption: records carry a checksum under this domain label.
    pub fn plain(label: &'static [u8]) -> Self {
        Self(Aead::Plain(label))
    }

    /// The AEAD `alg` (an [`Algorithm`] id; anything but AES-256-GCM is
    /// ChaCha20-Poly1305) under the key derived from `key`, `salt` and `info`.
    pub fn derive(alg: u8, key: &[u8; 32], salt: &[u8], info: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(salt), key);
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(info, okm.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(if alg == Algorithm::Aes256Gcm.id() {
            Aead::Aes(RingAes::new(&okm))
        } else {
            Aead::ChaCha(Box::new(ChaCha20Poly1305::new(GenericArray::from_slice(
                okm.as_ref(),
            ))))
        })
    }

    /// True when records are only checksummed.
    pub fn is_plain(&self) -> bool {
        matches!(self.0, Aead::Plain(_))
    }

    /// Encrypts `body` in place; returns its tag.
    pub fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], body: &mut [u8]) -> [u8; TAG_LEN] {
        match &self.0 {
            Aead::Plain(label) => checksum(label, aad, body),
            Aead::Aes(c) => c.seal_detached(nonce, aad, body),
            Aead::ChaCha(c) => c
                .encrypt_in_place_detached(GenericArray::from_slice(&nonce), aad, body)
                .expect("a record is far below the AEAD limit")
                .into(),
        }
    }

    /// Decrypts `body` in place if `tag` authenticates it (on failure `body`
    /// holds garbage and false is returned).
    pub fn open(&self, nonce: [u8; NONCE_LEN], aad: &[u8], body: &mut [u8], tag: &[u8]) -> bool {
        match &self.0 {
            Aead::Plain(label) => checksum(label, aad, body)[..] == *tag,
            Aead::Aes(c) => c.open_detached(nonce, aad, body, tag),
            Aead::ChaCha(c) => {
                tag.len() == TAG_LEN
                    && c.decrypt_in_place_detached(
                        GenericArray::from_slice(&nonce),
                        aad,
                        body,
                        GenericArray::from_slice(tag),
                    )
                    .is_ok()
            }
        }
    }
}

fn checksum(label: &[u8], aad: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
    let mut d = Sha256::new();
    d.update(label);
    d.update(aad);
    d.update(body);
    d.finalize()[..TAG_LEN].try_into().expect("16 bytes")
}
