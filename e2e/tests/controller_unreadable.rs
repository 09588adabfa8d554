//! Issue 10, item 2: one Release that the API server stored but the operator
//! cannot parse stops nothing else. With a CRD that lacks the bound on
//! `failureLimit` (an older CRD), a Release with `failureLimit: 3000000000`
//! (beyond an int32) is stored; before, every list of Releases failed on it,
//! so no Release in reach of the operator moved. Now it is stalled on its own
//! with a message naming the field, and a Release beside it runs to the end.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{CustomResourceExt, ResourceExt};
use serde_json::{Value, json};
use signalman::api::Release;
use signalman_e2e::operator::apply_crd;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Look, Scenario, WebApp, poll, pretty};

/// The Release CRD without the `maximum` of `spec.defaults.analysis.failureLimit`.
fn crd_without_the_bound()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = serde_json::to_value(Release::crd()).unwrap();
    let limit = crd
        .pointer_mut(
            "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/defaults\
             /properties/analysis/properties/failureLimit",
        )
        .expect("failureLimit in the CRD schema");
    limit
        .as_object_mut()
        .unwrap()
        .remove("maximum")
        .expect("failureLimit has a maximum");
    serde_json::from_value(crd).unwrap()
}

#[tokio::test]
async fn an_unreadable_release_is_stalled_alone_and_the_others_go_on() {
    let sc = Scenario::start("ctl-unreadable").await;
    sc.deploy(&["a", "b"].map(|n| WebApp::new(n).replicas(1)))
        .await;
    apply_crd(&sc.client, &crd_without_the_bound()).await;

    // Valid as a Release but for one integer the bound would have refused.
    let mut bad = serde_json::to_value(
        release("bad")
            .defaults(&[(50, 1), (100, 1)])
            .service(svc("b"))
            .build(),
    )
    .unwrap();
    bad["metadata"]["namespace"] = json!(sc.ns());
    bad["spec"]["defaults"]["analysis"]["failureLimit"] = json!(3_000_000_000u64);
    sc.apply_yaml(&serde_json::to_string(&bad).unwrap()).await;

    let api = sc
        .apply(
            &release("good")
                .defaults(&[(50, 1), (100, 1)])
                .service(svc("a").unmeasured("e2e: released on bake time"))
                .build(),
        )
        .await;
    rel::wait_phase(&api, "good", "Succeeded", Duration::from_secs(90)).await;

    let untyped: Api<DynamicObject> = Api::namespaced_with(
        sc.client.clone(),
        sc.ns(),
        &ApiResource::erase::<Release>(&()),
    );
    let status = poll(
        "Release bad: Stalled=InvalidSpec",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let r = untyped.get("bad").await.expect("reading Release bad");
            let status = r.data["status"].clone();
            let stalled = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Stalled" && c["status"] == "True");
            if stalled {
                Look::Done(status)
            } else {
                Look::NotYet(pretty(&status))
            }
        },
    )
    .await;
    let stalled = rel::condition(&status, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "InvalidSpec", "{}", pretty(&status));
    let message = stalled["message"].as_str().unwrap_or_default();
    for says in ["spec.defaults.analysis.failureLimit", "3000000000"] {
        assert!(message.contains(says), "{message:?} does not say {says:?}");
    }
    assert_eq!(status["phase"], Value::from("Pending"));
    assert_eq!(rel::condition(&status, "Ready").unwrap()["status"], "False");

    // One Warning Event, on that Release.
    let events = Api::<Event>::namespaced(sc.client.clone(), sc.ns())
        .list(&ListParams::default())
        .await
        .unwrap();
    let warnings: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad")
                && e.type_.as_deref() == Some("Warning")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("failureLimit")
    );

    // It changed nothing on its Deployment, and holds no finalizer.
    let r = untyped.get("bad").await.unwrap();
    assert!(r.finalizers().is_empty(), "{:?}", r.finalizers());
    untyped
        .delete("bad", &DeleteParams::default())
        .await
        .unwrap();
    // The CRD as the operator ships it, for whatever runs next.
    apply_crd(&sc.client, &Release::crd()).await;
    sc.end().await;
}
