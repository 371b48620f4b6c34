//! The benchmark, small: every figure present and sane. No time assertions.

use serde_json::json;

use crate::common::Env;

#[test]
fn bench_smoke_reports_every_figure() {
    let env = Env::new();
    let doc = env.json(&[
        "bench",
        "--n",
        "10000",
        "--dim",
        "64",
        "--queries",
        "40",
        "--gt-queries",
        "40",
        "--single-ms",
        "300",
        "--batch",
        "2500",
    ]);
    for key in [
        "insert_vps",
        "single_insert_ps",
        "single_insert_8w_ps",
        "index_build_s",
        "query_p50_ms",
        "query_p95_ms",
        "query_p99_ms",
        "qps_8",
        "recall_at_k",
        "filtered_p50_ms",
        "filtered_recall_at_k",
        "cold_start_ms",
        "disk_bytes",
        "raw_bytes",
        "peak_rss_bytes",
        "params",
        "machine",
        "version",
    ] {
        assert!(!doc[key].is_null(), "missing {key}: {doc}");
    }
    for key in [
        "insert_vps",
        "single_insert_ps",
        "single_insert_8w_ps",
        "qps_8",
        "disk_bytes",
        "raw_bytes",
        "peak_rss_bytes",
    ] {
        assert!(doc[key].as_f64().unwrap() > 0.0, "{key}: {}", doc[key]);
    }
    let p = |k: &str| doc[k].as_f64().unwrap();
    assert!(p("query_p50_ms") <= p("query_p95_ms") && p("query_p95_ms") <= p("query_p99_ms"));
    assert!(p("recall_at_k") >= 0.9, "recall {}", p("recall_at_k"));
    assert!(
        p("filtered_recall_at_k") >= 0.9,
        "filtered recall {}",
        p("filtered_recall_at_k")
    );
    assert_eq!(doc["params"]["n"], 10000);
    assert!(doc["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(
        !env.db().join("bench").join("plain").exists(),
        "the bench cleans up"
    );

    let both = env.json(&[
        "bench",
        "--n",
        "2000",
        "--dim",
        "16",
        "--queries",
        "10",
        "--single-ms",
        "100",
        "--encrypted",
        "both",
        "--index",
        "none",
    ]);
    assert_eq!(both["encrypted"]["params"]["encrypted"], true);
    assert_eq!(both["plain"]["params"]["encrypted"], false);
    assert!(
        both["encrypted"]["recall_at_k"].as_f64().unwrap() > 0.99,
        "exact search without an index"
    );
}

#[test]
fn bench_reuse_times_a_kept_database_again() {
    let env = Env::new();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "bench",
            "--n",
            "3000",
            "--dim",
            "32",
            "--queries",
            "20",
            "--single-ms",
            "100",
            "--index",
            "auto",
            "--metric",
            "cosine",
        ];
        a.extend_from_slice(extra);
        a
    };
    // Nothing kept yet: a clear error, nothing created.
    let fails = |a: &[&str]| {
        let out = env.run(a);
        assert!(!out.status.success(), "{a:?} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = fails(&args(&["--reuse"]));
    assert!(err.contains("--keep"), "{err}");
    let first = env.json(&args(&["--keep"]));
    assert!(first["single_insert_ps"].as_f64().unwrap() > 0.0);
    let again = env.json(&args(&["--reuse"]));
    assert!(again["single_insert_ps"].is_null() && again["insert_vps"].is_null());
    assert_eq!(again["params"]["n"], 3000);
    assert!(again["index_build_s"].is_null());
    assert_eq!(again["params"]["index"], json!({"type": "auto"}), "{again}");
    // The same rows and ground truth: recall is measured on what was kept.
    assert!(again["recall_at_k"].as_f64().unwrap() > 0.9, "{again}");
    assert!(again["notes"].to_string().contains("reused"));
    // Other data parameters do not match what was kept.
    let mut other = args(&["--reuse"]);
    other[2] = "4000";
    assert!(fails(&other).contains("--keep"));
}
