//! `--backend`: the everyday commands on SQLite and DuckDB, the config file's
//! choice of engine, and `bench --backend`.

use crate::common::{Env, s, write_jsonl};

fn everyday_commands(engine: &str) {
    let env = Env::new();
    let b = ["--backend", engine, "--no-encryption"];
    let with =
        |args: &[&str]| -> Vec<String> { b.iter().chain(args).map(|s| s.to_string()).collect() };
    let json = |args: &[&str]| {
        let a = with(args);
        env.json(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let file = env.path("in.jsonl");
    write_jsonl(&file, 90, 8); // under 97: no two records share a vector
    let doc = json(&[
        "import",
        "items",
        s(&file),
        "--create",
        "--dim",
        "8",
        "--field",
        "group:int",
    ]);
    assert_eq!(doc["imported"], 90);
    assert_eq!(json(&["tables"])["tables"][0]["rows"], 90);
    let q: Vec<f32> = (0..8)
        .map(|j| ((5 * 31 + j * 7) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let qs = serde_json::to_string(&q).unwrap();
    let res = json(&["search", "items", "--vector", &qs, "--k", "3"]);
    assert_eq!(res["results"][0]["id"], "r5", "{engine}: {res}");
    let res = json(&[
        "search",
        "items",
        "--vector",
        &qs,
        "--filter",
        r#"{"group": 3}"#,
        "--k",
        "5",
    ]);
    let hits = res["results"].as_array().unwrap();
    assert_eq!(hits.len(), 5, "{engine}: a selective filter still gives k");
    assert!(hits.iter().all(|h| h["metadata"]["group"] == 3));
    let got = json(&["get", "items", "r3", "--with-blobs"]);
    assert!(got["image_b64"].is_string(), "{engine}: {got}");
    assert_eq!(
        json(&["delete", "items", "--filter", r#"{"group": 9}"#])["deleted"],
        9
    );
    let out = env.path("out.jsonl");
    assert_eq!(json(&["export", "items", s(&out)])["exported"], 81);
    // The data is in the engine's one file; LanceDB sees no table there.
    let file_name = if engine == "sqlite" {
        "hanzo.sqlite"
    } else {
        "hanzo.duckdb"
    };
    assert!(env.db().join(file_name).is_file());
    assert_eq!(
        env.json(&["--no-encryption", "tables"])["tables"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Without --no-encryption the engine is refused with the way out named.
    let refused = env.run(&["--backend", engine, "tables"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--no-encryption"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Unsupported operations say so and exit 1.
    let args = with(&["index", "create", "items", "--type", "ivf_pq"]);
    let idx = env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(idx.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&idx.stderr).contains("not supported by the"));
}

#[test]
fn sqlite_backend_everyday_commands() {
    everyday_commands("sqlite");
}

#[test]
fn duckdb_backend_everyday_commands() {
    everyday_commands("duckdb");
}

#[test]
fn config_file_chooses_the_engine() {
    let env = Env::new();
    let cfg = env.path("hanzo.toml");
    std::fs::write(
        &cfg,
        "[backends]\nvectors = \"sqlite\"\n[security]\nencryption = false\n",
    )
    .unwrap();
    env.json(&["--config", s(&cfg), "create-table", "t", "--dim", "4"]);
    assert!(env.db().join("hanzo.sqlite").is_file());
    let tables = env.json(&["--config", s(&cfg), "tables"]);
    assert_eq!(tables["tables"][0]["name"], "t");
    let bad = env.run(&["--backend", "mongodb", "tables"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "unknown engines are usage errors"
    );
}

#[test]
fn bench_runs_on_sqlite_and_duckdb() {
    for engine in ["sqlite", "duckdb"] {
        let env = Env::new();
        let doc = env.json(&[
            "bench",
            "--backend",
            engine,
            "--n",
            "2000",
            "--dim",
            "16",
            "--queries",
            "20",
            "--gt-queries",
            "20",
            "--single-ms",
            "100",
            "--batch",
            "500",
        ]);
        assert_eq!(doc["params"]["backend"], engine);
        assert_eq!(doc["params"]["encrypted"], false);
        assert!(doc["index_build_s"].is_null(), "no index on {engine}");
        let notes = doc["notes"].to_string();
        assert!(
            notes.contains("skipped") && notes.contains("encrypt"),
            "{notes}"
        );
        assert!(doc["recall_at_k"].as_f64().unwrap() > 0.99, "exact search");
        assert!(doc["filtered_recall_at_k"].as_f64().unwrap() > 0.99);
        assert!(doc["insert_vps"].as_f64().unwrap() > 0.0);
        assert!(doc["disk_bytes"].as_f64().unwrap() > 0.0);
    }
}
