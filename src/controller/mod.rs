//! The imperative shell around the engine: a kube-runtime `Controller` on
//! Releases. Each reconcile reads the Release, its Deployments, canaries,
//! baselines and routes from the controller's stores ([`cache`]), takes the
//! measurements the engine asks for,
//! asks `engine::decide`, applies the actions in order, publishes the notices
//! and writes the status when it changed. Nothing here decides: a re-run after
//! a crash anywhere converges because every action is idempotent and the
//! engine decides from what is observed, not from what was done.

pub mod act;
pub mod cache;
pub mod cluster;
pub mod flag;
pub mod migration;
pub mod notify;
pub mod observe;
pub mod prometheus;
pub mod prometheus_auth;
pub mod shard;
pub mod template;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DynamicObject, Patch};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::utils::Backoff;
use kube::runtime::{self, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;

use crate::api::{
    FINALIZER, Phase, RELEASE_LABEL, Release, ReleaseApproval, ReleasePolicy, RollbackReason,
};
use crate::engine::{self, Action, NoticeKind};
use crate::health::{Probe, Readiness};
use crate::metrics::Metrics;
use crate::traffic::gateway::http_route_resource;
use cache::{
    Cache, Readable, Writers, labelled, merge_namespaces, owners, trim_config_map, trim_deployment,
    trim_dynamic, trim_job, trim_namespace, trim_pod, trim_release, trim_replica_set,
    trim_revision, trim_route, trim_service,
};
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
    /// Watch only these namespaces; empty: every namespace (unless
    /// `namespace_selector` is set).
    pub namespaces: Vec<String>,
    /// A shard: take the namespaces whose labels match this selector, as
    /// they come and go ([`shard`]); `namespaces` is then ignored.
    pub namespace_selector: Option<String>,
    /// At most this many Releases reconciled at once.
    pub max_reconciles: u16,
    /// At most this many Prometheus queries in flight at once.
    pub max_queries: usize,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// Compete for this Lease and run the controller only while holding it;
    /// `None`: run at once (a single replica, tests, `make run`).
    pub leader_election: Option<Election>,
    /// `/healthz` fails once a watch has kept failing, or a reconcile has
    /// run, this long.
    pub stall_timeout: Duration,
    /// The most dependencies between owners a Release may have when its
    /// ReleasePolicy sets no `limits.crossTeamEdges`.
    pub cross_team_edges: i32,
    /// The receivers of Releases whose policy sets no `notifications`
    /// (`--notifications`).
    pub notifications: crate::api::Notifications,
    /// The operator's own namespace, where receivers' Secrets are read.
    pub operator_namespace: String,
    /// `--enforce-namespace`: every query of a Release reads only its namespace's series.
    pub enforce_namespace: bool,
    /// `--prometheus-allowed-address`: the addresses besides `prometheus_url`
    /// that `spec.prometheus.address` may name.
    pub prometheus_allowed_addresses: Vec<String>,
    /// Which Secret (in `operator_namespace`) holds the credentials for
    /// which Prometheus address (`--prometheus-auth-secret`).
    pub prometheus_auth: prometheus_auth::AuthSecrets,
}

impl Config {
    /// What a Release's queries may reach: its own namespace only (with
    /// `--enforce-namespace`), and the default Prometheus or a listed one.
    pub fn reach(&self) -> crate::analysis::tenancy::Reach {
        let allowed = std::iter::once(&self.prometheus_url)
            .chain(&self.prometheus_allowed_addresses)
            .cloned()
            .collect();
        crate::analysis::tenancy::Reach {
            enforce_namespace: self.enforce_namespace,
            allowed_addresses: Some(allowed),
        }
    }
}

/// What leader election needs besides the Lease's name: the client it
/// renews through (its own connections and short timeouts,
/// [`crate::leader::lease_client`]) and the fence that the controller's
/// client obeys ([`crate::leader::fenced_client`]).
#[derive(Clone)]
pub struct Election {
    pub lease: crate::leader::LeaseConfig,
    pub client: Client,
    pub fence: crate::leader::Fence,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    /// Who publishes the Events (see [`Context::publish`]).
    pub reporter: Reporter,
    pub config: Config,
    pub prometheus: Arc<prometheus::Prometheus>,
    /// What `/readyz` and `/healthz` say: the stores' sync and the
    /// health of every watch.
    pub probe: Probe,
    /// What reconciles read instead of the API server.
    pub cache: Cache,
    /// Where reconciles hand notifications over (one per process).
    pub notifier: Arc<notify::outbox::Notifier>,
    /// The stores' writing halves, until the controller's watches take them.
    writers: Mutex<Option<Writers>>,
}

impl Context {
    pub fn new(client: Client, config: Config) -> Self {
        let reporter = Reporter {
            controller: "signalman".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let (cache, writers) = Cache::new();
        Context {
            reporter,
            client,
            metrics: Metrics::new(),
            probe: Probe::new(config.stall_timeout),
            prometheus: Arc::new(prometheus::Prometheus::new(config.max_queries)),
            config,
            cache,
            notifier: Arc::default(),
            writers: Mutex::new(Some(writers)),
        }
    }

    /// The context of a shard's controller over `namespaces`: empty stores of
    /// its own, everything else (client, metrics, probe, the query bound)
    /// shared with `self`.
    fn for_namespaces(&self, namespaces: Vec<String>) -> Context {
        let (cache, writers) = Cache::new();
        Context {
            client: self.client.clone(),
            metrics: self.metrics.clone(),
            reporter: self.reporter.clone(),
            config: Config {
                namespaces,
                ..self.config.clone()
            },
            prometheus: self.prometheus.clone(),
            probe: self.probe.clone(),
            cache,
            notifier: self.notifier.clone(),
            writers: Mutex::new(Some(writers)),
        }
    }

    /// Publish one Event about `rel`: every transition is an Event of its own.
    /// kube's `Recorder` folds Events with the same reason, action and object
    /// into one series and keeps the first note, so "web promoted" vanished
    /// into "api promoted" x2; a Recorder with no history for each Event
    /// always creates a new one.
    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        rel: &K,
        event: &Event,
    ) -> Result<(), kube::Error> {
        Recorder::new(self.client.clone(), self.reporter.clone())
            .publish(event, &rel.object_ref(&()))
            .await
    }

    /// One API per watched scope, named for the probe: `Deployment`, or
    /// `Deployment in shop` when several namespaces are watched.
    fn apis<K>(&self, kind: &str) -> Vec<(String, String, Api<K>)>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        self.scopes(kind, |ns| match ns {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        })
    }

    fn scopes<K>(
        &self,
        kind: &str,
        api: impl Fn(Option<&str>) -> Api<K>,
    ) -> Vec<(String, String, Api<K>)> {
        match self.config.namespaces.as_slice() {
            [] => vec![(String::new(), kind.to_owned(), api(None))],
            [ns] => vec![(ns.clone(), kind.to_owned(), api(Some(ns)))],
            several => several
                .iter()
                .map(|ns| (ns.clone(), format!("{kind} in {ns}"), api(Some(ns))))
                .collect(),
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
            work(ctx).await;
            Ok(())
        }
        Some(election) => lead(ctx, election).await,
    };
    server.abort();
    tracing::info!("shut down");
    result
}

// ---- leader election (issue 6) ---------------------------------------------

/// Run the controller only while this replica holds the Lease. At the renew
/// deadline the fence shuts (the controller's client refuses every write from
/// then on, whichever task sends it: a reconcile, a status write, an Event,
/// the notification sender) and losing the lease is an error that ends the
/// process; Kubernetes restarts it as a follower. On SIGTERM the controller
/// stops first, then the Lease is handed back so that a follower takes over
/// at once.
async fn lead(ctx: Arc<Context>, election: Election) -> anyhow::Result<()> {
    // Not ready until the Lease has been read: a follower that cannot reach
    // the API server could not take over.
    ctx.probe.set(Readiness::Electing);
    let mut candidate =
        crate::leader::Candidate::campaign(election.client, election.lease, election.fence);
    let mut standing = candidate.watch();
    let probe = ctx.probe.clone();
    let following = async move {
        if standing
            .wait_for(|s| *s == crate::leader::Standing::Following)
            .await
            .is_ok()
        {
            probe.set(Readiness::Standby);
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        elected = candidate.elected() => {
            if !elected {
                anyhow::bail!("leader election stopped before this replica was elected");
            }
        }
        () = following => unreachable!("waits forever"),
        () = shutdown_signal() => {
            candidate.resign().await;
            return Ok(());
        }
    }
    ctx.probe.set(Readiness::Syncing);
    ctx.metrics.set_leader(true);
    tokio::select! {
        () = work(ctx) => {
            candidate.resign().await;
            Ok(())
        }
        () = candidate.lost() => {
            anyhow::bail!("lost the leader Lease: exiting so that no write is made without it")
        }
    }
}

/// SIGTERM or SIGINT: the controller finishes what is in flight and returns.
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
/// One watch per kind (per namespace with `--namespace`) fills that kind's
/// store and wakes the controller: Releases by their own events; canaries,
/// their Services and baselines through their ownerReferences; the user's
/// Deployments and routes through the index of the Releases naming them.
/// ReplicaSets (metadata only) only fill their store.
///
/// Every watch has its own backoff and reports to the probe: one failing
/// watch (an API server restart, an HTTPRoute kind that is not installed)
/// neither delays the others nor goes unnoticed.
pub async fn controller(ctx: Arc<Context>) {
    controller_until(ctx, shutdown_signal()).await;
}

/// What the leader runs: the controller over the configured namespaces, or a
/// shard's controllers over the namespaces its selector matches.
async fn work(ctx: Arc<Context>) {
    match ctx.config.namespace_selector.clone() {
        Some(selector) => shard::run(ctx, selector).await,
        None => controller(ctx).await,
    }
}

/// [`controller`], stopping gracefully (in-flight reconciles finish) once
/// `stop` completes.
async fn controller_until(ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + 'static) {
    let Some(w) = ctx.writers.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        tracing::error!("the controller's stores are filled once per process");
        return;
    };
    // kube wants a shutdown trigger it can share between threads; a task
    // awaiting `stop` and a oneshot make any future one.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(());
    });
    let stopped = async move {
        let _ = stop_rx.await;
    };
    let cache = ctx.cache.clone();
    ctx.notifier.start(
        ctx.client.clone(),
        ctx.metrics.clone(),
        ctx.reporter.clone(),
        ctx.probe.clone(),
        cache.releases.clone(),
    );
    // Lists in pages of 100 instead of kube's 500: a page is parsed whole
    // before its objects are trimmed, and what the allocator took for it
    // stays. Measured with 1,000 idle Deployments (debug build): 60 MB
    // resident after the first list with pages of 500, 45 MB with 100.
    let all = watcher::Config::default().page_size(LIST_PAGE);
    let ours = watcher::Config::default()
        .labels(RELEASE_LABEL)
        .page_size(LIST_PAGE);
    ctx.metrics.watch_releases(cache.releases.clone());

    let naming = cache.naming.clone();
    let releases = cached(
        &ctx,
        w.releases,
        ctx.apis("Release"),
        all.clone(),
        trim_release,
    )
    .inspect(move |e| {
        if let Ok(e) = e {
            naming.apply(e);
        }
    });
    let deployments = cached(
        &ctx,
        w.deployments,
        ctx.apis("Deployment"),
        all.clone(),
        trim_deployment,
    );
    let services = cached(
        &ctx,
        w.services,
        ctx.apis("Service"),
        all.clone(),
        trim_service,
    );
    let baselines = cached(
        &ctx,
        w.baselines,
        ctx.apis("ControllerRevision"),
        ours.clone(),
        trim_revision,
    );
    // Migrations (issue 13): the Jobs Signalman created and their pods, by
    // the label it gives both; every ConfigMap, since a flag names one the
    // user made.
    let jobs = cached(&ctx, w.jobs, ctx.apis("Job"), ours, trim_job);
    // Canary pods carry the release label too: the Job controller's own
    // label keeps them (and their every readiness change) out.
    let job_pods = watcher::Config::default()
        .labels(&format!("{RELEASE_LABEL},{JOB_NAME_LABEL}"))
        .page_size(LIST_PAGE);
    let pods = cached(&ctx, w.pods, ctx.apis("Pod"), job_pods, trim_pod);
    let config_maps = cached(
        &ctx,
        w.config_maps,
        ctx.apis("ConfigMap"),
        all.clone(),
        trim_config_map,
    );
    let route_ar = http_route_resource();
    let routes = cached(
        &ctx,
        w.routes,
        ctx.scopes("HTTPRoute", |ns| match ns {
            Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &route_ar),
            None => Api::all_with(ctx.client.clone(), &route_ar),
        }),
        all.clone(),
        trim_route,
    );
    let replica_sets = cached(
        &ctx,
        w.replica_sets,
        ctx.apis::<PartialObjectMeta<ReplicaSet>>("ReplicaSet"),
        all.clone(),
        trim_replica_set,
    );
    // Go/no-go (issue 12): the policies, the namespaces' labels naming them,
    // and the approvals. Each may be refused (RBAC, no CRD) without stopping
    // the rest: the Releases then behave as with no policy.
    let policy_ar = ApiResource::erase::<ReleasePolicy>(&());
    let policies = cached_refusable(
        &ctx,
        w.policies,
        vec![(
            String::new(),
            cache::POLICY_WATCH.to_owned(),
            Api::all_with(ctx.client.clone(), &policy_ar),
        )],
        all.clone(),
        trim_dynamic,
        Some(cache::POLICY_WATCH),
    );
    let namespaces = cached_refusable(
        &ctx,
        w.namespaces,
        vec![(
            String::new(),
            cache::NAMESPACE_WATCH.to_owned(),
            Api::<PartialObjectMeta<Namespace>>::all(ctx.client.clone()),
        )],
        all.clone(),
        trim_namespace,
        Some(cache::NAMESPACE_WATCH),
    );
    let approval_ar = ApiResource::erase::<ReleaseApproval>(&());
    let approvals = cached_refusable(
        &ctx,
        w.approvals,
        ctx.scopes(cache::APPROVAL_WATCH, |ns| match ns {
            Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &approval_ar),
            None => Api::all_with(ctx.client.clone(), &approval_ar),
        }),
        all,
        trim_dynamic,
        Some(cache::APPROVAL_WATCH),
    );

    let secrets = notify::watch_secrets(&ctx, w.secrets);

    let by_deployment = cache.naming.clone();
    let by_route = cache.naming.clone();
    let by_config_map = cache.naming.clone();
    let by_policy = cache.clone();
    let by_namespace = cache.clone();
    let by_secret = (cache.clone(), ctx.config.notifications.clone());
    // The label each namespace had when last seen: only a change of it
    // wakes the namespace's Releases (not every annotation someone adds).
    let labels_seen: Mutex<std::collections::HashMap<String, Option<String>>> = Mutex::default();
    ctx.probe.set(Readiness::Ready);
    let filling = tokio::spawn({
        let cache = cache.clone();
        async move { cache.fill().await }
    });
    Controller::for_stream(
        errors_reported(releases.applied_objects()),
        cache.releases.clone(),
    )
    .with_config(runtime::controller::Config::default().concurrency(ctx.config.max_reconciles))
    .watches_stream(
        errors_reported(deployments.touched_objects()),
        move |d: Deployment| {
            let mut refs = owners(&d.metadata);
            refs.extend(
                by_deployment.deployment(&d.namespace().unwrap_or_default(), &d.name_any()),
            );
            refs
        },
    )
    .watches_stream(errors_reported(services.touched_objects()), |s: Service| {
        owners(&s.metadata)
    })
    .watches_stream(
        errors_reported(baselines.touched_objects()),
        |cr: ControllerRevision| owners(&cr.metadata),
    )
    .watches_stream_with(
        errors_reported(routes.touched_objects()),
        move |r: DynamicObject| by_route.route(&r.namespace().unwrap_or_default(), &r.name_any()),
        route_ar.clone(),
    )
    // A Job's or its pod's change wakes the Release whose label it carries
    // (a failed pod's last words may land after the Job's condition).
    .watches_stream(errors_reported(jobs.touched_objects()), |j: Job| {
        labelled(&j.metadata)
    })
    .watches_stream(errors_reported(pods.touched_objects()), |p: Pod| {
        labelled(&p.metadata)
    })
    // A ConfigMap wakes the Releases whose flag services name it.
    .watches_stream(
        errors_reported(config_maps.touched_objects()),
        move |cm: ConfigMap| {
            by_config_map.config_map(&cm.namespace().unwrap_or_default(), &cm.name_any())
        },
    )
    // Only to keep the store filled: a new ReplicaSet comes with a
    // Deployment change, which wakes the Releases that need its hash.
    .watches_stream(
        errors_reported(replica_sets.touched_objects()),
        |_: PartialObjectMeta<ReplicaSet>| None,
    )
    // An approval wakes the Release it approves.
    .watches_stream_with(
        errors_reported(approvals.touched_objects()),
        |a: DynamicObject| {
            let ns = a.namespace()?;
            let release = a.data["spec"]["release"].as_str()?;
            Some(ObjectRef::<Readable>::new(release).within(&ns))
        },
        approval_ar,
    )
    // A policy created, changed or deleted wakes the Releases following it.
    .watches_stream_with(
        errors_reported(policies.touched_objects()),
        move |p: DynamicObject| by_policy.following(&p.name_any()),
        policy_ar,
    )
    // A receiver's Secret wakes the Releases (its Warning, what waits to be sent).
    .watches_stream(
        errors_reported(secrets.touched_objects()),
        move |s: k8s_openapi::api::core::v1::Secret| {
            notify::woken_by(&by_secret.0, &by_secret.1, &s.name_any())
        },
    )
    // A namespace whose policy label changed wakes its Releases.
    .watches_stream(
        errors_reported(namespaces.touched_objects()),
        move |n: PartialObjectMeta<Namespace>| {
            let name = n.name_any();
            let label = n
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::api::POLICY_LABEL))
                .cloned();
            let mut seen = labels_seen.lock().unwrap_or_else(|e| e.into_inner());
            match seen.insert(name.clone(), label.clone()) {
                // First sight (the list): every Release is reconciled anyway.
                None => Vec::new(),
                Some(before) if before == label => Vec::new(),
                Some(_) => by_namespace.under_way_in(&name),
            }
        },
    )
    .graceful_shutdown_on(stopped)
    .run(reconcile, error_policy, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "controller stream");
        }
    })
    .await;
    filling.abort();
    stopping.abort();
}

/// The watches of one kind (one per scope) with what no reconcile reads
/// trimmed off, merged into one store; the store's events, for the controller.
fn cached<K>(
    ctx: &Context,
    writer: Writer<K>,
    scopes: Vec<(String, String, Api<K>)>,
    config: watcher::Config,
    trim: fn(&mut K),
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    cached_refusable(ctx, writer, scopes, config, trim, None)
}

/// [`cached`] for a kind the controller can do without (see [`watch_refusable`]).
fn cached_refusable<K>(
    ctx: &Context,
    writer: Writer<K>,
    scopes: Vec<(String, String, Api<K>)>,
    config: watcher::Config,
    trim: fn(&mut K),
    refusable: Option<&'static str>,
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let store = writer.as_reader();
    let watches = scopes
        .into_iter()
        .map(|(ns, name, api)| {
            ctx.probe.expect(&name);
            (
                ns,
                watch_refusable(api, config.clone(), name, ctx, refusable).modify(trim),
            )
        })
        .collect();
    merge_namespaces(watches, store).reflect(writer).boxed()
}

/// Objects per page of a watch's list.
const LIST_PAGE: u32 = 100;

/// The label the Job controller puts on the pods of a Job.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// A watch with its own backoff, reporting each success and failure to the
/// probe as `name`.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    name: String,
    ctx: &Context,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watch_refusable(api, config, name, ctx, None)
}

/// [`watch`]; with `refusable`, a watch the controller can do without: when
/// the API server refuses it (403: the ServiceAccount may not list it; 404:
/// the CRD is not installed) the kind is marked unavailable in the cache, so
/// that nobody waits for its list, the probes do not count it, and the
/// Releases behave as without it. It keeps being retried, and counts again
/// once it lists.
fn watch_refusable<K>(
    api: Api<K>,
    config: watcher::Config,
    name: String,
    ctx: &Context,
    refusable: Option<&'static str>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let probe = ctx.probe.clone();
    let metrics = ctx.metrics.clone();
    let unavailable = ctx.cache.unavailable.clone();
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
            Ok(e) => {
                let listed = matches!(e, watcher::Event::InitDone);
                probe.watch_succeeded(&name, listed);
                if let (true, Some(kind)) = (listed, refusable) {
                    unavailable.listed(kind);
                }
            }
            Err(e) => {
                metrics.watch_failed(name.split(' ').next().unwrap_or_default());
                let refused_code = match e {
                    watcher::Error::InitialListFailed(kube::Error::Api(s))
                    | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => Some(s.code),
                    _ => None,
                };
                let not_served = refused_code == Some(404);
                let refused = refusable.filter(|_| matches!(refused_code, Some(403 | 404)));
                if let Some(kind) = refused {
                    probe.watch_failed(&name, e.to_string(), false);
                    if unavailable.refused(kind, e.to_string()) {
                        tracing::warn!(
                            watch = %name, error = %e,
                            "the API server refuses this watch; going on without it \
                             (Releases behave as with no {kind}) and retrying with backoff"
                        );
                    }
                } else if probe.watch_failed(&name, e.to_string(), !not_served) {
                    tracing::warn!(watch = %name, error = %e, "watch failed; retrying with backoff");
                } else {
                    tracing::debug!(watch = %name, error = %e, "watch still failing");
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
    ctx.cache.written.forget(rel);
    tracing::info!("finalizer removed; the Release goes");
    Ok(())
}

fn error_policy(rel: Arc<Readable>, err: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.failed(err.metric_label());
    tracing::warn!(release = %ObjectRef::from_obj(&*rel), error = %err, "reconcile failed; retrying");
    Requeue::requeue(Duration::from_secs(2))
}

async fn reconcile(obj: Arc<Readable>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let span = tracing::info_span!("reconcile", namespace = %ns, name = %name);
    ctx.cache.filled().await;
    let _running = ctx.probe.reconcile_started(format!("{ns}/{name}"));
    match &obj.0 {
        // The store's version, or the one our own last write made if the
        // store has not caught up with it (see `cache::Written`): deciding
        // from a status older than one this process wrote would repeat a
        // transition. This replaces a GET of the Release on every reconcile.
        Ok(cached) => {
            let rel = ctx.cache.written.freshest(cached);
            reconcile_release(rel, ctx).instrument(span).await
        }
        Err(bad) => stall_unreadable(&obj, bad, &ctx).instrument(span).await,
    }
}

/// A Release that does not parse: stall it with what failed, on that object
/// alone. Its status is patched field by field (a merge patch of phase,
/// message and conditions under a resourceVersion precondition), since the
/// typed status may be what is unreadable and an apply of a partial status
/// would drop the rest of what this manager owns.
async fn stall_unreadable(
    obj: &Readable,
    bad: &cache::Unreadable,
    ctx: &Context,
) -> Result<Requeue, Error> {
    let field = |f: &str| bad.status.as_ref().and_then(|s| s.get(f)).cloned();
    let phase = field("phase").and_then(|p| serde_json::from_value::<Phase>(p).ok());
    let conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> =
        field("conditions")
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
    let message = field("message");
    let stall = engine::unreadable(
        &bad.error,
        phase,
        conditions.clone(),
        bad.metadata.generation,
        jiff::Timestamp::now(),
    );
    if stall.phase.is_none()
        && stall.conditions == conditions
        && message.as_ref().and_then(|m| m.as_str()) == Some(stall.message.as_str())
    {
        return Ok(Requeue::await_change());
    }
    tracing::warn!(error = %bad.error, "the stored Release cannot be read; stalled");
    let mut status = json!({"message": stall.message, "conditions": stall.conditions});
    if let Some(p) = stall.phase {
        status["phase"] = json!(p);
    }
    let body = json!({
        "metadata": {"resourceVersion": bad.metadata.resource_version},
        "status": status,
    });
    let ns = obj.namespace().unwrap_or_default();
    let params = kube::api::PatchParams {
        field_manager: Some(crate::api::FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    // Untyped: the answer is as unreadable as the object.
    Api::<DynamicObject>::namespaced_with(
        ctx.client.clone(),
        &ns,
        &kube::core::ApiResource::erase::<Release>(&()),
    )
    .patch_status(&obj.name_any(), &params, &Patch::Merge(&body))
    .await
    .map_err(Error::Kube)?;
    ctx.metrics.wrote("Release/status", "patch");
    if let Some(notice) = stall.notice {
        let event = Event {
            type_: EventType::Warning,
            reason: notice.kind.reason().to_owned(),
            note: Some(notice.message.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        match ctx.publish(obj, &event).await {
            Ok(()) => ctx.metrics.wrote("Event", "create"),
            Err(e) => tracing::warn!(error = %e, "publishing an event"),
        }
    }
    Ok(Requeue::await_change())
}

async fn reconcile_release(rel: Release, ctx: Arc<Context>) -> Result<Requeue, Error> {
    ctx.metrics.reconciled();
    let _timer = ctx.metrics.reconcile_started();
    let ns = rel.namespace().unwrap_or_default();
    let name = rel.name_any();
    let api: Api<Release> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = Cluster::new(
        ctx.client.clone(),
        ns.clone(),
        ctx.metrics.clone(),
        ctx.cache.clone(),
    );
    let status = rel.status.clone().unwrap_or_default();
    let deleting = rel.metadata.deletion_timestamp.is_some();
    if status.phase.is_some_and(|p| p.is_final()) {
        // The release is over: leave the user's Deployments as they wrote them
        // (nothing is written when that is already so).
        act::release_user_objects(&cluster, &rel).await?;
        if deleting || !crate::rollback_window::pending(&rel) {
            // What a restart or a receiver's recovery left undelivered.
            notify::hand_off(&ctx, &rel, &status);
            if deleting {
                let_go(&ctx, &cluster, &api, &rel, &status).await?;
            }
            return Ok(Requeue::await_change());
        }
    }

    let started = jiff::Timestamp::now();
    let world = observe::World::read(&ctx.cache, &rel)?;
    let mut obs = world.observations(&rel);
    obs.cross_team_limit = Some(ctx.config.cross_team_edges);
    obs.reach = ctx.config.reach();
    notify::observe(&ctx, &world.policy, &mut obs);
    let due = engine::due_measurements(&rel, started);
    let gates = engine::due_gates(&rel, started);
    if !due.is_empty() || !gates.is_empty() {
        (obs.measurements, obs.gates) =
            observe::ask_prometheus(&ctx, &rel, &world, &due, &gates, &ctx.config.prometheus_url)
                .await;
    }
    let now = jiff::Timestamp::now();
    let decision = engine::decide(&rel, &obs, now);

    let mut resource_version = rel.resource_version();
    // What this decision rests on, for writes that meet a conflict.
    let mut decided_from = rel.clone();
    // The versions this reconcile's writes replaced (see `cache::Written`).
    let mut replaced: Vec<String> = Vec::new();
    // Before the first change to the cluster, so that from then on deleting
    // the Release reverses the train instead of leaving it half done. A
    // Release being deleted gets no new finalizer (the API refuses it).
    if !decision.actions.is_empty() && !deleting && !has_finalizer(&rel) {
        // Over the version decided from, like the status write: a Release
        // changed since is decided again rather than written over.
        let body = json!({
            "apiVersion": Release::api_version(&()),
            "kind": Release::kind(&()),
            "metadata": {"name": name, "finalizers": [FINALIZER], "resourceVersion": resource_version},
        });
        let updated = write_over(&ctx, &api, &rel, body, Subresource::Main).await?;
        ctx.metrics.wrote("Release", "apply");
        decided_from.metadata.finalizers = updated.metadata.finalizers.clone();
        // The status write below guards on the version this decision saw,
        // which is now the one with the finalizer.
        replaced.extend(resource_version.take());
        resource_version = updated.resource_version();
        ctx.cache.written.remember(replaced.clone(), updated);
    }

    // A manual rollback was decided from the store; a Deployment someone
    // changed a moment ago, not in it yet, would be overwritten instead of
    // the rollback refused. Decide again once the store has caught up.
    let manual = decision
        .notices
        .iter()
        .any(|n| n.kind == NoticeKind::RollbackBegan(RollbackReason::Manual));
    if manual && world.behind(&cluster).await? {
        tracing::info!(
            "a Deployment changed since the store last saw it; deciding the rollback again"
        );
        return Ok(Requeue::requeue(Duration::from_millis(500)));
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
        let written = write_over(&ctx, &api, &decided_from, body, Subresource::Status).await?;
        ctx.metrics.wrote("Release/status", "apply");
        replaced.extend(resource_version);
        ctx.cache.written.remember(replaced, written);
        ctx.metrics.record(&ns, &decision);
    }
    // Only what is written: an announcement is never sent before the status
    // holding it is stored.
    notify::hand_off(&ctx, &rel, &decision.status);
    let done = decision.status.phase.unwrap_or_default();
    if deleting && (done.is_final() || done == crate::api::Phase::Pending) {
        act::release_user_objects(&cluster, &rel).await?;
        let_go(&ctx, &cluster, &api, &rel, &decision.status).await?;
        return Ok(Requeue::await_change());
    }
    Ok(match decision.requeue_after {
        Some(d) => Requeue::requeue(spread(d, rel.uid().as_deref().unwrap_or(&name))),
        None => Requeue::await_change(),
    })
}

/// Conflicts one write of a Release meets before the reconcile gives up and
/// decides again: each is another writer's change in the few milliseconds
/// between a fresh read and the write.
const CONFLICT_RETRIES: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subresource {
    Main,
    Status,
}

/// Server-side apply `body` to the Release (or its status) under the
/// resourceVersion it names, the version `decided_from` was decided from. The
/// precondition keeps a decision from being written over a Release changed
/// since; but a change the engine never reads (another writer's labels or
/// annotations: see `engine::decided_alike`) is no reason to decide again:
/// the Release is read afresh and the same body written over that version.
/// Without this, a neighbour relabelling the Release in a loop makes every
/// write conflict and the train never moves. The versions written over
/// unseen are older than the one written, which is how the cache tells them
/// (`cache::Written`).
async fn write_over(
    ctx: &Context,
    api: &Api<Release>,
    decided_from: &Release,
    mut body: serde_json::Value,
    to: Subresource,
) -> Result<Release, Error> {
    let name = decided_from.name_any();
    let kind = match to {
        Subresource::Main => "Release",
        Subresource::Status => "Release/status",
    };
    let mut conflicts = 0;
    loop {
        let params = cluster::apply_params();
        let sent = match to {
            Subresource::Main => api.patch(&name, &params, &Patch::Apply(&body)).await,
            Subresource::Status => api.patch_status(&name, &params, &Patch::Apply(&body)).await,
        };
        let status = match sent {
            Ok(written) => return Ok(written),
            Err(kube::Error::Api(s)) if s.code == 409 => s,
            Err(e) => return Err(Error::Kube(e)),
        };
        ctx.metrics.conflicted(kind, "apply");
        conflicts += 1;
        if conflicts > CONFLICT_RETRIES {
            tracing::info!(
                conflicts,
                "the Release keeps changing under this write; deciding again"
            );
            return Err(Error::Kube(kube::Error::Api(status)));
        }
        let fresh = api.get(&name).await.map_err(Error::Kube)?;
        if !engine::decided_alike(decided_from, &fresh) {
            tracing::info!("the Release changed since it was decided; deciding again");
            return Err(Error::Kube(kube::Error::Api(status)));
        }
        tracing::debug!(
            resource_version = ?fresh.resource_version(),
            "only labels or annotations of another writer changed; writing over them"
        );
        body["metadata"]["resourceVersion"] = json!(fresh.resource_version());
    }
}

/// The engine's wait, stretched by a part of it that is fixed per Release:
/// up to a tenth of the wait and at most 1 s. A thousand bakes that started
/// together then measure spread over that second instead of in one burst,
/// and each Release keeps its own steady rhythm. Never shorter than asked:
/// waking early would only find nothing due.
fn spread(after: Duration, key: &str) -> Duration {
    let most = (after / 10).min(Duration::from_secs(1));
    // FNV-1a: the same offset for the same Release in every process.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    after + most.mul_f64((hash % 1000) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeues_are_spread_per_release_never_early_and_by_at_most_a_second() {
        let bake = Duration::from_secs(20);
        let waits: Vec<Duration> = (0..100)
            .map(|i| spread(bake, &format!("uid-{i}")))
            .collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= bake && *w < bake + Duration::from_secs(1))
        );
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(
            distinct.len() > 90,
            "{} distinct waits of 100",
            distinct.len()
        );
        assert_eq!(spread(bake, "uid-1"), spread(bake, "uid-1"));
        let short = Duration::from_millis(500);
        assert!(spread(short, "uid-1") < short + Duration::from_millis(50));
    }
}
