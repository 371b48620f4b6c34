//! import → export → import in every format, byte-exact; flat memory on big imports.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::{Env, s, write_jsonl};

fn by_id(path: &std::path::Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn jsonl_and_parquet_round_trip_byte_exact() {
    let env = Env::new();
    let src = env.path("src.jsonl");
    write_jsonl(&src, 250, 16);
    env.json(&[
        "import",
        "a",
        s(&src),
        "--create",
        "--dim",
        "16",
        "--batch",
        "64",
    ]);
    let out1 = env.path("out1.jsonl");
    assert_eq!(env.json(&["export", "a", s(&out1)])["exported"], 250);
    assert_eq!(
        by_id(&src),
        by_id(&out1),
        "JSONL export equals the imported file"
    );

    let pq = env.path("out.parquet");
    env.json(&["export", "a", s(&pq)]);
    env.json(&["import", "b", s(&pq), "--create", "--dim", "16"]);
    let out2 = env.path("out2.jsonl");
    env.json(&["export", "b", s(&out2)]);
    assert_eq!(
        by_id(&src),
        by_id(&out2),
        "Parquet round trip keeps every byte"
    );
}

#[test]
fn csv_and_npy_import() {
    let env = Env::new();
    let csv = env.path("in.csv");
    std::fs::write(
        &csv,
        "id,vector,text,lang,score\nx1,\"[1,0,0]\",hello,en,0.5\nx2,0 1 0,bonjour,fr,2\n",
    )
    .unwrap();
    let doc = env.json(&["import", "c", s(&csv), "--create"]);
    assert_eq!(doc["imported"], 2);
    let got = env.json(&["get", "c", "x2"]);
    assert_eq!(got["metadata"]["lang"], "fr");
    assert_eq!(got["metadata"]["score"], 2);
    assert_eq!(got["vector"], serde_json::json!([0.0, 1.0, 0.0]));

    let npy = env.path("m.npy");
    let rows: Vec<Vec<f32>> = (0..40).map(|i| vec![i as f32, 1.0, -1.0, 0.25]).collect();
    write_npy(&npy, &rows);
    let ids = env.path("ids.txt");
    std::fs::write(
        &ids,
        (0..40).map(|i| format!("vec-{i}\n")).collect::<String>(),
    )
    .unwrap();
    env.json(&[
        "import",
        "n",
        s(&npy),
        "--create",
        "--ids",
        s(&ids),
        "--batch",
        "7",
    ]);
    let got = env.json(&["get", "n", "vec-39"]);
    assert_eq!(got["vector"], serde_json::json!([39.0, 1.0, -1.0, 0.25]));
    env.json(&["import", "n2", s(&npy), "--create"]);
    assert_eq!(env.json(&["get", "n2", "0"])["vector"][1], 1.0);
}

fn write_npy(path: &std::path::Path, rows: &[Vec<f32>]) {
    use std::io::Write;
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        rows[0].len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    for r in rows {
        for x in r {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

/// Peak resident memory (VmHWM) of the child, sampled until it exits.
fn peak_rss_kib(env: &Env, args: &[&str]) -> u64 {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hanzo-db"))
        .arg("--db")
        .arg(env.db())
        .env("HANZO_DB_KEY_DIR", env.dir.path().join("keys"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{args:?} failed");
            return peak;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_100k_row_import_keeps_memory_flat() {
    let env = Env::new();
    let small = env.path("small.jsonl");
    let big = env.path("big.jsonl");
    write_jsonl(&small, 10_000, 32);
    write_jsonl(&big, 100_000, 32);
    let small_peak = peak_rss_kib(
        &env,
        &[
            "import",
            "s",
            s(&small),
            "--create",
            "--dim",
            "32",
            "--batch",
            "5000",
        ],
    );
    let big_peak = peak_rss_kib(
        &env,
        &[
            "import",
            "b",
            s(&big),
            "--create",
            "--dim",
            "32",
            "--batch",
            "5000",
        ],
    );
    let file_kib = std::fs::metadata(&big).unwrap().len() / 1024;
    // Ten times the rows must not mean ten times the memory: growth stays
    // well under the file's size.
    assert!(
        big_peak < small_peak + file_kib / 2,
        "peak RSS grew from {small_peak} KiB to {big_peak} KiB for a {file_kib} KiB file"
    );
    assert_eq!(
        env.json(&["stats", "b"])["tables"][0]["stats"]["rows"],
        100_000
    );
}
