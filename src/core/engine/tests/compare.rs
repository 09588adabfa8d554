//! Canary versus stable: a `compare` metric holds the canary's value to the
//! stable pods' value of the same query.

use super::*;
use crate::api::Compare;

const COMPARED: &str = r#"sum(rate(http_requests_total{service="{{service}}",{{track}},code=~"5.."}[1m])) / sum(rate(http_requests_total{service="{{service}}",{{track}}}[1m]))"#;

/// One service, steps of 10 %, 50 % and 100 % (60 s each, a measurement
/// every 20 s), judged by its error rate against stable's, half a point more at most.
fn compared() -> ReleaseSpec {
    crate::testing::spec()
        .owner("team-checkout")
        .services(&[("a", &[])])
        .steps([10, 50, 100].map(|weight| (weight, secs(60))))
        .interval(secs(20))
        .metric_compared(
            "error-rate",
            COMPARED,
            Compare {
                max_increase: Some(0.005),
                ..Default::default()
            },
        )
        .build()
}

/// The canary fails 2 % of its requests; stable fails `stable`.
fn canary_at_two_percent(stable: f64) -> Sim {
    Sim::new(compared())
        .with_measure(|_, _| QueryResult::Value(0.02))
        .with_stable_measure(move |_, _| QueryResult::Value(stable))
}

fn taken(sim: &Sim) -> Vec<&Taken> {
    sim.passes
        .iter()
        .flat_map(|p| &p.observations.measurements)
        .collect()
}

#[test]
fn two_percent_errors_pass_when_stable_fails_as_often() {
    let mut sim = canary_at_two_percent(0.02);
    assert_eq!(crate::api::validate(&sim.release.spec), vec![]);
    assert_eq!(sim.run(300), Phase::Succeeded);
    // Both tracks were measured, at the 10 % and the 50 % steps, three times each.
    let t = taken(&sim);
    assert_eq!(t.len(), 6);
    assert!(
        t.iter()
            .all(|t| t.step < 2 && t.stable == Some(QueryResult::Value(0.02)))
    );
    let kept = &status(&sim).services[0].measurements;
    assert_eq!(kept.len(), 6);
    assert!(
        kept.iter().all(
            |m| (m.value, m.stable_value, m.outcome) == (Some(0.02), Some(0.02), Outcome::Pass)
        )
    );
}

#[test]
fn two_percent_errors_breach_when_stable_fails_a_tenth_of_a_percent() {
    let mut sim = canary_at_two_percent(0.001);
    assert_eq!(sim.run(300), Phase::RolledBack);
    let st = status(&sim);
    let cause = st.rollback.as_ref().unwrap();
    assert_eq!(cause.reason.as_str(), "Breach");
    assert_eq!(cause.service.as_deref(), Some("a"));
    assert_eq!(cause.metric.as_deref(), Some("error-rate"));
    assert_eq!(cause.value, Some(0.02));
    assert_eq!(
        cause.threshold.as_deref(),
        Some("canary ≤ stable + 0.005 (stable 0.001)")
    );
    let failed = st
        .timeline
        .iter()
        .find(|e| e.reason == "MeasurementFailed")
        .unwrap();
    assert_eq!(
        failed.message,
        "error-rate = 0.02 at step 1 (weight 10%), threshold canary ≤ stable + 0.005 (stable 0.001)"
    );
    let m = &st.services[0].measurements[0];
    assert_eq!(
        (m.value, m.stable_value, m.outcome),
        (Some(0.02), Some(0.001), Outcome::Fail)
    );
    assert_eq!(st.services[0].phase, ServicePhase::Withdrawn);
}

/// Run until the service's step `k` has begun baking; when it began.
fn run_until_baking_step(sim: &mut Sim, k: i32) -> Timestamp {
    assert!(sim.run_until(300, |s| {
        s.release.status.as_ref().is_some_and(|st| {
            st.services[0].step == Some(k) && st.services[0].bake_started_at.is_some()
        })
    }));
    status(sim).services[0].bake_started_at.clone().unwrap().0
}

#[test]
fn a_compare_metric_is_not_measured_at_100_percent_and_the_step_is_judged_by_the_others() {
    let mut s = compared();
    default_of(&mut s).metrics.push(crate::api::Metric {
        name: "latency".into(),
        query: "histogram_quantile(0.99, x)".into(),
        min: None,
        max: Some(0.5),
        compare: None,
    });
    let mut sim = Sim::new(s);
    let baked = run_until_baking_step(&mut sim, 2);
    let due: Vec<String> = due_measurements(&sim.release, context::plus(baked, secs(20)))
        .into_iter()
        .map(|r| r.metric)
        .collect();
    assert_eq!(due, ["latency"]);
    assert_eq!(sim.run(300), Phase::Succeeded);
    let at_100: Vec<&str> = taken(&sim)
        .iter()
        .filter(|t| t.step == 2)
        .map(|t| t.metric.as_str())
        .collect();
    assert_eq!(at_100, ["latency"; 3]);
    assert!(
        taken(&sim)
            .iter()
            .filter(|t| t.step < 2)
            .any(|t| t.metric == "error-rate" && t.stable.is_some())
    );
    // The 100 % step passed at its bake's end on latency's passes alone.
    let promoting = sim
        .passes
        .iter()
        .position(|p| phase_in(p, "a") == ServicePhase::Promoting)
        .unwrap();
    assert_eq!(sim.passes[promoting].now, context::plus(baked, secs(60)));
}

#[test]
fn with_only_compare_metrics_the_100_percent_step_passes_on_its_bake_without_spinning() {
    let mut sim = Sim::new(compared());
    let baked = run_until_baking_step(&mut sim, 2);
    let before = sim.passes.len();
    sim.run_until(300, |s| {
        s.service_phase("a") == Some(ServicePhase::Promoting)
    });
    // One wake-up at the bake's end, not one a second for measurements never due.
    assert_eq!(sim.passes.len() - before, 1);
    assert_eq!(
        sim.passes.last().unwrap().now,
        context::plus(baked, secs(60))
    );
    assert!(taken(&sim).iter().all(|t| t.step < 2));
}

#[test]
fn no_data_or_an_error_on_the_stable_side_counts_as_on_the_canary_side() {
    // Stable without traffic: inconclusive, and beyond the limit a hold.
    let mut sim = Sim::new(compared()).with_stable_measure(|_, _| QueryResult::Value(f64::NAN));
    assert!(sim.run_until(100, |s| s.phase() == Phase::Held));
    let st = status(&sim);
    assert_eq!(
        st.hold.as_ref().unwrap().reason.as_str(),
        "InconclusiveLimit"
    );
    let m = st.services[0].measurements.last().unwrap();
    assert_eq!(m.outcome, Outcome::Inconclusive);
    assert_eq!((m.value, m.stable_value), (Some(0.0), None));
    assert_eq!(
        m.message.as_deref(),
        Some("stable pods: the query returned NaN (no traffic?)")
    );
    // Stable unmeasurable: errors, and beyond the limit a hold.
    let mut sim = Sim::new(compared())
        .with_stable_measure(|_, _| QueryResult::Error("bad_data: parse error".into()));
    assert!(sim.run_until(100, |s| s.phase() == Phase::Held));
    assert_eq!(
        status(&sim).hold.as_ref().unwrap().reason.as_str(),
        "ErrorLimit"
    );
    // A shell that measured one track only: an error, never a pass.
    let mut sim = Sim::new(compared());
    let baked = run_until_baking_step(&mut sim, 0);
    let at = context::plus(baked, secs(20));
    let obs = sim.observe(vec![Taken {
        service: "a".into(),
        metric: "error-rate".into(),
        step: 0,
        result: QueryResult::Value(0.0),
        stable: None,
        query: Some(r#"sum(rate(x{namespace="shop",track="canary"}[1m]))"#.into()),
        at,
    }]);
    let d = decide(&sim.release, &obs, at);
    let m = d.status.services[0].measurements.last().unwrap();
    assert_eq!(m.outcome, Outcome::Error);
    // Status shows the query that ran, as the shell sent it.
    assert_eq!(
        d.status.services[0].tally[0].query.as_deref(),
        Some(r#"sum(rate(x{namespace="shop",track="canary"}[1m]))"#)
    );
    assert_eq!(
        m.message.as_deref(),
        Some("the stable pods were not measured")
    );
}

fn default_of(s: &mut ReleaseSpec) -> &mut Analysis {
    s.defaults.as_mut().unwrap().analysis.as_mut().unwrap()
}
