//! The operator's own HTTP endpoints: `/metrics` (OpenMetrics), `/healthz`
//! (liveness) and `/readyz` (readiness).
//!
//! Liveness is the controller loop making progress, so that Kubernetes
//! restarts a loop that is stuck instead of leaving it silently idle: it fails
//! when one of the controller's watches has kept failing for longer than the
//! stall timeout (`--stall-timeout`) without being re-established, or when a
//! reconcile has been running that long. A watch
//! that is connected but quiet is healthy, so an idle operator stays live.
//! A watch of a resource the API server does not serve (404, e.g. HTTPRoute
//! without the Gateway API) is not counted: a restart cannot make it exist.
//!
//! Readiness follows leadership: the leader is ready once every watch that
//! fills a store (Releases, Deployments, Services, ControllerRevisions,
//! HTTPRoutes, ReplicaSets; one per namespace with `--namespace`) has listed
//! once, since a reconcile reads only those stores, and not while a Release
//! watch is failing; a watch of a resource the API server does not serve
//! counts as listed (its store is rightly empty). A follower holds no cache
//! (its controller is not running; a takeover lists afresh): it is ready once
//! it has read the leader Lease, so it can take over, and stays ready while it
//! stands by (it must, or a rolling update of a two-replica Deployment would
//! never finish). Before that read it is not ready.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Electing, but the leader Lease has not been read yet.
    Electing = 3,
}

/// The default of `--stall-timeout`: well above the longest backoff of a
/// failing watch (5 s) and the longest requeue the engine asks for (30 s), so
/// only a loop that really stopped moving is restarted.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A watch that is still failing fails again within this: the longest watch
/// backoff (5 s) plus the client's connect timeout (10 s) and much slack. One
/// that has been quiet for longer after an error has been re-established (a
/// resumed watch reports nothing until something changes).
const STILL_FAILING_WITHIN: Duration = Duration::from_secs(40);

/// One watch of the controller, as its errors and events show it.
#[derive(Clone, Debug, Default)]
struct WatchState {
    /// The first error of the current run of errors.
    failing_since: Option<Instant>,
    /// The latest error and what it said.
    last_error: Option<(Instant, String)>,
    /// Its list completed at least once.
    synced: bool,
    /// The API server does not serve the resource (404): nothing to list.
    not_served: bool,
}

impl WatchState {
    /// Failing now: its latest error is recent and nothing succeeded since.
    fn failing(&self, now: Instant) -> Option<(Instant, &str)> {
        let since = self.failing_since?;
        let (last, error) = self.last_error.as_ref()?;
        (now.saturating_duration_since(*last) <= STILL_FAILING_WITHIN).then_some((since, error))
    }

    /// Failing, and its errors have spanned `stall` already.
    fn stalled(&self, now: Instant, stall: Duration) -> Option<(Duration, &str)> {
        let (since, error) = self.failing(now)?;
        let (last, _) = self.last_error.as_ref()?;
        let span = last.saturating_duration_since(since);
        (span >= stall).then_some((now.saturating_duration_since(since), error))
    }
}

#[derive(Debug)]
struct Shared {
    readiness: AtomicU8,
    stall_timeout: Duration,
    watches: Mutex<BTreeMap<String, WatchState>>,
    /// Reconciles running now: what and since when, by a number of their own.
    reconciles: Mutex<BTreeMap<u64, (String, Instant)>>,
    next_reconcile: AtomicU64,
}

/// A reconcile in flight, as [`Probe::liveness`] sees it; it ends when dropped.
#[must_use]
pub struct Reconciling {
    probe: Probe,
    id: u64,
}

impl Drop for Reconciling {
    fn drop(&mut self) {
        self.probe.reconciles().remove(&self.id);
    }
}

/// Shared, cheap-to-clone state of the probes: readiness, and the health of
/// the controller's watches.
#[derive(Clone, Debug)]
pub struct Probe(Arc<Shared>);

impl Default for Probe {
    fn default() -> Self {
        Probe::new(DEFAULT_STALL_TIMEOUT)
    }
}

impl Probe {
    /// `/healthz` fails once a watch has kept failing for `stall_timeout`.
    pub fn new(stall_timeout: Duration) -> Self {
        Probe(Arc::new(Shared {
            readiness: AtomicU8::new(Readiness::Syncing as u8),
            stall_timeout,
            watches: Mutex::default(),
            reconciles: Mutex::default(),
            next_reconcile: AtomicU64::new(0),
        }))
    }

    fn reconciles(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (String, Instant)>> {
        self.0.reconciles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reconcile of `what` begins; it counts as running until the returned
    /// guard is dropped (also when its future is dropped unfinished).
    pub fn reconcile_started(&self, what: String) -> Reconciling {
        self.reconcile_started_at(what, Instant::now())
    }

    /// Whether a reconcile of `what` is running now.
    pub fn reconciling(&self, what: &str) -> bool {
        self.reconciles().values().any(|(w, _)| w == what)
    }

    fn reconcile_started_at(&self, what: String, now: Instant) -> Reconciling {
        let id = self.0.next_reconcile.fetch_add(1, Ordering::Relaxed);
        self.reconciles().insert(id, (what, now));
        Reconciling {
            probe: self.clone(),
            id,
        }
    }

    pub fn set(&self, r: Readiness) {
        self.0.readiness.store(r as u8, Ordering::Release);
    }

    pub fn get(&self) -> Readiness {
        match self.0.readiness.load(Ordering::Acquire) {
            1 => Readiness::Standby,
            2 => Readiness::Ready,
            3 => Readiness::Electing,
            _ => Readiness::Syncing,
        }
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, WatchState>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.0.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watch `name` fills a store: not ready until it has listed once.
    pub fn expect(&self, name: &str) {
        self.watches().entry(name.to_owned()).or_default();
    }

    /// Forget every watch but those `keep` names (a shard restarting its
    /// controller over other namespaces).
    pub fn retain_watches(&self, keep: impl Fn(&str) -> bool) {
        self.watches().retain(|name, _| keep(name));
    }

    /// The watch `name` received objects (`listed`: its whole list).
    pub fn watch_succeeded(&self, name: &str, listed: bool) {
        let mut w = self.watches();
        let state = w.entry(name.to_owned()).or_default();
        state.failing_since = None;
        state.synced |= listed;
    }

    /// The watch `name` failed with `error`. `stalls`: false when a restart
    /// could not help (the resource is not served). Returns true for the first
    /// error after a success (worth a warning; the retries that follow are not).
    pub fn watch_failed(&self, name: &str, error: String, stalls: bool) -> bool {
        self.watch_failed_at(name, error, stalls, Instant::now())
    }

    fn watch_failed_at(&self, name: &str, error: String, stalls: bool, now: Instant) -> bool {
        let mut w = self.watches();
        let state = w.entry(name.to_owned()).or_default();
        state.not_served = !stalls;
        let first = if stalls {
            let first = state.failing(now).is_none();
            if first {
                state.failing_since = Some(now);
            }
            first
        } else {
            state.failing_since = None;
            state
                .last_error
                .as_ref()
                .is_none_or(|(last, _)| now.saturating_duration_since(*last) > STILL_FAILING_WITHIN)
        };
        state.last_error = Some((now, error));
        first
    }

    /// `Err(why)` when the controller loop is stuck: a watch has kept failing
    /// for the stall timeout, or a reconcile has been running that long (the
    /// client has no read timeout: an API server that stops answering on an
    /// open connection would hold that Release forever).
    pub fn liveness(&self, now: Instant) -> Result<(), String> {
        let stall = self.0.stall_timeout;
        let mut stuck: Vec<String> = self
            .watches()
            .iter()
            .filter_map(|(name, s)| {
                let (failing_for, error) = s.stalled(now, stall)?;
                Some(format!(
                    "the {name} watch has failed for {}s: {error}",
                    failing_for.as_secs()
                ))
            })
            .collect();
        stuck.extend(self.reconciles().values().filter_map(|(what, since)| {
            let running = now.saturating_duration_since(*since);
            (running >= stall)
                .then(|| format!("the reconcile of {what} has run for {}s", running.as_secs()))
        }));
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "stuck (no progress for longer than {}s): {}",
                self.0.stall_timeout.as_secs(),
                stuck.join("; ")
            ))
        }
    }

    /// `Ok(what)` when ready, `Err(why)` when not. A watch whose name starts
    /// with `release_watch` is a watch of Releases ([`Probe::watch_succeeded`],
    /// [`Probe::watch_failed`]): while one fails the leader is not ready.
    pub fn readiness(&self, now: Instant, release_watch: &str) -> Result<&'static str, String> {
        match self.get() {
            Readiness::Standby => Ok("standby: another replica holds the lease"),
            Readiness::Syncing => Err("not ready: the Release cache has not synced yet".into()),
            Readiness::Electing => Err("not ready: the leader Lease has not been read yet".into()),
            Readiness::Ready => {
                let w = self.watches();
                let unsynced: Vec<&str> = w
                    .iter()
                    .filter(|(_, s)| !s.synced && !s.not_served)
                    .map(|(name, _)| name.as_str())
                    .collect();
                if !unsynced.is_empty() {
                    return Err(format!(
                        "not ready: the {} cache has not synced yet",
                        unsynced.join(", ")
                    ));
                }
                let failing = w
                    .iter()
                    .filter(|(name, _)| name.starts_with(release_watch))
                    .find_map(|(name, s)| Some((name, s.failing(now)?)));
                match failing {
                    Some((name, (since, error))) => Err(format!(
                        "not ready: the {name} watch has failed for {}s: {error}",
                        now.saturating_duration_since(since).as_secs()
                    )),
                    None => Ok("ok"),
                }
            }
        }
    }
}

/// The name under which the controller reports its watch of Releases.
pub const RELEASE_WATCH: &str = "Release";

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
        "/healthz" | "/livez" => match probe.liveness(Instant::now()) {
            Ok(()) => respond(StatusCode::OK, TEXT, "ok\n"),
            Err(why) => respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
        },
        "/readyz" => match probe.readiness(Instant::now(), RELEASE_WATCH) {
            Ok(what) => respond(StatusCode::OK, TEXT, format!("{what}\n")),
            Err(why) => respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
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
        probe.set(Readiness::Electing);
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 503, "{body}");
        assert!(
            body.ends_with("not ready: the leader Lease has not been read yet\n"),
            "{body}"
        );
        probe.set(Readiness::Standby);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        probe.set(Readiness::Ready);
        assert_eq!(get(addr, "/readyz").await.0, 200);
        assert_eq!(get(addr, "/nope").await.0, 404);
        server.abort();
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_watch_failing_past_the_stall_timeout_fails_liveness() {
        let probe = Probe::new(10 * S);
        let t0 = Instant::now();
        assert_eq!(probe.liveness(t0), Ok(()));
        // Retried every few seconds, as the watch backoff does while the API
        // server is away.
        for s in [0, 1, 3, 7] {
            probe.watch_failed_at("Release", "connection refused".into(), true, t0 + s * S);
        }
        assert_eq!(probe.liveness(t0 + 8 * S), Ok(()), "failing for 7s only");
        probe.watch_failed_at("Release", "connection refused".into(), true, t0 + 12 * S);
        let why = probe.liveness(t0 + 12 * S).unwrap_err();
        assert!(
            why.contains("the Release watch has failed for 12s: connection refused"),
            "{why}"
        );
        // Listed again: live at once.
        probe.watch_succeeded("Release", true);
        assert_eq!(probe.liveness(t0 + 13 * S), Ok(()));
    }

    #[test]
    fn a_quiet_watch_is_healthy_and_a_resumed_one_recovers_without_events() {
        let probe = Probe::new(10 * S);
        let t0 = Instant::now();
        probe.watch_succeeded("Deployment", true);
        assert_eq!(probe.liveness(t0 + 3600 * S), Ok(()), "idle for an hour");
        for s in [0, 5, 10, 15] {
            probe.watch_failed_at("Deployment", "connect timeout".into(), true, t0 + s * S);
        }
        assert!(probe.liveness(t0 + 16 * S).is_err());
        // A resumed watch reports nothing; no further error for longer than
        // a retry can take means it is connected again.
        assert_eq!(
            probe.liveness(t0 + 15 * S + STILL_FAILING_WITHIN + S),
            Ok(())
        );
        // A new run of errors starts from zero.
        probe.watch_failed_at("Deployment", "eof".into(), true, t0 + 100 * S);
        assert_eq!(probe.liveness(t0 + 101 * S), Ok(()));
    }

    #[test]
    fn a_resource_the_server_does_not_serve_never_stalls() {
        let probe = Probe::new(10 * S);
        let t0 = Instant::now();
        let mut warned = 0;
        for s in (0..120).step_by(5) {
            warned +=
                probe.watch_failed_at("HTTPRoute", "404 page not found".into(), false, t0 + s * S)
                    as u32;
        }
        assert_eq!(probe.liveness(t0 + 120 * S), Ok(()));
        assert_eq!(warned, 1, "one warning, not one per retry");
    }

    #[test]
    fn a_reconcile_running_past_the_stall_timeout_fails_liveness() {
        let probe = Probe::new(10 * S);
        let t0 = Instant::now();
        let quick = probe.reconcile_started_at("shop/quick".into(), t0);
        let hung = probe.reconcile_started_at("shop/hung".into(), t0);
        drop(quick);
        assert_eq!(probe.liveness(t0 + 9 * S), Ok(()));
        let why = probe.liveness(t0 + 11 * S).unwrap_err();
        assert!(
            why.contains("the reconcile of shop/hung has run for 11s"),
            "{why}"
        );
        assert!(!why.contains("quick"), "{why}");
        // What notification marks wait for.
        assert!(probe.reconciling("shop/hung") && !probe.reconciling("shop/quick"));
        // Abandoned or finished: live again.
        drop(hung);
        assert!(!probe.reconciling("shop/hung"));
        assert_eq!(probe.liveness(t0 + 12 * S), Ok(()));
    }

    #[test]
    fn readiness_waits_for_every_store_and_follows_the_release_watches() {
        let probe = Probe::new(10 * S);
        let t0 = Instant::now();
        assert!(
            probe.readiness(t0, RELEASE_WATCH).is_err(),
            "not synced yet"
        );
        probe.set(Readiness::Ready);
        for w in [
            "Release in a",
            "Release in b",
            "Deployment in a",
            "HTTPRoute in a",
        ] {
            probe.expect(w);
        }
        probe.watch_succeeded("Release in a", true);
        probe.watch_succeeded("Release in b", true);
        let why = probe.readiness(t0, RELEASE_WATCH).unwrap_err();
        assert_eq!(
            why,
            "not ready: the Deployment in a, HTTPRoute in a cache has not synced yet"
        );
        // Events before the list completes are not a sync.
        probe.watch_succeeded("Deployment in a", false);
        assert!(probe.readiness(t0, RELEASE_WATCH).is_err());
        probe.watch_succeeded("Deployment in a", true);
        // A kind the API server does not serve has nothing to wait for.
        probe.watch_failed_at("HTTPRoute in a", "404".into(), false, t0);
        assert_eq!(probe.readiness(t0, RELEASE_WATCH), Ok("ok"));
        probe.watch_failed_at("Release in b", "connection refused".into(), true, t0);
        let why = probe.readiness(t0 + S, RELEASE_WATCH).unwrap_err();
        assert!(
            why.contains("the Release in b watch has failed for 1s"),
            "{why}"
        );
        // Other watches failing do not make the leader unready.
        probe.watch_succeeded("Release in b", true);
        probe.watch_failed_at("Deployment in a", "connection refused".into(), true, t0 + S);
        assert_eq!(probe.readiness(t0 + 2 * S, RELEASE_WATCH), Ok("ok"));
        probe.set(Readiness::Standby);
        assert!(
            probe
                .readiness(t0, RELEASE_WATCH)
                .unwrap()
                .starts_with("standby")
        );
    }
}
