//! Issue 10, item 7: deleting a Release mid-train. The finalizer makes the
//! controller reverse the train first, like an abort: the canary in flight
//! is withdrawn, the service already promoted is back on its baseline, no
//! field of the user's Deployments is left owned by `signalman`, and then the
//! Release goes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::Service;
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

/// Issue 15's fault matrix: a train of three deleted mid-bake of its second
/// wave: a promoted, b's canary in flight on a Gateway API route, c not
/// started. Afterwards nothing is half done: no canary Deployment, Service or
/// route weight, a and b back on their baselines, c never touched, no field
/// of any of them owned by `signalman`, the baselines gone with the Release.
#[tokio::test]
async fn deleting_a_train_of_three_mid_second_wave_leaves_nothing_half_done() {
    let started = std::time::Instant::now();
    let sc = Scenario::start("ctl-delete-3").await;
    sc.apply_yaml(&signalman_e2e::http_route_yaml("b-route", "b"))
        .await;
    sc.deploy_apps(&["a", "b", "c"]).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let services: Api<Service> = Api::namespaced(sc.client.clone(), sc.ns());
    let routes = signalman_e2e::http_routes(&sc.client, sc.ns());
    let revisions: Api<ControllerRevision> = Api::namespaced(sc.client.clone(), sc.ns());
    let route_before = routes.get("b-route").await.unwrap();
    let b_service_before = services.get("b").await.unwrap();
    let c_before = deps.get("c").await.unwrap();

    let train = release("three")
        .defaults(&[(50, 60), (100, 1)])
        .service(svc("a").steps(&[(50, 1), (100, 1)]))
        .service(svc("b").after(&["a"]).route("b-route"))
        .service(svc("c").after(&["b"]))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_baking(&api, "three", "b", Duration::from_secs(60)).await;
    assert_eq!(rel::service(&status, "a").unwrap()["phase"], "Promoted");
    assert_eq!(rel::service(&status, "c").unwrap()["phase"], "Pending");
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    assert!(services.get_opt("b-canary").await.unwrap().is_some());
    let weighted = routes.get("b-route").await.unwrap();
    assert!(
        weighted.data["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .is_some_and(|b| b
                .iter()
                .any(|r| r["name"] == "b-canary" && r["weight"] == 50)),
        "{}",
        weighted.data["spec"]
    );

    let last = delete_and_wait_gone(&api, "three").await;
    assert_eq!(last["rollback"]["reason"], "Deleted", "{last}");
    let took = started.elapsed();

    for n in ["a-canary", "b-canary", "c-canary"] {
        assert!(deps.get_opt(n).await.unwrap().is_none(), "{n} left");
    }
    assert!(
        services.get_opt("b-canary").await.unwrap().is_none(),
        "b's canary Service left"
    );
    let route = routes.get("b-route").await.unwrap();
    assert_eq!(
        route.data["spec"], route_before.data["spec"],
        "the route is not as the user wrote it"
    );
    assert!(!owned_by_signalman(&route.metadata), "route still owned");
    let b_service = services.get("b").await.unwrap();
    assert_eq!(
        b_service.spec.as_ref().unwrap().selector,
        b_service_before.spec.as_ref().unwrap().selector,
        "b's Service is still pinned"
    );
    assert!(
        !owned_by_signalman(&b_service.metadata),
        "b's Service still owned"
    );
    for n in ["a", "b", "c"] {
        assert_eq!(image_of(&deps, n).await, format!("registry.example/{n}:v1"));
        let d = deps.get(n).await.unwrap();
        assert!(
            !owned_by_signalman(&d.metadata),
            "{n}: fields still owned by signalman: {:?}",
            d.metadata.managed_fields
        );
    }
    let c = deps.get("c").await.unwrap();
    assert_eq!(
        c.metadata.resource_version, c_before.metadata.resource_version,
        "c, never started, was written"
    );
    // The baselines belonged to the Release: the garbage collector takes them.
    signalman_e2e::wait_for(
        "the baselines to go with the Release",
        Duration::from_secs(30),
        || async {
            let left: Vec<String> = revisions
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|r| r.name_any())
                .filter(|n| n.starts_with("three-"))
                .collect();
            Ok(left.is_empty().then_some(()))
        },
    )
    .await;
    eprintln!(
        "deleted mid-second-wave: reversed and gone in {:.1}s of {:.1}s",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    sc.end().await;
}

/// Deleted while a breach's rollback is restoring a promoted service: the
/// rollback under way finishes (its reason stays the breach), then the
/// Release goes, leaving nothing of the train.
#[tokio::test]
async fn deleting_a_release_during_its_rollback_finishes_the_rollback_then_lets_go() {
    let sc = Scenario::start("ctl-delete-rb").await;
    // Restoring a lasts a few seconds: long enough to delete in the middle.
    sc.deploy(&["a", "b"].map(|n| signalman_e2e::WebApp::new(n).min_ready_seconds(3)))
        .await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let train = release("breached")
        .defaults(&[(50, 3), (100, 1)])
        .service(svc("a").steps(&[(50, 1), (100, 1)]))
        .service(svc("b").after(&["a"]).error_rate("0.3"))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_status(
        &api,
        "breached",
        "restoring a",
        Duration::from_secs(90),
        |s| {
            rel::phase(s) == "RollingBack"
                && rel::service(s, "a").is_some_and(|a| a["phase"] == "Restoring")
        },
    )
    .await;
    let last = delete_and_wait_gone(&api, "breached").await;
    // The rollback under way stands: a deletion does not restart it.
    assert_eq!(last["rollback"]["reason"], "Breach", "{last}");
    for n in ["a", "b"] {
        assert_eq!(image_of(&deps, n).await, format!("registry.example/{n}:v1"));
        assert!(
            deps.get_opt(&format!("{n}-canary"))
                .await
                .unwrap()
                .is_none(),
            "{n}'s canary left"
        );
        let d = deps.get(n).await.unwrap();
        assert!(
            !owned_by_signalman(&d.metadata),
            "{n}: fields still owned by signalman: {:?}",
            d.metadata.managed_fields
        );
    }
    sc.end().await;
}
