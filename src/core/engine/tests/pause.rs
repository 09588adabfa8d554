//! A person's pause (`spec.paused`).

use super::*;

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
