//! Access control: roles against operations, table grants, row-level
//! scopes, revoked and expired keys, denials that change and reveal nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use hanzo_db::{
    Database, Error, Grant, IndexSpec, MultimodalRecord, Permission, PrincipalSpec, TableSchema,
};
use serde_json::json;

use crate::common::{TempDb, connect_in, lance_db};

fn rec(id: &str, ns: &str, x: f32) -> MultimodalRecord {
    MultimodalRecord::new(id, vec![x, 1.0 - x, 0.5])
        .with_text(format!("note {id}"))
        .with_metadata("ns", ns)
}

fn is_denied<T: std::fmt::Debug>(r: &hanzo_db::Result<T>) -> bool {
    matches!(r, Err(Error::PermissionDenied { .. }))
}

/// A database with access control on: an admin handle and table `t`
/// holding 4 records in namespaces `a` and `b`.
async fn setup() -> (TempDb, Database) {
    let t = lance_db().await;
    let key =
        t.db.create_principal("root", PrincipalSpec::role("admin", None))
            .unwrap();
    let admin = t.db.with_principal(&key.api_key).await.unwrap();
    admin
        .create_table(
            "t",
            TableSchema::new(3).field("ns", hanzo_db::FieldType::String),
        )
        .await
        .unwrap();
    admin
        .insert(
            "t",
            vec![
                rec("a1", "a", 0.1),
                rec("a2", "a", 0.2),
                rec("b1", "b", 0.8),
                rec("b2", "b", 0.9),
            ],
        )
        .await
        .unwrap();
    (t, admin)
}

async fn handle(admin: &Database, name: &str, spec: PrincipalSpec) -> Database {
    let key = admin.create_principal(name, spec).unwrap();
    admin.with_principal(&key.api_key).await.unwrap()
}

#[tokio::test]
async fn access_control_is_off_until_the_first_admin_and_then_the_plain_handle_is_refused() {
    let t = lance_db().await;
    assert!(!t.db.access_status().access_control);
    t.db.create_table("t", TableSchema::new(3)).await.unwrap();
    // The first principal must be an unscoped admin on every table.
    let e =
        t.db.create_principal("r", PrincipalSpec::role("reader", None))
            .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(!t.db.access_status().access_control);
    let key =
        t.db.create_principal("root", PrincipalSpec::role("admin", None))
            .unwrap();
    assert!(key.api_key.starts_with("hdb_"));
    let st = t.db.access_status();
    assert!(st.access_control);
    assert_eq!(st.plain_handle, "nothing");
    assert!(st.audit.is_some(), "the first principal turns auditing on");
    // The plain handle may do nothing now.
    assert!(is_denied(&t.db.list_tables().await));
    assert!(is_denied(&t.db.insert("t", vec![rec("x", "a", 0.1)]).await));
    assert!(is_denied(
        &t.db.vector_search("t", &[0.1, 0.2, 0.3], 1).await
    ));
    assert!(is_denied(
        &t.db
            .create_principal("x", PrincipalSpec::role("admin", None))
    ));
    assert!(is_denied(&t.db.rotate_data_key()));
    // The admin may.
    let admin = t.db.with_principal(&key.api_key).await.unwrap();
    assert_eq!(admin.principal().unwrap().name, "root");
    assert_eq!(admin.list_tables().await.unwrap(), vec!["t".to_string()]);
    admin.insert("t", vec![rec("x", "a", 0.1)]).await.unwrap();
    // It survives reopening.
    drop((admin, t.db));
    let db = connect_in(t.dir.path()).execute().await.unwrap();
    assert!(db.access_status().access_control);
    assert!(is_denied(&db.count("t", None).await));
    let admin = db.with_principal(&key.api_key).await.unwrap();
    assert_eq!(admin.count("t", None).await.unwrap(), 1);
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Search,
    Count,
    Insert,
    Upsert,
    Delete,
    CreateTable,
    DropTable,
    CreateIndex,
    Restore,
    Compact,
    RotateKey,
    CreatePrincipal,
    ReadAudit,
}

const OPS: [Op; 14] = [
    Op::Get,
    Op::Search,
    Op::Count,
    Op::Insert,
    Op::Upsert,
    Op::Delete,
    Op::CreateTable,
    Op::DropTable,
    Op::CreateIndex,
    Op::Restore,
    Op::Compact,
    Op::RotateKey,
    Op::CreatePrincipal,
    Op::ReadAudit,
];

/// Tries one operation as `h`; the admin prepares what it needs.
async fn attempt(op: Op, h: &Database, admin: &Database, tag: &str) -> hanzo_db::Result<()> {
    match op {
        Op::Get => h.get("t", "a1").await.map(drop),
        Op::Search => h.vector_search("t", &[0.1, 0.9, 0.5], 2).await.map(drop),
        Op::Count => h.count("t", None).await.map(drop),
        Op::Insert => h
            .insert("t", vec![rec(&format!("i-{tag}"), "a", 0.3)])
            .await
            .map(drop),
        Op::Upsert => h.upsert("t", vec![rec("a2", "a", 0.25)]).await.map(drop),
        Op::Delete => h.delete("t", &[format!("i-{tag}")]).await.map(drop),
        Op::CreateTable => {
            h.create_table(&format!("new_{tag}"), TableSchema::new(3))
                .await
        }
        Op::DropTable => {
            let name = format!("gone_{tag}");
            admin.create_table(&name, TableSchema::new(3)).await?;
            h.drop_table(&name).await
        }
        Op::CreateIndex => {
            h.create_index(
                "t",
                IndexSpec::Scalar {
                    column: "ns".into(),
                },
            )
            .await
        }
        Op::Restore => {
            let v = admin.version("t").await?;
            h.restore("t", v - 1).await.map(drop)
        }
        Op::Compact => h.compact("t").await.map(drop),
        Op::RotateKey => h.rotate_data_key().map(drop),
        Op::CreatePrincipal => h
            .create_principal(&format!("p_{tag}"), PrincipalSpec::role("reader", None))
            .map(drop),
        Op::ReadAudit => h.audit_entries(None).map(drop),
    }
}

fn allowed(role: &str, op: Op) -> bool {
    use Op::*;
    match role {
        "admin" => true,
        "writer" => matches!(op, Get | Search | Count | Insert | Upsert | Delete),
        "reader" => matches!(op, Get | Search | Count),
        // custom: read + index
        "indexer" => matches!(op, Get | Count | CreateIndex),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn each_role_against_each_operation() {
    let (_t, admin) = setup().await;
    admin
        .define_role(
            "indexer",
            [Permission::Read, Permission::Index].into_iter().collect(),
        )
        .unwrap();
    for role in ["admin", "writer", "reader", "indexer"] {
        let h = handle(
            &admin,
            &format!("{role}_1"),
            PrincipalSpec::role(role, None),
        )
        .await;
        for op in OPS {
            let r = attempt(op, &h, &admin, role).await;
            if allowed(role, op) {
                assert!(r.is_ok(), "{role} should be allowed {op:?}: {r:?}");
            } else {
                match r {
                    Err(Error::PermissionDenied { principal, .. }) => {
                        assert_eq!(principal, format!("{role}_1"), "{op:?}")
                    }
                    other => panic!("{role} should be denied {op:?}, got {other:?}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn a_table_grant_covers_that_table_only_and_denials_do_not_reveal_existence() {
    let (_t, admin) = setup().await;
    admin
        .create_table("other", TableSchema::new(3))
        .await
        .unwrap();
    let r = handle(&admin, "r", PrincipalSpec::role("reader", Some("t"))).await;
    assert_eq!(r.list_tables().await.unwrap(), vec!["t".to_string()]);
    assert_eq!(r.count("t", None).await.unwrap(), 4);
    let on_existing = r.count("other", None).await.unwrap_err();
    let on_missing = r.count("no_such_table", None).await.unwrap_err();
    // The same error, save the table name it was asked about.
    assert_eq!(
        on_existing.to_string().replace("other", "X"),
        on_missing.to_string().replace("no_such_table", "X")
    );
    assert!(matches!(on_missing, Error::PermissionDenied { .. }));
    // A later grant applies to the open handle at once.
    admin
        .grant("r", Grant::role("reader", Some("other")))
        .unwrap();
    assert_eq!(r.count("other", None).await.unwrap(), 0);
    // And revoking it too.
    let n = admin
        .revoke_grant("r", Some("other"), Some("reader"), &BTreeSet::new())
        .unwrap();
    assert_eq!(n, 1);
    assert!(is_denied(&r.count("other", None).await));
}

#[tokio::test]
async fn row_level_scope_confines_reads_and_writes() {
    let (_t, admin) = setup().await;
    let agent = handle(
        &admin,
        "agent_a",
        PrincipalSpec::role("writer", Some("t")).scope(json!({"ns": "a"})),
    )
    .await;
    // Reads see only the scope.
    assert_eq!(agent.count("t", None).await.unwrap(), 2);
    assert_eq!(
        agent
            .count(
                "t",
                Some(hanzo_db::Filter::parse(&json!({"ns": "b"})).unwrap())
            )
            .await
            .unwrap(),
        0
    );
    let hits = agent
        .vector_search("t", &[0.9, 0.1, 0.5], 10)
        .await
        .unwrap();
    let mut ids: Vec<String> = hits.into_iter().map(|h| h.record.id).collect();
    ids.sort();
    assert_eq!(ids, vec!["a1", "a2"]);
    // An out-of-scope id looks exactly like a missing one.
    assert_eq!(agent.get("t", "b1").await.unwrap(), None);
    assert_eq!(agent.get("t", "nope").await.unwrap(), None);
    assert!(agent.get("t", "a1").await.unwrap().is_some());
    let mut all = Vec::new();
    let mut s = agent
        .scan("t", &hanzo_db::Projection::default(), None)
        .await
        .unwrap();
    use futures::StreamExt;
    while let Some(b) = s.next().await {
        all.extend(b.unwrap().into_iter().map(|r| r.id));
    }
    all.sort();
    assert_eq!(all, vec!["a1", "a2"]);
    // Writes inside the scope pass; outside it they are refused and change nothing.
    agent.insert("t", vec![rec("a3", "a", 0.3)]).await.unwrap();
    let v = admin.version("t").await.unwrap();
    assert!(is_denied(
        &agent.insert("t", vec![rec("b3", "b", 0.3)]).await
    ));
    assert!(
        is_denied(&agent.upsert("t", vec![rec("b1", "a", 0.3)]).await),
        "replacing an out-of-scope record"
    );
    assert!(
        is_denied(&agent.upsert("t", vec![rec("a1", "b", 0.3)]).await),
        "moving a record out of scope"
    );
    assert_eq!(admin.version("t").await.unwrap(), v);
    // Deletes reach only the scope.
    assert_eq!(agent.delete("t", &["b1", "a3"]).await.unwrap(), 1);
    assert_eq!(agent.delete_where("t", json!({})).await.unwrap(), 2);
    assert_eq!(admin.count("t", None).await.unwrap(), 2);
    assert!(admin.get("t", "b1").await.unwrap().is_some());
    // Whole-table facts are not for a scoped principal.
    assert!(is_denied(&agent.table_stats("t").await));
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_like_unknown_ones() {
    let (_t, admin) = setup().await;
    let short = admin
        .create_principal(
            "short",
            PrincipalSpec::role("reader", None).expires_in(Duration::from_secs(2)),
        )
        .unwrap();
    assert!(short.expires_at.is_some());
    let h = admin.with_principal(&short.api_key).await.unwrap();
    assert_eq!(h.count("t", None).await.unwrap(), 4);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        is_denied(&h.count("t", None).await),
        "open handle after expiry"
    );
    let expired = admin.with_principal(&short.api_key).await.unwrap_err();

    let k1 = admin
        .create_principal("svc", PrincipalSpec::role("reader", None))
        .unwrap();
    let k2 = admin.issue_api_key("svc", None).unwrap();
    let h1 = admin.with_principal(&k1.api_key).await.unwrap();
    let h2 = admin.with_principal(&k2.api_key).await.unwrap();
    admin.revoke_api_key(&k1.key_id).unwrap();
    assert!(is_denied(&h1.count("t", None).await));
    assert_eq!(h2.count("t", None).await.unwrap(), 4);
    let revoked_key = admin.with_principal(&k1.api_key).await.unwrap_err();
    admin.revoke_principal("svc").unwrap();
    assert!(is_denied(&h2.count("t", None).await));
    let revoked = admin.with_principal(&k2.api_key).await.unwrap_err();

    // A wrong secret for a real key id, an unknown key and garbage: all the same.
    let mut wrong = k2.api_key.clone();
    wrong.pop();
    wrong.push(if k2.api_key.ends_with('A') { 'B' } else { 'A' });
    let wrong = admin.with_principal(&wrong).await.unwrap_err();
    let unknown = admin
        .with_principal("hdb_0000000000000000_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
        .await
        .unwrap_err();
    let garbage = admin.with_principal("not a key").await.unwrap_err();
    let msgs: Vec<String> = [expired, revoked_key, revoked, wrong, unknown, garbage]
        .iter()
        .map(|e| {
            assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
            e.to_string()
        })
        .collect();
    assert!(msgs.windows(2).all(|w| w[0] == w[1]), "{msgs:?}");
}

#[tokio::test]
async fn denied_calls_leave_everything_as_it_was() {
    let (_t, admin) = setup().await;
    let reader = handle(&admin, "r", PrincipalSpec::role("reader", None)).await;
    let before_versions = admin.list_versions("t").await.unwrap().len();
    let before_v = admin.version("t").await.unwrap();
    let before_ids: Vec<_> = admin.list_principals().unwrap();
    assert!(is_denied(
        &reader.insert("t", vec![rec("z", "a", 0.5)]).await
    ));
    assert!(is_denied(
        &reader.upsert("t", vec![rec("a1", "a", 0.5)]).await
    ));
    assert!(is_denied(&reader.delete("t", &["a1"]).await));
    assert!(is_denied(&reader.delete_where("t", json!({})).await));
    assert!(is_denied(&reader.drop_table("t").await));
    assert!(is_denied(
        &reader.create_index("t", IndexSpec::FullText).await
    ));
    assert!(is_denied(&reader.restore("t", 1).await));
    assert!(is_denied(&reader.tag("t", 1, "x").await));
    assert!(is_denied(&reader.grant("r", Grant::role("admin", None))));
    assert!(is_denied(&reader.revoke_principal("root")));
    assert_eq!(admin.version("t").await.unwrap(), before_v);
    assert_eq!(
        admin.list_versions("t").await.unwrap().len(),
        before_versions
    );
    assert_eq!(admin.count("t", None).await.unwrap(), 4);
    assert!(admin.list_indexes("t").await.unwrap().is_empty());
    assert_eq!(admin.list_principals().unwrap(), before_ids);
}

#[tokio::test]
async fn api_keys_are_kept_only_as_argon2id_hashes_inside_the_sealed_policy() {
    let (t, admin) = setup().await;
    let k = admin
        .create_principal("keyed", PrincipalSpec::role("reader", None))
        .unwrap();
    let secret = k.api_key.splitn(3, '_').nth(2).unwrap().to_string();
    let dir = t.dir.path().join("db").join(".hanzo").join("access");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&secret), "the key's secret is on disk");
        assert!(!text.contains("keyed"), "the policy is not sealed");
        assert!(!text.contains("argon2id"), "the policy is not sealed");
        seen += 1;
    }
    assert!(seen >= 1);
    assert_eq!(
        &std::fs::read(dir.join("policy.evf")).unwrap()[..4],
        b"EVF1"
    );
    // Listing shows ids, never hashes or secrets.
    let listed = serde_json::to_string(&admin.list_principals().unwrap()).unwrap();
    assert!(listed.contains(&k.key_id));
    assert!(!listed.contains(&secret) && !listed.contains("argon2"));
}

/// A test double of an external identity service: one token, one
/// principal that may read and search table `t`.
#[derive(Debug)]
struct ExternalIdentity;

#[async_trait::async_trait]
impl hanzo_db::Authorizer for ExternalIdentity {
    fn enabled(&self) -> bool {
        true
    }
    async fn authenticate(
        &self,
        credential: &hanzo_db::Credential,
    ) -> hanzo_db::Result<hanzo_db::Principal> {
        let hanzo_db::Credential::ApiKey(token) = credential;
        if token == "token-ext" {
            Ok(hanzo_db::Principal {
                name: "ext".into(),
                key_id: None,
            })
        } else {
            Err(Error::PermissionDenied {
                principal: "anonymous".into(),
                operation: "authenticate".into(),
                table: None,
            })
        }
    }
    fn authorize(
        &self,
        principal: Option<&hanzo_db::Principal>,
        permission: Option<Permission>,
        table: Option<&str>,
    ) -> hanzo_db::access::Decision {
        use hanzo_db::access::Decision;
        match (principal, permission, table) {
            (Some(_), None | Some(Permission::Read | Permission::Search), Some("t")) => {
                Decision::Allow
            }
            _ => Decision::Deny,
        }
    }
}

#[tokio::test]
async fn an_external_authorizer_decides_every_call() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = connect_in(dir.path()).execute().await.unwrap();
        db.create_table(
            "t",
            TableSchema::new(3).field("ns", hanzo_db::FieldType::String),
        )
        .await
        .unwrap();
        db.insert("t", vec![rec("a1", "a", 0.1)]).await.unwrap();
    }
    let db = connect_in(dir.path())
        .authorizer(std::sync::Arc::new(ExternalIdentity))
        .execute()
        .await
        .unwrap();
    assert!(db.access_status().access_control);
    assert!(is_denied(&db.count("t", None).await));
    assert!(is_denied(&db.with_principal("wrong").await));
    let ext = db.with_principal("token-ext").await.unwrap();
    assert_eq!(ext.count("t", None).await.unwrap(), 1);
    assert!(is_denied(&ext.insert("t", vec![rec("a2", "a", 0.2)]).await));
    assert!(matches!(
        ext.create_principal("x", PrincipalSpec::role("admin", None)),
        Err(Error::InvalidArgument(_))
    ));
    // Audited like the built-in one.
    assert!(
        db.audit_log().is_err(),
        "the plain handle may not read the log"
    );
}
