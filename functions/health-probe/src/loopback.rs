//! A small HTTP/1.1 server on loopback whose answer a test can switch (status, body,
//! delay): one per Region in the integration tests, and the target of the benchmark.
//! Keep-alive and pipelining are honoured; `Connection: close` closes after the answer.
//! Built only with the `test-util` feature.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The answer, rendered once per change.
#[derive(Debug)]
struct Answer {
    keep_alive: Vec<u8>,
    close: Vec<u8>,
    delay: Duration,
}

fn render(status: u16, body: &str, delay: Duration) -> Answer {
    let reason = match status {
        200 => "OK",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = |conn: &str| {
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {conn}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    Answer {
        keep_alive: head("keep-alive"),
        close: head("close"),
        delay,
    }
}

#[derive(Debug)]
struct State {
    status: RwLock<(u16, String, Duration)>,
    answer: RwLock<Arc<Answer>>,
    hits: AtomicU64,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// The healthy body the example spec's `body_contains` looks for.
pub const HEALTHY_BODY: &str = r#"{"status":"ok"}"#;

impl LoopbackServer {
    /// Starts on a free loopback port, answering `200` with [`HEALTHY_BODY`].
    pub async fn start() -> std::io::Result<LoopbackServer> {
        LoopbackServer::start_on("127.0.0.1:0").await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: &str) -> std::io::Result<LoopbackServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            status: RwLock::new((200, HEALTHY_BODY.to_owned(), Duration::ZERO)),
            answer: RwLock::new(Arc::new(render(200, HEALTHY_BODY, Duration::ZERO))),
            hits: AtomicU64::new(0),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Ok(LoopbackServer { addr, state, task })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn update(&self, f: impl FnOnce(&mut (u16, String, Duration))) {
        let mut s = self.state.status.write().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        let answer = Arc::new(render(s.0, &s.1, s.2));
        *self.state.answer.write().unwrap_or_else(|p| p.into_inner()) = answer;
    }

    /// Answers `200` with the healthy body, at once.
    pub fn set_healthy(&self) {
        self.update(|s| *s = (200, HEALTHY_BODY.to_owned(), Duration::ZERO));
    }

    /// Answers with this status and body.
    pub fn set_answer(&self, status: u16, body: &str) {
        self.update(|s| {
            s.0 = status;
            s.1 = body.to_owned();
        });
    }

    /// Waits this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.update(|s| s.2 = delay);
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::Relaxed)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn wants_close(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines()
        .any(|l| l.starts_with("connection:") && l.contains("close"))
        || text.starts_with("get / http/1.0") && !text.contains("keep-alive")
}

async fn serve(mut stream: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete request in the buffer (pipelining), then read more.
        while let Some(end) = find_head_end(&buf) {
            let close = wants_close(&buf[..end]);
            buf.drain(..end);
            let answer = state
                .answer
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            state.hits.fetch_add(1, Ordering::Relaxed);
            if close {
                stream.write_all(&answer.close).await?;
                stream.shutdown().await?;
                return Ok(());
            }
            stream.write_all(&answer.keep_alive).await?;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
