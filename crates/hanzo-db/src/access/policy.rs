//! The policy document: principals, their grants and API-key hashes, custom
//! roles, and the decision procedure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Decision, Permission};
use crate::error::{Error, Result};
use crate::filter::Filter;

/// Format name stored in the policy file.
pub const POLICY_FORMAT: &str = "hanzo-policy";

/// Permissions of a built-in role, `None` if `role` is not built in.
pub fn builtin_role(role: &str) -> Option<BTreeSet<Permission>> {
    use Permission::*;
    Some(match role {
        "admin" => Permission::ALL.into_iter().collect(),
        "writer" => [Read, Search, Write, Delete].into_iter().collect(),
        "reader" => [Read, Search].into_iter().collect(),
        _ => return None,
    })
}

/// One grant of a principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Grant {
    /// The table, or `None` for every table.
    #[serde(default)]
    pub table: Option<String>,
    /// A role (`admin`, `writer`, `reader` or a custom one) whose
    /// permissions this grant gives.
    #[serde(default)]
    pub role: Option<String>,
    /// Permissions given directly (in addition to the role's).
    #[serde(default)]
    pub permissions: BTreeSet<Permission>,
    /// Row-level scope: a filter ANDed into every query and write.
    #[serde(default)]
    pub scope: Option<serde_json::Value>,
}

impl Grant {
    /// A role on every table (`table` `None`) or one table.
    pub fn role(role: impl Into<String>, table: Option<&str>) -> Self {
        Self {
            table: table.map(str::to_string),
            role: Some(role.into()),
            ..Self::default()
        }
    }

    /// Permissions on every table or one table.
    pub fn permissions(
        permissions: impl IntoIterator<Item = Permission>,
        table: Option<&str>,
    ) -> Self {
        Self {
            table: table.map(str::to_string),
            permissions: permissions.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Restricts the grant to the rows `filter` matches.
    pub fn scoped(mut self, filter: serde_json::Value) -> Self {
        self.scope = Some(filter);
        self
    }
}

/// A stored API key (the secret only as an Argon2id hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKey {
    pub(crate) id: String,
    pub(crate) hash: String,
    pub(crate) created_at: String,
    #[serde(default)]
    pub(crate) expires_at: Option<String>,
    #[serde(default)]
    pub(crate) revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub(crate) struct StoredPrincipal {
    pub(crate) created_at: String,
    #[serde(default)]
    pub(crate) revoked: bool,
    #[serde(default)]
    pub(crate) grants: Vec<Grant>,
    #[serde(default)]
    pub(crate) keys: Vec<StoredKey>,
}

/// The whole policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyDoc {
    pub(crate) format: String,
    pub(crate) version: u32,
    /// Set when the first principal is created; never unset.
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) roles: BTreeMap<String, BTreeSet<Permission>>,
    #[serde(default)]
    pub(crate) principals: BTreeMap<String, StoredPrincipal>,
}

impl Default for PolicyDoc {
    fn default() -> Self {
        Self {
            format: POLICY_FORMAT.into(),
            version: 1,
            enabled: false,
            roles: BTreeMap::new(),
            principals: BTreeMap::new(),
        }
    }
}

/// Non-secret facts about a principal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrincipalInfo {
    /// Name.
    pub name: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Revoked (every key refused).
    pub revoked: bool,
    /// Grants.
    pub grants: Vec<Grant>,
    /// API keys (ids and dates only).
    pub keys: Vec<ApiKeyInfo>,
}

/// Non-secret facts about an API key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyInfo {
    /// The public key id.
    pub id: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Expiry, RFC 3339.
    pub expires_at: Option<String>,
    /// Revoked.
    pub revoked: bool,
}

impl PolicyDoc {
    /// The permissions of a role, built-in or custom.
    pub(crate) fn role_permissions(&self, role: &str) -> Option<BTreeSet<Permission>> {
        builtin_role(role).or_else(|| self.roles.get(role).cloned())
    }

    /// Checks a grant before it is stored.
    pub(crate) fn check_grant(&self, g: &Grant) -> Result<()> {
        if let Some(r) = &g.role {
            if self.role_permissions(r).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "unknown role `{r}`: use admin, writer, reader or define it first"
                )));
            }
        }
        if g.role.is_none() && g.permissions.is_empty() {
            return Err(Error::InvalidArgument(
                "a grant needs a role or at least one permission".into(),
            ));
        }
        if let Some(t) = &g.table {
            crate::schema::validate_identifier(t, "table name")?;
            let perms = self.grant_permissions(g);
            if let Some(p) = perms
                .iter()
                .find(|p| matches!(p, Permission::Keys | Permission::Audit))
            {
                return Err(Error::InvalidArgument(format!(
                    "`{p}` applies to the whole database: grant it without a table"
                )));
            }
        }
        if let Some(scope) = &g.scope {
            Filter::parse(scope)?;
        }
        Ok(())
    }

    fn grant_permissions(&self, g: &Grant) -> BTreeSet<Permission> {
        let mut p = g.permissions.clone();
        if let Some(r) = &g.role {
            p.extend(self.role_permissions(r).unwrap_or_default());
        }
        p
    }

    /// Decides whether `principal` may use `permission` (any permission when
    /// `None`) on `table` (the whole database when `None`).
    pub(crate) fn decide(
        &self,
        principal: &str,
        permission: Option<Permission>,
        table: Option<&str>,
    ) -> Decision {
        let Some(p) = self.principals.get(principal) else {
            return Decision::Deny;
        };
        if p.revoked {
            return Decision::Deny;
        }
        let mut scopes = Vec::new();
        let mut unscoped = false;
        for g in &p.grants {
            let table_ok = match (&g.table, table) {
                (None, _) => true,
                (Some(t), Some(want)) => t == want,
                (Some(_), None) => false,
            };
            if !table_ok {
                continue;
            }
            let perms = self.grant_permissions(g);
            let has = match permission {
                Some(want) => perms.contains(&want),
                None => !perms.is_empty(),
            };
            if !has {
                continue;
            }
            match g.scope.as_ref().map(Filter::parse) {
                None => unscoped = true,
                Some(Ok(f)) => scopes.push(f),
                // A scope that no longer parses grants nothing.
                Some(Err(_)) => {}
            }
        }
        if unscoped {
            Decision::Allow
        } else if scopes.is_empty() {
            Decision::Deny
        } else if scopes.len() == 1 {
            Decision::Scoped(scopes.pop().expect("one"))
        } else {
            Decision::Scoped(Filter::Or(scopes))
        }
    }

    pub(crate) fn info(&self, name: &str, p: &StoredPrincipal) -> PrincipalInfo {
        PrincipalInfo {
            name: name.to_string(),
            created_at: p.created_at.clone(),
            revoked: p.revoked,
            grants: p.grants.clone(),
            keys: p
                .keys
                .iter()
                .map(|k| ApiKeyInfo {
                    id: k.id.clone(),
                    created_at: k.created_at.clone(),
                    expires_at: k.expires_at.clone(),
                    revoked: k.revoked,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decisions_follow_roles_tables_and_scopes() {
        let mut doc = PolicyDoc::default();
        doc.principals.insert(
            "a".into(),
            StoredPrincipal {
                grants: vec![
                    Grant::role("reader", Some("t")),
                    Grant::permissions([Permission::Write], Some("t")).scoped(json!({"ns": "a"})),
                ],
                ..StoredPrincipal::default()
            },
        );
        assert_eq!(
            doc.decide("a", Some(Permission::Read), Some("t")),
            Decision::Allow
        );
        assert_eq!(
            doc.decide("a", Some(Permission::Read), Some("u")),
            Decision::Deny
        );
        assert!(matches!(
            doc.decide("a", Some(Permission::Write), Some("t")),
            Decision::Scoped(_)
        ));
        assert_eq!(
            doc.decide("a", Some(Permission::Keys), None),
            Decision::Deny
        );
        assert_eq!(doc.decide("a", None, Some("t")), Decision::Allow);
        assert_eq!(
            doc.decide("b", Some(Permission::Read), Some("t")),
            Decision::Deny
        );
        assert!(
            doc.check_grant(&Grant::permissions([Permission::Keys], Some("t")))
                .is_err()
        );
        assert!(doc.check_grant(&Grant::role("nope", None)).is_err());
        assert!(
            doc.check_grant(&Grant::role("reader", None).scoped(json!({"x": {"$bad": 1}})))
                .is_err()
        );
    }
}
