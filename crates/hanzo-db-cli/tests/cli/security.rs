//! Encryption status, key rotation and wrong keys through the CLI.

use crate::common::{Env, s};

#[test]
fn status_rotation_and_wrong_keys() {
    let env = Env::new();
    env.json(&["create-table", "t", "--dim", "2"]);
    let f = env.path("a.jsonl");
    std::fs::write(&f, "{\"id\":\"a\",\"vector\":[1,2],\"text\":\"hello\"}\n").unwrap();
    env.json(&["import", "t", s(&f)]);

    let st = env.json(&["security", "status"]);
    assert_eq!(st["is_encrypted"], true);
    assert_eq!(st["cipher"], "AES-256-GCM");
    assert_eq!(st["key_provider"]["kind"], "key-file");
    assert_eq!(st["effective"], "Zero", "no TEE on this machine: {st}");
    let human = env.run(&["security", "status"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("encrypted at rest: yes"));

    let rotated = env.json(&["key", "rotate", "--data-key"]);
    assert!(rotated["key_id"].is_string());
    let newkey = env.path("new.key");
    env.json(&["key", "rotate", "--new-key-file", s(&newkey)]);
    // The default key no longer opens it; the new file does.
    let out = env.run(&["tables"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("security"));
    let t = env.json(&["--key-file", s(&newkey), "get", "t", "a"]);
    assert_eq!(t["text"], "hello");

    // Passphrase from an environment variable.
    let out = env
        .cmd()
        .args([
            "--key-file",
            s(&newkey),
            "key",
            "rotate",
            "--new-passphrase-env",
            "HDB_PASS",
        ])
        .env("HDB_PASS", "a long test passphrase")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd()
        .args(["--json", "--passphrase-env", "HDB_PASS", "get", "t", "a"])
        .env("HDB_PASS", "a long test passphrase")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd()
        .args(["--passphrase-env", "HDB_PASS", "get", "t", "a"])
        .env("HDB_PASS", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // An explicit opt-out database says so.
    let plain = Env::new();
    plain.json(&["--no-encryption", "create-table", "p", "--dim", "2"]);
    let st = plain.json(&["--no-encryption", "security", "status"]);
    assert_eq!(st["is_encrypted"], false);
    assert_eq!(
        plain.run(&["tables"]).status.code(),
        Some(1),
        "mode mismatch is refused"
    );
}
