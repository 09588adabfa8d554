//! Fault matrix (issue 15): the operator is SIGKILLed at 20 random moments of
//! one long train and started again each time. The train (5 services in 3
//! waves, the last one's new version failing) promotes two waves, breaches
//! in the third and rolls everything back, so a kill can land in a bake, a
//! promotion, the breach or a restore (the test prints where each landed).
//! It ends exactly like the same train run without a fault next to it
//! (`signalman_e2e::outcome`).
//!
//! The moments are seeded: the seed is printed first, and
//! `SIGNALMAN_KILL_SEED=<seed>` replays the same kill schedule.

use std::time::{Duration, Instant};

use signalman_e2e::fault::{Seeded, Train, service_phase};
use signalman_e2e::outcome::assert_same;
use signalman_e2e::release as rel;

const KILLS: usize = 20;

fn train() -> Train {
    Train::new(
        &[
            ("a", &[]),
            ("b", &[]),
            ("c", &["a"]),
            ("d", &["b"]),
            ("e", &["c", "d"]),
        ],
        &[(25, 4), (50, 4), (100, 2)],
        Some("e"),
    )
}

/// Where the train stands, in a few words: the phase and each moving service.
fn moment(s: &serde_json::Value) -> String {
    let moving: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .filter_map(|n| {
            let p = service_phase(s, n);
            (!matches!(
                p,
                "" | "Pending" | "Promoted" | "Restored" | "Withdrawn" | "Skipped"
            ))
            .then(|| format!("{n} {p}"))
        })
        .collect();
    format!("{} [{}]", rel::phase(s), moving.join(", "))
}

#[tokio::test]
async fn killed_at_20_random_moments_ends_like_an_uninterrupted_run() {
    let mut rng = Seeded::from_env("SIGNALMAN_KILL_SEED");
    let seed = rng.seed;
    let t = train();
    let faulted = async {
        let mut run = t.start("fault-kill").await;
        let began = Instant::now();
        let mut moments = Vec::new();
        for i in 0..KILLS {
            tokio::time::sleep(
                rng.between(Duration::from_millis(200), Duration::from_millis(2000)),
            )
            .await;
            let s = run.status().await;
            let phase = rel::phase(&s);
            assert!(
                !["Succeeded", "RolledBack", "Failed"].contains(&phase),
                "the train ended {phase} after {i} of {KILLS} kills (seed {seed}): \
                 it must outlast them"
            );
            run.sc.operator.crash_and_restart().await;
            moments.push(format!(
                "  kill {:>2} at {:>5.1}s: {}",
                i + 1,
                began.elapsed().as_secs_f64(),
                moment(&s)
            ));
        }
        eprintln!("seed {seed}: killed during\n{}", moments.join("\n"));
        let outcome = run.finish().await;
        eprintln!(
            "seed {seed}: the train ended {} {:.1}s after it began",
            outcome.phase,
            began.elapsed().as_secs_f64()
        );
        outcome
    };
    let clean = async {
        let began = Instant::now();
        let o = t.run_clean("fault-kill-clean").await;
        eprintln!(
            "uninterrupted run: {} in {:.1}s",
            o.phase,
            began.elapsed().as_secs_f64()
        );
        o
    };
    let (faulted, clean) = tokio::join!(faulted, clean);
    assert_eq!(clean.phase, "RolledBack");
    assert_same(&faulted, &clean);
}
