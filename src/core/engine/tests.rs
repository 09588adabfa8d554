//! Every rule of the engine, driven by the simulated cluster and clock in `sim`.

use std::time::Duration;

use jiff::Timestamp;

use super::sim::{Crash, Sim, epoch};
use super::*;
use crate::api::{
    Analysis, Defaults, GatewayApiTraffic, Metric, NoDataPolicy, Phase, ReleaseSpec, ServicePhase,
    Step, Traffic,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Three steps (10 %, 50 %, 100 %) of 60 s each, error rate measured every 20 s
/// (so 3 passing measurements per step), at most 1 %.
fn spec(edges: &[(&str, &[&str])]) -> ReleaseSpec {
    let mut spec = crate::plan::tests::spec(edges);
    spec.owner = "team-checkout".into();
    spec.defaults = Some(Defaults {
        steps: Some(
            [10, 50, 100]
                .iter()
                .map(|&weight| Step {
                    weight,
                    bake: secs(60).into(),
                })
                .collect(),
        ),
        analysis: Some(Analysis {
            interval: Some(secs(20).into()),
            metrics: vec![Metric {
                name: "error-rate".into(),
                query: r#"rate(errors{service="{{service}}"}[1m])"#.into(),
                min: None,
                max: Some(0.01),
            }],
            ..Default::default()
        }),
    });
    spec
}

fn analysis(sim: &mut Sim) -> &mut Analysis {
    sim.release
        .spec
        .defaults
        .as_mut()
        .unwrap()
        .analysis
        .as_mut()
        .unwrap()
}

fn status(sim: &Sim) -> &ReleaseStatus {
    sim.release.status.as_ref().unwrap()
}

fn touches(a: &Action, name: &str) -> bool {
    match a {
        Action::RecordBaseline { service }
        | Action::SetCanaryWeight { service, .. }
        | Action::PromoteStable { service }
        | Action::RemoveCanary { service }
        | Action::RestoreBaseline { service } => service == name,
    }
}

fn first_pass_touching(sim: &Sim, name: &str) -> usize {
    sim.passes
        .iter()
        .position(|p| p.decision.actions.iter().any(|a| touches(a, name)))
        .unwrap()
}

fn phase_in(p: &sim::Pass, name: &str) -> ServicePhase {
    p.decision
        .status
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .phase
}

fn zero(name: &str) -> Action {
    Action::SetCanaryWeight {
        service: name.into(),
        weight: 0,
    }
}

fn condition<'a>(
    st: &'a ReleaseStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    st.conditions.iter().find(|c| c.type_ == t).unwrap()
}

fn all_settled_as(sim: &Sim, template: TemplateState) {
    for (name, s) in &sim.cluster {
        assert_eq!(s.template, template, "{name}");
        assert_eq!(s.canary, None, "{name}");
    }
}

// ------------------------------------------------------------ order

#[test]
fn chain_succeeds_and_each_service_starts_only_after_its_dependency_is_promoted() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("c", &["b"])]));
    assert_eq!(sim.run(500), Phase::Succeeded);
    for (dep, svc) in [("a", "b"), ("b", "c")] {
        let first = first_pass_touching(&sim, svc);
        assert_eq!(
            phase_in(&sim.passes[first], dep),
            ServicePhase::Promoted,
            "{svc} moved before {dep}"
        );
        assert!(
            sim.passes[..first]
                .iter()
                .all(|p| phase_in(p, svc) == ServicePhase::Pending),
            "{svc} left Pending early"
        );
    }
    all_settled_as(&sim, TemplateState::New);
    let st = status(&sim);
    assert_eq!(st.progress.as_deref(), Some("3/3 promoted"));
    assert_eq!(st.current_wave.as_deref(), Some("3/3"));
    assert!(st.finished_at.is_some());
    assert_eq!(condition(st, "Ready").status, "True");
    assert_eq!(condition(st, "Reconciling").status, "False");
    assert_eq!(condition(st, "Stalled").status, "False");
    let reasons: Vec<&str> = st.timeline.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons.first(), Some(&"Started"));
    assert_eq!(reasons.last(), Some(&"Succeeded"));
    assert_eq!(reasons.iter().filter(|r| **r == "StepPassed").count(), 9);
    assert_eq!(reasons.iter().filter(|r| **r == "Promoted").count(), 3);
    let notices: Vec<String> = sim
        .passes
        .iter()
        .flat_map(|p| p.decision.notices.iter().map(|n| n.reason.clone()))
        .collect();
    assert_eq!(notices.iter().filter(|r| *r == "Started").count(), 1);
    assert_eq!(notices.iter().filter(|r| *r == "Succeeded").count(), 1);
}

#[test]
fn diamond_moves_the_middle_wave_in_parallel() {
    let mut sim = Sim::new(spec(&[
        ("a", &[]),
        ("b", &["a"]),
        ("c", &["a"]),
        ("d", &["b", "c"]),
    ]));
    assert_eq!(sim.run(500), Phase::Succeeded);
    let both = sim.passes.iter().any(|p| {
        phase_in(p, "b") == ServicePhase::Progressing
            && phase_in(p, "c") == ServicePhase::Progressing
    });
    assert!(both, "b and c never progressed at the same time");
    assert_eq!(
        first_pass_touching(&sim, "b"),
        first_pass_touching(&sim, "c")
    );
    let d = first_pass_touching(&sim, "d");
    assert_eq!(phase_in(&sim.passes[d], "b"), ServicePhase::Promoted);
    assert_eq!(phase_in(&sim.passes[d], "c"), ServicePhase::Promoted);
    let waves = &status(&sim).plan.as_ref().unwrap().waves;
    assert_eq!(waves[1].services, vec!["b", "c"]);
}

// ------------------------------------------------------------ steps, bake, analysis

#[test]
fn a_step_bakes_its_full_time_and_gets_every_passing_measurement() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(50, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services[0].bake_started_at.is_some())
    });
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
    sim.run_until(50, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services[0].bake_started_at.is_some())
    });
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
    sim.run_until(50, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services[0].bake_started_at.is_some())
    });
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
    sim.run_until(50, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services[0].bake_started_at.is_some())
    });
    let baked = status(&sim).services[0].bake_started_at.clone().unwrap().0;
    let now = context::plus(baked, secs(25));
    let bad = |step, at| Taken {
        service: "a".into(),
        metric: "error-rate".into(),
        step,
        result: QueryResult::Value(1.0),
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

// ------------------------------------------------------------ breach and rollback

#[test]
fn breach_in_wave_two_zeroes_every_canary_at_once_and_restores_in_reverse() {
    // a; then b and x in parallel; then c after b. b's new version fails in its second step.
    let edges: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("x", &["a"]), ("c", &["b"])];
    let mut sim = Sim::new(spec(edges)).with_measure(|r, _| {
        if r.service == "b" && r.step == 1 {
            QueryResult::Value(0.2)
        } else {
            QueryResult::Value(0.0)
        }
    });
    assert!(sim.run_until(500, |s| s.phase() == Phase::RollingBack
        || s.phase().is_final()));
    let breach = sim.passes.last().unwrap();
    assert_eq!(breach.decision.status.phase, Some(Phase::RollingBack));
    // The failing measurement arrived in this very decision, and both canaries go to 0 % first.
    assert_eq!(
        breach
            .observations
            .measurements
            .iter()
            .filter(|t| t.service == "b")
            .count(),
        1
    );
    assert_eq!(breach.decision.actions[..2], [zero("b"), zero("x")]);
    let cause = breach.decision.status.rollback.clone().unwrap();
    assert_eq!(cause.reason, "Breach");
    assert_eq!(cause.service.as_deref(), Some("b"));
    assert_eq!(cause.first_deviation_at.unwrap().0, breach.now);
    assert!(cause.message.contains("error-rate"), "{}", cause.message);
    let reasons: Vec<&str> = breach
        .decision
        .status
        .timeline
        .iter()
        .map(|e| e.reason.as_str())
        .collect();
    assert!(
        reasons.ends_with(&["MeasurementFailed", "Breach", "WeightZero"]),
        "{reasons:?}"
    );
    assert!(
        breach
            .decision
            .notices
            .iter()
            .any(|n| n.reason == "Breach" && n.warning)
    );

    assert_eq!(sim.run(100), Phase::RolledBack);
    let st = status(&sim);
    let phases: Vec<(&str, ServicePhase)> = st
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.phase))
        .collect();
    assert_eq!(
        phases,
        [
            ("a", ServicePhase::Restored),
            ("b", ServicePhase::Withdrawn),
            ("x", ServicePhase::Withdrawn),
            ("c", ServicePhase::Skipped)
        ]
    );
    all_settled_as(&sim, TemplateState::Baseline);
    // a is restored only once everything depending on it has been rolled back.
    let restore = sim
        .passes
        .iter()
        .position(|p| {
            p.decision.actions.contains(&Action::RestoreBaseline {
                service: "a".into(),
            })
        })
        .unwrap();
    for s in ["b", "x", "c"] {
        assert!(
            matches!(
                phase_in(&sim.passes[restore], s),
                ServicePhase::Withdrawn | ServicePhase::Skipped
            ),
            "{s}"
        );
    }
    assert_eq!(condition(st, "Stalled").reason, "RolledBack");
    assert_eq!(condition(st, "Ready").status, "False");
    assert!(st.message.as_deref().unwrap().contains("Breach"));
}

#[test]
fn a_breach_during_promotion_withdraws_then_restores_the_promoting_service() {
    // b promotes while x still bakes its last step (x's steps are longer); then x breaches.
    let mut s = spec(&[("b", &[]), ("x", &[])]);
    s.services[1].steps = Some(vec![
        Step {
            weight: 10,
            bake: secs(60).into(),
        },
        Step {
            weight: 100,
            bake: secs(600).into(),
        },
    ]);
    let mut sim = Sim::new(s).with_measure(|r, now| {
        if r.service == "x" && now >= epoch() + jiff::SignedDuration::from_secs(200) {
            QueryResult::Value(0.5)
        } else {
            QueryResult::Value(0.0)
        }
    });
    sim.run_until(200, |s| {
        s.service_phase("b") == Some(ServicePhase::Promoting)
    });
    // Hold b mid-promotion: its rollout never finishes before x breaches.
    while sim.phase() != Phase::RollingBack {
        sim.cluster.get_mut("b").unwrap().rolled_out = false;
        sim.pass();
        assert!(sim.passes.len() < 300);
    }
    let last = sim.passes.last().unwrap();
    assert!(last.decision.actions.starts_with(&[zero("b"), zero("x")]));
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Restored));
    assert_eq!(sim.service_phase("x"), Some(ServicePhase::Withdrawn));
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn abort_mid_flight_rolls_back_everything_changed() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"]), ("c", &["b"])]));
    sim.run_until(500, |s| {
        s.service_phase("b") == Some(ServicePhase::Progressing)
    });
    sim.edit(|s| s.abort = Some(true));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::RollingBack));
    assert_eq!(d.actions[0], zero("b"));
    assert_eq!(d.status.rollback.as_ref().unwrap().reason, "Abort");
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
    assert_eq!(sim.service_phase("c"), Some(ServicePhase::Skipped));
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn abort_before_start_changes_nothing() {
    let mut s = spec(&[("a", &[])]);
    s.abort = Some(true);
    let mut sim = Sim::new(s);
    let d = sim.pass().clone();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(Phase::RolledBack));
    assert_eq!(d.requeue_after, None);
}

// ------------------------------------------------------------ holds

fn errors_first(n: usize) -> impl FnMut(&MeasurementRequest, Timestamp) -> QueryResult {
    let mut calls = 0;
    move |_, _| {
        calls += 1;
        if calls <= n {
            QueryResult::Error("connection refused".into())
        } else {
            QueryResult::Value(0.0)
        }
    }
}

#[test]
fn errors_beyond_the_limit_hold_at_weight_zero_until_resumed() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(errors_first(3));
    assert!(sim.run_until(100, |s| s.phase() == Phase::Paused));
    let held = sim.passes.last().unwrap().decision.clone();
    assert_eq!(held.actions, vec![zero("a")]);
    let hold = held.status.hold.clone().unwrap();
    assert_eq!(
        (
            hold.id.as_str(),
            hold.reason.as_str(),
            hold.service.as_deref()
        ),
        ("hold-1", "ErrorLimit", Some("a"))
    );
    assert!(
        hold.message.contains("spec.resumeHold: hold-1"),
        "{}",
        hold.message
    );
    assert_eq!(held.status.services[0].weight, 0);
    assert_eq!(held.status.services[0].bake_started_at, None);
    assert!(held.status.services[0].tally.is_empty());
    assert_eq!(condition(&held.status, "Stalled").reason, "ErrorLimit");
    assert_eq!(condition(&held.status, "Stalled").status, "True");
    assert_eq!(sim.cluster["a"].canary.as_ref().unwrap().weight, 0);

    // Held: nothing moves, nothing is measured, no notice repeats.
    for _ in 0..5 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty() && d.notices.is_empty());
        assert_eq!(d.status.phase, Some(Phase::Paused));
        assert!(
            sim.passes
                .last()
                .unwrap()
                .observations
                .measurements
                .is_empty()
        );
    }
    // A stale id does not lift it.
    sim.edit(|s| s.resume_hold = Some("hold-0".into()));
    assert_eq!(sim.pass().status.phase, Some(Phase::Paused));
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    let resumed = sim.pass().clone();
    assert_eq!(resumed.status.phase, Some(Phase::Progressing));
    assert_eq!(resumed.status.hold, None);
    assert_eq!(
        resumed.actions,
        vec![Action::SetCanaryWeight {
            service: "a".into(),
            weight: 10
        }]
    );
    assert!(resumed.notices.iter().any(|n| n.reason == "Resumed"));
    assert_eq!(sim.run(100), Phase::Succeeded);
    assert_eq!(status(&sim).holds, 1);
}

#[test]
fn inconclusive_beyond_the_limit_holds() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::NoData);
    assert!(sim.run_until(100, |s| s.phase() == Phase::Paused));
    let st = status(&sim);
    assert_eq!(st.hold.as_ref().unwrap().reason, "InconclusiveLimit");
    // Three inconclusive measurements: one more than the default limit of 2.
    assert_eq!(
        sim.passes
            .iter()
            .filter(|p| !p.observations.measurements.is_empty())
            .count(),
        3
    );
}

#[test]
fn no_data_policy_fail_breaches_instead_of_holding() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::NoData);
    analysis(&mut sim).no_data = Some(NoDataPolicy::Fail);
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(status(&sim).rollback.as_ref().unwrap().reason, "Breach");
}

#[test]
fn hold_timeout_rolls_back() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(errors_first(1000));
    sim.release.spec.hold_timeout = Some(secs(300).into());
    assert!(sim.run_until(100, |s| s.phase() == Phase::Paused));
    let since = status(&sim).hold.as_ref().unwrap().since.0;
    // The engine wakes itself for the timeout.
    assert!(sim.passes.last().unwrap().decision.requeue_after.unwrap() <= secs(300));
    assert_eq!(sim.run(100), Phase::RolledBack);
    let cause = status(&sim).rollback.clone().unwrap();
    assert_eq!(cause.reason, "HoldTimeout");
    assert!(cause.at.0 >= context::plus(since, secs(300)));
    all_settled_as(&sim, TemplateState::Baseline);
}

#[test]
fn abort_while_held_rolls_back() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(errors_first(1000));
    sim.run_until(100, |s| s.phase() == Phase::Paused);
    sim.edit(|s| s.abort = Some(true));
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(status(&sim).rollback.as_ref().unwrap().reason, "Abort");
}

#[test]
fn a_spec_change_holds_until_restored_and_resumed() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
            && status(s).services[0].bake_started_at.is_some()
    });
    let original = sim.release.spec.clone();
    sim.edit(|s| {
        s.services[1]
            .change
            .images
            .insert("main".into(), "registry.example/b:v3".into());
    });
    let d = sim.pass().clone();
    let hold = d.status.hold.clone().unwrap();
    assert_eq!(hold.reason, "SpecChanged");
    assert!(
        hold.message.starts_with(hold::SPEC_CHANGED),
        "{}",
        hold.message
    );
    assert_eq!(d.actions, vec![zero("a")]);
    // Resuming while the spec still differs does nothing but say why.
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Paused));
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .contains("cannot lift hold-1")
    );
    // Restoring the spec (resumeHold is a control field) lifts it.
    sim.edit(|s| {
        *s = ReleaseSpec {
            resume_hold: Some("hold-1".into()),
            ..original
        };
    });
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
    assert_eq!(sim.run(200), Phase::Succeeded);
}

#[test]
fn drift_holds_naming_the_object_until_it_is_put_back() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
    });
    sim.cluster.get_mut("a").unwrap().template = TemplateState::Drifted;
    let d = sim.pass().clone();
    let hold = d.status.hold.unwrap();
    assert_eq!(
        (hold.reason.as_str(), hold.service.as_deref()),
        ("Drift", Some("a"))
    );
    assert!(
        hold.message.contains("Deployment \"a\""),
        "{}",
        hold.message
    );
    sim.edit(|s| s.resume_hold = Some("hold-1".into()));
    assert_eq!(sim.pass().status.phase, Some(Phase::Paused));
    sim.cluster.get_mut("a").unwrap().template = TemplateState::Baseline;
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
    assert_eq!(sim.run(100), Phase::Succeeded);
}

#[test]
fn a_deleted_deployment_or_route_holds() {
    let mut s = spec(&[("a", &[]), ("b", &[])]);
    s.services[1].traffic = Some(Traffic {
        gateway_api: Some(GatewayApiTraffic {
            http_route: "b-route".into(),
            service: None,
        }),
    });
    let mut sim = Sim::new(s);
    sim.run_until(100, |s| {
        s.service_phase("b") == Some(ServicePhase::Progressing)
    });
    sim.cluster.get_mut("b").unwrap().route = Some(RouteObservation {
        found: true,
        drifted: true,
    });
    let hold = sim.pass().status.hold.clone().unwrap();
    assert!(
        hold.message.contains("HTTPRoute \"b-route\""),
        "{}",
        hold.message
    );

    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
    });
    sim.cluster.get_mut("a").unwrap().exists = false;
    let hold = sim.pass().status.hold.clone().unwrap();
    assert!(hold.message.contains("was deleted"), "{}", hold.message);
}

// ------------------------------------------------------------ user pause

#[test]
fn user_pause_freezes_everything_and_the_bake_restarts_on_resume() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.release
            .status
            .as_ref()
            .and_then(|st| st.services.first())
            .is_some_and(|x| x.bake_started_at.is_some())
    });
    sim.pass();
    sim.edit(|s| s.paused = Some(true));
    let weight = sim.cluster["a"].canary.clone();
    for _ in 0..6 {
        let d = sim.pass().clone();
        assert_eq!(d.status.phase, Some(Phase::Paused));
        assert!(d.actions.is_empty());
        assert_eq!(d.status.hold, None);
        assert_eq!(condition(&d.status, "Reconciling").status, "True");
        assert!(
            sim.passes
                .last()
                .unwrap()
                .observations
                .measurements
                .is_empty()
        );
    }
    assert_eq!(
        sim.cluster["a"].canary, weight,
        "weights do not move while paused"
    );
    sim.edit(|s| s.paused = Some(false));
    let unpaused_at = sim.now;
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert_eq!(
        d.status.services[0].bake_started_at.as_ref().unwrap().0,
        unpaused_at
    );
    assert!(d.status.services[0].tally.is_empty());
    assert_eq!(sim.run(100), Phase::Succeeded);
}

#[test]
fn paused_before_start_stays_pending() {
    let mut s = spec(&[("a", &[])]);
    s.paused = Some(true);
    let mut sim = Sim::new(s);
    let d = sim.pass().clone();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(Phase::Pending));
    assert!(d.status.message.unwrap().contains("paused"));
}

// ------------------------------------------------------------ refusing bad input

fn stalled(sim: &mut Sim) -> (String, String) {
    let d = sim.pass().clone();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Some(Phase::Pending));
    let c = condition(&d.status, "Stalled");
    assert_eq!(c.status, "True");
    assert_eq!(c.observed_generation, Some(1));
    assert_eq!(d.notices.len(), 1);
    // Nothing new on the next look.
    let again = sim.pass().clone();
    assert!(again.notices.is_empty() && again.actions.is_empty());
    (c.reason.clone(), c.message.clone())
}

#[test]
fn invalid_spec_stalls() {
    let mut s = spec(&[("a", &[])]);
    s.owner = String::new();
    let (reason, message) = stalled(&mut Sim::new(s));
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("spec.owner"), "{message}");
}

#[test]
fn cycle_and_unknown_dependency_stall() {
    let (reason, message) = stalled(&mut Sim::new(spec(&[("a", &["b"]), ("b", &["a"])])));
    assert_eq!(reason, "InvalidPlan");
    assert!(
        message.contains("spec.services[0].dependsOn: dependency cycle: a -> b -> a"),
        "{message}"
    );
    let (reason, message) = stalled(&mut Sim::new(spec(&[("a", &["x"]), ("b", &["y"])])));
    assert_eq!(reason, "InvalidPlan");
    assert!(
        message.contains("spec.services[0].dependsOn")
            && message.contains("spec.services[1].dependsOn"),
        "{message}"
    );
}

#[test]
fn missing_deployment_stalls_with_the_fix() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &[])]));
    sim.cluster.get_mut("b").unwrap().exists = false;
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "DeploymentNotFound");
    assert_eq!(
        message,
        "spec.services[1].deployment: Deployment \"b\" not found in namespace \"shop\"; create it or fix the name"
    );
    // Once it exists, the release starts.
    sim.cluster.get_mut("b").unwrap().exists = true;
    assert_eq!(sim.pass().status.phase, Some(Phase::Progressing));
}

#[test]
fn missing_container_stalls_listing_the_containers() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.cluster.get_mut("a").unwrap().containers = vec!["app".into(), "sidecar".into()];
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "ContainerNotFound");
    assert!(
        message.starts_with("spec.services[0].change.images.main:"),
        "{message}"
    );
    assert!(message.contains("\"app\", \"sidecar\""), "{message}");
}

#[test]
fn missing_route_stalls() {
    let mut s = spec(&[("a", &[])]);
    s.services[0].traffic = Some(Traffic {
        gateway_api: Some(GatewayApiTraffic {
            http_route: "a-route".into(),
            service: None,
        }),
    });
    let mut sim = Sim::new(s);
    sim.cluster.get_mut("a").unwrap().route = None;
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "RouteNotFound");
    assert!(
        message.starts_with("spec.services[0].traffic.gatewayAPI.httpRoute: HTTPRoute \"a-route\""),
        "{message}"
    );
}

#[test]
fn claimed_deployment_stalls() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.cluster.get_mut("a").unwrap().claimed_by = Some("older".into());
    let (reason, message) = stalled(&mut sim);
    assert_eq!(reason, "DeploymentClaimed");
    assert!(message.contains(
        "is claimed by Release \"older\", which is still in flight; wait for it or abort it"
    ));
}

// ------------------------------------------------------------ crash safety and idempotence

/// What a run ends with, leaving out timestamps (a crash shifts them): the
/// phase, each service's phase, and each stable template and whether a canary is left.
type EndState = (
    Phase,
    Vec<(String, ServicePhase)>,
    Vec<(String, TemplateState, bool)>,
);

fn end_state(sim: &Sim) -> EndState {
    let st = status(sim);
    (
        sim.phase(),
        st.services
            .iter()
            .map(|s| (s.name.clone(), s.phase))
            .collect(),
        sim.cluster
            .iter()
            .map(|(n, s)| (n.clone(), s.template, s.canary.is_some()))
            .collect(),
    )
}

fn scenarios() -> Vec<Sim> {
    let edges: &[(&str, &[&str])] = &[("a", &[]), ("b", &["a"]), ("x", &["a"]), ("c", &["b"])];
    vec![
        Sim::new(spec(edges)),
        Sim::new(spec(edges)).with_measure(|r, _| {
            QueryResult::Value(if r.service == "b" && r.step == 2 {
                0.5
            } else {
                0.0
            })
        }),
        Sim::new(spec(edges)).with_measure(|r, _| {
            QueryResult::Value(if r.service == "c" && r.step == 1 {
                0.5
            } else {
                0.0
            })
        }),
    ]
}

#[test]
fn a_crash_at_any_point_reaches_the_same_end_state() {
    for (n, mut reference) in scenarios().into_iter().enumerate() {
        reference.run(1000);
        let expected = end_state(&reference);
        for at in 0..reference.passes.len() {
            for crash in [
                Crash::BeforeActions,
                Crash::AfterActions(0),
                Crash::AfterActions(1),
                Crash::AfterActions(usize::MAX),
            ] {
                let mut sim = scenarios().swap_remove(n);
                for _ in 0..at {
                    sim.pass();
                }
                sim.pass_with(crash);
                sim.run(1000);
                assert_eq!(
                    end_state(&sim),
                    expected,
                    "scenario {n}, crash {crash:?} at pass {at}"
                );
            }
        }
    }
}

#[test]
fn deciding_again_on_the_result_repeats_no_transition() {
    for mut sim in scenarios() {
        sim.run(1000);
        for p in &sim.passes {
            let again = decide(&p.before, &p.observations, p.now);
            assert_eq!(again, p.decision, "same inputs, same decision");
            let mut after = p.before.clone();
            after.status = Some(p.decision.status.clone());
            let redo = decide(&after, &p.observations, p.now);
            assert!(redo.notices.is_empty(), "{:?}", redo.notices);
            assert_eq!(redo.status.timeline, p.decision.status.timeline);
            assert_eq!(redo.status.phase, p.decision.status.phase);
            assert_eq!(redo.status.conditions, p.decision.status.conditions);
        }
    }
}

#[test]
fn a_final_release_costs_nothing() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run(100);
    let obs = sim.observe(Vec::new());
    let d = decide(&sim.release, &obs, context::plus(sim.now, secs(3600)));
    assert!(d.actions.is_empty() && d.notices.is_empty());
    assert_eq!(d.requeue_after, None);
    assert_eq!(Some(d.status), sim.release.status);
}

#[test]
fn conditions_keep_their_transition_time_and_carry_the_generation() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.pass();
    let first = condition(status(&sim), "Reconciling")
        .last_transition_time
        .clone();
    sim.edit(|_| {});
    sim.pass();
    sim.pass();
    let c = condition(status(&sim), "Reconciling");
    assert_eq!(c.last_transition_time, first);
    assert_eq!(c.observed_generation, Some(2));
    assert_eq!(status(&sim).observed_generation, Some(2));
}

#[test]
fn the_timeline_is_capped_but_keeps_the_story() {
    let mut sim = Sim::new(spec(&[("a", &[])])).with_measure(|_, _| QueryResult::Value(0.5));
    sim.run_until(100, |s| s.phase() == Phase::RollingBack);
    let mut release = sim.release.clone();
    let st = release.status.as_mut().unwrap();
    let filler = st.timeline.last().unwrap().clone();
    st.timeline.extend(std::iter::repeat_n(filler, 300));
    let d = decide(&release, &sim.observe(Vec::new()), sim.now);
    let tl = &d.status.timeline;
    assert_eq!(tl.len(), crate::api::default::TIMELINE_KEPT);
    for reason in ["Started", "MeasurementFailed", "Breach"] {
        assert!(tl.iter().any(|e| e.reason == reason), "{reason} dropped");
    }
}

#[test]
fn measurements_in_status_are_bounded() {
    let mut s = spec(&[("a", &[])]);
    s.defaults.as_mut().unwrap().steps = Some(vec![
        Step {
            weight: 10,
            bake: secs(600).into(),
        },
        Step {
            weight: 100,
            bake: secs(60).into(),
        },
    ]);
    let mut sim = Sim::new(s);
    sim.run_until(200, |s| {
        s.release
            .status
            .as_ref()
            .and_then(|st| st.services.first())
            .is_some_and(|x| x.step == Some(1))
    });
    assert_eq!(
        status(&sim).services[0].measurements.len(),
        crate::api::default::MEASUREMENTS_KEPT
    );
}

#[test]
fn spec_hash_ignores_the_control_fields_only() {
    let s = spec(&[("a", &[])]);
    let h = spec_hash(&s);
    assert_eq!(h.len(), 16);
    let controlled = ReleaseSpec {
        paused: Some(true),
        abort: Some(true),
        resume_hold: Some("hold-1".into()),
        ..s.clone()
    };
    assert_eq!(spec_hash(&controlled), h);
    let mut changed = s.clone();
    changed.services[0]
        .change
        .images
        .insert("main".into(), "x:v3".into());
    assert_ne!(spec_hash(&changed), h);
}

#[test]
fn a_promotion_whose_status_was_lost_is_still_restored() {
    let mut sim = Sim::new(spec(&[("a", &[])]))
        .with_measure(|r, _| QueryResult::Value(if r.step == 2 { 0.5 } else { 0.0 }));
    sim.run_until(100, |s| {
        let st = s.release.status.as_ref().and_then(|st| st.services.first());
        st.is_some_and(|x| x.step == Some(2) && x.bake_started_at.is_some())
    });
    // The stable Deployment carries the new version although status never said Promoting.
    sim.cluster.get_mut("a").unwrap().template = TemplateState::New;
    assert_eq!(sim.run(100), Phase::RolledBack);
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Restored));
    all_settled_as(&sim, TemplateState::Baseline);
}
