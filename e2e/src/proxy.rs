//! A TCP proxy in front of the shared Prometheus that a test shuts and opens
//! again, so one test's Releases lose Prometheus while every other test
//! keeps it (point a Release at it with `spec.prometheus.address`).

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::operator::free_port;

/// A TCP proxy on a free local port that can be shut (listener and every
/// open connection dropped: connections are refused) and opened again on the
/// same port.
pub struct Proxy {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// A proxy to `upstream` (`host:port`), open.
    pub async fn start(upstream: String) -> Proxy {
        let p = Proxy {
            port: free_port().port(),
            upstream,
            tasks: Arc::default(),
        };
        p.open().await;
        p
    }

    /// A proxy to the shared Prometheus ([`crate::prometheus_url`]), open.
    pub async fn to_prometheus() -> Proxy {
        let upstream = crate::prometheus_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Proxy::start(upstream).await
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, for `spec.prometheus.address`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Listen again (after [`Proxy::close`]).
    pub async fn open(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy bind");
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stop listening and drop every open connection.
    pub fn close(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.close();
    }
}
