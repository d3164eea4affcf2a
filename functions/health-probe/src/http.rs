//! HTTP(S) probes with `reqwest` over rustls: one client (one connection pool, kept
//! alive between probes and between invocations), a per-probe timeout, the expected
//! status and, when the spec asks, text the body must contain.
//!
//! HTTPS probes trust Mozilla's root programme compiled into the binary
//! (`webpki-root-certs`), not the system's certificate directory: loading and parsing
//! that at init was most of health-probe's cold start (README: Footprint). The crypto
//! provider is aws-lc-rs, the one the AWS SDK's client already links.

use std::time::{Duration, Instant};

use lifeboat::Error;
use lifeboat::model::Endpoint;

/// Bodies are read up to this size when looking for `body_contains`.
const MAX_BODY: usize = 64 * 1024;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// The URL probed.
    pub url: String,
    /// Whether the endpoint answered as expected.
    pub ok: bool,
    /// Time from sending to the end of the body (or to the failure).
    pub latency: Duration,
    /// Why it failed, in a few words.
    pub failure: Option<String>,
}

/// The prober: a `reqwest` client configured once.
#[derive(Debug, Clone)]
pub struct HttpProber {
    client: reqwest::Client,
}

impl HttpProber {
    /// A prober that keeps connections alive (the production setting).
    pub fn new() -> Result<HttpProber, Error> {
        HttpProber::with_keep_alive(true)
    }

    /// A prober that keeps connections alive or opens a new one for every probe
    /// (for the benchmark's comparison).
    pub fn with_keep_alive(keep_alive: bool) -> Result<HttpProber, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("lifeboat-health-probe/", env!("CARGO_PKG_VERSION")))
            // A health endpoint that redirects is answering with its redirect status.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .tls_certs_only(trust_anchors()?);
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        let client = builder
            .build()
            .map_err(|e| Error::InvalidInput(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpProber { client })
    }

    /// Probes one endpoint. Never fails: every failure is an outcome.
    pub async fn probe(&self, endpoint: &Endpoint) -> ProbeOutcome {
        let started = Instant::now();
        let timeout = Duration::from_millis(endpoint.timeout_ms);
        // One timer bounds the whole probe (connect, headers and body).
        let result = tokio::time::timeout(timeout, self.probe_inner(endpoint)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(_) => Some(format!("timed out after {} ms", endpoint.timeout_ms)),
        };
        ProbeOutcome {
            url: endpoint.url.clone(),
            ok: failure.is_none(),
            latency: started.elapsed(),
            failure: failure.map(|why| format!("GET {}: {why}", endpoint.url)),
        }
    }

    async fn probe_inner(&self, endpoint: &Endpoint) -> Result<(), String> {
        let mut response = self
            .client
            .get(&endpoint.url)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let mut body: Vec<u8> = Vec::new();
        // Read the whole (small) body so the connection goes back to the pool; stop at
        // MAX_BODY (the connection is then dropped, which is correct for a huge body).
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if endpoint.body_contains.is_some() && body.len() < MAX_BODY {
                body.extend_from_slice(&chunk);
            } else if body.len() >= MAX_BODY {
                break;
            }
        }
        if status != endpoint.expected_status {
            return Err(format!(
                "status {status}, expected {}",
                endpoint.expected_status
            ));
        }
        if let Some(needle) = &endpoint.body_contains
            && !contains(&body, needle.as_bytes())
        {
            return Err(format!("body does not contain {needle:?}"));
        }
        Ok(())
    }
}

/// The roots HTTPS probes trust: Mozilla's root programme, compiled in (no file system
/// access, no PEM decoding at init).
fn trust_anchors() -> Result<Vec<reqwest::Certificate>, Error> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| reqwest::Certificate::from_der(der))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::InvalidInput(format!("cannot load the root certificates: {e}")))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A short, stable description of a `reqwest` failure (no URL: the caller adds it).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "bad body"
    } else {
        "request failed"
    };
    let mut out = kind.to_owned();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_text_in_a_body() {
        assert!(contains(br#"{"status":"ok"}"#, br#""status":"ok""#));
        assert!(!contains(br#"{"status":"degraded"}"#, br#""status":"ok""#));
        assert!(contains(b"", b""));
        assert!(!contains(b"", b"x"));
    }

    #[test]
    fn builds_with_the_compiled_in_roots() {
        assert!(trust_anchors().is_ok_and(|roots| roots.len() > 100));
        assert!(HttpProber::new().is_ok());
    }
}
