//! Controller scenario 2 (issue 4): Gateway API. The HTTPRoute's backendRef
//! weights are seen stepping through the declared weights, and at the end the
//! route is back to the one backend the user wrote, on the new version, with
//! nothing Signalman added left behind.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

fn routes(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn backends(route: &DynamicObject) -> Vec<(String, i64)> {
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or("").to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

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
async fn route_weights_step_and_return_to_one_backend() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-gateway").await;
    let operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::apply_yaml(&client, Some(ns.name()), ROUTE).await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;
    let route_api = routes(&client, ns.name());
    let route_before = route_api.get("shop").await.unwrap();

    // Record every canary weight the route carries, every 100 ms.
    let seen = Arc::new(Mutex::new(Vec::<i64>::new()));
    let recorder = {
        let (api, seen) = (route_api.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(r) = api.get("shop").await {
                    let w = backends(&r)
                        .into_iter()
                        .find(|(n, _)| n == "web-canary")
                        .map(|(_, w)| w);
                    let mut s = seen.lock().unwrap();
                    if let Some(w) = w
                        && s.last() != Some(&w)
                    {
                        s.push(w);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let release = format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: gw}}
spec:
  owner: team-e2e
{}  services:
  - name: web
    deployment: web
    change: {{images: {{app: "registry.example/web:v2"}}}}
    traffic: {{gatewayAPI: {{httpRoute: shop}}}}
"#,
        op::defaults_yaml(&[(25, 2), (50, 2), (100, 1)])
    );
    let writes_before = operator.api_writes().await;
    e2e::apply_yaml(&client, Some(ns.name()), &release).await;
    let api = op::releases(&client, ns.name());

    // While the canary takes traffic, each Service selects only its own pods.
    let services: Api<Service> = Api::namespaced(client.clone(), ns.name());
    op::wait_status(
        &api,
        "gw",
        "the first step baking",
        Duration::from_secs(60),
        |s| op::service(s, "web").is_some_and(|x| x["bakeStartedAt"].is_string()),
    )
    .await;
    let stable = services.get("web").await.unwrap();
    let canary = services.get("web-canary").await.expect("canary Service");
    let sel = |s: &Service| {
        s.spec
            .as_ref()
            .unwrap()
            .selector
            .clone()
            .unwrap_or_default()
    };
    assert!(
        sel(&stable).contains_key("pod-template-hash"),
        "stable Service not pinned: {:?}",
        sel(&stable)
    );
    assert_eq!(
        sel(&canary).get("signalman.dev/track").map(String::as_str),
        Some("canary")
    );
    assert!(
        sel(&canary).contains_key("pod-template-hash"),
        "canary Service not pinned: {:?}",
        sel(&canary)
    );
    assert_ne!(
        sel(&canary).get("pod-template-hash"),
        sel(&stable).get("pod-template-hash")
    );
    assert_eq!(
        canary
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("signalman.dev/canary-of")
            .map(String::as_str),
        Some("web")
    );

    let status = op::wait_phase(&api, "gw", "Succeeded", Duration::from_secs(120)).await;
    let writes = operator.api_writes().await - writes_before;
    eprintln!(
        "MEASURE gateway: {writes} API writes for 1 service x 3 steps = {:.1} writes per step",
        writes / 3.0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    recorder.abort();

    let weights: BTreeSet<i64> = seen.lock().unwrap().iter().copied().collect();
    for w in [25, 50, 100] {
        assert!(
            weights.contains(&w),
            "route never carried canary weight {w}: {:?}",
            seen.lock().unwrap()
        );
    }
    let order: Vec<i64> = seen
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|w| *w > 0)
        .collect();
    assert!(
        order.windows(2).all(|p| p[0] < p[1]),
        "weights did not step up: {order:?}"
    );

    // Back to the route the user wrote: one backend, the stable Service, now v2.
    let route = route_api.get("shop").await.unwrap();
    assert_eq!(
        route.data["spec"], route_before.data["spec"],
        "route not as the user wrote it"
    );
    assert!(
        !route
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("signalman")),
        "signalman still owns fields of the route"
    );
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let web = deps.get("web").await.unwrap();
    let image = web.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("registry.example/web:v2"));
    assert!(
        deps.get_opt("web-canary").await.unwrap().is_none(),
        "canary Deployment left"
    );
    assert!(
        services.get_opt("web-canary").await.unwrap().is_none(),
        "canary Service left"
    );
    let stable = services.get("web").await.unwrap();
    assert!(
        !sel(&stable).contains_key("pod-template-hash"),
        "stable Service still pinned"
    );
    assert_eq!(op::phase(&status), "Succeeded");
    ns.delete().await;
}

#[tokio::test]
async fn breach_in_gateway_mode_puts_the_route_back_on_the_old_version() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-gw-breach").await;
    let _operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::apply_yaml(&client, Some(ns.name()), ROUTE).await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;
    let route_api = routes(&client, ns.name());
    let route_before = route_api.get("shop").await.unwrap();
    let release = format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: gw-bad}}
spec:
  owner: team-e2e
{}  services:
  - name: web
    deployment: web
    change:
      images: {{app: "registry.example/web:v2"}}
      env: {{app: {{SIM_ERROR_RATE: "0.3"}}}}
    traffic: {{gatewayAPI: {{httpRoute: shop}}}}
"#,
        op::defaults_yaml(&[(25, 4), (100, 1)])
    );
    e2e::apply_yaml(&client, Some(ns.name()), &release).await;
    let api = op::releases(&client, ns.name());
    let status = op::wait_phase(&api, "gw-bad", "RolledBack", Duration::from_secs(90)).await;
    assert_eq!(
        status["rollback"]["reason"], "Breach",
        "{}",
        status["rollback"]
    );

    let route = route_api.get("shop").await.unwrap();
    assert_eq!(
        route.data["spec"], route_before.data["spec"],
        "route not as the user wrote it"
    );
    assert!(
        !route
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("signalman")),
        "signalman still owns fields of the route"
    );
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let web = deps.get("web").await.unwrap();
    let c = &web.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/web:v1"));
    assert!(
        deps.get_opt("web-canary").await.unwrap().is_none(),
        "canary Deployment left"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), ns.name());
    assert!(
        services.get_opt("web-canary").await.unwrap().is_none(),
        "canary Service left"
    );
    let stable = services.get("web").await.unwrap();
    let sel = stable.spec.unwrap().selector.unwrap_or_default();
    assert!(
        !sel.contains_key("pod-template-hash"),
        "stable Service still pinned: {sel:?}"
    );
    ns.delete().await;
}
