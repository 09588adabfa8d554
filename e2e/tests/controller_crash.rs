//! Controller scenario 5 (issue 4): crash safety. The operator is killed with
//! SIGKILL during a bake, during a promotion and during a rollback, and
//! started again; each run ends exactly like an uninterrupted run of the same
//! train next to it (`signalman_e2e::outcome`): same phase, same
//! Deployments, no canary left, the same decisions in the timeline (no step
//! skipped or repeated).

use std::time::Duration;

use serde_json::Value;
use signalman::api::Release;
use signalman_e2e::outcome::{Outcome, assert_same};
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Scenario, WebApp};

/// A train a -> b. `bad_b`: b's new version fails (30 % 5xx), so the train
/// rolls back after a was promoted.
fn train(bad_b: bool) -> Release {
    let b = svc("b").after(&["a"]);
    let b = if bad_b { b.error_rate("0.3") } else { b };
    release("train")
        .defaults(&[(50, 3), (100, 1)])
        .service(svc("a"))
        .service(b)
        .build()
}

async fn run(prefix: &str, bad_b: bool, crash: bool) -> Outcome {
    let mut sc = Scenario::start(prefix).await;
    // minReadySeconds: 2 makes promotions and restorations last long enough
    // to be interrupted.
    sc.deploy(&["a", "b"].map(|n| WebApp::new(n).min_ready_seconds(2)))
        .await;
    let api = sc.apply(&train(bad_b)).await;
    let svc_phase = |s: &Value, n: &str| {
        rel::service(s, n).map(|x| x["phase"].as_str().unwrap_or("").to_string())
    };

    if crash {
        // During a bake: a's first step has started baking.
        rel::wait_status(&api, "train", "a baking", Duration::from_secs(60), |s| {
            rel::service(s, "a").is_some_and(|x| x["bakeStartedAt"].is_string())
        })
        .await;
        sc.operator.crash_and_restart().await;
        eprintln!("{prefix}: killed during a's bake");
        // During a promotion: a's stable Deployment is being updated.
        rel::wait_status(&api, "train", "a promoting", Duration::from_secs(60), |s| {
            svc_phase(s, "a").as_deref() == Some("Promoting")
        })
        .await;
        sc.operator.crash_and_restart().await;
        eprintln!("{prefix}: killed during a's promotion");
        if bad_b {
            // During the rollback: a is being restored.
            rel::wait_status(
                &api,
                "train",
                "rolling back",
                Duration::from_secs(60),
                |s| rel::phase(s) == "RollingBack",
            )
            .await;
            sc.operator.crash_and_restart().await;
            eprintln!("{prefix}: killed during the rollback");
        }
    }
    let want = if bad_b { "RolledBack" } else { "Succeeded" };
    rel::wait_phase(&api, "train", want, Duration::from_secs(120)).await;
    let outcome = Outcome::capture(&sc.client, sc.ns(), "train").await;
    sc.end().await;
    outcome
}

#[tokio::test]
async fn killed_during_bake_and_promotion_ends_like_an_uninterrupted_run() {
    let (crashed, clean) = tokio::join!(
        run("ctl-crash-ok", false, true),
        run("ctl-clean-ok", false, false)
    );
    assert_eq!(clean.phase, "Succeeded");
    assert_same(&crashed, &clean);
}

#[tokio::test]
async fn killed_during_promotion_and_rollback_ends_like_an_uninterrupted_run() {
    let (crashed, clean) = tokio::join!(
        run("ctl-crash-rb", true, true),
        run("ctl-clean-rb", true, false)
    );
    assert_eq!(clean.phase, "RolledBack");
    assert_same(&crashed, &clean);
}
