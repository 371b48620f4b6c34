//! Security: encryption at rest, key management and confidential-computing tiers.
//!
//! Every byte LanceDB writes for a hanzo-db database goes through
//! [`store::EncryptingObjectStore`], an `object_store` wrapper that stores each
//! object in the EVF1 chunked-AEAD format ([`format`], documented in
//! `docs/encryption-format.md`). Local databases are opened through a scheme of
//! ([`lance_store::SCHEME`]) whose provider our Lance session replaces with the encrypting one, because
//! Lance reads and writes plain local paths directly, bypassing any wrapper.
//!
//! Keys are envelope-encrypted ([`keys`]): a random 256-bit data key per
//! database, stored only wrapped by a key-encryption key from a
//! [`keys::KeyProvider`] (passphrase, environment variable, key file, or an
//! external KMS behind the trait) in `.hanzo/keyring.json` beside the data.
//! The default provider is a generated key file kept outside the database
//! directory with owner-only permissions.
//!
//! [`tee`] detects the confidential-computing tier (read-only, never failing)
//! and decides the effective tier; encryption at rest stays on at every tier.

pub mod format;
pub mod keys;
#[cfg(feature = "lancedb")]
pub mod lance_store;
#[cfg(unix)]
pub mod local_files;
mod plain_cache;
pub(crate) mod record;
pub mod store;
pub mod tee;
mod upload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use keys::{KeyFileProvider, KeyId, KeyProvider, Keyring};
pub use tee::{SecurityStatus, SecurityTier};

/// The at-rest cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cipher {
    /// AES-256-GCM (hardware-accelerated where available).
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20Poly1305,
}

impl Cipher {
    fn algorithm(self) -> format::Algorithm {
        match self {
            Cipher::Aes256Gcm => format::Algorithm::Aes256Gcm,
            Cipher::Chacha20Poly1305 => format::Algorithm::ChaCha20Poly1305,
        }
    }
    /// The cipher's name.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "AES-256-GCM",
            Cipher::Chacha20Poly1305 => "ChaCha20-Poly1305",
        }
    }
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum KeyConfig {
    /// A key file generated on first use, outside the database directory
    /// (`key_dir`, else `$HANZO_DB_KEY_DIR`, else `~/.config/hanzo-db/keys`),
    /// owner-only permissions.
    Default {
        /// Directory of generated key files.
        key_dir: Option<PathBuf>,
    },
    /// A passphrase read from this environment variable (Argon2id).
    Passphrase {
        /// The variable's name.
        env: String,
    },
    /// A raw 32-byte key, hex or base64, in this environment variable.
    EnvKey {
        /// The variable's name.
        env: String,
    },
    /// A 32-byte key in this file (owner-only permissions).
    KeyFile {
        /// The file.
        path: PathBuf,
    },
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig::Default { key_dir: None }
    }
}

/// Security settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// Encrypt at rest (on by default; turning it off is an explicit opt-out).
    pub encryption: bool,
    /// Key-encryption key source.
    pub key: KeyConfig,
    /// Cipher for new files.
    pub cipher: Cipher,
    /// Plaintext bytes per encrypted chunk (power of two, 4 KiB–1 MiB).
    /// Small chunks suit Lance's small random reads: each read authenticates
    /// and decrypts every chunk it touches.
    pub chunk_size: u32,
    /// Bytes of decrypted chunks of immutable files kept in memory for reuse
    /// (0 turns the cache off).
    pub read_cache_bytes: u64,
    /// Confidential-computing tier asked for (`None`: whatever is detected).
    pub tee_tier: Option<SecurityTier>,
    /// Fail to open instead of degrading when the tier is not available.
    pub strict_tier: bool,
    /// Disable core dumps for the process on open.
    pub disable_core_dumps: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            encryption: true,
            key: KeyConfig::default(),
            cipher: Cipher::default(),
            chunk_size: 4 * 1024,
            read_cache_bytes: 128 * 1024 * 1024,
            tee_tier: None,
            strict_tier: false,
            disable_core_dumps: false,
        }
    }
}

/// Marker file recording whether a database is encrypted.
const MARKER: &str = ".hanzo/encryption.json";
const KEYRING: &str = ".hanzo/keyring.json";

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    encrypted: bool,
}

/// The keyring's keys as the encrypting store reads them.
#[derive(Debug)]
pub struct KeyringKeys {
    keys: RwLock<(KeyId, HashMap<[u8; 16], Arc<format::DataKey>>)>,
}

impl KeyringKeys {
    fn from_keyring(ring: &Keyring) -> Self {
        let me = Self {
            keys: RwLock::new((ring.current().0, HashMap::new())),
        };
        me.refresh(ring);
        me
    }
    /// Re-reads the keyring (after a rotation).
    fn refresh(&self, ring: &Keyring) {
        let mut map = HashMap::new();
        for entry in ring.entries() {
            if let Some(k) = ring.get(&entry.key_id) {
                map.insert(
                    entry.key_id.0,
                    Arc::new(format::DataKey::new(*k.as_bytes())),
                );
            }
        }
        *self.keys.write().expect("lock") = (ring.current().0, map);
    }
}

impl store::KeySource for KeyringKeys {
    fn current(&self) -> ([u8; 16], Arc<format::DataKey>) {
        let g = self.keys.read().expect("lock");
        let id = g.0.0;
        (
            id,
            g.1.get(&id).cloned().expect("current key is in the map"),
        )
    }
    fn get(&self, key_id: &[u8; 16]) -> Option<Arc<format::DataKey>> {
        self.keys.read().expect("lock").1.get(key_id).cloned()
    }
}

/// An open database's security state: keyring, keys, tier, status.
pub struct Security {
    config: SecurityConfig,
    keyring: Option<RwLock<Keyring>>,
    keys: Option<Arc<KeyringKeys>>,
    status: RwLock<SecurityStatus>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("encrypted", &self.keys.is_some())
            .finish()
    }
}

fn detection() -> &'static tee::Detection {
    static D: OnceLock<tee::Detection> = OnceLock::new();
    D.get_or_init(tee::detect_system)
}

fn key_error(e: keys::KeyError) -> Error {
    Error::Security {
        reason: e.to_string(),
    }
}

/// The default key file for a database: outside its directory, named by a
/// hash of its canonical path.
pub fn default_key_file(db: &Path, key_dir: Option<&Path>) -> Result<PathBuf> {
    use sha2::Digest;
    let dir = match key_dir {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("HANZO_DB_KEY_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let base = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                    .ok_or_else(|| Error::Security {
                        reason: "no HOME to keep the default key file in: set HANZO_DB_KEY_DIR or choose a key provider".into(),
                    })?;
                base.join("hanzo-db").join("keys")
            }
        },
    };
    let canon = db.canonicalize().map_err(|source| Error::Io {
        path: db.display().to_string(),
        source,
    })?;
    let digest = sha2::Sha256::digest(canon.to_string_lossy().as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Ok(dir.join(format!("{name}.key")))
}

fn provider_for(db: &Path, cfg: &KeyConfig, keyring_exists: bool) -> Result<Box<dyn KeyProvider>> {
    Ok(match cfg {
        KeyConfig::Default { key_dir } => {
            let path = default_key_file(db, key_dir.as_deref())?;
            if path.exists() {
                Box::new(KeyFileProvider::open(&path).map_err(key_error)?)
            } else if keyring_exists {
                return Err(Error::Security {
                    reason: format!(
                        "the database is encrypted but its default key file {} is missing; restore it, or open with the provider that was used",
                        path.display()
                    ),
                });
            } else {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                        path: parent.display().to_string(),
                        source,
                    })?;
                }
                Box::new(KeyFileProvider::create_default(&path).map_err(key_error)?)
            }
        }
        KeyConfig::Passphrase { env } => {
            let pass = std::env::var(env).map_err(|_| Error::Security {
                reason: format!("the passphrase variable `{env}` is not set"),
            })?;
            Box::new(keys::PassphraseProvider::new(pass).map_err(key_error)?)
        }
        KeyConfig::EnvKey { env } => {
            Box::new(keys::EnvKeyProvider::from_env(env).map_err(key_error)?)
        }
        KeyConfig::KeyFile { path } => Box::new(KeyFileProvider::open(path).map_err(key_error)?),
    })
}

fn read_marker(db: &Path) -> Result<Option<Marker>> {
    let p = db.join(MARKER);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Security {
                reason: format!("{} is damaged: {e}", p.display()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: p.display().to_string(),
            source,
        }),
    }
}

fn write_marker(db: &Path, encrypted: bool) -> Result<()> {
    let p = db.join(MARKER);
    std::fs::create_dir_all(p.parent().expect("has parent")).map_err(|source| Error::Io {
        path: p.display().to_string(),
        source,
    })?;
    let m = Marker {
        format: if encrypted {
            "evf1".into()
        } else {
            "none".into()
        },
        encrypted,
    };
    std::fs::write(&p, serde_json::to_vec_pretty(&m).expect("json")).map_err(|source| Error::Io {
        path: p.display().to_string(),
        source,
    })
}

fn has_tables(db: &Path) -> bool {
    std::fs::read_dir(db)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".lance"))
        })
        .unwrap_or(false)
}

impl Security {
    /// Opens (or sets up, for a new database) the security state of the
    /// database at `db`. A wrong key is detected here, before any write.
    pub fn open(
        db: &Path,
        config: &SecurityConfig,
        provider: Option<Box<dyn KeyProvider>>,
    ) -> Result<Self> {
        let marker = read_marker(db)?;
        let keyring_path = db.join(KEYRING);
        let keyring_exists = keyring_path.exists();
        let hardening = if config.disable_core_dumps {
            tee::harden_process()
        } else {
            tee::HardeningReport::default()
        };
        let det = detection();
        let requested = config.tee_tier.unwrap_or(det.highest);
        let decision =
            tee::with_tee_protection(requested, det, config.strict_tier).map_err(|e| {
                Error::Security {
                    reason: e.to_string(),
                }
            })?;

        if !config.encryption {
            if marker.as_ref().is_some_and(|m| m.encrypted) || keyring_exists {
                return Err(Error::Security {
                    reason: "this database is encrypted: open it with encryption on and its key"
                        .into(),
                });
            }
            if marker.is_none() {
                write_marker(db, false)?;
            }
            let info = keys::ProviderInfo {
                kind: "none".into(),
                location: None,
                tee_sealed: false,
            };
            let mut status = SecurityStatus::new(&decision, det, info, false, &hardening);
            status.is_encrypted = false;
            status.cipher = "none".into();
            status
                .warnings
                .push("encryption at rest is OFF for this database (explicit opt-out)".into());
            return Ok(Self {
                config: config.clone(),
                keyring: None,
                keys: None,
                status: RwLock::new(status),
            });
        }
        if marker.as_ref().is_some_and(|m| !m.encrypted) || (marker.is_none() && has_tables(db)) {
            return Err(Error::Security {
                reason: "this database was created without encryption: open it with encryption turned off".into(),
            });
        }
        if marker.is_some() && !keyring_exists {
            return Err(Error::Security {
                reason: format!(
                    "the keyring {} is missing; the data cannot be read without it",
                    keyring_path.display()
                ),
            });
        }
        let provider = match provider {
            Some(p) => p,
            None => provider_for(db, &config.key, keyring_exists)?,
        };
        let info = provider.describe();
        let ring = if keyring_exists {
            Keyring::open(&keyring_path, provider).map_err(key_error)?
        } else {
            std::fs::create_dir_all(keyring_path.parent().expect("parent")).map_err(|source| {
                Error::Io {
                    path: keyring_path.display().to_string(),
                    source,
                }
            })?;
            let (ring, _) = Keyring::create(&keyring_path, provider).map_err(key_error)?;
            write_marker(db, true)?;
            ring
        };
        let locked = ring.current().1.is_memory_locked();
        let mut status = SecurityStatus::new(&decision, det, info, locked, &hardening);
        status.cipher = config.cipher.name().into();
        let keys = Arc::new(KeyringKeys::from_keyring(&ring));
        Ok(Self {
            config: config.clone(),
            keyring: Some(RwLock::new(ring)),
            keys: Some(keys),
            status: RwLock::new(status),
        })
    }

    /// The key source for the encrypting store, when encryption is on.
    pub fn key_source(&self) -> Option<Arc<dyn store::KeySource>> {
        self.keys.clone().map(|k| k as Arc<dyn store::KeySource>)
    }

    /// Algorithm and chunk size for new files.
    pub fn write_params(&self) -> Result<(format::Algorithm, format::ChunkSize)> {
        let cs = format::ChunkSize::new(self.config.chunk_size as u64)
            .map_err(|e| Error::Config(format!("security.chunk_size: {e}")))?;
        Ok((self.config.cipher.algorithm(), cs))
    }

    /// Size of the decrypted-chunk read cache (`security.read_cache_bytes`).
    pub fn read_cache_bytes(&self) -> u64 {
        self.config.read_cache_bytes
    }

    /// The current status.
    pub fn status(&self) -> SecurityStatus {
        self.status.read().expect("lock").clone()
    }

    /// Rewraps the data keys under a new key-encryption key (no data is rewritten).
    pub fn rotate_kek(&self, new_provider: Box<dyn KeyProvider>) -> Result<()> {
        let ring = self.keyring.as_ref().ok_or_else(|| Error::Security {
            reason: "encryption is off".into(),
        })?;
        let info = new_provider.describe();
        ring.write()
            .expect("lock")
            .rotate_kek(new_provider)
            .map_err(key_error)?;
        self.status.write().expect("lock").key_provider = info;
        Ok(())
    }

    /// Starts a new data key: new files use it; old files stay readable with
    /// the old key until compaction rewrites them.
    pub fn rotate_data_key(&self) -> Result<String> {
        let ring = self.keyring.as_ref().ok_or_else(|| Error::Security {
            reason: "encryption is off".into(),
        })?;
        let mut ring = ring.write().expect("lock");
        ring.rotate_dek().map_err(key_error)?;
        if let Some(k) = &self.keys {
            k.refresh(&ring);
        }
        Ok(ring.current().0.to_hex())
    }
}
