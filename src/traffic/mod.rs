//! Traffic providers: how a canary gets its share of the traffic.
//!
//! One seam, [`Provider`], with one file per implementation:
//! - [`replica`]: no mesh; a `<deployment>-canary` Deployment beside the stable
//!   one, both selected by the user's Service, weighted by ready pods. At the
//!   last step (100 %) the stable Deployment is scaled to zero, so the new
//!   version really carries all the traffic; its replica count is handed back
//!   at promotion or when the canary is withdrawn.
//! - [`gateway`]: Gateway API; the canary Deployment gets its own Service and a
//!   weighted backendRef on the user's HTTPRoute next to the stable Service.
//!
//! A provider is pure: it reads the objects the shell observed
//! ([`ServiceObjects`]) and answers what is in effect ([`Provider::observe`]) or
//! which writes move the service where the engine wants it ([`Write`]s, in
//! order). The shell only reads, dispatches and executes, so a third provider
//! is one new file and one arm of [`for_service`].

pub mod gateway;
pub mod replica;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::api::{RELEASE_LABEL, SERVICE_LABEL, ServiceSpec, TRACK_LABEL};
use crate::engine::{CanaryObservation, RouteObservation};

/// Annotation on the canary Deployment: the weight whose replica count it carries.
pub const WEIGHT_ANNOTATION: &str = "signalman.dev/weight";

/// Label value of [`TRACK_LABEL`] on canary pods.
pub const CANARY_TRACK: &str = "canary";

/// Name of the canary Deployment of stable Deployment `deployment`.
pub fn canary_deployment_name(deployment: &str) -> String {
    format!("{deployment}-canary")
}

/// Name of the ControllerRevision holding a service's baseline.
pub fn baseline_name(release: &str, service: &str) -> String {
    format!("{release}-{service}-baseline")
}

/// What a baseline ControllerRevision holds: everything a provider needs to
/// put the service back as it was before the release.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// The stable Deployment's pod template before the release.
    pub template: PodTemplateSpec,
    /// Its `spec.replicas` then.
    pub replicas: i32,
    /// The HTTPRoute's `spec.rules` before the release (Gateway API only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_rules: Option<Value>,
}

impl Baseline {
    /// Read a baseline back; the error says what is wrong with the revision.
    pub fn from_revision(cr: &ControllerRevision) -> Result<Baseline, String> {
        let data = cr.data.as_ref().ok_or("no data")?;
        serde_json::from_value(data.0.clone()).map_err(|e| e.to_string())
    }
}

/// Who a canary object belongs to.
#[derive(Clone, Debug)]
pub struct Owner {
    pub release: String,
    pub service: String,
    pub reference: OwnerReference,
}

impl Owner {
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            (RELEASE_LABEL.to_string(), self.release.clone()),
            (SERVICE_LABEL.to_string(), self.service.clone()),
        ]
        .into()
    }
}

/// One service's objects as the shell read them. Providers read only what
/// they use: the replica ratio needs no Service and no route.
#[derive(Clone, Debug, Default)]
pub struct ServiceObjects {
    pub stable: Option<Deployment>,
    pub canary: Option<Deployment>,
    pub baseline: Option<Baseline>,
    /// The pod-template-hash of the current ReplicaSet of each Deployment.
    pub stable_hash: Option<String>,
    pub canary_hash: Option<String>,
    /// The Service the route sends stable traffic to, and its canary shadow.
    pub stable_service: Option<Service>,
    pub canary_service: Option<Service>,
    /// The routing object (an HTTPRoute for Gateway API).
    pub route: Option<DynamicObject>,
}

impl ServiceObjects {
    /// The canary Deployment unless it is being deleted.
    pub fn live_canary(&self) -> Option<&Deployment> {
        self.canary
            .as_ref()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
    }
}

/// One write to the cluster, made by the shell under the field manager
/// `signalman`. A provider lists them in the order they must happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply of `body`: only the fields Signalman owns.
    Apply {
        resource: ApiResource,
        name: String,
        body: Value,
    },
    /// Create `body`, once: an object that exists already is left as it is
    /// (the baseline, which must never be overwritten).
    Create { resource: ApiResource, body: Value },
    /// Delete, waiting for dependents (pods) first; absent is fine.
    Delete { resource: ApiResource, name: String },
    /// Give up Signalman's field ownership, leaving the values as they are.
    Release { resource: ApiResource, name: String },
    /// Strategic merge patch of `body`: only for what server-side apply cannot
    /// do, removing a field another manager owns (an env var's `valueFrom`
    /// when Signalman sets its `value`, and the reverse on a restore).
    Patch {
        resource: ApiResource,
        name: String,
        body: Value,
    },
    /// Server-side apply of `spec.replicas` through the scale subresource. Its
    /// field ownership is kept apart from the object's own, so applying the pod
    /// template later never drops the replica count (or the other way round).
    Scale {
        resource: ApiResource,
        name: String,
        replicas: i32,
    },
}

impl Write {
    /// Apply `body` to the object `name` of type `K`.
    pub fn apply<K: Resource<DynamicType = ()>>(name: &str, mut body: Value) -> Write {
        body["apiVersion"] = K::api_version(&()).into();
        body["kind"] = K::kind(&()).into();
        body["metadata"]["name"] = name.into();
        Write::Apply {
            resource: ApiResource::erase::<K>(&()),
            name: name.to_owned(),
            body,
        }
    }

    /// Apply a whole object Signalman built.
    pub fn apply_object<K: Resource<DynamicType = ()> + serde::Serialize>(obj: &K) -> Write {
        let body = serde_json::to_value(obj).unwrap_or(Value::Null);
        Write::apply::<K>(&obj.name_any(), body)
    }

    /// Create an object Signalman built, unless it exists.
    pub fn create<K: Resource<DynamicType = ()> + serde::Serialize>(obj: &K) -> Write {
        let mut body = serde_json::to_value(obj).unwrap_or(Value::Null);
        body["apiVersion"] = K::api_version(&()).into();
        body["kind"] = K::kind(&()).into();
        Write::Create {
            resource: ApiResource::erase::<K>(&()),
            body,
        }
    }

    pub fn delete<K: Resource<DynamicType = ()>>(name: &str) -> Write {
        Write::Delete {
            resource: ApiResource::erase::<K>(&()),
            name: name.to_owned(),
        }
    }

    pub fn release<K: Resource<DynamicType = ()>>(name: &str) -> Write {
        Write::Release {
            resource: ApiResource::erase::<K>(&()),
            name: name.to_owned(),
        }
    }
}

/// What a provider sees in effect for one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InEffect {
    /// `None` when no canary object (or residue of one) exists.
    pub canary: Option<CanaryObservation>,
    /// Only for providers that route through an object the user owns.
    pub route: Option<RouteObservation>,
}

/// One way of giving a canary its share of the traffic. Every method is pure:
/// it reads the observed objects and answers; idempotence comes from writing
/// only what differs from them.
pub trait Provider {
    /// What is in effect now: the weight the canary objects implement, whether
    /// it is fully in effect, and the share of traffic the canary really gets.
    fn observe(&self, objects: &ServiceObjects) -> InEffect;

    /// The writes that move the canary towards `weight` percent (0 takes all
    /// traffic away but keeps the objects). `new_template` is the new version,
    /// used only when no canary runs yet: a running canary keeps its template.
    /// `Err` names an object that must exist and does not.
    fn set_weight(
        &self,
        objects: &ServiceObjects,
        weight: i32,
        new_template: &PodTemplateSpec,
        owner: &Owner,
    ) -> Result<Vec<Write>, String>;

    /// The writes that make the new version the stable one, placing
    /// `template` (the writes of the stable Deployment's new pod template,
    /// none when it is already there) among the provider's own writes.
    fn promote(&self, objects: &ServiceObjects, template: Vec<Write>) -> Vec<Write>;

    /// The writes that send all traffic back to the stable Deployment and
    /// delete the canary objects, each once it is safe to.
    fn remove(&self, objects: &ServiceObjects) -> Vec<Write>;

    /// What of the user's routing must be recorded with the baseline, so
    /// that [`Provider::remove`] can put it back as it was (`None`: nothing).
    fn baseline_routes(&self, _objects: &ServiceObjects) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

/// The provider of service `svc`: Gateway API when it names a route, else the replica ratio.
pub fn for_service(svc: &ServiceSpec) -> Box<dyn Provider + Send + Sync> {
    match svc.traffic.as_ref().and_then(|t| t.gateway_api.as_ref()) {
        Some(g) => Box::new(gateway::GatewayApi {
            route: g.http_route.clone(),
            service: g.service.clone().unwrap_or_else(|| svc.name.clone()),
        }),
        None => Box::new(replica::ReplicaRatio),
    }
}

/// The canary Deployment with `replicas` pods for `weight` next to `stable`:
/// the new template with the canary track label, and a selector that the
/// stable ReplicaSets never match. `annotations` are recorded beside the weight.
pub fn canary_deployment(
    stable: &Deployment,
    new_template: &PodTemplateSpec,
    weight: i32,
    replicas: i32,
    owner: &Owner,
) -> Deployment {
    let mut selector = stable
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TRACK_LABEL.into(), CANARY_TRACK.into());

    let mut template = new_template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(TRACK_LABEL.into(), CANARY_TRACK.into());
    labels.extend(owner.labels());

    Deployment {
        metadata: canary_meta(
            canary_deployment_name(&stable.name_any()),
            stable.metadata.namespace.clone(),
            weight,
            owner,
        ),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_expressions: selector.match_expressions,
                match_labels: selector.match_labels,
            },
            template,
            ..Default::default()
        }),
        status: None,
    }
}

/// The live canary Deployment at another weight: same selector and template,
/// so a spec edited mid-release never rolls a running canary.
pub fn rescaled(live: &Deployment, weight: i32, replicas: i32, owner: &Owner) -> Deployment {
    let spec = live.spec.clone().unwrap_or_default();
    Deployment {
        metadata: canary_meta(live.name_any(), None, weight, owner),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: spec.selector,
            template: spec.template,
            ..Default::default()
        }),
        status: None,
    }
}

fn canary_meta(name: String, namespace: Option<String>, weight: i32, owner: &Owner) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        labels: Some(owner.labels()),
        annotations: Some([(WEIGHT_ANNOTATION.to_string(), weight.to_string())].into()),
        owner_references: Some(vec![owner.reference.clone()]),
        ..Default::default()
    }
}

/// The canary Deployment at `weight` with `replicas` pods: the live one
/// rescaled, else a new one from `new_template` (which needs the stable
/// Deployment). `None` when nothing needs writing.
pub fn canary_write(
    objects: &ServiceObjects,
    weight: i32,
    replicas: i32,
    new_template: &PodTemplateSpec,
    owner: &Owner,
) -> Result<Option<Write>, String> {
    let wanted = match (objects.live_canary(), &objects.stable) {
        (Some(live), _) => {
            if annotated_weight(live) == Some(weight) && spec_replicas(live) == replicas {
                return Ok(None);
            }
            rescaled(live, weight, replicas, owner)
        }
        // Taking traffic away works with whatever is left.
        (None, _) if weight == 0 => return Ok(None),
        (None, Some(stable)) => canary_deployment(stable, new_template, weight, replicas, owner),
        (None, None) => return Err("the stable Deployment does not exist".to_owned()),
    };
    Ok(Some(Write::apply_object(&wanted)))
}

/// The weight a canary Deployment was scaled for (its annotation), if any.
pub fn annotated_weight(canary: &Deployment) -> Option<i32> {
    canary
        .metadata
        .annotations
        .as_ref()?
        .get(WEIGHT_ANNOTATION)?
        .parse()
        .ok()
}

/// `spec.replicas`, defaulted as the API server does.
pub fn spec_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Pods of `d` that are available to take traffic.
pub fn available(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The Deployment's rollout is complete: the controller saw the latest
/// generation and every desired replica is updated and available, with no old
/// replica left.
pub fn rolled_out(d: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
}

/// The Deployment's `spec.replicas`, through its scale subresource.
fn replicas_write(deployment: &str, replicas: i32) -> Write {
    Write::Scale {
        resource: ApiResource::erase::<Deployment>(&()),
        name: deployment.to_owned(),
        replicas,
    }
}

/// Percent of `canary / (canary + stable)`, rounded; 0 when neither has any.
pub fn share(canary: i32, stable: i32) -> i32 {
    let total = canary.max(0) + stable.max(0);
    if total == 0 {
        return 0;
    }
    ((f64::from(canary.max(0)) * 100.0 / f64::from(total)).round()) as i32
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    pub fn owner() -> Owner {
        Owner {
            release: "r".into(),
            service: "web".into(),
            reference: OwnerReference {
                api_version: "signalman.dev/v1alpha1".into(),
                kind: "Release".into(),
                name: "r".into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }

    pub fn stable(replicas: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        });
        settle(&mut d);
        d
    }

    /// The Deployment controller caught up: every pod asked for is available.
    pub fn settle(d: &mut Deployment) {
        let n = spec_replicas(d);
        d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
        d.status = Some(DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(n),
            updated_replicas: Some(n),
            available_replicas: Some(n),
            ready_replicas: Some(n),
            ..Default::default()
        });
    }

    fn changed(d: &mut Deployment, settle_pods: bool) {
        if settle_pods {
            settle(d);
        } else {
            d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
        }
    }

    /// Carry out the writes on `objects` the way the API server and the
    /// Deployment controller would (pods appear at once when `settle`).
    pub fn execute(objects: &mut ServiceObjects, writes: &[Write], settle_pods: bool) {
        for w in writes {
            match w {
                Write::Scale { name, replicas, .. } => {
                    let stable = objects.stable.as_mut().filter(|d| d.name_any() == *name);
                    if let Some(d) = stable {
                        d.spec.get_or_insert_with(Default::default).replicas = Some(*replicas);
                        changed(d, settle_pods);
                    }
                }
                // Signalman applies whole canary Deployments.
                Write::Apply { resource, body, .. } if resource.kind == "Deployment" => {
                    objects.canary = serde_json::from_value(body.clone()).ok();
                    if let Some(d) = objects.canary.as_mut() {
                        changed(d, settle_pods);
                    }
                }
                Write::Delete { name, .. }
                    if objects
                        .canary
                        .as_ref()
                        .is_some_and(|c| c.name_any() == *name) =>
                {
                    objects.canary = None;
                }
                _ => {}
            }
        }
    }
}
