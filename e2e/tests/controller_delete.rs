//! Issue 10, item 7: deleting a Release mid-train. The finalizer makes the
//! controller reverse the train first, like an abort: the canary in flight
//! is withdrawn, the service already promoted is back on its baseline, no
//! field of the user's Deployments is left owned by `signalman`, and then the
//! Release goes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use signalman::api::Release;
use signalman_e2e::release::{self as rel, owned_by_signalman, release, svc};
use signalman_e2e::{Scenario, image_of};

/// Delete Release `name` and wait until it is gone; returns the last status
/// seen before it went.
async fn delete_and_wait_gone(api: &Api<Release>, name: &str) -> serde_json::Value {
    api.delete(name, &DeleteParams::default()).await.unwrap();
    let mut last = serde_json::Value::Null;
    let started = std::time::Instant::now();
    loop {
        match api.get_opt(name).await.unwrap() {
            Some(r) => last = serde_json::to_value(&r).unwrap()["status"].take(),
            None => return last,
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deleted Release is still there: {}",
            signalman_e2e::pretty(&last)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deleting_a_release_mid_train_reverses_it_then_lets_it_go() {
    let sc = Scenario::start("ctl-delete").await;
    sc.deploy_apps(&["a", "b"]).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());

    // a promotes quickly; b's first step bakes long enough to be in flight.
    let train = release("gone")
        .defaults(&[(50, 60), (100, 1)])
        .service(svc("a").steps(&[(50, 1), (100, 1)]))
        .service(svc("b").after(&["a"]))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_baking(&api, "gone", "b", Duration::from_secs(60)).await;
    assert_eq!(rel::service(&status, "a").unwrap()["phase"], "Promoted");
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    assert!(deps.get_opt("b-canary").await.unwrap().is_some());
    let r = api.get("gone").await.unwrap();
    assert!(
        r.finalizers()
            .iter()
            .any(|f| f == signalman::api::FINALIZER),
        "no finalizer on a Release in flight: {:?}",
        r.finalizers()
    );

    let last = delete_and_wait_gone(&api, "gone").await;
    assert_eq!(last["rollback"]["reason"], "Deleted", "{last}");

    assert!(
        deps.get_opt("b-canary").await.unwrap().is_none(),
        "b's canary outlived the Release"
    );
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v1");
    assert_eq!(image_of(&deps, "b").await, "registry.example/b:v1");
    for n in ["a", "b"] {
        let d = deps.get(n).await.unwrap();
        assert!(
            !owned_by_signalman(&d.metadata),
            "{n}: fields still owned by signalman: {:?}",
            d.metadata.managed_fields
        );
    }
    // The user's own server-side apply takes the Deployment back without a conflict.
    sc.apply_yaml(
        &signalman_e2e::WebApp::new("a")
            .image("registry.example/a:v3")
            .yaml(),
    )
    .await;
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v3");
    sc.end().await;
}

#[tokio::test]
async fn a_deletion_that_cannot_restore_still_lets_go_and_keeps_the_baseline() {
    let sc = Scenario::start("ctl-delete-left").await;
    sc.deploy_apps(&["a", "b"]).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let revisions: Api<ControllerRevision> = Api::namespaced(sc.client.clone(), sc.ns());
    let train = release("left")
        .defaults(&[(50, 60), (100, 1)])
        .service(svc("a").steps(&[(50, 1), (100, 1)]))
        .service(svc("b").after(&["a"]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_baking(&api, "left", "b", Duration::from_secs(60)).await;
    // a was promoted; now its Deployment is gone, so it cannot be restored.
    deps.delete("a", &DeleteParams::default()).await.unwrap();

    // The Release may begin its rollback, end Failed and go between two
    // looks; then the rollback's own Event is the record of why.
    let last = delete_and_wait_gone(&api, "left").await;
    let events: Api<Event> = Api::namespaced(sc.client.clone(), sc.ns());
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        last["rollback"]["reason"] == "Deleted" || reasons.iter().any(|r| r == "Deleted"),
        "no rollback for the deletion: {last} {reasons:?}"
    );
    assert!(
        deps.get_opt("b-canary").await.unwrap().is_none(),
        "b's canary outlived the Release"
    );
    // a's baseline outlives the Release, for a manual rollback.
    let kept = revisions.get("left-a-baseline").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty()),
        "{:?}",
        kept.metadata.owner_references
    );
    assert_eq!(
        kept.data.unwrap().0["template"]["spec"]["containers"][0]["image"],
        "registry.example/a:v1"
    );
    let told = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("DeletedWithChangesLeft"))
        .expect("no DeletedWithChangesLeft event");
    assert_eq!(told.type_.as_deref(), Some("Warning"));
    let note = told.note.unwrap_or_default();
    assert!(note.contains("left-a-baseline"), "{note}");
    sc.end().await;
}
