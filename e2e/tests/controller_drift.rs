//! Safety rules mid-release (issue 4): someone else changes the stable
//! Deployment, or the Release's spec changes while it is in flight. The
//! controller holds with canary traffic at 0 and says why; it never fights the
//! other writer; an abort then withdraws the canary and leaves their change.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman::api::Release;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp};

fn guarded() -> Release {
    release("guarded")
        .defaults(&[(50, 60), (100, 1)])
        .service(svc("web"))
        .build()
}

/// web on v1, and the Release `guarded` baking its first (long) step.
async fn start(prefix: &str) -> (Scenario, Api<Release>, Api<Deployment>) {
    let sc = Scenario::start(prefix).await;
    sc.deploy_apps(&["web"]).await;
    let api = sc.apply(&guarded()).await;
    rel::wait_baking(&api, "guarded", "web", Duration::from_secs(60)).await;
    let deps = Api::namespaced(sc.client.clone(), sc.ns());
    (sc, api, deps)
}

/// Wait for a hold; returns the status and what the hold says (its reason
/// and the release's message).
async fn wait_hold(api: &Api<Release>, case: &str) -> (serde_json::Value, String) {
    let held = rel::wait_status(api, "guarded", "a hold", Duration::from_secs(30), |s| {
        s["hold"]["id"].is_string()
    })
    .await;
    let said = format!("{} {}", held["hold"]["reason"], held["message"]);
    eprintln!("{case} hold: {said}");
    (held, said)
}

async fn assert_held_at_zero(deps: &Api<Deployment>, status: &serde_json::Value) {
    assert_eq!(rel::phase(status), "Held", "{status}");
    assert_eq!(
        rel::service(status, "web").unwrap()["weight"],
        0,
        "{status}"
    );
    e2e::wait_for_object(
        deps,
        "web-canary",
        "canary at 0 pods",
        Duration::from_secs(10),
        |d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0),
    )
    .await;
}

#[tokio::test]
async fn someone_else_changing_the_deployment_holds_without_a_fight() {
    let (sc, api, deps) = start("ctl-drift").await;
    // A hotfix by hand, mid-release.
    let hotfix = WebApp::new("web").image("registry.example/web:hotfix");
    sc.apply_yaml(&hotfix.yaml()).await;
    let (held, said) = wait_hold(&api, "drift").await;
    assert!(
        said.contains("web"),
        "the hold does not name the Deployment: {said}"
    );
    assert_held_at_zero(&deps, &held).await;

    // Not fought: the hotfix stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hotfix = "registry.example/web:hotfix";
    assert_eq!(e2e::image_of(&deps, "web").await, hotfix);

    // Abort: the canary goes, the stable Deployment keeps the hotfix.
    rel::patch_spec(&api, "guarded", |s| s.abort = Some(true)).await;
    rel::wait_phase(&api, "guarded", "RolledBack", Duration::from_secs(60)).await;
    assert!(
        deps.get_opt("web-canary").await.unwrap().is_none(),
        "canary left after abort"
    );
    assert_eq!(e2e::image_of(&deps, "web").await, hotfix);
    sc.end().await;
}

#[tokio::test]
async fn a_spec_changed_in_flight_holds_and_says_so() {
    let (sc, api, deps) = start("ctl-respec").await;
    rel::patch_spec(&api, "guarded", |s| {
        s.services[0].change.images =
            [("app".to_string(), "registry.example/web:v3".to_string())].into();
    })
    .await;
    let (held, said) = wait_hold(&api, "spec-change").await;
    assert!(
        said.contains("SpecChanged") || said.contains("spec changed"),
        "{said}"
    );
    assert_held_at_zero(&deps, &held).await;
    // The canary runs the version the release started with, never the new spec's.
    let canary = e2e::image_of(&deps, "web-canary").await;
    assert_eq!(canary, "registry.example/web:v2");
    assert_eq!(e2e::image_of(&deps, "web").await, "registry.example/web:v1");
    sc.end().await;
}

#[tokio::test]
async fn a_stable_deployment_deleted_mid_release_holds_at_zero() {
    let (sc, api, deps) = start("ctl-gone").await;
    deps.delete("web", &Default::default()).await.unwrap();
    let (held, said) = wait_hold(&api, "deleted-deployment").await;
    assert!(
        said.contains("web"),
        "the hold does not name the Deployment: {said}"
    );
    assert_held_at_zero(&deps, &held).await;
    sc.end().await;
}

#[tokio::test]
async fn editing_who_owns_a_release_in_flight_changes_nothing_released() {
    let (sc, api, _) = start("ctl-reowner").await;
    let before = rel::status(&api, "guarded").await;
    let bake = rel::service(&before, "web").unwrap()["bakeStartedAt"].clone();
    rel::patch_spec(&api, "guarded", |s| {
        s.owner = "team-other".to_string();
        s.summary = Some("typo fixed".to_string());
        s.hold_timeout = Some(Duration::from_secs(3600).into());
    })
    .await;
    // The controller sees the edit at once (a watch event); give it time to
    // act on it if it were going to, then check that nothing moved.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = rel::status(&api, "guarded").await;
    assert!(after["hold"].is_null(), "held: {}", after["hold"]);
    assert_eq!(rel::phase(&after), "Progressing", "{after}");
    let web = rel::service(&after, "web").unwrap();
    assert_eq!(web["weight"], 50, "{after}");
    assert_eq!(web["bakeStartedAt"], bake, "the bake started over: {after}");
    sc.end().await;
}
