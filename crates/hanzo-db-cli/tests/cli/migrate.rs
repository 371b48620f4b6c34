//! `hanzo-db migrate`: the streaming, kill-midway, resume and verify run on
//! a real PostgreSQL + pgvector (200,000 rows rather than a million, to keep
//! the suite's time sane on small machines), the dry run, and argument errors.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Env, s};

const ROWS: u64 = 200_000;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test PostgreSQL URL and its psql, or a skip (a failure under CI).
fn postgres() -> Option<(String, String)> {
    let url = std::env::var("HANZO_DB_TEST_PG_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let psql = std::env::var("HANZO_DB_TEST_PG_BIN")
        .map(|b| format!("{b}/psql"))
        .unwrap_or_else(|_| "psql".into());
    match url {
        Some(u) => Some((u, psql)),
        None => {
            assert!(
                !ci(),
                "PostgreSQL with pgvector is not available and CI=true"
            );
            eprintln!(
                "SKIPPED: PostgreSQL with pgvector is not available (HANZO_DB_TEST_PG_URL is not set; scripts/test.sh starts it)"
            );
            None
        }
    }
}

fn psql(psql: &str, url: &str, sql: &str) {
    let out = Command::new(psql)
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {psql}: {e}"));
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn checkpoint(path: &std::path::Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[test]
fn migrate_pgvector_200k_rows_killed_midway_resumes_and_verifies() {
    let Some((url, psql_bin)) = postgres() else {
        return;
    };
    let schema = format!("mig_big_{}", std::process::id());
    psql(
        &psql_bin,
        &url,
        &format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.big (id bigint PRIMARY KEY, embedding vector(16), meta jsonb);
             INSERT INTO {schema}.big
             SELECT g,
                    (SELECT array_agg(((g * 31 + j * 7) % 97) / 97.0 - 0.5 ORDER BY j)
                       FROM generate_series(1, 16) j)::real[]::vector,
                    jsonb_build_object('g', g, 'even', g % 2 = 0)
             FROM generate_series(1, {ROWS}) g;"
        ),
    );
    let env = Env::new();
    let cp = env.path("big.checkpoint.json");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "migrate",
            "pgvector",
            "--pg-url",
            url.as_str(),
            "--pg-schema",
            schema.as_str(),
            "--table",
            "big=big",
            "--batch",
            "2000",
            "--metric",
            "cosine",
            "--checkpoint",
            s(&cp),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };

    // The plan first: nothing written.
    let plan = env.json(
        &args(&["--dry-run"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["plan"][0]["dimension"], 16);
    assert_eq!(plan["plan"][0]["count"], ROWS);
    assert_eq!(plan["plan"][0]["metric"], "cosine");
    assert!(!cp.exists(), "a dry run writes no checkpoint");

    // Start, and kill the process once a few batches are committed.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("hanzo-db"))
        .arg("--db")
        .arg(env.db())
        .env_remove("HANZO_DB_PATH")
        .env("HANZO_DB_KEY_DIR", env.path("keys"))
        .args(args(&[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed_at = None;
    while Instant::now() < deadline {
        if let Some(c) = checkpoint(&cp) {
            let m = c["tables"]["big"]["migrated"].as_u64().unwrap_or(0);
            if m >= 6000 {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .unwrap_or_default();
                let peak = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM"))
                    .unwrap_or("");
                eprintln!(
                    "migrate pgvector: killed after {m} rows committed; peak RSS so far {peak}"
                );
                child.kill().unwrap();
                killed_at = Some(m);
                break;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the migration ended ({status}) before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed_at = killed_at.expect("no checkpoint progress within 300 s");
    child.wait().unwrap();
    let saved = checkpoint(&cp).expect("the checkpoint survives the kill");
    let before = saved["tables"]["big"]["migrated"].as_u64().unwrap();
    assert!(before >= killed_at && before < ROWS, "{saved}");
    assert_eq!(saved["tables"]["big"]["done"], false);

    // Without --resume the interrupted checkpoint is refused (exit 1), not overwritten.
    let out = env.run(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    let done = env.json(
        &args(&["--resume"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let t = &done["tables"][0];
    assert_eq!(t["resumed"], true);
    assert_eq!(t["total_migrated"], ROWS);
    let this_run = t["migrated"].as_u64().unwrap();
    assert!(
        this_run <= ROWS - before + 2000,
        "resumed from the checkpoint, not from the start: {this_run}"
    );
    let v = &t["verification"];
    assert_eq!(v["counts_match"], true, "{v}");
    assert_eq!(v["target_count"], ROWS);
    assert_eq!(v["differing"], 0, "{v}");
    assert!(v["sampled"].as_u64().unwrap() >= 100, "{v}");
    eprintln!(
        "migrate pgvector: {} rows resumed in {:.1} s = {:.0} rows/s (copy), verification {:.1} s",
        this_run,
        done["copy_secs"].as_f64().unwrap(),
        done["rows_per_sec"].as_f64().unwrap(),
        done["verify_secs"].as_f64().unwrap()
    );
    let stats = env.json(&["stats", "big"]);
    assert!(stats.to_string().contains("200000"), "{stats}");
    psql(&psql_bin, &url, &format!("DROP SCHEMA {schema} CASCADE"));
}

#[test]
fn migrate_argument_errors_are_clear() {
    let env = Env::new();
    let out = env.run(&["migrate", "qdrant"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --url"));

    let out = env.run(&[
        "migrate",
        "pinecone",
        "--url",
        "http://127.0.0.1:9",
        "--source-api-key-env",
        "HANZO_DB_TEST_SURELY_UNSET_VAR",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HANZO_DB_TEST_SURELY_UNSET_VAR"));

    let out = env.run(&["migrate", "chroma", "--url", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the chroma source"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    let out = env.run(&["migrate", "mongo"]);
    assert_eq!(out.status.code(), Some(2), "unknown store: a usage error");
}
