//! Issue 13, "How it is proven" 6: a held service and its dependents are
//! Deferred, an independent service ships, and the Release ends Succeeded
//! listing what was deferred and why.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman_e2e::members;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

#[tokio::test]
async fn a_held_service_and_its_dependents_wait_while_the_rest_ships() {
    let sc = Scenario::start("train-defer").await;
    sc.deploy_apps(&["search", "results", "web"]).await;
    let train = release("defer")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("search").hold("team-search: load test not signed off"))
        .service(svc("results").after(&["search"]))
        .service(svc("web"))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_phase(&api, "defer", "Succeeded", Duration::from_secs(90)).await;

    let phase = |n: &str| rel::service(&status, n).unwrap()["phase"].clone();
    assert_eq!(phase("search"), "Deferred", "{status}");
    assert_eq!(phase("results"), "Deferred", "{status}");
    assert_eq!(phase("web"), "Promoted", "{status}");
    let deferred: Vec<(String, String)> = status["deferred"]
        .as_array()
        .expect("status.deferred")
        .iter()
        .map(|d| {
            (
                d["service"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(deferred.len(), 2, "{deferred:?}");
    assert_eq!(deferred[0].0, "search");
    assert!(
        deferred[0]
            .1
            .contains("team-search: load test not signed off"),
        "{deferred:?}"
    );
    assert_eq!(deferred[1].0, "results");
    assert!(deferred[1].1.contains("depends on search"), "{deferred:?}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1 of 3 services promoted") && message.contains("2 deferred"),
        "{message}"
    );

    // Nothing of the deferred ones changed; web shipped.
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    for n in ["search", "results"] {
        assert_eq!(
            e2e::image_of(&deps, n).await,
            format!("registry.example/{n}:v1")
        );
    }
    assert_eq!(e2e::image_of(&deps, "web").await, "registry.example/web:v2");
    let tl = rel::timeline(&status);
    assert!(rel::first(&tl, "StepStarted", "search").is_none(), "{tl:?}");
    assert!(
        rel::first(&tl, "StepStarted", "results").is_none(),
        "{tl:?}"
    );
    assert!(rel::first(&tl, "Deferred", "search").is_some(), "{tl:?}");
    let events = members::events(&sc.client, sc.ns(), "defer").await;
    let said: Vec<&(String, String, String)> =
        events.iter().filter(|(_, r, _)| r == "Deferred").collect();
    assert_eq!(
        said.len(),
        1,
        "one Deferred Event per deferred root: {events:#?}"
    );
    assert_eq!(said[0].0, "Warning");
    assert!(
        said[0].2.contains("search") && said[0].2.contains("results"),
        "names the root and its dependents: {said:?}"
    );
    sc.end().await;
}
