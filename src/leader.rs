//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run
//! and only one acts.
//!
//! Built on kube's primitives rather than a lease crate because the guarantee
//! we need is "no write by a replica that is not the leader", and that needs a
//! step-down rule: a leader that has not renewed within `renew_deadline` (2/3
//! of the lease duration) gives up, even when it cannot reach the API server
//! to learn that someone else took over. A follower takes the lease only after
//! it has seen the lease record unchanged for a whole lease duration on its
//! own monotonic clock (never comparing its wall clock with the holder's), so
//! the old leader has stopped at least `duration - renew_deadline` before the
//! new one starts. Every write carries the resourceVersion it read, so two
//! candidates racing for an expired lease cannot both win.
//!
//! A lost lease is final for the process: [`Candidate::lost`] resolves and the
//! operator exits, to be restarted as a follower, the way client-go's
//! controllers do; nothing has to be unwound inside a half-running controller.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

impl LeaseConfig {
    /// A leader that has not renewed for this long stops acting.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Time between two polls of the lease (and renewals by the leader).
    pub fn retry_period(&self) -> Duration {
        (self.duration / 6).max(Duration::from_millis(200))
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

/// Where a candidate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
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
            if now.duration_since(unchanged_since) >= valid_for {
                Move::Acquire
            } else {
                Move::Wait
            }
        }
    }
}

/// A replica competing for the lease. Dropping it stops competing without
/// releasing the lease; call [`Candidate::resign`] on a clean shutdown.
pub struct Candidate {
    standing: watch::Receiver<Standing>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    config: LeaseConfig,
}

impl Candidate {
    /// Start competing for the lease in the background.
    pub fn campaign(client: Client, config: LeaseConfig) -> Candidate {
        let (tx, rx) = watch::channel(Standing::Following);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let elector = Elector {
            api: Api::namespaced(client, &config.namespace),
            config: config.clone(),
            seen: None,
            last_renew: None,
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
    /// follower takes over at once instead of after the lease duration. Call
    /// only after the controller stopped writing.
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
    api: Api<Lease>,
    config: LeaseConfig,
    /// The lease record as last read, and since when it has looked like that.
    seen: Option<(Fingerprint, Instant)>,
    /// When this replica last wrote the lease successfully as its holder.
    last_renew: Option<Instant>,
}

impl Elector {
    async fn run(
        mut self,
        standing: watch::Sender<Standing>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let retry = self.config.retry_period();
        loop {
            let leading = self.poll().await;
            let was = *standing.borrow();
            match (was, leading) {
                (Standing::Following, true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired the lease: leading");
                    standing.send_replace(Standing::Leading);
                }
                (Standing::Leading, false) => {
                    tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "lost the lease: stepping down");
                    standing.send_replace(Standing::Lost);
                    return;
                }
                _ => {}
            }
            tokio::select! {
                _ = &mut stop => {
                    if *standing.borrow() == Standing::Leading {
                        self.release().await;
                    }
                    return;
                }
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// One round: read the lease, act on it. Returns whether this replica leads
    /// afterwards, which a leader also loses by failing to renew in time.
    async fn poll(&mut self) -> bool {
        let now = Instant::now();
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.config.name, "reading the lease");
                return self.still_within_deadline();
            }
        };
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        if let Some(s) = &spec {
            let fp = fingerprint(s);
            match &self.seen {
                Some((old, _)) if *old == fp => {}
                _ => self.seen = Some((fp, now)),
            }
        }
        let unchanged_since = self.seen.as_ref().map_or(now, |(_, at)| *at);
        let mv = next_move(
            &self.config.identity,
            spec.as_ref(),
            unchanged_since,
            now,
            self.config.duration,
        );
        if self.last_renew.is_some() && mv != Move::Renew {
            // Someone else holds it: our renewals must have failed for long enough.
            return false;
        }
        match mv {
            Move::Wait => false,
            Move::Renew | Move::Acquire => {
                let acquiring = mv == Move::Acquire;
                match self.write(current, acquiring).await {
                    Ok(()) => {
                        self.last_renew = Some(Instant::now());
                        true
                    }
                    Err(e) => {
                        if acquiring {
                            tracing::debug!(error = %e, "lost the race for the lease");
                        } else {
                            tracing::warn!(error = %e, "renewing the lease");
                        }
                        self.still_within_deadline()
                    }
                }
            }
        }
    }

    fn still_within_deadline(&self) -> bool {
        self.last_renew
            .is_some_and(|t| t.elapsed() < self.config.renew_deadline())
    }

    async fn write(&self, current: Option<Lease>, acquiring: bool) -> Result<(), kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
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
                self.api.create(&pp, &lease).await.map(|_| ())
            }
            Some(mut lease) => {
                // replace() sends the resourceVersion we read: a concurrent
                // writer makes this fail with 409 instead of both winning.
                let spec = lease.spec.get_or_insert_with(Default::default);
                if acquiring {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(self.config.identity.clone());
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(now);
                self.api
                    .replace(&self.config.name, &pp, &lease)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Hand the lease back: no holder, so a follower acquires on its next poll.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match self.api.replace(&self.config.name, &pp, &lease).await {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the lease"),
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
    }

    #[test]
    fn the_old_leader_stops_before_a_follower_can_start() {
        // Leader renews at r; the follower sees that renewal no earlier than r,
        // so it acquires no earlier than r + duration; the leader gave up at
        // r + renew_deadline at the latest.
        for secs in [2u64, 6, 15, 60] {
            let c = LeaseConfig {
                name: "l".into(),
                namespace: "n".into(),
                identity: "a".into(),
                duration: Duration::from_secs(secs),
            };
            assert!(c.renew_deadline() < c.duration, "{secs}");
            assert!(
                c.retry_period() < c.renew_deadline(),
                "a leader gets several tries to renew ({secs}s)"
            );
            assert!(c.renew_deadline() >= c.retry_period() * 2, "{secs}");
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
}
