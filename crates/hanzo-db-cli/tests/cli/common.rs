use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("hanzo-db").unwrap();
        c.arg("--db")
            .arg(self.db())
            .env_remove("HANZO_DB_PATH")
            .env("HANZO_DB_KEY_DIR", self.dir.path().join("keys"));
        c
    }
    /// Runs with `--json`, expects success, parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: bad JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Deterministic JSONL records with blobs and metadata.
pub fn write_jsonl(path: &Path, n: usize, dim: usize) {
    use base64::Engine;
    use std::io::Write;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let vector: Vec<f32> = (0..dim)
            .map(|j| ((i * 31 + j * 7) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let image: Vec<u8> = (0..(i % 50 + 1)).map(|k| ((i + k) % 256) as u8).collect();
        let mut rec = serde_json::json!({
            "id": format!("r{i}"),
            "vector": vector,
            "text": format!("record number {i} about {}", if i % 2 == 0 { "cats" } else { "cars" }),
            "metadata": {"group": i % 10, "kind": if i % 2 == 0 { "even" } else { "odd" }, "nested": {"x": i}},
        });
        if i % 3 == 0 {
            rec["image_b64"] = b64.encode(&image).into();
            rec["blobs"] = serde_json::json!([{"mime": "application/pdf", "data_b64": b64.encode([0u8, 255, i as u8])}]);
        }
        writeln!(f, "{rec}").unwrap();
    }
}
