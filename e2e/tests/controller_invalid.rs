//! Controller scenario 7 (issue 4): every input the controller must refuse
//! gets the right `Stalled` condition, an Event, and changes nothing: the
//! resourceVersion of every Deployment, Service and HTTPRoute in the namespace
//! stays the same and no baseline is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

async fn resource_versions(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let lp = ListParams::default();
    for d in Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
    {
        out.insert(
            format!("Deployment/{}", d.name_any()),
            d.resource_version().unwrap(),
        );
    }
    for s in Api::<Service>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
    {
        out.insert(
            format!("Service/{}", s.name_any()),
            s.resource_version().unwrap(),
        );
    }
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    for r in Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .list(&lp)
        .await
        .unwrap()
    {
        out.insert(
            format!("HTTPRoute/{}", r.name_any()),
            r.resource_version().unwrap(),
        );
    }
    out
}

fn release(name: &str, services: &str) -> String {
    format!(
        "apiVersion: signalman.dev/v1alpha1\nkind: Release\nmetadata: {{name: {name}}}\nspec:\n  owner: team-e2e\n{}  services:\n{services}",
        op::defaults_yaml(&[(50, 1), (100, 1)])
    )
}

#[tokio::test]
async fn invalid_inputs_stall_with_a_specific_message_and_change_nothing() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-invalid").await;
    let _operator = Operator::start(ns.name()).await;
    for n in ["a", "b"] {
        e2e::apply_yaml(
            &client,
            Some(ns.name()),
            &op::web_app(n, 1, &format!("registry.example/{n}:v1"), 0),
        )
        .await;
    }
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: shop}\nspec:\n  rules:\n  - backendRefs: [{name: b, port: 80}]\n",
    )
    .await;
    for n in ["a", "b"] {
        e2e::wait_deployment_ready(&client, ns.name(), n, 1, Duration::from_secs(60)).await;
    }
    let before = resource_versions(&client, ns.name()).await;

    // (release, reason, what the message must say)
    let cases: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "unknown-dep",
            "  - {name: a, deployment: gone-1, dependsOn: [ghost], change: {images: {app: x:v2}}}\n".into(),
            "InvalidPlan",
            vec!["spec.services[0].dependsOn", "ghost"],
        ),
        (
            "cycle",
            "  - {name: a, deployment: gone-2, dependsOn: [b], change: {images: {app: x:v2}}}\n  - {name: b, deployment: gone-3, dependsOn: [a], change: {images: {app: x:v2}}}\n".into(),
            "InvalidPlan",
            vec!["dependency cycle", "a -> b -> a"],
        ),
        (
            "no-deployment",
            "  - {name: a, deployment: nope, change: {images: {app: x:v2}}}\n".into(),
            "DeploymentNotFound",
            vec!["spec.services[0].deployment", "Deployment \"nope\" not found"],
        ),
        (
            "no-container",
            "  - {name: a, deployment: a, change: {images: {sidecar: x:v2}}}\n".into(),
            "ContainerNotFound",
            vec!["sidecar", "app"],
        ),
        (
            "no-route",
            "  - {name: b, deployment: b, change: {images: {app: x:v2}}, traffic: {gatewayAPI: {httpRoute: ghost}}}\n".into(),
            "RouteNotFound",
            vec!["ghost"],
        ),
    ];
    for (name, services, _, _) in &cases {
        e2e::apply_yaml(&client, Some(ns.name()), &release(name, services)).await;
    }
    // A valid Release for a Deployment that older, unfinished Releases list first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &release(
            "late",
            "  - {name: a, deployment: a, change: {images: {app: x:v2}}}\n",
        ),
    )
    .await;

    let api = op::releases(&client, ns.name());
    let mut all = cases.clone();
    all.push((
        "late",
        String::new(),
        "DeploymentClaimed",
        vec!["is claimed by Release \"no-container\""],
    ));
    for (name, _, reason, says) in &all {
        let status = op::wait_status(
            &api,
            name,
            &format!("Stalled={reason}"),
            Duration::from_secs(30),
            |s| op::condition(s, "Stalled").is_some_and(|c| c["status"] == "True"),
        )
        .await;
        let stalled = op::condition(&status, "Stalled").unwrap();
        assert_eq!(stalled["reason"], *reason, "{name}: {stalled}");
        let message = stalled["message"].as_str().unwrap_or("");
        for s in says {
            assert!(
                message.contains(s),
                "{name}: message {message:?} does not say {s:?}"
            );
        }
        assert_eq!(op::phase(&status), "Pending", "{name}");
    }

    // Give the operator time to do anything it might (it must not), then compare.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = resource_versions(&client, ns.name()).await;
    assert_eq!(
        before, after,
        "the controller changed objects for invalid Releases"
    );
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        revisions.items.is_empty(),
        "a baseline was recorded for an invalid Release"
    );

    // Each refusal is also an Event on its Release.
    let events = Api::<Event>::namespaced(client.clone(), ns.name())
        .list(&ListParams::default())
        .await
        .unwrap();
    for (name, _, _, _) in &all {
        assert!(
            events.items.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.type_.as_deref() == Some("Warning")
            }),
            "no Warning Event for Release {name}"
        );
    }
    ns.delete().await;
}
