//! Gateway API: the user's HTTPRoute sends traffic to the stable Service; the
//! canary gets a Service of its own (`<service>-canary`) and a weighted
//! backendRef next to every backendRef of the stable Service. Both Services
//! are pinned to their own pods, so the stable Service stops selecting canary
//! pods without any stable pod restarting.
//!
//! `rules` is an atomic list in the HTTPRoute schema, so Signalman applies the
//! whole list: the user's rules as recorded with the baseline, plus the canary
//! backendRefs. At the end it applies the recorded rules and gives up its
//! field ownership, leaving the route as the user wrote it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::replica::canary_replicas;
use super::{
    CANARY_TRACK, InEffect, Owner, Provider, ServiceObjects, Write, annotated_weight, canary_write,
    rolled_out, spec_replicas,
};
use crate::api::{CANARY_OF_LABEL, TRACK_LABEL};
use crate::engine::{CanaryObservation, RouteObservation};

/// Gateway API traffic for one service: the HTTPRoute and the stable Service
/// its backendRef names.
pub struct GatewayApi {
    pub route: String,
    pub service: String,
}

/// The label ReplicaSets carry that tells the pods of one template apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Name of the canary Service shadowing stable Service `service`.
pub fn canary_service_name(service: &str) -> String {
    format!("{service}-canary")
}

fn is_backend(r: &Value, service: &str) -> bool {
    r.get("name").and_then(Value::as_str) == Some(service)
        && r.get("kind").and_then(Value::as_str).unwrap_or("Service") == "Service"
        && r.get("group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
}

fn backend_refs(rules: &Value) -> impl Iterator<Item = &Value> {
    rules
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| rule.get("backendRefs").and_then(Value::as_array))
        .flatten()
}

/// The route has a backendRef to the stable Service.
pub fn routes_to(rules: &Value, service: &str) -> bool {
    backend_refs(rules).any(|r| is_backend(r, service))
}

/// The canary backendRef's weight, when the route has one.
pub fn canary_weight(rules: &Value, canary: &str) -> Option<i32> {
    backend_refs(rules)
        .find(|r| is_backend(r, canary))
        .map(|r| r.get("weight").and_then(Value::as_i64).unwrap_or(1) as i32)
}

/// The user's rules with every stable backendRef split: the stable Service at
/// `100 - weight` and the canary Service, on the same port, at `weight`.
pub fn with_canary(original: &Value, stable: &str, canary: &str, weight: i32) -> Value {
    let mut rules = original.clone();
    for rule in rules.as_array_mut().into_iter().flatten() {
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        let mut out = Vec::with_capacity(refs.len() + 1);
        for r in refs.drain(..) {
            if is_backend(&r, canary) {
                continue;
            }
            if is_backend(&r, stable) {
                let mut s = r.clone();
                s["weight"] = json!(100 - weight);
                let mut c =
                    json!({"group": "", "kind": "Service", "name": canary, "weight": weight});
                if let Some(port) = r.get("port") {
                    c["port"] = port.clone();
                }
                out.push(s);
                out.push(c);
            } else {
                out.push(r);
            }
        }
        *refs = out;
    }
    rules
}

/// Someone other than Signalman changed the route's rules: they are neither the
/// recorded rules nor the recorded rules with the canary at the weight found.
pub fn drifted(live: &Value, original: &Value, stable: &str, canary: &str) -> bool {
    let expected = match canary_weight(live, canary) {
        Some(w) => with_canary(original, stable, canary, w),
        None => original.clone(),
    };
    live != &expected
}

/// The stable Service's selector without Signalman's pin.
pub fn unpinned_selector(svc: &Service) -> BTreeMap<String, String> {
    let mut sel = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    sel.remove(POD_TEMPLATE_HASH);
    sel
}

/// The pod-template-hash the Service is pinned to, if it is.
pub fn pinned_hash(svc: &Service) -> Option<String> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(POD_TEMPLATE_HASH)
        .cloned()
}

/// The canary Service: the stable Service's ports, selecting only canary pods
/// (pinned to the canary ReplicaSet's `hash` once it exists), labelled so
/// metrics report it under the stable Service's name.
pub fn canary_service(stable: &Service, owner: &Owner, hash: Option<&str>) -> Service {
    let stable_name = stable.metadata.name.clone().unwrap_or_default();
    let mut selector = unpinned_selector(stable);
    selector.insert(TRACK_LABEL.into(), CANARY_TRACK.into());
    if let Some(h) = hash {
        selector.insert(POD_TEMPLATE_HASH.into(), h.into());
    }
    let mut labels = owner.labels();
    labels.insert(CANARY_OF_LABEL.into(), stable_name.clone());
    let ports = stable
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            name: p.name,
            port: p.port,
            protocol: p.protocol,
            target_port: p.target_port,
            app_protocol: p.app_protocol,
            node_port: None,
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(canary_service_name(&stable_name)),
            namespace: stable.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner.reference.clone()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

/// The route's `spec.rules`.
pub fn route_rules(route: &DynamicObject) -> Value {
    route
        .data
        .get("spec")
        .and_then(|s| s.get("rules"))
        .cloned()
        .unwrap_or(Value::Array(vec![]))
}

/// The canary Deployment has the pods its weight asks for, all available.
fn canary_pods_ready(canary: &Deployment, stable_replicas: i32) -> bool {
    canary.metadata.deletion_timestamp.is_none()
        && annotated_weight(canary)
            .is_some_and(|w| spec_replicas(canary) == canary_replicas(stable_replicas, w))
        && rolled_out(canary)
}

impl GatewayApi {
    fn canary_backend(&self) -> String {
        canary_service_name(&self.service)
    }

    /// The stable Service's selector set to `selector`, and nothing else.
    fn selector_write(&self, selector: BTreeMap<String, String>) -> Write {
        Write::apply::<Service>(&self.service, json!({"spec": {"selector": selector}}))
    }

    /// Unpin the stable Service and give its selector back to the user.
    fn unpin(&self, objects: &ServiceObjects) -> Vec<Write> {
        match &objects.stable_service {
            Some(live) if pinned_hash(live).is_some() => vec![
                self.selector_write(unpinned_selector(live)),
                Write::release::<Service>(&self.service),
            ],
            _ => Vec::new(),
        }
    }

    fn route_write(&self, rules: Value) -> Write {
        let resource = http_route_resource();
        Write::Apply {
            body: json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": {"name": self.route},
                "spec": {"rules": rules},
            }),
            resource,
            name: self.route.clone(),
        }
    }
}

impl Provider for GatewayApi {
    fn observe(&self, objects: &ServiceObjects) -> InEffect {
        let canary_svc = self.canary_backend();
        let rules = objects.route.as_ref().map(route_rules);
        let route = RouteObservation {
            found: rules.as_ref().is_some_and(|r| routes_to(r, &self.service)),
            drifted: match (
                &rules,
                objects
                    .baseline
                    .as_ref()
                    .and_then(|b| b.route_rules.as_ref()),
            ) {
                (Some(live), Some(original)) => drifted(live, original, &self.service, &canary_svc),
                _ => false,
            },
        };
        let route_weight = rules.as_ref().and_then(|r| canary_weight(r, &canary_svc));
        let pinned = objects.stable_service.as_ref().and_then(pinned_hash);
        let residue = objects.canary.is_some()
            || objects.canary_service.is_some()
            || route_weight.is_some()
            || pinned.is_some();
        let stable_replicas = objects.stable.as_ref().map_or(1, spec_replicas);
        let canary = residue.then(|| {
            let pods_ready = objects
                .canary
                .as_ref()
                .is_some_and(|c| canary_pods_ready(c, stable_replicas));
            let canary_pinned = objects
                .canary_service
                .as_ref()
                .and_then(pinned_hash)
                .is_some_and(|h| Some(&h) == objects.canary_hash.as_ref());
            let weight = route_weight.unwrap_or(0);
            CanaryObservation {
                weight,
                ready: pods_ready
                    && canary_pinned
                    && route_weight.is_some()
                    && pinned.is_some()
                    && pinned == objects.stable_hash
                    && objects.canary.as_ref().and_then(annotated_weight) == route_weight,
                // The route splits requests exactly: what it says is what the canary gets.
                effective: weight,
            }
        });
        InEffect {
            canary,
            route: Some(route),
        }
    }

    fn set_weight(
        &self,
        objects: &ServiceObjects,
        weight: i32,
        new_template: &PodTemplateSpec,
        owner: &Owner,
    ) -> Result<Vec<Write>, String> {
        // Taking traffic away must work with whatever is left: the engine also
        // asks for 0 when the stable Deployment, Service or route has gone.
        let withdrawing = weight == 0;
        let missing = |what: String| if withdrawing { Ok(()) } else { Err(what) };
        let stable_replicas = objects.stable.as_ref().map(spec_replicas);
        let mut writes = Vec::new();
        let pods = canary_replicas(stable_replicas.unwrap_or(0), weight);
        writes.extend(canary_write(objects, weight, pods, new_template, owner)?);

        match (&objects.stable_service, &objects.stable) {
            (Some(stable_svc), Some(_)) => {
                let wanted = canary_service(stable_svc, owner, objects.canary_hash.as_deref());
                let selector = |s: &Service| s.spec.as_ref().and_then(|s| s.selector.clone());
                if !withdrawing
                    && objects.canary_service.as_ref().map(selector) != Some(selector(&wanted))
                {
                    writes.push(Write::apply_object(&wanted));
                }
                match &objects.stable_hash {
                    Some(hash) if pinned_hash(stable_svc).as_ref() != Some(hash) => {
                        let mut selector = unpinned_selector(stable_svc);
                        selector.insert(POD_TEMPLATE_HASH.into(), hash.clone());
                        writes.push(self.selector_write(selector));
                    }
                    Some(_) => {}
                    None => missing(format!(
                        "the current ReplicaSet of the stable Deployment of Service {:?} is not there yet",
                        self.service
                    ))?,
                }
            }
            _ => missing(format!(
                "Service {:?} or its stable Deployment does not exist",
                self.service
            ))?,
        }

        let Some(route) = objects.route.as_ref() else {
            missing(format!("HTTPRoute {:?} does not exist", self.route))?;
            return Ok(writes);
        };
        let live = route_rules(route);
        let original = objects
            .baseline
            .as_ref()
            .and_then(|b| b.route_rules.clone())
            .unwrap_or_else(|| live.clone());
        let canary_svc = self.canary_backend();
        let live_weight = canary_weight(&live, &canary_svc).unwrap_or(0);
        // Send more traffic only to canary pods that are there to take it.
        let canary_ready = objects.canary.as_ref().is_some_and(|c| {
            annotated_weight(c) == Some(weight)
                && stable_replicas.is_some_and(|n| canary_pods_ready(c, n))
        });
        if weight > live_weight && !canary_ready {
            return Ok(writes);
        }
        let rules = with_canary(&original, &self.service, &canary_svc, weight);
        if rules != live {
            writes.push(self.route_write(rules));
        }
        Ok(writes)
    }

    fn baseline_routes(&self, objects: &ServiceObjects) -> Result<Option<Value>, String> {
        let route = objects
            .route
            .as_ref()
            .ok_or_else(|| format!("HTTPRoute {:?} does not exist", self.route))?;
        Ok(Some(route_rules(route)))
    }

    fn promote(&self, objects: &ServiceObjects, template: Vec<Write>) -> Vec<Write> {
        // The new stable pods get a new pod-template-hash: unpin first so the
        // stable Service follows them.
        let mut writes = self.unpin(objects);
        writes.extend(template);
        writes
    }

    fn remove(&self, objects: &ServiceObjects) -> Vec<Write> {
        let mut writes = Vec::new();
        // All traffic back to the stable backend before anything is deleted.
        if let Some(route) = &objects.route {
            let live = route_rules(route);
            if let Some(original) = objects
                .baseline
                .as_ref()
                .and_then(|b| b.route_rules.clone())
                && live != original
            {
                writes.push(self.route_write(original));
            }
            writes.push(Write::Release {
                resource: http_route_resource(),
                name: self.route.clone(),
            });
        }
        writes.extend(self.unpin(objects));
        if objects
            .canary_service
            .as_ref()
            .is_some_and(|s| s.metadata.deletion_timestamp.is_none())
        {
            writes.push(Write::delete::<Service>(&self.canary_backend()));
        }
        if let Some(c) = objects.live_canary() {
            writes.push(Write::delete::<Deployment>(&c.name_any()));
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Value {
        json!([{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}]
        }, {
            "backendRefs": [{"group": "", "kind": "Service", "name": "other", "port": 80, "weight": 1}]
        }])
    }

    #[test]
    fn canary_backend_is_added_beside_the_stable_one() {
        let r = with_canary(&rules(), "web", "web-canary", 25);
        let refs = r[0]["backendRefs"].as_array().unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0]["weight"], 75);
        assert_eq!(refs[1]["name"], "web-canary");
        assert_eq!(refs[1]["port"], 80);
        assert_eq!(refs[1]["weight"], 25);
        assert_eq!(r[1], rules()[1]);
        assert_eq!(canary_weight(&r, "web-canary"), Some(25));
        assert_eq!(canary_weight(&rules(), "web-canary"), None);
        // re-weighting replaces, never duplicates
        let again = with_canary(&r, "web", "web-canary", 50);
        assert_eq!(again[0]["backendRefs"].as_array().unwrap().len(), 2);
        assert_eq!(canary_weight(&again, "web-canary"), Some(50));
    }

    #[test]
    fn drift_is_any_change_but_ours() {
        let original = rules();
        assert!(!drifted(&original, &original, "web", "web-canary"));
        let ours = with_canary(&original, "web", "web-canary", 5);
        assert!(!drifted(&ours, &original, "web", "web-canary"));
        let mut theirs = ours.clone();
        theirs[0]["backendRefs"][0]["weight"] = json!(10);
        assert!(drifted(&theirs, &original, "web", "web-canary"));
        let mut gone = original.clone();
        gone[0]["backendRefs"][0]["name"] = json!("web-v2");
        assert!(drifted(&gone, &original, "web", "web-canary"));
        assert!(!routes_to(&gone, "web"));
    }
}
