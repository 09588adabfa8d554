//! Fault matrix (issue 15): etcd is restarted (stopped for 5 s, then started
//! again on its data) while a train's second wave bakes. The API server
//! stays up without its storage meanwhile: reads of its watch cache may
//! answer, every write fails. The train ends exactly like an uninterrupted
//! run of it (`signalman_e2e::outcome`).
//!
//! The uninterrupted run goes first, not in parallel: without etcd every
//! client of the cluster is cut off. For the same reason this file holds one
//! test (`cargo test` runs test binaries one after another).

use std::time::{Duration, Instant};

use signalman_e2e::apiserver::LocalEtcd;
use signalman_e2e::fault::{Train, baking};
use signalman_e2e::outcome::assert_same;

/// How long etcd stays away.
const DOWN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn etcd_restarted_mid_train_ends_like_an_uninterrupted_run() {
    let mut etcd = LocalEtcd::of_local_cluster();
    let t = Train::new(
        &[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b"])],
        &[(50, 3), (100, 1)],
        None,
    );
    let began = Instant::now();
    let clean = t.run_clean("fault-etcd-clean").await;
    eprintln!(
        "uninterrupted run: {} in {:.1}s",
        clean.phase,
        began.elapsed().as_secs_f64()
    );

    let began = Instant::now();
    let run = t.start("fault-etcd").await;
    run.wait("c baking", |s| baking(s, "c")).await;
    let t0 = Instant::now();
    etcd.stop().await;
    tokio::time::sleep(DOWN).await;
    let start = etcd.start().await;
    eprintln!(
        "etcd restarted while c baked: {:.1}s from stop to ready again (away 5 s; the start script took {:.1}s)",
        t0.elapsed().as_secs_f64(),
        start.as_secs_f64()
    );
    let faulted = run.finish().await;
    eprintln!(
        "run with the restart: {} in {:.1}s",
        faulted.phase,
        began.elapsed().as_secs_f64()
    );
    assert_same(&faulted, &clean);
}
