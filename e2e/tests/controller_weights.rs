//! Honest weights in replica-ratio mode (issue 9): what status reports is what
//! the pods carry, the last step really sends every request to the new
//! version, and a breach at that step still gives everything back.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;
use signalman_e2e::operator::{self as op, Operator};
use signalman_e2e::{self as e2e, TestNamespace};

/// The canary's share of the requests Prometheus saw over the last 5 s: the
/// traffic simulator spreads a Service's requests over its ready pods, so this
/// is the effective weight as a user's own dashboards would see it.
const CANARY_SHARE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}",track="canary"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="{{service}}"}[5s]))"#;

fn release_yaml(name: &str, steps: &[(i32, u32)], metric: &str, query: &str, max: f64) -> String {
    let steps: Vec<String> = steps
        .iter()
        .map(|(w, b)| format!("{{weight: {w}, bake: {b}s}}"))
        .collect();
    format!(
        r#"apiVersion: signalman.dev/v1alpha1
kind: Release
metadata: {{name: {name}}}
spec:
  owner: team-e2e
  defaults:
    steps: [{}]
    analysis:
      interval: 1s
      failureLimit: 2
      inconclusiveLimit: 20
      errorLimit: 2
      metrics:
      - name: {metric}
        query: '{query}'
        max: {max}
  services:
  - {{name: web, deployment: web, change: {{images: {{app: "registry.example/web:v2"}}}}}}
"#,
        steps.join(", ")
    )
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
async fn baking(
    client: &kube::Client,
    ns: &str,
    api: &Api<kube::api::DynamicObject>,
    step: i64,
) -> (Value, (i32, i32), (i32, i32)) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    op::wait_status(
        api,
        "weights",
        &format!("step {} to bake", step + 1),
        Duration::from_secs(90),
        |s| {
            op::service(s, "web").is_some_and(|w| {
                w["step"] == step && w["bakeStartedAt"].is_string() && w["phase"] == "Progressing"
            })
        },
    )
    .await;
    // Read the pods and the status together until they describe one moment.
    e2e::wait_for(
        &format!("status and pods to agree at step {}", step + 1),
        Duration::from_secs(20),
        || {
            let deployments = deployments.clone();
            async move {
                let s = op::status(api, "weights").await;
                let canary = replicas(&deployments.get("web-canary").await?);
                let stable = replicas(&deployments.get("web").await?);
                let web = op::service(&s, "web").cloned().unwrap_or_default();
                let agree = web["step"] == step
                    && web["effectiveWeight"].as_i64() == Some(pod_share(canary.1, stable.1));
                Ok(agree.then_some((s, canary, stable)))
            }
        },
    )
    .await
}

#[tokio::test]
async fn status_reports_the_share_the_pods_carry_and_the_last_step_carries_all() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-weights").await;
    let _operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &release_yaml(
            "weights",
            &[(10, 4), (50, 4), (100, 6)],
            "error-rate",
            op::ERROR_RATE_QUERY,
            0.05,
        ),
    )
    .await;
    let api = op::releases(&client, ns.name());

    // 2 stable pods: a 10 % step runs 1 canary pod, a third of the pods, and says so.
    let (s, canary, stable) = baking(&client, ns.name(), &api, 0).await;
    let web = op::service(&s, "web").unwrap();
    assert_eq!(web["weight"], 10, "{web}");
    assert_eq!(web["effectiveWeight"], 33, "{web}");
    assert_eq!((canary, stable), ((1, 1), (2, 2)));

    let (s, canary, stable) = baking(&client, ns.name(), &api, 1).await;
    assert_eq!(op::service(&s, "web").unwrap()["effectiveWeight"], 50);
    assert_eq!((canary, stable), ((2, 2), (2, 2)));

    // The last step bakes only once the stable Deployment is scaled to zero.
    let (s, canary, stable) = baking(&client, ns.name(), &api, 2).await;
    let web = op::service(&s, "web").unwrap();
    assert_eq!(
        (web["weight"].as_i64(), web["effectiveWeight"].as_i64()),
        (Some(100), Some(100))
    );
    assert_eq!((canary, stable), ((2, 2), (0, 0)));

    let s = op::wait_phase(&api, "weights", "Succeeded", Duration::from_secs(120)).await;
    assert!(
        op::service(&s, "web")
            .unwrap()
            .get("effectiveWeight")
            .is_none()
    );
    // Promotion handed the replica count back and the new version runs in it.
    let d: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let web = d.get("web").await.unwrap();
    assert_eq!(replicas(&web), (2, 2));
    assert_eq!(op::first_image(&web), "registry.example/web:v2");
    assert!(d.get_opt("web-canary").await.unwrap().is_none());
    op::wait_released(&client, ns.name(), "web").await;
    ns.delete().await;
}

#[tokio::test]
async fn a_breach_at_the_last_step_brings_the_stable_pods_back_and_restores_everything() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "ctl-weights-breach").await;
    let _operator = Operator::start(ns.name()).await;
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &op::web_app("web", 2, "registry.example/web:v1", 0),
    )
    .await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 2, Duration::from_secs(60)).await;
    // The criterion is the canary's share of the requests: half passes, all of
    // them does not, so the breach comes exactly when the last step is really in effect.
    e2e::apply_yaml(
        &client,
        Some(ns.name()),
        &release_yaml(
            "weights",
            &[(50, 4), (100, 30)],
            "canary-share",
            CANARY_SHARE_QUERY,
            0.75,
        ),
    )
    .await;
    let api = op::releases(&client, ns.name());
    let (_, canary, stable) = baking(&client, ns.name(), &api, 1).await;
    assert_eq!((canary, stable), ((2, 2), (0, 0)));

    let s = op::wait_phase(&api, "weights", "RolledBack", Duration::from_secs(120)).await;
    assert_eq!(s["rollback"]["reason"], "Breach", "{s}");
    assert_eq!(s["rollback"]["service"], "web", "{s}");
    let d: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let web = d.get("web").await.unwrap();
    assert_eq!(replicas(&web), (2, 2), "the stable pods are back");
    assert_eq!(op::first_image(&web), "registry.example/web:v1");
    assert!(d.get_opt("web-canary").await.unwrap().is_none());
    op::wait_released(&client, ns.name(), "web").await;
    ns.delete().await;
}
