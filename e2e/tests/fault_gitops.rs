//! Fault matrix (issue 15): a GitOps tool re-applies the old image to a
//! Deployment the train already promoted, as Argo CD's self-heal does when
//! its source still says v1: server-side apply under its own field manager,
//! forcing ownership. The release holds with canary traffic at 0, says who
//! changed what (the manager, the field, from which value to which), and does
//! not fight: nothing writes that Deployment after the hold.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use signalman_e2e::plugin::plugin;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp};

const GITOPS: &str = "argocd-controller";

/// Who owns the image of container `app` of `d` (its managedFields entries).
fn image_owners(d: &Deployment) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"app"}"#]
                    .get("f:image")
                    .is_some()
            })
        })
        .filter_map(|m| m.manager.clone())
        .collect()
}

#[tokio::test]
async fn the_old_image_reapplied_by_gitops_holds_naming_who_and_is_not_fought() {
    let started = Instant::now();
    let sc = Scenario::start("fault-gitops").await;
    sc.deploy_apps(&["a", "b", "c"]).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    // a promotes at once; b bakes long enough to be in flight; c waits for b.
    let train = release("synced")
        .defaults(&[(50, 60), (100, 1)])
        .service(svc("a").steps(&[(50, 1), (100, 1)]))
        .service(svc("b").after(&["a"]))
        .service(svc("c").after(&["b"]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_baking(&api, "synced", "b", Duration::from_secs(60)).await;
    assert_eq!(e2e::image_of(&deps, "a").await, "registry.example/a:v2");

    // The GitOps source still says a:v1; its sync puts it back.
    let yaml = WebApp::new("a").yaml();
    let manifest: serde_json::Value =
        serde_yaml::from_str(yaml.split("\n---\n").next().unwrap()).unwrap();
    let synced = deps
        .patch(
            "a",
            &PatchParams::apply(GITOPS).force(),
            &Patch::Apply(&manifest),
        )
        .await
        .unwrap();
    let generation = synced.metadata.generation;
    let synced_at = synced
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(GITOPS))
        .and_then(|m| m.time.clone())
        .expect("the GitOps tool's managedFields entry")
        .0;

    let held = rel::wait_status(&api, "synced", "a hold", Duration::from_secs(30), |s| {
        s["hold"]["id"].is_string()
    })
    .await;
    let said = held["hold"]["message"].as_str().unwrap().to_string();
    eprintln!("hold: {said}");
    assert_eq!(held["hold"]["reason"], "Drift");
    assert_eq!(held["hold"]["service"], "a");
    assert_eq!(
        said,
        format!(
            "Deployment \"a\" (spec.services[0].deployment) was changed by someone else while the release \
             is in flight: container \"app\" image changed from \"registry.example/a:v2\" to \
             \"registry.example/a:v1\" by {GITOPS} (Apply, {synced_at}); Signalman does not write it back: \
             put it back (where a GitOps tool applies it, in its source); then set spec.resumeHold: hold-1 \
             to resume, or spec.abort: true to roll back"
        )
    );
    assert_eq!(rel::phase(&held), "Held");
    assert_eq!(rel::service(&held, "b").unwrap()["weight"], 0, "{held}");
    e2e::wait_for_object(
        &deps,
        "b-canary",
        "canary at 0 pods",
        Duration::from_secs(10),
        |d| d.spec.as_ref().and_then(|s| s.replicas) == Some(0),
    )
    .await;
    // The Event says the same.
    let events: Api<Event> = Api::namespaced(sc.client.clone(), sc.ns());
    let held_event = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("Held"))
        .expect("no Held event");
    let note = held_event.note.unwrap_or_default();
    assert!(
        note.contains(&format!("by {GITOPS} (Apply, {synced_at})")),
        "{note}"
    );
    // And so does the plugin.
    let shown = plugin(&["get", "synced", "-n", sc.ns()]).await;
    shown.assert_prints("HOLD hold-1");
    shown.assert_prints(&format!(
        "container \"app\" image changed from \"registry.example/a:v2\" to \"registry.example/a:v1\" by {GITOPS}"
    ));

    // Not fought: a keeps the GitOps tool's image, owned by it alone, and
    // nobody writes a's spec again while the release is held.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a = deps.get("a").await.unwrap();
    assert_eq!(e2e::first_image(&a), "registry.example/a:v1");
    assert_eq!(a.metadata.generation, generation, "a was written again");
    assert_eq!(image_owners(&a), vec![GITOPS.to_string()]);
    let still = rel::status(&api, "synced").await;
    assert_eq!(rel::phase(&still), "Held");
    assert_eq!(still["holds"], 1, "{still}");

    // Abort: b's canary goes, a stays as the GitOps tool left it (already
    // the baseline), c was never touched.
    rel::patch_spec(&api, "synced", |s| s.abort = Some(true)).await;
    let end = rel::wait_phase(&api, "synced", "RolledBack", Duration::from_secs(60)).await;
    assert!(deps.get_opt("b-canary").await.unwrap().is_none());
    let a = deps.get("a").await.unwrap();
    assert_eq!(e2e::first_image(&a), "registry.example/a:v1");
    assert_eq!(a.metadata.generation, generation, "a was written again");
    assert_eq!(e2e::image_of(&deps, "b").await, "registry.example/b:v1");
    assert_eq!(e2e::image_of(&deps, "c").await, "registry.example/c:v1");
    for n in ["a", "b", "c"] {
        rel::wait_released(&sc.client, sc.ns(), n).await;
    }
    eprintln!(
        "timeline: {:?}\nfault-gitops wall time: {:.1}s",
        rel::timeline(&end),
        started.elapsed().as_secs_f64()
    );
    sc.end().await;
}
