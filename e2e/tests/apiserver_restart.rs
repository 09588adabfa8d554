//! Issue 10, item 1: the operator is never silently stuck after the API server
//! goes away. The local cluster's kube-apiserver is stopped for 10 s while a
//! release bakes, then started again: `/healthz` fails while the controller
//! cannot watch (so Kubernetes would restart it), the watches come back by
//! themselves, the release that was baking finishes and hands its fields
//! back, and a Release created 30 s after the API server returned progresses.
//! In between, the API server is frozen (SIGSTOP) for a moment: a reconcile
//! that waits on it fails liveness too.
//!
//! This file holds one test on purpose: while the API server is down every
//! client of the cluster is cut off, and `cargo test` runs the test binaries
//! one after another.

use std::time::{Duration, Instant};

use signalman_e2e::apiserver::LocalApiServer;
use signalman_e2e::release::{self as rel, release, svc};
use signalman_e2e::{Look, Scenario, poll};

/// A stall timeout short enough for a 10 s outage to trip it.
const STALL: Duration = Duration::from_secs(4);

#[tokio::test]
async fn the_operator_recovers_from_an_api_server_restart_and_fails_liveness_while_stuck() {
    let mut apiserver = LocalApiServer::of_local_cluster();
    let sc = Scenario::start_with("apiserver-restart", |l| l.stall_timeout(STALL)).await;
    sc.deploy_apps(&["a", "b", "c"]).await;

    // No analysis: the bakes are time alone, so the outage does not leave the
    // step short of measurements.
    let api = sc
        .apply(
            &release("baking")
                .service(
                    svc("a")
                        .steps(&[(50, 1), (100, 20)])
                        .unmeasured("an outage must not leave a step short of measurements"),
                )
                .build(),
        )
        .await;
    rel::wait_status(
        &api,
        "baking",
        "a baking its last step",
        Duration::from_secs(60),
        |s| rel::service(s, "a").is_some_and(|x| x["step"] == 1 && x["bakeStartedAt"].is_string()),
    )
    .await;
    assert_eq!(sc.operator.get("/healthz").await.unwrap().0, 200);

    let stopped = Instant::now();
    apiserver.stop().await;
    eprintln!(
        "API server stopped ({:.1}s to stop)",
        stopped.elapsed().as_secs_f64()
    );
    // Liveness fails once the watches have kept failing for the stall timeout.
    let why = sc
        .operator
        .wait_answer("/healthz", 503, Duration::from_secs(30))
        .await;
    let to_fail = stopped.elapsed();
    eprintln!(
        "/healthz failed {:.1}s after the API server stopped: {why}",
        to_fail.as_secs_f64()
    );
    assert!(why.contains("the Release watch has failed for"), "{why}");
    let (code, body) = sc.operator.get("/readyz").await.unwrap();
    assert_eq!(code, 503, "not ready without the Release watch: {body}");
    // Keep it away for 10 s in all.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed())).await;

    // Started again (with the controllers, see apiserver.sh); the operator's
    // watches come back by themselves, timed from the start.
    let starting = Instant::now();
    let operator_ready = async {
        sc.operator
            .wait_answer("/readyz", 200, Duration::from_secs(60))
            .await;
        starting.elapsed()
    };
    let (startup, ready_after) = tokio::join!(apiserver.start(), operator_ready);
    let back = Instant::now();
    sc.operator
        .wait_answer("/healthz", 200, Duration::from_secs(30))
        .await;
    eprintln!(
        "API server down {:.1}s; operator ready again {:.1}s after the API server was started \
         (the start script, API server ready and controllers restarted, took {:.1}s); \
         /healthz 200 again {:.1}s after it",
        (starting - stopped).as_secs_f64(),
        ready_after.as_secs_f64(),
        startup.as_secs_f64(),
        starting.elapsed().as_secs_f64()
    );

    // The release that was baking finishes and gives the user's Deployment
    // back: that takes a reconcile after its final status, which only a
    // working watch brings.
    rel::wait_phase(&api, "baking", "Succeeded", Duration::from_secs(60)).await;
    rel::wait_released(&sc.client, sc.ns(), "a").await;

    // An API server that hangs instead of going away: the watches see no
    // error, but a reconcile waits for an answer that does not come, and
    // liveness says so. (This release measures every second, so a reconcile
    // is always about to run.)
    let measuring = release("measuring").defaults(&[(50, 120), (100, 1)]);
    sc.apply(&measuring.service(svc("c")).build()).await;
    rel::wait_baking(&api, "measuring", "c", Duration::from_secs(30)).await;
    let frozen = Instant::now();
    apiserver.freeze().await;
    let why = sc
        .operator
        .wait_answer("/healthz", 503, Duration::from_secs(20))
        .await;
    eprintln!(
        "/healthz failed {:.1}s after the API server froze: {why}",
        frozen.elapsed().as_secs_f64()
    );
    assert!(why.contains("the reconcile of"), "{why}");
    apiserver.thaw().await;
    sc.operator
        .wait_answer("/healthz", 200, Duration::from_secs(20))
        .await;

    // A Release created 30 s after the API server returned is picked up.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(back.elapsed())).await;
    let created = Instant::now();
    sc.apply(
        &release("after")
            .service(
                svc("b")
                    .steps(&[(50, 1), (100, 1)])
                    .unmeasured("only the pick-up is under test"),
            )
            .build(),
    )
    .await;
    poll(
        "Release after to get a status",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let s = rel::status(&api, "after").await;
            if rel::phase(&s).is_empty() {
                Look::NotYet(String::new())
            } else {
                Look::Done(())
            }
        },
    )
    .await;
    eprintln!(
        "Release after picked up {:.1}s after it was created",
        created.elapsed().as_secs_f64()
    );
    rel::wait_phase(&api, "after", "Succeeded", Duration::from_secs(60)).await;
    rel::wait_released(&sc.client, sc.ns(), "b").await;
    assert_eq!(sc.operator.get("/healthz").await.unwrap().0, 200);
    sc.end().await;
}
