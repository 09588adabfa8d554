//! Controller scenario 6 (issue 4): Prometheus goes away during a bake. The
//! release holds with canary traffic at 0 and says why; once Prometheus is
//! back and the hold is lifted it completes.
//!
//! The shared Prometheus keeps running (other tests use it): this test's
//! Release talks to it through a TCP proxy the test closes and reopens.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman_e2e::proxy::Proxy;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario};

#[tokio::test]
async fn prometheus_outage_holds_at_zero_then_resumes() {
    let proxy = Proxy::to_prometheus().await;
    // Only an address the operator allows may be a Release's Prometheus.
    let address = proxy.url();
    let sc = Scenario::start_with("ctl-prom", |l| {
        l.arg(&format!("--prometheus-allowed-address={address}"))
    })
    .await;
    sc.deploy_apps(&["web"]).await;

    let outage = release("outage")
        .prometheus(&address)
        .defaults(&[(50, 5), (100, 1)])
        .service(svc("web"))
        .build();
    let api = sc.apply(&outage).await;
    rel::wait_baking(&api, "outage", "web", Duration::from_secs(60)).await;

    proxy.close();
    let held = rel::wait_status(&api, "outage", "a hold", Duration::from_secs(30), |s| {
        rel::phase(s) == "Held" && s["hold"]["id"].is_string()
    })
    .await;
    let reason = held["hold"]["reason"].as_str().unwrap_or("");
    assert!(!reason.is_empty(), "a hold must say why: {held}");
    let message = held["message"].as_str().unwrap_or("");
    eprintln!("hold: {reason}: {message}");
    assert!(
        message.contains("error-rate") && message.contains("errorLimit"),
        "{message}"
    );
    // The measurement says what went wrong: the address that did not answer.
    let errors: Vec<&str> = rel::service(&held, "web").unwrap()["measurements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["outcome"] == "Error")
        .filter_map(|m| m["message"].as_str())
        .collect();
    eprintln!("measurement errors: {errors:?}");
    let address = format!("127.0.0.1:{}", proxy.port());
    assert!(errors.iter().any(|e| e.contains(&address)), "{errors:?}");
    let stalled = rel::condition(&held, "Stalled").expect("Stalled condition");
    assert_eq!(stalled["status"], "True", "{stalled}");
    assert_eq!(rel::service(&held, "web").unwrap()["weight"], 0);
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let canary = e2e::wait_for_object(
        &deps,
        "web-canary",
        "canary at 0 pods",
        Duration::from_secs(10),
        |d| {
            d.spec.as_ref().and_then(|s| s.replicas) == Some(0)
                && d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0
        },
    )
    .await;
    assert_eq!(
        canary
            .metadata
            .annotations
            .unwrap()
            .get("signalman.dev/weight")
            .map(String::as_str),
        Some("0")
    );
    // Never promoted on missing evidence.
    assert_eq!(e2e::image_of(&deps, "web").await, "registry.example/web:v1");
    // Still held a while later: nothing moves by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rel::phase(&rel::status(&api, "outage").await), "Held");

    proxy.open().await;
    let id = held["hold"]["id"].as_str().unwrap().to_string();
    rel::patch_spec(&api, "outage", |s| s.resume_hold = Some(id)).await;
    let done = rel::wait_phase(&api, "outage", "Succeeded", Duration::from_secs(90)).await;
    let tl = rel::timeline(&done);
    assert!(
        rel::first(&tl, "Held", "").is_some() || tl.iter().any(|(r, _)| r.contains("Hold")),
        "{tl:?}"
    );
    assert_eq!(e2e::image_of(&deps, "web").await, "registry.example/web:v2");
    proxy.close();
    sc.end().await;
}
