//! `{{service}}` in a query is the Kubernetes Service the traffic goes
//! through. Here the Release calls its service `storefront` while the route
//! and the metrics know the Service as `web` (`traffic.gatewayAPI.service:
//! web`): the canary's error rate must be measured (values, not "no data")
//! and the release must succeed. Before, the query asked for
//! service="storefront", matched nothing, and the release held.

use std::time::Duration;

use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

#[tokio::test]
async fn service_placeholder_names_the_gateway_service_the_metrics_carry() {
    let sc = Scenario::start("ctl-svc-name").await;
    sc.apply_yaml(&e2e::http_route_yaml("shop", "web")).await;
    sc.deploy_apps(&["web"]).await;

    let renamed = release("renamed")
        .defaults(&[(50, 3), (100, 1)])
        .service(
            svc("storefront")
                .deployment("web")
                .image("app", "registry.example/web:v2")
                .route("shop")
                .gateway_service("web"),
        )
        .build();
    let api = sc.apply(&renamed).await;
    let done = rel::wait_phase(&api, "renamed", "Succeeded", Duration::from_secs(60)).await;
    let measured: Vec<&serde_json::Value> = rel::service(&done, "storefront")
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
    sc.end().await;
}
