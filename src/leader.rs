//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run
//! and only one acts.
//!
//! Built on kube's primitives rather than a lease crate because the guarantee
//! we need is "no write by a replica that is not the leader", and that needs a
//! step-down rule that holds when the API server hangs, not only when it
//! answers (docs/operations.md, "High availability: leader election", says why
//! not kubert's lease):
//!
//! - A leader that has not renewed within `renew_deadline` (2/3 of the lease
//!   duration), counted from when it *sent* its last successful renewal, gives
//!   up. Every Lease call is bounded by the time left before that deadline, so
//!   a hung call is a failed renewal; and the [`Fence`] closes at the deadline
//!   by itself, whatever any task is doing: from then on the process's client
//!   refuses every write before it leaves the process.
//! - A follower takes the lease only after it has seen the lease record
//!   unchanged for a whole lease duration on its own monotonic clock (never
//!   comparing its wall clock with the holder's), counted from when the read
//!   that first showed the record *returned* (the renewal it shows may have
//!   been sent just before), so the old leader has stopped at least
//!   `duration - renew_deadline` before the new one starts. Its calls are
//!   bounded by its retry period.
//! - Every write carries the resourceVersion it read, so two candidates racing
//!   for an expired lease cannot both win, and a renewal that a stalled
//!   network delivers late is refused (409).
//! - Polls are jittered, so replicas started together do not poll in step.
//!
//! A lost lease is final for the process: [`Candidate::lost`] resolves and the
//! operator exits, to be restarted as a follower, the way client-go's
//! controllers do; nothing has to be unwound inside a half-running controller.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::FIELD_MANAGER;

/// Which Lease to compete for, and as whom.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique per replica: the pod name in a cluster.
    pub identity: String,
    /// How long a lease stays valid after its last renewal.
    pub duration: Duration,
}

/// A poll waits between one and `1 + JITTER` retry periods.
const JITTER: f64 = 0.5;

impl LeaseConfig {
    /// A leader that has not renewed for this long stops acting.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Time between two polls of the lease (and renewals by the leader),
    /// before jitter.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 6).max(Duration::from_millis(200))
    }

    /// The wait before the next poll, for `unit` drawn from `[0, 1)`.
    fn jittered_retry(&self, unit: f64) -> Duration {
        self.retry_period()
            .mul_f64(1.0 + JITTER * unit.clamp(0.0, 1.0))
    }
}

/// This replica's identity: `POD_NAME` when set (the chart sets it from the
/// downward API), else `<hostname>-<pid>`.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "signalman".to_owned());
    format!("{host}-{}", std::process::id())
}

// ---- the write fence ---------------------------------------------------------

/// Until when this replica may write: the renew deadline of its last
/// successful renewal. Closed before the first one and for good once the
/// lease is lost or given back. The controller's client consults it on every
/// request ([`fenced_client`]), so a reconcile, a status write or a
/// notification that was under way when the leader stepped down cannot
/// reach the API server afterwards, even if its task is still running.
#[derive(Clone, Debug, Default)]
pub struct Fence(Arc<Mutex<FenceState>>);

#[derive(Debug, Default)]
struct FenceState {
    until: Option<Instant>,
    shut: bool,
}

impl Fence {
    fn state(&self) -> std::sync::MutexGuard<'_, FenceState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a write may leave the process at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        let s = self.state();
        !s.shut && s.until.is_some_and(|until| now < until)
    }

    fn extend(&self, until: Instant) {
        let mut s = self.state();
        if s.until.is_none_or(|u| u < until) {
            s.until = Some(until);
        }
    }

    /// For good: the lease is lost or handed back.
    fn shut(&self) {
        self.state().shut = true;
    }
}

/// What a write gets from a client whose [`Fence`] is closed.
#[derive(Debug, thiserror::Error)]
#[error(
    "write refused: this replica does not hold the leader Lease (its renew deadline passed or it stepped down)"
)]
pub struct NotLeading;

fn is_write(method: &hyper::Method) -> bool {
    !matches!(
        *method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    )
}

/// A client that sends a write (any method but GET, HEAD, OPTIONS) only while
/// `fence` allows it; refused writes fail with [`NotLeading`] without a byte
/// sent. Reads (watches, lists) go through: a follower may look.
pub fn fenced_client(config: kube::Config, fence: Fence) -> Result<Client, kube::Error> {
    let layer = tower::filter::FilterLayer::new(move |req: hyper::Request<kube::client::Body>| {
        if is_write(req.method()) && !fence.allows(Instant::now()) {
            Err(NotLeading)
        } else {
            Ok(req)
        }
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// The kube client for the Lease alone: its own connections (a request hung
/// on the controller's connection does not hold a renewal up) and timeouts
/// no longer than the renew deadline. Every Lease call is bounded by the
/// time left anyway; these close the connection behind a call that timed out.
pub fn lease_client(mut config: kube::Config, lease: &LeaseConfig) -> Result<Client, kube::Error> {
    config.connect_timeout = Some(lease.retry_period());
    config.read_timeout = Some(lease.renew_deadline());
    config.write_timeout = Some(lease.renew_deadline());
    config.reset_reader_on_write = true;
    Client::try_from(config)
}

// ---- the Lease, as the elector calls it ----------------------------------------

type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, kube::Error>> + Send + 'a>>;

/// The three calls the elector makes on its Lease; the API server's in
/// production, a simulated one (that can hang) in tests.
pub trait LeaseApi: Send + Sync + 'static {
    fn get(&self) -> Call<'_, Option<Lease>>;
    /// Create the lease; fails if it exists.
    fn create(&self, lease: Lease) -> Call<'_, ()>;
    /// Replace it, on the condition that its resourceVersion is still the
    /// one `lease` carries.
    fn replace(&self, lease: Lease) -> Call<'_, ()>;
}

struct KubeLease {
    api: Api<Lease>,
    name: String,
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    }
}

impl LeaseApi for KubeLease {
    fn get(&self) -> Call<'_, Option<Lease>> {
        Box::pin(self.api.get_opt(&self.name))
    }

    fn create(&self, lease: Lease) -> Call<'_, ()> {
        Box::pin(async move { self.api.create(&post_params(), &lease).await.map(|_| ()) })
    }

    fn replace(&self, lease: Lease) -> Call<'_, ()> {
        Box::pin(async move {
            self.api
                .replace(&self.name, &post_params(), &lease)
                .await
                .map(|_| ())
        })
    }
}

// ---- deciding ------------------------------------------------------------------

/// Where a candidate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Has not read the lease yet: cannot tell who leads.
    Starting,
    /// Has read the lease; another replica holds it (or nobody, for now).
    Following,
    Leading,
    /// Led, then lost or gave up the lease. Final.
    Lost,
}

/// What a candidate does on one poll, given the lease as it read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    /// No lease, a released lease, or an expired one: take it.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Someone else's and still valid.
    Wait,
}

/// The lease fields that change on every renewal; a record seen unchanged for
/// a lease duration belongs to a holder that stopped renewing.
/// Holder, renew time, duration and transitions of a lease record.
type Fingerprint = (Option<String>, Option<String>, Option<i32>, Option<i32>);

fn fingerprint(spec: &LeaseSpec) -> Fingerprint {
    (
        spec.holder_identity.clone(),
        spec.renew_time.as_ref().map(|t| t.0.to_string()),
        spec.lease_duration_seconds,
        spec.lease_transitions,
    )
}

fn next_move(
    identity: &str,
    lease: Option<&LeaseSpec>,
    unchanged_since: Instant,
    now: Instant,
    default: Duration,
) -> Move {
    let Some(spec) = lease else {
        return Move::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Move::Acquire,
        Some(h) if h == identity => Move::Renew,
        Some(_) => {
            let valid_for = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .unwrap_or(default);
            if now.saturating_duration_since(unchanged_since) >= valid_for {
                Move::Acquire
            } else {
                Move::Wait
            }
        }
    }
}

// ---- the candidate ---------------------------------------------------------------

/// A replica competing for the lease. Dropping it stops competing without
/// releasing the lease; call [`Candidate::resign`] on a clean shutdown.
pub struct Candidate {
    standing: watch::Receiver<Standing>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    config: LeaseConfig,
}

impl Candidate {
    /// Start competing for the lease in the background, through `client`
    /// (best a [`lease_client`]); `fence` opens while this replica leads.
    pub fn campaign(client: Client, config: LeaseConfig, fence: Fence) -> Candidate {
        let api = KubeLease {
            api: Api::namespaced(client, &config.namespace),
            name: config.name.clone(),
        };
        Self::campaign_on(Arc::new(api), config, fence, fastrand::Rng::new())
    }

    fn campaign_on(
        api: Arc<dyn LeaseApi>,
        config: LeaseConfig,
        fence: Fence,
        rng: fastrand::Rng,
    ) -> Candidate {
        let (tx, rx) = watch::channel(Standing::Starting);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let elector = Elector {
            api,
            config: config.clone(),
            seen: None,
            last_renew: None,
            fence,
            rng,
        };
        let task = tokio::spawn(elector.run(tx, stop_rx));
        Candidate {
            standing: rx,
            stop: Some(stop_tx),
            task: Some(task),
            config,
        }
    }

    pub fn standing(&self) -> Standing {
        *self.standing.borrow()
    }

    /// Every change of standing, for whoever reports it (readiness).
    pub fn watch(&self) -> watch::Receiver<Standing> {
        self.standing.clone()
    }

    /// Resolves once this replica leads. Returns `false` if the election
    /// stopped first.
    pub async fn elected(&mut self) -> bool {
        self.standing
            .wait_for(|s| *s == Standing::Leading)
            .await
            .is_ok()
    }

    /// Resolves when this replica, having led, no longer does (or the election stopped).
    pub async fn lost(&mut self) {
        let _ = self.standing.wait_for(|s| *s == Standing::Lost).await;
    }

    /// Stop competing and, if this replica holds the lease, release it so a
    /// follower takes over at once instead of after the lease duration. The
    /// fence shuts first: call only after the controller stopped writing.
    pub async fn resign(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let config = self.config.clone();
        tracing::info!(lease = %config.name, identity = %config.identity, "leader election stopped");
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Elector {
    api: Arc<dyn LeaseApi>,
    config: LeaseConfig,
    /// The lease record as last read, and since when it has looked like that.
    seen: Option<(Fingerprint, Instant)>,
    /// When this replica sent the last write of the lease that succeeded.
    last_renew: Option<Instant>,
    fence: Fence,
    rng: fastrand::Rng,
}

/// What one poll learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Polled {
    /// The lease was read.
    read: bool,
    /// This replica leads afterwards.
    leading: bool,
}

impl Elector {
    async fn run(
        mut self,
        standing: watch::Sender<Standing>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        loop {
            let polled = self.poll().await;
            let was = *standing.borrow();
            match (was, polled.leading) {
                (Standing::Starting | Standing::Following, true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired the lease: leading");
                    standing.send_replace(Standing::Leading);
                }
                (Standing::Starting, false) if polled.read => {
                    standing.send_replace(Standing::Following);
                }
                (Standing::Leading, false) => {
                    self.fence.shut();
                    tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "lost the lease (not renewed within the renew deadline, or taken): stepping down");
                    standing.send_replace(Standing::Lost);
                    return;
                }
                _ => {}
            }
            let mut next = Instant::now() + self.config.jittered_retry(self.rng.f64());
            if let Some(deadline) = self.deadline() {
                // Wake at the deadline at the latest, to step down on time.
                next = next.min(deadline);
            }
            tokio::select! {
                _ = &mut stop => {
                    self.fence.shut();
                    if *standing.borrow() == Standing::Leading {
                        let bound = Instant::now() + self.config.renew_deadline();
                        if tokio::time::timeout_at(bound, self.release()).await.is_err() {
                            tracing::warn!(lease = %self.config.name, "releasing the lease did not answer in time");
                        }
                    }
                    return;
                }
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// The leader's renew deadline: when it stops acting unless it renewed.
    fn deadline(&self) -> Option<Instant> {
        self.last_renew.map(|t| t + self.config.renew_deadline())
    }

    /// By when a Lease call sent at `now` must have answered: a leader's
    /// renew deadline; a follower's retry period.
    fn call_deadline(&self, now: Instant) -> Instant {
        self.deadline()
            .unwrap_or_else(|| now + self.config.retry_period())
    }

    /// `call`, bounded by [`Elector::call_deadline`]: a call that hangs is a
    /// failed one.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, String> {
        let sent = Instant::now();
        let bound = self.call_deadline(sent);
        match tokio::time::timeout_at(bound, call).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!(
                "{what}: no answer within {} ms",
                bound.saturating_duration_since(sent).as_millis()
            )),
        }
    }

    fn still_within_deadline(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now < d)
    }

    /// One round: read the lease, act on it.
    async fn poll(&mut self) -> Polled {
        let sent = Instant::now();
        let current = match self.bounded("reading the lease", self.api.get()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.config.name, "the lease could not be read");
                return Polled {
                    read: false,
                    leading: self.still_within_deadline(Instant::now()),
                };
            }
        };
        let returned = Instant::now();
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        if let Some(s) = &spec {
            let fp = fingerprint(s);
            match &self.seen {
                Some((old, _)) if *old == fp => {}
                // The renewal this shows may have been sent just before the
                // read returned: count its duration from then.
                _ => self.seen = Some((fp, returned)),
            }
        }
        let unchanged_since = self.seen.as_ref().map_or(returned, |(_, at)| *at);
        let mv = next_move(
            &self.config.identity,
            spec.as_ref(),
            unchanged_since,
            sent,
            self.config.duration,
        );
        if self.last_renew.is_some() && mv != Move::Renew {
            // Someone else holds it (or nobody): we lost it.
            return Polled {
                read: true,
                leading: false,
            };
        }
        let leading = match mv {
            Move::Wait => false,
            Move::Renew | Move::Acquire => {
                let acquiring = mv == Move::Acquire;
                let write_sent = Instant::now();
                match self
                    .bounded("writing the lease", self.write(current, acquiring))
                    .await
                {
                    Ok(()) => {
                        self.last_renew = Some(write_sent);
                        self.fence.extend(write_sent + self.config.renew_deadline());
                        true
                    }
                    Err(e) => {
                        if acquiring {
                            tracing::debug!(error = %e, "lost the race for the lease");
                        } else {
                            tracing::warn!(error = %e, "the lease could not be renewed");
                        }
                        self.still_within_deadline(Instant::now())
                    }
                }
            }
        };
        Polled {
            read: true,
            leading,
        }
    }

    async fn write(&self, current: Option<Lease>, acquiring: bool) -> Result<(), kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let duration = i32::try_from(self.config.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(lease).await
            }
            Some(mut lease) => {
                // The resourceVersion we read goes with it: a concurrent
                // writer makes this fail with 409 instead of both winning.
                let spec = lease.spec.get_or_insert_with(Default::default);
                if acquiring {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(self.config.identity.clone());
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(now);
                self.api.replace(lease).await
            }
        }
    }

    /// Hand the lease back: no holder, so a follower acquires on its next poll.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get().await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match self.api.replace(lease).await {
            Ok(()) => tracing::info!(lease = %self.config.name, "released the lease"),
            Err(e) => tracing::warn!(error = %e, "releasing the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn takes_a_missing_or_released_lease_at_once() {
        let t0 = Instant::now();
        assert_eq!(next_move("a", None, t0, t0, D), Move::Acquire);
        assert_eq!(
            next_move("a", Some(&spec(None, 15)), t0, t0, D),
            Move::Acquire
        );
        assert_eq!(
            next_move("a", Some(&spec(Some(""), 15)), t0, t0, D),
            Move::Acquire
        );
    }

    #[test]
    fn renews_its_own_lease() {
        let t0 = Instant::now();
        assert_eq!(
            next_move("a", Some(&spec(Some("a"), 15)), t0, t0, D),
            Move::Renew
        );
    }

    #[test]
    fn takes_anothers_lease_only_after_seeing_it_unchanged_for_its_duration() {
        let t0 = Instant::now();
        let other = spec(Some("b"), 10);
        assert_eq!(
            next_move("a", Some(&other), t0, t0 + Duration::from_millis(9_999), D),
            Move::Wait
        );
        // The holder's own leaseDurationSeconds counts, not ours.
        assert_eq!(
            next_move("a", Some(&other), t0, t0 + Duration::from_secs(10), D),
            Move::Acquire
        );
        // A read sent before the record was first seen proves nothing.
        assert_eq!(next_move("a", Some(&other), t0 + D, t0, D), Move::Wait);
    }

    fn config(identity: &str, secs: u64) -> LeaseConfig {
        LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: identity.into(),
            duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_old_leader_stops_before_a_follower_can_start() {
        // Leader sends its last successful renewal at r; the follower sees
        // it no earlier than r, so it acquires no earlier than r + duration;
        // the leader gave up at r + renew_deadline.
        for secs in [3u64, 6, 15, 60] {
            let c = config("a", secs);
            assert!(c.renew_deadline() < c.duration, "{secs}");
            let longest_wait = c.jittered_retry(1.0);
            assert_eq!(c.jittered_retry(0.0), c.retry_period());
            assert_eq!(longest_wait, c.retry_period().mul_f64(1.5));
            assert!(
                c.renew_deadline() >= longest_wait * 2,
                "a leader gets two tries to renew, jitter included ({secs}s)"
            );
        }
    }

    #[test]
    fn fingerprint_changes_on_renewal() {
        let mut a = spec(Some("b"), 15);
        let before = fingerprint(&a);
        a.renew_time = Some(MicroTime(jiff::Timestamp::from_second(5).unwrap()));
        assert_ne!(before, fingerprint(&a));
    }

    #[test]
    fn identity_prefers_pod_name() {
        // Not set in unit tests: falls back to host-pid.
        if std::env::var_os("POD_NAME").is_none() {
            assert!(default_identity().ends_with(&format!("-{}", std::process::id())));
        }
    }

    #[test]
    fn the_fence_closes_at_the_deadline_by_itself_and_for_good_once_shut() {
        let fence = Fence::default();
        let t0 = Instant::now();
        assert!(!fence.allows(t0), "closed before the first renewal");
        fence.extend(t0 + Duration::from_secs(4));
        assert!(fence.allows(t0 + Duration::from_millis(3_999)));
        assert!(!fence.allows(t0 + Duration::from_secs(4)));
        // An older renewal answering late does not move it back.
        fence.extend(t0 + Duration::from_secs(1));
        assert!(fence.allows(t0 + Duration::from_secs(2)));
        fence.shut();
        assert!(!fence.allows(t0));
        fence.extend(t0 + Duration::from_secs(60));
        assert!(!fence.allows(t0), "shut is final");
    }

    // ---- a simulated API server ------------------------------------------

    /// One write that reached the simulated API server.
    #[derive(Clone, Debug)]
    struct Write {
        at: Instant,
        by: String,
        ok: bool,
    }

    #[derive(Default)]
    struct Server {
        lease: Option<Lease>,
        version: u64,
        writes: Vec<Write>,
    }

    fn conflict() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("the object has been modified", "Conflict")
                .with_code(409)
                .boxed(),
        )
    }

    impl Server {
        fn store(&mut self, mut lease: Lease, by: &str) {
            self.version += 1;
            lease.metadata.resource_version = Some(self.version.to_string());
            self.lease = Some(lease);
            self.writes.push(Write {
                at: Instant::now(),
                by: by.into(),
                ok: true,
            });
        }

        fn refuse(&mut self, by: &str) -> kube::Error {
            self.writes.push(Write {
                at: Instant::now(),
                by: by.into(),
                ok: false,
            });
            conflict()
        }
    }

    /// One replica's connection to the server. While stalled, what it sends
    /// is held (as a stalled proxy or a frozen API server holds it) and
    /// reaches the server when the stall ends, even if the caller gave up
    /// long before; answers are held too. `delay`: how long the server takes.
    #[derive(Clone)]
    struct Conn {
        server: Arc<Mutex<Server>>,
        who: String,
        stalled: Arc<watch::Sender<bool>>,
        /// The stall holds writes only; reads pass.
        writes_only: bool,
        delay: Duration,
    }

    impl Conn {
        fn new(server: &Arc<Mutex<Server>>, who: &str) -> Conn {
            Conn {
                server: server.clone(),
                who: who.into(),
                stalled: Arc::new(watch::channel(false).0),
                writes_only: false,
                delay: Duration::ZERO,
            }
        }

        fn stall(&self, stalled: bool) {
            self.stalled.send_replace(stalled);
        }

        fn call<T: Send + 'static>(
            &self,
            write: bool,
            op: impl FnOnce(&mut Server, &str) -> Result<T, kube::Error> + Send + 'static,
        ) -> Call<'_, T> {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (server, who, delay) = (self.server.clone(), self.who.clone(), self.delay);
            let mut stalled = self.stalled.subscribe();
            let exempt = !write && self.writes_only;
            tokio::spawn(async move {
                if !exempt {
                    let _ = stalled.wait_for(|s| !*s).await;
                }
                tokio::time::sleep(delay).await;
                let answer = op(&mut server.lock().unwrap(), &who);
                if !exempt {
                    let _ = stalled.wait_for(|s| !*s).await;
                }
                let _ = tx.send(answer);
            });
            Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err(kube::Error::Service("connection gone".into())))
            })
        }
    }

    impl LeaseApi for Conn {
        fn get(&self) -> Call<'_, Option<Lease>> {
            self.call(false, |s, _| Ok(s.lease.clone()))
        }

        fn create(&self, lease: Lease) -> Call<'_, ()> {
            self.call(true, move |s, who| {
                if s.lease.is_some() {
                    return Err(s.refuse(who));
                }
                s.store(lease, who);
                Ok(())
            })
        }

        fn replace(&self, lease: Lease) -> Call<'_, ()> {
            self.call(true, move |s, who| {
                let current = s
                    .lease
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone());
                if current != lease.metadata.resource_version {
                    return Err(s.refuse(who));
                }
                s.store(lease, who);
                Ok(())
            })
        }
    }

    fn candidate(conn: &Conn, secs: u64, seed: u64) -> (Candidate, Fence) {
        let fence = Fence::default();
        let c = Candidate::campaign_on(
            Arc::new(conn.clone()),
            config(&conn.who, secs),
            fence.clone(),
            fastrand::Rng::with_seed(seed),
        );
        (c, fence)
    }

    /// The last write of `who` that succeeded, and the first.
    fn span(writes: &[Write], who: &str) -> (Option<Instant>, Option<Instant>) {
        let ok = writes.iter().filter(|w| w.by == who && w.ok).map(|w| w.at);
        (ok.clone().min(), ok.max())
    }

    /// The leader's connection stalls (nothing answered, nothing dropped):
    /// its renewals time out, it steps down (its fence shut) within the
    /// renew deadline, and the follower takes over after the lease
    /// duration. When the stall ends, the old leader's held renewal reaches
    /// the server, after the new leader's writes, and is refused.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_leader_steps_down_before_the_follower_takes_over() {
        for seed in 0..20 {
            let server = Arc::new(Mutex::new(Server::default()));
            let (mut a_conn, b_conn) = (Conn::new(&server, "a"), Conn::new(&server, "b"));
            // Odd seeds: the stall holds only what the leader sends (its
            // reads still answer), so a renewal is surely among what it holds.
            a_conn.writes_only = seed % 2 == 1;
            let (mut a, a_fence) = candidate(&a_conn, 6, seed);
            assert!(a.elected().await);
            let (mut b, b_fence) = candidate(&b_conn, 6, seed + 1000);
            let _ = b.watch().wait_for(|s| *s == Standing::Following).await;
            // Some renewals go by, at jittered moments.
            tokio::time::sleep(Duration::from_millis(7_000 + seed * 137)).await;
            assert_eq!(a.standing(), Standing::Leading);
            assert!(a_fence.allows(Instant::now()));
            assert_eq!(b.standing(), Standing::Following);
            assert!(!b_fence.allows(Instant::now()));

            let stalled_at = Instant::now();
            a_conn.stall(true);
            a.lost().await;
            let stepped_down = Instant::now();
            assert!(!a_fence.allows(stepped_down));
            let took = stepped_down - stalled_at;
            assert!(took <= Duration::from_secs(4), "seed {seed}: {took:?}");

            assert!(b.elected().await);
            tokio::time::sleep(Duration::from_secs(5)).await;
            a_conn.stall(false);
            tokio::time::sleep(Duration::from_secs(1)).await;

            let writes = server.lock().unwrap().writes.clone();
            let (_, a_last) = span(&writes, "a");
            let (b_first, _) = span(&writes, "b");
            let (a_last, b_first) = (a_last.unwrap(), b_first.unwrap());
            assert!(
                a_last < b_first && stepped_down <= b_first,
                "seed {seed}: a wrote last at {:?}, stepped down at {:?}, b first wrote at {:?}",
                a_last - stalled_at,
                stepped_down - stalled_at,
                b_first - stalled_at
            );
            // The margin the lease arithmetic promises: duration - renew deadline.
            assert!(
                b_first - stepped_down >= Duration::from_secs(2),
                "seed {seed}"
            );
            let late = writes
                .iter()
                .filter(|w| w.by == "a" && w.at > b_first)
                .collect::<Vec<_>>();
            assert!(
                late.iter().all(|w| !w.ok),
                "seed {seed}: what was held arrives late and is refused: {late:?}"
            );
            if a_conn.writes_only {
                assert!(!late.is_empty(), "seed {seed}: the held renewal");
            }
        }
    }

    /// A follower whose reads take long (but answer within its retry period)
    /// counts the lease from when a read returned: it never starts before
    /// the old leader stopped, whatever the delay.
    #[tokio::test(start_paused = true)]
    async fn a_slow_follower_never_starts_before_the_old_leader_stopped() {
        for (seed, delay_ms) in [(1u64, 0u64), (2, 300), (3, 700), (4, 950), (5, 990)] {
            let server = Arc::new(Mutex::new(Server::default()));
            let a_conn = Conn::new(&server, "a");
            let mut b_conn = Conn::new(&server, "b");
            b_conn.delay = Duration::from_millis(delay_ms);
            let (mut a, a_fence) = candidate(&a_conn, 6, seed);
            assert!(a.elected().await);
            let (mut b, _) = candidate(&b_conn, 6, seed + 7);
            tokio::time::sleep(Duration::from_millis(5_000 + seed * 311)).await;
            // The leader dies without a word: no more renewals, its fence
            // closes at its deadline.
            drop(a);
            let killed_at = Instant::now();
            assert!(b.elected().await, "delay {delay_ms}ms");
            let writes = server.lock().unwrap().writes.clone();
            let (_, a_last) = span(&writes, "a");
            let (b_first, _) = span(&writes, "b");
            let b_first = b_first.unwrap();
            assert!(
                !a_fence.allows(b_first),
                "delay {delay_ms}ms: b wrote while a could still write"
            );
            assert!(a_last.unwrap() <= killed_at);
            // Within the duration of the last renewal plus a few polls.
            let takeover = b_first - killed_at;
            let poll = Duration::from_millis(1_500) + b_conn.delay * 2;
            assert!(
                takeover <= Duration::from_secs(6) + poll * 3,
                "delay {delay_ms}ms: {takeover:?}"
            );
        }
    }

    /// A follower whose calls never answer within its retry period never
    /// reads the lease: it stays Starting (not ready) and never leads.
    #[tokio::test(start_paused = true)]
    async fn a_follower_that_cannot_read_in_time_never_leads() {
        let server = Arc::new(Mutex::new(Server::default()));
        let mut conn = Conn::new(&server, "b");
        conn.delay = Duration::from_millis(1_500);
        let (b, fence) = candidate(&conn, 6, 3);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(b.standing(), Standing::Starting);
        assert!(!fence.allows(Instant::now()));
        assert!(server.lock().unwrap().writes.is_empty());
    }

    /// Two candidates started together poll at different moments.
    #[tokio::test(start_paused = true)]
    async fn jitter_keeps_replicas_out_of_step() {
        let c = config("a", 6);
        let mut rng = fastrand::Rng::with_seed(42);
        let waits: Vec<Duration> = (0..200).map(|_| c.jittered_retry(rng.f64())).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= c.retry_period() && *w < c.retry_period().mul_f64(1.5))
        );
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert!(waits.iter().any(|w| *w > c.retry_period().mul_f64(1.4)));
        assert!(waits.iter().any(|w| *w < c.retry_period().mul_f64(1.1)));
    }

    /// A client behind a closed fence refuses a write without sending it; a
    /// read goes through; once the fence opens, the write is sent.
    #[tokio::test]
    async fn a_fenced_client_sends_no_write_while_the_fence_is_closed() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // As `signalman run` does: two rustls providers are compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // The method of every request the server received.
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let methods = seen.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let methods = methods.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let head = String::from_utf8_lossy(&buf[..n]);
                        if let Some(m) = head.split(' ').next() {
                            methods.lock().unwrap().push(m.to_owned());
                        }
                        let answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let fence = Fence::default();
        let client = fenced_client(kube::Config::new(url.parse().unwrap()), fence.clone()).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client, "n");
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = api.create(&PostParams::default(), &cm).await.unwrap_err();
        assert!(
            err.to_string().contains(
                "write refused: this replica does not hold the leader Lease (its renew deadline passed or it stepped down)"
            ),
            "{err}"
        );
        let err = api.delete("x", &Default::default()).await.unwrap_err();
        assert!(err.to_string().contains("write refused"), "{err}");
        // Reads are not fenced.
        let _ = api.get_opt("x").await;
        assert_eq!(*seen.lock().unwrap(), ["GET"]);
        // Open: the write is sent.
        fence.extend(Instant::now() + Duration::from_secs(10));
        let _ = api.create(&PostParams::default(), &cm).await;
        assert_eq!(*seen.lock().unwrap(), ["GET", "POST"]);
        server.abort();
    }
}
