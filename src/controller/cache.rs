//! What the controller holds of the cluster: one reflector store per kind,
//! filled by the same watches that wake the controller, so a reconcile reads
//! memory instead of the API server. Objects are trimmed before they enter a
//! store (nobody reads `managedFields` or kubectl's last-applied copy), the
//! Releases are indexed by the Deployments and routes they name, and the
//! Release this process last wrote is remembered until the store catches up.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, ContainerStatus, Namespace, Pod, PodStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::api::DynamicObject;
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Deserializer};

use crate::api::{
    FIELD_MANAGER, POLICY_LABEL, RELEASE_LABEL, Release, ReleaseApproval, ReleaseApprovalSpec,
    ReleasePolicy, ReleasePolicySpec, ReleaseSpec,
};
use crate::engine::{ApprovalObservation, PolicyObservation};
use crate::preflight::Claimant;
use crate::traffic::gateway::{POD_TEMPLATE_HASH, http_route_resource};

/// A stored Release as the operator reads it: the typed object, or what
/// failed to parse. One object the API server accepted but serde refuses (an
/// integer beyond its type, a duration the parser rejects) must not break the
/// list every other Release comes from, nor stop them.
#[derive(Clone, Debug)]
pub struct Readable(pub Result<Release, Unreadable>);

/// A Release that does not parse: its metadata, what failed and where.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub metadata: ObjectMeta,
    /// The path of the field and serde's reason, e.g.
    /// `spec.defaults.analysis.failureLimit: invalid value: integer `3000000000`, expected i32`.
    pub error: String,
    /// The stored status, untyped: what the stall is compared with.
    pub status: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Readable::from_value(value))
    }
}

impl Readable {
    pub fn from_value(mut value: serde_json::Value) -> Readable {
        match serde_path_to_error::deserialize::<_, Release>(&value) {
            Ok(rel) => Readable(Ok(rel)),
            Err(e) => {
                let metadata = value
                    .get_mut("metadata")
                    .map(serde_json::Value::take)
                    .and_then(|m| serde_json::from_value(m).ok())
                    .unwrap_or_default();
                Readable(Err(Unreadable {
                    metadata,
                    error: format!("{}: {}", e.path(), e.inner()),
                    status: value.get_mut("status").map(serde_json::Value::take),
                }))
            }
        }
    }

    pub fn release(&self) -> Option<&Release> {
        self.0.as_ref().ok()
    }
}

impl Resource for Readable {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        Release::kind(&())
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        Release::group(&())
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        Release::version(&())
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        Release::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(r) => r.meta(),
            Err(u) => &u.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(r) => r.meta_mut(),
            Err(u) => &mut u.metadata,
        }
    }
}

// ---- trimming -----------------------------------------------------------------

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The Deployment controller's revision, which `current_hash` matches.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Drop what no reconcile reads: kubectl's copy of the last applied object,
/// and `managedFields` but for one fieldless entry saying that Signalman
/// manages fields (`keep_ours`: what `release_fields` asks before it writes).
fn trim_meta(meta: &mut ObjectMeta, keep_ours: bool) {
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    let ours = keep_ours
        && meta
            .managed_fields
            .iter()
            .flatten()
            .any(|f| f.manager.as_deref() == Some(FIELD_MANAGER));
    meta.managed_fields = ours.then(|| {
        vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.to_owned()),
            ..ManagedFieldsEntry::default()
        }]
    });
}

fn keep_annotations(meta: &mut ObjectMeta, keep: impl Fn(&str) -> bool) {
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| keep(k));
    }
}

fn ours(annotation: &str) -> bool {
    annotation.starts_with("signalman.dev/")
}

pub fn trim_release(r: &mut Readable) {
    trim_meta(r.meta_mut(), false);
}

/// The pod template stays whole (the baseline copies it); of the
/// Deployment's own annotations only the revision and Signalman's are read.
pub fn trim_deployment(d: &mut Deployment) {
    let writers = container_writers(d.metadata.managed_fields.clone());
    trim_meta(&mut d.metadata, true);
    keep_annotations(&mut d.metadata, |k| k == REVISION || ours(k));
    // Who wrote which image or env var, to say who changed what (drift).
    if !writers.is_empty() {
        let ours = d.metadata.managed_fields.take().unwrap_or_default();
        d.metadata.managed_fields = Some(ours.into_iter().chain(writers).collect());
    }
}

/// Of a Deployment's `managedFields`, the entries that own fields of its
/// containers, with only those fields kept.
fn container_writers(entries: Option<Vec<ManagedFieldsEntry>>) -> Vec<ManagedFieldsEntry> {
    entries
        .into_iter()
        .flatten()
        .filter_map(|mut e| {
            let containers = e
                .fields_v1
                .as_ref()
                .and_then(|f| super::template::containers_of(&f.0))?
                .clone();
            e.fields_v1 = Some(FieldsV1(serde_json::json!({
                "f:spec": {"f:template": {"f:spec": {"f:containers": containers}}}
            })));
            e.api_version = None;
            e.fields_type = None;
            e.subresource = None;
            Some(e)
        })
        .collect()
}

pub fn trim_service(s: &mut Service) {
    trim_meta(&mut s.metadata, true);
    keep_annotations(&mut s.metadata, ours);
}

pub fn trim_revision(cr: &mut ControllerRevision) {
    trim_meta(&mut cr.metadata, false);
}

pub fn trim_route(r: &mut DynamicObject) {
    trim_meta(&mut r.metadata, true);
}

/// Policies and approvals are read for their spec, name and age only.
pub fn trim_dynamic(o: &mut DynamicObject) {
    trim_meta(&mut o.metadata, false);
    keep_annotations(&mut o.metadata, |_| false);
    o.metadata.labels = None;
}

/// A namespace is read for one label: the policy its Releases follow.
pub fn trim_namespace(n: &mut PartialObjectMeta<Namespace>) {
    let m = &mut n.metadata;
    trim_meta(m, false);
    m.annotations = None;
    m.finalizers = None;
    if let Some(l) = m.labels.as_mut() {
        l.retain(|k, _| k == POLICY_LABEL);
    }
}

/// A ReplicaSet is read for its pod-template-hash only: which Deployment
/// owns it, at which revision.
pub fn trim_replica_set(rs: &mut PartialObjectMeta<ReplicaSet>) {
    let m = &mut rs.metadata;
    trim_meta(m, false);
    keep_annotations(m, |k| k == REVISION);
    if let Some(l) = m.labels.as_mut() {
        l.retain(|k, _| k == POD_TEMPLATE_HASH);
    }
    if let Some(o) = m.owner_references.as_mut() {
        o.retain(|o| o.controller == Some(true));
    }
    m.generate_name = None;
    m.finalizers = None;
}

/// Labels Signalman set on the Jobs and pods it made: the only ones read.
fn keep_our_labels(meta: &mut ObjectMeta) {
    if let Some(l) = meta.labels.as_mut() {
        l.retain(|k, _| k.starts_with("signalman.dev/"));
    }
}

/// A migration Job is read for its conditions: the engine wants to know
/// whether it runs, completed or failed, and why. Its template is the Release's.
pub fn trim_job(j: &mut Job) {
    trim_meta(&mut j.metadata, false);
    j.metadata.annotations = None;
    keep_our_labels(&mut j.metadata);
    j.spec = None;
    j.status = j.status.take().map(|s| JobStatus {
        conditions: s.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| JobCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    ..JobCondition::default()
                })
                .collect()
        }),
        ..JobStatus::default()
    });
}

/// A migration Job's pod is read for one thing: the termination message of
/// a container that failed (its last log lines), and which Job it belongs to.
pub fn trim_pod(p: &mut Pod) {
    let m = &mut p.metadata;
    trim_meta(m, false);
    m.annotations = None;
    m.generate_name = None;
    m.finalizers = None;
    keep_our_labels(m);
    if let Some(o) = m.owner_references.as_mut() {
        o.retain(|o| o.controller == Some(true));
    }
    p.spec = None;
    let terminated = |s: Option<ContainerState>| {
        s.and_then(|s| s.terminated).map(|t| ContainerState {
            terminated: Some(t),
            ..ContainerState::default()
        })
    };
    p.status = p.status.take().map(|s| PodStatus {
        phase: s.phase,
        container_statuses: s.container_statuses.map(|cs| {
            cs.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    state: terminated(c.state),
                    last_state: terminated(c.last_state),
                    ..ContainerStatus::default()
                })
                .collect()
        }),
        ..PodStatus::default()
    });
}

/// A ConfigMap is read for its data (a flag's keys) and whether Signalman
/// manages fields of it (to give them back when the release ends).
pub fn trim_config_map(cm: &mut ConfigMap) {
    let m = &mut cm.metadata;
    trim_meta(m, true);
    m.annotations = None;
    m.labels = None;
    m.finalizers = None;
    m.owner_references = None;
    cm.binary_data = None;
}

/// A Secret of the operator's namespace is read for the data a notification
/// receiver names (its webhook URL), nothing else.
pub fn trim_secret(s: &mut Secret) {
    let m = &mut s.metadata;
    trim_meta(m, false);
    m.annotations = None;
    m.labels = None;
    m.finalizers = None;
    m.owner_references = None;
    s.string_data = None;
}

// ---- the index from what a Release names to the Release ------------------------

type Key = (String, String);

#[derive(Debug, Default)]
struct Names {
    deployments: HashMap<Key, BTreeSet<String>>,
    routes: HashMap<Key, BTreeSet<String>>,
    /// The ConfigMaps of flag services.
    config_maps: HashMap<Key, BTreeSet<String>>,
    /// What each Release (namespace, name) named when last seen: its
    /// Deployments, routes and ConfigMaps.
    named: HashMap<Key, [Vec<String>; 3]>,
    /// Releases seen since a re-list began.
    relisting: Option<HashSet<Key>>,
}

impl Names {
    fn indexes(&mut self) -> [&mut HashMap<Key, BTreeSet<String>>; 3] {
        [
            &mut self.deployments,
            &mut self.routes,
            &mut self.config_maps,
        ]
    }

    fn forget(&mut self, key: &Key) {
        let Some(named) = self.named.remove(key) else {
            return;
        };
        for (index, names) in self.indexes().into_iter().zip(named) {
            for n in names {
                let k = (key.0.clone(), n);
                if let Some(set) = index.get_mut(&k) {
                    set.remove(&key.1);
                    if set.is_empty() {
                        index.remove(&k);
                    }
                }
            }
        }
    }

    fn insert(&mut self, r: &Readable) {
        let key = (r.namespace().unwrap_or_default(), r.name_any());
        self.forget(&key);
        if let Some(relisting) = self.relisting.as_mut() {
            relisting.insert(key.clone());
        }
        // An unreadable Release names nothing: it cannot act.
        let Some(rel) = r.release() else {
            return;
        };
        let services = &rel.spec.services;
        let named: [Vec<String>; 3] = [
            services
                .iter()
                .filter_map(|s| s.deployment())
                .map(str::to_owned)
                .collect(),
            services
                .iter()
                .filter_map(|s| s.traffic.as_ref()?.gateway_api.as_ref())
                .map(|g| g.http_route.clone())
                .collect(),
            services
                .iter()
                .filter_map(|s| s.flag.as_ref()?.config_map.clone())
                .collect(),
        ];
        for (index, names) in self.indexes().into_iter().zip(&named) {
            for n in names {
                index
                    .entry((key.0.clone(), n.clone()))
                    .or_default()
                    .insert(key.1.clone());
            }
        }
        self.named.insert(key, named);
    }
}

/// Which Releases name a Deployment, an HTTPRoute or a flag's ConfigMap, kept up to date from
/// the Release watch, so that an event on one of them wakes those Releases
/// without a scan of every Release.
#[derive(Clone, Debug, Default)]
pub struct Naming(Arc<RwLock<Names>>);

impl Naming {
    /// Follow one event of the Release watch.
    pub fn apply(&self, event: &watcher::Event<Readable>) {
        let mut n = self.0.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(r) | watcher::Event::InitApply(r) => n.insert(r),
            watcher::Event::Delete(r) => {
                n.forget(&(r.namespace().unwrap_or_default(), r.name_any()));
            }
            watcher::Event::Init => n.relisting = Some(HashSet::new()),
            watcher::Event::InitDone => {
                // Gone while the watch was away: in the old list, not the new.
                if let Some(seen) = n.relisting.take() {
                    let gone: Vec<Key> = n
                        .named
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for k in gone {
                        n.forget(&k);
                    }
                }
            }
        }
    }

    fn lookup(
        &self,
        which: fn(&Names) -> &HashMap<Key, BTreeSet<String>>,
        ns: &str,
        name: &str,
    ) -> Vec<ObjectRef<Readable>> {
        let n = self.0.read().unwrap_or_else(|e| e.into_inner());
        which(&n)
            .get(&(ns.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .map(|r| ObjectRef::new(r).within(ns))
            .collect()
    }

    /// The Releases in `ns` with a service on Deployment `name`.
    pub fn deployment(&self, ns: &str, name: &str) -> Vec<ObjectRef<Readable>> {
        self.lookup(|n| &n.deployments, ns, name)
    }

    /// The Releases in `ns` with a service routed through HTTPRoute `name`.
    pub fn route(&self, ns: &str, name: &str) -> Vec<ObjectRef<Readable>> {
        self.lookup(|n| &n.routes, ns, name)
    }

    /// The Releases in `ns` with a flag service on ConfigMap `name`.
    pub fn config_map(&self, ns: &str, name: &str) -> Vec<ObjectRef<Readable>> {
        self.lookup(|n| &n.config_maps, ns, name)
    }
}

/// The Release a Job or pod of a migration belongs to: its label
/// `signalman.dev/release`, in its namespace.
pub fn labelled(meta: &ObjectMeta) -> Option<ObjectRef<Readable>> {
    let release = meta.labels.as_ref()?.get(RELEASE_LABEL)?;
    Some(ObjectRef::new(release).within(meta.namespace.as_deref()?))
}

/// The Release an object belongs to, from its ownerReferences (canaries,
/// their Services, baselines).
pub fn owners(meta: &ObjectMeta) -> Vec<ObjectRef<Readable>> {
    let api_version = Release::api_version(&());
    meta.owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == Release::kind(&()) && o.api_version == api_version)
        .map(|o| {
            let r = ObjectRef::new(&o.name);
            match &meta.namespace {
                Some(ns) => r.within(ns),
                None => r,
            }
        })
        .collect()
}

// ---- what this process wrote ---------------------------------------------------

#[derive(Debug)]
struct Wrote {
    uid: String,
    /// The versions our writes replaced: a store still holding one of them
    /// has not seen the write yet.
    replaced: Vec<String>,
    object: Arc<Release>,
}

impl Wrote {
    /// `version` came before the one we wrote. A write retried over another
    /// writer's change (see `write_over` in the controller) replaced versions
    /// it never saw, which the watch may still deliver; the API server's
    /// resourceVersions are comparable integers (etcd revisions; Kubernetes'
    /// "comparable resource version" semantics), so those are told by order.
    /// A version that is not an integer is never read as older.
    fn older(&self, version: &str) -> bool {
        let wrote = self.object.metadata.resource_version.as_deref();
        match (version.parse::<u64>(), wrote.map(str::parse::<u64>)) {
            (Ok(seen), Some(Ok(wrote))) => seen < wrote,
            _ => false,
        }
    }
}

/// The Release as this process last wrote it (the API server's answer to the
/// finalizer or status write), until the store holds that version or a later one.
///
/// Why this is as safe as reading the Release fresh: every write of ours is
/// made over the version the decision was made from (the status write carries
/// it as a resourceVersion precondition; a write retried over another
/// writer's labels goes over a later version the engine reads alike, and
/// the versions in between are older than ours), so the versions of one Release the
/// store can show after our write are exactly: one our write replaced (the
/// watch has not delivered it yet: decide from what we wrote, which is what
/// the API server holds unless someone wrote since, and then the status
/// write's precondition fails and nothing is recorded), the one we wrote, or
/// a later one. None of them lets a decision start from a status older than
/// one this process wrote, so no transition is made twice. A status write
/// that failed is not remembered: the store's version is then what the API
/// server has.
#[derive(Clone, Debug, Default)]
pub struct Written(Arc<Mutex<HashMap<Key, Wrote>>>);

impl Written {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Wrote>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Release to decide from: `cached`, unless it is a version one of
    /// our own writes already replaced.
    pub fn freshest(&self, cached: &Release) -> Release {
        let key = (cached.namespace().unwrap_or_default(), cached.name_any());
        let mut w = self.lock();
        if let Some(wrote) = w.get(&key) {
            let same_object = cached.metadata.uid.as_deref() == Some(wrote.uid.as_str());
            let behind = cached
                .metadata
                .resource_version
                .as_ref()
                .is_some_and(|v| wrote.replaced.contains(v) || wrote.older(v));
            if same_object && behind {
                return (*wrote.object).clone();
            }
            // The store caught up (or the Release was replaced): it is the truth again.
            w.remove(&key);
        }
        cached.clone()
    }

    /// Our write replaced the versions `replaced` and produced `written`.
    pub fn remember(&self, replaced: Vec<String>, written: Release) {
        let (Some(uid), Some(_)) = (
            written.metadata.uid.clone(),
            written.metadata.resource_version.as_ref(),
        ) else {
            return;
        };
        let key = (written.namespace().unwrap_or_default(), written.name_any());
        self.lock().insert(
            key,
            Wrote {
                uid,
                replaced,
                object: Arc::new(written),
            },
        );
    }

    pub fn forget(&self, rel: &Release) {
        self.lock()
            .remove(&(rel.namespace().unwrap_or_default(), rel.name_any()));
    }
}

// ---- the stores ------------------------------------------------------------------

/// Every store the controller reads, cheap to clone.
#[derive(Clone)]
pub struct Cache {
    pub releases: Store<Readable>,
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub baselines: Store<ControllerRevision>,
    pub routes: Store<DynamicObject>,
    pub replica_sets: Store<PartialObjectMeta<ReplicaSet>>,
    /// ReleasePolicies (cluster-scoped), untyped: one that does not parse
    /// fails the Releases that follow it, not the list of all of them.
    pub policies: Store<DynamicObject>,
    /// Every namespace's metadata, for the label naming its policy.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// ReleaseApprovals of the watched namespaces, untyped like the policies.
    pub approvals: Store<DynamicObject>,
    /// Migration Jobs (label `signalman.dev/release`).
    pub jobs: Store<Job>,
    /// Their pods (same label), for a failed one's last log lines.
    pub pods: Store<Pod>,
    /// The ConfigMaps of the watched namespaces, for flags.
    pub config_maps: Store<ConfigMap>,
    /// The Secrets of the operator's own namespace, for notification
    /// receivers' webhook URLs (see `notify`).
    pub secrets: Store<Secret>,
    pub naming: Naming,
    pub written: Written,
    /// The kinds whose watch the API server refuses (forbidden, or not
    /// served): the controller goes on without them.
    pub unavailable: Unavailable,
    route_type: ApiResource,
    policy_type: ApiResource,
    filled: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The policy kinds the controller can do without. Before issue 12 an
/// operator needed none of them; one whose ServiceAccount may not list
/// ReleasePolicies, or a cluster without the new CRDs, keeps running
/// Releases as before instead of waiting for a list that never comes.
#[derive(Clone, Debug, Default)]
pub struct Unavailable(Arc<tokio::sync::watch::Sender<BTreeMap<&'static str, String>>>);

/// The probe's and the log's names of the watches [`Unavailable`] covers.
pub const POLICY_WATCH: &str = "ReleasePolicy";
pub const NAMESPACE_WATCH: &str = "Namespace labels";
pub const APPROVAL_WATCH: &str = "ReleaseApproval";
/// Secrets in the operator's namespace: without them, receivers go unused.
pub const SECRET_WATCH: &str = "Secret";

impl Unavailable {
    /// The watch of `kind` was refused with `why`; true the first time (worth a warning).
    pub fn refused(&self, kind: &'static str, why: String) -> bool {
        self.0.send_if_modified(|m| m.insert(kind, why).is_none())
    }

    /// The watch of `kind` listed after all (e.g. RBAC was granted since).
    pub fn listed(&self, kind: &'static str) {
        self.0.send_if_modified(|m| m.remove(kind).is_some());
    }

    pub fn is(&self, kind: &str) -> bool {
        self.0.borrow().contains_key(kind)
    }

    /// Why the watch of `kind` is refused, while it is.
    pub fn why(&self, kind: &str) -> Option<String> {
        self.0.borrow().get(kind).cloned()
    }

    /// Once `kind` is refused.
    async fn wait(&self, kind: &str) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|m| m.contains_key(kind)).await;
    }
}

/// The writing halves of [`Cache`]'s stores, handed to the watches once.
pub struct Writers {
    pub releases: Writer<Readable>,
    pub deployments: Writer<Deployment>,
    pub services: Writer<Service>,
    pub baselines: Writer<ControllerRevision>,
    pub routes: Writer<DynamicObject>,
    pub replica_sets: Writer<PartialObjectMeta<ReplicaSet>>,
    pub policies: Writer<DynamicObject>,
    pub namespaces: Writer<PartialObjectMeta<Namespace>>,
    pub approvals: Writer<DynamicObject>,
    pub jobs: Writer<Job>,
    pub pods: Writer<Pod>,
    pub config_maps: Writer<ConfigMap>,
    pub secrets: Writer<Secret>,
}

impl Cache {
    pub fn new() -> (Cache, Writers) {
        let route_type = http_route_resource();
        let policy_type = ApiResource::erase::<ReleasePolicy>(&());
        let writers = Writers {
            releases: Writer::default(),
            deployments: Writer::default(),
            services: Writer::default(),
            baselines: Writer::default(),
            routes: Writer::new(route_type.clone()),
            replica_sets: Writer::default(),
            policies: Writer::new(policy_type.clone()),
            namespaces: Writer::default(),
            approvals: Writer::new(ApiResource::erase::<ReleaseApproval>(&())),
            jobs: Writer::default(),
            pods: Writer::default(),
            config_maps: Writer::default(),
            secrets: Writer::default(),
        };
        let cache = Cache {
            releases: writers.releases.as_reader(),
            deployments: writers.deployments.as_reader(),
            services: writers.services.as_reader(),
            baselines: writers.baselines.as_reader(),
            routes: writers.routes.as_reader(),
            replica_sets: writers.replica_sets.as_reader(),
            policies: writers.policies.as_reader(),
            namespaces: writers.namespaces.as_reader(),
            approvals: writers.approvals.as_reader(),
            jobs: writers.jobs.as_reader(),
            pods: writers.pods.as_reader(),
            config_maps: writers.config_maps.as_reader(),
            secrets: writers.secrets.as_reader(),
            naming: Naming::default(),
            written: Written::default(),
            unavailable: Unavailable::default(),
            route_type,
            policy_type,
            filled: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        (cache, writers)
    }

    /// Once every store holds its first complete list. Before that a
    /// reconcile would take a Deployment not listed yet for one deleted.
    pub async fn filled(&self) {
        let mut filled = self.filled.subscribe();
        let _ = filled.wait_for(|f| *f).await;
    }

    /// Wait for the stores to be filled, then release every [`Cache::filled`].
    /// Called once: a store's own readiness wakes only the last of the tasks
    /// waiting on it, so the reconciles wait here instead. The Release store
    /// is not awaited: the controller waits for it itself, and reconciles only
    /// once it is filled.
    pub async fn fill(&self) {
        let _ = futures::join!(
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.baselines.wait_until_ready(),
            self.routes.wait_until_ready(),
            self.replica_sets.wait_until_ready(),
            self.jobs.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.ready_or_refused(&self.policies, POLICY_WATCH),
            self.ready_or_refused(&self.namespaces, NAMESPACE_WATCH),
            self.ready_or_refused(&self.approvals, APPROVAL_WATCH),
            self.ready_or_refused(&self.secrets, SECRET_WATCH),
        );
        self.filled.send_replace(true);
    }

    async fn ready_or_refused<K>(&self, store: &Store<K>, kind: &str)
    where
        K: Resource + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        tokio::select! {
            _ = store.wait_until_ready() => {}
            () = self.unavailable.wait(kind) => {}
        }
    }

    /// The ReleasePolicy that applies to `rel`: the one it names
    /// (`spec.policy`), else the one its namespace's label names, else
    /// `default`. One named but absent is `Missing`; none named and no
    /// `default` is `None` (the Release behaves as before policies). When the
    /// policies cannot be listed at all, `None` too.
    pub fn policy_of(&self, rel: &Release) -> PolicyObservation {
        if self.unavailable.is(POLICY_WATCH) {
            return PolicyObservation::None;
        }
        let ns = rel.namespace().unwrap_or_default();
        let label = self.namespace_policy(&ns);
        resolve_policy(&rel.spec, label.as_deref(), |name| self.policy(name))
    }

    /// The policy named by the label of namespace `ns`, if any.
    pub fn namespace_policy(&self, ns: &str) -> Option<String> {
        let n = self.namespaces.get(&ObjectRef::new(ns))?;
        n.metadata.labels.as_ref()?.get(POLICY_LABEL).cloned()
    }

    /// ReleasePolicy `name`: absent, or its spec (or why it does not parse).
    fn policy(&self, name: &str) -> Option<Result<ReleasePolicySpec, String>> {
        let p = self
            .policies
            .get(&ObjectRef::new_with(name, self.policy_type.clone()))?;
        let spec = p.data.get("spec").cloned().unwrap_or(serde_json::json!({}));
        Some(
            serde_path_to_error::deserialize::<_, ReleasePolicySpec>(spec)
                .map_err(|e| format!("spec.{}: {}", e.path(), e.inner())),
        )
    }

    /// The ReleaseApprovals in `ns` naming Release `release`, oldest first.
    /// One that does not parse counts for nothing (the API server's schema
    /// makes that next to impossible).
    pub fn approvals_of(&self, ns: &str, release: &str) -> Vec<ApprovalObservation> {
        let mut out: Vec<ApprovalObservation> = self
            .approvals
            .state_filter(|a| {
                a.metadata.namespace.as_deref() == Some(ns)
                    && a.data["spec"]["release"].as_str() == Some(release)
            })
            .into_iter()
            .filter_map(|a| {
                let spec: ReleaseApprovalSpec =
                    match serde_json::from_value(a.data["spec"].clone()) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(approval = %a.name_any(), error = %e, "unreadable ReleaseApproval ignored");
                            return None;
                        }
                    };
                Some(ApprovalObservation {
                    name: a.name_any(),
                    spec,
                    at: a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
        out
    }

    /// The Releases still under way that follow ReleasePolicy `name` (for a
    /// change of it to wake them).
    pub fn following(&self, name: &str) -> Vec<ObjectRef<Readable>> {
        self.releases
            .state()
            .iter()
            .filter_map(|r| r.release())
            .filter(|r| {
                !r.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.is_final())
            })
            .filter(|r| {
                let ns = r.namespace().unwrap_or_default();
                signalman_core::policy::named(&r.spec, self.namespace_policy(&ns).as_deref()).0
                    == name
            })
            .map(|r| ObjectRef::new(&r.name_any()).within(&r.namespace().unwrap_or_default()))
            .collect()
    }

    /// The Releases still under way in namespace `ns`.
    pub fn under_way_in(&self, ns: &str) -> Vec<ObjectRef<Readable>> {
        self.releases
            .state_filter(|r| r.metadata_namespace() == Some(ns))
            .iter()
            .filter_map(|r| r.release())
            .filter(|r| {
                !r.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p.is_final())
            })
            .map(|r| ObjectRef::new(&r.name_any()).within(ns))
            .collect()
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Option<Deployment> {
        get(&self.deployments, ObjectRef::new(name).within(ns))
    }

    pub fn service(&self, ns: &str, name: &str) -> Option<Service> {
        get(&self.services, ObjectRef::new(name).within(ns))
    }

    pub fn baseline(&self, ns: &str, name: &str) -> Option<ControllerRevision> {
        get(&self.baselines, ObjectRef::new(name).within(ns))
    }

    pub fn route(&self, ns: &str, name: &str) -> Option<DynamicObject> {
        get(
            &self.routes,
            ObjectRef::new_with(name, self.route_type.clone()).within(ns),
        )
    }

    pub fn job(&self, ns: &str, name: &str) -> Option<Job> {
        get(&self.jobs, ObjectRef::new(name).within(ns))
    }

    /// The pods in `ns` controlled by the object with uid `owner`.
    pub fn pods_of(&self, ns: &str, owner: &str) -> Vec<Pod> {
        self.pods
            .state_filter(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == owner)
            })
            .into_iter()
            .map(|p| (*p).clone())
            .collect()
    }

    pub fn config_map(&self, ns: &str, name: &str) -> Option<ConfigMap> {
        get(&self.config_maps, ObjectRef::new(name).within(ns))
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        get(&self.secrets, ObjectRef::new(name).within(ns))
    }

    /// The metadata of the ReplicaSets in `ns` controlled by one of `owners` (uids).
    pub fn replica_sets(&self, ns: &str, owners: &[&str]) -> Vec<ObjectMeta> {
        if owners.is_empty() {
            return Vec::new();
        }
        self.replica_sets
            .state_filter(|rs| {
                rs.metadata.namespace.as_deref() == Some(ns)
                    && rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| owners.contains(&o.uid.as_str()))
            })
            .into_iter()
            .map(|rs| rs.metadata.clone())
            .collect()
    }

    /// The Releases in `ns`, for the claim rule (unreadable ones claim nothing).
    pub fn claimants(&self, ns: &str) -> Vec<Claimant> {
        self.releases
            .state_filter(|r| r.metadata_namespace() == Some(ns))
            .iter()
            .filter_map(|r| r.release().map(Claimant::of))
            .collect()
    }

    /// Whether Signalman manages fields of this object, as far as the
    /// store knows; `None` when the kind is not cached or the object is not
    /// (yet) in the store.
    pub fn managed_by_us(&self, kind: &str, ns: &str, name: &str) -> Option<bool> {
        let meta = match kind {
            "Deployment" => self.deployment(ns, name).map(|o| o.metadata),
            "Service" => self.service(ns, name).map(|o| o.metadata),
            "ConfigMap" => self.config_map(ns, name).map(|o| o.metadata),
            k if k == self.route_type.kind => self.route(ns, name).map(|o| o.metadata),
            _ => None,
        }?;
        Some(
            meta.managed_fields
                .iter()
                .flatten()
                .any(|f| f.manager.as_deref() == Some(FIELD_MANAGER)),
        )
    }
}

/// [`Cache::policy_of`] without the stores: the core's naming rule
/// (`policy::named`), then `lookup` finds the policy (absent: `None`;
/// present but unreadable: `Some(Err(why))`).
pub fn resolve_policy(
    spec: &ReleaseSpec,
    label: Option<&str>,
    lookup: impl Fn(&str) -> Option<Result<ReleasePolicySpec, String>>,
) -> PolicyObservation {
    let (name, named_by) = signalman_core::policy::named(spec, label);
    let name = name.as_str();
    let named_by = named_by.as_deref();
    match (lookup(name), named_by) {
        (Some(Ok(spec)), _) => PolicyObservation::Found {
            name: name.to_owned(),
            spec,
        },
        // Never taken for none: the Release waits for the policy to be fixed.
        (Some(Err(error)), _) => PolicyObservation::Unreadable {
            name: name.to_owned(),
            error,
        },
        (None, Some(named_by)) => PolicyObservation::Missing {
            name: name.to_owned(),
            named_by: named_by.to_owned(),
        },
        (None, None) => PolicyObservation::None,
    }
}

impl Readable {
    fn metadata_namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }
}

fn get<K>(store: &Store<K>, key: ObjectRef<K>) -> Option<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.get(&key).map(|o| (*o).clone())
}

// ---- several namespaces, one store -----------------------------------------------

/// One watch per namespace, merged for one store. A store swaps in its whole
/// content when a list completes, so the lists of two namespaces would wipe
/// each other's objects. Here the store is filled once every namespace has
/// listed (what arrives before goes into the store's buffer, deletions are
/// applied right after), so `Store::wait_until_ready` still means "all
/// listed"; after that each namespace's re-list becomes `Apply` events, and a
/// `Delete` for each object of that namespace the store still holds and the
/// new list lacks. A single watch passes through unchanged.
pub fn merge_namespaces<K, S>(
    watches: Vec<(String, S)>,
    store: Store<K>,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    if watches.len() == 1 {
        let (_, only) = watches.into_iter().next().expect("one watch");
        return only.boxed();
    }
    let mut merge = Merge {
        unlisted: watches.iter().map(|(ns, _)| ns.clone()).collect(),
        deleted_early: Vec::new(),
        relisting: BTreeMap::new(),
        store,
    };
    let tagged = watches
        .into_iter()
        .map(|(ns, s)| s.map(move |e| (ns.clone(), e)).boxed());
    futures::stream::select_all(tagged)
        .flat_map(move |(ns, event)| futures::stream::iter(merge.event(ns, event)))
        .boxed()
}

struct Merge<K>
where
    K: Resource + 'static,
    K::DynamicType: Eq + std::hash::Hash,
{
    /// Namespaces that have not listed yet; the store is filled when none is left.
    unlisted: BTreeSet<String>,
    /// Deleted before the store was filled, so still in its buffer.
    deleted_early: Vec<K>,
    /// Names seen by each namespace's re-list in progress.
    relisting: BTreeMap<String, HashSet<String>>,
    store: Store<K>,
}

impl<K> Merge<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn event(
        &mut self,
        ns: String,
        event: Result<watcher::Event<K>, watcher::Error>,
    ) -> Vec<Result<watcher::Event<K>, watcher::Error>> {
        use watcher::Event::*;
        let filling = !self.unlisted.is_empty();
        let Ok(event) = event else {
            return vec![event];
        };
        match event {
            // Into the buffer until every namespace has listed.
            Init | InitApply(_) | Apply(_) | InitDone if filling => match event {
                InitApply(o) | Apply(o) => vec![Ok(InitApply(o))],
                InitDone => {
                    self.unlisted.remove(&ns);
                    if !self.unlisted.is_empty() {
                        return Vec::new();
                    }
                    std::iter::once(Ok(InitDone))
                        .chain(self.deleted_early.drain(..).map(|o| Ok(Delete(o))))
                        .collect()
                }
                _ => Vec::new(),
            },
            Delete(o) if filling => {
                self.deleted_early.push(o);
                Vec::new()
            }
            Init => {
                self.relisting.insert(ns, HashSet::new());
                Vec::new()
            }
            InitApply(o) => {
                if let Some(seen) = self.relisting.get_mut(&ns) {
                    seen.insert(o.name_any());
                }
                vec![Ok(Apply(o))]
            }
            InitDone => {
                let seen = self.relisting.remove(&ns).unwrap_or_default();
                self.store
                    .state_filter(|o| {
                        o.meta().namespace.as_deref() == Some(ns.as_str())
                            && !seen.contains(&o.name_any())
                    })
                    .into_iter()
                    .map(|o| Ok(Delete((*o).clone())))
                    .collect()
            }
            other => vec![Ok(other)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use serde_json::json;

    fn release(ns: &str, name: &str, deployments: &[&str]) -> Readable {
        let spec = deployments
            .iter()
            .fold(signalman_core::testing::spec(), |b, d| {
                b.service(*d, None::<String>)
            })
            .build();
        let mut rel = Release::new(name, spec);
        rel.metadata.namespace = Some(ns.into());
        Readable(Ok(rel))
    }

    fn names(refs: Vec<ObjectRef<Readable>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn the_index_follows_releases_as_they_change_and_go() {
        let n = Naming::default();
        n.apply(&watcher::Event::Apply(release(
            "shop",
            "r1",
            &["web", "api"],
        )));
        n.apply(&watcher::Event::Apply(release("shop", "r2", &["web"])));
        n.apply(&watcher::Event::Apply(release("other", "r3", &["web"])));
        assert_eq!(names(n.deployment("shop", "web")), ["r1", "r2"]);
        assert_eq!(names(n.deployment("other", "web")), ["r3"]);
        // r1 no longer names web.
        n.apply(&watcher::Event::Apply(release("shop", "r1", &["api"])));
        assert_eq!(names(n.deployment("shop", "web")), ["r2"]);
        assert_eq!(names(n.deployment("shop", "api")), ["r1"]);
        n.apply(&watcher::Event::Delete(release("shop", "r2", &["web"])));
        assert!(n.deployment("shop", "web").is_empty());
        // A re-list without r1 forgets it; r3 listed again stays.
        n.apply(&watcher::Event::Init);
        n.apply(&watcher::Event::InitApply(release("other", "r3", &["web"])));
        n.apply(&watcher::Event::InitDone);
        assert!(n.deployment("shop", "api").is_empty());
        assert_eq!(names(n.deployment("other", "web")), ["r3"]);
    }

    #[test]
    fn a_flags_config_map_wakes_its_release_and_a_job_names_no_deployment() {
        let r = Readable::from_value(json!({
            "apiVersion": "signalman.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "r1", "namespace": "shop"},
            "spec": {"owner": "t", "services": [
                {"name": "api", "deployment": "api", "change": {"images": {"app": "a:2"}}},
                {"name": "db", "job": {"forward": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}},
                    "irreversible": {"justification": "drops a column"}}},
                {"name": "on", "dependsOn": ["api"],
                 "flag": {"configMap": "flags", "keys": {"checkout-v2": "on"}}},
            ]},
        }));
        assert!(r.release().is_some(), "{r:?}");
        let n = Naming::default();
        n.apply(&watcher::Event::Apply(r.clone()));
        assert_eq!(names(n.config_map("shop", "flags")), ["r1"]);
        assert!(n.config_map("other", "flags").is_empty());
        assert_eq!(names(n.deployment("shop", "api")), ["r1"]);
        assert!(
            n.deployment("shop", "").is_empty(),
            "a job or flag names no Deployment"
        );
        n.apply(&watcher::Event::Delete(r));
        assert!(n.config_map("shop", "flags").is_empty());
    }

    #[test]
    fn an_unparsable_release_keeps_its_name_and_says_which_field() {
        let r = Readable::from_value(json!({
            "apiVersion": "signalman.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "bad", "namespace": "shop", "resourceVersion": "7"},
            "spec": {
                "services": [],
                "defaults": {"analysis": {"failureLimit": 3000000000u64}},
            },
            "status": {"phase": "Pending"},
        }));
        let Err(u) = &r.0 else {
            panic!("parsed: {r:?}")
        };
        assert_eq!(r.name_any(), "bad");
        assert!(
            u.error.starts_with("spec.defaults.analysis.failureLimit: "),
            "{}",
            u.error
        );
        assert!(u.error.contains("3000000000"), "{}", u.error);
        assert_eq!(u.status, Some(json!({"phase": "Pending"})));
    }

    #[test]
    fn trimming_keeps_that_signalman_manages_fields_and_who_wrote_containers() {
        let mut d = Deployment::default();
        d.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{...}".to_string()),
                (REVISION.to_string(), "3".to_string()),
                ("team".to_string(), "x".to_string()),
            ]
            .into(),
        );
        let entry = |m: &str| ManagedFieldsEntry {
            manager: Some(m.into()),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                json!({"f:spec": {}}),
            )),
            ..Default::default()
        };
        d.metadata.managed_fields = Some(vec![entry("kubectl"), entry(FIELD_MANAGER)]);
        trim_deployment(&mut d);
        assert_eq!(
            d.metadata.annotations,
            Some([(REVISION.to_string(), "3".to_string())].into())
        );
        let kept = d.metadata.managed_fields.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].manager.as_deref(), Some(FIELD_MANAGER));
        assert_eq!(kept[0].fields_v1, None);
        d = Deployment::default();
        d.metadata.managed_fields = Some(vec![entry("kubectl")]);
        trim_deployment(&mut d);
        assert_eq!(d.metadata.managed_fields, None);
        // Who wrote a container's fields is kept (drift says who changed
        // what), those fields only.
        let containers = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {
            "f:containers": {r#"k:{"name":"app"}"#: {"f:image": {}}},
            "f:volumes": {}
        }}}});
        let mut argo = entry("argocd-controller");
        argo.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
            containers,
        ));
        d.metadata.managed_fields = Some(vec![entry("kubectl"), argo, entry(FIELD_MANAGER)]);
        trim_deployment(&mut d);
        let kept = d.metadata.managed_fields.unwrap();
        let managers: Vec<_> = kept.iter().map(|m| m.manager.as_deref()).collect();
        assert_eq!(managers, [Some(FIELD_MANAGER), Some("argocd-controller")]);
        assert_eq!(
            kept[1].fields_v1.as_ref().unwrap().0,
            json!({"f:spec": {"f:template": {"f:spec": {
                "f:containers": {r#"k:{"name":"app"}"#: {"f:image": {}}}
            }}}})
        );
    }

    fn config_map(ns: &str, name: &str) -> k8s_openapi::api::core::v1::ConfigMap {
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm
    }

    /// Take every event ready now (the channels stay open).
    fn drain<S: Stream + Unpin>(s: &mut S) {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        while let std::task::Poll::Ready(Some(_)) = s.poll_next_unpin(&mut cx) {}
    }

    #[tokio::test]
    async fn watches_of_several_namespaces_share_one_store_and_each_relist_drops_only_its_own() {
        use kube::runtime::WatchStreamExt;
        use watcher::Event::*;
        let writer: Writer<k8s_openapi::api::core::v1::ConfigMap> = Writer::default();
        let store = writer.as_reader();
        let (tx_a, rx_a) = futures::channel::mpsc::unbounded();
        let (tx_b, rx_b) = futures::channel::mpsc::unbounded();
        let merged = merge_namespaces(
            vec![("a".to_owned(), rx_a), ("b".to_owned(), rx_b)],
            store.clone(),
        )
        .reflect(writer);
        let mut merged = Box::pin(merged);
        let names = |store: &Store<k8s_openapi::api::core::v1::ConfigMap>| {
            let mut n: Vec<String> = store
                .state()
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any()))
                .collect();
            n.sort();
            n
        };
        let send = |tx: &futures::channel::mpsc::UnboundedSender<_>, events: Vec<_>| {
            for e in events {
                tx.unbounded_send(Ok(e)).unwrap();
            }
        };
        send(
            &tx_a,
            vec![
                Init,
                InitApply(config_map("a", "x")),
                InitApply(config_map("a", "y")),
                InitDone,
                // Before b has listed: the store is not filled yet.
                Apply(config_map("a", "gone")),
                Delete(config_map("a", "gone")),
            ],
        );
        drain(&mut merged);
        assert!(store.is_empty(), "filled before every namespace listed");
        assert!(store.wait_until_ready().now_or_never().is_none());
        send(&tx_b, vec![Init, InitApply(config_map("b", "z")), InitDone]);
        drain(&mut merged);
        assert_eq!(names(&store), ["a/x", "a/y", "b/z"]);
        assert!(store.wait_until_ready().now_or_never().is_some());
        // a re-lists without y: y goes, b's z stays.
        send(&tx_a, vec![Init, InitApply(config_map("a", "x")), InitDone]);
        drain(&mut merged);
        assert_eq!(names(&store), ["a/x", "b/z"]);
        send(
            &tx_b,
            vec![Delete(config_map("b", "z")), Apply(config_map("b", "w"))],
        );
        drain(&mut merged);
        assert_eq!(names(&store), ["a/x", "b/w"]);
    }

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_stores_goes_on_once_they_are_filled() {
        let (cache, mut w) = Cache::new();
        let filling = tokio::spawn({
            let cache = cache.clone();
            async move { cache.fill().await }
        });
        // Sixteen reconciles wait at once (a store's own readiness would
        // wake only the last of them).
        let waiting: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.filled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(
            waiting.iter().all(|t| !t.is_finished()),
            "went on before the lists"
        );
        w.deployments.apply_watcher_event(&watcher::Event::InitDone);
        w.services.apply_watcher_event(&watcher::Event::InitDone);
        w.baselines.apply_watcher_event(&watcher::Event::InitDone);
        w.routes.apply_watcher_event(&watcher::Event::InitDone);
        w.replica_sets
            .apply_watcher_event(&watcher::Event::InitDone);
        w.jobs.apply_watcher_event(&watcher::Event::InitDone);
        w.pods.apply_watcher_event(&watcher::Event::InitDone);
        w.config_maps.apply_watcher_event(&watcher::Event::InitDone);
        w.policies.apply_watcher_event(&watcher::Event::InitDone);
        w.namespaces.apply_watcher_event(&watcher::Event::InitDone);
        w.secrets.apply_watcher_event(&watcher::Event::InitDone);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(
            waiting.iter().all(|t| !t.is_finished()),
            "went on before the approvals were listed or refused"
        );
        // The approvals' watch is refused (no CRD, or no RBAC): no wait for it.
        cache
            .unavailable
            .refused(APPROVAL_WATCH, "forbidden".into());
        let all = futures::future::join_all(waiting);
        tokio::time::timeout(std::time::Duration::from_secs(5), all)
            .await
            .expect("every waiting reconcile went on");
        filling.await.unwrap();
        // And one that comes later does not wait at all.
        cache.filled().now_or_never().expect("filled");
    }

    fn spec_naming(policy: Option<&str>) -> ReleaseSpec {
        ReleaseSpec {
            policy: policy.map(str::to_owned),
            ..ReleaseSpec::default()
        }
    }

    #[test]
    fn the_policy_is_the_releases_else_the_namespaces_else_default() {
        let spec = |days: usize| crate::api::ReleasePolicySpec {
            limits: Some(crate::api::Limits {
                cross_team_edges: Some(days as i32),
                cross_team: None,
            }),
            ..Default::default()
        };
        let found = |names: &'static [&'static str]| {
            move |n: &str| {
                names.iter().position(|m| *m == n).map(|i| {
                    if n == "broken" {
                        Err("spec.x: bad".to_string())
                    } else {
                        Ok(spec(i))
                    }
                })
            }
        };
        let all = found(&["default", "strict", "broken"]);
        let name_of = |o: PolicyObservation| match o {
            PolicyObservation::Found { name, .. } => format!("found {name}"),
            PolicyObservation::Missing { name, named_by } => format!("missing {name} ({named_by})"),
            PolicyObservation::Unreadable { name, error } => format!("unreadable {name}: {error}"),
            PolicyObservation::None => "none".into(),
        };
        assert_eq!(
            name_of(resolve_policy(
                &spec_naming(Some("strict")),
                Some("default"),
                all
            )),
            "found strict"
        );
        assert_eq!(
            name_of(resolve_policy(&spec_naming(None), Some("strict"), all)),
            "found strict"
        );
        assert_eq!(
            name_of(resolve_policy(&spec_naming(None), None, all)),
            "found default"
        );
        // Named but absent: missing, saying who named it; never the default instead.
        assert_eq!(
            name_of(resolve_policy(
                &spec_naming(Some("gone")),
                Some("strict"),
                all
            )),
            "missing gone (spec.policy)"
        );
        assert_eq!(
            name_of(resolve_policy(&spec_naming(None), Some("gone"), all)),
            "missing gone (namespace label signalman.dev/policy)"
        );
        // Nobody names one and there is no default: as before policies.
        assert_eq!(
            name_of(resolve_policy(&spec_naming(None), None, found(&["strict"]))),
            "none"
        );
        // One that does not parse is not taken for none.
        let broken = name_of(resolve_policy(&spec_naming(Some("broken")), None, all));
        assert!(
            broken.starts_with("unreadable broken: spec.x: bad"),
            "{broken}"
        );
    }

    #[test]
    fn approvals_of_a_release_are_read_from_the_store_oldest_first() {
        let (cache, mut w) = Cache::new();
        let approval =
            |ns: &str, name: &str, release: &str, at: &str, spec_extra: serde_json::Value| {
                let mut spec = json!({"release": release, "approver": "alice", "comment": "ok"});
                spec.as_object_mut()
                    .unwrap()
                    .extend(spec_extra.as_object().unwrap().clone());
                let mut o = DynamicObject::new(name, &ApiResource::erase::<ReleaseApproval>(&()))
                    .within(ns);
                o.metadata.creation_timestamp = Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at.parse().unwrap()),
                );
                o.data = json!({"spec": spec});
                o
            };
        for a in [
            approval(
                "shop",
                "late",
                "r",
                "2026-01-01T10:00:00Z",
                json!({"gate": "smoke"}),
            ),
            approval(
                "shop",
                "early",
                "r",
                "2026-01-01T09:00:00Z",
                json!({"window": true}),
            ),
            approval(
                "shop",
                "other",
                "q",
                "2026-01-01T09:00:00Z",
                json!({"window": true}),
            ),
            approval(
                "else",
                "same-name",
                "r",
                "2026-01-01T09:00:00Z",
                json!({"window": true}),
            ),
            // Not an approval the engine could read: ignored, not fatal.
            approval(
                "shop",
                "bad",
                "r",
                "2026-01-01T08:00:00Z",
                json!({"step": {"service": "web", "step": "three"}}),
            ),
        ] {
            w.approvals.apply_watcher_event(&watcher::Event::Apply(a));
        }
        let got = cache.approvals_of("shop", "r");
        let names: Vec<&str> = got.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["early", "late"]);
        assert_eq!(got[1].spec.gate.as_deref(), Some("smoke"));
        assert_eq!(got[0].spec.window, Some(true));
    }

    fn versioned(rv: &str, phase: Option<crate::api::Phase>) -> Release {
        let mut rel = Release::new("r", crate::api::ReleaseSpec::default());
        rel.metadata.namespace = Some("shop".into());
        rel.metadata.uid = Some("u1".into());
        rel.metadata.resource_version = Some(rv.into());
        rel.status = Some(crate::api::ReleaseStatus {
            phase,
            ..Default::default()
        });
        rel
    }

    #[test]
    fn a_store_behind_our_own_write_is_read_as_what_we_wrote() {
        use crate::api::Phase;
        let w = Written::default();
        let before = versioned("10", Some(Phase::Pending));
        // The finalizer write made 11, the status write 12.
        w.remember(
            vec!["10".into(), "11".into()],
            versioned("12", Some(Phase::Progressing)),
        );
        for stale in ["10", "11"] {
            let seen = w.freshest(&versioned(stale, Some(Phase::Pending)));
            assert_eq!(seen.resource_version().as_deref(), Some("12"), "{stale}");
        }
        // The store caught up: it is read again, and the memory is gone.
        let caught_up = versioned("13", Some(Phase::Held));
        assert_eq!(
            w.freshest(&caught_up).resource_version().as_deref(),
            Some("13")
        );
        assert_eq!(
            w.freshest(&before).resource_version().as_deref(),
            Some("10")
        );
        // A status write retried over another writer's label change, 14 and
        // 15, replaced versions it never read: the store showing one of them
        // is behind too.
        w.remember(vec!["13".into()], versioned("16", Some(Phase::Paused)));
        for unseen in ["14", "15"] {
            let seen = w.freshest(&versioned(unseen, Some(Phase::Held)));
            assert_eq!(seen.resource_version().as_deref(), Some("16"), "{unseen}");
        }
        assert_eq!(
            w.freshest(&versioned("17", Some(Phase::Paused)))
                .resource_version()
                .as_deref(),
            Some("17")
        );
        // Versions that are not integers are compared by the list alone.
        w.remember(vec!["a".into()], versioned("c", Some(Phase::Paused)));
        assert_eq!(
            w.freshest(&versioned("b", Some(Phase::Held)))
                .resource_version()
                .as_deref(),
            Some("b")
        );
        // Another object with the same name is never confused with ours.
        w.remember(vec!["10".into()], versioned("12", Some(Phase::Progressing)));
        let mut other = versioned("10", None);
        other.metadata.uid = Some("u2".into());
        assert_eq!(w.freshest(&other).resource_version().as_deref(), Some("10"));
    }
}
