//! Issue 14, "How it is proven" 1: verification (`spec.verify`). Once every
//! service is promoted the whole train is watched by its own metric, here the
//! error rate of `checkout`, the app the train's services serve, which the
//! train does not change and the test controls.
//!
//! - checkout starts failing while the train is verified: the whole train is
//!   reversed in rollback order (the flag first, then the services in
//!   reverse dependency order, then the migration's rollback Job), and the
//!   release ends RolledBack with its report;
//! - nothing fails: the release (approved to go) says Verifying with the
//!   time left, then Succeeded, with its report and its rollback window.
//!
//! Each run's Release is captured for the report's golden files
//! (`SIGNALMAN_CAPTURE_DIR`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use signalman::api::{Analysis, Metric};
use signalman_e2e::policy::{What, approval, approve, whoami};
use signalman_e2e::release::{self as rel, flag, migration, release, svc};
use signalman_e2e::{self as e2e, Scenario, WebApp, members};

/// The error rate of every `checkout` pod: what the train must not break.
const CHECKOUT_ERRORS: &str = r#"sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="checkout",code="500"}[5s])) / sum(rate(sim_http_requests_total{namespace="{{namespace}}",service="checkout"}[5s]))"#;

fn checkout_errors() -> Vec<Metric> {
    vec![Metric {
        name: "checkout-errors".into(),
        query: CHECKOUT_ERRORS.into(),
        min: None,
        max: Some(0.05),
        compare: None,
    }]
}

/// A flag that turns the new cart on once web is promoted, judged by checkout's errors.
fn new_cart() -> rel::Svc {
    flag("new-cart", "web-flags", &[("new-cart", "on")], 1)
        .after(&["web"])
        .analysis(Analysis {
            metrics: checkout_errors(),
            ..rel::error_rate_analysis(1)
        })
}

fn at(tl: &[(String, String)], reason: &str, service: &str) -> usize {
    rel::first(tl, reason, service).unwrap_or_else(|| panic!("no {reason} {service}: {tl:?}"))
}

#[tokio::test]
async fn a_breach_in_verification_reverses_the_whole_train() {
    let sc = Scenario::start("train-verify-breach").await;
    sc.deploy(&[
        WebApp::new("api"),
        WebApp::new("web"),
        WebApp::new("checkout"),
    ])
    .await;
    members::create_config_map(&sc.client, sc.ns(), "web-flags", &[("new-cart", "off")]).await;
    let train = release("verify")
        .defaults(&[(50, 2), (100, 1)])
        .service(migration("db"))
        .service(svc("api").after(&["db"]))
        .service(svc("web").after(&["api"]))
        .service(new_cart())
        .verify(120, checkout_errors())
        .build();
    let api = sc.apply(&train).await;
    let verifying = rel::wait_phase(&api, "verify", "Verifying", Duration::from_secs(120)).await;
    assert!(
        verifying["verification"]["endsAt"].is_string(),
        "{verifying}"
    );

    // checkout breaks once the train is out.
    let deps: Api<Deployment> = Api::namespaced(sc.client.clone(), sc.ns());
    deps.patch(
        "checkout",
        &PatchParams::default(),
        &Patch::Strategic(
            serde_json::json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "SIM_ERROR_RATE", "value": "0.5"}]}
            ]}}}}),
        ),
    )
    .await
    .unwrap();
    let r = rel::wait_release(
        &api,
        "verify",
        "RolledBack with its report",
        Duration::from_secs(120),
        |r| rel::phase(&r["status"]) == "RolledBack" && r["status"]["report"].is_object(),
    )
    .await;
    rel::capture(&r, "rolled-back");
    let status = &r["status"];

    let cause = &status["rollback"];
    assert_eq!(cause["reason"], "Breach", "{cause}");
    assert!(
        cause["service"].is_null(),
        "the whole train breached: {cause}"
    );
    assert_eq!(cause["metric"], "checkout-errors", "{cause}");
    assert_eq!(cause["threshold"], "max 0.05", "{cause}");
    assert!(
        cause["message"]
            .as_str()
            .unwrap_or_default()
            .contains("verification"),
        "{cause}"
    );
    let tl = rel::timeline(status);
    assert!(
        at(&tl, "VerifyStarted", "") < at(&tl, "Breach", ""),
        "{tl:?}"
    );
    // Reverse order: the flag first, then web, api, then db's rollback Job.
    let order = [
        at(&tl, "Breach", ""),
        at(&tl, "FlagRestored", "new-cart"),
        at(&tl, "Restored", "web"),
        at(&tl, "Restored", "api"),
        tl.iter()
            .rposition(|(r, s)| r == "JobStarted" && s == "db")
            .unwrap(),
        at(&tl, "Restored", "db"),
        at(&tl, "RolledBack", ""),
    ];
    assert!(order.is_sorted(), "{order:?} {tl:?}");
    for s in ["db", "api", "web", "new-cart"] {
        assert_eq!(rel::service(status, s).unwrap()["phase"], "Restored", "{s}");
    }
    for d in ["api", "web"] {
        assert_eq!(
            e2e::image_of(&deps, d).await,
            format!("registry.example/{d}:v1")
        );
    }
    let flags = members::config_map_data(&sc.client, sc.ns(), "web-flags").await;
    assert_eq!(flags.get("new-cart").map(String::as_str), Some("off"));

    let report = &status["report"];
    assert_eq!(report["outcome"], "RolledBack", "{report}");
    assert_eq!(report["rollback"]["metric"], "checkout-errors", "{report}");
    assert_eq!(report["verification"]["passed"], false, "{report}");
    sc.end().await;
}

#[tokio::test]
async fn a_train_that_passes_verification_succeeds_with_its_report() {
    let sc = Scenario::start("train-verify-pass").await;
    sc.deploy(&[
        WebApp::new("api"),
        WebApp::new("web"),
        WebApp::new("checkout"),
        WebApp::new("search"),
    ])
    .await;
    members::create_config_map(&sc.client, sc.ns(), "web-flags", &[("new-cart", "off")]).await;
    let train = release("verified")
        .defaults(&[(50, 2), (100, 1)])
        .service(svc("api").dark())
        .service(svc("web").after(&["api"]))
        .service(new_cart())
        .service(svc("search").hold("the search index is rebuilt next week"))
        .verify(6, checkout_errors())
        .approval_gate("go-live")
        .build();
    let api = sc.apply(&train).await;
    let me = whoami(&sc.client).await;
    approve(
        &sc.client,
        sc.ns(),
        &approval("go", "verified", &me, What::Gate("go-live")),
    )
    .await;

    let verifying = rel::wait_phase(&api, "verified", "Verifying", Duration::from_secs(120)).await;
    rel::capture(&rel::get(&api, "verified").await, "verifying");
    let message = verifying["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("verifying the train: ") && message.contains("s left"),
        "{verifying}"
    );
    let r = rel::wait_release(
        &api,
        "verified",
        "Succeeded with its report",
        Duration::from_secs(60),
        |r| rel::phase(&r["status"]) == "Succeeded" && r["status"]["report"].is_object(),
    )
    .await;
    rel::capture(&r, "succeeded");
    let status = &r["status"];

    let tl = rel::timeline(status);
    assert!(
        at(&tl, "VerifyStarted", "") < at(&tl, "Verified", ""),
        "{tl:?}"
    );
    assert!(at(&tl, "Verified", "") < at(&tl, "Succeeded", ""), "{tl:?}");
    let measured = status["verification"]["measurements"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !measured.is_empty() && measured.iter().all(|m| m["outcome"] == "Pass"),
        "{status}"
    );
    assert!(status["rollbackWindow"]["until"].is_string(), "{status}");
    let report = &status["report"];
    assert_eq!(report["outcome"], "Succeeded", "{report}");
    assert_eq!(report["verification"]["passed"], true, "{report}");
    assert_eq!(report["deferred"][0]["service"], "search", "{report}");
    assert_eq!(report["approvals"][0]["approver"], me.as_str(), "{report}");
    sc.end().await;
}
