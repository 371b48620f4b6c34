//! [`PolicyStore`]: the built-in [`Authorizer`], keeping its policy in the
//! database directory, sealed with the database's data key.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use rand::rngs::OsRng;

use super::policy::{POLICY_FORMAT, PolicyDoc, StoredKey};
use super::{Authorizer, Credential, Decision, Permission, Principal, denied};
use crate::error::{Error, Result};
use crate::security::format::{self, Algorithm, ChunkSize};
use crate::security::store::KeySource;

const KEY_PREFIX: &str = "hdb";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane).
fn argon() -> argon2::Argon2<'static> {
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19 * 1024, 2, 1, None).expect("valid parameters"),
    )
}

/// Hashes an API key's secret (Argon2id, random salt, PHC string).
pub(crate) fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt");
    argon()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 with valid parameters")
        .to_string()
}

fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon().verify_password(secret.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash that matches nothing, verified for unknown key ids so that an
/// unknown key costs the same time as a wrong one.
fn decoy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_secret("decoy"))
}

/// A fresh API key: `(key id, full key)`. 64 bits of id, 256 bits of secret.
pub(crate) fn generate_key() -> (String, String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let full = format!("{KEY_PREFIX}_{id}_{secret}");
    (id, secret, full)
}

fn split_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.splitn(3, '_');
    let (p, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    (p == KEY_PREFIX && id.len() == 16 && !secret.is_empty()).then_some((id, secret))
}

/// The policy file, its lock, and the policy in memory.
#[derive(Debug)]
pub struct PolicyStore {
    path: PathBuf,
    lock_path: PathBuf,
    keys: Option<Arc<dyn KeySource>>,
    doc: RwLock<(PolicyDoc, Option<(SystemTime, u64)>)>,
    enabled: AtomicBool,
}

impl PolicyStore {
    /// Opens the policy of the database at `db` (`keys`: its data keys when
    /// encryption is on).
    pub fn open(db: &Path, keys: Option<Arc<dyn KeySource>>) -> Result<Self> {
        let dir = db.join(".hanzo").join("access");
        let path = dir.join(if keys.is_some() {
            "policy.evf"
        } else {
            "policy.json"
        });
        let store = Self {
            lock_path: dir.join("lock"),
            path,
            keys,
            doc: RwLock::new((PolicyDoc::default(), None)),
            enabled: AtomicBool::new(false),
        };
        store.reload()?;
        Ok(store)
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    }

    /// Re-reads the file if another process changed it.
    fn reload(&self) -> Result<()> {
        let stamp = self.stamp();
        if stamp.is_some() && self.doc.read().expect("lock").1 == stamp {
            return Ok(());
        }
        let doc = match std::fs::read(&self.path) {
            Ok(bytes) => self.decode(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PolicyDoc::default(),
            Err(e) => return Err(io(&self.path)(e)),
        };
        self.enabled.store(doc.enabled, Ordering::Release);
        *self.doc.write().expect("lock") = (doc, stamp);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<PolicyDoc> {
        let integrity = |reason: String| Error::Integrity {
            path: self.path.display().to_string(),
            reason,
        };
        let plain = match &self.keys {
            Some(ks) => format::decrypt(bytes, |id| ks.get(id))
                .map_err(|e| integrity(format!("the access policy does not decrypt: {e}")))?,
            None => bytes.to_vec(),
        };
        let doc: PolicyDoc = serde_json::from_slice(&plain)
            .map_err(|e| integrity(format!("the access policy is damaged: {e}")))?;
        if doc.format != POLICY_FORMAT {
            return Err(integrity(format!("not a policy file ({})", doc.format)));
        }
        Ok(doc)
    }

    fn save(&self, doc: &PolicyDoc) -> Result<()> {
        let plain = serde_json::to_vec_pretty(doc).expect("policy serializes");
        let bytes = match &self.keys {
            Some(ks) => {
                let (id, key) = ks.current();
                format::encrypt(&key, id, Algorithm::Aes256Gcm, ChunkSize::DEFAULT, &plain)
            }
            None => plain,
        };
        let dir = self.path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Applies a change under the cross-process lock: re-read, change, write.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut PolicyDoc) -> Result<T>) -> Result<T> {
        let dir = self.lock_path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(io(&self.lock_path))?;
        lock.lock().map_err(io(&self.lock_path))?;
        let r = (|| {
            self.reload()?;
            let mut doc = self.doc.read().expect("lock").0.clone();
            let out = change(&mut doc)?;
            self.save(&doc)?;
            self.enabled.store(doc.enabled, Ordering::Release);
            *self.doc.write().expect("lock") = (doc, self.stamp());
            Ok(out)
        })();
        let _ = lock.unlock();
        r
    }

    /// Reads the policy.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&PolicyDoc) -> T) -> T {
        f(&self.doc.read().expect("lock").0)
    }

    /// Adds an API key to `principal` and returns `(key id, full key)`.
    pub(crate) fn new_key(
        doc: &mut PolicyDoc,
        principal: &str,
        expires_at: Option<String>,
    ) -> Result<(String, String)> {
        let p = doc
            .principals
            .get_mut(principal)
            .ok_or_else(|| Error::InvalidArgument(format!("no principal named `{principal}`")))?;
        let (id, secret, full) = generate_key();
        p.keys.push(StoredKey {
            id: id.clone(),
            hash: hash_secret(&secret),
            created_at: now(),
            expires_at,
            revoked: false,
        });
        Ok((id, full))
    }

    fn key_valid(doc: &PolicyDoc, principal: &Principal) -> bool {
        let Some(p) = doc.principals.get(&principal.name) else {
            return false;
        };
        if p.revoked {
            return false;
        }
        let Some(kid) = &principal.key_id else {
            return true;
        };
        p.keys.iter().any(|k| {
            &k.id == kid
                && !k.revoked
                && k.expires_at.as_deref().is_none_or(|e| {
                    chrono::DateTime::parse_from_rfc3339(e).is_ok_and(|e| e > chrono::Utc::now())
                })
        })
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[async_trait]
impl Authorizer for PolicyStore {
    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    async fn authenticate(&self, credential: &Credential) -> Result<Principal> {
        self.reload()?;
        let Credential::ApiKey(key) = credential;
        let refuse = || denied(None, "authenticate", None);
        let Some((id, secret)) = split_key(key) else {
            verify_secret("x", decoy_hash());
            return Err(refuse());
        };
        let found = self.read(|doc| {
            doc.principals.iter().find_map(|(name, p)| {
                p.keys
                    .iter()
                    .find(|k| k.id == id)
                    .map(|k| (name.clone(), k.hash.clone()))
            })
        });
        let (name, hash) = match found {
            Some(f) => f,
            None => (String::new(), decoy_hash().to_string()),
        };
        let secret = secret.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_secret(&secret, &hash))
            .await
            .unwrap_or(false);
        let principal = Principal {
            name,
            key_id: Some(id.to_string()),
        };
        if ok && self.read(|doc| Self::key_valid(doc, &principal)) {
            Ok(principal)
        } else {
            Err(refuse())
        }
    }

    fn authorize(
        &self,
        principal: Option<&Principal>,
        permission: Option<Permission>,
        table: Option<&str>,
    ) -> Decision {
        if !self.enabled() {
            return Decision::Allow;
        }
        let Some(p) = principal else {
            return Decision::Deny;
        };
        // Changes made by other processes (a revocation) apply at once.
        if self.reload().is_err() {
            return Decision::Deny;
        }
        self.read(|doc| {
            if !Self::key_valid(doc, p) {
                return Decision::Deny;
            }
            doc.decide(&p.name, permission, table)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_and_verify() {
        let (id, secret, full) = generate_key();
        assert_eq!(split_key(&full), Some((id.as_str(), secret.as_str())));
        let h = hash_secret(&secret);
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains(&secret));
        assert!(verify_secret(&secret, &h));
        assert!(!verify_secret("wrong", &h));
        assert_eq!(split_key("nope"), None);
        assert_eq!(split_key("hdb_short_x"), None);
    }
}
