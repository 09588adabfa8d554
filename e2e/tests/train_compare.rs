//! Issue 14, "How it is proven" 2: a canary judged against the stable pods
//! it replaces. The traffic simulator gives each pod its own error rate
//! (`SIM_ERROR_RATE`: the stable pods' in the fixture, the canary's through
//! `change.env`) and labels its series `track="canary"` or `"stable"`, so
//! `{{track}}`'s matchers select each side. 2,000 requests a second make an
//! error ratio exact to well under the 0.005 allowed.
//!
//! - canary 2 % against stable 2 % with `maxIncrease: 0.005`: passes, and
//!   each measurement carries both values;
//! - canary 2 % against stable 0.1 %: breaches, and the rollback cause names
//!   the metric, the canary's value and the bound with the stable value.

use std::time::Duration;

use serde_json::Value;
use signalman::analysis::{QueryVars, Track, render_query};
use signalman::api::Compare;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Prometheus, Scenario, WebApp};

/// api's stable pods at `stable` errors, its new version at 2 %, judged by
/// the canary's error rate at most half a point above the stable pods'.
async fn compared(prefix: &str, stable: &str) -> (Scenario, kube::Api<signalman::api::Release>) {
    let sc = Scenario::start(prefix).await;
    sc.deploy(&[WebApp::new("api").env("SIM_ERROR_RATE", stable).rps(2000)])
        .await;
    // A series younger than the query's 5 s range reads low (no errors counted
    // yet): start once Prometheus sees the stable pods' own rate.
    let want: f64 = stable.parse().unwrap();
    let query = render_query(
        rel::TRACK_ERROR_RATE_QUERY,
        &QueryVars {
            namespace: sc.ns().to_owned(),
            service: "api".into(),
            track: Track::Stable,
            ..QueryVars::default()
        },
    );
    Prometheus::from_env()
        .await
        .wait_for_value(&query, Duration::from_secs(30), |v| {
            (v - want).abs() < 0.0005
        })
        .await;
    let train = release("cmp")
        .defaults(&[(50, 4), (100, 1)])
        .service(
            svc("api")
                .error_rate("0.02")
                .analysis(rel::compared_error_rate(Compare {
                    max_increase: Some(0.005),
                    ..Compare::default()
                })),
        )
        .build();
    let api = sc.apply(&train).await;
    (sc, api)
}

/// The measurements of service `name` that have both values.
fn compared_values(status: &Value, name: &str) -> Vec<(f64, f64)> {
    rel::service(status, name).unwrap()["measurements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["value"].as_f64()?, m["stableValue"].as_f64()?)))
        .collect()
}

#[tokio::test]
async fn a_canary_as_good_as_stable_passes() {
    let (sc, api) = compared("cmp-pass", "0.02").await;
    let status = rel::wait_phase(&api, "cmp", "Succeeded", Duration::from_secs(90)).await;
    let both = compared_values(&status, "api");
    assert!(
        !both.is_empty(),
        "no measurement with both values: {status}"
    );
    for (canary, stable) in &both {
        assert!(
            (canary - 0.02).abs() < 0.004 && (stable - 0.02).abs() < 0.004,
            "canary {canary}, stable {stable}: {status}"
        );
    }
    let api_status = rel::service(&status, "api").unwrap();
    assert!(
        api_status["measurements"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m["outcome"] != "Fail"),
        "{api_status}"
    );
    sc.end().await;
}

#[tokio::test]
async fn a_canary_worse_than_stable_breaches_naming_both_values() {
    let (sc, api) = compared("cmp-breach", "0.001").await;
    let status = rel::wait_phase(&api, "cmp", "RolledBack", Duration::from_secs(90)).await;
    let cause = &status["rollback"];
    assert_eq!(cause["reason"], "Breach", "{cause}");
    assert_eq!(cause["service"], "api", "{cause}");
    assert_eq!(cause["metric"], "error-rate", "{cause}");
    let value = cause["value"].as_f64().unwrap_or_default();
    assert!((value - 0.02).abs() < 0.004, "the canary's value: {cause}");
    // `canary ≤ stable + 0.005 (stable 0.001…)`: the bound and the stable value.
    let threshold = cause["threshold"].as_str().unwrap_or_default();
    let stable: f64 = threshold
        .split_once("(stable ")
        .and_then(|(_, s)| s.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no stable value in the threshold: {cause}"));
    assert!(
        threshold.starts_with("canary ≤ stable + 0.005") && (stable - 0.001).abs() < 0.001,
        "{cause}"
    );
    let failed = compared_values(&status, "api");
    assert!(
        failed.iter().any(|(c, s)| c - s > 0.005),
        "no measurement shows the gap: {status}"
    );
    assert_eq!(rel::service(&status, "api").unwrap()["phase"], "Withdrawn");
    sc.end().await;
}
