//! Shared set-up of the migration tests: the real servers scripts/test.sh
//! starts (PostgreSQL + pgvector, Chroma), and the HTTP test doubles of the
//! SaaS stores (tests/doubles/*_double.py, Python standard library only).
//!
//! A service that is not available fails the test under `CI=true` and skips
//! it otherwise, saying why on stderr.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hanzo_db::migrate::RetryPolicy;
use serde_json::Value;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing service: panics under CI, prints the skip otherwise.
pub fn unavailable(what: &str, why: &str) {
    if ci() {
        panic!("{what} is not available and CI=true: {why}");
    }
    eprintln!("SKIPPED: {what} is not available ({why}); scripts/test.sh starts it");
}

fn service(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            unavailable(what, &format!("{var} is not set"));
            None
        }
    }
}

/// The test PostgreSQL (with pgvector) URL.
pub fn pg_url() -> Option<String> {
    service("HANZO_DB_TEST_PG_URL", "PostgreSQL with pgvector")
}

/// The test Chroma server URL.
pub fn chroma_url() -> Option<String> {
    service("HANZO_DB_TEST_CHROMA_URL", "Chroma")
}

/// Quick retries so that tests do not wait on back-off (Retry-After is still honoured).
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
    }
}

/// A unique suffix for names in shared servers.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    format!(
        "{prefix}_{}_{:08x}",
        std::process::id(),
        rand::thread_rng().r#gen::<u32>()
    )
}

/// One running test double (killed on drop).
pub struct Double {
    child: Child,
    pub url: String,
    _fixture: tempfile::TempDir,
}

impl Double {
    /// Starts `tests/doubles/<script>` on a free loopback port with this fixture.
    pub fn start(script: &str, fixture: &Value) -> Option<Double> {
        let path = format!("{}/tests/doubles/{script}", env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture_path = dir.path().join("fixture.json");
        std::fs::write(&fixture_path, serde_json::to_vec(fixture).unwrap()).unwrap();
        let child = Command::new("python3")
            .arg("-B")
            .arg(&path)
            .arg(&fixture_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                unavailable("python3 (runs the HTTP test doubles)", &e.to_string());
                return None;
            }
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the double's port");
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} did not print its port: {line:?}"));
        Some(Double {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _fixture: dir,
        })
    }

    /// Requests per path and faults injected so far.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__double__/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Replaces the double's data (e.g. to repair a bad record).
    pub async fn set_fixture(&self, fixture: &Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/__double__/fixture", self.url))
            .json(fixture)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic float32 values with short exact decimal forms (k/64), so
/// JSON round trips cannot blur them.
pub fn dyadic_vector(seed: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| (((seed * 31 + j * 17) % 257) as f32 - 128.0) / 64.0)
        .collect()
}

/// Bitwise vector equality.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
