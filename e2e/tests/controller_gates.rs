//! Issue 12, proofs 3 and 5: go/no-go gates and risk profiles on the real
//! control plane. A PromQL gate that does not hold keeps the Release
//! `AwaitingGates` with nothing in the cluster touched, and it starts once
//! the metric changes; a gate that fails before the second wave holds that
//! wave while the first stays promoted. A payment change runs with the
//! policy's high-risk profile (more steps, an approval before its last
//! step), a copy change with the low one.
//!
//! The gate's metric is steered the way the scenarios steer every metric:
//! a `smoke` app of the traffic simulator whose share of 5xx is set by its
//! `SIM_ERROR_RATE` (1: the "smoke tests" fail, 0: they pass).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;
use signalman_e2e::policy::{TestPolicy, What, approval, approve, whoami};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Prometheus, Scenario, WebApp, image_of};

/// The smoke app's 5xx per second: 0 when its tests pass.
const GATE_QUERY: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="smoke",code="500"}[5s])) or vector(0)"#;

fn smoke(failing: bool) -> WebApp {
    WebApp::new("smoke")
        .replicas(1)
        .env("SIM_ERROR_RATE", if failing { "1" } else { "0" })
}

/// Steer the smoke tests and wait until Prometheus sees them so.
async fn set_smoke(sc: &Scenario, prom: &Prometheus, failing: bool) {
    sc.deploy(&[smoke(failing)]).await;
    let q = GATE_QUERY.replace("{{namespace}}", sc.ns());
    prom.wait_for_value(&q, Duration::from_secs(60), |v| (v > 0.0) == failing)
        .await;
}

fn gate<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["gates"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == name)
}

async fn version(deps: &Api<Deployment>, name: &str) -> Option<String> {
    deps.get_opt(name)
        .await
        .unwrap()
        .and_then(|d| d.metadata.resource_version)
}

#[tokio::test]
async fn a_gate_that_does_not_hold_keeps_the_release_untouched_until_the_metric_changes() {
    let sc = Scenario::start("ctl-gate").await;
    let prom = Prometheus::from_env().await;
    sc.deploy_apps(&["a"]).await;
    set_smoke(&sc, &prom, true).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    let before = version(&deps, "a").await;

    let train = release("gated")
        .defaults(&[(50, 2), (100, 1)])
        .query_gate("smoke-tests", GATE_QUERY, 0.0)
        .service(svc("a"))
        .build();
    let api = sc.apply(&train).await;
    let status = rel::wait_status(
        &api,
        "gated",
        "the smoke-tests gate checked and not holding",
        Duration::from_secs(30),
        |s| {
            rel::phase(s) == "AwaitingGates"
                && gate(s, "smoke-tests").is_some_and(|g| g["checkedAt"].is_string())
        },
    )
    .await;
    rel::capture(&rel::get(&api, "gated").await, "awaiting-gates");
    let g = gate(&status, "smoke-tests").unwrap();
    assert_eq!(g["holds"], false, "{g}");
    assert!(g["value"].as_f64().is_some_and(|v| v > 0.0), "{g}");
    assert_eq!(g["kind"], "Query", "{g}");
    // The built-in gate is there and holds: the Deployment is ready.
    let ready = gate(&status, "deployments-ready").expect("the built-in gate");
    assert_eq!(ready["holds"], true, "{ready}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("smoke-tests"), "{message}");
    assert!(status["awaitingSince"].is_string(), "{status}");

    // Nothing changes while it waits: no canary, no baseline, the Deployment as it was.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(version(&deps, "a").await, before);
    assert!(deps.get_opt("a-canary").await.unwrap().is_none());
    let s = rel::status(&api, "gated").await;
    assert_eq!(rel::phase(&s), "AwaitingGates", "{s}");

    // The smoke tests pass: the gate holds and the train goes.
    set_smoke(&sc, &prom, false).await;
    let status = rel::wait_phase(&api, "gated", "Succeeded", Duration::from_secs(90)).await;
    assert!(
        rel::first(&rel::timeline(&status), "GatesPassed", "").is_some(),
        "{status}"
    );
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    sc.end().await;
}

#[tokio::test]
async fn a_gate_failing_before_the_second_wave_holds_it_while_the_first_stays_promoted() {
    let sc = Scenario::start("ctl-gate-wave").await;
    let prom = Prometheus::from_env().await;
    sc.deploy_apps(&["a", "b"]).await;
    set_smoke(&sc, &prom, false).await;
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());

    // a bakes long enough at 50 % for the smoke tests to start failing.
    let train = release("waves")
        .defaults(&[(50, 2), (100, 1)])
        .query_gate("smoke-tests", GATE_QUERY, 0.0)
        .service(svc("a").steps(&[(50, 30), (100, 2)]))
        .service(svc("b").after(&["a"]))
        .build();
    let api = sc.apply(&train).await;
    rel::wait_baking(&api, "waves", "a", Duration::from_secs(60)).await;
    set_smoke(&sc, &prom, true).await;

    let status = rel::wait_status(
        &api,
        "waves",
        "wave 2 held by the smoke-tests gate",
        Duration::from_secs(90),
        |s| {
            rel::phase(s) == "AwaitingGates"
                && rel::service(s, "a").is_some_and(|a| a["phase"] == "Promoted")
                && gate(s, "smoke-tests").is_some_and(|g| g["wave"] == 2 && g["holds"] == false)
        },
    )
    .await;
    assert_eq!(image_of(&deps, "a").await, "registry.example/a:v2");
    assert_eq!(rel::service(&status, "b").unwrap()["phase"], "Pending");
    let b_before = version(&deps, "b").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(version(&deps, "b").await, b_before, "b changed while held");
    assert!(deps.get_opt("b-canary").await.unwrap().is_none());
    assert_eq!(image_of(&deps, "b").await, "registry.example/b:v1");
    let s = rel::status(&api, "waves").await;
    assert_eq!(rel::phase(&s), "AwaitingGates", "{s}");
    assert_eq!(rel::service(&s, "a").unwrap()["phase"], "Promoted", "{s}");

    set_smoke(&sc, &prom, false).await;
    rel::wait_phase(&api, "waves", "Succeeded", Duration::from_secs(90)).await;
    assert_eq!(image_of(&deps, "b").await, "registry.example/b:v2");
    sc.end().await;
}

#[tokio::test]
async fn a_payment_change_runs_the_high_risk_profile_and_a_copy_change_the_low_one() {
    let sc = Scenario::start("ctl-risk").await;
    sc.deploy_apps(&["pay", "web"]).await;
    let pol = TestPolicy::create(
        &sc.client,
        &format!("{}-risk", sc.ns()),
        "risks:\n\
         \x20 low:\n\
         \x20   steps: [{weight: 50, bake: 2s}, {weight: 100, bake: 1s}]\n\
         \x20 high:\n\
         \x20   steps: [{weight: 10, bake: 2s}, {weight: 50, bake: 2s}, {weight: 100, bake: 1s}]\n\
         \x20   approvals: {beforeLastStep: true}\n",
    )
    .await;
    let payment = release("payment")
        .analysis_only()
        .policy(pol.name())
        .service(svc("pay").class("payment"))
        .build();
    let copy = release("copy")
        .analysis_only()
        .policy(pol.name())
        .service(svc("web").class("copy"))
        .build();
    let api = sc.apply(&payment).await;
    sc.apply(&copy).await;

    // The copy change: low risk, two steps, no approval, done.
    let status = rel::wait_phase(&api, "copy", "Succeeded", Duration::from_secs(90)).await;
    assert_eq!(status["plan"]["risk"], "low", "{status}");
    assert_eq!(status["policy"]["profile"], "low", "{status}");
    assert_eq!(
        status["policy"]["defaults"]["steps"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(
        rel::first(&rel::timeline(&status), "AwaitingApproval", "").is_none(),
        "{status}"
    );

    // The payment change: high risk and why, three steps, and it waits at
    // 50 % (the step before its last), bake passed, for an approval.
    let status = rel::wait_status(
        &api,
        "payment",
        "pay waiting for the approval of step 2",
        Duration::from_secs(90),
        |s| rel::service(s, "pay").is_some_and(|p| p["awaitingApproval"] == true),
    )
    .await;
    assert_eq!(status["plan"]["risk"], "high", "{status}");
    let reason = status["plan"]["riskReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("pay") && reason.contains("payment"),
        "{reason}"
    );
    assert_eq!(status["policy"]["profile"], "high", "{status}");
    assert_eq!(
        status["policy"]["defaults"]["steps"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let pay = rel::service(&status, "pay").unwrap();
    let message = pay["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("waits at 50%") && message.contains("--step pay/2"),
        "{pay}"
    );
    // It stays there (measured) until approved.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = rel::status(&api, "payment").await;
    assert_eq!(
        rel::service(&s, "pay").unwrap()["awaitingApproval"],
        true,
        "{s}"
    );
    assert_eq!(rel::phase(&s), "Progressing", "{s}");

    let me = whoami(&sc.client).await;
    approve(
        &sc.client,
        sc.ns(),
        &approval("pay-step-2", "payment", &me, What::Step("pay", 2)),
    )
    .await;
    let status = rel::wait_phase(&api, "payment", "Succeeded", Duration::from_secs(60)).await;
    assert!(
        rel::first(&rel::timeline(&status), "Approved", "pay").is_some(),
        "{status}"
    );
    sc.end().await;
    pol.delete(&signalman_e2e::client().await).await;
}
