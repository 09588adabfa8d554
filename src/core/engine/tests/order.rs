//! The order services move in: waves, dependencies, parallel middles.

use super::*;

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
        .flat_map(|p| {
            p.decision
                .notices
                .iter()
                .map(|n| n.kind.reason().to_owned())
        })
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
