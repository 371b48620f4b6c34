//! Access control: principals, roles, grants, row-level scopes and API keys.
//!
//! A **principal** (a user, a service, an agent) holds grants. A [`Grant`]
//! gives a built-in role (`admin`, `writer`, `reader`), a custom role, or a
//! set of [`Permission`]s on one table or on every table, optionally with a
//! **scope**: a filter in the portable filter language that is ANDed into
//! every query and write of that principal on that table, so an agent sees
//! and writes only its own namespace.
//!
//! [`Database::with_principal`](crate::Database::with_principal) resolves a
//! credential (an API key) through an [`Authorizer`] and returns a handle
//! whose every call passes the [`Guarded`] decorator. A refused call returns
//! [`Error::PermissionDenied`](crate::Error::PermissionDenied) and reveals
//! nothing about data it may not see: permissions are checked before the
//! engine is touched, so the answer is the same whether a table or record
//! exists or not, and a `get` of a record outside the scope finds nothing.
//!
//! [`Authorizer`] is the seam for an external identity service; the
//! built-in [`PolicyStore`] keeps principals, grants and Argon2id hashes of
//! API keys in the database directory, sealed with the database's data key
//! (`.hanzo/access/policy.evf`). Access control is **off** until the first
//! principal is created (it must be an admin); from then on the plain handle
//! (opened with the database key but no API key) may not read or change
//! data or policy: every call needs a principal.

mod guard;
mod handle;
mod policy;
mod store;

pub use guard::Guarded;
pub(crate) use handle::Governance;
pub use handle::{AccessStatus, NewApiKey, PrincipalSpec};
pub use policy::{ApiKeyInfo, Grant, PrincipalInfo};
pub use store::PolicyStore;

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::Filter;

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `get`, `scan` (export), `count`, table stats.
    Read,
    /// Vector, full-text and hybrid search.
    Search,
    /// `insert`, `insert_stream`, `upsert`.
    Write,
    /// `delete`, `delete_where`.
    Delete,
    /// Create tables.
    Create,
    /// Drop tables.
    Drop,
    /// Build indexes.
    Index,
    /// Restore and tag versions.
    Restore,
    /// Compact and prune.
    Compact,
    /// Rotate keys; create, revoke and grant to principals (every table only).
    Keys,
    /// Read and verify the audit log (every table only).
    Audit,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 11] = [
        Permission::Read,
        Permission::Search,
        Permission::Write,
        Permission::Delete,
        Permission::Create,
        Permission::Drop,
        Permission::Index,
        Permission::Restore,
        Permission::Compact,
        Permission::Keys,
        Permission::Audit,
    ];

    /// The name used in grants, errors and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Search => "search",
            Permission::Write => "write",
            Permission::Delete => "delete",
            Permission::Create => "create",
            Permission::Drop => "drop",
            Permission::Index => "index",
            Permission::Restore => "restore",
            Permission::Compact => "compact",
            Permission::Keys => "keys",
            Permission::Audit => "audit",
        }
    }

    /// Parses a comma-separated list; `admin` stands for create, drop,
    /// index, restore, compact, keys and audit.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Permission>> {
        let mut out = BTreeSet::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if p == "admin" {
                out.extend(&Permission::ALL[4..]);
                continue;
            }
            let found = Permission::ALL.iter().find(|q| q.name() == p);
            out.insert(*found.ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown permission `{p}`: use read, search, write, delete, create, drop, index, restore, compact, keys, audit or admin"
                ))
            })?);
        }
        Ok(out)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a caller presents to [`Authorizer::authenticate`].
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key (`hdb_<key id>_<secret>`).
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential::ApiKey(<redacted>)")
    }
}

impl From<&str> for Credential {
    fn from(s: &str) -> Self {
        Credential::ApiKey(s.to_string())
    }
}
impl From<String> for Credential {
    fn from(s: String) -> Self {
        Credential::ApiKey(s)
    }
}
impl From<&String> for Credential {
    fn from(s: &String) -> Self {
        Credential::ApiKey(s.clone())
    }
}

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Its name.
    pub name: String,
    /// The API key it authenticated with (the public key id, never the secret).
    pub key_id: Option<String>,
}

/// The answer to one authorization question.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Allowed on every row.
    Allow,
    /// Allowed on the rows this filter matches.
    Scoped(Filter),
    /// Refused.
    Deny,
}

/// The seam between hanzo-db and an identity and access service.
///
/// Contract:
/// * `enabled` is false until access control is configured; while it is
///   false every call is allowed and no credential is needed.
/// * `authenticate` resolves a credential into a [`Principal`] or fails with
///   [`Error::PermissionDenied`] (operation `authenticate`) without saying
///   why (unknown, wrong, revoked and expired keys look the same).
/// * `authorize` answers for one call, every time it is made, so that a
///   revocation applies to handles already open. `principal` is `None` for
///   the plain handle (no credential): once enabled, deny it. `permission`
///   `None` asks whether the principal holds any permission on `table` (to
///   see its schema, versions and indexes). `table` `None` asks about the
///   whole database (keys, audit, listing).
#[async_trait]
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Whether access control is in force.
    fn enabled(&self) -> bool;

    /// Resolves a credential.
    async fn authenticate(&self, credential: &Credential) -> Result<Principal>;

    /// Decides one call.
    fn authorize(
        &self,
        principal: Option<&Principal>,
        permission: Option<Permission>,
        table: Option<&str>,
    ) -> Decision;
}

/// The error for a refused call.
pub(crate) fn denied(
    principal: Option<&Principal>,
    operation: impl Into<String>,
    table: Option<&str>,
) -> Error {
    Error::PermissionDenied {
        principal: principal
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "anonymous".into()),
        operation: operation.into(),
        table: table.map(str::to_string),
    }
}
