//! Principals, grants, roles and the audit log.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use hanzo_db::{Grant, Permission, PrincipalSpec};
use serde_json::json;

use super::Ctx;
use crate::args::{AuditCmd, GrantArgs, PrincipalCmd};
use crate::output::{DataError, table};

fn days(d: Option<u32>) -> Option<Duration> {
    d.map(|d| Duration::from_secs(u64::from(d) * 86_400))
}

fn scope(s: &Option<String>) -> anyhow::Result<Option<serde_json::Value>> {
    s.as_deref()
        .map(|s| {
            let v: serde_json::Value =
                serde_json::from_str(s).map_err(|e| anyhow::anyhow!("--scope is not JSON: {e}"))?;
            hanzo_db::Filter::parse(&v)?;
            Ok(v)
        })
        .transpose()
}

pub fn principal(ctx: &Ctx, cmd: PrincipalCmd) -> anyhow::Result<()> {
    match cmd {
        PrincipalCmd::Create {
            name,
            role,
            table,
            scope: sc,
            expires_days,
        } => {
            let mut spec = PrincipalSpec::role(&role, table.as_deref());
            if let Some(s) = scope(&sc)? {
                spec = spec.scope(s);
            }
            if let Some(d) = days(expires_days) {
                spec = spec.expires_in(d);
            }
            let key = ctx.db.create_principal(&name, spec)?;
            print_key(ctx, &key);
        }
        PrincipalCmd::Key { name, expires_days } => {
            let key = ctx.db.issue_api_key(&name, days(expires_days))?;
            print_key(ctx, &key);
        }
        PrincipalCmd::List => {
            let list = ctx.db.list_principals()?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    let grants: Vec<String> = p
                        .grants
                        .iter()
                        .map(|g| {
                            let mut what: Vec<String> = g.role.iter().cloned().collect();
                            what.extend(g.permissions.iter().map(|p| p.to_string()));
                            format!(
                                "{} on {}{}",
                                what.join("+"),
                                g.table.as_deref().unwrap_or("*"),
                                if g.scope.is_some() { " (scoped)" } else { "" }
                            )
                        })
                        .collect();
                    let keys = p.keys.iter().filter(|k| !k.revoked).count();
                    vec![
                        p.name.clone(),
                        if p.revoked { "revoked" } else { "active" }.into(),
                        grants.join(", "),
                        keys.to_string(),
                    ]
                })
                .collect();
            ctx.out.emit(&json!({"principals": list}), || {
                if list.is_empty() {
                    "no principals (access control is off)".into()
                } else {
                    table(&["PRINCIPAL", "STATE", "GRANTS", "LIVE KEYS"], &rows)
                }
            });
        }
        PrincipalCmd::Revoke { name, key } => {
            match (&name, &key) {
                (_, Some(k)) => ctx.db.revoke_api_key(k)?,
                (Some(n), None) => ctx.db.revoke_principal(n)?,
                (None, None) => anyhow::bail!("name a principal or --key KEYID"),
            }
            ctx.out
                .emit(&json!({"revoked": key.as_ref().or(name.as_ref())}), || {
                    format!("revoked {}", key.as_ref().or(name.as_ref()).expect("one"))
                });
        }
    }
    Ok(())
}

fn print_key(ctx: &Ctx, key: &hanzo_db::NewApiKey) {
    let doc = json!({
        "principal": key.principal,
        "api_key": key.api_key,
        "key_id": key.key_id,
        "expires_at": key.expires_at,
    });
    ctx.out.emit(&doc, || {
        format!(
            "principal {}\napi key   {}\n(shown once: store it now; only its hash is kept)",
            key.principal, key.api_key
        )
    });
}

fn permissions(a: &GrantArgs) -> anyhow::Result<BTreeSet<Permission>> {
    Ok(match &a.ops {
        Some(s) => Permission::parse_list(s)?,
        None => BTreeSet::new(),
    })
}

pub fn grant(ctx: &Ctx, a: GrantArgs) -> anyhow::Result<()> {
    let g = Grant {
        table: a.table.clone(),
        role: a.role.clone(),
        permissions: permissions(&a)?,
        scope: scope(&a.scope)?,
    };
    ctx.db.grant(&a.principal, g.clone())?;
    ctx.out
        .emit(&json!({"principal": a.principal, "granted": g}), || {
            format!("granted to {}", a.principal)
        });
    Ok(())
}

pub fn revoke(ctx: &Ctx, a: GrantArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.scope.is_none(), "--scope applies to grant only");
    let n = ctx.db.revoke_grant(
        &a.principal,
        a.table.as_deref(),
        a.role.as_deref(),
        &permissions(&a)?,
    )?;
    ctx.out.emit(
        &json!({"principal": a.principal, "grants_changed": n}),
        || format!("{n} grant(s) of {} changed", a.principal),
    );
    Ok(())
}

pub fn define_role(ctx: &Ctx, name: &str, ops: &str) -> anyhow::Result<()> {
    let perms = Permission::parse_list(ops)?;
    ctx.db.define_role(name, perms.clone())?;
    ctx.out
        .emit(&json!({"role": name, "permissions": perms}), || {
            format!("role {name} defined")
        });
    Ok(())
}

pub fn audit(ctx: &Ctx, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify => {
            let r = ctx.db.audit_verify()?;
            ctx.out.emit(&serde_json::to_value(&r)?, || {
                let mut out = vec![format!(
                    "{} entries in {} segment(s): {}",
                    r.entries,
                    r.segments.len(),
                    if r.ok { "OK" } else { "TAMPERED" }
                )];
                if let Some(b) = &r.first_bad {
                    out.push(format!("first bad: {b}"));
                }
                out.extend(r.notes.iter().map(|n| format!("note: {n}")));
                out.join("\n")
            });
            if let Some(b) = r.first_bad {
                return Err(DataError(format!("the audit log fails verification at {b}")).into());
            }
        }
        AuditCmd::Tail { n, since } => {
            let mut entries = ctx.db.audit_entries(since.as_deref())?;
            let skip = entries.len().saturating_sub(n);
            entries.drain(..skip);
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        e.time.clone(),
                        e.principal.clone().unwrap_or_else(|| "-".into()),
                        e.op.clone(),
                        e.table.clone().unwrap_or_else(|| "-".into()),
                        serde_json::to_value(e.outcome)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        e.rows.map(|r| r.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            ctx.out.emit(&json!({"entries": entries}), || {
                table(
                    &["SEQ", "TIME", "PRINCIPAL", "OP", "TABLE", "OUTCOME", "ROWS"],
                    &rows,
                )
            });
        }
        AuditCmd::Export { since, out } => {
            let entries = ctx.db.audit_entries(since.as_deref())?;
            let mut w: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::stdout().lock()),
            };
            for e in &entries {
                writeln!(w, "{}", serde_json::to_string(e)?)?;
            }
            w.flush()?;
            if let Some(p) = out {
                ctx.out.note(format!(
                    "{} entries written to {}",
                    entries.len(),
                    p.display()
                ));
            }
        }
        AuditCmd::Enable => {
            ctx.db.enable_audit()?;
            let st = ctx.db.access_status();
            ctx.out
                .emit(&serde_json::to_value(&st)?, || "audit log on".into());
        }
        AuditCmd::Retain { days } => {
            let log = ctx.db.audit_log()?;
            let dropped = log.apply_retention(Duration::from_secs(u64::from(days) * 86_400))?;
            ctx.out.emit(&json!({"dropped_segments": dropped}), || {
                format!("dropped {} segment(s)", dropped.len())
            });
        }
    }
    Ok(())
}
