//! Steps, bakes and analysis: when a step may pass.

use super::*;

/// Run until the first service's first bake has begun.
fn run_until_baking(sim: &mut Sim) {
    sim.run_until(50, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services[0].bake_started_at.is_some())
    });
}

#[test]
fn a_step_bakes_its_full_time_and_gets_every_passing_measurement() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    run_until_baking(&mut sim);
    let baked = status(&sim).services[0].bake_started_at.clone().unwrap().0;
    // The first measurement is due one interval after the bake began, and the engine says so.
    assert_eq!(
        sim.passes.last().unwrap().decision.requeue_after,
        Some(secs(20))
    );
    assert!(due_measurements(&sim.release, baked).is_empty());
    assert_eq!(
        due_measurements(&sim.release, context::plus(baked, secs(20))).len(),
        1
    );
    sim.run_until(50, |s| {
        s.release.status.as_ref().unwrap().services[0].step == Some(1)
    });
    let passed_at = sim.passes.last().unwrap().now;
    assert_eq!(
        passed_at,
        context::plus(baked, secs(60)),
        "step passed at {passed_at}, bake began {baked}"
    );
    let measured = sim
        .passes
        .iter()
        .filter(|p| !p.observations.measurements.is_empty())
        .count();
    assert_eq!(measured, 3);
}

#[test]
fn min_passes_holds_a_step_beyond_its_bake_time() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    // One inconclusive measurement (within the limit) leaves the step one pass short at bake end.
    let mut calls = 0;
    sim = sim.with_measure(move |_, _| {
        calls += 1;
        if calls == 2 {
            QueryResult::NoData
        } else {
            QueryResult::Value(0.0)
        }
    });
    run_until_baking(&mut sim);
    let baked = status(&sim).services[0].bake_started_at.clone().unwrap().0;
    sim.run_until(50, |s| {
        s.release.status.as_ref().unwrap().services[0].step == Some(1)
    });
    let passed_at = sim.passes.last().unwrap().now;
    assert_eq!(passed_at, context::plus(baked, secs(80)));
}

#[test]
fn enough_passes_early_still_wait_for_the_bake() {
    let mut s = spec(&[("a", &[])]);
    s.defaults
        .as_mut()
        .unwrap()
        .analysis
        .as_mut()
        .unwrap()
        .min_passes = Some(1);
    let mut sim = Sim::new(s);
    run_until_baking(&mut sim);
    let baked = status(&sim).services[0].bake_started_at.clone().unwrap().0;
    sim.run_until(50, |s| {
        s.release.status.as_ref().unwrap().services[0].step == Some(1)
    });
    assert_eq!(
        sim.passes.last().unwrap().now,
        context::plus(baked, secs(60))
    );
}

#[test]
fn no_metrics_means_bake_time_alone() {
    let mut s = spec(&[("a", &[])]);
    s.defaults.as_mut().unwrap().analysis = Some(Analysis {
        skip_analysis: Some(crate::api::SkipAnalysis {
            reason: "batch worker, no traffic".into(),
        }),
        ..Default::default()
    });
    let mut sim = Sim::new(s);
    assert_eq!(sim.run(100), Phase::Succeeded);
    assert!(
        sim.passes
            .iter()
            .all(|p| p.observations.measurements.is_empty())
    );
}

#[test]
fn measurements_that_are_early_stale_or_for_another_step_are_ignored() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    run_until_baking(&mut sim);
    let baked = status(&sim).services[0].bake_started_at.clone().unwrap().0;
    let now = context::plus(baked, secs(25));
    let bad = |step, at| Taken {
        service: "a".into(),
        metric: "error-rate".into(),
        step,
        result: QueryResult::Value(1.0),
        stable: None,
        query: None,
        at,
    };
    let obs = sim.observe(vec![
        bad(0, context::plus(baked, secs(5))),
        bad(1, context::plus(baked, secs(21))),
        Taken {
            metric: "unknown".into(),
            ..bad(0, context::plus(baked, secs(21)))
        },
    ]);
    let d = decide(&sim.release, &obs, now);
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert!(d.status.services[0].tally.is_empty());
    assert!(d.status.services[0].measurements.is_empty());
}

#[test]
fn promotion_waits_for_the_stable_rollout_then_removes_the_canary() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Promoting)
    });
    assert!(
        sim.passes
            .last()
            .unwrap()
            .decision
            .actions
            .contains(&Action::PromoteStable {
                service: "a".into()
            })
    );
    for _ in 0..5 {
        sim.cluster.get_mut("a").unwrap().rolled_out = false;
        let obs = sim.observe(Vec::new());
        let d = decide(&sim.release, &obs, sim.now);
        assert_eq!(
            d.actions,
            vec![Action::PromoteStable {
                service: "a".into()
            }]
        );
        assert!(d.requeue_after.unwrap() <= CONVERGE);
        sim.now = context::plus(sim.now, secs(5));
    }
    sim.cluster.get_mut("a").unwrap().rolled_out = true;
    let d = decide(&sim.release, &sim.observe(Vec::new()), sim.now);
    assert_eq!(
        d.actions,
        vec![Action::RemoveCanary {
            service: "a".into()
        }]
    );
    assert_eq!(d.status.services[0].phase, ServicePhase::Promoting);
    assert_eq!(sim.run(10), Phase::Succeeded);
}

#[test]
fn status_reports_the_effective_weight_beside_the_declared_one() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    run_until_baking(&mut sim);
    // Small Deployments overshoot: the shell sees a third of the pods on the canary.
    sim.cluster
        .get_mut("a")
        .unwrap()
        .canary
        .as_mut()
        .unwrap()
        .effective = 33;
    sim.pass();
    let a = &status(&sim).services[0];
    assert_eq!((a.weight, a.effective_weight), (10, Some(33)));
    assert_eq!(sim.run(400), Phase::Succeeded);
    assert_eq!(status(&sim).services[0].effective_weight, None);
}
