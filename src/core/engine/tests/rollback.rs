//! Breaches and aborts: every canary to 0 %, then restores in reverse order.

use super::*;

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
    assert_eq!(cause.reason.as_str(), "Breach");
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
            .any(|n| n.kind.reason() == "Breach" && n.kind.warning())
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
    assert_eq!(condition(st, "Stalled").reason.as_str(), "RolledBack");
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
            approval: None,
        },
        Step {
            weight: 100,
            bake: secs(600).into(),
            approval: None,
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
    assert_eq!(d.status.rollback.as_ref().unwrap().reason.as_str(), "Abort");
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
