//! Fault matrix (issue 15): Prometheus flaps — away 5 s, back 5 s, over and
//! over — from the moment a train's first bake starts until the train ends.
//! The operator reaches Prometheus through a TCP proxy the test shuts and
//! opens (the shared Prometheus keeps running for the other tests).
//!
//! What a user expects, and what is checked: a query that fails is an error,
//! never a pass; a step passes only once every metric has `minPasses` passing
//! measurements, so a step that lost measurements to the outage bakes longer
//! rather than pass on less evidence; as long as the errors of a step stay
//! within `errorLimit` nothing holds, and the train ends exactly like an
//! uninterrupted run of it next to it (`signalman_e2e::outcome`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use signalman_e2e::fault::{NAME, Train, baking};
use signalman_e2e::outcome::assert_same;
use signalman_e2e::proxy::Proxy;
use signalman_e2e::release as rel;

/// Each step's bake, in seconds; measured every second, so a step needs as
/// many passing measurements.
const STEPS: &[(i32, u64)] = &[(50, 4), (100, 1)];
/// Per step. Prometheus away 5 s of every 10 costs a step at most about one
/// outage's worth of measurements (5, 6 at the edges) while it gathers its
/// passes: 8 leaves a margin and still holds a Prometheus that stays away.
const ERROR_LIMIT: i32 = 8;
const FLAP: Duration = Duration::from_secs(5);

/// One measurement seen in status: service, step, outcome.
type Seen = BTreeMap<(String, String, String), (i64, String)>;

fn record(seen: &mut Seen, status: &serde_json::Value) {
    for s in status["services"].as_array().into_iter().flatten() {
        let svc = s["name"].as_str().unwrap_or("").to_string();
        for m in s["measurements"].as_array().into_iter().flatten() {
            let key = (
                svc.clone(),
                m["metric"].as_str().unwrap_or("").to_string(),
                m["at"].as_str().unwrap_or("").to_string(),
            );
            let value = (
                m["step"].as_i64().unwrap_or(-1),
                m["outcome"].as_str().unwrap_or("").to_string(),
            );
            seen.insert(key, value);
        }
    }
}

fn seconds(at: &str) -> i64 {
    at.parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("timestamp {at:?}: {e}"))
        .as_second()
}

#[tokio::test]
async fn prometheus_flapping_through_bakes_extends_them_and_ends_like_an_uninterrupted_run() {
    let proxy = Arc::new(Proxy::to_prometheus().await);
    let t = Train::new(
        &[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b"])],
        STEPS,
        None,
    )
    .error_limit(ERROR_LIMIT);

    let faulted = async {
        let url = proxy.url();
        let run = t.start_with("fault-prom", |l| l.prometheus(&url)).await;
        run.wait("a baking", |s| baking(s, "a")).await;
        let flapper = {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                loop {
                    proxy.close();
                    tokio::time::sleep(FLAP).await;
                    proxy.open().await;
                    tokio::time::sleep(FLAP).await;
                }
            })
        };
        // Every measurement the status shows (it keeps the newest 12 per
        // service), read every 100 ms.
        let mut seen = Seen::new();
        loop {
            let s = run.status().await;
            record(&mut seen, &s);
            if ["Succeeded", "RolledBack", "Failed"].contains(&rel::phase(&s)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        flapper.abort();
        let status = run.status().await;
        (run.finish().await, seen, status)
    };
    let (faulted, clean) = tokio::join!(faulted, t.run_clean("fault-prom-clean"));
    let (faulted, seen, status) = faulted;
    assert_same(&faulted, &clean);
    assert_eq!(rel::phase(&status), "Succeeded", "{NAME}");

    // Per service and step: passes and errors counted.
    let mut per_step: BTreeMap<(String, i64), (i32, i32)> = BTreeMap::new();
    for ((svc, _, _), (step, outcome)) in &seen {
        let e = per_step.entry((svc.clone(), *step)).or_default();
        match outcome.as_str() {
            "Pass" => e.0 += 1,
            "Error" => e.1 += 1,
            _ => {}
        }
    }
    // Each step's duration, from its StepStarted to its StepPassed.
    let mut durations: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for e in &faulted.timeline {
        if e.reason == "StepStarted" {
            let k = e
                .message
                .split(['/', ' '])
                .nth(1)
                .unwrap()
                .parse::<i64>()
                .unwrap()
                - 1;
            durations.insert((e.service.clone(), k), -seconds(&e.at));
        } else if e.reason == "StepPassed" {
            let k = durations
                .keys()
                .filter(|(s, _)| *s == e.service)
                .map(|(_, k)| *k)
                .max()
                .unwrap();
            *durations.get_mut(&(e.service.clone(), k)).unwrap() += seconds(&e.at);
        }
    }
    let mut flapped = 0;
    for ((svc, step), (passes, errors)) in &per_step {
        let bake = STEPS[*step as usize].1 as i32;
        let took = durations[&(svc.clone(), *step)];
        eprintln!(
            "{svc} step {}: {passes} passes, {errors} errors, baked {took}s (bake {bake}s)",
            step + 1
        );
        // Errors are not passes: every step passed on a full count of passes.
        assert!(
            *passes >= bake,
            "{svc} step {} passed on {passes} passes, fewer than the {bake} its bake needs",
            step + 1
        );
        assert!(
            *errors <= ERROR_LIMIT,
            "{svc} step {}: {errors} errors",
            step + 1
        );
        if *errors >= 2 {
            flapped += 1;
            // The lost measurements were made up for: the bake took longer.
            assert!(
                took > bake as i64,
                "{svc} step {} lost {errors} measurements yet baked only {took}s",
                step + 1
            );
        }
    }
    assert!(
        flapped > 0,
        "no step saw Prometheus away: the fault did not land {per_step:?}"
    );
}
