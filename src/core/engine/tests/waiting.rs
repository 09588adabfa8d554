//! A service whose Deployment is paused or still rolling out when the train
//! reaches it waits, writes nothing and says why.

use super::*;

fn message_of<'a>(st: &'a ReleaseStatus, name: &str) -> &'a str {
    st.services
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.message.as_deref())
        .unwrap_or_default()
}

#[test]
fn a_paused_deployment_is_waited_for_with_the_fix_and_needs_a_person() {
    let mut sim = Sim::new(spec(&[("a", &[]), ("b", &["a"])]));
    sim.cluster.get_mut("b").unwrap().paused = true;
    assert!(sim.run_until(500, |s| s.service_phase("a")
        == Some(ServicePhase::Promoted)));
    for _ in 0..4 {
        sim.pass();
    }
    assert!(
        !sim.passes
            .iter()
            .any(|p| p.decision.actions.iter().any(|a| touches(a, "b"))),
        "something was written for b while its Deployment is paused"
    );
    assert!(!sim.cluster["b"].baseline_recorded);
    let st = status(&sim);
    assert_eq!(st.phase, Some(Phase::Progressing));
    assert_eq!(sim.service_phase("b"), Some(ServicePhase::Pending));
    let waits = message_of(st, "b");
    assert!(
        waits.contains("paused") && waits.contains("kubectl rollout resume deployment/b -n shop"),
        "{waits}"
    );
    let message = st.message.as_deref().unwrap();
    assert!(
        message.contains("b waits for Deployment \"b\" to be resumed"),
        "{message}"
    );
    let stalled = condition(st, "Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "DeploymentPaused")
    );
    assert_eq!(condition(st, "Reconciling").status, "False");
    // Told once: one Stalled event and one timeline entry, however long it waits.
    let told = sim
        .passes
        .iter()
        .flat_map(|p| &p.decision.notices)
        .filter(|n| n.kind == NoticeKind::Stalled && n.service.as_deref() == Some("b"))
        .count();
    assert_eq!(told, 1);
    let entries = st
        .timeline
        .iter()
        .filter(|e| e.reason == "Waiting" && e.service.as_deref() == Some("b"))
        .count();
    assert_eq!(entries, 1);

    sim.cluster.get_mut("b").unwrap().paused = false;
    assert_eq!(sim.run(500), Phase::Succeeded);
    let st = status(&sim);
    assert_eq!(condition(st, "Stalled").status, "False");
    all_settled_as(&sim, TemplateState::New);
}

#[test]
fn a_deployment_mid_rollout_is_waited_for_and_its_baseline_taken_once_it_is_done() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.cluster.get_mut("a").unwrap().rolled_out = false;
    let d = sim.pass().clone();
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let waits = message_of(&d.status, "a");
    assert!(
        waits.contains("finish its rollout")
            && waits.contains("kubectl rollout status deployment/a -n shop"),
        "{waits}"
    );
    // Waiting for the cluster is progress, not a stall.
    assert_eq!(condition(&d.status, "Reconciling").status, "True");
    assert_eq!(condition(&d.status, "Stalled").status, "False");
    assert!(d.requeue_after.is_some_and(|r| r <= CONVERGE));
    assert!(!d.notices.iter().any(|n| n.kind == NoticeKind::Stalled));

    // The rollout finished (the simulated cluster settles between passes).
    let d = sim.pass().clone();
    assert_eq!(
        d.actions,
        [Action::RecordBaseline {
            service: "a".into()
        }]
    );
    assert_eq!(sim.run(500), Phase::Succeeded);
}

/// A single-service train stopped in Promoting by what `stop` does to its
/// stable Deployment, two decisions later.
fn stuck_promoting(stop: impl FnOnce(&mut super::super::sim::SimService)) -> Sim {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert!(sim.run_until(500, |s| s.service_phase("a")
        == Some(ServicePhase::Promoting)));
    let a = sim.cluster.get_mut("a").unwrap();
    stop(a);
    a.rolled_out = false;
    sim.pass();
    sim.pass();
    assert_eq!(sim.service_phase("a"), Some(ServicePhase::Promoting));
    sim
}

#[test]
fn a_promotion_into_a_paused_deployment_says_how_to_resume_it() {
    let mut sim = stuck_promoting(|a| a.paused = true);
    let waits = message_of(status(&sim), "a");
    assert!(
        waits.contains("kubectl rollout resume deployment/a -n shop"),
        "{waits}"
    );
    sim.cluster.get_mut("a").unwrap().paused = false;
    assert_eq!(sim.run(100), Phase::Succeeded);
}

#[test]
fn a_rollout_past_its_deadline_is_waited_for_and_needs_a_person() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    {
        let a = sim.cluster.get_mut("a").unwrap();
        a.rolled_out = false;
        a.rollout_failed = true;
    }
    for _ in 0..3 {
        let d = sim.pass().clone();
        assert!(d.actions.is_empty(), "{:?}", d.actions);
    }
    let st = status(&sim);
    let waits = message_of(st, "a");
    assert!(
        waits.contains("ProgressDeadlineExceeded")
            && waits.contains("kubectl rollout undo deployment/a -n shop"),
        "{waits}"
    );
    let stalled = condition(st, "Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "DeploymentRolloutFailed")
    );
    // Fixed (e.g. undone): the rollout completes and the train goes on.
    sim.cluster.get_mut("a").unwrap().rollout_failed = false;
    assert_eq!(sim.run(500), Phase::Succeeded);
}

#[test]
fn a_promotion_whose_rollout_fails_says_how_to_get_out() {
    let sim = stuck_promoting(|a| a.rollout_failed = true);
    let waits = message_of(status(&sim), "a");
    assert!(
        waits.contains("progressDeadlineSeconds") && waits.contains("spec.abort: true"),
        "{waits}"
    );
}
