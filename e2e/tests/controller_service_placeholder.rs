//! `{{service}}` in a query is the Kubernetes Service the traffic goes
//! through. Here the Release calls its service `storefront` while the route
//! and the metrics know the Service as `web` (`traffic.gatewayAPI.service:
//! web`): the canary's error rate must be measured (values, not "no data")
//! and the release must succeed. Before, the query asked for
//! service="storefront", matched nothing, and the release held.

use std::time::Duration;

use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
"#;

#[tokio::test]
async fn service_placeholder_names_the_gateway_service_the_metrics_carry() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-svc-name").await;
    let _operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::apply_yaml(&client, Some(ns.name()), ROUTE).await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;

    let release = format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: renamed}}
spec:
  owner: team-e2e
{}  services:
  - name: storefront
    deployment: web
    change: {{images: {{app: "registry.example/web:v2"}}}}
    traffic: {{gatewayAPI: {{httpRoute: shop, service: web}}}}
"#,
        op::defaults_yaml(&[(50, 3), (100, 1)])
    );
    e2e::apply_yaml(&client, Some(ns.name()), &release).await;
    let api = op::releases(&client, ns.name());
    let done = op::wait_phase(&api, "renamed", "Succeeded", Duration::from_secs(60)).await;
    let measured: Vec<&serde_json::Value> = op::service(&done, "storefront")
        .and_then(|s| s["measurements"].as_array())
        .into_iter()
        .flatten()
        .collect();
    assert!(
        measured
            .iter()
            .any(|m| m["outcome"] == "Pass" && m["value"].is_number()),
        "no measured value: {measured:?}"
    );
    assert!(done["hold"].is_null(), "it held: {}", done["hold"]);
    ns.delete().await;
}
