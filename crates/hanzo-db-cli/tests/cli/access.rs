//! Principals, grants, `--api-key-env` and the audit log from the command line.

use serde_json::Value;

use crate::common::{Env, s, write_jsonl};

/// Runs as the principal whose key is given, with `--json`.
fn as_key(env: &Env, key: &str, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env("HDB_TEST_KEY", key)
        .args(["--api-key-env", "HDB_TEST_KEY", "--json"])
        .args(args)
        .output()
        .unwrap()
}

fn ok_json(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn principals_grants_and_audit_from_the_command_line() {
    let env = Env::new();
    let data = env.path("d.jsonl");
    write_jsonl(&data, 20, 4);
    env.json(&["import", "t", s(&data), "--create"]);
    let st = env.json(&["security", "status"]);
    assert_eq!(st["access"]["access_control"], false);

    // The first principal must be an admin.
    let out = env.run(&["principal", "create", "r0", "--role", "reader"]);
    assert_eq!(out.status.code(), Some(1));
    let root = env.json(&["principal", "create", "root", "--role", "admin"]);
    assert_eq!(root["principal"], "root");
    let admin = root["api_key"].as_str().unwrap().to_string();
    assert!(admin.starts_with("hdb_"));

    // Now the plain handle is refused, and the admin's key works.
    let out = env.run(&["tables"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    let tables = ok_json(as_key(&env, &admin, &["tables"]));
    assert_eq!(tables["tables"][0]["name"], "t");
    let st = ok_json(as_key(&env, &admin, &["security", "status"]));
    assert_eq!(st["access"]["access_control"], true);
    assert_eq!(st["access"]["principal"], "root");

    // A reader on one table: search yes, import no.
    let r = ok_json(as_key(
        &env,
        &admin,
        &[
            "principal",
            "create",
            "agent",
            "--role",
            "reader",
            "--table",
            "t",
        ],
    ));
    let reader = r["api_key"].as_str().unwrap().to_string();
    let hits = ok_json(as_key(
        &env,
        &reader,
        &["search", "t", "--vector", "[0.1,0.2,0.3,0.4]", "--k", "3"],
    ));
    assert!(hits.to_string().contains("\"id\""));
    let out = as_key(&env, &reader, &["import", "t", s(&data)]);
    assert_eq!(out.status.code(), Some(1));
    // Granting write lets it import; revoking takes it back.
    ok_json(as_key(
        &env,
        &admin,
        &["grant", "agent", "--ops", "write", "--table", "t"],
    ));
    let more = env.path("more.jsonl");
    std::fs::write(&more, "{\"id\":\"new1\",\"vector\":[0,0,0,1]}\n").unwrap();
    ok_json(as_key(&env, &reader, &["import", "t", s(&more)]));
    ok_json(as_key(
        &env,
        &admin,
        &["revoke", "agent", "--ops", "write", "--table", "t"],
    ));
    assert_eq!(
        as_key(&env, &reader, &["import", "t", s(&more)])
            .status
            .code(),
        Some(1)
    );

    // Listing shows key ids, never keys.
    let list = ok_json(as_key(&env, &admin, &["principal", "list"]));
    assert_eq!(list["principals"].as_array().unwrap().len(), 2);
    let text = list.to_string();
    assert!(!text.contains(&reader) && !text.contains(&admin));
    // Revoking the principal refuses its key.
    ok_json(as_key(&env, &admin, &["principal", "revoke", "agent"]));
    assert_eq!(as_key(&env, &reader, &["tables"]).status.code(), Some(1));

    // The audit log holds it all, denials included, and verifies.
    let tail = ok_json(as_key(&env, &admin, &["audit", "tail", "-n", "500"]));
    let entries = tail["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "denied" && e["principal"] == "agent")
    );
    assert!(entries.iter().any(|e| e["op"] == "grant"));
    assert!(!tail.to_string().contains(&reader));
    let v = ok_json(as_key(&env, &admin, &["audit", "verify"]));
    assert_eq!(v["ok"], true);
    let export = as_key(&env, &admin, &["audit", "export", "--since", "2000-01-01"]);
    assert!(export.status.success());
    let lines = String::from_utf8_lossy(&export.stdout);
    assert!(lines.lines().count() >= entries.len());
    for l in lines.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    // A reader may not read the log.
    assert_eq!(
        as_key(&env, &reader, &["audit", "tail"]).status.code(),
        Some(1)
    );

    // Tampering makes verify fail with a non-zero status.
    let seg = env.db().join(".hanzo/audit/00000001.hal");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[200] ^= 0x04;
    std::fs::write(&seg, bytes).unwrap();
    let out = as_key(&env, &admin, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["first_bad"]["seq"].is_u64());
}
