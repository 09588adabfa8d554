//! Issue 10, item 8: a Deployment that is paused or still rolling out when
//! the train reaches it. The service waits before recording its baseline and
//! says why; a paused one needs a person (Stalled), a rollout under way does
//! not; either way the train completes once the Deployment is ready.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use kube::api::Api;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, WebApp, image_of, kubectl, output_text};

fn message(status: &serde_json::Value, service: &str) -> String {
    rel::service(status, service)
        .and_then(|s| s["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_paused_deployment_is_waited_for_until_it_is_resumed() {
    let sc = Scenario::start("ctl-paused").await;
    sc.deploy_apps(&["a"]).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let revisions: Api<ControllerRevision> = Api::namespaced(sc.client.clone(), sc.ns());
    let out = kubectl(&["rollout", "pause", "deployment/a", "-n", sc.ns()]).await;
    assert!(out.status.success(), "{}", output_text(&out));

    let train = release("paused-dep")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("a"))
        .build();
    let api = sc.apply(&train).await;
    let waiting = rel::wait_release(
        &api,
        "paused-dep",
        "a waiting for its paused Deployment",
        Duration::from_secs(30),
        |r| message(&r["status"], "a").contains("kubectl rollout resume deployment/a"),
    )
    .await;
    rel::capture(&waiting, "waiting-paused");
    let status = &waiting["status"];
    assert_eq!(rel::phase(status), "Progressing");
    assert_eq!(rel::service(status, "a").unwrap()["phase"], "Pending");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("to be resumed"),
        "{status}"
    );
    let stalled = rel::condition(status, "Stalled").unwrap();
    assert_eq!(stalled["status"], "True", "{stalled}");
    assert_eq!(stalled["reason"], "DeploymentPaused", "{stalled}");
    // Nothing written while it waits.
    assert!(
        revisions
            .get_opt("paused-dep-a-baseline")
            .await
            .unwrap()
            .is_none()
    );
    assert!(deps.get_opt("a-canary").await.unwrap().is_none());

    let out = kubectl(&["rollout", "resume", "deployment/a", "-n", sc.ns()]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let status = rel::wait_phase(&api, "paused-dep", "Succeeded", Duration::from_secs(60)).await;
    assert_eq!(
        rel::condition(&status, "Stalled").unwrap()["status"],
        "False"
    );
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    sc.end().await;
}

#[tokio::test]
async fn a_deployment_mid_rollout_gets_the_baseline_its_pods_run_once_it_is_done() {
    let sc = Scenario::start("ctl-rolling").await;
    // Each new pod must stay ready 4 s before the next one starts: the
    // rollout below lasts about 8 s.
    let app = WebApp::new("a").min_ready_seconds(4);
    sc.deploy(std::slice::from_ref(&app)).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let revisions: Api<ControllerRevision> = Api::namespaced(sc.client.clone(), sc.ns());
    sc.apply_yaml(&app.clone().image("registry.example/a:v1.1").yaml())
        .await;

    let train = release("rolling")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("a"))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_status(
        &api,
        "rolling",
        "a waiting for the rollout",
        Duration::from_secs(30),
        |s| message(s, "a").contains("finish its rollout"),
    )
    .await;
    // Waiting for the cluster is progress, not a stall.
    assert_eq!(
        rel::condition(&status, "Reconciling").unwrap()["status"],
        "True"
    );
    assert_eq!(
        rel::condition(&status, "Stalled").unwrap()["status"],
        "False"
    );

    let status = rel::wait_phase(&api, "rolling", "Succeeded", Duration::from_secs(90)).await;
    let tl = rel::timeline(&status);
    assert!(rel::first(&tl, "Waiting", "a").is_some(), "{tl:?}");
    let baseline = revisions.get("rolling-a-baseline").await.unwrap();
    let data = baseline.data.unwrap().0;
    assert_eq!(
        data["template"]["spec"]["containers"][0]["image"], "registry.example/a:v1.1",
        "{data}"
    );
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    sc.end().await;
}
