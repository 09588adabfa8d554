//! Honest weights in replica-ratio mode (issue 9): what status reports is what
//! the pods carry, the last step really sends every request to the new
//! version, and a breach at that step still gives everything back.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;
use signalman::api::{Metric, Release};
use signalman_e2e::release::{self as rel, error_rate_analysis, release, steps, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp};

/// The canary's share of the requests Prometheus saw over the last 5 s: the
/// traffic simulator spreads a Service's requests over its ready pods, so this
/// is the effective weight as a user's own dashboards would see it.
const CANARY_SHARE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}"}[5s]))"#;

/// Release `weights` moving `web` through `weights` (weight, bake seconds),
/// judged by `metric` (the scenarios' error rate unless given), with two
/// failures tolerated so that one noisy sample never decides.
fn train(weights: &[(i32, u64)], metric: Option<Metric>) -> Release {
    let mut analysis = error_rate_analysis(2);
    analysis.failure_limit = Some(2);
    if let Some(m) = metric {
        analysis.metrics = vec![m];
    }
    let mut r = release("weights").service(svc("web")).build();
    r.spec.services[0].steps = Some(steps(weights));
    r.spec.services[0].analysis = Some(analysis);
    r
}

fn replicas(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = d
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    (spec, available)
}

/// Percent of available pods that are canary pods, as the controller rounds it.
fn pod_share(canary: i32, stable: i32) -> i64 {
    if canary + stable == 0 {
        return 0;
    }
    (f64::from(canary) * 100.0 / f64::from(canary + stable)).round() as i64
}

/// Wait until `web` bakes step `step` (0-based) and return the status then,
/// with the canary's and the stable Deployment's (spec, available) replicas.
async fn baking(sc: &Scenario, api: &Api<Release>, step: i64) -> (Value, (i32, i32), (i32, i32)) {
    rel::wait_status(
        api,
        "weights",
        &format!("step {} to bake", step + 1),
        Duration::from_secs(90),
        |s| {
            rel::service(s, "web").is_some_and(|w| {
                w["step"] == step && w["bakeStartedAt"].is_string() && w["phase"] == "Progressing"
            })
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    // Read the pods and the status together until they describe one moment.
    e2e::wait_for(
        &format!("status and pods to agree at step {}", step + 1),
        Duration::from_secs(20),
        || {
            let deployments = deployments.clone();
            async move {
                let s = rel::status(api, "weights").await;
                let canary = replicas(&deployments.get("web-canary").await?);
                let stable = replicas(&deployments.get("web").await?);
                let web = rel::service(&s, "web").cloned().unwrap_or_default();
                let agree = web["step"] == step
                    && web["effectiveWeight"].as_i64() == Some(pod_share(canary.1, stable.1));
                Ok(agree.then_some((s, canary, stable)))
            }
        },
    )
    .await
}

/// Every change given back: the stable Deployment runs `image` with its two
/// pods, no canary is left, and signalman owns none of its fields.
async fn assert_given_back(sc: &Scenario, image: &str) {
    let d: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let web = d.get("web").await.unwrap();
    assert_eq!(replicas(&web), (2, 2), "the replica count was handed back");
    assert_eq!(e2e::first_image(&web), image);
    assert!(d.get_opt("web-canary").await.unwrap().is_none());
    rel::wait_released(&sc.client, sc.ns(), "web").await;
}

#[tokio::test]
async fn status_reports_the_share_the_pods_carry_and_the_last_step_carries_all() {
    let sc = Scenario::start("ctl-weights").await;
    sc.deploy(&[WebApp::new("web")]).await;
    let api = sc.apply(&train(&[(10, 4), (50, 4), (100, 6)], None)).await;

    // 2 stable pods: a 10 % step runs 1 canary pod, a third of the pods, and says so.
    let (s, canary, stable) = baking(&sc, &api, 0).await;
    let web = rel::service(&s, "web").unwrap();
    assert_eq!(web["weight"], 10, "{web}");
    assert_eq!(web["effectiveWeight"], 33, "{web}");
    assert_eq!((canary, stable), ((1, 1), (2, 2)));

    let (s, canary, stable) = baking(&sc, &api, 1).await;
    assert_eq!(rel::service(&s, "web").unwrap()["effectiveWeight"], 50);
    assert_eq!((canary, stable), ((2, 2), (2, 2)));

    // The last step bakes only once the stable Deployment is scaled to zero.
    let (s, canary, stable) = baking(&sc, &api, 2).await;
    let web = rel::service(&s, "web").unwrap();
    assert_eq!(
        (web["weight"].as_i64(), web["effectiveWeight"].as_i64()),
        (Some(100), Some(100))
    );
    assert_eq!((canary, stable), ((2, 2), (0, 0)));

    let s = rel::wait_phase(&api, "weights", "Succeeded", Duration::from_secs(120)).await;
    assert!(
        rel::service(&s, "web")
            .unwrap()
            .get("effectiveWeight")
            .is_none()
    );
    // Promotion handed the replica count back and the new version runs in it.
    assert_given_back(&sc, "registry.example/web:v2").await;
    sc.end().await;
}

#[tokio::test]
async fn a_breach_at_the_last_step_brings_the_stable_pods_back_and_restores_everything() {
    let sc = Scenario::start("ctl-weights-breach").await;
    sc.deploy(&[WebApp::new("web")]).await;
    // The criterion is the canary's share of the requests: half passes, all of
    // them does not, so the breach comes exactly when the last step is really in effect.
    let share = Metric {
        name: "canary-share".into(),
        query: CANARY_SHARE_QUERY.into(),
        min: None,
        max: Some(0.75),
        compare: None,
    };
    let api = sc.apply(&train(&[(50, 4), (100, 30)], Some(share))).await;
    let (_, canary, stable) = baking(&sc, &api, 1).await;
    assert_eq!((canary, stable), ((2, 2), (0, 0)));

    let s = rel::wait_phase(&api, "weights", "RolledBack", Duration::from_secs(120)).await;
    assert_eq!(s["rollback"]["reason"], "Breach", "{s}");
    assert_eq!(s["rollback"]["service"], "web", "{s}");
    assert_given_back(&sc, "registry.example/web:v1").await;
    sc.end().await;
}
