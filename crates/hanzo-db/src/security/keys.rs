//! Envelope encryption: data keys, key providers and the on-disk keyring.
//!
//! # Key hierarchy
//!
//! ```text
//! KEK (key-encryption key)       held by a KeyProvider: Argon2id(passphrase), a raw key
//!   |                            from an environment variable or a 0600 key file, or
//!   | AES-256-GCM wrap           (later) an external KMS / TEE-bound key release
//!   v
//! DEK (data key, 32 bytes)       random, one active + any number of retired-but-readable,
//!   |                            stored only wrapped, in `keyring.json`
//!   | HKDF-SHA256 (DataKey::derive)
//!   v
//! per-file keys                  derived by the file-encryption layer
//! ```
//!
//! * [`DataKey`] – 32 secret bytes in their own page-aligned heap page, locked in memory
//!   (`mlock` through the safe `region` crate) where the OS allows, zeroized on drop, with
//!   a redacted `Debug`.
//! * [`KeyProvider`] – the seam for wrapping DEKs under a KEK. Built in:
//!   [`PassphraseProvider`], [`EnvKeyProvider`], [`KeyFileProvider`].
//! * [`Keyring`] – the small JSON file (format in the crate `NOTES.md`): a wrong passphrase
//!   or key is detected in [`Keyring::open`] as [`KeyError::WrongKey`], before any data is
//!   touched; DEK and KEK rotation; atomic rewrites (temp file + fsync + rename + dir fsync).
//!
//! # Wrapped-key format of the built-in providers (69 bytes)
//!
//! ```text
//! [0x01 version][8-byte KEK check][12-byte random nonce][32-byte ciphertext][16-byte GCM tag]
//! wrap_key  = HKDF-SHA256(ikm = KEK, info = "hanzo-keys/v1/wrap")
//! KEK check = HKDF-SHA256(ikm = KEK, info = "hanzo-keys/v1/kek-check")[..8]
//! AAD       = "hanzo-keys/v1/dek" || keyring_id(16) || key_id(16)
//! ```
//!
//! The KEK check lets `open` tell a wrong key ([`KeyError::WrongKey`]) from a damaged or
//! edited entry ([`KeyError::Corrupt`]). It is a PRF output of a 256-bit key; for a
//! passphrase KEK it is no better an oracle than the GCM tag itself (Argon2 is the cost).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length in bytes of every data key and key-encryption key.
pub const KEY_LEN: usize = 32;

/// Value of the `format` field of a keyring file.
pub const KEYRING_FORMAT: &str = "hanzo-keyring";

/// The keyring file format version this code reads and writes.
pub const KEYRING_VERSION: u32 = 1;

/// Conventional file name for a keyring stored beside the data.
pub const DEFAULT_KEYRING_FILE: &str = "keyring.json";

const WRAP_VERSION: u8 = 1;
const CHECK_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAPPED_LEN: usize = 1 + CHECK_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;
const INFO_WRAP: &[u8] = b"hanzo-keys/v1/wrap";
const INFO_CHECK: &[u8] = b"hanzo-keys/v1/kek-check";
const INFO_MAC: &[u8] = b"hanzo-keys/v1/keyring-mac";
const AAD_PREFIX: &[u8] = b"hanzo-keys/v1/dek";
const SECRET_PAGE: usize = 4096;

/// Result alias for this module.
pub type Result<T, E = KeyError> = std::result::Result<T, E>;

/// Every error of key management. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The keyring file does not exist.
    #[error("keyring not found at {path}")]
    NotFound {
        /// Keyring path.
        path: PathBuf,
    },
    /// `create` refused to overwrite an existing file.
    #[error("refusing to overwrite existing file {path}")]
    AlreadyExists {
        /// Existing path.
        path: PathBuf,
    },
    /// The keyring file is empty or ends in the middle of the JSON document.
    #[error("keyring {path} is truncated or empty: {detail}")]
    Truncated {
        /// Keyring path.
        path: PathBuf,
        /// Parser detail (line/column).
        detail: String,
    },
    /// The keyring file is not a valid keyring (bad JSON, wrong types, bad ids, ...).
    #[error("keyring {path} is malformed: {detail}")]
    Malformed {
        /// Keyring path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The keyring was written by a format version this code does not know.
    #[error(
        "keyring {path} has format version {found}, this build supports version {supported} only"
    )]
    UnsupportedVersion {
        /// Keyring path.
        path: PathBuf,
        /// Version found in the file.
        found: u64,
        /// Version this code supports.
        supported: u32,
    },
    /// The keyring was sealed by a different kind of provider than the one supplied.
    #[error(
        "keyring is protected by a '{stored}' key provider, but a '{given}' provider was supplied"
    )]
    ProviderMismatch {
        /// Provider kind recorded in the keyring.
        stored: String,
        /// Kind of the provider supplied by the caller.
        given: String,
    },
    /// The supplied passphrase / key cannot unwrap the keyring's data keys.
    #[error("wrong key: the {provider} key provider cannot unwrap this keyring ({detail})")]
    WrongKey {
        /// Provider kind.
        provider: String,
        /// Hint, e.g. "wrong passphrase?".
        detail: String,
    },
    /// A wrapped key fails authentication although the KEK is right, or the keyring's
    /// structure is inconsistent: the file was damaged or edited.
    #[error("keyring is corrupt: {detail}")]
    Corrupt {
        /// What is wrong.
        detail: String,
    },
    /// The keyring's integrity MAC does not match: a field outside the wrapped keys
    /// (entry state, ids, provider parameters, ...) was edited.
    #[error("keyring {path} failed its integrity check: it was modified outside hanzo-keys")]
    Tampered {
        /// Keyring path.
        path: PathBuf,
    },
    /// A key file is readable or writable by group/others.
    #[error(
        "key file {path} has permissions {mode:04o}; it must not be accessible by group or others (run: chmod 600 {path})"
    )]
    InsecureKeyFile {
        /// Key file path.
        path: PathBuf,
        /// Permission bits found.
        mode: u32,
    },
    /// The environment variable holding the key is not set (or not valid UTF-8).
    #[error("environment variable {var} is not set or not valid UTF-8")]
    MissingEnv {
        /// Variable name.
        var: String,
    },
    /// Key material has the wrong length or encoding.
    #[error("invalid key material from {source_name}: {detail}")]
    InvalidKeyMaterial {
        /// Where the material came from (variable name or path).
        source_name: String,
        /// What is wrong (never the material itself).
        detail: String,
    },
    /// Provider parameters (stored or supplied) are invalid.
    #[error("invalid key provider parameters: {detail}")]
    InvalidParams {
        /// What is wrong.
        detail: String,
    },
    /// No key with this id in the keyring.
    #[error("no key {key_id} in the keyring")]
    KeyNotFound {
        /// Requested key id.
        key_id: KeyId,
    },
    /// The active key cannot be removed; rotate first.
    #[error("key {key_id} is the active data key; rotate_dek() before removing it")]
    ActiveKey {
        /// The active key id.
        key_id: KeyId,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A cryptographic primitive failed unexpectedly.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> KeyError {
    let context = context.into();
    move |source| KeyError::Io { context, source }
}

// ---------------------------------------------------------------------------------------
// Locked secret storage
// ---------------------------------------------------------------------------------------

/// One page per secret: the key sits alone in a page-aligned allocation, so `mlock` and
/// `munlock` of one key never affect another (on 4 KiB-page systems).
#[repr(C, align(4096))]
struct SecretPage {
    key: [u8; KEY_LEN],
    _pad: [u8; SECRET_PAGE - KEY_LEN],
}

/// 32 secret bytes on the heap, locked in RAM when possible, zeroized on drop.
struct LockedBytes {
    page: Box<SecretPage>,
    lock: Option<region::LockGuard>,
    lock_error: Option<String>,
}

impl LockedBytes {
    fn zeroed() -> Self {
        let page = Box::new(SecretPage {
            key: [0; KEY_LEN],
            _pad: [0; SECRET_PAGE - KEY_LEN],
        });
        let (lock, lock_error) = match region::lock(page.key.as_ptr(), KEY_LEN) {
            Ok(guard) => (Some(guard), None),
            Err(e) => (None, Some(format!("mlock failed: {e}"))),
        };
        LockedBytes {
            page,
            lock,
            lock_error,
        }
    }

    fn random() -> Self {
        let mut s = Self::zeroed();
        OsRng.fill_bytes(&mut s.page.key);
        s
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        self.page.key.zeroize();
        // Unlock before the allocation is freed.
        drop(self.lock.take());
    }
}

// ---------------------------------------------------------------------------------------
// DataKey
// ---------------------------------------------------------------------------------------

/// A 32-byte data-encryption key (DEK).
///
/// The bytes live in their own page-aligned heap page that is locked in RAM (`mlock`) when
/// the OS allows it (see [`DataKey::is_memory_locked`]), and are zeroized on drop. `Debug`
/// prints no key material. The type is deliberately neither `Clone` nor `PartialEq`:
/// share it through `Arc<DataKey>`.
pub struct DataKey {
    inner: LockedBytes,
}

impl DataKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        DataKey {
            inner: LockedBytes::random(),
        }
    }

    /// Builds a key from caller-supplied bytes and zeroizes the source array.
    pub fn from_bytes(bytes: &mut [u8; KEY_LEN]) -> Self {
        let mut inner = LockedBytes::zeroed();
        inner.page.key.copy_from_slice(bytes);
        bytes.zeroize();
        DataKey { inner }
    }

    /// The raw key bytes, e.g. as HKDF input for per-file keys. Do not copy them into
    /// unmanaged memory.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.inner.page.key
    }

    /// Whether the page holding the key is locked in RAM (will not be swapped).
    pub fn is_memory_locked(&self) -> bool {
        self.inner.lock.is_some()
    }

    /// Why locking failed (typically `RLIMIT_MEMLOCK`), if it did.
    pub fn memory_lock_error(&self) -> Option<&str> {
        self.inner.lock_error.as_deref()
    }

    /// Derives a subkey with HKDF-SHA256 (`salt`, `info`) into a new locked key, e.g. the
    /// per-file key `HKDF(DEK, salt = file salt, info = "…" || file_id)`.
    pub fn derive(&self, salt: &[u8], info: &[u8]) -> DataKey {
        let mut out = LockedBytes::zeroed();
        let hk = Hkdf::<Sha256>::new(Some(salt), self.as_bytes());
        hk.expand(info, &mut out.page.key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        DataKey { inner: out }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("material", &"<redacted>")
            .field("memory_locked", &self.is_memory_locked())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Key ids
// ---------------------------------------------------------------------------------------

/// Identifier of a data key in a keyring: 16 random bytes, shown and stored as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        OsRng.fill_bytes(&mut b);
        KeyId(b)
    }

    /// Lower-case hex (32 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(KeyId(v.try_into().ok()?))
    }

    /// The raw 16 bytes (written into file headers by the file layer).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyId::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("key id must be 32 hex characters"))
    }
}

// ---------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------

/// Non-secret description of a key provider, for status APIs and logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Provider kind, e.g. `passphrase`, `env`, `key-file`.
    pub kind: String,
    /// Where the KEK comes from: a key-file path, `env:VAR`, … — never key material.
    pub location: Option<String>,
    /// Whether the KEK is bound to a TEE (released only to an attested guest or sealed
    /// to its measurement). `false` for every built-in provider.
    pub tee_sealed: bool,
}

/// Source of the key-encryption key (KEK) that wraps data keys: the seam for external KMS
/// and TEE-bound key release.
///
/// Contract:
/// * `wrap`/`unwrap` must authenticate `aad` (the keyring binds keyring id + key id).
/// * `unwrap` must return [`KeyError::WrongKey`] when the KEK is not the one that wrapped
///   the blob, and [`KeyError::Corrupt`] when the KEK is right but the blob is damaged
///   (or `WrongKey` where the backend cannot tell the difference).
/// * `params` returns what must be stored in the keyring to recreate the KEK (salts, cost
///   parameters, a KMS key ARN, …) — never secrets; `load_params` receives it back on open.
/// * `Debug` and [`KeyProvider::describe`] must not reveal key material.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// Stable kind name stored in the keyring (e.g. `passphrase`).
    fn kind(&self) -> &'static str;

    /// Non-secret description for status output.
    fn describe(&self) -> ProviderInfo;

    /// Non-secret parameters to store in the keyring.
    fn params(&self) -> serde_json::Value;

    /// Adopts parameters previously returned by [`KeyProvider::params`] (called by
    /// [`Keyring::open`] before any unwrap).
    fn load_params(&mut self, stored: &serde_json::Value) -> Result<()>;

    /// Encrypts (wraps) a data key under the KEK, authenticating `aad`.
    fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>>;

    /// Decrypts (unwraps) a blob produced by [`KeyProvider::wrap`] with the same `aad`.
    fn unwrap(&self, blob: &[u8], aad: &[u8]) -> Result<DataKey>;
}

/// A KEK held locally, with the derived wrapping key and check value.
struct LocalKek {
    wrap_key: LockedBytes,
    check: [u8; CHECK_LEN],
}

impl LocalKek {
    fn from_kek(kek: &LockedBytes) -> Self {
        let hk = Hkdf::<Sha256>::new(None, &kek.page.key);
        let mut wrap_key = LockedBytes::zeroed();
        hk.expand(INFO_WRAP, &mut wrap_key.page.key)
            .expect("valid HKDF length");
        let mut check = [0u8; CHECK_LEN];
        hk.expand(INFO_CHECK, &mut check)
            .expect("valid HKDF length");
        LocalKek { wrap_key, check }
    }

    fn memory_locked(&self) -> bool {
        self.wrap_key.lock.is_some()
    }

    fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(&self.wrap_key.page.key)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&self.check);
        out.extend_from_slice(&nonce);
        let ct_start = out.len();
        out.extend_from_slice(dek.as_bytes());
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[ct_start..])
            .map_err(|_| KeyError::Crypto("AES-GCM encryption failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn unwrap(&self, kind: &str, blob: &[u8], aad: &[u8]) -> Result<DataKey> {
        if blob.len() != WRAPPED_LEN {
            return Err(KeyError::Corrupt {
                detail: format!(
                    "wrapped key is {} bytes, expected {WRAPPED_LEN}",
                    blob.len()
                ),
            });
        }
        if blob[0] != WRAP_VERSION {
            return Err(KeyError::Corrupt {
                detail: format!("unknown wrapped-key version {}", blob[0]),
            });
        }
        let check = &blob[1..1 + CHECK_LEN];
        if check != self.check {
            return Err(KeyError::WrongKey {
                provider: kind.to_string(),
                detail: match kind {
                    "passphrase" => "wrong passphrase?".into(),
                    _ => "key does not match the one that sealed the keyring".into(),
                },
            });
        }
        let nonce = &blob[1 + CHECK_LEN..1 + CHECK_LEN + NONCE_LEN];
        let ct = &blob[1 + CHECK_LEN + NONCE_LEN..1 + CHECK_LEN + NONCE_LEN + KEY_LEN];
        let tag = &blob[WRAPPED_LEN - TAG_LEN..];
        let cipher = Aes256Gcm::new_from_slice(&self.wrap_key.page.key)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut out = LockedBytes::zeroed();
        out.page.key.copy_from_slice(ct);
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                aad,
                &mut out.page.key,
                Tag::from_slice(tag),
            )
            .map_err(|_| KeyError::Corrupt {
                detail: "wrapped key fails authentication although the key check matches: \
                         the entry (or its key id / keyring id) was damaged or edited"
                    .into(),
            })?;
        Ok(DataKey { inner: out })
    }
}

/// Decodes a 32-byte key given as 64 hex characters or standard/URL-safe base64 (with or
/// without padding). Surrounding whitespace is ignored.
fn decode_key_text(source_name: &str, text: &str) -> Result<LockedBytes> {
    let t = text.trim();
    let mut decoded: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let is_hex = t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        *decoded = hex::decode(t).map_err(|_| KeyError::InvalidKeyMaterial {
            source_name: source_name.into(),
            detail: "invalid hex".into(),
        })?;
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let found = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(t).ok());
        match found {
            Some(v) => *decoded = v,
            None => {
                return Err(KeyError::InvalidKeyMaterial {
                    source_name: source_name.into(),
                    detail: "expected 64 hex characters or base64 of 32 bytes".into(),
                });
            }
        }
    }
    if decoded.len() != KEY_LEN {
        return Err(KeyError::InvalidKeyMaterial {
            source_name: source_name.into(),
            detail: format!("decodes to {} bytes, expected {KEY_LEN}", decoded.len()),
        });
    }
    let mut out = LockedBytes::zeroed();
    out.page.key.copy_from_slice(&decoded);
    Ok(out)
}

/// Argon2id cost parameters (memory in KiB, iterations, lanes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).
    pub p_cost: u32,
}

impl Argon2Params {
    /// RFC 9106 §4 second recommended option: t=3, p=4, m=64 MiB. The default.
    pub const RFC9106_SECOND: Argon2Params = Argon2Params {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 4,
    };

    /// Very cheap parameters for tests only (1 MiB, one pass, one lane). Never use them
    /// for real data.
    pub const INSECURE_TEST: Argon2Params = Argon2Params {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
    };

    fn to_argon2(self) -> Result<argon2::Params> {
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(KEY_LEN)).map_err(|e| {
            KeyError::InvalidParams {
                detail: format!("argon2 parameters {self:?}: {e}"),
            }
        })
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::RFC9106_SECOND
    }
}

#[derive(Serialize, Deserialize)]
struct PassphraseParams {
    kdf: String,
    version: u32,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// KEK = Argon2id(passphrase, 16-byte random salt) with parameters stored in the keyring.
///
/// The KEK is derived lazily on first use and cached (locked, zeroized on drop).
pub struct PassphraseProvider {
    passphrase: Zeroizing<String>,
    salt: [u8; 16],
    params: Argon2Params,
    kek: OnceLock<std::result::Result<LocalKek, String>>,
}

impl PassphraseProvider {
    /// Kind name stored in keyrings.
    pub const KIND: &'static str = "passphrase";

    /// A provider with RFC 9106 parameters and a fresh random salt (the salt and params
    /// are replaced by the stored ones when opening an existing keyring).
    pub fn new(passphrase: impl Into<String>) -> Result<Self> {
        Self::with_params(passphrase, Argon2Params::default())
    }

    /// A provider with explicit Argon2id parameters (use [`Argon2Params::INSECURE_TEST`]
    /// only in tests).
    pub fn with_params(passphrase: impl Into<String>, params: Argon2Params) -> Result<Self> {
        let passphrase = Zeroizing::new(passphrase.into());
        if passphrase.is_empty() {
            return Err(KeyError::InvalidParams {
                detail: "passphrase must not be empty".into(),
            });
        }
        params.to_argon2()?;
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        Ok(PassphraseProvider {
            passphrase,
            salt,
            params,
            kek: OnceLock::new(),
        })
    }

    /// The Argon2id parameters in use.
    pub fn argon2_params(&self) -> Argon2Params {
        self.params
    }

    fn kek(&self) -> Result<&LocalKek> {
        let r = self.kek.get_or_init(|| {
            let argon = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                self.params.to_argon2().map_err(|e| e.to_string())?,
            );
            let mut kek = LockedBytes::zeroed();
            argon
                .hash_password_into(self.passphrase.as_bytes(), &self.salt, &mut kek.page.key)
                .map_err(|e| format!("argon2id failed: {e}"))?;
            Ok(LocalKek::from_kek(&kek))
        });
        r.as_ref().map_err(|e| KeyError::Crypto(e.clone()))
    }
}

impl fmt::Debug for PassphraseProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseProvider")
            .field("passphrase", &"<redacted>")
            .field("params", &self.params)
            .field("kek_derived", &self.kek.get().is_some())
            .finish()
    }
}

impl KeyProvider for PassphraseProvider {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn describe(&self) -> ProviderInfo {
        ProviderInfo {
            kind: Self::KIND.into(),
            location: Some(format!(
                "argon2id(m={} KiB, t={}, p={})",
                self.params.m_cost_kib, self.params.t_cost, self.params.p_cost
            )),
            tee_sealed: false,
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(PassphraseParams {
            kdf: "argon2id".into(),
            version: 0x13,
            m_cost_kib: self.params.m_cost_kib,
            t_cost: self.params.t_cost,
            p_cost: self.params.p_cost,
            salt: hex::encode(self.salt),
        })
        .expect("serializable")
    }

    fn load_params(&mut self, stored: &serde_json::Value) -> Result<()> {
        let p: PassphraseParams =
            serde_json::from_value(stored.clone()).map_err(|e| KeyError::InvalidParams {
                detail: format!("passphrase provider params: {e}"),
            })?;
        if p.kdf != "argon2id" || p.version != 0x13 {
            return Err(KeyError::InvalidParams {
                detail: format!("unsupported kdf {} version {:#x}", p.kdf, p.version),
            });
        }
        let salt: [u8; 16] = hex::decode(&p.salt)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| KeyError::InvalidParams {
                detail: "salt must be 16 bytes of hex".into(),
            })?;
        let params = Argon2Params {
            m_cost_kib: p.m_cost_kib,
            t_cost: p.t_cost,
            p_cost: p.p_cost,
        };
        params.to_argon2()?;
        self.salt = salt;
        self.params = params;
        self.kek = OnceLock::new();
        Ok(())
    }

    fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>> {
        self.kek()?.wrap(dek, aad)
    }

    fn unwrap(&self, blob: &[u8], aad: &[u8]) -> Result<DataKey> {
        self.kek()?.unwrap(Self::KIND, blob, aad)
    }
}

/// KEK = 32 raw bytes (64 hex characters or base64) read from a named environment
/// variable when the provider is built.
///
/// The process environment itself still holds the value; unset it after start-up if the
/// deployment allows (that needs `unsafe` `std::env::remove_var` in edition 2024, so this
/// crate does not do it).
pub struct EnvKeyProvider {
    var: String,
    kek: LocalKek,
}

impl EnvKeyProvider {
    /// Kind name stored in keyrings.
    pub const KIND: &'static str = "env";

    /// Reads the key from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self> {
        Self::from_env_with(var, |name| std::env::var(name).ok())
    }

    /// Like [`EnvKeyProvider::from_env`] with an injectable lookup (tests, or a caller
    /// that snapshotted the environment).
    pub fn from_env_with(var: &str, lookup: impl FnOnce(&str) -> Option<String>) -> Result<Self> {
        let value = Zeroizing::new(lookup(var).ok_or_else(|| KeyError::MissingEnv {
            var: var.to_string(),
        })?);
        let kek = decode_key_text(&format!("environment variable {var}"), &value)?;
        Ok(EnvKeyProvider {
            var: var.to_string(),
            kek: LocalKek::from_kek(&kek),
        })
    }

    /// The variable name.
    pub fn var(&self) -> &str {
        &self.var
    }
}

impl fmt::Debug for EnvKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvKeyProvider")
            .field("var", &self.var)
            .field("key", &"<redacted>")
            .field("memory_locked", &self.kek.memory_locked())
            .finish()
    }
}

impl KeyProvider for EnvKeyProvider {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn describe(&self) -> ProviderInfo {
        ProviderInfo {
            kind: Self::KIND.into(),
            location: Some(format!("env:{}", self.var)),
            tee_sealed: false,
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "env_var": self.var })
    }

    fn load_params(&mut self, _stored: &serde_json::Value) -> Result<()> {
        // The variable name is recorded for operators only; the key check decides.
        Ok(())
    }

    fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>> {
        self.kek.wrap(dek, aad)
    }

    fn unwrap(&self, blob: &[u8], aad: &[u8]) -> Result<DataKey> {
        self.kek.unwrap(Self::KIND, blob, aad)
    }
}

/// KEK = 32 bytes from a key file that only its owner can access (mode 0600 or
/// stricter). The file holds the raw 32 bytes, or 64 hex characters / base64 text.
pub struct KeyFileProvider {
    path: PathBuf,
    kek: LocalKek,
}

impl KeyFileProvider {
    /// Kind name stored in keyrings.
    pub const KIND: &'static str = "key-file";

    /// Opens an existing key file. Refuses ([`KeyError::InsecureKeyFile`]) a file whose
    /// permissions give group or others any access, and anything that is not a regular
    /// file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let meta = fs::metadata(&path)
            .map_err(io_err(format!("cannot read key file {}", path.display())))?;
        if !meta.is_file() {
            return Err(KeyError::InvalidKeyMaterial {
                source_name: path.display().to_string(),
                detail: "not a regular file".into(),
            });
        }
        check_owner_only(&path, &meta)?;
        let bytes = Zeroizing::new(
            fs::read(&path).map_err(io_err(format!("cannot read key file {}", path.display())))?,
        );
        let kek = if bytes.len() == KEY_LEN {
            let mut k = LockedBytes::zeroed();
            k.page.key.copy_from_slice(&bytes);
            k
        } else {
            let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::InvalidKeyMaterial {
                source_name: path.display().to_string(),
                detail: format!(
                    "{} bytes: expected 32 raw bytes, 64 hex characters or base64",
                    bytes.len()
                ),
            })?;
            decode_key_text(&path.display().to_string(), text)?
        };
        Ok(KeyFileProvider {
            kek: LocalKek::from_kek(&kek),
            path,
        })
    }

    /// Generates a new random 32-byte key with the OS CSPRNG and writes it (raw bytes)
    /// atomically with mode 0600: temp file in the same directory, fsync, then a no-clobber
    /// link into place and a directory fsync. Refuses to overwrite an existing file.
    pub fn create_default(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let key = LockedBytes::random();
        write_atomic(&path, &key.page.key, false)?;
        Self::open(&path)
    }

    /// The key file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    // No POSIX permission bits: rely on the platform's ACLs.
    Ok(())
}

impl fmt::Debug for KeyFileProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileProvider")
            .field("path", &self.path)
            .field("key", &"<redacted>")
            .field("memory_locked", &self.kek.memory_locked())
            .finish()
    }
}

impl KeyProvider for KeyFileProvider {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn describe(&self) -> ProviderInfo {
        ProviderInfo {
            kind: Self::KIND.into(),
            location: Some(self.path.display().to_string()),
            tee_sealed: false,
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "key_file": self.path.display().to_string() })
    }

    fn load_params(&mut self, _stored: &serde_json::Value) -> Result<()> {
        // The path is recorded for operators only (the file may move); the key check decides.
        Ok(())
    }

    fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>> {
        self.kek.wrap(dek, aad)
    }

    fn unwrap(&self, blob: &[u8], aad: &[u8]) -> Result<DataKey> {
        self.kek.unwrap(Self::KIND, blob, aad)
    }
}

// ---------------------------------------------------------------------------------------
// Atomic file writes
// ---------------------------------------------------------------------------------------

/// Writes `bytes` to `path` atomically with mode 0600: a temp file in the same directory,
/// fsync, then rename (`clobber`) or hard-link no-clobber (`!clobber`), then fsync of the
/// directory.
fn write_atomic(path: &Path, bytes: &[u8], clobber: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| KeyError::Io {
            context: format!("{} has no file name", path.display()),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?
        .to_string_lossy()
        .into_owned();
    if !clobber && path.exists() {
        return Err(KeyError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));
    let result = (|| -> Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .map_err(io_err(format!("cannot create {}", tmp.display())))?;
        f.write_all(bytes)
            .map_err(io_err(format!("cannot write {}", tmp.display())))?;
        f.sync_all()
            .map_err(io_err(format!("cannot fsync {}", tmp.display())))?;
        drop(f);
        if clobber {
            fs::rename(&tmp, path).map_err(io_err(format!(
                "cannot rename {} to {}",
                tmp.display(),
                path.display()
            )))?;
        } else {
            match fs::hard_link(&tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(KeyError::AlreadyExists {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) => {
                    return Err(KeyError::Io {
                        context: format!("cannot create {}", path.display()),
                        source: e,
                    });
                }
            }
            let _ = fs::remove_file(&tmp);
        }
        // Make the rename/link durable. Directories cannot be opened on every platform.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------
// Keyring
// ---------------------------------------------------------------------------------------

/// Lifecycle state of a data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// The key new data is written with. Exactly one per keyring.
    Active,
    /// An older key, kept so existing data stays readable.
    Retired,
}

/// Non-secret metadata of one keyring entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyEntryInfo {
    /// Key id.
    pub key_id: KeyId,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Active or retired.
    pub state: KeyState,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredProvider {
    kind: String,
    params: serde_json::Value,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredEntry {
    key_id: String,
    wrapped_dek: String,
    created_at: u64,
    state: KeyState,
}

#[derive(Clone, Serialize, Deserialize)]
struct KeyringFile {
    format: String,
    version: u32,
    keyring_id: String,
    created_at: u64,
    provider: StoredProvider,
    entries: Vec<StoredEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// Explicit confirmation for [`Keyring::retire`]: the caller asserts that no live data
/// (no file of any retained dataset version, backup or snapshot it cares about) still
/// references the key. Removing a referenced key makes that data unreadable forever
/// (crypto-shredding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetireConfirmation {
    /// Nothing references the key any more.
    NothingReferencesThisKey,
}

struct LoadedKey {
    info: KeyEntryInfo,
    key: Arc<DataKey>,
}

/// The keyring: wrapped data keys in a small JSON file, plus the unwrapped keys in memory.
///
/// Not internally synchronized: wrap it in a `RwLock` to share it between writers.
pub struct Keyring {
    path: PathBuf,
    keyring_id: [u8; 16],
    created_at: u64,
    provider: Box<dyn KeyProvider>,
    keys: Vec<LoadedKey>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn wrap_aad(keyring_id: &[u8; 16], key_id: &KeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 32);
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(keyring_id);
    aad.extend_from_slice(&key_id.0);
    aad
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Keyring {
    /// Creates a new keyring file at `path` with one random active data key, sealed by
    /// `provider`. Fails with [`KeyError::AlreadyExists`] if the file exists.
    ///
    /// Returns the keyring and the new (active) data key.
    pub fn create(
        path: impl AsRef<Path>,
        provider: Box<dyn KeyProvider>,
    ) -> Result<(Keyring, Arc<DataKey>)> {
        let path = path.as_ref().to_path_buf();
        if path.exists() {
            return Err(KeyError::AlreadyExists { path });
        }
        let mut keyring_id = [0u8; 16];
        OsRng.fill_bytes(&mut keyring_id);
        let key = Arc::new(DataKey::generate());
        let ring = Keyring {
            path,
            keyring_id,
            created_at: now_secs(),
            provider,
            keys: vec![LoadedKey {
                info: KeyEntryInfo {
                    key_id: KeyId::random(),
                    created_at: now_secs(),
                    state: KeyState::Active,
                },
                key: key.clone(),
            }],
        };
        let file = ring.build_file(ring.provider.as_ref(), &ring.keys)?;
        write_atomic(&ring.path, &file, false)?;
        Ok((ring, key))
    }

    /// Opens an existing keyring and unwraps all its data keys with `provider`.
    ///
    /// Errors, each distinct: [`KeyError::NotFound`], [`KeyError::Truncated`],
    /// [`KeyError::Malformed`], [`KeyError::UnsupportedVersion`],
    /// [`KeyError::ProviderMismatch`], [`KeyError::WrongKey`] (wrong passphrase / key —
    /// detected here, before any data is read or written), [`KeyError::Corrupt`] (a
    /// wrapped key was damaged) and [`KeyError::Tampered`] (other fields edited).
    pub fn open(path: impl AsRef<Path>, mut provider: Box<dyn KeyProvider>) -> Result<Keyring> {
        let path = path.as_ref().to_path_buf();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyError::NotFound { path });
            }
            Err(e) => {
                return Err(KeyError::Io {
                    context: format!("cannot read keyring {}", path.display()),
                    source: e,
                });
            }
        };
        let malformed = |detail: String| KeyError::Malformed {
            path: path.clone(),
            detail,
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            if e.is_eof() {
                KeyError::Truncated {
                    path: path.clone(),
                    detail: e.to_string(),
                }
            } else {
                malformed(format!("invalid JSON: {e}"))
            }
        })?;
        let obj = value
            .as_object()
            .ok_or_else(|| malformed("top level is not a JSON object".into()))?;
        match obj.get("format").and_then(|v| v.as_str()) {
            Some(KEYRING_FORMAT) => {}
            other => {
                return Err(malformed(format!(
                    "format is {other:?}, expected \"{KEYRING_FORMAT}\""
                )));
            }
        }
        let version = obj
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| malformed("missing or non-integer \"version\"".into()))?;
        if version != u64::from(KEYRING_VERSION) {
            return Err(KeyError::UnsupportedVersion {
                path: path.clone(),
                found: version,
                supported: KEYRING_VERSION,
            });
        }
        let file: KeyringFile =
            serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
        let keyring_id: [u8; 16] = hex::decode(&file.keyring_id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| malformed("keyring_id must be 32 hex characters".into()))?;
        if file.provider.kind != provider.kind() {
            return Err(KeyError::ProviderMismatch {
                stored: file.provider.kind.clone(),
                given: provider.kind().to_string(),
            });
        }
        provider.load_params(&file.provider.params)?;

        if file.entries.is_empty() {
            return Err(malformed("no key entries".into()));
        }
        let active = file
            .entries
            .iter()
            .filter(|e| e.state == KeyState::Active)
            .count();
        if active != 1 {
            return Err(KeyError::Corrupt {
                detail: format!("{active} active keys, expected exactly 1"),
            });
        }
        let mut decoded = Vec::with_capacity(file.entries.len());
        for (i, e) in file.entries.iter().enumerate() {
            let id = KeyId::from_hex(&e.key_id)
                .ok_or_else(|| malformed(format!("entry {i}: key_id must be 32 hex characters")))?;
            if decoded.iter().any(|(d, _, _)| *d == id) {
                return Err(KeyError::Corrupt {
                    detail: format!("duplicate key id {id}"),
                });
            }
            let blob = b64()
                .decode(&e.wrapped_dek)
                .map_err(|err| KeyError::Corrupt {
                    detail: format!("entry {id}: wrapped_dek is not base64 ({err})"),
                })?;
            decoded.push((id, blob, e));
        }

        // Unwrap everything first, then classify: a key check that fails on every entry
        // means a wrong KEK; on only some entries it means damage.
        let mut keys = Vec::with_capacity(decoded.len());
        let mut wrong = Vec::new();
        let mut first_other: Option<KeyError> = None;
        for (id, blob, e) in &decoded {
            match provider.unwrap(blob, &wrap_aad(&keyring_id, id)) {
                Ok(k) => keys.push(LoadedKey {
                    info: KeyEntryInfo {
                        key_id: *id,
                        created_at: e.created_at,
                        state: e.state,
                    },
                    key: Arc::new(k),
                }),
                Err(err @ KeyError::WrongKey { .. }) => wrong.push((*id, err)),
                Err(KeyError::Corrupt { detail }) => {
                    first_other.get_or_insert(KeyError::Corrupt {
                        detail: format!("entry {id}: {detail}"),
                    });
                }
                Err(other) => {
                    first_other.get_or_insert(other);
                }
            }
        }
        if !wrong.is_empty() && keys.is_empty() && first_other.is_none() {
            return Err(wrong.remove(0).1);
        }
        if let Some(err) = first_other {
            return Err(err);
        }
        if let Some((id, _)) = wrong.first() {
            return Err(KeyError::Corrupt {
                detail: format!(
                    "entry {id}: key check does not match although other entries unwrap: \
                     the entry was damaged or edited"
                ),
            });
        }

        let ring = Keyring {
            path,
            keyring_id,
            created_at: file.created_at,
            provider,
            keys,
        };
        let stored_mac = file
            .mac
            .as_deref()
            .and_then(|m| hex::decode(m).ok())
            .ok_or_else(|| KeyError::Tampered {
                path: ring.path.clone(),
            })?;
        let mut unsigned = file.clone();
        unsigned.mac = None;
        let body = serde_json::to_vec(&unsigned).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut mac = ring.mac_for(&ring.keys)?;
        mac.update(&body);
        mac.verify_slice(&stored_mac)
            .map_err(|_| KeyError::Tampered {
                path: ring.path.clone(),
            })?;
        Ok(ring)
    }

    /// HMAC-SHA256 keyed by HKDF(all DEKs in entry order, salt = keyring id).
    fn mac_for(&self, keys: &[LoadedKey]) -> Result<Hmac<Sha256>> {
        let mut ikm = Zeroizing::new(Vec::with_capacity(keys.len() * KEY_LEN));
        for k in keys {
            ikm.extend_from_slice(k.key.as_bytes());
        }
        let mut mac_key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(&self.keyring_id), &ikm)
            .expand(INFO_MAC, mac_key.as_mut())
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref())
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Serializes the keyring for `provider` and `keys` (wrapping every key), with MAC.
    fn build_file(&self, provider: &dyn KeyProvider, keys: &[LoadedKey]) -> Result<Vec<u8>> {
        let mut entries = Vec::with_capacity(keys.len());
        for k in keys {
            let blob = provider.wrap(&k.key, &wrap_aad(&self.keyring_id, &k.info.key_id))?;
            entries.push(StoredEntry {
                key_id: k.info.key_id.to_hex(),
                wrapped_dek: b64().encode(blob),
                created_at: k.info.created_at,
                state: k.info.state,
            });
        }
        let mut file = KeyringFile {
            format: KEYRING_FORMAT.into(),
            version: KEYRING_VERSION,
            keyring_id: hex::encode(self.keyring_id),
            created_at: self.created_at,
            provider: StoredProvider {
                kind: provider.kind().into(),
                params: provider.params(),
            },
            entries,
            mac: None,
        };
        let body = serde_json::to_vec(&file).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut mac = self.mac_for(keys)?;
        mac.update(&body);
        file.mac = Some(hex::encode(mac.finalize().into_bytes()));
        let mut out =
            serde_json::to_vec_pretty(&file).map_err(|e| KeyError::Crypto(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    /// The active data key (used for new writes) and its id.
    pub fn current(&self) -> (KeyId, Arc<DataKey>) {
        let k = self
            .keys
            .iter()
            .find(|k| k.info.state == KeyState::Active)
            .expect("a keyring always has exactly one active key");
        (k.info.key_id, k.key.clone())
    }

    /// Any key still in the keyring, active or retired (old data stays readable).
    pub fn get(&self, key_id: &KeyId) -> Option<Arc<DataKey>> {
        self.keys
            .iter()
            .find(|k| k.info.key_id == *key_id)
            .map(|k| k.key.clone())
    }

    /// Metadata of every entry, in file order (oldest first).
    pub fn entries(&self) -> Vec<KeyEntryInfo> {
        self.keys.iter().map(|k| k.info.clone()).collect()
    }

    /// The keyring id (hex), bound into every wrapped key's AAD.
    pub fn keyring_id(&self) -> String {
        hex::encode(self.keyring_id)
    }

    /// The keyring file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Non-secret description of the current key provider.
    pub fn provider_info(&self) -> ProviderInfo {
        self.provider.describe()
    }

    /// Whether every data key in memory is locked in RAM.
    pub fn memory_locked(&self) -> bool {
        self.keys.iter().all(|k| k.key.is_memory_locked())
    }

    /// KEK rotation: re-wraps every data key under `new_provider` and atomically replaces
    /// the keyring file. Data files are not touched. On error the file and this keyring
    /// are unchanged.
    pub fn rotate_kek(&mut self, new_provider: Box<dyn KeyProvider>) -> Result<()> {
        let file = self.build_file(new_provider.as_ref(), &self.keys)?;
        write_atomic(&self.path, &file, true)?;
        self.provider = new_provider;
        Ok(())
    }

    /// DEK rotation: adds a new random active key and marks the previous active key
    /// retired (still readable through [`Keyring::get`]). Returns the new key id.
    pub fn rotate_dek(&mut self) -> Result<KeyId> {
        let new_id = KeyId::random();
        let mut keys: Vec<LoadedKey> = self
            .keys
            .iter()
            .map(|k| LoadedKey {
                info: KeyEntryInfo {
                    state: KeyState::Retired,
                    ..k.info.clone()
                },
                key: k.key.clone(),
            })
            .collect();
        keys.push(LoadedKey {
            info: KeyEntryInfo {
                key_id: new_id,
                created_at: now_secs(),
                state: KeyState::Active,
            },
            key: Arc::new(DataKey::generate()),
        });
        let file = self.build_file(self.provider.as_ref(), &keys)?;
        write_atomic(&self.path, &file, true)?;
        self.keys = keys;
        Ok(new_id)
    }

    /// Removes a retired key for good. The caller must confirm that nothing references
    /// it; the active key is refused ([`KeyError::ActiveKey`]).
    pub fn retire(&mut self, key_id: &KeyId, confirm: RetireConfirmation) -> Result<()> {
        let RetireConfirmation::NothingReferencesThisKey = confirm;
        let pos = self
            .keys
            .iter()
            .position(|k| k.info.key_id == *key_id)
            .ok_or(KeyError::KeyNotFound { key_id: *key_id })?;
        if self.keys[pos].info.state == KeyState::Active {
            return Err(KeyError::ActiveKey { key_id: *key_id });
        }
        let keys: Vec<LoadedKey> = self
            .keys
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != pos)
            .map(|(_, k)| LoadedKey {
                info: k.info.clone(),
                key: k.key.clone(),
            })
            .collect();
        let file = self.build_file(self.provider.as_ref(), &keys)?;
        write_atomic(&self.path, &file, true)?;
        self.keys = keys;
        Ok(())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("keyring_id", &self.keyring_id())
            .field("provider", &self.provider)
            .field("entries", &self.entries())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_key_text_accepts_hex_and_base64() {
        let raw = [7u8; 32];
        let h = hex::encode(raw);
        assert_eq!(decode_key_text("t", &h).unwrap().page.key, raw);
        let b = b64().encode(raw);
        assert_eq!(
            decode_key_text("t", &format!("  {b}\n")).unwrap().page.key,
            raw
        );
        assert!(decode_key_text("t", "abcd").is_err());
        assert!(decode_key_text("t", &hex::encode([1u8; 16])).is_err());
    }

    #[test]
    fn secret_page_is_page_aligned() {
        let k = DataKey::generate();
        assert_eq!(k.as_bytes().as_ptr() as usize % SECRET_PAGE, 0);
        assert_eq!(std::mem::size_of::<SecretPage>(), SECRET_PAGE);
    }

    #[test]
    fn derive_is_deterministic_and_domain_separated() {
        let k = DataKey::generate();
        let a = k.derive(b"salt", b"info-a");
        let a2 = k.derive(b"salt", b"info-a");
        let b = k.derive(b"salt", b"info-b");
        assert_eq!(a.as_bytes(), a2.as_bytes());
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), k.as_bytes());
    }

    #[test]
    fn wrap_unwrap_roundtrip_and_aad_binding() {
        let kek = LocalKek::from_kek(&LockedBytes::random());
        let dek = DataKey::generate();
        let blob = kek.wrap(&dek, b"aad-1").unwrap();
        assert_eq!(blob.len(), WRAPPED_LEN);
        let back = kek.unwrap("t", &blob, b"aad-1").unwrap();
        assert_eq!(back.as_bytes(), dek.as_bytes());
        assert!(matches!(
            kek.unwrap("t", &blob, b"aad-2"),
            Err(KeyError::Corrupt { .. })
        ));
        let other = LocalKek::from_kek(&LockedBytes::random());
        assert!(matches!(
            other.unwrap("t", &blob, b"aad-1"),
            Err(KeyError::WrongKey { .. })
        ));
    }
}
