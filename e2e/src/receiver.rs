//! A webhook receiver in the test process: an HTTP server on 127.0.0.1 that
//! records the body of every POST it answers with success, in the order they
//! came, by path (one receiver can stand for several: `/chat`, `/audit`).
//! It can be told to answer 500, to hang (take a request and never answer),
//! or to go down (refuse connections) and come back on the same port.
//!
//! No HTTP crate: the operator's client sends one `content-length` body per
//! request, which is all this reads.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{Look, poll};

/// One request the receiver answered with success.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct State {
    received: Vec<Received>,
    /// Requests answered with an error (see [`Receiver::answer`]).
    refused: usize,
    /// The status to answer with.
    status: u16,
    /// Take requests and never answer them.
    hang: bool,
}

/// See the module documentation. Stops listening when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listen on a free port of 127.0.0.1, answering 200.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let state = Arc::new(Mutex::new(State {
            status: 200,
            ..State::default()
        }));
        let server = Some(tokio::spawn(serve(listener, state.clone())));
        Receiver {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:<port><path>`, e.g. `url("/chat")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer every request from now on with `status` (e.g. 500); a
    /// request answered with anything but 2xx is counted, not recorded.
    pub fn answer(&self, status: u16) {
        self.lock().status = status;
    }

    /// From now on take each request and never answer it (the connection
    /// stays open): a receiver that is slow beyond any timeout.
    pub fn hang(&self) {
        self.lock().hang = true;
    }

    /// Stop listening: connections are refused until [`Receiver::up`].
    pub fn down(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Listen again on the same port.
    pub async fn up(&mut self) {
        if self.server.is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("binding the receiver again on {}: {e}", self.addr));
        self.server = Some(tokio::spawn(serve(listener, self.state.clone())));
    }

    /// Every request answered with success, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The bodies received on `path`, in order.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.lock()
            .received
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.body.clone())
            .collect()
    }

    /// How many requests were answered with an error.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    /// Wait until `path` has received at least `n` bodies; returns them all.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Value> {
        poll(
            &format!("the receiver to get {n} bodies on {path}"),
            timeout,
            Duration::from_millis(50),
            || {
                let got = self.bodies(path);
                async move {
                    if got.len() >= n {
                        Look::Done(got)
                    } else {
                        Look::NotYet(format!("got {}: {got:#?}", got.len()))
                    }
                }
            },
        )
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// A URL on 127.0.0.1 where nothing listens: every connection is refused.
pub fn refusing_url(path: &str) -> String {
    format!("http://{}{path}", crate::operator::free_port())
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer(stream, state.clone()));
    }
}

/// Read one request, record it, answer, close.
async fn answer(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..head_end + length];
    if state.lock().unwrap_or_else(|e| e.into_inner()).hang {
        std::future::pending::<()>().await;
    }
    let status = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let status = s.status;
        if (200..300).contains(&status) {
            let body = serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).to_string()));
            s.received.push(Received { path, body });
        } else {
            s.refused += 1;
        }
        status
    };
    let reply = format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        if status < 300 { "OK" } else { "Error" }
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
