//! The demo and the everyday commands, with `--json` output checked.

use crate::common::{Env, s, write_jsonl};

#[test]
fn demo_runs_and_finds_sensible_results() {
    let env = Env::new();
    let doc = env.json(&["demo"]);
    assert_eq!(doc["records"], 18);
    assert_eq!(doc["image_round_trip_byte_exact"], true);
    assert_eq!(doc["security"]["is_encrypted"], true);
    let first = &doc["vector_search"]["results"][0];
    assert!(
        first["text"].as_str().unwrap().contains("bicycle"),
        "{first}"
    );
    for r in doc["filtered_search"]["results"].as_array().unwrap() {
        assert_eq!(r["metadata"]["category"], "animals");
        assert!(r["metadata"]["year"].as_i64().unwrap() >= 2021);
    }
    let hybrid = &doc["hybrid_search"]["results"][0];
    assert!(
        hybrid["text"].as_str().unwrap().contains("strawberries"),
        "{hybrid}"
    );
    // Human output too.
    let out = env.run(&["demo"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Vector search") && text.contains("Hybrid search"),
        "{text}"
    );
}

#[test]
fn tables_search_get_delete_versions_stats() {
    let env = Env::new();
    let file = env.path("in.jsonl");
    write_jsonl(&file, 300, 8);
    let doc = env.json(&[
        "import",
        "items",
        s(&file),
        "--create",
        "--dim",
        "8",
        "--field",
        "group:int",
        "--batch",
        "100",
    ]);
    assert_eq!(doc["imported"], 300);
    let tables = env.json(&["tables"]);
    assert_eq!(tables["tables"][0]["name"], "items");
    assert_eq!(tables["tables"][0]["rows"], 300);

    let q: Vec<f32> = (0..8)
        .map(|j| ((5 * 31 + j * 7) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let qs = serde_json::to_string(&q).unwrap();
    let res = env.json(&["search", "items", "--vector", &qs, "--k", "5"]);
    assert_eq!(res["results"][0]["id"], "r5");
    assert!(res["took_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(res["results"].as_array().unwrap().len(), 5);

    let res = env.json(&[
        "search",
        "items",
        "--vector",
        &qs,
        "--filter",
        r#"{"group": 3, "nested.x": {"$gt": 100}}"#,
    ]);
    for r in res["results"].as_array().unwrap() {
        assert_eq!(r["metadata"]["group"], 3);
        assert!(r["metadata"]["nested"]["x"].as_i64().unwrap() > 100);
    }
    env.json(&["index", "create", "items", "--type", "fts"]);
    let res = env.json(&["search", "items", "--text", "cats", "--k", "3"]);
    assert_eq!(res["results"].as_array().unwrap().len(), 3);
    let res = env.json(&[
        "search", "items", "--vector", &qs, "--text", "cars", "--k", "4",
    ]);
    assert_eq!(res["results"].as_array().unwrap().len(), 4);

    let got = env.json(&["get", "items", "r3", "--with-blobs"]);
    assert_eq!(got["id"], "r3");
    assert!(got["image_b64"].is_string());
    let outdir = env.path("blobs");
    let got = env.json(&["get", "items", "r3", "--out-dir", s(&outdir)]);
    assert_eq!(got["files"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read(outdir.join("r3.blob0.pdf")).unwrap(),
        vec![0u8, 255, 3]
    );

    let del = env.json(&["delete", "items", "--id", "r1", "--id", "r2"]);
    assert_eq!(del["deleted"], 2);
    let del = env.json(&["delete", "items", "--filter", r#"{"group": 9}"#]);
    assert_eq!(del["deleted"], 30);

    let versions = env.json(&["versions", "items"]);
    let vs = versions["versions"].as_array().unwrap();
    let first_data = vs[1]["version"].as_u64().unwrap();
    env.json(&["tag", "items", &first_data.to_string(), "first_batch"]);
    let old = env.json(&[
        "search",
        "items",
        "--vector",
        &qs,
        "--k",
        "500",
        "--version",
        &first_data.to_string(),
    ]);
    assert_eq!(old["results"].as_array().unwrap().len(), 100);
    let restored = env.json(&["restore", "items", &first_data.to_string()]);
    assert!(restored["version"].as_u64().unwrap() > first_data);
    let stats = env.json(&["stats", "items"]);
    assert_eq!(stats["tables"][0]["stats"]["rows"], 100);
    env.json(&["compact", "items"]);
    let idx = env.json(&["index", "list", "items"]);
    assert!(idx["indexes"].is_array());
    env.json(&["drop-table", "items"]);
    assert_eq!(env.json(&["tables"])["tables"].as_array().unwrap().len(), 0);
}
