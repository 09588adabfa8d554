//! A write the API server refuses as invalid: the shell reports it and the
//! engine decides again from the same status, instead of a retry forever.

use super::*;

fn refusal(service: &str) -> WriteRefusal {
    WriteRefusal {
        service: service.into(),
        doing: "setting the canary weight to 50".into(),
        message:
            "Deployment.apps \"a-canary\" is invalid: spec.template.spec.containers[0].image: \
                  Required value"
                .into(),
    }
}

/// Decide once on the sim's current state as if the shell's write was refused,
/// and store the result like the shell does.
fn refused_pass(sim: &mut Sim, service: &str) -> Decision {
    let mut obs = sim.observe(vec![]);
    obs.refused = Some(refusal(service));
    let d = decide(&sim.release, &obs, sim.now);
    sim.apply(&d.actions);
    sim.release.status = Some(d.status.clone());
    d
}

#[test]
fn a_refused_write_in_flight_holds_with_the_servers_message_and_the_canary_at_zero() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert!(sim.run_until(50, |s| {
        s.release
            .status
            .as_ref()
            .is_some_and(|st| st.services.first().is_some_and(|a| a.weight == 10))
            && s.cluster["a"].canary.is_some()
    }));
    let d = refused_pass(&mut sim, "a");
    assert_eq!(d.status.phase, Some(Phase::Held));
    let hold = d.status.hold.as_ref().expect("a hold");
    assert_eq!(hold.reason, HoldReason::WriteRefused);
    assert_eq!(hold.service.as_deref(), Some("a"));
    assert!(
        hold.message.contains(
            "the API server refused setting the canary weight to 50 for a: \
             Deployment.apps \"a-canary\" is invalid"
        ),
        "{}",
        hold.message
    );
    assert_eq!(
        d.actions,
        [Action::SetCanaryWeight {
            service: "a".into(),
            weight: 0
        }]
    );
    assert!(
        d.notices
            .iter()
            .any(|n| n.kind == NoticeKind::Held(HoldReason::WriteRefused)),
        "{:?}",
        d.notices
    );
    // The next looks stay held and ask for nothing new.
    let again = sim.pass().clone();
    assert_eq!(again.status.phase, Some(Phase::Held));
    assert!(again.notices.is_empty(), "{:?}", again.notices);
}

#[test]
fn a_refused_write_in_the_pass_that_starts_holds_having_moved_nothing() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    let d = refused_pass(&mut sim, "a");
    assert_eq!(d.status.phase, Some(Phase::Held));
    assert_eq!(
        d.status.hold.as_ref().map(|h| h.reason),
        Some(HoldReason::WriteRefused)
    );
    assert!(
        d.actions
            .iter()
            .all(|a| matches!(a, Action::SetCanaryWeight { weight: 0, .. })),
        "{:?}",
        d.actions
    );
}

#[test]
fn a_refused_write_while_rolling_back_ends_failed_rather_than_wedge() {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    assert!(sim.run_until(50, |s| s.cluster["a"].canary.is_some()));
    sim.edit(|s| s.abort = Some(true));
    sim.pass();
    assert_eq!(sim.phase(), Phase::RollingBack);
    let d = refused_pass(&mut sim, "a");
    assert_eq!(d.status.phase, Some(Phase::Failed));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let message = d.status.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("the rollback cannot complete: the API server refused"),
        "{message}"
    );
    assert!(d.notices.iter().any(|n| n.kind == NoticeKind::Failed));
}
