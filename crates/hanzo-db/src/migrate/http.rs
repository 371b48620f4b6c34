//! The one HTTP client of the REST sources: JSON in and out, auth headers,
//! retries with back-off on 429/502/503/504 honouring `Retry-After`, and
//! transport and status errors mapped into [`Error`] variants.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::{Error, Result};

/// How a REST source retries when rate-limited or briefly unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (429, 502, 503, 504); connection
    /// failures are retried at most twice.
    pub max_retries: u32,
    /// First back-off delay when the server sends no `Retry-After`; doubles each retry.
    pub base_delay: Duration,
    /// Longest wait, whatever `Retry-After` asks for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
        d.min(self.max_delay)
    }
}

/// A JSON REST client bound to one base URL.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    store: &'static str,
    headers: Vec<(String, String)>,
    retry: RetryPolicy,
}

impl Http {
    /// A client for `base` (trailing `/` removed) sending these headers on every request.
    pub fn new(
        store: &'static str,
        base: &str,
        headers: Vec<(String, String)>,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidArgument(format!(
                "the {store} URL `{base}` must start with http:// or https://"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::SourceUnreachable {
                store: store.into(),
                url: base.clone(),
                reason: chain(&e),
            })?;
        Ok(Self {
            client,
            base,
            store,
            headers,
            retry,
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET base+path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, String)], op: &str) -> Result<Value> {
        self.request(Method::GET, path, query, None, op).await
    }

    /// `POST base+path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value, op: &str) -> Result<Value> {
        self.request(Method::POST, path, &[], Some(body), op).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        op: &str,
    ) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut attempt: u32 = 0;
        loop {
            let mut rb = self.client.request(method.clone(), &url);
            for (k, v) in &self.headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            if !query.is_empty() {
                rb = rb.query(query);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    if (e.is_connect() || e.is_timeout()) && attempt < self.retry.max_retries.min(2)
                    {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::SourceUnreachable {
                        store: self.store.into(),
                        url: self.base.clone(),
                        reason: chain(&e),
                    });
                }
            };
            let status = resp.status();
            let retry_after = retry_after(resp.headers());
            let bytes = resp.bytes().await.map_err(|e| Error::SourceRequest {
                store: self.store.into(),
                operation: op.into(),
                status: Some(status.as_u16()),
                message: format!("the response body could not be read: {}", chain(&e)),
            })?;
            if status.is_success() {
                return serde_json::from_slice(&bytes).map_err(|e| Error::SourceRequest {
                    store: self.store.into(),
                    operation: op.into(),
                    status: Some(status.as_u16()),
                    message: format!(
                        "the response is not valid JSON ({e}): {}",
                        clip_bytes(&bytes)
                    ),
                });
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(Error::SourceAuth {
                    store: self.store.into(),
                    url: self.base.clone(),
                    status: format!("HTTP {}", status.as_u16()),
                    message: error_message(&bytes),
                });
            }
            let transient = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::GATEWAY_TIMEOUT
            );
            if transient && attempt < self.retry.max_retries {
                let wait = retry_after
                    .unwrap_or_else(|| self.retry.backoff(attempt))
                    .min(self.retry.max_delay);
                tracing::warn!(
                    store = self.store,
                    op,
                    status = status.as_u16(),
                    ?wait,
                    "retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            let mut message = error_message(&bytes);
            if transient {
                message = format!("{message} (gave up after {attempt} retries)");
            }
            return Err(Error::SourceRequest {
                store: self.store.into(),
                operation: op.into(),
                status: Some(status.as_u16()),
                message,
            });
        }
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Retry-After` header as a delay: delta-seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The message in an error body, whatever the store's shape: Qdrant
/// `{"status":{"error":..}}`, Pinecone `{"message":..}` or a bare string,
/// Weaviate `{"error":[{"message":..}]}`, Chroma `{"error":..,"message":..}`.
fn error_message(bytes: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return clip_bytes(bytes);
    };
    let candidates = [
        v.pointer("/status/error"),
        v.pointer("/message"),
        v.pointer("/error/0/message"),
        v.pointer("/error"),
    ];
    for c in candidates.into_iter().flatten() {
        if let Some(s) = c.as_str() {
            return s.to_string();
        }
    }
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    super::clip(&v)
}

fn clip_bytes(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(299).collect::<String>())
    } else if s.is_empty() {
        "(empty body)".into()
    } else {
        s.into_owned()
    }
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_error_shape() {
        assert_eq!(
            error_message(br#"{"status":{"error":"Wrong input: x"},"time":1.0}"#),
            "Wrong input: x"
        );
        assert_eq!(
            error_message(br#"{"code":5,"message":"Namespace not found","details":[]}"#),
            "Namespace not found"
        );
        assert_eq!(error_message(br#""Unauthorized""#), "Unauthorized");
        assert_eq!(
            error_message(br#"{"error":[{"message":"class not found"}]}"#),
            "class not found"
        );
        assert_eq!(
            error_message(br#"{"error":"NotFoundError","message":"no such collection"}"#),
            "no such collection"
        );
        assert_eq!(error_message(b"plain text"), "plain text");
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(
            reqwest::header::RETRY_AFTER,
            later.to_rfc2822().replace("+0000", "GMT").parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(250));
        assert_eq!(p.backoff(2), Duration::from_secs(1));
        assert_eq!(p.backoff(40), p.max_delay);
    }
}
