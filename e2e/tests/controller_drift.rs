//! Safety rules mid-release (issue 4): someone else changes the stable
//! Deployment, or the Release's spec changes while it is in flight. The
//! controller holds with canary traffic at 0 and says why; it never fights the
//! other writer; an abort then withdraws the canary and leaves their change.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

fn release() -> String {
    format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: guarded}}
spec:
  owner: team-e2e
{}  services:
  - {{name: web, deployment: web, change: {{images: {{app: "registry.example/web:v2"}}}}}}
"#,
        op::defaults_yaml(&[(50, 60), (100, 1)])
    )
}

async fn start(
    prefix: &str,
) -> (
    kube::Client,
    TestNamespace,
    Operator,
    Api<kube::api::DynamicObject>,
) {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, prefix).await;
    let operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;
    e2e::apply_yaml(&client, Some(ns.name()), &release()).await;
    let api = op::releases(&client, ns.name());
    op::wait_status(
        &api,
        "guarded",
        "web baking",
        Duration::from_secs(60),
        |s| op::service(s, "web").is_some_and(|x| x["bakeStartedAt"].is_string()),
    )
    .await;
    (client, ns, operator, api)
}

async fn assert_held_at_zero(client: &kube::Client, ns: &str, status: &serde_json::Value) {
    assert_eq!(op::phase(status), "Paused", "{status}");
    assert_eq!(op::service(status, "web").unwrap()["weight"], 0, "{status}");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns);
    e2e::wait_for_object(
        &deps,
        "web-canary",
        "canary at 0 pods",
        Duration::from_secs(10),
        |d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0),
    )
    .await;
}

#[tokio::test]
async fn someone_else_changing_the_deployment_holds_without_a_fight() {
    let (client, ns, _operator, api) = start("ctl-drift").await;
    // A hotfix by hand, mid-release.
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:hotfix", 0),
    )
    .await;
    let held = op::wait_status(&api, "guarded", "a hold", Duration::from_secs(30), |s| {
        s["hold"]["id"].is_string()
    })
    .await;
    let said = format!("{} {}", held["hold"]["reason"], held["message"]);
    eprintln!("drift hold: {said}");
    assert!(
        said.contains("web"),
        "the hold does not name the Deployment: {said}"
    );
    assert_held_at_zero(&client, ns.name(), &held).await;

    // Not fought: the hotfix stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    assert_eq!(
        op::first_image(&deps.get("web").await.unwrap()),
        "registry.example/web:hotfix"
    );

    // Abort: the canary goes, the stable Deployment keeps the hotfix.
    op::patch_spec(&api, "guarded", serde_json::json!({"abort": true})).await;
    op::wait_phase(&api, "guarded", "RolledBack", Duration::from_secs(60)).await;
    assert!(
        deps.get_opt("web-canary").await.unwrap().is_none(),
        "canary left after abort"
    );
    assert_eq!(
        op::first_image(&deps.get("web").await.unwrap()),
        "registry.example/web:hotfix"
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_spec_changed_in_flight_holds_and_says_so() {
    let (client, ns, _operator, api) = start("ctl-respec").await;
    op::patch_spec(
        &api,
        "guarded",
        serde_json::json!({"services": [{"name": "web", "deployment": "web", "change": {"images": {"app": "registry.example/web:v3"}}}]}),
    )
    .await;
    let held = op::wait_status(&api, "guarded", "a hold", Duration::from_secs(30), |s| {
        s["hold"]["id"].is_string()
    })
    .await;
    let said = format!("{} {}", held["hold"]["reason"], held["message"]);
    eprintln!("spec-change hold: {said}");
    assert!(
        said.contains("SpecChanged") || said.contains("spec changed"),
        "{said}"
    );
    assert_held_at_zero(&client, ns.name(), &held).await;
    // The canary runs the version the release started with, never the new spec's.
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    assert_eq!(
        op::first_image(&deps.get("web-canary").await.unwrap()),
        "registry.example/web:v2"
    );
    assert_eq!(
        op::first_image(&deps.get("web").await.unwrap()),
        "registry.example/web:v1"
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_stable_deployment_deleted_mid_release_holds_at_zero() {
    let (client, ns, _operator, api) = start("ctl-gone").await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    deps.delete("web", &Default::default()).await.unwrap();
    let held = op::wait_status(&api, "guarded", "a hold", Duration::from_secs(30), |s| {
        s["hold"]["id"].is_string()
    })
    .await;
    let said = format!("{} {}", held["hold"]["reason"], held["message"]);
    eprintln!("deleted-deployment hold: {said}");
    assert!(
        said.contains("web"),
        "the hold does not name the Deployment: {said}"
    );
    assert_held_at_zero(&client, ns.name(), &held).await;
    ns.delete().await;
}

#[tokio::test]
async fn editing_who_owns_a_release_in_flight_changes_nothing_released() {
    let (_client, ns, _operator, api) = start("ctl-reowner").await;
    let before = op::status(&api, "guarded").await;
    let bake = before["services"][0]["bakeStartedAt"].clone();
    op::patch_spec(
        &api,
        "guarded",
        serde_json::json!({"owner": "team-other", "summary": "typo fixed", "holdTimeout": "1h"}),
    )
    .await;
    // The controller sees the edit at once (a watch event); give it time to
    // act on it if it were going to, then check that nothing moved.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = op::status(&api, "guarded").await;
    assert!(after["hold"].is_null(), "held: {}", after["hold"]);
    assert_eq!(op::phase(&after), "Progressing", "{after}");
    let web = op::service(&after, "web").unwrap();
    assert_eq!(web["weight"], 50, "{after}");
    assert_eq!(web["bakeStartedAt"], bake, "the bake started over: {after}");
    ns.delete().await;
}
