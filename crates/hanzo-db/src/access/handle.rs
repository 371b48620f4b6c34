//! The access-control and audit state of an open database ([`Governance`])
//! and the [`Database`] methods that manage principals, grants and the
//! audit log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::policy::{Grant, PrincipalInfo, StoredPrincipal};
use super::store::{PolicyStore, now};
use super::{Authorizer, Credential, Decision, Guarded, Permission, Principal, denied};
use crate::Database;
use crate::audit::format::AuditKeys;
use crate::audit::{
    AuditConfig, AuditEntry, AuditLog, AuditStatus, Audited, Event, VerifyReport, filter_shape,
};
use crate::backend::VectorDatabase;
use crate::error::{Error, Result};
use crate::security::store::KeySource;

/// Shared by every handle of one opened database.
#[derive(Debug)]
pub(crate) struct Governance {
    engine: Arc<dyn VectorDatabase>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    policy: Option<Arc<PolicyStore>>,
    audit: Arc<OnceLock<Arc<AuditLog>>>,
    audit_dir: PathBuf,
    audit_key_file: PathBuf,
    keys: Option<Arc<dyn KeySource>>,
    audit_config: AuditConfig,
}

fn local_audit_key(path: &Path) -> Result<[u8; 32]> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(b) => b.try_into().map_err(|_| Error::Integrity {
            path: path.display().to_string(),
            reason: "the audit key file is not 32 bytes".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p).map_err(io)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            f.write_all(&k).map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(k)
        }
        Err(e) => Err(io(e)),
    }
}

impl Governance {
    /// Sets up access control and auditing for the database at `path`.
    pub(crate) fn open(
        path: &Path,
        keys: Option<Arc<dyn KeySource>>,
        audit_config: AuditConfig,
        engine: Arc<dyn VectorDatabase>,
        external: Option<Arc<dyn Authorizer>>,
    ) -> Result<Arc<Self>> {
        let (authorizer, policy): (Arc<dyn Authorizer>, _) = match external {
            Some(a) => (a, None),
            None => {
                let p = Arc::new(PolicyStore::open(path, keys.clone())?);
                (p.clone(), Some(p))
            }
        };
        let gov = Arc::new(Self {
            engine,
            authorizer,
            policy,
            audit: Arc::default(),
            audit_dir: path.join(".hanzo").join("audit"),
            audit_key_file: path.join(".hanzo").join("audit.key"),
            keys,
            audit_config,
        });
        let has_log = std::fs::read_dir(&gov.audit_dir)
            .map(|mut rd| {
                rd.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "hal")))
            })
            .unwrap_or(false);
        if gov.audit_config.enabled || has_log || gov.authorizer.enabled() {
            gov.enable_audit()?;
        }
        Ok(gov)
    }

    /// Turns the audit log on (idempotent).
    pub(crate) fn enable_audit(&self) -> Result<Arc<AuditLog>> {
        if let Some(log) = self.audit.get() {
            return Ok(log.clone());
        }
        let keys = match &self.keys {
            Some(ks) => AuditKeys::from_keyring(ks.clone()),
            None => AuditKeys::local(&local_audit_key(&self.audit_key_file)?),
        };
        let log = AuditLog::open(&self.audit_dir, keys, self.audit_config.clone())?;
        Ok(self.audit.get_or_init(|| log).clone())
    }

    /// The backend stack for one principal: audit around access control
    /// around the engine.
    pub(crate) fn backend(&self, principal: Option<&Principal>) -> Arc<dyn VectorDatabase> {
        let guarded = Arc::new(Guarded::new(
            self.engine.clone(),
            self.authorizer.clone(),
            principal.cloned(),
        ));
        Arc::new(Audited::new(
            guarded,
            self.audit.clone(),
            principal.map(|p| p.name.clone()),
        ))
    }

    /// The backend for automatic upkeep: audited (as `(upkeep)`), not
    /// access-checked, since it runs on behalf of the database itself.
    pub(crate) fn upkeep_backend(&self) -> Arc<dyn VectorDatabase> {
        Arc::new(Audited::new(
            self.engine.clone(),
            self.audit.clone(),
            Some("(upkeep)".into()),
        ))
    }

    /// Records an event if auditing is on.
    pub(crate) fn record(&self, event: Event) -> Result<()> {
        if let Some(log) = self.audit.get() {
            log.record(event)?;
        }
        Ok(())
    }
}

/// What [`Database::create_principal`] and [`Database::issue_api_key`]
/// return. The key is shown once: only its Argon2id hash is stored.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct NewApiKey {
    /// The principal.
    pub principal: String,
    /// The key (`hdb_<key id>_<secret>`).
    pub api_key: String,
    /// Its public id (for `revoke_api_key`).
    pub key_id: String,
    /// Its expiry, RFC 3339.
    pub expires_at: Option<String>,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("principal", &self.principal)
            .field("key_id", &self.key_id)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

/// A new principal's first grant and key.
#[derive(Debug, Clone, Default)]
pub struct PrincipalSpec {
    /// Its grant (e.g. `Grant::role("reader", Some("docs"))`).
    pub grant: Grant,
    /// How long its first key is valid (`None`: until revoked).
    pub expires_in: Option<Duration>,
}

impl PrincipalSpec {
    /// A role on every table (`None`) or one table.
    pub fn role(role: &str, table: Option<&str>) -> Self {
        Self {
            grant: Grant::role(role, table),
            expires_in: None,
        }
    }
    /// Restricts the grant to a row-level scope.
    pub fn scope(mut self, filter: serde_json::Value) -> Self {
        self.grant.scope = Some(filter);
        self
    }
    /// Makes the first key expire.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.expires_in = Some(d);
        self
    }
}

/// Whether access control and auditing are on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessStatus {
    /// Access control is in force (a principal was created).
    pub access_control: bool,
    /// Principals defined.
    pub principals: usize,
    /// The principal of this handle.
    pub principal: Option<String>,
    /// What the plain handle (no API key) may do: `everything` while access
    /// control is off, `nothing` once it is on.
    pub plain_handle: &'static str,
    /// The audit log, when on.
    pub audit: Option<AuditStatus>,
}

fn expiry(d: Option<Duration>) -> Result<Option<String>> {
    d.map(|d| {
        let d = chrono::Duration::from_std(d)
            .map_err(|_| Error::InvalidArgument("expiry too far in the future".into()))?;
        Ok((chrono::Utc::now() + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
    .transpose()
}

fn grant_shape(g: &Grant) -> serde_json::Value {
    let scope = g
        .scope
        .as_ref()
        .and_then(|s| crate::Filter::parse(s).ok())
        .map(|f| filter_shape(&f));
    json!({"role": g.role, "permissions": g.permissions, "table": g.table, "scope": scope})
}

impl Database {
    fn governance(&self) -> Result<&Arc<Governance>> {
        self.governance.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "access control and auditing need a database opened with connect()".into(),
            )
        })
    }

    fn policy(&self) -> Result<&Arc<PolicyStore>> {
        self.governance()?.policy.as_ref().ok_or_else(|| {
            Error::InvalidArgument("this database uses an external authorizer".into())
        })
    }

    /// The principal this handle acts for (`None`: the plain handle).
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// A handle acting for the principal `credential` (an API key) belongs
    /// to; every call on it is checked and audited. Unknown, wrong, revoked
    /// and expired keys all give the same `PermissionDenied`.
    pub async fn with_principal(&self, credential: impl Into<Credential>) -> Result<Database> {
        let gov = self.governance()?;
        let r = gov.authorizer.authenticate(&credential.into()).await;
        let ev = Event::new(
            r.as_ref().ok().map(|p| p.name.as_str()),
            "authenticate",
            None,
        );
        gov.record(ev.result(&r))?;
        Ok(self.for_principal(Some(r?)))
    }

    /// A clone of this handle for automatic compaction.
    pub(crate) fn upkeep_handle(&self) -> Database {
        let mut db = self.clone();
        if let Some(gov) = &self.governance {
            db.inner = gov.upkeep_backend();
        }
        db
    }

    fn for_principal(&self, principal: Option<Principal>) -> Database {
        let gov = self.governance.clone().expect("checked");
        let mut db = Database::from_backend(gov.backend(principal.as_ref()), self.config().clone());
        db.security = self.security.clone();
        db.governance = Some(gov);
        db.principal = principal;
        db
    }

    /// Checks a management call, runs it and records it (denials too).
    pub(crate) fn governed<T>(
        &self,
        op: &str,
        permission: Permission,
        table: Option<&str>,
        shape: Option<serde_json::Value>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let Some(gov) = self.governance.as_ref() else {
            return f();
        };
        let r = if gov.authorizer.enabled()
            && gov
                .authorizer
                .authorize(self.principal.as_ref(), Some(permission), table)
                != Decision::Allow
        {
            Err(denied(self.principal.as_ref(), permission.name(), table))
        } else {
            f()
        };
        let mut ev = Event::new(self.principal.as_ref().map(|p| p.name.as_str()), op, table);
        ev.shape = shape;
        gov.record(ev.result(&r))?;
        r
    }

    /// Creates a principal with one grant and a first API key, shown once.
    ///
    /// The first principal turns access control (and the audit log) on and
    /// must be an `admin` on every table, unscoped; after that only a
    /// principal holding `keys` may create others.
    pub fn create_principal(&self, name: &str, spec: PrincipalSpec) -> Result<NewApiKey> {
        crate::schema::validate_identifier(name, "principal name")?;
        let policy = self.policy()?.clone();
        let gov = self.governance()?.clone();
        let first = !policy.enabled();
        if first {
            let g = &spec.grant;
            if g.role.as_deref() != Some("admin") || g.table.is_some() || g.scope.is_some() {
                return Err(Error::InvalidArgument(
                    "the first principal must be an admin on every table (no --table, no scope): it turns access control on and must be able to manage it".into(),
                ));
            }
            gov.enable_audit()?;
        }
        let expires_at = expiry(spec.expires_in)?;
        let shape =
            json!({"target": name, "grant": grant_shape(&spec.grant), "expires_at": expires_at});
        self.governed(
            "principal.create",
            Permission::Keys,
            None,
            Some(shape),
            || {
                policy.update(|doc| {
                    if first && doc.enabled {
                        // Another process created the first principal meanwhile.
                        return Err(denied(self.principal.as_ref(), "keys", None));
                    }
                    doc.check_grant(&spec.grant)?;
                    if doc.principals.contains_key(name) {
                        return Err(Error::InvalidArgument(format!(
                            "a principal named `{name}` exists; revoke it or pick another name"
                        )));
                    }
                    doc.principals.insert(
                        name.to_string(),
                        StoredPrincipal {
                            created_at: now(),
                            grants: vec![spec.grant.clone()],
                            ..StoredPrincipal::default()
                        },
                    );
                    let (key_id, api_key) = PolicyStore::new_key(doc, name, expires_at.clone())?;
                    doc.enabled = true;
                    Ok(NewApiKey {
                        principal: name.to_string(),
                        api_key,
                        key_id,
                        expires_at: expires_at.clone(),
                    })
                })
            },
        )
    }

    /// Issues another API key for a principal.
    pub fn issue_api_key(&self, name: &str, expires_in: Option<Duration>) -> Result<NewApiKey> {
        let policy = self.policy()?.clone();
        let expires_at = expiry(expires_in)?;
        let shape = json!({"target": name, "expires_at": expires_at});
        self.governed("principal.key", Permission::Keys, None, Some(shape), || {
            policy.update(|doc| {
                let (key_id, api_key) = PolicyStore::new_key(doc, name, expires_at.clone())?;
                Ok(NewApiKey {
                    principal: name.to_string(),
                    api_key,
                    key_id,
                    expires_at: expires_at.clone(),
                })
            })
        })
    }

    /// Revokes a principal: every key of it is refused from now on, on
    /// handles already open too.
    pub fn revoke_principal(&self, name: &str) -> Result<()> {
        let policy = self.policy()?.clone();
        self.governed(
            "principal.revoke",
            Permission::Keys,
            None,
            Some(json!({"target": name})),
            || {
                policy.update(|doc| {
                    let p = doc.principals.get_mut(name).ok_or_else(|| {
                        Error::InvalidArgument(format!("no principal named `{name}`"))
                    })?;
                    p.revoked = true;
                    Ok(())
                })
            },
        )
    }

    /// Revokes one API key by its id.
    pub fn revoke_api_key(&self, key_id: &str) -> Result<()> {
        let policy = self.policy()?.clone();
        self.governed(
            "principal.revoke_key",
            Permission::Keys,
            None,
            Some(json!({"key_id": key_id})),
            || {
                policy.update(|doc| {
                    let k = doc
                        .principals
                        .values_mut()
                        .flat_map(|p| p.keys.iter_mut())
                        .find(|k| k.id == key_id)
                        .ok_or_else(|| {
                            Error::InvalidArgument(format!("no API key with id `{key_id}`"))
                        })?;
                    k.revoked = true;
                    Ok(())
                })
            },
        )
    }

    /// Every principal, with grants and key ids (never hashes).
    pub fn list_principals(&self) -> Result<Vec<PrincipalInfo>> {
        let policy = self.policy()?.clone();
        self.governed("principal.list", Permission::Keys, None, None, || {
            Ok(policy.read(|doc| doc.principals.iter().map(|(n, p)| doc.info(n, p)).collect()))
        })
    }

    /// Adds a grant to a principal.
    pub fn grant(&self, name: &str, grant: Grant) -> Result<()> {
        let policy = self.policy()?.clone();
        let shape = json!({"target": name, "grant": grant_shape(&grant)});
        self.governed("grant", Permission::Keys, None, Some(shape), || {
            policy.update(|doc| {
                doc.check_grant(&grant)?;
                let p = doc.principals.get_mut(name).ok_or_else(|| {
                    Error::InvalidArgument(format!("no principal named `{name}`"))
                })?;
                p.grants.push(grant.clone());
                Ok(())
            })
        })
    }

    /// Removes grants of a principal on `table` (`None`: its every-table
    /// grants): those with this role, or these permissions, or (both left
    /// out) all of them. Returns how many grants changed.
    pub fn revoke_grant(
        &self,
        name: &str,
        table: Option<&str>,
        role: Option<&str>,
        permissions: &BTreeSet<Permission>,
    ) -> Result<usize> {
        let policy = self.policy()?.clone();
        let shape =
            json!({"target": name, "table": table, "role": role, "permissions": permissions});
        self.governed("revoke", Permission::Keys, None, Some(shape), || {
            policy.update(|doc| {
                let p = doc.principals.get_mut(name).ok_or_else(|| {
                    Error::InvalidArgument(format!("no principal named `{name}`"))
                })?;
                let mut changed = 0;
                p.grants.retain_mut(|g| {
                    if g.table.as_deref() != table {
                        return true;
                    }
                    if role.is_none() && permissions.is_empty() {
                        changed += 1;
                        return false;
                    }
                    if role.is_some() && g.role.as_deref() == role {
                        g.role = None;
                        changed += 1;
                    }
                    let before = g.permissions.len();
                    g.permissions.retain(|x| !permissions.contains(x));
                    if g.permissions.len() != before {
                        changed += 1;
                    }
                    g.role.is_some() || !g.permissions.is_empty()
                });
                Ok(changed)
            })
        })
    }

    /// Defines (or redefines) a custom role.
    pub fn define_role(&self, role: &str, permissions: BTreeSet<Permission>) -> Result<()> {
        crate::schema::validate_identifier(role, "role name")?;
        if super::policy::builtin_role(role).is_some() {
            return Err(Error::InvalidArgument(format!(
                "`{role}` is a built-in role"
            )));
        }
        let policy = self.policy()?.clone();
        let shape = json!({"role": role, "permissions": permissions});
        self.governed("role.define", Permission::Keys, None, Some(shape), || {
            policy.update(|doc| {
                doc.roles.insert(role.to_string(), permissions.clone());
                Ok(())
            })
        })
    }

    /// Whether access control and the audit log are on.
    pub fn access_status(&self) -> AccessStatus {
        let gov = self.governance.as_ref();
        let on = gov.is_some_and(|g| g.authorizer.enabled());
        AccessStatus {
            access_control: on,
            principals: self
                .policy()
                .map(|p| p.read(|d| d.principals.len()))
                .unwrap_or(0),
            principal: self.principal.as_ref().map(|p| p.name.clone()),
            plain_handle: if on { "nothing" } else { "everything" },
            audit: gov.and_then(|g| g.audit.get()).map(|l| l.status()),
        }
    }

    /// Turns the audit log on for this database (it stays on).
    pub fn enable_audit(&self) -> Result<()> {
        let gov = self.governance()?.clone();
        self.governed("audit.enable", Permission::Audit, None, None, || {
            gov.enable_audit().map(drop)
        })
    }

    /// The audit log, for `audit` permission holders.
    pub fn audit_log(&self) -> Result<Arc<AuditLog>> {
        let gov = self.governance()?.clone();
        self.governed("audit.read", Permission::Audit, None, None, || {
            gov.audit.get().cloned().ok_or_else(|| {
                Error::InvalidArgument(
                    "the audit log is off: turn it on with `[audit] enabled = true` or `hanzo-db audit enable`".into(),
                )
            })
        })
    }

    /// Verifies the audit log (see [`AuditLog::verify`]).
    pub fn audit_verify(&self) -> Result<VerifyReport> {
        self.audit_log()?.verify()
    }

    /// Audit entries at or after `since` (RFC 3339 or a date), oldest first.
    pub fn audit_entries(&self, since: Option<&str>) -> Result<Vec<AuditEntry>> {
        self.audit_log()?.entries(since)
    }
}
