//! Smoke tests of the e2e environment itself (issue 3): the control plane is
//! real (controllers, scheduler, kwok, CRD validation, RBAC) and the traffic
//! simulator's metrics reach Prometheus.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use signalman_e2e::{self as e2e, Prometheus, TestNamespace, WebApp};

/// A Deployment and Service answering with `error_rate` 5xx and a 30 ms median.
fn web_app(name: &str, replicas: i32, image: &str, error_rate: &str) -> String {
    WebApp::new(name)
        .replicas(replicas)
        .image(image)
        .env("SIM_ERROR_RATE", error_rate)
        .env("SIM_LATENCY_MS", "30")
        .yaml()
}

fn api_status(err: &anyhow::Error) -> Option<u16> {
    err.chain()
        .find_map(|e| match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        })
}

#[tokio::test]
async fn deployment_becomes_available_and_scales() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "smoke-deploy").await;
    ns.apply_yaml(&web_app("web", 3, "registry.example/web:v1", "0"))
        .await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 3, Duration::from_secs(90)).await;

    // The pods were scheduled onto kwok's fake nodes and made Running by kwok.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3);
    for p in &list.items {
        let spec = p.spec.as_ref().unwrap();
        assert!(
            spec.node_name.is_some(),
            "pod {:?} not scheduled",
            p.metadata.name
        );
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    }

    // Scaling goes through the real Deployment and ReplicaSet controllers.
    // (Server-side apply of the whole manifest: fields we omit would be removed.)
    ns.apply_yaml(&web_app("web", 5, "registry.example/web:v1", "0"))
        .await;
    e2e::wait_deployment_ready(&client, ns.name(), "web", 5, Duration::from_secs(90)).await;
    ns.delete().await;
}

#[tokio::test]
async fn job_pods_complete() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "smoke-job").await;
    ns.apply_yaml(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: registry.example/migrate:v1}]
"#,
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns.name());
    e2e::wait_for_object(
        &jobs,
        "migrate",
        "Job to complete",
        Duration::from_secs(60),
        |j| j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) == 1,
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn a_failing_job_pod_leaves_the_message_its_annotation_gives() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "smoke-job-fail").await;
    ns.apply_yaml(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {app: migrate}
      annotations:
        sim.signalman.dev/job-result: failed
        sim.signalman.dev/job-message: "ERROR: column \"total\" already exists"
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: registry.example/migrate:v1}]
"#,
    )
    .await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns.name());
    let failed = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Failed" && c.status == "True")
    };
    e2e::wait_for_object(
        &jobs,
        "migrate",
        "Job to fail",
        Duration::from_secs(60),
        failed,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let listed = pods
        .list(&ListParams::default().labels("app=migrate"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "backoffLimit 0: one pod");
    let terminated = listed.items[0]
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.as_ref()?.terminated.clone())
        .expect("the container terminated");
    assert_eq!(terminated.exit_code, 1);
    assert_eq!(
        terminated.message.as_deref(),
        Some(r#"ERROR: column "total" already exists"#)
    );
    ns.delete().await;
}

#[tokio::test]
async fn invalid_objects_are_rejected() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "smoke-invalid").await;
    // Built-in validation: a Deployment whose selector does not match its template.
    let err = ns
        .try_apply_yaml(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replicas: 1
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: x}]}
"#,
        )
        .await
        .expect_err("the API server accepted an invalid Deployment");
    assert_eq!(api_status(&err), Some(422), "{err:#}");

    // CRD schema validation: an HTTPRoute backend weight above the schema maximum.
    let err = ns
        .try_apply_yaml(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken}
spec:
  rules:
  - backendRefs: [{name: web, port: 80, weight: 2000000}]
"#,
        )
        .await
        .expect_err("the API server accepted an HTTPRoute with weight 2000000");
    assert_eq!(api_status(&err), Some(422), "{err:#}");
    ns.delete().await;
}

#[tokio::test]
async fn httproute_is_accepted() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "smoke-route").await;
    ns.apply_yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gateway}]
  rules:
  - backendRefs:
    - {name: web, port: 80, weight: 90}
    - {name: web-canary, port: 80, weight: 10}
"#,
    )
    .await;
    let route = e2e::http_routes(&client, ns.name())
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        route.data["spec"]["rules"][0]["backendRefs"][1]["weight"],
        10
    );
    ns.delete().await;
}

#[tokio::test]
async fn traffic_metrics_reach_prometheus() {
    let client = e2e::client().await;
    let prom = Prometheus::from_env().await;
    let ns = TestNamespace::create(&client, "smoke-traffic").await;
    ns.apply_yaml(&web_app("shop", 2, "registry.example/shop:v7", "0.5"))
        .await;
    e2e::wait_deployment_ready(&client, ns.name(), "shop", 2, Duration::from_secs(90)).await;

    let selector = format!(r#"namespace="{}",service="shop""#, ns.name());
    let start = Instant::now();
    prom.wait_for_value(
        &format!("sum(sim_http_requests_total{{{selector}}})"),
        Duration::from_secs(10),
        |v| v > 0.0,
    )
    .await;
    eprintln!(
        "request metric visible in Prometheus {:?} after the Deployment was ready",
        start.elapsed()
    );

    // Labels: track and version come from the pods.
    let samples = prom
        .query(&format!(
            r#"sim_http_requests_total{{{selector},code="200"}}"#
        ))
        .await
        .unwrap();
    assert!(!samples.is_empty());
    for s in &samples {
        assert_eq!(s.labels["track"], "stable");
        assert_eq!(s.labels["version"], "v7");
    }

    // SIM_ERROR_RATE=0.5: about half the requests are 5xx.
    let errors = format!(r#"sum(sim_http_requests_total{{{selector},code=~"5.."}})"#);
    let total = format!("sum(sim_http_requests_total{{{selector}}})");
    prom.wait_for_value(&total, Duration::from_secs(20), |v| v >= 200.0)
        .await;
    let ratio = prom
        .value(&format!("{errors} / {total}"))
        .await
        .unwrap()
        .expect("no error ratio");
    assert!(
        (0.4..=0.6).contains(&ratio),
        "5xx ratio {ratio}, expected about 0.5"
    );

    // Latency histogram exists with the pod's median (30 ms) in the right bucket.
    let p50 = prom
        .value(&format!(
            "histogram_quantile(0.5, sum by (le) (sim_http_request_duration_seconds_bucket{{{selector}}}))"
        ))
        .await
        .unwrap()
        .expect("no latency histogram");
    assert!(
        (0.01..=0.05).contains(&p50),
        "median latency {p50}s, expected about 0.03"
    );
    ns.delete().await;
}

#[tokio::test]
async fn httproute_weights_split_traffic_and_canary_service_reports_as_stable() {
    let client = e2e::client().await;
    let prom = Prometheus::from_env().await;
    let ns = TestNamespace::create(&client, "smoke-weights").await;
    // Like Signalman in Gateway API mode: a stable and a canary Deployment,
    // each pinned to its own Service, and a weighted HTTPRoute.
    let track = |name: &str, track: &str, version: &str, labels: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api, signalman.dev/track: {track}}}}}
  template:
    metadata: {{labels: {{app: api, signalman.dev/track: {track}}}}}
    spec: {{containers: [{{name: app, image: "registry.example/api:{version}"}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, labels: {labels}}}
spec:
  selector: {{app: api, signalman.dev/track: {track}}}
  ports: [{{port: 80}}]
"#
        )
    };
    ns.apply_yaml(&track("api", "stable", "v1", "{}")).await;
    ns.apply_yaml(&track(
        "api-canary",
        "canary",
        "v2",
        "{signalman.dev/canary-of: api}",
    ))
    .await;
    ns.apply_yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: api
  annotations: {sim.signalman.dev/rps: "100"}
spec:
  rules:
  - backendRefs:
    - {name: api, port: 80, weight: 80}
    - {name: api-canary, port: 80, weight: 20}
"#,
    )
    .await;
    e2e::wait_deployment_ready(&client, ns.name(), "api", 1, Duration::from_secs(90)).await;
    e2e::wait_deployment_ready(&client, ns.name(), "api-canary", 1, Duration::from_secs(90)).await;

    let sel = format!(r#"namespace="{}",service="api""#, ns.name());
    let canary = format!(r#"sum(sim_target_rps{{{sel},track="canary",version="v2"}})"#);
    let stable = format!(r#"sum(sim_target_rps{{{sel},track="stable",version="v1"}})"#);
    prom.wait_for_value(&canary, Duration::from_secs(30), |v| {
        (v - 20.0).abs() < 0.01
    })
    .await;
    prom.wait_for_value(&stable, Duration::from_secs(30), |v| {
        (v - 80.0).abs() < 0.01
    })
    .await;
    // No series under the canary Service's own name.
    let own = prom
        .query(&format!(
            r#"sim_http_requests_total{{namespace="{}",service="api-canary"}}"#,
            ns.name()
        ))
        .await
        .unwrap();
    assert!(
        own.is_empty(),
        "canary traffic reported under its own Service name: {own:?}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn rbac_is_enforced_for_service_account_tokens() {
    let client = e2e::client().await;
    let ns = TestNamespace::create(&client, "smoke-rbac").await;
    ns.apply_yaml("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: nobody}\n")
        .await;
    let token = e2e::service_account_token(&client, ns.name(), "nobody").await;
    let as_nobody = e2e::client_with_token(&token).await;
    let pods: Api<Pod> = Api::namespaced(as_nobody, ns.name());
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {
            assert!(
                s.message
                    .contains(&format!("system:serviceaccount:{}:nobody", ns.name())),
                "{}",
                s.message
            );
        }
        other => {
            panic!("expected 403 Forbidden for a ServiceAccount without permissions, got {other:?}")
        }
    }
    // The admin identity can.
    let admin_pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    admin_pods
        .list(&ListParams::default())
        .await
        .expect("admin can list pods");
    ns.delete().await;
}
