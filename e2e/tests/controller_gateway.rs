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
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

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

fn selector(s: &Service) -> std::collections::BTreeMap<String, String> {
    s.spec
        .as_ref()
        .unwrap()
        .selector
        .clone()
        .unwrap_or_default()
}

/// web on v1 behind the HTTPRoute `shop`; returns the route API and the
/// route as the user wrote it.
async fn shop(sc: &Scenario) -> (Api<DynamicObject>, DynamicObject) {
    sc.apply_yaml(&e2e::http_route_yaml("shop", "web")).await;
    sc.deploy_apps(&["web"]).await;
    let routes = e2e::http_routes(&sc.client, sc.ns());
    let before = routes.get("shop").await.unwrap();
    (routes, before)
}

/// How both scenarios end: the route as the user wrote it, not a field of it
/// or a canary object left to Signalman, and web running `image`.
async fn assert_back_to_one_backend(
    sc: &Scenario,
    (routes, before): &(Api<DynamicObject>, DynamicObject),
    image: &str,
) {
    let route = routes.get("shop").await.unwrap();
    assert_eq!(
        route.data["spec"], before.data["spec"],
        "route not as the user wrote it"
    );
    assert!(
        !rel::owned_by_signalman(&route.metadata),
        "signalman still owns fields of the route"
    );
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    assert_eq!(e2e::image_of(&deps, "web").await, image);
    assert!(
        deps.get_opt("web-canary").await.unwrap().is_none(),
        "canary Deployment left"
    );
    let services: Api<Service> = Api::namespaced(sc.client.clone(), sc.ns());
    assert!(
        services.get_opt("web-canary").await.unwrap().is_none(),
        "canary Service left"
    );
    let sel = selector(&services.get("web").await.unwrap());
    assert!(
        !sel.contains_key("pod-template-hash"),
        "stable Service still pinned: {sel:?}"
    );
}

#[tokio::test]
async fn route_weights_step_and_return_to_one_backend() {
    let sc = Scenario::start("ctl-gateway").await;
    let shop = shop(&sc).await;

    // Record every canary weight the route carries, every 100 ms.
    let seen = Arc::new(Mutex::new(Vec::<i64>::new()));
    let recorder = {
        let (api, seen) = (shop.0.clone(), seen.clone());
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

    let gw = release("gw")
        .defaults(&[(25, 2), (50, 2), (100, 1)])
        .service(svc("web").route("shop"))
        .build();
    let writes_before = sc.operator.api_writes().await;
    let api = sc.apply(&gw).await;

    // While the canary takes traffic, each Service selects only its own pods.
    let services: Api<Service> = Api::namespaced(sc.client.clone(), sc.ns());
    rel::wait_baking(&api, "gw", "web", Duration::from_secs(60)).await;
    let stable = selector(&services.get("web").await.unwrap());
    let canary_service = services.get("web-canary").await.expect("canary Service");
    let canary = selector(&canary_service);
    assert!(
        stable.contains_key("pod-template-hash"),
        "stable Service not pinned: {stable:?}"
    );
    assert_eq!(
        canary.get("signalman.dev/track").map(String::as_str),
        Some("canary")
    );
    assert!(
        canary.contains_key("pod-template-hash"),
        "canary Service not pinned: {canary:?}"
    );
    assert_ne!(
        canary.get("pod-template-hash"),
        stable.get("pod-template-hash")
    );
    assert_eq!(
        canary_service
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("signalman.dev/canary-of")
            .map(String::as_str),
        Some("web")
    );

    let status = rel::wait_phase(&api, "gw", "Succeeded", Duration::from_secs(120)).await;
    let writes = sc.operator.api_writes().await - writes_before;
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
    assert_back_to_one_backend(&sc, &shop, "registry.example/web:v2").await;
    assert_eq!(rel::phase(&status), "Succeeded");
    sc.end().await;
}

#[tokio::test]
async fn breach_in_gateway_mode_puts_the_route_back_on_the_old_version() {
    let sc = Scenario::start("ctl-gw-breach").await;
    let shop = shop(&sc).await;
    let gw_bad = release("gw-bad")
        .defaults(&[(25, 4), (100, 1)])
        .service(svc("web").error_rate("0.3").route("shop"))
        .build();
    let api = sc.apply(&gw_bad).await;
    let status = rel::wait_phase(&api, "gw-bad", "RolledBack", Duration::from_secs(90)).await;
    assert_eq!(
        status["rollback"]["reason"], "Breach",
        "{}",
        status["rollback"]
    );
    assert_back_to_one_backend(&sc, &shop, "registry.example/web:v1").await;
    sc.end().await;
}
