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

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::{CANARY_TRACK, Owner};
use crate::api::{CANARY_OF_LABEL, TRACK_LABEL};

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
