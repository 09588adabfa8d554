//! The operator's own HTTP endpoints: `/metrics` (OpenMetrics), `/healthz`
//! (liveness: the process serves) and `/readyz` (readiness).
//!
//! Readiness follows leadership: the leader is ready once its Release cache has
//! synced, a follower is ready while it stands by (it must be, or a rolling
//! update of a two-replica Deployment would never finish).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// Where this replica stands, as `/readyz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Leading (or not electing) but the Release cache has not synced yet.
    Syncing = 0,
    /// Another replica leads; this one waits to take over.
    Standby = 1,
    /// Leading with a synced cache: reconciling.
    Ready = 2,
}

/// Shared, cheap-to-clone readiness flag.
#[derive(Clone, Debug)]
pub struct Probe(Arc<AtomicU8>);

impl Default for Probe {
    fn default() -> Self {
        Probe(Arc::new(AtomicU8::new(Readiness::Syncing as u8)))
    }
}

impl Probe {
    pub fn set(&self, r: Readiness) {
        self.0.store(r as u8, Ordering::Release);
    }

    pub fn get(&self) -> Readiness {
        match self.0.load(Ordering::Acquire) {
            1 => Readiness::Standby,
            2 => Readiness::Ready,
            _ => Readiness::Syncing,
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

fn route(req: &Request<Incoming>, metrics: &Metrics, probe: &Probe) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
    }
    match req.uri().path() {
        "/metrics" => respond(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, metrics.encode()),
        "/healthz" | "/livez" => respond(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => match probe.get() {
            Readiness::Ready => respond(StatusCode::OK, TEXT, "ok\n"),
            Readiness::Standby => respond(
                StatusCode::OK,
                TEXT,
                "standby: another replica holds the lease\n",
            ),
            Readiness::Syncing => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "not ready: the Release cache has not synced yet\n",
            ),
        },
        _ => respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics, /healthz or /readyz\n",
        ),
    }
}

/// Bind `addr` now (so a taken port fails at startup) and return the server
/// future, which runs until dropped.
pub async fn bind(
    addr: SocketAddr,
    metrics: Metrics,
    probe: Probe,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let serve = async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a probe/metrics connection");
                    continue;
                }
            };
            let (metrics, probe) = (metrics.clone(), probe.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let resp = route(&req, &metrics, &probe);
                    async move { Ok::<_, Infallible>(resp) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "probe/metrics connection ended");
                }
            });
        }
    };
    Ok((local, serve))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out.split(' ').nth(1).unwrap().parse().unwrap();
        (code, out)
    }

    #[tokio::test]
    async fn serves_metrics_and_probes() {
        let metrics = Metrics::new();
        metrics.failed("kube");
        let probe = Probe::default();
        let (addr, serve) = bind("127.0.0.1:0".parse().unwrap(), metrics, probe.clone())
            .await
            .unwrap();
        let server = tokio::spawn(serve);

        let (code, body) = get(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("application/openmetrics-text"), "{body}");
        assert!(
            body.contains(r#"signalman_reconcile_errors_total{kind="kube"} 1"#),
            "{body}"
        );

        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("has not synced"), "{body}");
        probe.set(Readiness::Standby);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        probe.set(Readiness::Ready);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/nope").await.0, 404);
        server.abort();
    }
}
