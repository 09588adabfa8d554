//! Traffic providers: how a canary gets its share of the traffic.
//!
//! - [`replica`]: no mesh; a `<deployment>-canary` Deployment beside the stable
//!   one, both selected by the user's Service, weighted by replica counts.
//! - [`gateway`]: Gateway API; the canary Deployment gets its own Service and a
//!   weighted backendRef on the user's HTTPRoute next to the stable Service.
//!
//! Both build the same canary Deployment (the new template, the canary track
//! label, owned by the Release) and differ only in how the weight is carried.

pub mod gateway;
pub mod replica;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::api::{RELEASE_LABEL, SERVICE_LABEL, TRACK_LABEL};
use crate::controller::template::{canary_replicas, rolled_out};

/// Annotation on the canary Deployment: the weight whose replica count it carries.
pub const WEIGHT_ANNOTATION: &str = "signalman.dev/weight";

/// Label value of [`TRACK_LABEL`] on canary pods.
pub const CANARY_TRACK: &str = "canary";

/// Name of the canary Deployment of stable Deployment `deployment`.
pub fn canary_deployment_name(deployment: &str) -> String {
    format!("{deployment}-canary")
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

/// The canary Deployment for `weight` next to `stable`: the new template with the
/// canary track label, a selector that the stable ReplicaSets never match.
pub fn canary_deployment(
    stable: &Deployment,
    new_template: &PodTemplateSpec,
    weight: i32,
    owner: &Owner,
) -> Deployment {
    let stable_spec = stable.spec.clone().unwrap_or_default();
    let stable_replicas = stable_spec.replicas.unwrap_or(1);
    let mut selector = stable_spec.selector.clone();
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
        metadata: ObjectMeta {
            name: Some(canary_deployment_name(
                stable.metadata.name.as_deref().unwrap_or_default(),
            )),
            namespace: stable.metadata.namespace.clone(),
            labels: Some(owner.labels()),
            annotations: Some([(WEIGHT_ANNOTATION.to_string(), weight.to_string())].into()),
            owner_references: Some(vec![owner.reference.clone()]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(canary_replicas(stable_replicas, weight)),
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

/// The canary Deployment carries its annotated weight's replica count for the
/// stable Deployment's current size, and every one of those pods is available
/// (at 0: no canary pod is left).
pub fn canary_deployment_ready(canary: &Deployment, stable_replicas: i32) -> bool {
    if canary.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(weight) = annotated_weight(canary) else {
        return false;
    };
    let want = canary_replicas(stable_replicas, weight);
    canary.spec.as_ref().and_then(|s| s.replicas) == Some(want) && rolled_out(canary)
}
