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

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, Patch};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use crate::api::{FINALIZER, RELEASE_LABEL, Release, RollbackReason};
use crate::engine::{self, Action, NoticeKind};
use crate::health::{Probe, Readiness};
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
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub config: Config,
    pub prometheus: prometheus::Prometheus,
    /// What `/readyz` says: ready once the Release cache has synced.
    pub probe: Probe,
}

impl Context {
    pub fn new(client: Client, config: Config) -> Self {
        let reporter = Reporter {
            controller: "signalman".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics: Metrics::new(),
            config,
            prometheus: Default::default(),
            probe: Probe::default(),
        }
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
pub async fn controller(ctx: Arc<Context>) {
    let releases: Api<Release> = ctx.api();
    let releases_for_probe = releases.clone();
    let ours = watcher::Config::default().labels(RELEASE_LABEL);
    let controller = Controller::new(releases, watcher::Config::default());
    let store = controller.store();
    let by_deployment = store.clone();
    let by_route = store.clone();
    ctx.metrics.watch_releases(store.clone());
    // Ready once Releases can be listed: the controller's own watch lists the
    // same way right after. (`Store::wait_until_ready` on a clone of the
    // controller's store did not resolve with kube-runtime 5.0.)
    match releases_for_probe
        .list(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => ctx.probe.set(Readiness::Ready),
        Err(e) => tracing::warn!(error = %e, "listing Releases; not ready"),
    }
    let route_ar = http_route_resource();
    controller
        .owns(ctx.api::<Deployment>(), ours.clone())
        .owns(ctx.api::<Service>(), ours.clone())
        .owns(ctx.api::<ControllerRevision>(), ours)
        .watches(
            ctx.api::<Deployment>(),
            watcher::Config::default(),
            move |d: Deployment| naming(&by_deployment, &d, |s| Some(s.deployment.clone())),
        )
        .watches_with(
            match &ctx.config.namespace {
                Some(ns) => {
                    Api::<DynamicObject>::namespaced_with(ctx.client.clone(), ns, &route_ar)
                }
                None => Api::<DynamicObject>::all_with(ctx.client.clone(), &route_ar),
            },
            route_ar.clone(),
            watcher::Config::default(),
            move |r: DynamicObject| {
                naming(&by_route, &r, |s| {
                    s.traffic
                        .as_ref()
                        .and_then(|t| t.gateway_api.as_ref())
                        .map(|g| g.http_route.clone())
                })
            },
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
        match ctx.recorder.publish(&event, &rel.object_ref(&())).await {
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
        match ctx.recorder.publish(&event, &rel.object_ref(&())).await {
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
