//! Fault matrix (issue 15): the API server is restarted (stopped for 5 s,
//! then started again) twice during one train: while its first wave bakes,
//! and while the train rolls back after its last service breached. The
//! train ends exactly like an uninterrupted run of it (`signalman_e2e::outcome`).
//!
//! The uninterrupted run goes first, not in parallel: while the API server
//! is down every client of the cluster is cut off. For the same reason this
//! file holds one test (`cargo test` runs test binaries one after another).

use std::time::{Duration, Instant};

use signalman_e2e::apiserver::LocalApiServer;
use signalman_e2e::fault::{Train, baking, service_phase};
use signalman_e2e::outcome::assert_same;
use signalman_e2e::release as rel;

/// How long the API server stays away each time.
const DOWN: Duration = Duration::from_secs(5);

/// Stop the API server, keep it away for [`DOWN`], start it again.
async fn restart(apiserver: &mut LocalApiServer, when: &str) {
    let t0 = Instant::now();
    apiserver.stop().await;
    tokio::time::sleep(DOWN).await;
    let start = apiserver.start().await;
    eprintln!(
        "API server restarted {when}: {:.1}s from stop to ready again (away 5 s; the start script took {:.1}s)",
        t0.elapsed().as_secs_f64(),
        start.as_secs_f64()
    );
}

#[tokio::test]
async fn api_server_restarted_mid_bake_and_mid_rollback_ends_like_an_uninterrupted_run() {
    let mut apiserver = LocalApiServer::of_local_cluster();
    // a, b, then c and d; d's new version fails: a and b are promoted, then
    // restored.
    let t = Train::new(
        &[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b"])],
        &[(50, 3), (100, 1)],
        Some("d"),
    );
    let began = Instant::now();
    let clean = t.run_clean("fault-apiserver-clean").await;
    eprintln!(
        "uninterrupted run: {} in {:.1}s",
        clean.phase,
        began.elapsed().as_secs_f64()
    );

    let began = Instant::now();
    let run = t.start("fault-apiserver").await;
    run.wait("a baking", |s| baking(s, "a")).await;
    restart(&mut apiserver, "while a baked its first step").await;
    let s = run
        .wait("rolling back", |s| rel::phase(s) == "RollingBack")
        .await;
    let restoring = ["a", "b"]
        .map(|n| format!("{n} {}", service_phase(&s, n)))
        .join(", ");
    restart(
        &mut apiserver,
        &format!("while the train rolled back ({restoring})"),
    )
    .await;
    let faulted = run.finish().await;
    eprintln!(
        "run with two restarts: {} in {:.1}s",
        faulted.phase,
        began.elapsed().as_secs_f64()
    );
    assert_same(&faulted, &clean);
}
