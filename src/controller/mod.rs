//! The imperative shell around the engine: a kube-runtime `Controller` on
//! Releases. Each reconcile reads the Release fresh, observes its Deployments,
//! canaries, baselines and routes, takes the measurements the engine asks for,
//! asks `engine::decide`, applies the actions in order, publishes the notices
//! and writes the status when it changed. Nothing here decides: a re-run after
//! a crash anywhere converges because every action is idempotent and the
//! engine decides from what is observed, not from what was done.

pub mod act;
pub mod cluster;
pub mod observe;
pub mod prometheus;
pub mod template;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, Patch};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;

use crate::api::{FINALIZER, RELEASE_LABEL, Release, RollbackReason};
use crate::engine::{self, Action, NoticeKind};
use crate::health::{Probe, RELEASE_WATCH, Readiness};
use crate::metrics::Metrics;
use crate::traffic::gateway::http_route_resource;
use cluster::Cluster;

/// The one error type of the shell. Each variant has a short label for the
/// `signalman_reconcile_errors_total` metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("serializing an object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// An object an action needs is gone; the next observation tells the engine.
    #[error("{0}")]
    Missing(String),
    #[error("baseline ControllerRevision {name} is unreadable: {reason}")]
    Baseline { name: String, reason: String },
}

impl Error {
    /// Every [`Error::metric_label`], so the metric exports each kind from the start.
    pub const KINDS: &'static [&'static str] = &["kube", "serialize", "missing", "baseline"];

    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Serialize(_) => "serialize",
            Error::Missing(_) => "missing",
            Error::Baseline { .. } => "baseline",
        }
    }
}

/// Operator settings (from `signalman run`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Prometheus for Releases without `spec.prometheus`.
    pub prometheus_url: String,
    /// Watch only this namespace; `None`: every namespace.
    pub namespace: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// Compete for this Lease and run the controller only while holding it;
    /// `None`: run at once (a single replica, tests, `make run`).
    pub leader_election: Option<crate::leader::LeaseConfig>,
    /// `/healthz` fails once a watch has kept failing, or a reconcile has
    /// run, this long.
    pub stall_timeout: Duration,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    /// Who publishes the Events (see [`Context::publish`]).
    pub reporter: Reporter,
    pub config: Config,
    pub prometheus: prometheus::Prometheus,
    /// What `/readyz` and `/healthz` say: the Release cache's sync and the
    /// health of every watch.
    pub probe: Probe,
}

impl Context {
    pub fn new(client: Client, config: Config) -> Self {
        let reporter = Reporter {
            controller: "signalman".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            reporter,
            client,
            metrics: Metrics::new(),
            probe: Probe::new(config.stall_timeout),
            config,
            prometheus: Default::default(),
        }
    }

    /// Publish one Event about `rel`: every transition is an Event of its own.
    /// kube's `Recorder` folds Events with the same reason, action and object
    /// into one series and keeps the first note, so "web promoted" vanished
    /// into "api promoted" x2; a Recorder with no history for each Event
    /// always creates a new one.
    async fn publish(&self, rel: &Release, event: &Event) -> Result<(), kube::Error> {
        Recorder::new(self.client.clone(), self.reporter.clone())
            .publish(event, &rel.object_ref(&()))
            .await
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.config.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// Serve health and metrics, then run the controller until SIGTERM/SIGINT.
/// Leader election wraps [`controller`]; the server runs on every replica.
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::new(client, config));
    let (addr, serve) = crate::health::bind(
        ctx.config.metrics_addr,
        ctx.metrics.clone(),
        ctx.probe.clone(),
    )
    .await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(serve);
    let result = match ctx.config.leader_election.clone() {
        None => {
            ctx.metrics.set_leader(true);
            controller(ctx).await;
            Ok(())
        }
        Some(lease) => lead(ctx, lease).await,
    };
    server.abort();
    tracing::info!("shut down");
    result
}

// ---- leader election (issue 6) ---------------------------------------------

/// Run the controller only while this replica holds the Lease. Losing it is
/// an error that ends the process (dropping every in-flight reconcile), so a
/// replica that is not the leader makes no write; Kubernetes restarts it as a
/// follower. On SIGTERM the controller stops first, then the Lease is handed
/// back so that a follower takes over at once.
async fn lead(ctx: Arc<Context>, lease: crate::leader::LeaseConfig) -> anyhow::Result<()> {
    ctx.probe.set(Readiness::Standby);
    let mut candidate = crate::leader::Candidate::campaign(ctx.client.clone(), lease);
    tokio::select! {
        elected = candidate.elected() => {
            if !elected {
                anyhow::bail!("leader election stopped before this replica was elected");
            }
        }
        () = shutdown_signal() => {
            candidate.resign().await;
            return Ok(());
        }
    }
    ctx.probe.set(Readiness::Syncing);
    ctx.metrics.set_leader(true);
    tokio::select! {
        () = controller(ctx) => {
            candidate.resign().await;
            Ok(())
        }
        () = candidate.lost() => {
            anyhow::bail!("lost the leader Lease: exiting so that no write is made without it")
        }
    }
}

/// SIGTERM or SIGINT, for the time before the controller (which has its own
/// handler) runs.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

// ----------------------------------------------------------------------------

/// The Release controller; returns after a shutdown signal once in-flight
/// reconciles have finished.
///
/// Every watch has its own backoff and reports to the probe: one failing
/// watch (an API server restart, an HTTPRoute kind that is not installed)
/// neither delays the others nor goes unnoticed.
pub async fn controller(ctx: Arc<Context>) {
    let ours = watcher::Config::default().labels(RELEASE_LABEL);
    let (store, writer) = reflector::store();
    let probe = ctx.probe.clone();
    let releases = watch(
        ctx.api::<Release>(),
        watcher::Config::default(),
        RELEASE_WATCH,
        &ctx,
    )
    .inspect(move |e| {
        // Ready once every Release is in the cache; set again after a
        // re-list (the cache is whole again).
        if matches!(e, Ok(watcher::Event::InitDone)) {
            probe.set(Readiness::Ready);
        }
    })
    .reflect(writer)
    .applied_objects();
    let controller = Controller::for_stream(errors_reported(releases), store.clone());
    let by_deployment = store.clone();
    let by_route = store.clone();
    ctx.metrics.watch_releases(store);
    let route_ar = http_route_resource();
    let routes = match &ctx.config.namespace {
        Some(ns) => Api::<DynamicObject>::namespaced_with(ctx.client.clone(), ns, &route_ar),
        None => Api::<DynamicObject>::all_with(ctx.client.clone(), &route_ar),
    };
    let canaries = watch(
        ctx.api::<Deployment>(),
        ours.clone(),
        "canary Deployment",
        &ctx,
    );
    let services = watch(ctx.api::<Service>(), ours.clone(), "Service", &ctx);
    let baselines = watch(
        ctx.api::<ControllerRevision>(),
        ours,
        "ControllerRevision",
        &ctx,
    );
    controller
        .owns_stream(errors_reported(canaries.touched_objects()))
        .owns_stream(errors_reported(services.touched_objects()))
        .owns_stream(errors_reported(baselines.touched_objects()))
        .watches_stream(
            errors_reported(
                watch(
                    ctx.api::<Deployment>(),
                    watcher::Config::default(),
                    "Deployment",
                    &ctx,
                )
                .touched_objects(),
            ),
            move |d: Deployment| naming(&by_deployment, &d, |s| Some(s.deployment.clone())),
        )
        .watches_stream_with(
            errors_reported(
                watch(routes, watcher::Config::default(), "HTTPRoute", &ctx).touched_objects(),
            ),
            move |r: DynamicObject| {
                naming(&by_route, &r, |s| {
                    s.traffic
                        .as_ref()
                        .and_then(|t| t.gateway_api.as_ref())
                        .map(|g| g.http_route.clone())
                })
            },
            route_ar.clone(),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller stream");
            }
        })
        .await;
}

/// A watch with its own backoff, reporting each success and failure to the
/// probe as `name`.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    name: &'static str,
    ctx: &Context,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let probe = ctx.probe.clone();
    let metrics = ctx.metrics.clone();
    watcher(api, config)
        // 410 Gone: the API server no longer has the version the watch
        // resumes from (it restarted, or history was compacted); the watcher
        // lists afresh. An answer from a working server is no failure to back
        // off from: waiting here only kept the cache stale for one more delay.
        .filter(|event| {
            std::future::ready(
                !matches!(event, Err(watcher::Error::WatchError(s)) if s.code == 410),
            )
        })
        .backoff(WatchBackoff::default())
        .inspect(move |event| match event {
            // Emitted before the list is even asked for: proves nothing.
            Ok(watcher::Event::Init) => {}
            Ok(e) => probe.watch_succeeded(name, matches!(e, watcher::Event::InitDone)),
            Err(e) => {
                metrics.watch_failed(name);
                let not_served = matches!(
                    e,
                    watcher::Error::InitialListFailed(kube::Error::Api(s))
                        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
                        if s.code == 404
                );
                if probe.watch_failed(name, e.to_string(), !not_served) {
                    tracing::warn!(watch = name, error = %e, "watch failed; retrying with backoff");
                } else {
                    tracing::debug!(watch = name, error = %e, "watch still failing");
                }
            }
        })
}

/// The objects of a watch, without its errors: [`watch`] reported them and
/// retries on its own. An error reaching the `Controller` would put every
/// watch to sleep under its one shared backoff.
fn errors_reported<K: Send + 'static>(
    objects: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    objects.filter_map(|r| std::future::ready(r.ok().map(Ok)))
}

/// Delays between the attempts of a failing watch: 0.5 s, doubling up to 5 s;
/// back to 0.5 s after anything succeeds (`StreamBackoff` resets it). An API
/// server that returns is seen again within 5 s, and a watch that keeps
/// failing costs one request per 5 s.
struct WatchBackoff(Duration);

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff(Self::FIRST)
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.0;
        self.0 = (d * 2).min(Self::MAX);
        Some(d)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// Releases in the object's namespace with a service whose `field` names it.
fn naming<K: Resource>(
    store: &Store<Release>,
    obj: &K,
    field: impl Fn(&crate::api::ServiceSpec) -> Option<String>,
) -> Vec<ObjectRef<Release>> {
    let ns = obj.meta().namespace.as_deref();
    let name = obj.meta().name.as_deref();
    store
        .state()
        .iter()
        .filter(|r| r.metadata.namespace.as_deref() == ns)
        .filter(|r| r.spec.services.iter().any(|s| field(s).as_deref() == name))
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

fn has_finalizer(rel: &Release) -> bool {
    rel.finalizers().iter().any(|f| f == FINALIZER)
}

/// The last step of a deletion: the train is reversed (or the Release never
/// changed anything, or it had finished), the user's Deployments are theirs
/// again; now drop the finalizer so the Release goes. When the reversal
/// failed, the baselines of what is not restored are kept (no longer owned
/// by the Release, so they outlive it) and a Warning Event says what is left.
async fn let_go(
    ctx: &Context,
    cluster: &Cluster,
    api: &Api<Release>,
    rel: &Release,
    status: &crate::api::ReleaseStatus,
) -> Result<(), Error> {
    if !has_finalizer(rel) {
        return Ok(());
    }
    if status.phase == Some(crate::api::Phase::Failed) {
        let kept = act::keep_baselines(cluster, rel, status).await?;
        let mut note = format!(
            "deleted while the train was not reversed: {}",
            status.message.as_deref().unwrap_or("see the timeline")
        );
        if !kept.is_empty() {
            note.push_str(&format!(
                "; baselines kept for a manual rollback: ControllerRevision {} (delete them when done)",
                kept.join(", ")
            ));
        }
        let event = Event {
            type_: EventType::Warning,
            reason: "DeletedWithChangesLeft".into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Delete".into(),
            secondary: None,
        };
        match ctx.publish(rel, &event).await {
            Ok(()) => ctx.metrics.wrote("Event", "create"),
            Err(e) => tracing::warn!(error = %e, "publishing an event"),
        }
    }
    // Applying without the finalizer drops the one this field manager added.
    let body = json!({
        "apiVersion": Release::api_version(&()),
        "kind": Release::kind(&()),
        "metadata": {"name": rel.name_any()},
    });
    match api
        .patch(
            &rel.name_any(),
            &cluster::apply_params(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => ctx.metrics.wrote("Release", "apply"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(Error::Kube(e)),
    }
    tracing::info!("finalizer removed; the Release goes");
    Ok(())
}

fn error_policy(rel: Arc<Release>, err: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.failed(err.metric_label());
    tracing::warn!(release = %rel.key(), error = %err, "reconcile failed; retrying");
    Requeue::requeue(Duration::from_secs(2))
}

async fn reconcile(rel: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let ns = rel.namespace().unwrap_or_default();
    let name = rel.name_any();
    let span = tracing::info_span!("reconcile", namespace = %ns, name = %name);
    let _running = ctx.probe.reconcile_started(format!("{ns}/{name}"));
    reconcile_release(ns, name, ctx).instrument(span).await
}

async fn reconcile_release(ns: String, name: String, ctx: Arc<Context>) -> Result<Requeue, Error> {
    ctx.metrics.reconciled();
    let _timer = ctx.metrics.reconcile_started();
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &ns);
    // Read fresh: the cache may not yet hold the status this process just
    // wrote, and deciding from an older status would repeat a transition.
    let Some(rel) = api.get_opt(&name).await.map_err(Error::Kube)? else {
        return Ok(Requeue::await_change());
    };
    let cluster = Cluster {
        client: ctx.client.clone(),
        namespace: ns.clone(),
        metrics: ctx.metrics.clone(),
    };
    let status = rel.status.clone().unwrap_or_default();
    let deleting = rel.metadata.deletion_timestamp.is_some();
    if status.phase.is_some_and(|p| p.is_final()) {
        // The release is over: leave the user's Deployments as they wrote them
        // (only reads when that is already so; nothing to decide).
        act::release_user_objects(&cluster, &rel).await?;
        if deleting {
            let_go(&ctx, &cluster, &api, &rel, &status).await?;
        }
        return Ok(Requeue::await_change());
    }

    let started = jiff::Timestamp::now();
    let world = observe::World::read(&cluster, &rel).await?;
    let mut obs = world.observations(&rel);
    let due = engine::due_measurements(&rel, started);
    if !due.is_empty() {
        obs.measurements =
            observe::measure(&ctx, &rel, &world, &due, &ctx.config.prometheus_url).await;
    }
    let now = jiff::Timestamp::now();
    let decision = engine::decide(&rel, &obs, now);

    let mut resource_version = rel.resource_version();
    // Before the first change to the cluster, so that from then on deleting
    // the Release reverses the train instead of leaving it half done. A
    // Release being deleted gets no new finalizer (the API refuses it).
    if !decision.actions.is_empty() && !deleting && !has_finalizer(&rel) {
        let body = json!({
            "apiVersion": Release::api_version(&()),
            "kind": Release::kind(&()),
            "metadata": {"name": name, "finalizers": [FINALIZER]},
        });
        let updated = api
            .patch(&name, &cluster::apply_params(), &Patch::Apply(&body))
            .await
            .map_err(Error::Kube)?;
        ctx.metrics.wrote("Release", "apply");
        // The status write below guards on the version this decision saw,
        // which is now the one with the finalizer.
        resource_version = updated.resource_version();
    }

    // A write the API server refuses as invalid becomes the engine's decision
    // (a hold, or a failed rollback), not an error retried every 2 s forever.
    let (decision, done) = act::carry_out(&cluster, &rel, &world, &mut obs, decision, now).await?;
    let zeroed = done
        .iter()
        .any(|a| matches!(a, Action::SetCanaryWeight { weight: 0, .. }));
    let breached = decision
        .notices
        .iter()
        .any(|n| n.kind == NoticeKind::RollbackBegan(RollbackReason::Breach));
    if zeroed
        && breached
        && let Some(first) = decision
            .status
            .rollback
            .as_ref()
            .and_then(|r| r.first_deviation_at.as_ref())
    {
        let secs = (jiff::Timestamp::now() - first.0)
            .total(jiff::Unit::Second)
            .unwrap_or(f64::NAN);
        tracing::info!(
            seconds = secs,
            "breach: canary traffic at 0 since the first failing measurement"
        );
        ctx.metrics.breach_to_zero(secs);
    }

    for notice in &decision.notices {
        let event = Event {
            type_: if notice.kind.warning() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.kind.reason().to_owned(),
            note: Some(notice.message.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        match ctx.publish(&rel, &event).await {
            Ok(()) => ctx.metrics.wrote("Event", "create"),
            Err(e) => {
                tracing::warn!(error = %e, reason = notice.kind.reason(), "publishing an event")
            }
        }
    }

    // After acting, so a crash in between repeats idempotent actions rather
    // than recording a state the cluster never reached.
    if rel.status.as_ref() != Some(&decision.status) {
        let body = json!({
            "apiVersion": Release::api_version(&()),
            "kind": Release::kind(&()),
            "metadata": {"name": name, "resourceVersion": resource_version},
            "status": decision.status,
        });
        api.patch_status(&name, &cluster::apply_params(), &Patch::Apply(&body))
            .await
            .map_err(Error::Kube)?;
        ctx.metrics.wrote("Release/status", "apply");
        ctx.metrics.record(&ns, &decision);
    }
    let done = decision.status.phase.unwrap_or_default();
    if deleting && (done.is_final() || done == crate::api::Phase::Pending) {
        act::release_user_objects(&cluster, &rel).await?;
        let_go(&ctx, &cluster, &api, &rel, &decision.status).await?;
        return Ok(Requeue::await_change());
    }
    Ok(match decision.requeue_after {
        Some(d) => Requeue::requeue(d),
        None => Requeue::await_change(),
    })
}
